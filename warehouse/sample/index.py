"""Resilience indicators and the entropy-weighted index, in numpy, for the ground truth.

This is the reference implementation the SQL version in the warehouse is checked against,
so it follows the documented definitions literally (min-max over the whole panel,
0 * ln 0 = 0, weights from the factual data).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (indicator, dimension); every indicator has a positive direction.
INDICATORS: tuple[tuple[str, str], ...] = (
    ("gdp_per_capita", "resistance_recovery"),
    ("trade_dependency", "resistance_recovery"),
    ("unemp_insurance_coverage", "resistance_recovery"),
    ("savings_per_capita", "resistance_recovery"),
    ("urbanisation_rate", "resistance_recovery"),
    ("consumption_capacity", "adaptability_adjustment"),
    ("gdp_growth", "adaptability_adjustment"),
    ("fiscal_self_sufficiency", "adaptability_adjustment"),
    ("financial_development", "adaptability_adjustment"),
    ("hospital_beds_per_10k", "adaptability_adjustment"),
    ("edu_sci_expenditure_share", "innovation_transformation"),
    ("industrial_advancement", "innovation_transformation"),
    ("human_capital", "innovation_transformation"),
    ("patents_granted", "innovation_transformation"),
)
INDICATOR_NAMES = tuple(name for name, _ in INDICATORS)
DIMENSIONS = ("resistance_recovery", "adaptability_adjustment", "innovation_transformation")


def indicators(d: dict[str, np.ndarray], usd_cny: np.ndarray) -> np.ndarray:
    """Indicator cube (city, year, indicator); year 0 has no growth rate and is NaN there."""
    pop = d["pop_total"]
    gdp = d["gdp"]
    growth = np.full_like(gdp, np.nan)
    growth[:, 1:] = gdp[:, 1:] / gdp[:, :-1] - 1.0
    cols = [
        gdp / pop,
        d["trade_total"] * usd_cny[None, :] / gdp,  # 万美元 -> 万元 at that year's average rate
        d["unemp_insured"] / (pop * 1e4),
        d["savings"] / pop,
        d["pop_urban"] / pop,
        d["retail_sales"] / gdp,
        growth,
        d["fiscal_revenue"] / d["fiscal_expenditure"],
        (d["deposits"] + d["loans"]) / gdp,
        d["hospital_beds"] / pop,
        (d["edu_expenditure"] + d["sci_expenditure"]) / gdp,
        d["va_tertiary"] / d["va_secondary"],
        d["college_students"] / (pop * 1e4) * 1e5,
        d["patents_granted"],
    ]
    return np.stack(cols, axis=-1)


@dataclass(frozen=True)
class EntropyModel:
    weights: np.ndarray
    mins: np.ndarray
    maxes: np.ndarray
    entropy: np.ndarray

    def normalise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mins) / (self.maxes - self.mins)

    def score(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Index and dimension scores for rows of X (any data, this model's min/max and weights)."""
        contrib = self.normalise(X) * self.weights
        dims = {
            dim: contrib[:, [j for j, (_, dj) in enumerate(INDICATORS) if dj == dim]].sum(axis=1)
            for dim in DIMENSIONS
        }
        return contrib.sum(axis=1), dims


def fit_entropy(X: np.ndarray) -> EntropyModel:
    """Entropy weights from an (observations x indicators) matrix without missing values."""
    if not np.isfinite(X).all():
        raise ValueError("the entropy method needs complete data")
    mins, maxes = X.min(axis=0), X.max(axis=0)
    Xn = (X - mins) / (maxes - mins)
    p = Xn / Xn.sum(axis=0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    e = -plogp.sum(axis=0) / np.log(X.shape[0])
    d = 1.0 - e
    return EntropyModel(weights=d / d.sum(), mins=mins, maxes=maxes, entropy=e)
