"""``cityres estimate ...``: the estimation commands (mounted by warehouse/cli.py).

Data: a warehouse table or view (read-only), or a CSV/Parquet file, so users
can run the engine on panels of their own.  ``--format json`` writes one record
per term plus the model facts; NaN becomes null so the output is valid JSON.
"""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

estimate_app = typer.Typer(no_args_is_help=True, help="Estimate models on the warehouse or on a CSV/Parquet panel.")
console = Console()

HomeOption = typer.Option(None, "--home", help="CITYRES_HOME (default: $CITYRES_HOME or ./.cityres)")
DataOption = typer.Option("analysis_panel", "--data", help="warehouse table/view, or a .csv/.parquet file")
FormatOption = typer.Option("table", "--format", help="table | json")


@contextmanager
def _open_data(data: str, home: Optional[Path]):
    """Yield (connection, relation) for a file or a warehouse table."""
    import duckdb

    path = Path(data)
    if path.suffix.lower() in (".csv", ".parquet") and path.exists():
        con = duckdb.connect()
        reader = "read_parquet" if path.suffix.lower() == ".parquet" else "read_csv_auto"
        # a view cannot take a bound parameter: the path becomes a quoted SQL string literal
        literal = "'" + str(path.resolve()).replace("'", "''") + "'"
        view = "__cr_user_data"
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {reader}({literal})")
        relation = view
    else:
        from warehouse.cli import _home

        h = _home(home)
        if not h.warehouse_db.exists():
            console.print(f"[red]no file {data!r} and no published warehouse at {h.warehouse_db}[/]")
            raise typer.Exit(2)
        con = duckdb.connect(str(h.warehouse_db), read_only=True)
        relation = data
    try:
        yield con, relation
    finally:
        con.close()


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _clean(v.item())
    return v


def _records(frame) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def model_facts(result) -> dict:
    facts = {
        "formula": result.formula, "nobs": result.nobs, "r2": result.r2, "r2_within": result.r2_within,
        "adj_r2": result.adj_r2, "n_clusters": result.n_clusters,
        "vcov": result.vcov if result.cluster is None else f"{result.vcov}:{result.cluster}",
        "df_t": result.df_t, "f_stat": result.fstat, "f_pvalue": result.f_pvalue,
        "f_df": list(result.f_df) if result.f_df else None, "dropped": result.dropped,
        "demean_method": result.demean_method, "elapsed_s": result.elapsed_s,
    }
    return {k: _clean(v) for k, v in facts.items()}


def _emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")


def _vcov(text: str):
    from estimation.vcov import parse_vcov_text

    return parse_vcov_text(text)


@estimate_app.command("baseline")
def estimate_baseline(
    home: Optional[Path] = HomeOption,
    fmt: str = typer.Option("text", "--format", help="text | markdown | latex | html"),
) -> None:
    """The resilience study's Table 3 (four columns) on the published analysis_panel."""
    from estimation.studies import run_baseline, table3

    with _open_data("analysis_panel", home) as (con, relation):
        specs, results = run_baseline(con, relation)
    console.print(table3(specs, results, fmt), markup=False, highlight=False)


