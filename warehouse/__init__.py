"""The warehouse layer of cityres, and a small API for notebooks.

>>> import warehouse
>>> con = warehouse.connect()                       # read-only, sandboxed (see warehouse.sandbox)
>>> con.execute("select * from resilience_index limit 5").df()
>>> warehouse.read("resilience_index", where="year = 2023 and province_name = '广东省'")
"""
from __future__ import annotations

from pathlib import Path


def _home(home: str | Path | None):
    from warehouse.paths import Home

    return Home(Path(home).resolve()) if home else Home.from_env()


def connect(home: str | Path | None = None):
    """A read-only, sandboxed DuckDB connection to the published warehouse of ``home``
    (default: $CITYRES_HOME or ./.cityres)."""
    from warehouse.sandbox import connect_sandboxed
    from warehouse.settings import load_query_settings

    h = _home(home)
    if not h.warehouse_db.exists():
        raise FileNotFoundError(f"no published warehouse at {h.warehouse_db}; run `cityres refresh` first")
    return connect_sandboxed(h.warehouse_db, load_query_settings(h))


def read(relation: str, where: str | None = None, columns: list[str] | None = None,
         home: str | Path | None = None):
    """A published relation (optionally filtered by a SQL ``where`` condition) as a DataFrame."""
    from warehouse.sandbox import published_relations, run_query

    con = connect(home)
    try:
        names = published_relations(con)
        if relation not in names:
            raise KeyError(f"{relation!r} is not a published relation; published: {', '.join(names)}")
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns) if columns else "*"
        sql = f"select {cols} from {relation}" + (f" where {where}" if where else "")
        from warehouse.settings import load_query_settings

        return run_query(con, sql, load_query_settings(_home(home)).timeout_seconds).df()
    finally:
        con.close()
