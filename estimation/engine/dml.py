"""Double/debiased machine learning (DML) for a two-way fixed-effects DID.

Model (the partially linear regression of Chernozhukov et al. 2018, sec. 4.1, with unit and time
effects):

    y_it = theta d_it + g(X_it) + a_i + l_t + e_it,      d_it = m(X_it) + a'_i + l'_t + v_it.

Stages:

1. sample (SQL, :func:`.sample.build_sample`): listwise deletion of rows with a NULL in the
   outcome, treatment, a control, unit or time; repeated removal of singleton unit/time groups
   (as :func:`.model.feols`);
2. within transform (SQL, :func:`_two_way_within`): y, d and every control are demeaned by unit
   and time by alternating projections whose group means are ordered aggregates
   (``avg(x ORDER BY row id)``).  On a balanced panel one sweep is the closed form
   ``x - x_i. - x_.t + x..``; otherwise sweeps continue to convergence.  Why not
   :func:`.demean.demean` (feols's demeaning, the same maths): its parallel floating-point
   sums differ in the last bits from run to run with DuckDB's thread scheduling - harmless
   for OLS, but tree learners are discontinuous in the data (one bit can flip a split; we saw
   RF/GB estimates move by 1e-3), so DML needs bitwise-reproducible inputs.  Rows are read
   ordered by (unit, time);
3. cross-fitting (scikit-learn): units, not rows, are split into K folds (every row of a unit in
   the same fold, :func:`assign_folds`); for fold k the learner is fitted on the other folds'
   rows and predicts fold k:  l^(X~) of E[y~ | X~] and m^(X~) of E[d~ | X~], giving
   u = y~ - l^ and v = d~ - m^;
4. score sums (SQL): per repetition, fold and unit g, A_g = sum v u and B_g = sum v^2;
5. algebra (numpy, G-vectors), per repetition r, with G_k units in fold k and w_k = 1 / G_k:

       theta_r = sum_k w_k sum_{g in k} A_g / sum_k w_k sum_{g in k} B_g
       psi_g   = A_g - theta_r B_g          (unit g's sum of the score psi = v (u - theta v))
       J       = 1/K sum_k w_k sum_{g in k} B_g
       Gamma   = 1/K sum_k w_k sum_{g in k} psi_g^2
       se_r    = sqrt(Gamma / (G J^2))

   This is the partialling-out score with the cluster-robust DML2 solution and variance of
   Chiang, Kato, Ma & Sasaki (2022, JBES, one-way clustering), as DoubleML 0.11 computes them.
   When every fold holds the same number of units (G divisible by K) it is exactly the pooled
   DML2 estimator  theta_r = sum v u / sum v^2  and the CR0 sandwich
   se_r = sqrt(sum_g psi_g^2) / sum v^2; no small-sample factor (no G/(G-1)) is applied;
6. aggregation over R repetitions (DoubleML 0.11): theta = median_r theta_r;
   se = (median_r(theta_r + 1.96 se_r) - theta) / 1.96 (1.96 whatever alpha);  t = theta / se;
   p = 2 Phi(-|t|) (``DoubleMLPLR.pval``);
   CI = [median_r(theta_r - z se_r), median_r(theta_r + z se_r)], z = Phi^-1(1 - alpha/2)
   (``DoubleMLPLR.confint``; with R > 1 not exactly theta -/+ z se).
   With R = 1 these are the usual normal-reference t, p and theta -/+ z se.

Learners (deterministic: fixed ``random_state``, ``n_jobs=1``):

* ``"lasso"``: ``StandardScaler`` then ``LassoCV(cv=5, alphas=100, max_iter=10_000)``: the penalty
  is chosen by 5-fold CV on the training rows, in their (unit, time) order, unshuffled
  (``KFold``) - deterministic;
* ``"random_forest"``: ``RandomForestRegressor(n_estimators=200, min_samples_leaf=5,
  random_state=seed, n_jobs=1)``;
* ``"gradient_boosting"``: ``GradientBoostingRegressor(random_state=seed)`` (100 trees of depth 3,
  learning rate 0.1);
* or any scikit-learn regressor instance (cloned for every fit; a ``random_state`` of None is set
  to ``seed``; its ``n_jobs`` is left alone - tree ensembles sum their trees' predictions in
  thread order, so only ``n_jobs=1`` is bitwise reproducible).

``learner_params`` override these (for ``"lasso"`` they are ``LassoCV``'s parameters).  The same
learner specification is used for l and m; each fit is on a fresh clone.

Checked against ``doubleml`` 0.11.4 ``DoubleMLPLR`` (partialling out, ``DoubleMLData`` with the
unit as cluster column, the same folds through ``set_sample_splitting``) in tests/test_dml.py.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LassoCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .demean import DemeanNotConverged
from .sample import build_sample
from .sqlutil import quote_ident, resolve_relation, temp_scope

LEARNERS = ("lasso", "random_forest", "gradient_boosting")
# DoubleML 0.11 aggregates standard errors over repetitions through the median of the upper
# 95% bounds, with this fixed critical value (whatever the CI level)
_AGG_CRIT = 1.96
_UNIT_RAW, _TIME_RAW = "__unit_raw", "__time_raw"


# ----------------------------------------------------------------- results


@dataclass
class DMLResult:
    """DML estimate of the treatment coefficient, with per-repetition values and the folds.

    ``units`` are the unit labels in sorted order; ``folds[r, j]`` is the fold (0..K-1) of
    ``units[j]`` in repetition r.  ``coefs``/``ses`` are theta_r and se_r per repetition.
    """

    outcome: str
    treatment: str
    controls: tuple[str, ...]
    unit: str
    time: str
    learner: str
    learner_params: dict
    learner_spec: str  # repr of the scikit-learn estimator actually fitted (every parameter that differs)
    score: str
    coef: float
    se: float
    tstat: float
    pvalue: float
    ci: tuple[float, float]
    alpha: float
    coefs: np.ndarray
    ses: np.ndarray
    units: np.ndarray
    folds: np.ndarray
    n_folds: int
    n_rep: int
    seed: int
    nobs: int
    n_units: int
    n_periods: int
    nuisance_rmse: dict  # {"ml_l": (n_rep,), "ml_m": (n_rep,)}: sqrt(mean u^2), sqrt(mean v^2)
    demean_method: str  # "balanced" (one sweep, closed form) or "alternating"
    demean_sweeps: int
    n_missing: int
    n_singletons: int
    elapsed_s: float
    timings: dict = field(default_factory=dict)

    def fold_table(self) -> pd.DataFrame:
        """Long table of the fold assignment: unit, rep, fold."""
        reps, pos = np.meshgrid(np.arange(self.n_rep), np.arange(self.n_units), indexing="ij")
        return pd.DataFrame({"unit": self.units[pos.ravel()], "rep": reps.ravel(),
                             "fold": self.folds.ravel()})

    def to_dict(self) -> dict:
        """Plain-Python (JSON-serialisable) summary, including per-repetition values and folds."""
        return {
            "outcome": self.outcome, "treatment": self.treatment, "controls": list(self.controls),
            "unit": self.unit, "time": self.time, "learner": self.learner,
            "learner_params": {k: _plain(v) for k, v in self.learner_params.items()},
            "learner_spec": self.learner_spec,
            "score": self.score, "coef": self.coef, "se": self.se, "t": self.tstat, "p": self.pvalue,
            "ci_low": self.ci[0], "ci_high": self.ci[1], "alpha": self.alpha,
            "coefs": [float(v) for v in self.coefs], "ses": [float(v) for v in self.ses],
            "n_folds": self.n_folds, "n_rep": self.n_rep, "seed": self.seed, "nobs": self.nobs,
            "n_units": self.n_units, "n_periods": self.n_periods,
            "nuisance_rmse": {k: [float(x) for x in v] for k, v in self.nuisance_rmse.items()},
            "units": [_plain(u) for u in self.units], "folds": self.folds.tolist(),
            "demean_method": self.demean_method, "demean_sweeps": self.demean_sweeps, "n_missing": self.n_missing,
            "n_singletons": self.n_singletons, "elapsed_s": self.elapsed_s,
        }


def _plain(v):
    """numpy scalars -> Python scalars; anything else unchanged (repr for estimators)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


