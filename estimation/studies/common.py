"""What the studies share: the four-column Table 3, the descriptive Table 2, the 2SLS columns
of an endogeneity table, and persistence of a study's results.

Table 3 of the resilience and the NQP study: without/with controls x without/with unit and
period fixed effects, standard errors clustered by city (CRV1). Each study module supplies its
outcome and controls; :func:`table3` is the one renderer of that table (text, Markdown, LaTeX,
HTML) used by the CLI, the demo and the report.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from estimation.engine.event_study import EventStudyResult
from estimation.engine.iv import IVResult
from estimation.engine.model import feols
from estimation.engine.persist import (
    persist_descriptives,
    persist_draws,
    persist_results,
    persist_tests,
)
from estimation.engine.placebo import PlaceboResult
from estimation.engine.result import FeolsResult
from estimation.engine.tables import Cell, Row, regression_table, simple_table

PANEL = "main.analysis_panel"
UNIT, TIME, TREATMENT = "city_code", "year", "did"
GROUP = "treat"  # the pilot-city indicator (time-invariant), matched on in PSM-DID
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
    "res": "RES",
    "iv_phones_internet": "IV",
    "nqp": "NQP",
    "nqp_h": "NQP",
    "nqp_h_lag1": "IV (NQP, t-1)",
    "sensitivity": "ER",
    "sci_expenditure_share": "FTE",
    "deposits_loans_to_gdp": "FEF",
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


# ---------------------------------------------------------------- Table 2: descriptives and VIFs

@dataclass
class Descriptives:
    table: pd.DataFrame  # variable, n, mean, sd, min, max
    vif: pd.Series  # VIF of each explanatory variable

    def render(self, fmt: str = "markdown", labels: Mapping[str, str] = TERM_LABELS) -> str:
        head = ["Variable", "Observations", "Mean", "Std. dev", "Min", "Max", "VIF"]
        body = [[labels.get(r.variable, r.variable), f"{r.n:,}", f"{r.mean:.3f}", f"{r.sd:.3f}", f"{r.min:.3f}",
                 f"{r.max:.3f}", f"{self.vif[r.variable]:.2f}" if r.variable in self.vif.index else ""]
                for r in self.table.itertuples(index=False)]
        note = f"VIFs of the explanatory variables (each on the others, with an intercept); maximum {self.vif.max():.2f}."
        return simple_table(head, body, note, fmt)


# ---------------------------------------------------------------- 2SLS columns of an endogeneity table

@dataclass
class PSMEstimate:
    """PSM-DID: the matching, its balance table and the DID on the matched rows."""

    matching: object  # estimation.engine.psm.Matching
    balance: pd.DataFrame
    result: FeolsResult

    def render_balance(self, fmt: str = "markdown", labels: Mapping[str, str] = TERM_LABELS) -> str:
        head = ["Variable", "Treated (before)", "Control (before)", "Bias % (before)", "Treated (after)",
                "Control (after)", "Bias % (after)", "Reduction %", "p (after)"]
        body = [[labels.get(r.variable, r.variable), f"{r.mean_treated_before:.3f}", f"{r.mean_control_before:.3f}",
                 f"{r.bias_before:.1f}", f"{r.mean_treated_after:.3f}", f"{r.mean_control_after:.3f}",
                 f"{r.bias_after:.1f}", f"{r.reduction:.1f}", f"{r.p_after:.3f}"]
                for r in self.balance.itertuples(index=False)]
        m = self.matching
        how = (f"1:1 nearest neighbour with replacement, caliper {m.caliper}" if m.method == "nearest"
               else f"Epanechnikov kernel, bandwidth {m.bandwidth}")
        note = (f"Per-year logit propensity score on the controls; {how}; common support. Matched rows: "
                f"{m.n_treated} treated, {m.n_controls} control city-years. Bias = 100 (mean difference) / "
                "sqrt of the mean of the unmatched variances; p from a (weighted) t-test after matching.")
        return simple_table(head, body, note, fmt)

    def plot(self, path, title: str = "Propensity scores before and after matching"):
        """Densities of the propensity score, pilot vs other cities, before and after matching."""
        from estimation.engine.figures import pscore_density_figure

        return pscore_density_figure(self.matching.scores, self.matching.rows, path, title)


def psm_did(con: duckdb.DuckDBPyConnection, relation, outcome: str, controls: Sequence[str],
            method: str = "nearest") -> PSMEstimate:
    """PSM-DID as the studies run it: per-year logit of the pilot-city indicator on the controls,
    matching (``nearest``: 1:1 with replacement, caliper; ``kernel``: Epanechnikov), common
    support; then the baseline DID with controls and city and year FE on the matched rows (kernel:
    weighted by the matching weights), CRV1 by city."""
    from estimation.engine.psm import balance, match, matched_relation
    from estimation.engine.sqlutil import temp_scope

    matching = match(con, relation, UNIT, TIME, GROUP, controls, method=method)
    table = balance(con, relation, UNIT, TIME, GROUP, matching)
    formula = f"{outcome} ~ {' + '.join((TREATMENT, *controls))} | {UNIT} + {TIME}"
    with temp_scope(con) as scope:
        matched = matched_relation(con, scope, relation, UNIT, TIME, matching)
        result = feols(con, matched, formula, vcov={"CRV1": UNIT},
                       weights="match_weight" if method == "kernel" else None)
    return PSMEstimate(matching, table, result)


def winsorised(panel: str, columns: Sequence[str], p: float = 0.01) -> str:
    """The panel with each column clipped at its p and 1 - p quantiles over the whole sample
    (quantile_cont: linear interpolation, as numpy's default; the dbt macro `winsorize`). A
    missing value stays missing (least/greatest would turn it into the lower quantile)."""
    clipped = ", ".join(f"case when {c} is not null then least(greatest({c}, quantile_cont({c}, {p}) over ()), "
                        f"quantile_cont({c}, {1 - p}) over ()) end as {c}" for c in columns)
    return f"select * replace ({clipped}) from {panel}"


@dataclass
class IVEstimates:
    first_stage: FeolsResult  # OLS of the treatment on the instrument (+ controls, FE)
    second_stage: IVResult

    def render(self, fmt: str = "markdown", labels: Mapping[str, str] = TERM_LABELS,
               psm: PSMEstimate | None = None) -> str:
        """(PSM-DID,) the first stage and 2SLS side by side, with the Kleibergen-Paap rows
        (Stock-Yogo in [])."""
        iv = self.second_stage
        instrument = iv.instruments[0]
        models = ([psm.result] if psm else []) + [self.first_stage, iv]
        names = ["(1)", "(2)", "(3)"][-len(models):]
        tab = regression_table(models, terms=[iv.endogenous[0], instrument], labels=labels,
                               controls=True, fe_labels=FE_LABELS, stats=("nobs", "r2"), model_names=names)
        d = iv.diagnostics
        pad = [Cell("")] * (len(models) - 1)
        extra = []
        if "kp_rk_lm" in d:
            lm = d["kp_rk_lm"]
            extra.append(Row("info", "Kleibergen-Paap rk LM", pad + [Cell(f"{lm['statistic']:.3f}", _stars(lm["p"]))]))
            sy = f" [{d['stock_yogo_10pct']:.2f}]" if d.get("stock_yogo_10pct") else ""
            extra.append(Row("info", "Kleibergen-Paap rk Wald F", pad + [Cell(f"{d['kp_rk_wald_f']:.3f}{sy}")]))
        extra.append(Row("info", "Cragg-Donald Wald F", pad + [Cell(f"{d['cragg_donald_f']:.3f}")]))
        at = next(i for i, r in enumerate(tab.rows) if r.kind == "info")
        tab.rows[at:at] = extra
        tab.note += " Within [] the Stock-Yogo critical value for 10% maximal IV size."
        if psm:
            tab.note += " (1): PSM-DID on the matched city-years; (2): first stage; (3): 2SLS."
        return tab.render(fmt)


def _stars(p: float) -> str:
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""


def persist_iv(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool, prefix: str,
               est: IVEstimates) -> int:
    """Both stages into main.estimates; the identification statistics into main.model_tests."""
    iv = est.second_stage
    n = persist_results(con, run_id, vintage, synthetic, [(f"{prefix}_first_stage", est.first_stage.formula,
                                                            est.first_stage), (f"{prefix}_2sls", iv.formula, iv)])
    d, first = iv.diagnostics, iv.first_stages[0]
    tests = [("first_stage_F", first.f, first.f_df[0], first.f_df[1], first.f_p),
             ("effective_F", first.effective_f, None, None, None),
             ("cragg_donald_F", d["cragg_donald_f"], None, None, None),
             ("anderson_LM", d["anderson_lm"]["statistic"], d["anderson_lm"]["df"], None, d["anderson_lm"]["p"])]
    if "kp_rk_lm" in d:
        tests += [("kp_rk_LM", d["kp_rk_lm"]["statistic"], d["kp_rk_lm"]["df"], None, d["kp_rk_lm"]["p"]),
                  ("kp_rk_wald_F", d["kp_rk_wald_f"], None, None, None)]
    if d.get("stock_yogo_10pct"):
        tests.append(("stock_yogo_10pct_size", d["stock_yogo_10pct"], None, None, None))
    persist_tests(con, run_id, vintage, f"{prefix}_2sls", tests)
    return n


def persist_descriptives_table(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, table_id: str,
                               desc: Descriptives) -> int:
    return persist_descriptives(con, run_id, vintage, table_id, desc.table, desc.vif)


def persist_psm(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool, model_id: str,
                est: PSMEstimate) -> int:
    """The matched DID into main.estimates, the balance table into main.balance."""
    n = persist_results(con, run_id, vintage, synthetic, [(model_id, est.result.formula, est.result)])
    persist_balance(con, run_id, vintage, model_id, est)
    return n


def persist_balance(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, model_id: str,
                    est: PSMEstimate) -> None:
    """The balance table of a matching into main.balance (its DID is persisted with its table)."""
    con.execute(BALANCE_DDL)
    frame = est.balance.assign(run_id=run_id, model_id=model_id, method=est.matching.method, vintage=vintage)
    con.register("__cr_balance", frame)
    try:
        con.execute("insert into main.balance by name select *, now() as created_at from __cr_balance")
    finally:
        con.unregister("__cr_balance")


BALANCE_DDL = """
create table if not exists main.balance (
    run_id varchar not null, model_id varchar not null, method varchar, variable varchar not null,
    mean_treated_before double, mean_control_before double, bias_before double,
    mean_treated_after double, mean_control_after double, bias_after double, reduction double,
    p_after double, vintage varchar, created_at timestamp not null
)
"""


# ---------------------------------------------------------------- robustness table

@dataclass
class Robustness:
    """One specification under several checks (each a column), the baseline first."""

    specs: list[ModelSpec]
    labels: list[str]
    results: list[FeolsResult]

    def render(self, fmt: str = "markdown", labels: Mapping[str, str] = TERM_LABELS) -> str:
        tab = regression_table(self.results, terms=[self.specs[0].regressors[0]], labels=labels, controls=True,
                               fe_labels=FE_LABELS, stats=("nobs", "r2"),
                               model_names=[f"({i}) {lab}" for i, lab in enumerate(self.labels, start=1)])
        return tab.render(fmt)


def persist_robustness(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                       est: Robustness) -> int:
    return persist_results(con, run_id, vintage, synthetic,
                           [(spec.model_id, spec.formula, r) for spec, r in zip(est.specs, est.results)])


# ---------------------------------------------------------------- estimates beside the ground truth

def estimate_ci(result: FeolsResult, term: str = TREATMENT) -> tuple[float, float, float]:
    """(coefficient, 95% CI low, high) of ``term``."""
    low, high = (float(v) for v in result.conf_int.loc[term])
    return float(result.coef[term]), low, high


def true_effects(ground_truth: dict) -> pd.Series:
    """The generator's index effect (factual - counterfactual) per (city_code, year)."""
    import numpy as np

    by = ground_truth["index"]["by_city_year"]
    diff = np.asarray(by["factual"]) - np.asarray(by["counterfactual"])
    return pd.DataFrame(diff, index=by["city_codes"], columns=by["years"]).stack().rename("effect")


# ---------------------------------------------------------------- mediation

def persist_mediation(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool, prefix: str,
                      med) -> int:
    """The three regressions of a mediation (estimation.engine.mediation.MediationResult) into
    main.estimates as <prefix>.step1 (mediator), .step2 (outcome on both), .total; the indirect
    effect into main.model_tests of <prefix>: indirect (a*b, Sobel p), sobel_se, boot_ci_low,
    boot_ci_high, boot_se, share_mediated."""
    names = {"mediator": "step1", "outcome": "step2", "total": "total"}
    n = persist_results(con, run_id, vintage, synthetic,
                        [(f"{prefix}.{names[k]}", r.formula, r) for k, r in med.steps.items()])
    lo, hi = med.boot_ci
    persist_tests(con, run_id, vintage, prefix, [
        ("indirect", med.indirect, None, None, med.sobel_p), ("sobel_se", med.sobel_se, None, None, None),
        ("boot_ci_low", lo, None, None, None), ("boot_ci_high", hi, None, None, None),
        ("boot_se", med.boot_se, med.draws, None, None), ("share_mediated", med.share_mediated, None, None, None)])
    return n
