"""What the studies share: the four-column Table 3 and persistence of a study's results.

Table 3 of the resilience and the NQP study: without/with controls x without/with unit and
period fixed effects, standard errors clustered by city (CRV1). Each study module supplies its
outcome and controls; :func:`table3` is the one renderer of that table (text, Markdown, LaTeX,
HTML) used by the CLI, the demo and the report.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb

from estimation.engine.event_study import EventStudyResult
from estimation.engine.model import feols
from estimation.engine.persist import persist_draws, persist_results, persist_tests
from estimation.engine.placebo import PlaceboResult
from estimation.engine.result import FeolsResult
from estimation.engine.tables import regression_table

PANEL = "main.analysis_panel"
UNIT, TIME, TREATMENT = "city_code", "year", "did"
FIXED_EFFECTS = (UNIT, TIME)
CLUSTER = UNIT
FE_LABELS = {"city_code": "City FE", "year": "Year FE"}
TERM_LABELS = {
    "did": "DID",
    "eocden": "EOCDEN",
    "traff": "TRAFF",
    "gove": "GOVE",
    "inv": "INV",
    "salary": "SALARY",
    "ln_gdp_per_capita": "LnGDP",
    "industrial_structure": "Str",
    "consumption_ratio": "Com",
    "loans_to_gdp": "Fin",
    "Intercept": "Constant",
}


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    outcome: str
    regressors: tuple[str, ...]
    fixed_effects: tuple[str, ...]
    controls: tuple[str, ...] = ()

    @property
    def formula(self) -> str:
        fml = f"{self.outcome} ~ {' + '.join(self.regressors)}"
        return fml + (f" | {' + '.join(self.fixed_effects)}" if self.fixed_effects else "")

    @property
    def has_controls(self) -> bool:
        return any(r in self.controls for r in self.regressors)


def table3_specs(outcome: str, controls: Sequence[str], prefix: str, treatment: str = TREATMENT) -> list[ModelSpec]:
    """(1) DID; (2) DID + city & year FE; (3) DID + controls; (4) DID + controls + FE."""
    c = tuple(controls)
    return [
        ModelSpec(f"{prefix}_col1", outcome, (treatment,), (), c),
        ModelSpec(f"{prefix}_col2", outcome, (treatment,), FIXED_EFFECTS, c),
        ModelSpec(f"{prefix}_col3", outcome, (treatment, *c), (), c),
        ModelSpec(f"{prefix}_col4", outcome, (treatment, *c), FIXED_EFFECTS, c),
    ]


def run_specs(con: duckdb.DuckDBPyConnection, specs: list[ModelSpec], relation=PANEL,
              cluster: str = CLUSTER) -> list[FeolsResult]:
    return [feols(con, relation, spec.formula, vcov={"CRV1": cluster}) for spec in specs]


def run_study_event_study(con: duckdb.DuckDBPyConnection, relation, outcome: str, controls, window: dict,
                          **kw) -> EventStudyResult:
    """A study's event study: its window (leads, lags, base) around adoption of ``did``, city and year FE."""
    from estimation.engine.event_study import run_event_study

    return run_event_study(con, relation, outcome, controls=controls,
                           **{"unit": UNIT, "time": TIME, "treatment": TREATMENT, **window, **kw})


def table3(specs: list[ModelSpec], results: list[FeolsResult], fmt: str = "markdown", adj_r2: bool = False,
           labels: Mapping[str, str] = TERM_LABELS) -> str:
    """Table 3 as in the studies: DID, controls, constant, FE rows, N, R2 (and adj. R2, NQP)."""
    controls = list(dict.fromkeys(c for s in specs for c in s.controls))
    tab = regression_table(
        results, terms=[specs[0].regressors[0], *controls, "Intercept"], labels=labels,
        controls=False, fe_labels=FE_LABELS,
        stats=("nobs", "r2", "adj_r2") if adj_r2 else ("nobs", "r2"),
    )
    return tab.render(fmt)


def persist_estimates(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                      specs: list[ModelSpec], results: list[FeolsResult]) -> int:
    """Append one row per term of every model to main.estimates; return the rows written."""
    return persist_results(con, run_id, vintage, synthetic,
                           [(spec.model_id, spec.formula, r) for spec, r in zip(specs, results)])


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
