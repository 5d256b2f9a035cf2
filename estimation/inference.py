"""t statistics, two-sided p-values and confidence intervals (scipy.stats.t)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def t_inference(
    coef: np.ndarray, se: np.ndarray, df: int, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (t, p, ci_low, ci_high) with a Student-t(df) reference.

    p = 2 * P(T_df > |t|) is computed with the survival function (no
    cancellation for large |t|); the interval is coef -/+ t_{1-alpha/2, df} se.
    """
    coef = np.asarray(coef, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = coef / se
    p = 2.0 * stats.t.sf(np.abs(tstat), df)
    crit = stats.t.ppf(1.0 - alpha / 2.0, df)
    return tstat, p, coef - crit * se, coef + crit * se
