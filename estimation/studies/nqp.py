"""The new-quality-productivity (NQP) study: the same pilot zones and the NQP index.

Its controls: ln GDP per capita (LnGDP), tertiary/secondary value added (Str), retail
sales/GDP (Com), loans/GDP (Fin), fiscal spending/GDP (Gov) - ``analysis_panel`` columns.
Table 3 has the resilience study's four columns plus the adjusted R2; its event study runs
pre_2 ... post_6 with the adoption year as base.
"""
from __future__ import annotations

import duckdb

from estimation.engine.event_study import EventStudyResult
from estimation.engine.result import FeolsResult

from .common import (
    PANEL,
    TREATMENT,
    ModelSpec,
    run_specs,
    run_study_event_study,
    table3_specs,
)

OUTCOME = "nqp"
CONTROLS = ("ln_gdp_per_capita", "industrial_structure", "consumption_ratio", "loans_to_gdp", "gove")
EVENT_WINDOW = {"leads": 2, "lags": 6, "base": 0}


def specs(outcome: str = OUTCOME, controls=CONTROLS, treatment: str = TREATMENT) -> list[ModelSpec]:
    return table3_specs(outcome, controls, prefix="nqp_table3", treatment=treatment)


def run_table3(con: duckdb.DuckDBPyConnection, relation=PANEL, outcome: str = OUTCOME,
               controls=CONTROLS) -> tuple[list[ModelSpec], list[FeolsResult]]:
    s = specs(outcome, controls)
    return s, run_specs(con, s, relation)


def run_event_study(con: duckdb.DuckDBPyConnection, relation=PANEL, outcome: str = OUTCOME,
                    controls=CONTROLS, **kw) -> EventStudyResult:
    """pre_2 ... post_6 around adoption, base = the adoption year (k = 0), binned end points."""
    return run_study_event_study(con, relation, outcome, controls, EVENT_WINDOW, **kw)
