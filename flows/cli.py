"""The `cityres` command line."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.cli_common import HomeOption, check_config_or_exit, resolve_home
from flows import did_cli  # noqa: F401  (registers `estimate did` on estimate_app)
from flows.estimate_cli import estimate_app
from flows.index_cli import index_app
from flows.landing_cli import landing_app, mappings_app
from flows.query_cli import query, sql_shell
from warehouse.paths import Home

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="cityres: a city-year panel warehouse with SQL-native econometrics.")
console = Console(soft_wrap=True)  # lines are never hard-wrapped: they get copied and grepped

def _print_frame(frame, title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column), justify="right" if frame[column].dtype.kind in "if" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*["" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row])
    console.print(table)


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="Folder to write the sample yearbooks into"),
    seed: int = typer.Option(20240601, "--seed", help="Random seed; the same seed gives byte-identical files"),
    start_year: int = typer.Option(2011, "--start-year"),
    end_year: int = typer.Option(2023, "--end-year"),
    firm_scale: float = typer.Option(1.0, "--firm-scale", help="Multiplies firm registrations (10 = millions)"),
    adoption: str = typer.Option("single", "--adoption",
                                 help="single: every pilot city from 2016; staggered: cohorts 2015, 2016 and 2017 "
                                      "with effects that differ by cohort"),
) -> None:
    """Write synthetic sample yearbooks (with a known ground truth) into OUT."""
    from warehouse.sample import write_sample
    from warehouse.sample.policy import ADOPTION_DESIGNS

    if adoption not in ADOPTION_DESIGNS:
        console.print(f"[red]--adoption must be one of {', '.join(ADOPTION_DESIGNS)}; got {adoption!r}[/red]")
        raise typer.Exit(2)
    summary = write_sample(out, seed=seed, start_year=start_year, end_year=end_year, firm_scale=firm_scale,
                           adoption=adoption)
    console.print(f"[bold]SYNTHETIC[/bold] sample written to {out} "
                  f"({len(summary['files'])} files, {summary['seconds']:.1f} s); ground truth: {summary['ground_truth']}")
    if adoption == "staggered":
        console.print('staggered adoption: load it with [dbt_vars] adoption_dates = "staggered" in cityres.toml '
                      "(see README.txt in the sample folder)")


def _run_refresh(home: Home, retry_failed: bool = False) -> dict:
    """The refresh flow; decided "unchanged" without starting Prefect when nothing is new."""
    from warehouse.ingest import new_load_id
    from warehouse.status import landing_has_news, vintage_without_report

    if not landing_has_news(home, retry_failed) and vintage_without_report(home) is None:
        result = {"vintage": new_load_id(), "status": "unchanged", "reasons": ["no new files in the landing folder"],
                  "files_failed": [], "report": ""}
        home.reports.mkdir(parents=True, exist_ok=True)
        (home.reports / "last_refresh.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
        return result
    from flows.temporary_server import start_temporary_server

    server = start_temporary_server()  # comes up while Prefect and the flow are imported
    from flows.refresh import refresh as refresh_flow

    if server is None:
        return refresh_flow(home_dir=str(home.root), retry_failed=retry_failed)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.wait_ready()}):
        return refresh_flow(home_dir=str(home.root), retry_failed=retry_failed)


def _print_refresh(result: dict, label: str = "refresh ", colours: dict | None = None) -> None:
    colour = (colours or {"published": "green", "unchanged": "yellow", "busy": "yellow"}).get(result["status"], "red")
    console.print(f"{label}{result['vintage']}: [bold {colour}]{result['status']}[/]")
    for reason in result["reasons"]:  # escaped: dbt messages and file errors may hold [brackets]
        console.print(f"  - {escape(reason)}")
    for failed in result["files_failed"]:
        console.print(f"  [red]✗[/red] {escape(failed['error'])}")
    for check in result.get("expectations_failed", []):
        if check.get("severity") == "critical":
            console.print(f"  [red]✗[/red] {escape(check_in_words(check))}", highlight=False)


def _example_in_words(row: dict) -> str:
    """One example row of a failed check as a person would say where to look."""
    where = []
    if row.get("file_name"):
        where.append(str(row["file_name"]))
    if row.get("source_row") is not None:
        where.append(f"row {row['source_row']}")
    if row.get("source_col") is not None:
        where.append(f"column {row['source_col']}" + (f" ({row['header_text']})" if row.get("header_text") else ""))
    located = {"file_name", "source_row", "source_col", "header_text"}
    rest = [f"{k} {v!r}" if isinstance(v, str) else f"{k} {v}" for k, v in row.items()
            if k not in located and v is not None and v != ""]
    return ", ".join(where) + (": " if where and rest else "") + ", ".join(rest)


def check_in_words(check: dict) -> str:
    """A failed expectation in words: what was expected, how often it failed, the first example."""
    count = check.get("unexpected_count")
    total = check.get("element_count")
    head = f"{check.get('description', check.get('check'))}"
    if count is not None and total:
        head += f" - {count} of {total} rows do not"
    examples = check.get("example_rows") or []
    if examples:
        head += f"; e.g. {_example_in_words(examples[0])}"
    return head


@app.command()
def refresh(
    home: Optional[Path] = HomeOption,
    retry_failed: bool = typer.Option(False, "--retry-failed", help="load again files refused before, even "
                                      "if unchanged (a change of the file or of its mappings retries it anyway)"),
) -> None:
    """Load new landing files, rebuild, validate and publish (the Prefect refresh flow).

    Exit status: 0 published or unchanged, 1 refused, 2 bad configuration, 3 another refresh
    is running (waited [refresh] lock_wait_seconds).
    """
    h = resolve_home(home)
    check_config_or_exit(h)
    result = _run_refresh(h, retry_failed)
    _print_refresh(result)
    if result["report"]:
        console.print(f"report: {result['report']}")
    if result["status"] == "refused":
        raise typer.Exit(1)
    if result["status"] == "busy":
        raise typer.Exit(3)


@app.command()
def validate(
    home: Optional[Path] = HomeOption,
    landing: Optional[Path] = typer.Option(
        None, "--landing", help="Dry run: what would happen if the files of this folder (landing "
        "layout: <source>/<file>) were loaded. Without it: check the published warehouse."),
) -> None:
    """Run the data-quality suites on the published warehouse, or dry-run a landing folder.

    Never changes the published warehouse. Writes a report (and GX Data Docs) under
    reports/; exits 1 when a critical expectation fails (dry run: when the load would be refused).
    """
    h = resolve_home(home)
    check_config_or_exit(h)
    if landing is not None:
        if not landing.is_dir():
            console.print(f"[red]no folder {landing}[/]")
            raise typer.Exit(2)
        from flows.refresh import dry_run

        result = dry_run(h, landing)
    else:
        if not h.warehouse_db.exists():
            console.print(f"[red]no published warehouse at {h.warehouse_db}; run `cityres refresh` first[/]")
            raise typer.Exit(2)
        from flows.refresh import validate_published

        result = validate_published(h)
    _print_refresh(result, label="", colours={"would publish": "green", "passed": "green",
                                              "unchanged": "yellow"})
    failed = result["expectations_failed"]
    console.print(f"expectations: {result['expectations_passed']} passed, {len(failed)} failed")
    for check in failed:
        mark = "[red]✗[/red]" if check["severity"] == "critical" else "[yellow]![/yellow]"
        text = escape(f"[{check['severity']}] {check['check']} {check['relation']}: "
                      f"{check['description']} — {check['examples'][:160]}")
        console.print(f"  {mark} {text}", highlight=False)
    if result["report"]:
        console.print(f"report: {result['report']}")
    if result["status"] == "busy":
        raise typer.Exit(3)
    if result["status"] in ("failed", "would refuse"):
        raise typer.Exit(1)


@app.command()
def serve(
    home: Optional[Path] = HomeOption,
    cron: Optional[str] = typer.Option(None, "--cron", help='override schedule.cron of cityres.toml, e.g. "0 6 * * *"; "" for none'),
    port: Optional[int] = typer.Option(None, "--port", help="override server.port of cityres.toml"),
    poll_seconds: Optional[float] = typer.Option(None, "--poll-seconds", help="override watch.poll_seconds"),
    settle_seconds: Optional[float] = typer.Option(None, "--settle-seconds", help="override watch.settle_seconds"),
) -> None:
    """Serve scheduled and file-triggered refreshes (a local Prefect server on loopback). Ctrl-C stops."""
    from dataclasses import replace

    from flows.serve import serve as serve_refreshes
    from warehouse.settings import load_serve_settings

    h = resolve_home(home)
    check_config_or_exit(h)
    settings = load_serve_settings(h)
    overrides = {"cron": cron, "port": port, "poll_seconds": poll_seconds, "settle_seconds": settle_seconds}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    console.print(f"serving refreshes of {h.root}: schedule {settings.cron or '(none)'}, watching {h.landing} "
                  f"(poll {settings.poll_seconds:g} s, settle {settings.settle_seconds:g} s); Ctrl-C stops")
    try:
        serve_refreshes(h, settings)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print("stopped")


@app.command()
def demo(
    home: Optional[Path] = HomeOption,
    seed: int = typer.Option(20240601, "--seed"),
    firm_scale: float = typer.Option(1.0, "--firm-scale"),
) -> None:
    """Sample yearbooks → refresh → the top-10 resilient cities and the baseline DID table."""
    from warehouse.sample import write_sample

    h = resolve_home(home)
    check_config_or_exit(h)
    h.ensure()
    started = time.perf_counter()
    if not any(p for p in h.landing.rglob("*") if p.is_file()):
        summary = write_sample(h.landing, seed=seed, firm_scale=firm_scale)
        console.print(f"wrote the SYNTHETIC sample yearbooks to {h.landing} ({summary['seconds']:.1f} s)")
    else:
        console.print(f"landing folder {h.landing} already holds files; loading what is new")
    result = _run_refresh(h)
    _print_refresh(result)
    if result["status"] == "refused":
        console.print(f"report: {result['report']}")
        raise typer.Exit(1)
    _show_results(h)
    console.print(f"\nwarehouse: {h.warehouse_db}")
    last_report = result["report"] or _latest_report(h)
    console.print(f"report:    {last_report}")
    console.print(f"demo took {time.perf_counter() - started:.1f} s")


def _latest_report(h: Home) -> str:
    reports = sorted(h.reports.glob("*/report.md"))
    return str(reports[-1]) if reports else "(none)"


def _show_results(h: Home) -> None:

    from estimation.studies import resilience
    from estimation.studies.common import table3
    from warehouse.connections import connect_read_only
    from warehouse.provenance import SYNTHETIC_BANNER, is_synthetic
    from flows.report import top_cities

    with connect_read_only(h.warehouse_db) as con:
        synthetic = is_synthetic(con)
        if synthetic:
            console.print(f"\n[bold yellow]{SYNTHETIC_BANNER}[/]")
        top = top_cities(con)[["rank", "city_name", "city_name_en", "province_name", "year", "res"]]
        _print_frame(top, title="Ten most resilient cities, latest year (SQL on resilience_index)")
        specs, results = resilience.run_table3(con)
    console.print("\nBaseline DID — the resilience study's Table 3 (dependent variable: res)")
    console.print(table3(specs, results, "text"), markup=False, highlight=False)


app.command("query")(query)
app.command("sql")(sql_shell)
app.add_typer(estimate_app, name="estimate")
app.add_typer(landing_app, name="landing")
app.add_typer(mappings_app, name="mappings")
app.add_typer(index_app, name="index")
from flows.report.command import report_command  # noqa: E402  (`cityres report`: the path of a report)
app.command("report")(report_command)


if __name__ == "__main__":
    app()
