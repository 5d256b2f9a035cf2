"""Yearbook variables that only the new-quality-productivity (NQP) indices use.

Drawn from their own random stream, so adding them left every resilience variable (and the
resilience ground truth) exactly as it was. Magnitudes are stylised national ratios
(docs/sample-data.md § NQP variables); they are synthetic like everything else here.
"""
from __future__ import annotations

import numpy as np

BASE_YEAR = 2011

# Long-run (tau = 1) log effects of the pilot zones on the digital-infrastructure variables and on
# digital inclusive finance (the NQP study's first mediator).
POLICY_EFFECTS = {"broadband_users": 0.08, "telecom_volume": 0.15, "digital_finance": 0.10}
# The mediator path of digital finance: telecom business volume (an NQP indicator) scales with
# (digital finance / its first-year level)^DIGITAL_FINANCE_TO_TELECOM in every city-year, so the
# pilot zones raise NQP also through digital finance (ground truth: warehouse/sample/nqp_truth.py).
DIGITAL_FINANCE_TO_TELECOM = 0.5

# Rates and intensities that do not add up across cities: (variable, weight for averaging).
NON_ADDITIVE = {"wastewater_treatment_rate": "pop_urban", "digital_finance": "pop_total"}


def _noise(rng: np.random.Generator, shape: tuple[int, int], rho: float, sd: float) -> np.ndarray:
    """AR(1) noise along years, stationary from the first year."""
    e = rng.standard_normal(shape) * sd
    out = np.empty(shape)
    out[:, 0] = e[:, 0] / np.sqrt(1 - rho**2)
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + e[:, t]
    return out


def counterfactual(cf: dict[str, np.ndarray], prominence: np.ndarray, resource: np.ndarray,
                   years: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """NQP variables without the policy, built on the resilience variables of the same city-years."""
    n, T = cf["gdp"].shape
    shape = (n, T)
    k = (years - BASE_YEAR).astype(float)[None, :]
    z = rng.standard_normal((7, n))
    P, res = prominence[:, None], resource.astype(float)[:, None]
    gdp, pop = cf["gdp"], cf["pop_total"]

    ratio = np.clip(17.0 + 2.0 * z[0], 11.0, 24.0)[:, None] * np.exp(_noise(rng, shape, 0.7, 0.02))
    teachers = cf["college_students"] / ratio
    # Industrial SO2, tonnes: ~22 t per 1e8 yuan in 2011, heavier in resource-based cities, falling fast.
    so2 = (0.0022 * np.exp(0.45 * res - 0.25 * P + 0.35 * z[1][:, None]) * np.exp(-0.11 * k)
           * np.exp(_noise(rng, shape, 0.6, 0.08)) * gdp)
    # Electricity use, 万kWh: ~0.085 万kWh per 万元 in 2011, falling ~3 % a year (energy-intensity proxy).
    electricity = (0.085 * np.exp(0.35 * res - 0.15 * P + 0.25 * z[2][:, None]) * np.exp(-0.03 * k)
                   * np.exp(_noise(rng, shape, 0.6, 0.03)) * gdp)
    gap = np.clip(0.22 * np.exp(-0.6 * P + 0.4 * z[3][:, None]), 0.01, 0.6) * np.exp(-0.12 * k)
    wastewater = np.clip(100.0 * (1.0 - gap) + 0.8 * _noise(rng, shape, 0.5, 1.0), 40.0, 100.0)
    broadband = (np.clip(0.12 * np.exp(0.35 * P + 0.15 * z[4][:, None]), 0.03, 0.5) * np.exp(0.10 * k)
                 * np.exp(_noise(rng, shape, 0.7, 0.02)) * pop)
    broadband = np.minimum(broadband, 0.65 * pop)
    mobile = (np.clip(0.75 * np.exp(0.25 * P + 0.12 * z[5][:, None]), 0.4, 2.5) * np.exp(0.035 * k)
              * np.exp(_noise(rng, shape, 0.7, 0.02)) * pop)
    # Telecom business volume (current-price series grew ~25 %/yr with data traffic), 万元; part of
    # that growth comes through digital finance (below), drawn after every other variable so that
    # adding it left their random streams unchanged.
    telecom = (0.025 * np.exp(0.30 * P + 0.2 * z[6][:, None]) * np.exp(0.22 * k)
               * np.exp(_noise(rng, shape, 0.6, 0.04)) * gdp)
    # Digital inclusive finance, a synthetic stand-in for the Peking University index (about 40-60
    # in 2011, rising to 250-350 by 2023; higher in prominent cities).
    zf = rng.standard_normal(n)
    finance = (50.0 * np.exp(0.25 * P + 0.12 * zf[:, None]) * np.exp(0.16 * k - 0.004 * k**2)
               * np.exp(_noise(rng, shape, 0.7, 0.03)))
    # the finance path replaces part of telecom's trend: 0.22 k overall as before, on average
    telecom = telecom * (finance / finance[:, :1]) ** DIGITAL_FINANCE_TO_TELECOM * np.exp(
        -DIGITAL_FINANCE_TO_TELECOM * (0.16 * k - 0.004 * k**2))
    return {
        "college_teachers": teachers,
        "so2_industrial": so2,
        "electricity_use": electricity,
        "wastewater_treatment_rate": wastewater,
        "broadband_users": broadband,
        "mobile_users": mobile,
        "telecom_volume": telecom,
        "digital_finance": finance,
    }


def apply_policy(cf: dict[str, np.ndarray], tau: np.ndarray) -> dict[str, np.ndarray]:
    f = dict(cf)
    for var, effect in POLICY_EFFECTS.items():
        f[var] = cf[var] * np.exp(effect * tau)
    # telecom also follows digital finance: (finance factual / without policy)^elasticity
    f["telecom_volume"] = f["telecom_volume"] * np.exp(DIGITAL_FINANCE_TO_TELECOM * POLICY_EFFECTS["digital_finance"] * tau)
    f["broadband_users"] = np.minimum(f["broadband_users"], 0.7 * cf["pop_total"])
    return f
