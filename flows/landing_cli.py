"""`cityres landing status|withdraw` and `cityres mappings check`: the delivery lifecycle and the
user's mappings, seen before anything is loaded (docs/deliveries.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.cli_common import HomeOption, check_config_or_exit, resolve_home
from warehouse.paths import Home

console = Console(soft_wrap=True)
landing_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="The delivered files: what is in force, and taking one out of force.")
mappings_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="The user's header, unit and city mappings ($CITYRES_HOME/mappings).")

CITY_SOURCES = ("city_yearbook", "patents", "historical", "digital_finance")
SEEN = ("failed", "refused")  # refusals a refresh does not repeat until the file or its configuration changes


def _config_or_exit(home: Home):
    from warehouse.deliveries import DeliveryConfig

    check_config_or_exit(home)
    return DeliveryConfig.for_home(home)


def _status_rows(home: Home) -> list[dict]:
    """One row per landing file and per file ever in force: what it is and what happens next
    (as `cityres refresh` would decide: a refused file or refresh is not retried until something
    changes)."""
    import duckdb

    from warehouse.connections import connect_memory, connect_read_only
    from warehouse.deliveries import in_force, latest_rows, plan_for_home

    _config_or_exit(home)
    con = connect_read_only(home.warehouse_db) if home.warehouse_db.exists() else connect_memory()
    with con:
        plan = plan_for_home(home, con, seen_statuses=SEEN)
        current = in_force(con)
        latest = latest_rows(con, "loaded", "withdrawn", *SEEN)
        try:
            details = {(r[0], r[1]): r[2:] for r in con.execute(
                "select load_id, file_name, loaded_at, years, error from raw.load_manifest").fetchall()}
        except duckdb.Error:
            details = {}
    pending = {item.path.relative_to(home.landing).as_posix(): why for item, why in plan.load}
    delivered = {item.path.relative_to(home.landing).as_posix(): item.sha256 for item in plan.skip}
    withdrawing = {row.file_name for row in plan.withdraw}
    rows = []
    for path in sorted(set(pending) | set(delivered) | set(current)
                       | {p for p, r in latest.items() if r.status == "withdrawn"}):
        force, last = current.get(path), latest.get(path)
        shown = force or last
        loaded_at, years, _ = details.get((shown.load_id, path), (None, None, None)) if shown else (None,) * 3
        if path in pending:
            state = f"pending: {pending[path]}" + (" (replaces the version in force)" if force else "")
        elif path in withdrawing:
            state = "pending: withdrawal (no longer in the landing folder)"
        elif last and last.status in SEEN and (last is not force):
            error = details.get((last.load_id, path), (None, None, None))[2] or ""
            state = f"{last.status}: {error}" + (f" - the version loaded in {force.load_id} stays in force"
                                                 if force else "")
            shown = last
        elif force:
            state = "in force"
        elif last and last.status == "withdrawn":
            state = "withdrawn"
        else:
            state = "not loaded"
        rows.append({"file": path, "state": state, "load": shown.load_id if shown else None,
                     "loaded_at": str(loaded_at)[:19] if loaded_at else None,
                     "years": ", ".join(str(y) for y in years) if years else None})
    return rows


@landing_app.command("status")
def landing_status(home: Optional[Path] = HomeOption,
                   json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table")) -> None:
    """Each delivered file: in force, pending (new, changed, re-read, withdrawal), refused or withdrawn."""
    h = resolve_home(home)
    rows = _status_rows(h)
    if json_out:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("file", "state", "load", "loaded at", "years")
    for row in rows:
        colour = {"in force": "green", "withdrawn": "dim"}.get(row["state"],
                                                             "yellow" if row["state"].startswith("pending") else "red")
        table.add_row(escape(row["file"]), f"[{colour}]{escape(row['state'])}[/]", row["load"] or "",
                      row["loaded_at"] or "", row["years"] or "")
    console.print(table)
    if any(r["state"].startswith("pending") for r in rows):
        console.print("run [bold]cityres refresh[/bold] to apply the pending changes")


@landing_app.command("withdraw")
def landing_withdraw(file: str = typer.Argument(..., help="The landing path, e.g. city_yearbook/2023.csv"),
                     home: Optional[Path] = HomeOption) -> None:
    """Take a delivered file out of force: it leaves the landing folder (its archived copy stays)
    and the next refresh withdraws its rows."""
    from warehouse.connections import connect_read_only
    from warehouse.deliveries import in_force
    from warehouse.landing import sha256_of

    h = resolve_home(home)
    path = Path(file)
    path = path if path.is_absolute() else h.landing / path
    try:
        name = path.resolve().relative_to(h.landing.resolve()).as_posix()
    except ValueError:
        console.print(f"[red]✗[/red] {escape(file)} is not in the landing folder {h.landing}")
        raise typer.Exit(2)
    if not path.is_file():
        console.print(f"[red]✗[/red] {escape(name)}: no such file in the landing folder {h.landing}")
        raise typer.Exit(2)
    force = None
    if h.warehouse_db.exists():
        with connect_read_only(h.warehouse_db) as con:
            force = in_force(con).get(name)
    if force is None:
        console.print(f"[red]✗[/red] {escape(name)} is not in force (never loaded, or refused), so there is nothing "
                      "to withdraw; it has no archived copy, so cityres does not delete it - remove it yourself")
        raise typer.Exit(1)
    if sha256_of(path) != force.sha256:
        console.print(f"[red]✗[/red] {escape(name)} is not the version in force: it was delivered after the last "
                      "refresh and has no archived copy, so cityres does not delete it. Run cityres refresh to load "
                      "it (then withdraw it), or remove it yourself")
        raise typer.Exit(1)
    archived = h.archive / force.source / force.sha256[:16] / path.name
    if not archived.is_file() or sha256_of(archived) != force.sha256:
        console.print(f"[red]✗[/red] {escape(name)}: the archived copy of the version in force is missing or "
                      "damaged; the landing file is kept (run cityres refresh to archive it again)")
        raise typer.Exit(1)
    path.unlink()
    console.print(f"{escape(name)} left the landing folder (archived copy: {archived.relative_to(h.root)}); "
                  "run [bold]cityres refresh[/bold] to take its rows out of force")


@mappings_app.command("check")
def mappings_check(files: list[Path] = typer.Argument(None, help="Delivered files to check (default: the "
                                                                  "landing folder's city tables)"),
                   home: Optional[Path] = HomeOption) -> None:
    """Check the mapping files, and show what each header of each delivery maps to - before loading."""
    from warehouse.ingest import SOURCES, year_of
    from warehouse.layouts import LayoutError, describe_table
    from warehouse.readers import UnreadableFile, read_rows

    h = resolve_home(home)
    config = _config_or_exit(h)
    console.print("[green]✓[/green] mapping files and cityres.toml: no problems")
    if not files:
        from warehouse.landing import landing_files

        files = [path for source, path in landing_files(h.landing) if source in CITY_SOURCES]
    problems = 0
    for path in files:
        path = path.resolve()
        try:
            name = path.relative_to(h.landing.resolve()).as_posix()
        except ValueError:  # a file outside the landing folder: read as if delivered to its folder's source
            name = f"{path.parent.name}/{path.name}" if path.parent.name in SOURCES else f"city_yearbook/{path.name}"
        source = name.split("/")[0]
        if source not in CITY_SOURCES:
            console.print(f"- {escape(name)}: a {source} file, read by fixed columns - no headers to map")
            continue
        profile = config.profile(name)
        try:
            rows, _ = read_rows(path, name)
            description = describe_table(rows, name, source, year_of(name), profile, config.mappings)
        except (LayoutError, UnreadableFile) as exc:
            console.print(f"[red]✗[/red] {escape(str(exc))}")
            problems += 1
            continue
        console.print(f"\n[bold]{escape(name)}[/bold] ({source}; {description.layout}; header row "
                      f"{description.header_row}; year: {escape(description.year)}; profile: {escape(profile.origin)})")
        for hdr in description.headers:
            m = hdr.match
            where = f"  column {hdr.column:>3}  {escape(hdr.header)}"
            if m.error:
                problems += 1
                console.print(f"[red]✗[/red]{where}: {escape(m.error)}", highlight=False)
            elif m.ignored:
                console.print(f"[dim]-[/dim]{where} → ignored ({escape(m.origin or '')})", highlight=False)
            else:
                scope = f", {hdr.scope}" + ("" if hdr.scope == profile.scope else " - not used") if hdr.scope else ""
                factor = "" if m.factor == 1 else f" × {m.factor:g}"
                console.print(f"[green]✓[/green]{where} → {m.variable} ({m.unit} → {m.canonical_unit}{factor}{scope}; "
                              f"{escape(m.origin or '')})", highlight=False)
    if problems:
        console.print(f"[red]{problems} problem(s)[/red]: these files would be refused at ingest")
        raise typer.Exit(1)
