"""The studies' Table 3: baseline DID of the Big Data Pilot Zones on an outcome index.

Four columns: without/with controls × without/with city and year fixed effects, standard errors
clustered by city (CRV1). The resilience study (outcome `res`) and the NQP study (outcome
`nqp_index`, its own controls) share this layout. Reads `analysis_panel`; persists to `estimates`.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

from estimation.model import feols
from estimation.persist import ESTIMATES_DDL, persist_results
from estimation.result import FeolsResult

CONTROLS = ("eocden", "traff", "gove", "inv", "salary")
FIXED_EFFECTS = ("city_code", "year")
CLUSTER = "city_code"
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
    controls: tuple[str, ...] = CONTROLS

    @property
    def formula(self) -> str:
        fml = f"{self.outcome} ~ {' + '.join(self.regressors)}"
        return fml + (f" | {' + '.join(self.fixed_effects)}" if self.fixed_effects else "")

    @property
    def has_controls(self) -> bool:
        return any(r in self.controls for r in self.regressors)


def baseline_specs(outcome: str = "res", treatment: str = "did", controls=CONTROLS,
                   prefix: str = "table3") -> list[ModelSpec]:
    """(1) DID; (2) DID + city & year FE; (3) DID + controls; (4) DID + controls + FE."""
    c = tuple(controls)
    return [
        ModelSpec(f"{prefix}_col1", outcome, (treatment,), (), c),
        ModelSpec(f"{prefix}_col2", outcome, (treatment,), FIXED_EFFECTS, c),
        ModelSpec(f"{prefix}_col3", outcome, (treatment, *c), (), c),
        ModelSpec(f"{prefix}_col4", outcome, (treatment, *c), FIXED_EFFECTS, c),
    ]


def run_specs(con: duckdb.DuckDBPyConnection, specs: list[ModelSpec],
              relation: str = "main.analysis_panel") -> list[FeolsResult]:
    return [
        feols(con, relation, spec.formula, vcov={"CRV1": CLUSTER})
        for spec in specs
    ]


def persist_estimates(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                      specs: list[ModelSpec], results: list[FeolsResult]) -> int:
    """Append one row per term of every model to main.estimates; return the rows written."""
    return persist_results(con, run_id, vintage, synthetic,
                           [(spec.model_id, spec.formula, r) for spec, r in zip(specs, results)])


__all__ = ["CONTROLS", "ESTIMATES_DDL", "ModelSpec", "baseline_specs", "persist_estimates", "run_specs"]