# ----------------------------------------------------------------- learners and folds


def make_learner(learner, seed: int, params: dict | None = None):
    """The scikit-learn regressor of a learner name (see the module docstring), with ``params``.

    ``learner`` may also be a regressor instance; it is cloned, ``params`` are set on the clone,
    and a ``random_state`` left at None is set to ``seed`` (so that the fit is reproducible).
    """
    params = dict(params or {})
    if not isinstance(learner, str):
        if not (hasattr(learner, "fit") and hasattr(learner, "predict") and hasattr(learner, "get_params")):
            raise ValueError(f"learner must be one of {LEARNERS} or a scikit-learn regressor, not {learner!r}")
        est = clone(learner).set_params(**params)
        if "random_state" in est.get_params(deep=False) and est.get_params(deep=False)["random_state"] is None:
            est.set_params(random_state=seed)
        return est
    if learner == "lasso":
        lasso = LassoCV(cv=5, alphas=100, max_iter=10_000, n_jobs=1)
        lasso.set_params(**params)
        return Pipeline([("scale", StandardScaler()), ("lasso", lasso)])
    if learner == "random_forest":
        base = {"n_estimators": 200, "min_samples_leaf": 5, "random_state": seed, "n_jobs": 1}
        return RandomForestRegressor(**{**base, **params})
    if learner == "gradient_boosting":
        return GradientBoostingRegressor(**{"random_state": seed, **params})
    raise ValueError(f"learner must be one of {LEARNERS} or a scikit-learn regressor, not {learner!r}")


