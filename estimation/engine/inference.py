"""t statistics, two-sided p-values, confidence intervals and Wald/F tests.

The distribution functions come from scipy.special (the same routines scipy.stats calls:
stdtr/stdtrit for Student t, fdtrc for F, chdtrc for chi-squared), because importing
scipy.stats costs about 0.7 s, more than a small estimation from the command line takes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


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
    p = 2.0 * special.stdtr(df, -np.abs(tstat))
    crit = special.stdtrit(df, 1.0 - alpha / 2.0)
    return tstat, p, coef - crit * se, coef + crit * se


@dataclass(frozen=True)
class WaldTest:
    """Joint test that the selected coefficients are all zero.

    ``wald`` = b' V^-1 b (chi2 with ``df1`` = q degrees of freedom); ``f`` =
    wald / q, referred to F(q, ``df2``) with df2 the model's t degrees of
    freedom (G - 1 for clustered errors, N - K otherwise).
    """

    terms: tuple[str, ...]
    wald: float
    f: float
    df1: int
    df2: int
    p_f: float
    p_chi2: float


def wald_test(
    coef: np.ndarray, vcov: np.ndarray, idx, df2: int, terms: tuple[str, ...] = ()
) -> WaldTest:
    """Wald/F test of H0: coef[idx] = 0 with covariance ``vcov``."""
    idx = list(idx)
    b = np.asarray(coef, dtype=float)[idx]
    v = np.asarray(vcov, dtype=float)[np.ix_(idx, idx)]
    # a pseudo-inverse, as pyfixest, so a singular block (e.g. a clustered
    # vcov of rank < q) still gives a statistic rather than an exception
    w = float(b @ np.linalg.pinv(v) @ b)
    q = len(idx)
    f = w / q
    return WaldTest(tuple(terms), w, f, q, int(df2), float(special.fdtrc(q, df2, f)), float(chi2_sf(w, q)))


def chi2_sf(x: float, df: float) -> float:
    """P(chi2_df > x)."""
    return float(special.chdtrc(df, x))
