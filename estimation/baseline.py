"""The resilience study's Table 3: baseline DID of the Big Data Pilot Zones on the resilience index.

Four columns: without/with controls × without/with city and year fixed effects, standard errors
clustered by city (CRV1). Reads `analysis_panel`; persists to `estimates`.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

from estimation.model import feols
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
    "Intercept": "Constant",
}


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    outcome: str
    regressors: tuple[str, ...]
    fixed_effects: tuple[str, ...]

    @property
    def formula(self) -> str:
        fml = f"{self.outcome} ~ {' + '.join(self.regressors)}"
        return fml + (f" | {' + '.join(self.fixed_effects)}" if self.fixed_effects else "")

    @property
    def has_controls(self) -> bool:
        return any(r in CONTROLS for r in self.regressors)


def baseline_specs(outcome: str = "res", treatment: str = "did") -> list[ModelSpec]:
    return [
        ModelSpec("table3_col1", outcome, (treatment,), ()),
        ModelSpec("table3_col2", outcome, (treatment,), FIXED_EFFECTS),
        ModelSpec("table3_col3", outcome, (treatment, *CONTROLS), ()),
        ModelSpec("table3_col4", outcome, (treatment, *CONTROLS), FIXED_EFFECTS),
    ]


def run_specs(con: duckdb.DuckDBPyConnection, specs: list[ModelSpec],
              relation: str = "main.analysis_panel") -> list[FeolsResult]:
    return [
        feols(con, relation, spec.formula, vcov={"CRV1": CLUSTER})
        for spec in specs
    ]


ESTIMATES_DDL = """
create table if not exists main.estimates (
    run_id varchar not null, model_id varchar not null, spec varchar not null,
    term varchar not null, coef double, se double, t double, p double,
    ci_low double, ci_high double, nobs bigint, r2 double, r2_within double,
    n_clusters bigint, vcov varchar, vintage varchar, synthetic boolean,
    created_at timestamp not null
)
"""


def persist_estimates(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                      specs: list[ModelSpec], results: list[FeolsResult]) -> int:
    """Append one row per term of every model to main.estimates; return the rows written."""
    con.execute(ESTIMATES_DDL)
    rows = []
    for spec, result in zip(specs, results):
        tidy = result.tidy()
        for record in tidy.itertuples(index=False):
            rows.append((
                run_id, spec.model_id, spec.formula, record.term, float(record.coef), float(record.se),
                float(record.t), float(record.p), float(record.ci_low), float(record.ci_high),
                int(result.nobs), float(result.r2),
                None if result.r2_within != result.r2_within else float(result.r2_within),
                result.n_clusters, result.vcov, vintage, synthetic,
            ))
    con.executemany(
        "insert into main.estimates values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        rows,
    )
    return len(rows)