def assign_folds(n_units: int, n_folds: int, n_rep: int, seed: int) -> np.ndarray:
    """(n_rep x n_units) fold of each unit (units in sorted label order), reproducible from ``seed``.

    One ``numpy.random.default_rng(seed)``; repetition r draws ``permutation(n_units)`` and the
    unit at position j of it goes to fold j mod K, so folds differ in size by at most one unit
    and repetition r's folds do not depend on ``n_rep``.
    """
    rng = np.random.default_rng(seed)
    folds = np.empty((n_rep, n_units), dtype=np.int64)
    for r in range(n_rep):
        folds[r, rng.permutation(n_units)] = np.arange(n_units) % n_folds
    return folds


def _cross_fit(learner, X: np.ndarray, target: np.ndarray, row_fold: np.ndarray, n_folds: int) -> np.ndarray:
    """Out-of-fold predictions: fold k predicted by a clone fitted on the other folds' rows (in order)."""
    pred = np.empty(len(target))
    for k in range(n_folds):
        test = row_fold == k
        pred[test] = clone(learner).fit(X[~test], target[~test]).predict(X[test])
    return pred


# ----------------------------------------------------------------- the within transform (SQL)


@dataclass
class _Within:
    frame: pd.DataFrame  # unit code, raw unit, raw time, demeaned y, d, X; ordered by (unit, time)
    nobs: int
    n_units: int
    n_periods: int
    method: str
    sweeps: int
    n_missing: int
    n_singletons: int
    d_raw_ss: float  # sum d^2 before demeaning (scale of the collinearity check)


def _check_columns(con, source: str, outcome, treatment, controls, unit, time) -> list[str]:
    controls = [controls] if isinstance(controls, str) else list(controls or [])
    names = [outcome, treatment, unit, time, *controls]
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise ValueError(f"column names must be non-empty strings, got {n!r}")
    if not controls:
        raise ValueError("controls must name at least one column: the learners need covariates X")
    if len(set(names)) != len(names):
        raise ValueError(f"outcome, treatment, unit, time and controls must be distinct columns, got {names}")
    available = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source} s").fetchall()}
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"column(s) {missing} not found in the relation; it has {sorted(available)}")
    return controls


def _sweep(con, scope, cur: str, cols: list[str], ids: list[str], fe: str) -> str:
    """One projection: subtract the ``fe``-group means (ordered aggregates, so bitwise reproducible)."""
    means = ", ".join(f"avg({c} ORDER BY __rid) AS __m{j}" for j, c in enumerate(cols))
    sub = ", ".join(f"z.{c} - m.__m{j} AS {c}" for j, c in enumerate(cols))
    delta = ", ".join(f"m.__m{j} AS __c{j}" for j in range(len(cols)))
    out = scope.table("dml_within")
    con.execute(f"CREATE TEMP TABLE {out} AS SELECT {', '.join(f'z.{c}' for c in ids)}, {sub}, {delta} FROM {cur} z "
                f"JOIN (SELECT {fe}, {means} FROM {cur} GROUP BY {fe}) m ON z.{fe} = m.{fe}")
    return out


