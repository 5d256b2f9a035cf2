"""`cityres index entropy`: the warehouse's entropy-weight method on a table of one's own."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from flows.cli_common import HomeOption
from flows.estimate_cli import _SELECT, DataOption, _fail, _open_data, _records, _require_columns

console = Console(soft_wrap=True)
index_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Composite indices on any table, with the warehouse's own SQL.")
JsonCsvOption = typer.Option("json", "--format", help="json | csv")


def _compute(data: Optional[str], home: Optional[Path], columns: list, compute):
    """Open --data (sandboxed), check its columns, run ``compute(con, source)``; refusals in words."""
    if data is None:
        _fail("--data is required: a warehouse table, a .csv/.parquet file or a SELECT")
    with _open_data(data, home) as (con, relation):
        _require_columns(con, relation, columns)
        source = f"({relation})" if _SELECT.match(relation) else relation
        try:
            return compute(con, source)
        except ValueError as exc:
            _fail(str(exc))


@index_app.command("entropy")
def index_entropy(
    data: str = DataOption,
    id_col: str = typer.Option(..., "--id", help="the unit column (e.g. city_code)"),
    time_col: str = typer.Option(..., "--time", help="the period column (e.g. year)"),
    indicators: str = typer.Option(..., "--indicators", help='e.g. "gdp+,pollution-": + more is better, - less'),
    scope: str = typer.Option("panel", "--scope", help="panel (one set of weights) | year (one set per period)"),
    shift: float = typer.Option(0.0, "--shift", help="added to every normalised value (e.g. 1e-4); default none"),
    dimensions: Optional[str] = typer.Option(None, "--dimensions", help='e.g. "econ:gdp,income;env:pollution"'),
    fmt: str = JsonCsvOption,
    out: Optional[Path] = typer.Option(None, "--out", help="with csv: write weights.csv and scores.csv here"),
    home: Optional[Path] = HomeOption,
) -> None:
    """Entropy weights (indicator, weight, entropy) and scores (id, time, score, dimension scores)."""
    from warehouse.index_tools import entropy_index, parse_indicators

    try:
        spec = parse_indicators(indicators, dimensions)
    except ValueError as exc:
        _fail(str(exc))
    weights, scores = _compute(data, home, [id_col, time_col, *(i.name for i in spec)],
                               lambda con, source: entropy_index(con, source, id_col, time_col, spec, scope=scope,
                                                                 shift=shift))
    if fmt == "csv":
        if out is None:
            _fail("--format csv needs --out FOLDER (weights.csv and scores.csv)")
        out.mkdir(parents=True, exist_ok=True)
        weights.to_csv(out / "weights.csv", index=False)
        scores.to_csv(out / "scores.csv", index=False)
        console.print(f"weights: {out / 'weights.csv'}; scores: {out / 'scores.csv'}")
        return
    payload = {"weights": _records(weights), "scores": _records(scores)}
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")


@index_app.command("martin-sunley")
def index_martin_sunley(
    data: str = DataOption,
    unit: str = typer.Option(..., "--unit", help="the unit column"),
    time: str = typer.Option(..., "--time", help="the period column"),
    value: str = typer.Option(..., "--value", help="the level whose growth is compared (e.g. gdp)"),
    weight: Optional[str] = typer.Option(None, "--weight", help="weights of the 'weighted' benchmark"),
    benchmark: str = typer.Option("mean_growth", "--benchmark", help="mean_growth | weighted | mean_level"),
    fmt: str = JsonCsvOption,
    out: Optional[Path] = typer.Option(None, "--out", help="with csv: the file to write"),
    home: Optional[Path] = HomeOption,
) -> None:
    """Martin-Sunley sensitivity R_it = (g_it - g_Nt)/|g_Nt| with the benchmark from the panel itself."""
    from warehouse.index_tools import martin_sunley

    frame = _compute(data, home, [unit, time, value, weight],
                     lambda con, source: martin_sunley(con, source, unit, time, value, weight, benchmark))
    if fmt == "csv":
        if out is None:
            _fail("--format csv needs --out FILE")
        frame.to_csv(out, index=False)
        console.print(f"written: {out}")
        return
    sys.stdout.write(json.dumps({"rows": _records(frame)}, ensure_ascii=False) + "\n")
