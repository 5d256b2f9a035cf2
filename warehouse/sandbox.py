"""The only kind of connection users' SQL runs on: read-only and sandboxed.

`cityres query`, `cityres sql`, `cityres estimate --data "SELECT …"` and the Python API
(:func:`warehouse.connect`) open the published warehouse with

* ``read_only`` - no write to the warehouse file;
* ``enable_external_access = false`` - no COPY … TO, EXPORT DATABASE, ATTACH, read_csv /
  read_text / glob of any path, INSTALL / LOAD;
* a ``memory_limit`` and no spilling to disk (``max_temp_directory_size = 0``), so a runaway
  join fails instead of exhausting the machine;
* ``lock_configuration = true`` - none of the above can be SET back by the query;
* one statement per call, of a reading kind (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE,
  EXPLAIN, PRAGMA), and a time limit after which the statement is interrupted.

Temporary tables and views still work (the estimation engine needs them); they live in memory
and vanish with the connection.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from warehouse.connections import duckdb_config
from warehouse.settings import QuerySettings

READING = {"SELECT", "EXPLAIN", "PRAGMA"}


class QueryRefused(ValueError):
    """A statement the sandbox does not run, or one that failed; the message says why in words."""


def connect_sandboxed(path: Path, settings: QuerySettings | None = None) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-only with external access off, limits set and the configuration locked."""
    settings = settings or QuerySettings()
    config = duckdb_config(
        memory_limit=settings.memory_limit,
        max_temp_directory_size="0B",
        enable_external_access="false",
        autoinstall_known_extensions="false",
        autoload_known_extensions="false",
        lock_configuration="true",
    )
    return duckdb.connect(str(path), read_only=True, config=config)


def single_statement(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The one reading statement of ``sql``; several statements or a writing one are refused."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(explain_error(con, exc)) from None
    if len(statements) != 1:
        raise QueryRefused(f"one statement at a time, please: found {len(statements)} "
                           "(separate queries are separate calls)")
    kind = statements[0].type.name
    if kind not in READING:
        hint = (" (to save a result, use --format csv|json|parquet --out FILE)" if kind in ("COPY", "EXPORT")
                else "")
        raise QueryRefused(f"{kind} statements are not allowed: queries read the published warehouse and "
                           f"change nothing{hint}")
    return sql


def published_relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select case when schema_name = 'main' then table_name else schema_name || '.' || table_name end "
        "from duckdb_tables() where database_name = current_database() and not temporary "
        "union select case when schema_name = 'main' then view_name else schema_name || '.' || view_name end "
        "from duckdb_views() where database_name = current_database() and not internal and not temporary "
        "order by 1").fetchall()
    return [r[0] for r in rows]


def explain_error(con: duckdb.DuckDBPyConnection, exc: Exception) -> str:
    """DuckDB's message, plus the published relations when a table was not found."""
    text = str(exc).strip()
    if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
        names = [n for n in published_relations(con) if not n.startswith(("staging.", "intermediate."))]
        text += "\nPublished relations: " + ", ".join(names)
    if "Permission Error" in text or "external access" in text.lower():
        text += "\n(the query sandbox has no access to files or other databases)"
    return text


@contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[None]:
    """Interrupt the connection's running statement after ``seconds``."""
    fired = threading.Event()

    def interrupt():
        fired.set()
        con.interrupt()

    timer = threading.Timer(seconds, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.Error:
        if fired.is_set():
            raise QueryRefused(f"the statement was stopped after {seconds:g} s ([query] timeout_seconds "
                               "in cityres.toml)") from None
        raise
    finally:
        timer.cancel()


def run_query(con: duckdb.DuckDBPyConnection, sql: str, timeout_seconds: float):
    """Execute one reading statement under the time limit; return the DuckDB result (a relation
    whose rows are fetched by the caller, still under the connection's memory limit)."""
    single_statement(con, sql)
    with time_limit(con, timeout_seconds):
        try:
            return con.execute(sql)
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.InterruptException):
                raise
            raise QueryRefused(explain_error(con, exc)) from None


@contextmanager
def streamed(con: duckdb.DuckDBPyConnection, sql: str, timeout_seconds: float, batch_rows: int = 50_000):
    """Yield a pyarrow RecordBatchReader over one reading statement, under the time limit.

    The rows are produced batch by batch while the caller reads them (large exports never sit
    in memory whole); errors while reading say why in words.
    """
    single_statement(con, sql)
    with time_limit(con, timeout_seconds):
        try:
            relation = con.sql(sql)
            if relation is None:  # a statement without a result (e.g. some PRAGMAs)
                relation = con.sql("select 'ok' as result")
            yield relation.to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.InterruptException):
                raise
            raise QueryRefused(explain_error(con, exc)) from None
