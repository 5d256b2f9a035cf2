"""Validation results land in the warehouse (main.validation_results) so users can query them,
and beside the report (validation.json), which is the only record of a refused load."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from estimation.engine.sqlutil import insert_rows
from expectations.gate import ValidationOutcome
from warehouse.publish import connect_for_write

VALIDATION_DDL = """
create table if not exists main.validation_results (
    vintage varchar not null, suite varchar not null, relation varchar not null,
    expectation varchar not null, column_name varchar, severity varchar not null,
    success boolean not null, unexpected_count bigint, examples varchar,
    validated_at timestamp not null
)
"""
# Added after the first release: a warehouse published before gets them on its next load.
ADDED_COLUMNS = (
    ("check_name", "varchar"), ("description", "varchar"), ("threshold", "varchar"),
    ("element_count", "bigint"), ("observed_value", "varchar"), ("example_rows", "varchar"),
)
COLUMNS = ("vintage", "suite", "relation", "expectation", "column_name", "severity", "success",
           "unexpected_count", "examples", *(name for name, _ in ADDED_COLUMNS))


def _rows(vintage: str, outcome: ValidationOutcome) -> list[tuple]:
    return [(vintage, r.suite, r.relation, r.expectation, r.column, r.severity, r.success,
             r.unexpected_count, r.examples, r.check, r.description, r.threshold, r.element_count,
             r.observed, json.dumps(list(r.example_rows), ensure_ascii=False, default=str))
            for r in outcome.results]


def persist_validation(database: Path, vintage: str, outcome: ValidationOutcome) -> None:
    with connect_for_write(database) as con:
        con.execute(VALIDATION_DDL)
        for name, kind in ADDED_COLUMNS:
            con.execute(f"alter table main.validation_results add column if not exists {name} {kind}")
        insert_rows(con, f"main.validation_results ({', '.join(COLUMNS)}, validated_at)", _rows(vintage, outcome),
                    trailing="now()")


def write_validation_json(path: Path, vintage: str, outcome: ValidationOutcome) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"vintage": vintage, "publishable": outcome.publishable, "notes": outcome.notes,
               "docs_index": outcome.docs_index, "results": [asdict(r) for r in outcome.results]}
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return path
