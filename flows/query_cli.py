"""`cityres query` and `cityres sql`: users' SQL on the published warehouse, sandboxed.

Output: ``table`` (values never cut: wrapped on a terminal, plain aligned text otherwise, at
most [query] max_rows rows with a note), ``csv``, ``json`` (a list of records; floats exact:
the shortest text that reads back to the same double) and ``parquet`` (needs --out). Results
are streamed in batches, so a large CSV/JSON/Parquet export never sits in memory whole.
"""
from __future__ import annotations

import json
import math
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from flows.cli_common import HomeOption, resolve_home

err = Console(stderr=True, soft_wrap=True)
FORMATS = ("table", "csv", "json", "parquet")
BATCH_ROWS = 50_000


def _fail(message: str, code: int = 2):
    for i, line in enumerate(message.splitlines()):
        err.print(("[red]error:[/] " if i == 0 else "       ") + line.replace("[", "\\["), highlight=False)
    raise typer.Exit(code)


def _json_value(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def _plain_table(columns: list[str], rows: list[tuple]) -> str:
    """Aligned text without box drawing, every value in full (numbers right-aligned)."""
    cells = [[_text(v) for v in row] for row in rows]
    numeric = [all(isinstance(r[j], (int, float, Decimal)) or r[j] is None for r in rows) and rows != []
               for j in range(len(columns))]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]
    def line(values):
        return "  ".join(v.rjust(w) if numeric[j] else v.ljust(w) for j, (v, w) in enumerate(zip(values, widths))).rstrip()
    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _rich_table(columns: list[str], rows: list[tuple]):
    from rich.table import Table

    table = Table(show_lines=False)
    for j, c in enumerate(columns):
        numeric = rows != [] and all(isinstance(r[j], (int, float, Decimal)) or r[j] is None for r in rows)
        table.add_column(c, justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        table.add_row(*[_text(v) for v in r])
    return table


def _write_stream(reader, fmt: str, out: Optional[Path]) -> int:
    """Stream record batches as CSV / JSON / Parquet to ``out`` (or stdout); return the rows written."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    n = 0
    if fmt == "parquet":
        with pq.ParquetWriter(str(out), reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                n += batch.num_rows
        return n
    sink = open(out, "w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        if fmt == "csv":
            header = True
            for batch in reader:
                buf = pa.BufferOutputStream()
                pacsv.write_csv(pa.Table.from_batches([batch], reader.schema), buf,
                                pacsv.WriteOptions(include_header=header))
                sink.write(buf.getvalue().to_pybytes().decode("utf-8"))
                header = False
                n += batch.num_rows
            if header:  # no rows: the header alone
                sink.write(",".join(f'"{c}"' for c in reader.schema.names) + "\n")
        else:
            sink.write("[")
            for batch in reader:
                for rec in batch.to_pylist():
                    sink.write(("," if n else "") + "\n" + json.dumps({k: _json_value(v) for k, v in rec.items()},
                                                                       ensure_ascii=False))
                    n += 1
            sink.write("\n]\n")
    finally:
        if out:
            sink.close()
    return n


def query(
    sql: str = typer.Argument(..., help="one SQL statement to run against the published warehouse (read-only)"),
    home: Optional[Path] = HomeOption,
    fmt: str = typer.Option("table", "--format", help="table | csv | json | parquet"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the result to this file (csv, json, parquet)"),
) -> None:
    """Run SQL on the published warehouse: read-only and sandboxed (no files, no settings)."""
    import duckdb

    from warehouse.provenance import is_synthetic
    from warehouse.sandbox import QueryRefused, connect_sandboxed, run_query, streamed
    from warehouse.settings import ConfigError, load_query_settings

    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    h = resolve_home(home)
    if not h.warehouse_db.exists():
        _fail(f"no published warehouse at {h.warehouse_db}; run `cityres refresh` first")
    try:
        settings = load_query_settings(h)
    except ConfigError as exc:
        _fail("\n".join(exc.problems))
    with connect_sandboxed(h.warehouse_db, settings) as con:
        synthetic = is_synthetic(con)
        try:
            if fmt == "table":
                result = run_query(con, sql, settings.timeout_seconds)
                columns = [d[0] for d in result.description]
                rows = result.fetchmany(settings.max_rows + 1)
                more = len(rows) > settings.max_rows
                rows = rows[: settings.max_rows]
                if out is not None:
                    out.write_text(_plain_table(columns, rows) + "\n", encoding="utf-8")
                elif sys.stdout.isatty():
                    Console().print(_rich_table(columns, rows))
                else:
                    sys.stdout.write(_plain_table(columns, rows) + "\n")
                if more:
                    err.print(f"(first {settings.max_rows:,} rows shown; use --format csv|json|parquet "
                              "--out FILE for all)")
            else:
                if fmt == "parquet" and out is None:
                    _fail("--format parquet needs --out FILE")
                with streamed(con, sql, settings.timeout_seconds, BATCH_ROWS) as reader:
                    n = _write_stream(reader, fmt, out)
                if out is not None:
                    err.print(f"{n:,} rows written to {out}")
        except QueryRefused as exc:
            _fail(str(exc))
        except duckdb.Error as exc:  # raised while fetching (e.g. the memory limit)
            _fail(str(exc).strip() + "\n(the query sandbox limits memory to [query] memory_limit in cityres.toml)"
                  if "memory" in str(exc).lower() else str(exc).strip())
    if synthetic:
        err.print("[yellow](synthetic sample data)[/]")


def sql_shell(home: Optional[Path] = HomeOption) -> None:
    """An interactive SQL shell on the published warehouse (same sandbox as `cityres query`)."""
    import readline  # noqa: F401  (line editing and history for input())

    from warehouse.sandbox import QueryRefused, connect_sandboxed, published_relations, run_query
    from warehouse.settings import load_query_settings

    h = resolve_home(home)
    if not h.warehouse_db.exists():
        _fail(f"no published warehouse at {h.warehouse_db}; run `cityres refresh` first")
    history = h.root / ".sql_history"
    try:
        readline.read_history_file(history)
    except OSError:
        pass
    settings = load_query_settings(h)
    with connect_sandboxed(h.warehouse_db, settings) as con:
        print(f"cityres sql on {h.warehouse_db} (read-only). End a statement with ';'. "
              "\\d lists the relations, \\q quits.")
        buffer = ""
        while True:
            try:
                line = input("cityres> " if not buffer else "     ...> ")
            except (EOFError, KeyboardInterrupt):
                print()
                break
            stripped = line.strip()
            if not buffer and stripped in ("\\q", "quit", "exit"):
                break
            if not buffer and stripped == "\\d":
                print("\n".join(published_relations(con)))
                continue
            buffer += line + "\n"
            if not stripped.endswith(";"):
                continue
            statement, buffer = buffer.strip().rstrip(";"), ""
            try:
                result = run_query(con, statement, settings.timeout_seconds)
                columns = [d[0] for d in result.description]
                rows = result.fetchmany(settings.max_rows + 1)
                print(_plain_table(columns, rows[: settings.max_rows]))
                if len(rows) > settings.max_rows:
                    print(f"(first {settings.max_rows:,} rows)")
            except QueryRefused as exc:
                print(f"error: {exc}")
            except Exception as exc:  # noqa: BLE001 - a shell reports and goes on
                print(f"error: {str(exc).strip()}")
    try:
        readline.write_history_file(history)
    except OSError:
        pass
