"""Small SQL helpers: identifier quoting, relation resolution, temp-table scope.

Everything that ends up as *text* in generated SQL passes through
:func:`quote_ident` (user column names) or is an internal name produced by
:class:`TempScope`.  Numbers never do: values computed in Python (means,
scales, coefficients) are bound as ``?`` parameters.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

_QUALIFIED_NAME = re.compile(
    r"^\s*(?:[A-Za-z_][A-Za-z0-9_$]*|\"(?:[^\"]|\"\")+\")"
    r"(?:\.(?:[A-Za-z_][A-Za-z0-9_$]*|\"(?:[^\"]|\"\")+\")){0,2}\s*$"
)

_QUERY_START = re.compile(r"^\s*(\(|select\b|with\b|from\b|values\b|table\b|pivot\b|unpivot\b)", re.I)


def quote_ident(name: str) -> str:
    """Quote a single SQL identifier (column name) for DuckDB."""
    if not isinstance(name, str) or name == "":
        raise ValueError(f"invalid column name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


class TempScope:
    """Hands out unique temp-table / view names and drops them on exit.

    One scope per estimation; names look like ``__cr_<hex>_<stage>``, so
    concurrent estimations on the same connection cannot collide.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, prefix: str = "__cr"):
        self.con = con
        self.tag = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._tables: list[str] = []
        self._views: list[str] = []
        self._registered: list[str] = []
        self._n = 0

    def name(self, stage: str) -> str:
        self._n += 1
        return f"{self.tag}_{stage}_{self._n}"

    def table(self, stage: str) -> str:
        """Reserve a temp table name that will be dropped on exit."""
        n = self.name(stage)
        self._tables.append(n)
        return n

    def view(self, stage: str) -> str:
        """Reserve a temp view name that will be dropped on exit (before the tables it reads)."""
        n = self.name(stage)
        self._views.append(n)
        return n

    def drop(self, table: str) -> None:
        """Drop a table early (e.g. a superseded iteration of the demeaner)."""
        self.con.execute(f"DROP TABLE IF EXISTS {table}")
        if table in self._tables:
            self._tables.remove(table)

    def register(self, obj: Any, stage: str = "df") -> str:
        n = self.name(stage)
        self.con.register(n, obj)
        self._registered.append(n)
        return n

    def close(self) -> None:
        for v in reversed(self._views):
            try:
                self.con.execute(f"DROP VIEW IF EXISTS {v}")
            except duckdb.Error:  # pragma: no cover - best effort cleanup
                pass
        for t in reversed(self._tables):
            try:
                self.con.execute(f"DROP TABLE IF EXISTS {t}")
            except duckdb.Error:  # pragma: no cover - best effort cleanup
                pass
        for r in self._registered:
            try:
                self.con.unregister(r)
            except duckdb.Error:  # pragma: no cover
                pass
        self._tables.clear()
        self._views.clear()
        self._registered.clear()


@contextmanager
def temp_scope(con: duckdb.DuckDBPyConnection) -> Iterator[TempScope]:
    scope = TempScope(con)
    try:
        yield scope
    finally:
        scope.close()


def resolve_relation(relation: Any, scope: TempScope) -> str:
    """Turn the caller's ``relation`` into text usable after ``FROM`` (and before an alias).

    Queries come back as a parenthesised subquery without an alias, so callers may write
    ``FROM {source} s`` whatever the caller passed.

    Accepted:

    * a table or view name, optionally qualified (``panel``, ``main.panel``,
      ``"My Table"``) - used verbatim;
    * a SQL query (``SELECT ...`` / ``WITH ...`` / ``FROM ...``, optionally in
      parentheses) - wrapped as a subquery;
    * any other FROM-item such as a table function
      (``read_parquet('panel.parquet')``) - read with ``SELECT *``;
    * a :class:`duckdb.DuckDBPyRelation` built on the same connection - its SQL
      is wrapped as a subquery;
    * a pandas DataFrame - registered as a temporary view for the call.
    """
    if isinstance(relation, duckdb.DuckDBPyRelation):
        return f"({relation.sql_query()})"
    if isinstance(relation, str):
        text = relation.strip()
        if not text:
            raise ValueError("relation must not be empty")
        if _QUALIFIED_NAME.match(text):
            return text
        if text.endswith(";"):
            text = text[:-1].rstrip()
        if _QUERY_START.match(text):
            return f"({text})"
        # anything else is a FROM-item, e.g. read_parquet('panel.parquet')
        return f"(SELECT * FROM {text})"
    try:
        import pandas as pd

        if isinstance(relation, pd.DataFrame):
            return scope.register(relation, "df")
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(
        "relation must be a table/view name, a SQL query string, a "
        f"DuckDBPyRelation or a pandas DataFrame, not {type(relation).__name__}"
    )


INSERT_CHUNK = 500  # rows per statement (each row's values are bound as parameters)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list, trailing: str = "") -> int:
    """Append ``rows`` (tuples of equal length, values bound as parameters) to ``table`` (a
    table name, optionally with its column list), a few hundred rows per INSERT. ``trailing``:
    SQL appended to every row's values, e.g. ``now()``.

    One statement per chunk, not DuckDB's executemany, which runs the INSERT once per row (about
    5 ms each, 1 s for the estimates of one refresh of the sample)."""
    rows = [tuple(r) for r in rows]
    if not rows:
        return 0
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError(f"rows of unequal length inserted into {table}")
    one = "(" + ", ".join(["?"] * width) + (f", {trailing}" if trailing else "") + ")"
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start:start + INSERT_CHUNK]
        con.execute(f"insert into {table} values " + ", ".join([one] * len(chunk)),
                    [v for r in chunk for v in r])
    return len(rows)
