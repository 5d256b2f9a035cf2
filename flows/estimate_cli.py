"""``cityres estimate ...``: the estimation commands (mounted by flows/cli.py).

They work on any panel: ``--data`` takes a warehouse table or view (read-only), a
CSV/Parquet file, or a SELECT on the warehouse.  No study's columns are assumed unless
``--study`` names one (``resilience``, ``nqp``), which then supplies the outcome, treatment,
unit, time and controls of that study's own specification (each can still be overridden).
A column that is not in the data is answered in one line listing the columns that are;
any other refusal is one line too, never a traceback.  ``--format json`` writes one record
per term plus the model facts; NaN becomes null so the output is valid JSON.
"""

from __future__ import annotations

import json
import math
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from flows.cli_common import HomeOption, resolve_home

estimate_app = typer.Typer(no_args_is_help=True,
                           help="Estimate models on the warehouse or on a CSV/Parquet panel of your own.")
console = Console(soft_wrap=True)  # long lines stay whole when piped (grep, files)
err = Console(stderr=True, soft_wrap=True)

DataOption = typer.Option(None, "--data", help="warehouse table/view, a .csv/.parquet file, or a SELECT "
                          "(default with --study: analysis_panel)")
FormatOption = typer.Option("table", "--format", help="table | json")
VcovOption = typer.Option(None, "--vcov", help="iid | HC1 | CRV1:<col> | CRV1:<a>+<b> "
                          "(default: CRV1 by the first fixed effect; HC1 without)")
StudyOption = typer.Option(None, "--study", help="fill in a study's specification: resilience | nqp")
WeightsOption = typer.Option(None, "--weights", help="analytic weights column (> 0)")
_SELECT = re.compile(r"^\s*(\(|select\b|with\b|from\b)", re.I)


@dataclass(frozen=True)
class StudyDefaults:
    data: str
    outcome: str
    treatment: str
    unit: str
    time: str
    controls: tuple[str, ...]
    leads: int
    lags: int
    base: int


def _study(name: Optional[str]) -> StudyDefaults | None:
    if name is None:
        return None
    from estimation.studies import common, nqp, resilience

    modules = {"resilience": resilience, "nqp": nqp}
    if name not in modules:
        _fail(f"unknown study {name!r}: choose one of {', '.join(modules)}")
    m = modules[name]
    return StudyDefaults("analysis_panel", m.OUTCOME, common.TREATMENT, common.UNIT, common.TIME,
                         tuple(m.CONTROLS), **m.EVENT_WINDOW)


