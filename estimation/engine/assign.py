"""Random placebo assignments of adoption dates to units (numpy, seeded).

Each draw gives every unit an adoption date or none (never treated):

* ``permute="adoption"``: a random permutation of the units' adoption dates
  (never-treated included) across units, within strata when given.  Cohort
  sizes are those of the data in every draw.  With ``n_pseudo_treated`` the
  permuted vector holds that many dates (drawn once, with replacement, from
  the observed dates) and "never" for all other units.
* ``permute="units"``: each draw picks ``n_pseudo_treated`` units (default: as
  many as are treated; within strata: as many per stratum as are treated
  there) and gives each a date drawn with replacement from the observed dates,
  so cohort sizes vary across draws.

With a single adoption date (all pilot cities 2016) both schemes draw the
same distribution: a random set of pseudo-treated units with the real date.
This is what the studies do, and what pyfixest's ``ritest`` cannot do for
staggered designs (it permutes the treatment column row by row).
"""

from __future__ import annotations

import numpy as np


def _permute_rows(base: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` independent permutations of ``base`` (one per row)."""
    order = np.argsort(rng.random((draws, base.size)), axis=1)
    return base[order]


def draw_assignments(
    adopt: np.ndarray,
    draws: int,
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
    n_pseudo_treated: int | None = None,
    permute: str = "adoption",
) -> np.ndarray:
    """Return a (draws, units) float array of adoption dates, NaN = never treated."""
    adopt = np.asarray(adopt, dtype=float)
    n_units = adopt.size
    treated_dates = adopt[~np.isnan(adopt)]
    if treated_dates.size == 0:
        raise ValueError("no treated unit: there are no adoption dates to permute")
    if draws < 1:
        raise ValueError("draws must be >= 1")
    groups = [np.arange(n_units)] if strata is None else [
        np.flatnonzero(strata == s) for s in np.unique(strata)
    ]
    if n_pseudo_treated is not None:
        if not 1 <= n_pseudo_treated < n_units:
            raise ValueError(f"n_pseudo_treated must be in [1, {n_units - 1}]")
        if strata is not None:
            raise ValueError("n_pseudo_treated cannot be combined with strata "
                             "(per-stratum counts would be arbitrary); use the observed counts")
    out = np.full((draws, n_units), np.nan)
    if permute == "adoption":
        base = adopt.copy()
        if n_pseudo_treated is not None:
            base[:] = np.nan
            base[:n_pseudo_treated] = rng.choice(treated_dates, size=n_pseudo_treated, replace=True)
        for idx in groups:
            out[:, idx] = _permute_rows(base[idx], draws, rng)
        return out
    if permute == "units":
        for idx in groups:
            n_t = int(np.sum(~np.isnan(adopt[idx]))) if n_pseudo_treated is None else n_pseudo_treated
            if n_t == 0:
                continue
            chosen = np.argsort(rng.random((draws, idx.size)), axis=1)[:, :n_t]
            dates = rng.choice(treated_dates, size=(draws, n_t), replace=True)
            rows = np.repeat(np.arange(draws), n_t)
            out[rows, idx[chosen.ravel()]] = dates.ravel()
        return out
    raise ValueError("permute must be 'adoption' or 'units'")
