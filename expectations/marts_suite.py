"""Expectations on the published marts, validated on DataFrames read from the candidate warehouse.

(GX's SQL datasource on DuckDB fails on every expectation; pandas batches of the marts are small.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb
import pandas as pd

from expectations.gate import CheckResult, ValidationOutcome

WEIGHT_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Batch:
    """One DataFrame to validate: its name in reports and the SQL that reads it."""

    name: str
    sql: str


BATCHES = (
    Batch("resilience_index", "select city_code, year, res, rank_in_year from main.resilience_index"),
    Batch("index_weights", "select index_name, indicator, weight from main.index_weights"),
    Batch(
        "index_weight_totals",
        "select index_name, sum(weight) as weight_total from main.index_weights group by index_name",
    ),
)


def _expectations(gx) -> dict[str, list]:
    """Suite content per batch; meta severity decides the publish gate."""
    critical, warning = {"severity": "critical"}, {"severity": "warning"}
    e = gx.expectations
    return {
        "resilience_index": [
            e.ExpectCompoundColumnsToBeUnique(column_list=["city_code", "year"], meta=critical),
            e.ExpectColumnValuesToNotBeNull(column="res", meta=critical),
            e.ExpectColumnValuesToNotBeNull(column="city_code", meta=critical),
            e.ExpectColumnValuesToBeBetween(column="res", min_value=0, max_value=1, meta=critical),
            e.ExpectTableRowCountToBeBetween(min_value=1, meta=critical),
        ],
        "index_weights": [
            e.ExpectColumnValuesToBeBetween(column="weight", min_value=0, max_value=1, meta=critical),
            e.ExpectColumnValuesToNotBeNull(column="weight", meta=critical),
        ],
        "index_weight_totals": [
            e.ExpectColumnValuesToBeBetween(
                column="weight_total", min_value=1 - WEIGHT_TOLERANCE, max_value=1 + WEIGHT_TOLERANCE,
                meta=critical,
            ),
        ],
    }


def _examples(result) -> str:
    values = result.get("partial_unexpected_list") or []
    return ", ".join(map(str, values[:5]))


def validate_marts(database: str, run_id: str) -> ValidationOutcome:
    """Run the marts suite against the warehouse file `database` (opened read-only)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx  # slow import (~3 s): kept off the CLI's import path

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_pandas("cityres_marts")
    outcome = ValidationOutcome()
    with duckdb.connect(database, read_only=True) as con:
        frames = {b.name: con.execute(b.sql).df() for b in BATCHES}
    for name, expectations in _expectations(gx).items():
        asset = datasource.add_dataframe_asset(name)
        batch_definition = asset.add_batch_definition_whole_dataframe(f"{name}_whole")
        suite = context.suites.add(gx.ExpectationSuite(name=f"marts.{name}", expectations=expectations))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"marts.{name}", data=batch_definition, suite=suite)
        )
        frame: pd.DataFrame = frames[name]
        run = definition.run(batch_parameters={"dataframe": frame}, run_id=gx.RunIdentifier(run_name=run_id))
        for result in run.results:
            config = result.expectation_config
            kwargs = config.kwargs
            outcome.results.append(
                CheckResult(
                    suite="marts",
                    relation=name,
                    expectation=config.type,
                    column=kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or None,
                    severity=(config.meta or {}).get("severity", "critical"),
                    success=bool(result.success),
                    unexpected_count=result.result.get("unexpected_count"),
                    examples=_examples(result.result),
                )
            )
    return outcome
