"""`cityres report`: the path of a vintage's report (index.html), the latest by default."""
from __future__ import annotations

import re
import webbrowser
from pathlib import Path
from typing import Optional

import typer

from flows.cli_common import HomeOption, resolve_home
from warehouse.paths import Home

REPORT_PAGE = "index.html"
_LOAD_ID = re.compile(r"L(\d{8}T\d+Z)")


def _order(folder: Path) -> tuple:
    """Reports in the order they were written: the load id's timestamp (refresh, dry-…, validate-…)."""
    match = _LOAD_ID.search(folder.name)
    return (match.group(1) if match else "", (folder / REPORT_PAGE).stat().st_mtime, folder.name)


def report_pages(home: Home) -> list[Path]:
    """Every vintage's index.html, oldest first."""
    if not home.reports.is_dir():
        return []
    folders = [p.parent for p in home.reports.glob(f"*/{REPORT_PAGE}")]
    return [folder / REPORT_PAGE for folder in sorted(folders, key=_order)]


def find_report(home: Home, vintage: str | None = None) -> Path | None:
    if vintage is not None:
        page = home.reports / vintage / REPORT_PAGE
        return page if page.is_file() else None
    pages = report_pages(home)
    return pages[-1] if pages else None


def report_command(
    vintage: Optional[str] = typer.Option(None, "--vintage", help="A vintage (folder under reports/); default: the latest report"),
    open_: bool = typer.Option(False, "--open", help="Open the report in the default web browser"),
    home: Optional[Path] = HomeOption,
) -> None:
    """Print the path of a vintage's report (reports/<vintage>/index.html, self-contained, works offline)."""
    h = resolve_home(home)
    page = find_report(h, vintage)
    if page is None:
        known = [p.parent.name for p in report_pages(h)]
        what = f"no report for vintage {vintage}" if vintage else "no report yet"
        hint = f"; reports: {', '.join(known[-5:])}" if known and vintage else "; run `cityres refresh` first"
        typer.echo(f"{what} under {h.reports}{hint}", err=True)
        raise typer.Exit(2)
    typer.echo(str(page))
    if open_ and not webbrowser.open(page.resolve().as_uri()):
        typer.echo("no web browser could be opened; open the path above", err=True)