def _two_way_within(con, scope, table: str, cols: list[str], fe: list[str], carry: list[str], balanced: bool,
                    method: str, tol: float, maxiter: int) -> tuple[str, str, int]:
    """Demean ``cols`` by both fixed effects in SQL; returns (table, method, sweeps).

    Alternating projections (demean by unit, then by time) with group means computed as
    ordered aggregates (``avg(x ORDER BY row id)``): the result is then bitwise the same on every
    run and thread count, which the tree learners need (a change in the last bit of a
    demeaned value can flip a split).  On a balanced panel one sweep is the exact closed form
    x - x_i. - x_.t + x..; otherwise sweeps continue until the largest change of a row,
    |unit mean + time mean| of the sweep, is at most ``tol * (1 + scale)`` (scale = the
    column's max |x - x_i.|), raising :class:`.demean.DemeanNotConverged` after ``maxiter``.
    """
    if method not in ("auto", "alternating"):
        raise ValueError(f"demean_method must be 'auto' or 'alternating', got {method!r}")
    f0, f1 = fe
    ids = ["__rid", f0, f1, *carry]
    # a unique row order for the ordered aggregates (ties only between identical rows)
    base = scope.table("dml_within")
    con.execute(f"CREATE TEMP TABLE {base} AS SELECT row_number() OVER (ORDER BY {f0}, {f1}, {', '.join(cols)}) "
                f"AS __rid, {f0}, {f1}, {', '.join([*carry, *cols])} FROM {table}")
    cur = _sweep(con, scope, base, cols, ids, f0)
    scope.drop(base)
    scale = con.execute(f"SELECT {', '.join(f'max(abs({c}))' for c in cols)} FROM {cur}").fetchone()
    inv = [1.0 / (1.0 + float(s or 0.0)) for s in scale]
    out = _sweep(con, scope, cur, cols, ids, f1)
    scope.drop(cur)
    if balanced and method == "auto":
        return out, "balanced", 1
    change = float("nan")
    terms = ", ".join(f"abs(a.__c{j} + b.__c{j}) * ?" for j in range(len(cols)))
    for sweeps in range(2, maxiter + 1):
        by_unit = _sweep(con, scope, out, cols, ids, f0)
        scope.drop(out)
        out = _sweep(con, scope, by_unit, cols, ids, f1)
        (change,) = con.execute(f"SELECT max(greatest({terms}, 0.0)) FROM {by_unit} a JOIN {out} b USING (__rid)",
                                inv).fetchone()
        scope.drop(by_unit)
        change = float(change)
        if math.isnan(change):
            raise DemeanNotConverged("alternating projections produced NaN (a non-finite value in the data)")
        if change <= tol:
            return out, "alternating", sweeps
    raise DemeanNotConverged(f"the within transform did not converge in {maxiter} sweeps "
                             f"(last change {change:.3g} x (1 + scale) > tol {tol:.3g} x (1 + scale))")


def _within(con, scope, source: str, outcome: str, treatment: str, controls: list[str], unit: str, time: str,
            method: str, fixef_tol: float, fixef_maxiter: int) -> _Within:
    sample = build_sample(con, scope, source, outcome, [treatment, *controls], [unit, time], None, None,
                          drop_singletons=True, carry={_UNIT_RAW: unit, _TIME_RAW: time})
    cols = sample.columns  # __y, __x0 (treatment), __x1.. (controls)
    table, used, sweeps = _two_way_within(con, scope, sample.table, cols, sample.fe, [_UNIT_RAW, _TIME_RAW],
                                          sample.balanced_grid, method, fixef_tol, fixef_maxiter)
    (d_raw_ss,) = con.execute(f"SELECT sum({cols[1]} * {cols[1]}) FROM {sample.table}").fetchone()
    sel = ", ".join(f"{c} AS {quote_ident(n)}" for c, n in zip(cols, [outcome, treatment, *controls]))
    frame = con.execute(
        f"SELECT {sample.fe[0]} AS __g, {_UNIT_RAW} AS {quote_ident(unit)}, {_TIME_RAW} AS {quote_ident(time)}, "
        f"{sel} FROM {table} ORDER BY __rid").df()
    return _Within(frame, sample.nobs, sample.fe_levels[0], sample.fe_levels[1], used, sweeps,
                   sample.n_missing, sample.n_singletons, float(d_raw_ss))