def _fail(message: str, code: int = 2):
    err.print(f"[red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _pick(value, study: StudyDefaults | None, field: str, option: str):
    """An option's value, else the study's, else a one-line refusal naming the option."""
    if value is not None:
        return value
    if study is not None:
        return getattr(study, field)
    _fail(f"{option} is required (or name a study with --study resilience|nqp)")


@contextmanager
def _open_data(data: str, home: Optional[Path]):
    """Yield (connection, relation) for a file, a SELECT on the warehouse, or a warehouse table.

    Either way the connection is sandboxed like `cityres query`'s: a user's file is read into
    a temporary table first, then file access is switched off and the configuration locked; the
    published warehouse is opened read-only in the sandbox.
    """
    import duckdb

    from warehouse.connections import connect_memory
    from warehouse.sandbox import connect_sandboxed
    from warehouse.settings import ConfigError, load_query_settings

    path = Path(data)
    if path.suffix.lower() in (".csv", ".parquet") and not _SELECT.match(data):
        if not path.exists():
            _fail(f"no file {data}")
        con = connect_memory()
        reader = "read_parquet" if path.suffix.lower() == ".parquet" else "read_csv_auto"
        # a table function cannot take a bound parameter: the path becomes a quoted SQL string literal
        literal = "'" + str(path.resolve()).replace("'", "''") + "'"
        try:
            con.execute(f"CREATE TEMP TABLE __cr_user_data AS SELECT * FROM {reader}({literal})")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            con.close()
            _fail(f"{data}: cannot be read ({str(exc).splitlines()[0]})")
        relation = "__cr_user_data"
    else:
        h = resolve_home(home)
        if not h.warehouse_db.exists():
            _fail(f"{data!r} is not a .csv/.parquet file and there is no published warehouse at {h.warehouse_db}")
        try:
            settings = load_query_settings(h)
        except ConfigError as exc:
            _fail("; ".join(exc.problems))
        con = connect_sandboxed(h.warehouse_db, settings)
        relation = data
    try:
        yield con, relation
    finally:
        con.close()


def _columns_of(con, relation: str) -> list[str]:
    from estimation.engine.sqlutil import resolve_relation, temp_scope

    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def _require_columns(con, relation: str, names) -> None:
    """Refuse, in one line, a column the data does not have (listing the ones it has)."""
    import duckdb

    try:
        available = _columns_of(con, relation)
    except duckdb.Error as exc:
        _fail(f"cannot read {relation!r}: {str(exc).splitlines()[0]}")
    missing = [n for n in dict.fromkeys(names) if n and n not in available]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        _fail(f"{noun} {', '.join(repr(m) for m in missing)} not in {relation!r}; "
              f"available: {', '.join(available)}")


def _formula_columns(formula: str) -> list[str]:
    from estimation.engine.formula import parse_formula

    try:
        f = parse_formula(formula)
    except ValueError as exc:
        _fail(str(exc))
    return [f.y, *f.x, *(c for t in f.factors for c in t.columns), *f.fe]


def _run(call):
    """Run an estimation; a refusal of the engine or of DuckDB becomes one line."""
    import duckdb

    try:
        return call()
    except (ValueError, NotImplementedError, duckdb.Error) as exc:
        _fail(str(exc).splitlines()[0])


def _split(text: Optional[str]) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


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
        "demean_method": result.demean_method, "elapsed_s": result.elapsed_s, "weights": result.weights,
    }
    return {k: _clean(v) for k, v in facts.items()}


def _emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")


def _vcov(text: Optional[str], fixed_effects) -> str | dict:
    """--vcov as given; by default CRV1 by the first fixed effect, HC1 without fixed effects."""
    from estimation.engine.vcov import parse_vcov, parse_vcov_text

    if text is None:
        return {"CRV1": fixed_effects[0]} if fixed_effects else "hetero"
    spec = parse_vcov_text(text)
    try:
        parse_vcov(spec)
    except (ValueError, TypeError) as exc:
        _fail(f"--vcov {text!r}: {exc}")
    return spec


def _vcov_columns(spec) -> list[str]:
    if isinstance(spec, dict):
        return [c.strip() for c in next(iter(spec.values())).split("+")]
    return []


@estimate_app.command("baseline")
def estimate_baseline(
    home: Optional[Path] = HomeOption,
    fmt: str = typer.Option("text", "--format", help="text | markdown | latex | html"),
) -> None:
    """The resilience study's Table 3 (four columns) on the published analysis_panel."""
    from estimation.studies.common import table3
    from estimation.studies.resilience import run_table3

    with _open_data("analysis_panel", home) as (con, relation):
        specs, results = run_table3(con, relation)
    console.print(table3(specs, results, fmt), markup=False, highlight=False)


