"""What the resilience study's 2SLS estimates on the generator's data, split into its parts.

With one instrument, exogenous controls and absorbed city and year effects, the 2SLS
coefficient is Σ ž·y / Σ ž·d, where ž is the instrument residualised on the fixed effects and
the controls (Frisch–Waugh–Lovell). Writing the factual index y = y0 + (y1 − y0):

* ``estimand`` = Σ ž·(y1 − y0) / Σ ž·d — the policy's effect, weighted as this instrument
  weights city-years (later years, where the internet series is higher, count more, and the
  effect ramps up; so it is not the ATT);
* ``counterfactual_term`` = Σ ž·y0 / Σ ž·d — what the instrument picks up from the pilots'
  own untreated path (their differential trend; zero in expectation only if the instrument is
  unrelated to it).

Their sum is the 2SLS coefficient on the complete latent data. The controls are the study's
(dbt_project/models/intermediate/panel/int_study_controls.sql), computed here from the latent
data so that the truth never depends on the warehouse it checks.
"""
from __future__ import annotations

import numpy as np

from warehouse.sample import national

CONTROLS = ("eocden", "traff", "gove", "inv", "salary")


def study_controls(d: dict[str, np.ndarray]) -> np.ndarray:
    """The resilience study's five controls, (city, year, 5), in the warehouse's definitions."""
    return np.stack([
        np.log(d["gdp"] / d["land_area"]),
        d["road_area"] / d["land_area"],
        d["fiscal_expenditure"] / d["gdp"],
        np.log1p(d["fdi"]),
        np.log(d["avg_wage"]),
    ], axis=-1)


def instrument(phones1984: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Telephones per 100 (1984) × the previous year's national internet users in millions."""
    previous = national.series(years - 1)["internet_users"] / 100.0
    return phones1984[:, None] * previous[None, :]


def two_way_within(M: np.ndarray) -> np.ndarray:
    """Remove city and year means of a balanced (city, year[, k]) array: exact in one step."""
    return M - M.mean(axis=1, keepdims=True) - M.mean(axis=0, keepdims=True) + M.mean(axis=(0, 1), keepdims=True)


def decompose(z: np.ndarray, d: np.ndarray, y_factual: np.ndarray, y_counterfactual: np.ndarray,
              controls: np.ndarray) -> dict[str, float]:
    """The 2SLS coefficient's two parts on a balanced (city, year) panel; None when the panel
    cannot identify it (a single year, or no post-adoption year, leaves Σ ž·d = 0)."""
    n, T = z.shape
    zw = two_way_within(z[..., None]).reshape(n * T)
    xw = two_way_within(controls).reshape(n * T, -1)
    # lstsq (SVD) rather than normal equations: the controls are badly scaled.
    z_res = zw - xw @ np.linalg.lstsq(xw, zw, rcond=None)[0]
    denominator = float(z_res @ d.reshape(-1))
    if not abs(denominator) > 1e-12 * max(1.0, float(np.abs(z_res).sum())):
        return {"estimand": None, "counterfactual_term": None, "coefficient_on_latent_data": None}
    estimand = float(z_res @ (y_factual - y_counterfactual).reshape(-1)) / denominator
    counterfactual = float(z_res @ y_counterfactual.reshape(-1)) / denominator
    return {"estimand": estimand, "counterfactual_term": counterfactual,
            "coefficient_on_latent_data": estimand + counterfactual}
