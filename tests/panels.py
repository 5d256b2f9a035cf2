"""Synthetic panels for the tests and benchmarks (test support, not shipped with the product).

* :func:`make_panel` / :func:`unbalance` / :func:`singleton_panel` - small panels with unit/year
  effects, a staggered DID, controls, weights, NULLs and iterated singletons;
* :func:`did_panel` - DID panels of any size, vectorised.

``did_panel`` draws, vectorised in numpy (9 million rows in a few seconds):

    y_it = tau D_it + X_it'b + a_i + g_t + u_it,   D_it = 1[t >= A_i] for treated units,

with controls correlated with the unit effects, adoption dates in ``cohorts``
(one date: the studies' single-cohort design), an optional share of rows
deleted at random (unbalanced panel) and a unit-level ``stratum`` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def did_panel(
    n_units: int = 200,
    n_periods: int = 12,
    seed: int = 0,
    *,
    n_controls: int = 5,
    treated_share: float = 0.25,
    cohorts: tuple[int, ...] = (2016,),
    first_period: int = 2012,
    drop: float = 0.0,
    tau: float = 0.05,
    n_strata: int = 10,
) -> pd.DataFrame:
    """Columns: unit, year, stratum, treat, adoption_year, did, x1..xK, y."""
    rng = np.random.default_rng(seed)
    n = n_units * n_periods
    unit = np.repeat(np.arange(n_units, dtype=np.int64), n_periods)
    year = np.tile(np.arange(first_period, first_period + n_periods, dtype=np.int64), n_units)
    a = rng.normal(size=n_units)
    g = rng.normal(scale=0.5, size=n_periods)
    treated = rng.random(n_units) < treated_share
    adopt = np.where(treated, rng.choice(np.asarray(cohorts), size=n_units), -1)
    did = (treated[unit] & (year >= adopt[unit])).astype(np.float64)
    out = {"unit": unit, "year": year, "stratum": (np.arange(n_units) % n_strata)[unit],
           "treat": treated[unit].astype(np.int64),
           "adoption_year": np.where(treated, adopt, 0)[unit], "did": did}
    y = tau * did + a[unit] + g[year - first_period] + rng.normal(size=n)
    for j in range(n_controls):
        x = rng.normal(size=n) + 0.5 * a[unit]
        out[f"x{j + 1}"] = x
        y += (0.3 / (j + 1)) * x
    # cluster-correlated noise, so that clustering matters
    out["y"] = y + 0.5 * rng.normal(size=n_units)[unit]
    frame = pd.DataFrame(out)
    frame.loc[~treated[unit], "adoption_year"] = pd.NA
    frame["adoption_year"] = frame["adoption_year"].astype("Int64")
    if drop > 0:
        frame = frame.loc[rng.random(n) >= drop].reset_index(drop=True)
    return frame


def make_panel(seed: int, n_units: int = 60, n_periods: int = 12) -> pd.DataFrame:
    """Balanced panel with unit/year effects, a staggered DID and controls."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n_units), n_periods),
            "year": np.tile(np.arange(2005, 2005 + n_periods), n_units),
        }
    )
    n = len(df)
    a = rng.normal(size=n_units)[df["unit"]]
    g = rng.normal(size=n_periods)[df["year"] - 2005]
    adopt = rng.integers(2008, 2016, size=n_units)
    treated = rng.random(n_units) < 0.5
    df["did"] = (treated[df["unit"]] & (df["year"] >= adopt[df["unit"]])).astype(float)
    df["x1"] = rng.normal(size=n) + 0.5 * a
    df["x2"] = rng.normal(size=n) + 0.3 * g
    df["region"] = df["unit"] // 6  # units nested in regions
    df["res"] = (
        0.4 * df["did"] + 0.8 * df["x1"] - 0.5 * df["x2"] + a + g
        + rng.normal(size=n) * (1.0 + 0.5 * np.abs(df["x1"]))
        + rng.normal(size=n_units)[df["unit"]] * 0.5  # within-unit correlation
    )
    df["w"] = rng.uniform(0.5, 2.0, size=n)
    return df


def unbalance(df: pd.DataFrame, seed: int, frac_drop: float = 0.2, n_null: int = 15) -> pd.DataFrame:
    """Drop a share of rows at random and set a few values to NaN (NULL in DuckDB)."""
    rng = np.random.default_rng(seed)
    out = df.loc[rng.random(len(df)) >= frac_drop].copy()
    for col in ("res", "x1", "x2"):
        idx = rng.choice(out.index.to_numpy(), size=n_null // 3, replace=False)
        out.loc[idx, col] = np.nan
    return out


def singleton_panel(seed: int) -> pd.DataFrame:
    """Unbalanced panel plus rows whose removal cascades (iterated singletons)."""
    df = unbalance(make_panel(seed, n_units=30, n_periods=8), seed=seed, n_null=0)
    chain = pd.DataFrame(
        {  # unit 900: one obs in year 2030 (singleton year) -> then unit 900 single -> ...
            "unit": [900, 900, 901, 901, 902],
            "year": [2030, 2005, 2005, 2031, 2006],
        }
    )
    rng = np.random.default_rng(seed)
    for col in ("did", "x1", "x2", "res", "w"):
        chain[col] = rng.normal(size=len(chain))
    chain["region"] = 999
    return pd.concat([df, chain], ignore_index=True)
