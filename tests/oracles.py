"""Independent reference computations the tests compare cityres with.

* :func:`pf_fit` / :func:`assert_matches` - pyfixest 0.60 with a tight demeaning
  tolerance, and the check that every reported quantity agrees;
* :func:`exact_ols` - ordinary least squares in exact rational arithmetic
  (``fractions.Fraction``): the oracle for ill-conditioned designs, where any
  floating-point library (pyfixest included) is only accurate to about
  ``cond(X'X) * eps`` and its error depends on the BLAS kernel of the machine;
* :func:`drop_singletons_pandas` - iterated singleton removal in pandas.

Every float is a dyadic rational, so converting the data to ``Fraction`` is
exact; the normal equations are then solved without rounding.  Only the final
conversion of the variance matrix to float (and its square root) rounds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

COEF_TOL = 1e-8
SE_RTOL = 1e-6
EPS = np.finfo(float).eps


def _pf():
    import pyfixest as pf

    return pf


def pf_demeaner():
    return _pf().MapDemeaner(fixef_tol=1e-12, fixef_maxiter=100_000)


def pf_fit(fml: str, df: pd.DataFrame, vcov, **kw):
    """pyfixest's feols with its demeaning tolerance tightened to 1e-12 (default 1e-6)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _pf().feols(fml, df, vcov=vcov, demeaner=pf_demeaner(), **kw)


def assert_matches(res, m, *, has_fe: bool, coef_tol: float = COEF_TOL, se_rtol: float = SE_RTOL):
    """Every reported quantity of cityres's ``res`` equals pyfixest's ``m``."""
    assert list(res.coef.index) == list(m.coef().index)
    b, b_pf = res.coef.to_numpy(), m.coef().to_numpy()
    assert np.all(np.abs(b - b_pf) <= coef_tol * np.maximum(1.0, np.abs(b_pf))), b - b_pf
    np.testing.assert_allclose(res.se.to_numpy(), m.se().to_numpy(), rtol=se_rtol, atol=0)
    np.testing.assert_allclose(res.tstat.to_numpy(), m.tstat().to_numpy(), rtol=se_rtol, atol=0)
    np.testing.assert_allclose(res.pvalue.to_numpy(), m.pvalue().to_numpy(), rtol=max(1e-6, se_rtol), atol=1e-12)
    ci = m.confint()
    np.testing.assert_allclose(res.conf_int["ci_low"].to_numpy(), ci.iloc[:, 0].to_numpy(), rtol=max(1e-6, se_rtol),
                               atol=1e-9)
    np.testing.assert_allclose(res.conf_int["ci_high"].to_numpy(), ci.iloc[:, 1].to_numpy(),
                               rtol=max(1e-6, se_rtol), atol=1e-9)
    # covariances relative to sqrt(V_ii V_jj): pyfixest inverts the raw X'X, whose
    # off-diagonal terms are less accurate when regressors have large means
    v, v_pf = res.vcov_matrix.to_numpy(), m._vcov
    scale = np.sqrt(np.outer(np.diag(v_pf), np.diag(v_pf)))
    assert np.all(np.abs(v - v_pf) <= max(1e-6, se_rtol) * scale)
    assert res.nobs == m._N
    assert res.df_t == int(m._df_t)
    assert res.r2 == pytest.approx(m._r2, abs=1e-10)
    assert res.adj_r2 == pytest.approx(m._adj_r2, abs=1e-10)
    if has_fe:
        assert res.r2_within == pytest.approx(m._r2_within, abs=1e-10)
        assert res.adj_r2_within == pytest.approx(m._adj_r2_within, abs=1e-10)
    else:
        assert np.isnan(res.r2_within)
    if res.vcov == "CRV1":
        assert res.n_clusters == int(np.min(m._G))
        assert res.n_clusters == min(m._data[c].nunique() for c in res.cluster.split("+"))


def drop_singletons_pandas(df: pd.DataFrame, fes: list[str]) -> pd.DataFrame:
    """Independent reference: drop singleton FE groups until none is left."""
    while True:
        keep = np.ones(len(df), dtype=bool)
        for f in fes:
            keep &= df.groupby(f)[f].transform("size").to_numpy() > 1
        if keep.all():
            return df
        df = df.loc[keep]


# ------------------------------------------------------------ exact arithmetic

