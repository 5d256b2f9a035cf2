"""Synthetic panels for the tests and benchmarks (test support, not shipped with the product).

* :func:`make_panel` / :func:`unbalance` / :func:`singleton_panel` - small panels with unit/year
  effects, a staggered DID, controls, weights, NULLs and iterated singletons;
* :func:`did_panel` - DID panels of any size, vectorised;
* :func:`multi_fe_panel` - crossed unit/year/sector/source effects (3 or 4 FE, well connected);
* :func:`akm_panel` - a worker-firm-year panel with rare moves between regions of firms: a
  sparsely connected worker-firm graph on which alternating projections crawl.

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


def multi_fe_panel(seed: int, n_units: int = 120, n_periods: int = 8, n_sectors: int = 15, n_sources: int = 9,
                   drop: float = 0.0) -> pd.DataFrame:
    """Unit x year rows, each with a random sector and source (crossed, not nested, effects).

    y = 0.6 x1 - 0.4 x2 + a_unit + g_year + s_sector + h_source + e, heteroskedastic, with a
    unit-level shock (so that clustering matters); ``region`` nests units (6 per region).
    """
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_periods)
    year = np.tile(np.arange(2010, 2010 + n_periods), n_units)
    n = len(unit)
    sector = rng.integers(0, n_sectors, n)
    source = rng.integers(0, n_sources, n)
    a, g = rng.normal(size=n_units), rng.normal(size=n_periods)
    s, h = rng.normal(size=n_sectors), rng.normal(size=n_sources)
    x1 = rng.normal(size=n) + 0.5 * a[unit] + 0.5 * s[sector]
    x2 = rng.normal(size=n) + 0.4 * g[year - 2010] - 0.3 * h[source]
    y = (0.6 * x1 - 0.4 * x2 + a[unit] + g[year - 2010] + s[sector] + h[source]
         + rng.normal(size=n) * (1.0 + 0.4 * np.abs(x1)) + 0.5 * rng.normal(size=n_units)[unit])
    df = pd.DataFrame({"unit": unit, "year": year, "sector": sector, "source": source, "region": unit // 6,
                       "x1": x1, "x2": x2, "y": y, "w": rng.uniform(0.5, 2.0, n)})
    if drop > 0:
        df = df.loc[rng.random(n) >= drop].reset_index(drop=True)
    return df


def akm_panel(n_workers: int = 2_000, n_firms: int = 200, n_years: int = 10, seed: int = 0, *,
              firms_per_region: int = 10, move: float = 0.1, cross: float = 0.02,
              drop: float = 0.0) -> pd.DataFrame:
    """AKM-like worker-firm-year panel, vectorised (1M rows in about a second).

    Firms form regions of ``firms_per_region``; each year a worker moves with probability
    ``move``, to a firm of another region only with probability ``cross`` of a move. The
    worker-firm graph is therefore a chain of dense regional clusters joined by few movers:
    the slow case for alternating projections (20,000 rows: ~57,000 sweeps at 1e-13).

    y = 0.7 x1 - 0.3 x2 + a_worker + psi_firm + g_year + e, with x1 correlated with the
    worker and firm effects and x2 with the year.
    """
    rng = np.random.default_rng(seed)
    n_regions = max(1, n_firms // firms_per_region)
    region = rng.integers(0, n_regions, n_workers)
    firm = np.empty((n_workers, n_years), dtype=np.int64)
    firm[:, 0] = region * firms_per_region + rng.integers(0, firms_per_region, n_workers)
    for t in range(1, n_years):
        moves = rng.random(n_workers) < move
        far = moves & (rng.random(n_workers) < cross)
        region = np.where(far, rng.integers(0, n_regions, n_workers), region)
        new = region * firms_per_region + rng.integers(0, firms_per_region, n_workers)
        firm[:, t] = np.where(moves, new, firm[:, t - 1])
    worker = np.repeat(np.arange(n_workers, dtype=np.int64), n_years)
    year = np.tile(np.arange(2000, 2000 + n_years, dtype=np.int64), n_workers)
    f = firm.ravel()
    n = len(f)
    a = rng.normal(size=n_workers)
    psi = rng.normal(size=n_regions * firms_per_region) + 0.3 * (np.arange(n_regions * firms_per_region)
                                                                 // firms_per_region)
    g = rng.normal(size=n_years)
    x1 = rng.normal(size=n) + 0.5 * a[worker] + 0.5 * psi[f]
    x2 = rng.normal(size=n) + 0.2 * (year - 2000)
    y = 0.7 * x1 - 0.3 * x2 + a[worker] + psi[f] + g[year - 2000] + rng.normal(size=n)
    df = pd.DataFrame({"worker": worker, "firm": f, "year": year, "x1": x1, "x2": x2, "y": y,
                       "w": rng.uniform(0.5, 2.0, n)})
    if drop > 0:
        df = df.loc[rng.random(n) >= drop].reset_index(drop=True)
    return df
