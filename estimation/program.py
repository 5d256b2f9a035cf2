"""The studies' program a refresh runs on each candidate vintage, persisted with it.

Baseline (the resilience study's Table 3), the event study k = −4…7 (base −1), the placebo with
500 permutations of adoption across cities, and the NQP study's Table 3 on the NQP index. All
results go to main.estimates (+ placebo_draws, model_tests) with the vintage as run id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from estimation.baseline import ModelSpec, persist_estimates
from estimation.event_study import EventStudyResult
from estimation.placebo import PlaceboResult
from estimation.result import FeolsResult
from estimation.studies import persist_study, run_baseline, run_event_study, run_nqp_table3, run_placebo

PLACEBO_DRAWS = 500
PLACEBO_SEED = 20240601


@dataclass
class ProgramResults:
    baseline: tuple[list[ModelSpec], list[FeolsResult]]
    event_study: EventStudyResult
    placebo: PlaceboResult
    nqp_baseline: tuple[list[ModelSpec], list[FeolsResult]]
    panel_years: tuple[int, int]

    def figures(self, folder: Path) -> dict[str, str]:
        """Write the parallel-trends and placebo figures; return their file names."""
        folder.mkdir(parents=True, exist_ok=True)
        return {
            "event_study": self.event_study.plot(folder / "event_study.png").name,
            "placebo": self.placebo.plot(folder / "placebo.png").name,
        }


def run_program(con: duckdb.DuckDBPyConnection, vintage: str, synthetic: bool,
                draws: int = PLACEBO_DRAWS, seed: int = PLACEBO_SEED) -> ProgramResults:
    baseline = run_baseline(con)
    persist_estimates(con, vintage, vintage, synthetic, *baseline)
    event_study = run_event_study(con)
    persist_study(con, vintage, vintage, synthetic, "event_study", event_study)
    placebo = run_placebo(con, draws=draws, seed=seed)
    persist_study(con, vintage, vintage, synthetic, "placebo", placebo)
    nqp_baseline = run_nqp_table3(con)
    persist_estimates(con, vintage, vintage, synthetic, *nqp_baseline)
    first, last = con.execute("select min(year), max(year) from main.analysis_panel").fetchone()
    return ProgramResults(baseline, event_study, placebo, nqp_baseline, (int(first), int(last)))