def _solve_exact(a: list[list[Fraction]], b: list[list[Fraction]]) -> list[list[Fraction]]:
    """Solve A X = B (A k x k non-singular, B k x m) by Gauss-Jordan elimination, exactly."""
    k = len(a)
    aug = [list(a[i]) + list(b[i]) for i in range(k)]
    for col in range(k):
        pivot = next(r for r in range(col, k) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        p = aug[col][col]
        aug[col] = [v / p for v in aug[col]]
        for r in range(k):
            if r != col and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [vr - f * vc for vr, vc in zip(aug[r], aug[col])]
    return [row[k:] for row in aug]


def _matmul(a, b):
    return [[sum((a[i][t] * b[t][j] for t in range(len(b))), Fraction(0)) for j in range(len(b[0]))]
            for i in range(len(a))]


@dataclass
class ExactOLS:
    """OLS solved exactly; ``vcov`` follows pyfixest's small-sample corrections (no FE)."""

    coef: np.ndarray  # rounded once from the exact solution
    vcov: np.ndarray
    se: np.ndarray
    coef_exact: list[Fraction]


def exact_ols(X: np.ndarray, y: np.ndarray, vcov: str = "iid", cluster: np.ndarray | None = None) -> ExactOLS:
    """OLS of ``y`` on the columns of ``X`` (include a column of ones for an intercept).

    ``vcov``: ``"iid"`` (SSR/(N-k) (X'X)^-1), ``"hetero"`` (HC1: N/(N-k) B M B) or
    ``"CRV1"`` (G/(G-1) (N-1)/(N-k) B M_G B with ``cluster`` labels).  Every product
    and sum is exact; rounding happens once, when V is converted to float.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, k = X.shape
    xf = [[Fraction(float(v)) for v in row] for row in X]
    yf = [Fraction(float(v)) for v in y]
    xtx = [[sum((xf[i][a] * xf[i][b] for i in range(n)), Fraction(0)) for b in range(k)] for a in range(k)]
    xty = [[sum((xf[i][a] * yf[i] for i in range(n)), Fraction(0))] for a in range(k)]
    beta = [row[0] for row in _solve_exact(xtx, xty)]
    u = [yf[i] - sum((xf[i][a] * beta[a] for a in range(k)), Fraction(0)) for i in range(n)]
    ident = [[Fraction(int(i == j)) for j in range(k)] for i in range(k)]
    bread = _solve_exact(xtx, ident)
    if vcov == "iid":
        ssr = sum((v * v for v in u), Fraction(0))
        v_exact = [[ssr / (n - k) * bread[i][j] for j in range(k)] for i in range(k)]
    else:
        if vcov == "hetero":
            groups = [[i] for i in range(n)]
            factor = Fraction(n, n - k)
        elif vcov == "CRV1":
            labels = pd.Series(np.asarray(cluster)).astype(str)
            groups = [list(idx) for idx in labels.groupby(labels).indices.values()]
            g = len(groups)
            factor = Fraction(g, g - 1) * Fraction(n - 1, n - k)
        else:
            raise ValueError(f"unknown vcov {vcov!r}")
        meat = [[Fraction(0)] * k for _ in range(k)]
        for rows in groups:
            s = [sum((xf[i][a] * u[i] for i in rows), Fraction(0)) for a in range(k)]
            for a in range(k):
                for b in range(k):
                    meat[a][b] += s[a] * s[b]
        sand = _matmul(_matmul(bread, meat), bread)
        v_exact = [[factor * sand[i][j] for j in range(k)] for i in range(k)]
    V = np.array([[float(v) for v in row] for row in v_exact])
    return ExactOLS(np.array([float(b) for b in beta]), V, np.sqrt(np.diag(V)), beta)


def condition_number(X: np.ndarray) -> float:
    """2-norm condition number of X with its columns scaled to unit length.

    Column scaling removes the part of the conditioning that comes from units alone
    (a column of ones beside one of about 1e4), which does not limit a solver's accuracy;
    what remains is near-collinearity. The normal equations then lose about
    ``condition_number(X)**2 * eps`` of relative accuracy.  Singular values by LAPACK:
    an estimate, which is all a tolerance needs.
    """
    X = np.asarray(X, dtype=float)
    Xs = X / np.linalg.norm(X, axis=0)
    s = np.linalg.svd(Xs, compute_uv=False)
    return float(s[0] / s[-1])


def pf_crv1(formula: str, data: pd.DataFrame, weights: str | None = None, cluster: str = "city_code"):
    """pyfixest with CRV1 by ``cluster`` and a tight demeaning tolerance (the studies' tables)."""
    import pyfixest as pf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.feols(formula, data=data, vcov={"CRV1": cluster}, weights=weights,
                        demeaner=pf.MapDemeaner(fixef_tol=1e-12, fixef_maxiter=100_000))