def within_transform(con: duckdb.DuckDBPyConnection, relation, *, outcome: str, treatment: str,
                     controls: Sequence[str], unit: str, time: str, demean_method: str = "auto",
                     fixef_tol: float = 1e-13, fixef_maxiter: int = 10_000) -> pd.DataFrame:
    """The two-way (unit and time) demeaned estimation sample that :func:`dml_did` feeds the learners.

    Columns: ``unit``, ``time`` (raw labels), then ``outcome``, ``treatment`` and ``controls``
    demeaned; rows ordered by (unit, time).  Same sample rules as :func:`dml_did`.
    """
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        controls = _check_columns(con, source, outcome, treatment, controls, unit, time)
        w = _within(con, scope, source, outcome, treatment, controls, unit, time, demean_method,
                    fixef_tol, fixef_maxiter)
    return w.frame.drop(columns="__g")


# ----------------------------------------------------------------- score sums (SQL) and algebra


def _unit_score_sums(con, scope, codes: np.ndarray, row_folds: np.ndarray, u: np.ndarray, v: np.ndarray):
    """Per repetition, the unit sums A_g = sum v u, B_g = sum v^2 and sum u^2, in SQL.

    Ordered aggregates (rows in (unit, time) order), so the sums - and theta, se - are bitwise
    the same on every run.  Returns arrays of shape (n_rep, G) ordered by unit code, and the
    unit -> fold map (n_rep, G).
    """
    n_rep, n = u.shape
    resid = pd.DataFrame({"rep": np.repeat(np.arange(n_rep), n), "i": np.tile(np.arange(n), n_rep),
                          "g": np.tile(codes, n_rep), "fold": row_folds.ravel(), "u": u.ravel(), "v": v.ravel()})
    rel = scope.register(resid, "dml_resid")
    rows = con.execute(
        f"SELECT rep, g, min(fold), max(fold), sum(v * u ORDER BY i), sum(v * v ORDER BY i), "
        f"sum(u * u ORDER BY i) FROM {rel} GROUP BY rep, g ORDER BY rep, g").df().to_numpy()
    n_units = len(rows) // n_rep
    if np.any(rows[:, 2] != rows[:, 3]):  # pragma: no cover - folds are assigned per unit
        raise RuntimeError("a unit's rows were split across folds")
    shape = (n_rep, n_units)
    return (rows[:, 4].reshape(shape), rows[:, 5].reshape(shape), rows[:, 6].reshape(shape),
            rows[:, 2].astype(np.int64).reshape(shape))


def _solve_rep(a: np.ndarray, b: np.ndarray, fold: np.ndarray, n_folds: int) -> tuple[float, float]:
    """theta_r and se_r from the unit score sums (formulas in the module docstring)."""
    g_k = np.bincount(fold, minlength=n_folds).astype(float)
    w = 1.0 / g_k[fold]  # each unit weighted by 1 / (units in its fold)
    theta = float(np.sum(w * a) / np.sum(w * b))
    psi = a - theta * b
    j_hat = np.sum(w * b) / n_folds
    gamma = np.sum(w * psi * psi) / n_folds
    return theta, float(np.sqrt(gamma / (len(a) * j_hat * j_hat)))


def _aggregate(coefs: np.ndarray, ses: np.ndarray, alpha: float):
    """Median aggregation over repetitions, as DoubleML 0.11 (see the module docstring)."""
    coef = float(np.median(coefs))
    se = float((np.median(coefs + _AGG_CRIT * ses) - coef) / _AGG_CRIT)
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    ci = (float(np.median(coefs - z * ses)), float(np.median(coefs + z * ses)))
    t = coef / se
    return coef, se, t, float(2.0 * stats.norm.sf(abs(t))), ci


# ----------------------------------------------------------------- the estimator


