"""The resilience study's Tables 5-7: mechanisms, city size and institutions.

* Table 5 (:func:`run_table5`): the baseline DID (controls, city and year FE, CRV1 by city) on
  the technology-talent share and on ln(1 + new digital-firm registrations, divisions 63-65).
* Table 6 (:func:`run_table6`): city size by the 2014 State Council tiers (``size_tier_group``:
  megacity, extra-large, large, medium, small). As the study prints it, one column per tier with
  DID x tier as the only treatment term; then one model with every tier's interaction, whose
  coefficients are the tiers' own effects.
* Table 7 (:func:`run_table7`): DID x DIG (core e-government comprehensive pilot) and DID x IPP
  (IP demonstration city from its designation year), each as the study prints it (the
  interaction alone) and with DID beside it, so that the interaction is the difference between
  the two kinds of pilot cities.

Why both forms. A column with DID x group as its only treatment term compares the group's pilot
city-years with every other city-year, the other groups' pilot cities included: their effect
sits in the comparison and biases the coefficient towards zero (or beyond, when they gain more).
The all-interactions model and DID + DID x group separate the groups and are what the ground
truth of the synthetic sample can be compared with (:func:`truth_rows`).
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from estimation.engine.model import feols
from estimation.engine.result import FeolsResult

from .common import PANEL, TIME, TREATMENT, UNIT, true_effects
from .resilience import CONTROLS, OUTCOME

MECHANISMS = {"tech_talent_share": "Talent pool", "log_new_digital_firms": "Enterprise clustering"}
TIERS = ("small", "medium", "large", "extra_large", "megacity")  # the study's column order
TIER_LABELS = {"small": "Small", "medium": "Medium", "large": "Large", "extra_large": "Extra-large",
               "megacity": "Megacity"}
INSTITUTIONS = {"dig": ("egov_pilot", "DIG: e-government comprehensive pilot"),
                "ipp": ("ip_city_post", "IPP: IP demonstration city (from designation)")}


@dataclass
class Model:
    model_id: str  # e.g. resilience.table6.megacity
    label: str
    formula: str
    result: FeolsResult


def _fit(con, relation: str, model_id: str, label: str, treatment_terms: list[str], outcome: str = OUTCOME) -> Model:
    formula = f"{outcome} ~ {' + '.join([*treatment_terms, *CONTROLS])} | {UNIT} + {TIME}"
    return Model(model_id, label, formula, feols(con, relation, formula, vcov={"CRV1": UNIT}))


def run_table5(con: duckdb.DuckDBPyConnection, relation: str = PANEL) -> list[Model]:
    return [_fit(con, relation, f"resilience.table5.{m}", label, [TREATMENT], outcome=m)
            for m, label in MECHANISMS.items()]


def tier_relation(panel: str = PANEL) -> str:
    """The panel with DID x tier dummies did_<tier> (0 outside the tier)."""
    cols = ", ".join(f"{TREATMENT} * (size_tier_group = '{t}')::int as did_{t}" for t in TIERS)
    return f"select *, {cols} from {panel}"


def run_table6(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> list[Model]:
    """One column per tier as the study prints them, then every tier in one model ('all')."""
    relation = tier_relation(panel)
    models = [_fit(con, relation, f"resilience.table6.{t}", TIER_LABELS[t], [f"did_{t}"]) for t in TIERS]
    models.append(_fit(con, relation, "resilience.table6.all", "All tiers", [f"did_{t}" for t in TIERS]))
    return models


def institution_relation(panel: str = PANEL) -> str:
    cols = ", ".join(f"{TREATMENT} * coalesce({flag}::int, 0) as did_{key}" for key, (flag, _) in INSTITUTIONS.items())
    return f"select *, {cols} from {panel}"


def run_table7(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> list[Model]:
    """DID x DIG and DID x IPP: as the study prints them, and with DID beside each."""
    relation = institution_relation(panel)
    models = []
    for key, (_, label) in INSTITUTIONS.items():
        name = key.upper()
        models.append(_fit(con, relation, f"resilience.table7.{key}", name, [f"did_{key}"]))
        models.append(_fit(con, relation, f"resilience.table7.{key}_with_did", f"{name}, with DID",
                           [TREATMENT, f"did_{key}"]))
    return models


# ------------------------------------------------------------------ group effects for the figures

def combination(result: FeolsResult, terms: list[str], alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(estimate, se, ci_low, ci_high) of the sum of `terms`, with the model's vcov and t df."""
    w = pd.Series(1.0, index=terms)
    V = result.vcov_matrix.loc[terms, terms].to_numpy()
    est = float(result.coef[terms].sum())
    se = float(np.sqrt(w.to_numpy() @ V @ w.to_numpy()))
    q = stats.t.ppf(1 - alpha / 2, result.df_t)
    return est, se, est - q * se, est + q * se


