"""A failed dbt test in words: which column of which model, how many rows, the first of them,
and what to do - instead of a test id. The test id stays in the report for whoever debugs.

The example row comes from the model itself (for ``not_null``, ``unique`` and the project's own
generic tests the failing rows are selected from the model; otherwise from the test's compiled
query), read from the candidate warehouse with a read-only connection.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from warehouse.connections import connect_read_only

# What a person can do about a failure of a given test, by (test name, model) or test name.
HINTS = {
    ("not_null", "int_index_inputs"): (
        "an indicator of a composite index is missing for a city-year that interpolation cannot fill "
        "(a gap at the start or end of a series, e.g. '—' in the latest yearbook): deliver the value, "
        "or set [dbt_vars] extrapolation = \"nearest\" in cityres.toml to carry the last value (flagged)"),
    ("not_null", None): "a value every row needs is missing",
    ("unique", None): "the same key is delivered twice (a city or a file counted twice)",
}


def _node(manifest: dict, unique_id: str) -> dict:
    return manifest.get("nodes", {}).get(unique_id, {})


def _model_of(manifest: dict, node: dict) -> tuple[str | None, str | None]:
    """(model name, relation) the test checks."""
    for dep in node.get("depends_on", {}).get("nodes", []):
        parent = manifest.get("nodes", {}).get(dep, {})
        if parent.get("resource_type") in ("model", "seed"):
            return parent.get("name"), parent.get("relation_name")
    return None, None


def _example(database: Path, sql: str) -> dict | None:
    try:
        with connect_read_only(database) as con:
            cur = con.execute(f"select * from ({sql}) as failing limit 1")
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
    except duckdb.Error:
        return None
    return dict(zip(cols, rows[0])) if rows else None


def _row_in_words(row: dict) -> str:
    return ", ".join(f"{k} {v!r}" if isinstance(v, str) else f"{k} {v}" for k, v in row.items()
                     if not k.startswith("dbt_") and v is not None) or "(all values empty)"


def explain(failure: dict, manifest: dict, database: Path) -> str:
    """One line: what failed, in how many rows, the first row, and what to do."""
    node = _node(manifest, failure["unique_id"])
    meta = node.get("test_metadata") or {}
    test = meta.get("name")
    kwargs = meta.get("kwargs") or {}
    column = kwargs.get("column_name")
    model, relation = _model_of(manifest, node)
    if test is None or model is None:
        return f"dbt: {failure['unique_id']}: {failure.get('message')}"
    columns = kwargs.get("columns") or kwargs.get("combination_of_columns")
    what = {"not_null": f"{model}.{column} must not be empty",
            "unique": f"{model}.{column} must be unique"}.get(test, f"{model}{'.' + column if column else ''}: "
                                                                   f"the check {test} failed")
    if test == "unique_combination" and columns:
        what = f"{model}: each ({', '.join(columns)}) must appear once"
    count = failure.get("failures")
    text = what + (f" - {count} row(s) do not" if count else "")
    if test == "not_null" and relation and column:
        sql = f"select * from {relation} where {column} is null"
    elif test == "unique" and relation and column:
        sql = (f"select * from {relation} where {column} in (select {column} from {relation} "
               f"group by {column} having count(*) > 1)")
    else:
        sql = failure.get("compiled_code") or ""
    row = _example(database, sql) if sql.strip() else None
    if row:
        text += f"; e.g. {_row_in_words(row)}"
    hint = HINTS.get((test, model)) or HINTS.get((test, None))
    if hint:
        text += f". {hint[0].upper()}{hint[1:]}"
    return text


def explain_failures(failures: list[dict], target: Path, database: Path) -> list[str]:
    """Every failed test of a dbt run in words (the manifest is read from dbt's target folder)."""
    try:
        manifest = json.loads((target / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        manifest = {}
    return [explain(f, manifest, database) for f in failures]
