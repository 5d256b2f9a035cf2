"""The studies' program a refresh runs on each candidate vintage, persisted with it.

The resilience study's Table 2 (descriptives, VIFs), Table 3, event study (k = −4…7, base −1),
placebo (500 permutations of adoption across cities), Table 4 (PSM-DID; 2SLS with 1984 telephones
× internet users, Kleibergen–Paap) and the robustness columns; the NQP study's Table 3 and its
robustness table (PSM-DID nearest neighbour and kernel, winsorising, 2014–2019); the NQP →
resilience study's Table 4 (2SLS with lagged NQP); the specification curve over the resilience
index (24 ways to build it, the baseline DID on each); the resilience study's Tables 5-7
(mechanisms, city size, institutions); the NQP study's Table 5 (mediation with Sobel and a cluster
bootstrap) and Table 6; the NQP → resilience study's Tables 3, 5, 6 and 7 (+ mediation); every
split-sample table with its differences tested (pooled interaction, permutation); the modern DID
program (Callaway-Sant'Anna, Sun-Abraham, BJS imputation, did2s, Goodman-Bacon, HonestDiD, spatial
DID, DML DID: `modern_did`). The studies are
independent: the refresh flow runs them concurrently (`run_study` per study, each on its own
connection), then `persist_program` writes them in one place, so main.estimates
(+ placebo_draws, model_tests, descriptives) carries the vintage as run id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb

from estimation.engine.event_study import EventStudyResult
from estimation.engine.persist import persist_results, persist_tests
from estimation.engine.placebo import PlaceboResult
from estimation.engine.result import FeolsResult

from . import modern_did, nqp, nqp_resilience, resilience, resilience_heterogeneity, spec_curve
from .splits import persist_split_table
from .common import (
    PANEL,
    Descriptives,
    IVEstimates,
    ModelSpec,
    PSMEstimate,
    Robustness,
    persist_balance,
    persist_descriptives_table,
    persist_estimates,
    persist_iv,
    persist_mediation,
    persist_psm,
    persist_robustness,
    persist_study,
)

STUDIES: dict[str, Callable[[duckdb.DuckDBPyConnection], object]] = {
    "baseline": resilience.run_table3,
    "event_study": resilience.run_event_study,
    "placebo": resilience.run_placebo,
    "nqp_baseline": nqp.run_table3,
    "table2": resilience.run_table2,
    "table4_iv": resilience.run_table4_iv,
    "table4_psm": resilience.run_table4_psm,
    "robustness": resilience.run_robustness,
    "nqp_robustness": nqp.run_robustness,
    "nqp_resilience_iv": nqp_resilience.run_table4_iv,
    "spec_curve": spec_curve.run_spec_curve,
    "heterogeneity": resilience_heterogeneity.run_tables,
    "nqp_table5": nqp.run_table5,
    "nqp_table6": nqp.run_table6,
    "nqp_resilience_tables": nqp_resilience.run_tables,
    "wild_bootstrap": resilience.run_wild_bootstrap,
    "modern_did": modern_did.run_modern_did,
}


# Always run (the report's headline and ProgramResults' required fields); the others are optional
# (cityres.toml [refresh] studies).
CORE = ("baseline", "event_study", "placebo", "nqp_baseline")


def selected_studies(optional: tuple[str, ...] | None = None) -> list[str]:
    """The studies a refresh runs: the core ones, then the optional ones named (None: all), in
    program order."""
    unknown = sorted(set(optional or ()) - set(STUDIES))
    if unknown:
        raise ValueError(f"unknown studies {unknown}; known: {', '.join(STUDIES)}")
    return [name for name in STUDIES if name in CORE or optional is None or name in optional]


@dataclass
class ProgramResults:
    baseline: tuple[list[ModelSpec], list[FeolsResult]]
    event_study: EventStudyResult
    placebo: PlaceboResult
    nqp_baseline: tuple[list[ModelSpec], list[FeolsResult]]
    panel_years: tuple[int, int]
    table2: Descriptives | None = None
    table4_iv: IVEstimates | None = None
    table4_psm: PSMEstimate | None = None
    robustness: Robustness | None = None
    nqp_robustness: nqp.NQPRobustness | None = None
    nqp_resilience_iv: IVEstimates | None = None
    spec_curve: spec_curve.SpecCurve | None = None
    heterogeneity: resilience_heterogeneity.HeterogeneityTables | None = None
    nqp_table5: nqp.Mediation | None = None
    nqp_table6: object = None  # splits.SplitTable
    nqp_resilience_tables: nqp_resilience.NQPResilienceTables | None = None
    wild_bootstrap: object = None  # estimation.engine.wildboot.WildBootResult of Table 3 column (4)
    modern_did: modern_did.ModernDID | None = None

    def figure_jobs(self, folder: Path) -> dict[str, tuple]:
        """Each figure as (draw, path, *args): ``draw(path, *args)`` writes it and returns the path.
        Bound methods of picklable results, so another process can draw them."""
        jobs: dict[str, tuple] = {
            "event_study": (self.event_study.plot, folder / "event_study.png"),
            "placebo": (self.placebo.plot, folder / "placebo.png"),
        }
        if self.table4_psm is not None:
            jobs["pscore"] = (self.table4_psm.plot, folder / "pscore.png")
        if self.heterogeneity is not None:
            jobs["table6"] = (self.heterogeneity.plot, 6, folder / "table6_city_size.png",
                              "DID by city-size tier (Table 6, all tiers in one model)")
            jobs["table7"] = (self.heterogeneity.plot, 7, folder / "table7_institutions.png",
                              "DID for pilot cities without / with DIG and IPP (Table 7)")
        if self.nqp_table6 is not None:
            jobs["nqp_table6"] = (self.nqp_table6.plot, folder / "nqp_table6.png",
                                  "DID on NQP by group (the NQP study's Table 6)")
        tables = self.nqp_resilience_tables
        if tables is not None and tables.table6 is not None:
            jobs["nqp_res_table6"] = (tables.table6.plot, folder / "nqp_resilience_table6.png",
                                      "NQP on resilience by group (Table 6)")
        if self.spec_curve is not None:
            jobs["spec_curve"] = (self.spec_curve.plot, folder / "spec_curve.png")
        m = self.modern_did
        if m is not None:
            jobs["modern_did_event"] = (m.plot_event_studies, folder / "modern_did_event_studies.png")
            jobs["bacon"] = (m.plot_bacon, folder / "bacon.png")
            jobs["honest"] = (m.plot_honest, folder / "honest_did.png")
            if m.spatial is not None:
                jobs["distance_bands"] = (m.plot_bands, folder / "spillover_distance_bands.png")
        return jobs

    def figures(self, folder: Path) -> dict[str, str]:
        """Write the parallel-trends, placebo, propensity-score and the other studies' figures
        here, one by one; return their file names."""
        folder.mkdir(parents=True, exist_ok=True)
        return {name: draw(*args).name for name, (draw, *args) in self.figure_jobs(folder).items()}


def run_study(con: duckdb.DuckDBPyConnection, name: str):
    """One study of the program on `con` (its temp tables stay on that connection)."""
    return STUDIES[name](con)


def program_results(con: duckdb.DuckDBPyConnection, results: dict) -> ProgramResults:
    """The studies' results, with the panel's years, for the report (nothing written)."""
    first, last = con.execute(f"select min(year), max(year) from {PANEL}").fetchone()
    # every study's result under its STUDIES name, which is also the field's name
    return ProgramResults(panel_years=(int(first), int(last)), **results)


def persist_program(con: duckdb.DuckDBPyConnection, results: dict, vintage: str,
                    synthetic: bool) -> ProgramResults:
    """Write every study's results with the vintage; return them for the report."""
    persist_estimates(con, vintage, vintage, synthetic, *results["baseline"])
    persist_study(con, vintage, vintage, synthetic, "event_study", results["event_study"])
    persist_study(con, vintage, vintage, synthetic, "placebo", results["placebo"])
    persist_estimates(con, vintage, vintage, synthetic, *results["nqp_baseline"])

    def has(name: str) -> bool:
        return results.get(name) is not None

    if has("table2"):
        persist_descriptives_table(con, vintage, vintage, "table2", results["table2"])
    if has("table4_iv"):
        persist_iv(con, vintage, vintage, synthetic, "table4", results["table4_iv"])
    if has("table4_psm"):
        persist_psm(con, vintage, vintage, synthetic, "table4_psm_nearest", results["table4_psm"])
    if has("robustness"):
        persist_robustness(con, vintage, vintage, synthetic, results["robustness"])
    if has("nqp_robustness"):
        persist_robustness(con, vintage, vintage, synthetic, results["nqp_robustness"])
        for method, est in results["nqp_robustness"].psm.items():
            persist_balance(con, vintage, vintage, f"nqp_robust_psm_{method}", est)
    if has("nqp_resilience_iv"):
        persist_iv(con, vintage, vintage, synthetic, "nqp_res_table4", results["nqp_resilience_iv"])
    if has("spec_curve"):
        spec_curve.persist_spec_curve(con, vintage, vintage, synthetic, results["spec_curve"])
    if has("heterogeneity"):
        persist_results(con, vintage, vintage, synthetic,
                        [(m.model_id, m.formula, m.result) for m in results["heterogeneity"].models])
    if has("nqp_table5"):
        for mediator, med in results["nqp_table5"].results.items():
            persist_mediation(con, vintage, vintage, synthetic, f"nqp.table5.{mediator}", med)
    if has("nqp_resilience_tables"):
        nqp_resilience.persist_tables(con, vintage, vintage, synthetic, results["nqp_resilience_tables"])
    if has("nqp_table6"):
        persist_split_table(con, vintage, vintage, synthetic, results["nqp_table6"])
    if has("wild_bootstrap"):
        wild = results["wild_bootstrap"]
        persist_tests(con, vintage, vintage, results["baseline"][0][3].model_id, [
            ("wild_bootstrap_p", wild.p_value, wild.draws, None, wild.p_value),
            ("wild_bootstrap_ci_low", wild.ci[0], None, None, None),
            ("wild_bootstrap_ci_high", wild.ci[1], None, None, None)])
    if has("modern_did"):
        modern_did.persist_modern_did(con, vintage, vintage, synthetic, results["modern_did"])
    return program_results(con, results)