def group_effects(models: list[Model]) -> pd.DataFrame:
    """Each group's own effect with its 95% CI: the tiers from the all-tiers model; for DIG and
    IPP the cities without (DID) and with (DID + DID x group) from the with-DID models."""
    rows = []
    by_id = {m.model_id: m for m in models}
    if "resilience.table6.all" in by_id:
        r = by_id["resilience.table6.all"].result
        for t in TIERS:
            est, se, lo, hi = combination(r, [f"did_{t}"])
            rows.append({"table": "table6", "group": TIER_LABELS[t], "key": t, "coef": est, "se": se,
                         "ci_low": lo, "ci_high": hi})
    for key, (_, label) in INSTITUTIONS.items():
        m = by_id.get(f"resilience.table7.{key}_with_did")
        if m is None:
            continue
        name = key.upper()
        for group, terms in ((f"not {name}", [TREATMENT]), (name, [TREATMENT, f"did_{key}"])):
            est, se, lo, hi = combination(m.result, terms)
            rows.append({"table": f"table7.{key}", "group": group, "key": group, "coef": est, "se": se,
                         "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ ground truth (synthetic sample)

def pilot_rows(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> pd.DataFrame:
    """The pilot city-years after adoption with their tier group and DIG / IPP status."""
    return con.execute(f"select {UNIT}, {TIME}, size_tier_group, coalesce(egov_pilot::int, 0) as dig, "
                       f"coalesce(ip_city_post::int, 0) as ipp from {panel} where {TREATMENT} = 1").df()


def truth_rows(tables: "HeterogeneityTables", ground_truth: dict) -> list[dict]:
    """Each group effect beside the generator's mean effect on that group's pilot city-years after
    adoption, with whether the 95% CI covers it and whether CRV1 can be trusted there."""
    effects = true_effects(ground_truth)
    flags = tables.pilots.copy()
    flags["effect"] = [effects.get((c, int(y)), np.nan) for c, y in zip(flags[UNIT], flags[TIME])]
    out = []
    for row in group_effects(tables.models).itertuples(index=False):
        if row.table == "table6":
            members = flags.size_tier_group == row.key
        else:
            members = flags[row.table.split(".")[1]] == int(not row.group.startswith("not "))
        true = flags.loc[members, "effect"].mean()
        n = int(flags.loc[members, UNIT].nunique())
        out.append({"table": row.table, "group": row.group, "pilot_cities": n, "estimate": round(row.coef, 5),
                    "ci_low": round(row.ci_low, 5), "ci_high": round(row.ci_high, 5),
                    "true_effect": None if np.isnan(true) else round(float(true), 5),
                    "covered": None if np.isnan(true) else bool(row.ci_low <= true <= row.ci_high),
                    "inference": "reliable" if n >= FEW_TREATED else f"fewer than {FEW_TREATED} pilot cities: "
                                                                      "CRV1 unreliable"})
    return out


# ------------------------------------------------------------------ the three tables together

TERM_LABELS = {TREATMENT: "DID", **{f"did_{t}": f"DID x {TIER_LABELS[t]}" for t in TIERS},
               "did_dig": "DID x DIG", "did_ipp": "DID x IPP"}
FEW_TREATED = 5  # below this many treated clusters CRV1 inference is unreliable (MacKinnon & Webb 2017)


@dataclass
class HeterogeneityTables:
    """Tables 5, 6 and 7 of the resilience study, with the pooled baseline for the figures."""

    models: list[Model]
    baseline: FeolsResult  # Table 3 column (4), the pooled estimate in the figures
    pilots: pd.DataFrame  # pilot_rows(): who is in which group, for the ground-truth comparison

    def table(self, number: int) -> list[Model]:
        return [m for m in self.models if m.model_id.startswith(f"resilience.table{number}.")]

    def render(self, number: int, fmt: str = "markdown") -> str:
        from estimation.engine.tables import regression_table

        from .common import FE_LABELS

        models = self.table(number)
        terms = list(dict.fromkeys(t for m in models for t in m.result.coef.index if t in TERM_LABELS))
        tab = regression_table([m.result for m in models], terms=terms, labels=TERM_LABELS, controls=True,
                               fe_labels=FE_LABELS, stats=("nobs", "r2"),
                               model_names=[f"({i}) {m.label}" for i, m in enumerate(models, start=1)])
        if number == 6:
            tab.note += (" Columns (1)-(5) as the study prints them: DID x tier is the only treatment term, so "
                         "the other tiers' pilot cities sit in the comparison group. Column (6): every tier's "
                         "interaction in one model, each the tier's own effect.")
        if number == 7:
            tab.note += (" DIG: core e-government comprehensive pilot city; IPP: IP demonstration city from its "
                         "designation year. The columns without DID are the study's; with DID beside it, DID x DIG (IPP) is the "
                         "difference between pilot cities with and without the status, tested by its t-test.")
        return tab.render(fmt)

    def plot(self, number: int, path, title: str):
        """The groups' own effects with 95% CIs, the pooled baseline as a dashed line."""
        from estimation.engine.figures import group_coefficient_figure

        effects = group_effects(self.models)
        effects = effects[effects["table"].str.startswith(f"table{number}")]
        return group_coefficient_figure(effects, float(self.baseline.coef[TREATMENT]), path, title)


def run_tables(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> HeterogeneityTables:
    from .resilience import placebo_formula

    baseline = feols(con, panel, placebo_formula(), vcov={"CRV1": UNIT})
    models = run_table5(con, panel) + run_table6(con, panel) + run_table7(con, panel)
    return HeterogeneityTables(models, baseline, pilot_rows(con, panel))