@estimate_app.command("all")
def estimate_all(
    home: Optional[Path] = HomeOption,
    fmt: str = typer.Option("markdown", "--format", help="markdown | html"),
) -> None:
    """The whole program of the studies on the published warehouse (read-only, nothing written):
    Tables 2, 3 and 4 with the balance table, the robustness table, the NQP study's Table 3 and
    robustness table, the NQP -> resilience study's 2SLS, the specification curve over the index,
    the event study's pre-trend test, the placebo's randomisation p-value, and the modern DID
    program (Callaway-Sant'Anna, Sun-Abraham, BJS, did2s, Goodman-Bacon, HonestDiD breakdown
    values, spatial DID, DML DID)."""
    from estimation.studies.common import table3
    from estimation.studies.program import STUDIES, program_results, run_study

    if fmt not in ("markdown", "html"):
        _fail("--format must be markdown or html")
    with _open_data("analysis_panel", home) as (con, _):
        program = _run(lambda: program_results(con, {name: run_study(con, name) for name in STUDIES}))
    blocks = [("Table 2: descriptive statistics and VIFs", program.table2.render(fmt)),
              ("Table 3: baseline DID", table3(*program.baseline, fmt)),
              ("Table 4: PSM-DID and 2SLS", program.table4_iv.render(fmt, psm=program.table4_psm)),
              ("Table 4: covariate balance of the PSM-DID matching", program.table4_psm.render_balance(fmt)),
              ("Robustness", program.robustness.render(fmt)),
              ("The NQP study's Table 3", table3(*program.nqp_baseline, fmt, adj_r2=True)),
              ("The NQP study's robustness table", program.nqp_robustness.render(fmt)),
              ("The NQP -> resilience study's Table 4: 2SLS with lagged NQP", program.nqp_resilience_iv.render(fmt)),
              ("Specification curve over the resilience index", program.spec_curve.render(fmt)),
              *[(title, program.heterogeneity.render(n, fmt)) for n, title in (
                  (5, "Table 5: mechanisms"), (6, "Table 6: city size"), (7, "Table 7: institutions"))],
              ("The NQP study's Table 5: mediation", program.nqp_table5.render(fmt)),
              ("The NQP study's Table 6: split samples", program.nqp_table6.render(fmt)),
              *[(f"The NQP -> resilience study's Table {n}", body) for n, body in (
                  (3, program.nqp_resilience_tables.table3.render(fmt)),
                  (5, program.nqp_resilience_tables.table5.render(fmt)),
                  (6, program.nqp_resilience_tables.table6.render(fmt)),
                  (7, program.nqp_resilience_tables.table7.render(fmt)))],
              ("Heterogeneity-robust DID, Goodman-Bacon, spatial DID and DML DID",
               program.modern_did.render(fmt))]
    es, placebo = program.event_study, program.placebo
    facts = []
    if es.pretrend is not None:
        facts.append(f"Event study: joint test of the leads F({es.pretrend.df1}, {es.pretrend.df2}) = "
                     f"{es.pretrend.f:.3f}, p = {es.pretrend.p_f:.4g}.")
    facts.append(f"Placebo ({placebo.n_valid} valid draws): randomisation p-value {placebo.ri_p_value:.4g} "
                 f"({placebo.ri_p_value_plus1:.4g} counting the real assignment as a draw).")
    facts.append(f"Specification curve: {program.spec_curve.summary_line()}")
    from estimation.studies.modern_did import honest_lines, spatial_lines

    facts += [f"HonestDiD: {line}" for line in honest_lines(program.modern_did)[1:3]]
    facts += [f"Spatial: {line}" for line in spatial_lines(program.modern_did, None)]
    for title, body in blocks:
        heading = f"<h2>{title}</h2>" if fmt == "html" else f"## {title}"
        console.print(f"{heading}\n\n{body}", markup=False, highlight=False)
    console.print("\n".join(facts), markup=False, highlight=False)