@estimate_app.command("twfe")
def estimate_twfe(
    formula: str = typer.Option(..., "--formula", help='fixest syntax, e.g. "res ~ did + eocden | city_code + year"'),
    data: str = DataOption,
    vcov: str = typer.Option("CRV1:city_code", "--vcov", help="iid | HC1 | CRV1:<col> | CRV1:<a>+<b>"),
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """A fixed-effects regression computed in DuckDB."""
    from estimation.model import feols

    with _open_data(data, home) as (con, relation):
        result = feols(con, relation, formula, vcov=_vcov(vcov))
    if fmt == "json":
        _emit_json({"terms": _records(result.tidy()), "model": model_facts(result)})
    else:
        console.print(result.summary(), markup=False, highlight=False)


@estimate_app.command("event-study")
def estimate_event_study(
    data: str = DataOption,
    outcome: str = typer.Option("res", "--outcome"),
    treatment: str = typer.Option("did", "--treatment", help="0/1 post indicator; adoption = first period with 1"),
    unit: str = typer.Option("city_code", "--unit"),
    time: str = typer.Option("year", "--time"),
    leads: int = typer.Option(4, "--leads"),
    lags: int = typer.Option(7, "--lags"),
    base: int = typer.Option(-1, "--base"),
    controls: str = typer.Option("eocden,traff,gove,inv,salary", "--controls", help="comma-separated"),
    no_bin: bool = typer.Option(False, "--no-bin", help="do not bin the end points"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write the parallel-trends figure (PNG)"),
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """Leads and lags around adoption, the joint pre-trend test and the figure."""
    from estimation.event_study import run_event_study

    ctrl = [c.strip() for c in controls.split(",") if c.strip()]
    with _open_data(data, home) as (con, relation):
        es = run_event_study(con, relation, outcome, leads, lags, base, ctrl, not no_bin,
                             treatment=treatment, unit=unit, time=time)
    if plot:
        es.plot(plot)
    if fmt == "json":
        pt = es.pretrend
        _emit_json({
            "event_times": _records(es.tidy()), "terms": _records(es.model.tidy()),
            "pretrend": None if pt is None else {k: _clean(v) for k, v in
                                                 {"F": pt.f, "df1": pt.df1, "df2": pt.df2, "p": pt.p_f,
                                                  "wald": pt.wald, "p_chi2": pt.p_chi2}.items()},
            "model": model_facts(es.model), "plot": str(plot) if plot else None,
        })
    else:
        console.print(es.table("text"), markup=False, highlight=False)
        if plot:
            console.print(f"figure: {plot}")


@estimate_app.command("placebo")
def estimate_placebo(
    formula: str = typer.Option(..., "--formula", help='e.g. "res ~ did + eocden | city_code + year"'),
    data: str = DataOption,
    treatment: str = typer.Option("did", "--treatment", help="0/1 post indicator in the formula"),
    unit: str = typer.Option("city_code", "--unit"),
    time: str = typer.Option("year", "--time"),
    draws: int = typer.Option(500, "--draws"),
    seed: int = typer.Option(20240601, "--seed"),
    strata: Optional[str] = typer.Option(None, "--strata", help="permute within this unit-level column"),
    n_pseudo: Optional[int] = typer.Option(None, "--n-pseudo-treated"),
    permute: str = typer.Option("adoption", "--permute", help="adoption | units"),
    vcov: Optional[str] = typer.Option(None, "--vcov", help="iid | CRV1:<col> (default CRV1:<unit>)"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write the placebo figure (PNG)"),
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """Randomisation inference: all placebo draws in one DuckDB query."""
    from estimation.placebo import run_placebo

    with _open_data(data, home) as (con, relation):
        pl = run_placebo(con, relation, formula, treatment, unit, time, draws, seed, strata,
                         n_pseudo, permute, vcov=_vcov(vcov) if vcov else None)
    if plot:
        pl.plot(plot)
    if fmt == "json":
        facts = model_facts(pl.real)
        facts["elapsed_s"] = pl.elapsed_s
        _emit_json({
            "terms": _records(pl.real.tidy()), "model": facts,
            "ri_p_value": _clean(pl.ri_p_value), "ri_p_value_plus1": _clean(pl.ri_p_value_plus1),
            "placebo": {k: _clean(v) for k, v in pl.summary().items()},
            "draws": _records(pl.draws), "plot": str(plot) if plot else None,
        })
    else:
        s = pl.summary()
        console.print(pl.real.summary(), markup=False, highlight=False)
        console.print(
            f"\nplacebo: {s['draws']} draws ({s['permute']}), mean {s['placebo_mean']:.5f}, "
            f"sd {s['placebo_sd']:.5f}, share p<0.1 {s['share_p_below_0.1']:.3f}\n"
            f"randomisation p-value (two-sided) of {s['term']} = {s['coef']:.5f}: {s['ri_p_value']:.4f} "
            f"[(1+#)/(1+draws): {s['ri_p_value_plus1']:.4f}]  ({s['elapsed_s']:.2f} s)",
            markup=False, highlight=False,
        )
        if plot:
            console.print(f"figure: {plot}")
