"""Validation results land in the warehouse (main.validation_results) so users can query them."""
from __future__ import annotations

from pathlib import Path

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


def persist_validation(database: Path, vintage: str, outcome: ValidationOutcome) -> None:
    with connect_for_write(database) as con:
        con.execute(VALIDATION_DDL)
        con.executemany(
            "insert into main.validation_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [(vintage, r.suite, r.relation, r.expectation, r.column, r.severity, r.success,
              r.unexpected_count, r.examples) for r in outcome.results],
        )
