"""The studies' core checks on the warehouse, ready for the refresh flow and the report.

* baseline DID, Table 3 of the resilience study (:func:`run_baseline`) and of
  the NQP study (:func:`run_nqp_table3`, outcome column as an argument);
* event study (:func:`run_event_study`; :func:`run_nqp_event_study` is the NQP
  study's pre_2 ... post_6 with base = adoption year);
* placebo / randomisation inference (:func:`run_placebo`;
  :func:`run_nqp_placebo` is the NQP study's 1000 draws of 120 cities);
* :func:`persist_study` writes any of these results to ``main.estimates``
  (+ ``main.placebo_draws`` / ``main.model_tests``).
"""

from __future__ import annotations

import duckdb

from .baseline import CONTROLS, TERM_LABELS, ModelSpec, baseline_specs, run_specs
from .event_study import EventStudyResult, run_event_study
from .persist import persist_draws, persist_results, persist_tests
from .placebo import PlaceboResult, run_placebo
from .result import FeolsResult
from .tables import regression_table

PANEL = "main.analysis_panel"
# The NQP study's controls: ln GDP per capita (LnGDP), tertiary/secondary value added (Str),
# retail sales/GDP (Com), loans/GDP (Fin), fiscal spending/GDP (Gov) — analysis_panel columns.
NQP_STUDY_CONTROLS = ("ln_gdp_per_capita", "industrial_structure", "consumption_ratio", "loans_to_gdp", "gove")


def run_baseline(con: duckdb.DuckDBPyConnection, relation=PANEL, outcome: str = "res",
                 controls=CONTROLS) -> tuple[list[ModelSpec], list[FeolsResult]]:
    """The resilience study's Table 3 (four columns, CRV1 by city)."""
    specs = baseline_specs(outcome, controls=controls)
    return specs, run_specs(con, specs, relation)


def nqp_table3_specs(outcome: str = "nqp", controls=NQP_STUDY_CONTROLS, treatment: str = "did") -> list[ModelSpec]:
    """The NQP study's Table 3: the same four columns on the NQP outcome."""
    return baseline_specs(outcome, treatment, controls, prefix="nqp_table3")


def run_nqp_table3(con: duckdb.DuckDBPyConnection, relation=PANEL, outcome: str = "nqp",
                   controls=NQP_STUDY_CONTROLS) -> tuple[list[ModelSpec], list[FeolsResult]]:
    specs = nqp_table3_specs(outcome, controls)
    return specs, run_specs(con, specs, relation)


def table3(specs: list[ModelSpec], results: list[FeolsResult], fmt: str = "markdown",
           adj_r2: bool = False) -> str:
    """Table 3 as in the studies: DID, controls, constant, FE rows, N, R2 (and adj. R2, NQP)."""
    controls = list(dict.fromkeys(c for s in specs for c in s.controls))
    tab = regression_table(
        results, terms=[specs[0].regressors[0], *controls, "Intercept"], labels=TERM_LABELS,
        controls=False, fe_labels={"city_code": "City FE", "year": "Year FE"},
        stats=("nobs", "r2", "adj_r2") if adj_r2 else ("nobs", "r2"),
    )
    return tab.render(fmt)


def run_nqp_event_study(con: duckdb.DuckDBPyConnection, relation=PANEL, outcome: str = "nqp",
                        controls=NQP_STUDY_CONTROLS, **kw) -> EventStudyResult:
    """pre_2 ... post_6 around adoption, base = the adoption year (k = 0), binned end points."""
    return run_event_study(con, relation, outcome, leads=2, lags=6, base=0, controls=controls, **kw)


def run_nqp_placebo(con: duckdb.DuckDBPyConnection, relation=PANEL, outcome: str = "nqp",
                    controls=NQP_STUDY_CONTROLS, draws: int = 1000, seed: int = 20240601, **kw) -> PlaceboResult:
    """1000 draws of 120 pseudo-treated cities with the real adoption year."""
    formula = f"{outcome} ~ did + {' + '.join(controls)} | city_code + year" if controls else \
        f"{outcome} ~ did | city_code + year"
    return run_placebo(con, relation, formula, draws=draws, seed=seed, n_pseudo_treated=120,
                       permute="units", **kw)


def persist_study(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                  model_id: str, result: EventStudyResult | PlaceboResult) -> int:
    """Write an event study or placebo result (and its tests/draws); return estimate rows."""
    if isinstance(result, EventStudyResult):
        n = persist_results(con, run_id, vintage, synthetic, [(model_id, result.model.formula, result.model)])
        if result.pretrend is not None:
            pt = result.pretrend
            persist_tests(con, run_id, vintage, model_id,
                          [("pretrend_F", pt.f, pt.df1, pt.df2, pt.p_f),
                           ("pretrend_wald_chi2", pt.wald, pt.df1, None, pt.p_chi2)])
        return n
    if isinstance(result, PlaceboResult):
        n = persist_results(con, run_id, vintage, synthetic, [(model_id, result.real.formula, result.real)])
        persist_draws(con, run_id, vintage, model_id, result.draws)
        persist_tests(con, run_id, vintage, model_id,
                      [("ri_two_sided", result.estimate, result.n_valid, None, result.ri_p_value),
                       ("ri_two_sided_plus1", result.estimate, result.n_valid, None, result.ri_p_value_plus1)])
        return n
    raise TypeError("persist_study takes an EventStudyResult or a PlaceboResult")


__all__ = [
    "NQP_STUDY_CONTROLS", "nqp_table3_specs", "persist_study", "run_baseline", "run_event_study",
    "run_nqp_event_study", "run_nqp_placebo", "run_nqp_table3", "run_placebo", "table3",
]