def _check_options(learner, n_folds, n_rep, seed, alpha, learner_params) -> None:
    if isinstance(learner, str) and learner not in LEARNERS:
        raise ValueError(f"learner must be one of {LEARNERS} or a scikit-learn regressor, not {learner!r}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if isinstance(n_rep, bool) or not isinstance(n_rep, (int, np.integer)) or n_rep < 1:
        raise ValueError(f"n_rep must be an integer >= 1, got {n_rep!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (the folds and learners must be reproducible), "
                         f"got {seed!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if learner_params is not None and not isinstance(learner_params, dict):
        raise ValueError(f"learner_params must be a dict of the learner's parameters, got {learner_params!r}")


def dml_did(
    con: duckdb.DuckDBPyConnection,
    relation,
    *,
    outcome: str,
    treatment: str,
    controls: Sequence[str],
    unit: str,
    time: str,
    learner="lasso",
    n_folds: int = 5,
    n_rep: int = 1,
    seed: int = 0,
    learner_params: dict | None = None,
    alpha: float = 0.05,
    demean_method: str = "auto",
    fixef_tol: float = 1e-13,
    fixef_maxiter: int = 10_000,
    collin_tol: float = 1e-10,
) -> DMLResult:
    """DML (partialling out) estimate of ``treatment``'s effect on ``outcome`` with unit and time effects.

    ``relation`` as :func:`.model.feols` (table name, SQL query, relation or DataFrame).  The
    unit and time effects are partialled out of y, d and X first (two-way within transform, in
    SQL), then DML with K = ``n_folds`` folds of units, ``n_rep`` repetitions (median
    aggregation) and standard errors clustered by unit (see the module docstring for every
    formula).  ``learner``: ``"lasso"``, ``"random_forest"``, ``"gradient_boosting"`` or a
    scikit-learn regressor; ``learner_params`` override its defaults.  ``seed`` fixes the folds
    (:func:`assign_folds`) and the learners' ``random_state``.  ``demean_method`` as
    :func:`.demean.demean` (``"auto"``, ``"balanced"``, ``"within_dummies"``, ``"alternating"``).
    """
    t0 = _time.perf_counter()
    _check_options(learner, n_folds, n_rep, seed, alpha, learner_params)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        controls = _check_columns(con, source, outcome, treatment, controls, unit, time)
        w = _within(con, scope, source, outcome, treatment, controls, unit, time, demean_method,
                    fixef_tol, fixef_maxiter)
        frame = w.frame
        y, d = frame[outcome].to_numpy(float), frame[treatment].to_numpy(float)
        X = frame[list(controls)].to_numpy(float)
        if not float(d @ d) > collin_tol * w.d_raw_ss:
            raise ValueError(f"treatment {treatment!r} is collinear with the unit and time effects "
                             "(it has no variation left after the within transform)")
        codes, unit_index = np.unique(frame["__g"].to_numpy(), return_inverse=True)
        n_units = len(codes)
        if n_folds > n_units:
            raise ValueError(f"n_folds = {n_folds} exceeds the {n_units} units of the sample")
        units = frame[unit].to_numpy()[np.searchsorted(unit_index, np.arange(n_units))]
        t1 = _time.perf_counter()

        folds = assign_folds(n_units, int(n_folds), int(n_rep), int(seed))
        row_folds = folds[:, unit_index]
        est = make_learner(learner, int(seed), learner_params)
        u = np.empty((n_rep, len(y)))
        v = np.empty((n_rep, len(y)))
        for r in range(n_rep):
            u[r] = y - _cross_fit(est, X, y, row_folds[r], n_folds)
            v[r] = d - _cross_fit(est, X, d, row_folds[r], n_folds)
        t2 = _time.perf_counter()
        a, b, uu, unit_fold = _unit_score_sums(con, scope, unit_index, row_folds, u, v)

    sol = [_solve_rep(a[r], b[r], unit_fold[r], n_folds) for r in range(n_rep)]
    coefs, ses = np.array([s[0] for s in sol]), np.array([s[1] for s in sol])
    coef, se, tstat, p, ci = _aggregate(coefs, ses, alpha)
    n = len(y)
    t3 = _time.perf_counter()
    return DMLResult(
        outcome=outcome, treatment=treatment, controls=tuple(controls), unit=unit, time=time,
        learner=learner if isinstance(learner, str) else type(learner).__name__,
        learner_params=dict(learner_params or {}), learner_spec=" ".join(repr(est).split()), score="partialling out",
        coef=coef, se=se, tstat=tstat, pvalue=p, ci=ci, alpha=alpha, coefs=coefs, ses=ses,
        units=units, folds=folds, n_folds=int(n_folds), n_rep=int(n_rep), seed=int(seed),
        nobs=n, n_units=n_units, n_periods=w.n_periods,
        nuisance_rmse={"ml_l": np.sqrt(uu.sum(axis=1) / n), "ml_m": np.sqrt(b.sum(axis=1) / n)},
        demean_method=w.method, demean_sweeps=w.sweeps, n_missing=w.n_missing, n_singletons=w.n_singletons,
        elapsed_s=t3 - t0, timings={"sql_s": t1 - t0, "learners_s": t2 - t1, "scores_s": t3 - t2},
    )
