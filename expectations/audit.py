"""Run the raw and marts suites against one warehouse file: the audit of write-audit-publish.

Used by the refresh flow on the candidate (raw suite on the load's rows, marts suite when dbt
succeeded, drift against the published warehouse), by the dry run, and by `cityres validate`
on the published warehouse (every load in force, no drift).
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from expectations.config import CRITICAL
from expectations.gate import CheckResult, ValidationOutcome
from expectations.marts_suite import marts_batches
from expectations.raw_suite import raw_batches
from expectations.runner import Batch, run_batches
from warehouse.connections import connect_read_only


def _not_run(suite: str, error: Exception) -> CheckResult:
    """A suite that could not even read its relations fails critically (never a silent pass)."""
    return CheckResult(
        suite=suite, relation="(suite)", expectation="suite_runs", column=None, severity=CRITICAL,
        success=False, unexpected_count=None, examples=str(error).splitlines()[0][:500],
        check=f"{suite}.suite_runs", description=f"the {suite} suite can read its relations",
    )


def rebuilt_models(dbt_target: Path) -> set[str]:
    """Models a dbt build rebuilt successfully (its run_results.json); empty if it never ran."""
    path = dbt_target / "run_results.json"
    if not path.exists():
        return set()
    results = json.loads(path.read_text()).get("results", [])
    return {r["unique_id"].split(".")[-1] for r in results
            if r["unique_id"].startswith("model.") and r.get("status") == "success"}


def audit(database: Path, run_id: str, *, load_id: str | None, rebuilt: set[str] | None = None,
          previous: Path | None = None, docs_dir: Path | None = None) -> ValidationOutcome:
    """Validate `database` (opened read-only); `load_id` None = every load in force.

    `rebuilt`: models the load's dbt build rebuilt (None: all; after a failed build only those
    are validated by the marts suite)."""
    outcome = ValidationOutcome()
    batches: list[Batch] = []
    with connect_read_only(database) as con:
        try:
            batches += raw_batches(con, load_id)
        except duckdb.Error as exc:
            outcome.results.append(_not_run("raw", exc))
        try:
            marts_part, notes = marts_batches(con, previous, rebuilt)
            batches += marts_part
            outcome.notes += notes
        except duckdb.Error as exc:
            outcome.results.append(_not_run("marts", exc))
    validated = run_batches(batches, run_id=run_id, docs_dir=docs_dir)
    outcome.results = validated.results + outcome.results
    outcome.docs_index = validated.docs_index
    return outcome