@estimate_app.command("twfe")
def estimate_twfe(
    formula: str = typer.Option(..., "--formula", help='fixest syntax, e.g. "y ~ d + x1 | unit + year"'),
    data: Optional[str] = DataOption,
    vcov: Optional[str] = VcovOption,
    weights: Optional[str] = WeightsOption,
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """A fixed-effects regression computed in DuckDB."""
    from estimation.engine.formula import parse_formula
    from estimation.engine.model import feols

    columns = _formula_columns(formula)
    spec = _vcov(vcov, parse_formula(formula).fe)
    if data is None:
        _fail("--data is required: a warehouse table, a .csv/.parquet file or a SELECT")
    with _open_data(data, home) as (con, relation):
        _require_columns(con, relation, [*columns, *_vcov_columns(spec), weights])
        result = _run(lambda: feols(con, relation, formula, vcov=spec, weights=weights))
    if fmt == "json":
        _emit_json({"terms": _records(result.tidy()), "model": model_facts(result)})
    else:
        console.print(result.summary(), markup=False, highlight=False)


@estimate_app.command("iv")
def estimate_iv(
    formula: str = typer.Option(..., "--formula", help='fixest syntax, e.g. "y ~ x | unit + year | d ~ z1 + z2"'),
    data: Optional[str] = DataOption,
    vcov: Optional[str] = VcovOption,
    weights: Optional[str] = WeightsOption,
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """Two-stage least squares with absorbed fixed effects: second stage, each first stage, and
    the identification statistics of ivreg2 (Kleibergen-Paap rk LM and Wald F, Cragg-Donald F,
    Stock-Yogo, Hansen J / Sargan)."""
    from estimation.engine.iv import feiv, parse_iv_formula

    try:
        spec_f = parse_iv_formula(formula)
    except ValueError as exc:
        _fail(f"--formula: {exc}")
    spec = _vcov(vcov, spec_f.main.fe)
    if data is None:
        _fail("--data is required: a warehouse table, a .csv/.parquet file or a SELECT")
    columns = [spec_f.main.y, *spec_f.main.x, *spec_f.main.fe, *spec_f.endogenous, *spec_f.instruments]
    with _open_data(data, home) as (con, relation):
        _require_columns(con, relation, [*columns, *_vcov_columns(spec), weights])
        result = _run(lambda: feiv(con, relation, formula, vcov=spec, weights=weights))
    payload = {"terms": _records(result.tidy()), "model": model_facts(result),
               "first_stages": [_clean_tree(f.to_dict()) for f in result.first_stages],
               "diagnostics": _clean_tree(result.diagnostics)}
    if fmt == "json":
        _emit_json(payload)
        return
    console.print(result.summary(), markup=False, highlight=False)
    for first in result.first_stages:
        console.print(f"first stage of {first.endogenous}: F = {first.f:.2f} (df {first.f_df[0]}, {first.f_df[1]}; "
                      f"p = {first.f_p:.3g}), partial R2 = {first.partial_r2:.4f}, "
                      f"effective F (Montiel Olea-Pflueger) = {first.effective_f:.2f}", markup=False)
    console.print(iv_diagnostics_text(result.diagnostics), markup=False, highlight=False)


def iv_diagnostics_text(diag: dict) -> str:
    """The identification block as ivreg2 prints it, in words."""
    lines = []
    if "kp_rk_lm" in diag:
        lm = diag["kp_rk_lm"]
        lines.append(f"Underidentification (Kleibergen-Paap rk LM): chi2({lm['df']}) = {lm['statistic']:.3f}, "
                     f"p = {lm['p']:.4g}")
        lines.append(f"Weak identification (Kleibergen-Paap rk Wald F): {diag['kp_rk_wald_f']:.3f}")
    else:
        lm = diag["anderson_lm"]
        lines.append(f"Underidentification (Anderson canon. corr. LM): chi2({lm['df']}) = {lm['statistic']:.3f}, "
                     f"p = {lm['p']:.4g}")
    lines.append(f"Weak identification (Cragg-Donald Wald F): {diag['cragg_donald_f']:.3f}")
    if diag.get("stock_yogo_10pct") is not None:
        lines.append(f"Stock-Yogo critical value, 10% maximal IV size: {diag['stock_yogo_10pct']:.2f}")
    for key, label in (("hansen_j", "Hansen J"), ("sargan", "Sargan")):
        if key in diag:
            t = diag[key]
            lines.append(f"Overidentification ({label}): chi2({t['df']}) = {t['statistic']:.3f}, p = {t['p']:.4g}")
    return "\n".join(lines)


def _clean_tree(value):
    if isinstance(value, dict):
        return {k: _clean_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_tree(v) for v in value]
    return _clean(value)


def _cohort_relation(relation: str, cohort: str, time: str, name: str) -> str:
    """The data with a 0/1 post indicator ``name`` built from an adoption-period column."""
    from estimation.engine.sqlutil import quote_ident

    g, t = quote_ident(cohort), quote_ident(time)
    base = f"({relation})" if _SELECT.match(relation) else relation
    return (f"SELECT *, CAST(coalesce({g}, 0) > 0 AND {t} >= {g} AS INTEGER) AS {quote_ident(name)} "
            f"FROM {base}")


@estimate_app.command("event-study")
def estimate_event_study(
    data: Optional[str] = DataOption,
    outcome: Optional[str] = typer.Option(None, "--outcome"),
    treatment: Optional[str] = typer.Option(None, "--treatment", help="0/1 post indicator; adoption = first "
                                            "period with 1"),
    cohort: Optional[str] = typer.Option(None, "--cohort", help="each unit's adoption period (0 or empty: never "
                                         "treated), instead of --treatment"),
    unit: Optional[str] = typer.Option(None, "--unit"),
    time: Optional[str] = typer.Option(None, "--time"),
    leads: Optional[int] = typer.Option(None, "--leads", help="default: every lead observed"),
    lags: Optional[int] = typer.Option(None, "--lags", help="default: every lag observed"),
    base: Optional[int] = typer.Option(None, "--base", help="reference event time (default -1)"),
    controls: Optional[str] = typer.Option(None, "--controls", help="comma-separated"),
    weights: Optional[str] = WeightsOption,
    cluster: Optional[str] = typer.Option(None, "--cluster", help="default: the unit"),
    no_bin: bool = typer.Option(False, "--no-bin", help="do not bin the end points"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write the parallel-trends figure (PNG)"),
    study: Optional[str] = StudyOption,
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """Leads and lags around adoption, the joint pre-trend test and the figure."""
    from estimation.engine.event_study import run_event_study

    sd = _study(study)
    data = _pick(data, sd, "data", "--data")
    outcome = _pick(outcome, sd, "outcome", "--outcome")
    unit, time = _pick(unit, sd, "unit", "--unit"), _pick(time, sd, "time", "--time")
    if treatment is not None and cohort is not None:
        _fail("give either --treatment or --cohort, not both")
    if cohort is None:
        treatment = _pick(treatment, sd, "treatment", "--treatment or --cohort")
    ctrl = _split(controls) if controls is not None else list(sd.controls if sd else [])
    if sd is not None:
        leads = sd.leads if leads is None else leads
        lags = sd.lags if lags is None else lags
        base = sd.base if base is None else base
    base = -1 if base is None else base
    with _open_data(data, home) as (con, relation):
        _require_columns(con, relation, [outcome, unit, time, treatment, cohort, *ctrl, weights, cluster])
        es = _run(lambda: run_event_study(con, relation, outcome, leads, lags, base, ctrl, not no_bin,
                                          treatment=treatment, cohort=cohort, unit=unit, time=time,
                                          cluster=cluster, weights=weights))
    if plot:
        es.plot(plot)
    if fmt == "json":
        pt = es.pretrend
        _emit_json({
            "event_times": _records(es.tidy()), "terms": _records(es.model.tidy()),
            "window": {"leads": es.leads, "lags": es.lags, "base": es.base, "binned": es.bin_endpoints},
            "pretrend": None if pt is None else {k: _clean(v) for k, v in
                                                 {"F": pt.f, "df1": pt.df1, "df2": pt.df2, "p": pt.p_f,
                                                  "wald": pt.wald, "p_chi2": pt.p_chi2}.items()},
            "model": model_facts(es.model), "plot": str(plot) if plot else None,
        })
    else:
        console.print(es.table("text"), markup=False, highlight=False)
        if plot:
            console.print(f"figure: {plot}")


AssignmentsOption = typer.Option(
    None, "--assignments", help="a .csv/.parquet file with columns draw, <unit>, adoption (the unit's adoption "
    "period in that draw, 0 or empty = untreated), one row per draw and unit: these draws exactly "
    "(--draws, --seed, --permute, --strata and --n-pseudo-treated are then ignored)")
SaveAssignmentsOption = typer.Option(
    None, "--save-assignments", help="write the draws' assignments (draw, <unit>, adoption; every unit of every "
    "draw) to a .csv/.parquet file that --assignments reads back")


@estimate_app.command("placebo")
def estimate_placebo(
    formula: Optional[str] = typer.Option(None, "--formula", help='e.g. "y ~ d + x1 | unit + year" '
                                          "(default with --study: the study's model)"),
    data: Optional[str] = DataOption,
    treatment: Optional[str] = typer.Option(None, "--treatment", help="the 0/1 post indicator in the formula"),
    cohort: Optional[str] = typer.Option(None, "--cohort", help="build the --treatment column from each unit's "
                                         "adoption period (0 or empty: never treated)"),
    unit: Optional[str] = typer.Option(None, "--unit"),
    time: Optional[str] = typer.Option(None, "--time"),
    draws: int = typer.Option(500, "--draws"),
    seed: int = typer.Option(20240601, "--seed"),
    strata: Optional[str] = typer.Option(None, "--strata", help="permute within this unit-level column"),
    n_pseudo: Optional[int] = typer.Option(None, "--n-pseudo-treated"),
    permute: str = typer.Option("adoption", "--permute", help="adoption | units"),
    vcov: Optional[str] = typer.Option(None, "--vcov", help="iid | CRV1:<col> (default CRV1:<unit>)"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write the placebo figure (PNG)"),
    assignments: Path | None = AssignmentsOption,
    save_assignments: Path | None = SaveAssignmentsOption,
    study: Optional[str] = StudyOption,
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """Randomisation inference: all placebo draws in one DuckDB query."""
    from estimation.engine.placebo import AssignmentError, run_placebo

    sd = _study(study)
    data = _pick(data, sd, "data", "--data")
    unit, time = _pick(unit, sd, "unit", "--unit"), _pick(time, sd, "time", "--time")
    if save_assignments is not None and save_assignments.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"--save-assignments {save_assignments}: expected a file name ending in .csv or .parquet")
    given = _read_assignments(assignments, unit) if assignments is not None else None
    treatment = _pick(treatment, sd, "treatment", "--treatment")
    if formula is None:
        if sd is None:
            _fail("--formula is required (or name a study with --study resilience|nqp)")
        formula = f"{sd.outcome} ~ {' + '.join((treatment, *sd.controls))} | {unit} + {time}"
    spec = _vcov(vcov, [unit])
    with _open_data(data, home) as (con, relation):
        if cohort is not None:
            _require_columns(con, relation, [cohort, time])
            relation = _cohort_relation(relation, cohort, time, treatment)
        _require_columns(con, relation, [*_formula_columns(formula), treatment, unit, time, strata,
                                         *_vcov_columns(spec)])

        def placebo():
            try:
                return run_placebo(con, relation, formula, treatment, unit, time, draws, seed, strata, n_pseudo,
                                   permute, vcov=spec, assignments=given)
            except AssignmentError as exc:  # worded with the file's own line/row numbers
                _fail(exc.describe(f"--assignments {assignments}", _file_row(assignments)))

        pl = _run(placebo)
    if plot:
        pl.plot(plot)
    if save_assignments is not None:
        _write_assignments(pl.assignment_table(), save_assignments)
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
        if assignments is not None:
            console.print(f"draws: as given in {assignments} ({pl.n_staggered_draws} staggered)", markup=False,
                          highlight=False)
        if save_assignments is not None:
            console.print(f"assignments: {save_assignments}", markup=False, highlight=False)


def _file_row(path: Path):
    """The wording of a row of an assignments file read by :func:`_read_assignments` (RangeIndex).

    CSV: the line of the file (the header is line 1); Parquet: the 1-based row.
    """
    if path.suffix.lower() == ".csv":
        return lambda i: f"line {int(i) + 2}"
    return lambda i: f"row {int(i) + 1}"


def _read_assignments(path: Path, unit: str):
    """The --assignments file as a DataFrame, its rows in file order; a file that cannot be read is refused."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        _fail(f"--assignments {path}: expected a .csv or .parquet file with columns draw, {unit}, adoption")
    if not path.exists():
        _fail(f"--assignments {path}: no such file")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any parser error is the file's problem, said in one line
        _fail(f"--assignments {path}: cannot be read as {suffix[1:]} ({str(exc).splitlines()[0] if str(exc) else exc})")
    missing = [c for c in dict.fromkeys(("draw", unit, "adoption")) if c not in frame.columns]
    if missing:
        _fail(f"--assignments {path}: no column {', '.join(map(repr, missing))}; expected the columns draw, {unit} "
              f"and adoption (found: {', '.join(map(str, frame.columns))})")
    if frame.empty:
        _fail(f"--assignments {path}: no rows; expected one row per draw and unit")
    return frame.reset_index(drop=True)


def _write_assignments(table, path: Path) -> None:
    if path.suffix.lower() == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
