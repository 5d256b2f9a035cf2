"""``feols``: OLS with any number of absorbed fixed effects, estimated in DuckDB.

``feols`` is a short pipeline of named stages, each a function with one job:

1. ``_check_arguments``   - the formula (:mod:`.formula`; ``i()`` terms expanded by
   :mod:`.terms`) and the variance specification (:mod:`.vcov`), before any data is read;
2. ``_estimation_sample`` - listwise deletion, FE/cluster coding, singleton removal
   (:mod:`.sample`) and the columns' moments, in SQL;
3. :func:`.demean.demean` - centring / one-way / balanced two-way / within plus period
   dummies / alternating projections / conjugate gradient (3+ fixed effects, :mod:`.fe_cg`),
   in SQL;
4. ``_design``            - X'X, X'y, y'y in one aggregate query (:mod:`.moments`);
5. ``_solve``             - drop collinear regressors (:mod:`.collinear`) and solve the
   normal equations (k x k Cholesky);
6. ``_scores``            - the regressors' scores, purged of the period dummies (FWL);
7. :func:`.moments.residual_moments` - residuals, SSR and the sandwich meat in SQL,
   coefficients bound as parameters;
8. :func:`.vcov.compute_vcov`, :func:`.inference.t_inference` - small-sample
   corrections, t/p/CI, F; ``_raw_intercept`` and ``_goodness_of_fit`` finish.

With ``within_dummies`` demeaning the dummies of the smaller fixed effect are
regressors of the k x k algebra; by Frisch-Waugh-Lovell the regressors' block
of the full-model coefficients, bread and sandwich equals the two-way FE
estimator's, so only that block is reported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy import linalg

from .collinear import find_collinear
from .demean import MAX_DUMMIES, column_stats, demean
from .formula import Formula, parse_formula
from .inference import t_inference, wald_test
from .moments import (
    cross_products,
    period_effect_table,
    residual_moments,
    within_dummies_gram,
)
from .result import FeolsResult
from .sample import build_sample, complete_sql
from .sqlutil import resolve_relation, temp_scope
from .terms import design_columns
from .vcov import SSC, VcovSpec, compute_vcov, parse_vcov

INTERCEPT = "Intercept"


def _as_list(v: str | Sequence[str] | None) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return list(v)


def _ratio_complement(ssr: float, ss: float) -> float:
    """1 - ssr/ss, NaN when ss is zero (constant response)."""
    return 1.0 - ssr / ss if ss > 0 else float("nan")


def _adjusted(ssr: float, ss: float, num: float, den: float) -> float:
    """1 - (ssr/ss) * num/den as pyfixest's adjusted R2; NaN without residual df."""
    if ss <= 0 or den <= 0:
        return float("nan")
    return 1.0 - (ssr / ss) * num / den


def _is_iv(text: str) -> bool:
    from .formula import _split_top

    parts = _split_top(text, "|")
    return len(parts) > 1 and "~" in parts[-1]


def _resolve_spec(y: str, x, fe) -> Formula:
    """Formula string or (y, x, fe) lists -> validated :class:`Formula`."""
    if not isinstance(y, str):
        raise TypeError("y must be a column name or a formula string")
    if "~" in y:
        if _as_list(x) or _as_list(fe):
            raise ValueError("pass either a formula or y/x/fe lists, not both")
        return parse_formula(y)
    xs, fes = _as_list(x), _as_list(fe)
    for n in [y, *xs, *fes]:
        if not isinstance(n, str) or not n.strip():
            raise ValueError(f"invalid column name {n!r}")
    if len(set(xs)) != len(xs):
        raise ValueError("duplicated regressor")
    if fes and not xs:
        raise ValueError("a fixed-effects model needs at least one regressor")
    return Formula(y=y, x=tuple(xs), fe=tuple(fes))


def feols(
    con: duckdb.DuckDBPyConnection,
    relation,
    y: str,
    x: str | Sequence[str] | None = None,
    fe: str | Sequence[str] | None = None,
    *,
    vcov: str | Mapping[str, str] | None = "iid",
    weights: str | None = None,
    ssc: SSC | None = None,
    fixef_rm: str = "singleton",
    collin_tol: float = 1e-10,
    fixef_tol: float = 1e-13,
    fixef_maxiter: int = 10_000,
    demean_method: str = "auto",
    max_dummies: int = MAX_DUMMIES,
    alpha: float = 0.05,
) -> FeolsResult:
    """Estimate ``y`` on ``x`` absorbing any number of fixed effects, in DuckDB.

    Parameters
    ----------
    con
        DuckDB connection holding the data (temp tables are created on it and
        dropped before returning).
    relation
        Table/view name (``"panel"``, ``"main.panel"``), a SQL query string
        (``"SELECT * FROM panel WHERE year >= 2010"``), a
        ``DuckDBPyRelation`` of ``con``, or a pandas DataFrame.
    y
        Dependent variable column - or a whole formula
        ``"res ~ did + x1 + i(event_time, ref=-1) | city_code + year"`` (then
        omit ``x``/``fe``).
    x, fe
        Regressor columns and fixed-effect columns (any number; three or more
        are absorbed by conjugate gradient, :mod:`.fe_cg`).  Without fixed
        effects an intercept named ``Intercept`` is added.
    vcov
        ``"iid"`` (default, as pyfixest), ``"hetero"``/``"HC1"``,
        ``{"CRV1": "cluster_col"}`` or two-way ``{"CRV1": "a+b"}``.
    weights
        Optional analytic-weights column (must be > 0).
    ssc
        Small-sample corrections, default ``SSC()`` = pyfixest 0.60 defaults.
    fixef_rm
        ``"singleton"`` (default, as pyfixest) removes singleton groups of
        every fixed effect repeatedly until none is left; ``"none"`` keeps them.
    collin_tol
        Relative tolerance of the collinearity check (see
        :mod:`estimation.engine.collinear`).
    fixef_tol, fixef_maxiter
        Convergence tolerance (absolute plus relative change of a row per
        sweep / iteration) and iteration cap of the iterative demeaners
        (alternating projections, conjugate gradient); at the cap
        :class:`.DemeanNotConverged` is raised.
    demean_method
        ``"auto"`` or force one of ``"center"``, ``"oneway"``, ``"balanced"``,
        ``"within_dummies"``, ``"alternating"``, ``"cg"`` (the closed form is
        refused on unbalanced data; ``"alternating"`` and ``"cg"`` take two or
        more fixed effects, ``"cg"`` is ``auto``'s choice for three or more).
    max_dummies
        ``auto`` uses ``within_dummies`` on unbalanced two-way panels when the
        smaller fixed effect has at most ``max_dummies + 1`` levels.
    alpha
        1 - confidence level of ``conf_int``.
    """
    if isinstance(y, str) and x is None and fe is None and _is_iv(y):
        from .iv import feiv  # y ~ x | fe | d ~ z: two-stage least squares

        return feiv(con, relation, y, vcov=vcov, weights=weights, ssc=ssc, fixef_rm=fixef_rm, collin_tol=collin_tol,
                    fixef_tol=fixef_tol, fixef_maxiter=fixef_maxiter, alpha=alpha)
    t0 = time.perf_counter()
    spec_f, spec_v = _check_arguments(y, x, fe, vcov, fixef_rm)
    clusters = list(spec_v.clusters) if spec_v.kind == "CRV1" else []
    with temp_scope(con) as scope:
        sample, stats = _estimation_sample(con, scope, relation, spec_f, clusters, weights, fixef_rm)
        return fit_sample(con, scope, sample, stats, spec_f, spec_v, ssc=ssc, weights=weights,
                          collin_tol=collin_tol, fixef_tol=fixef_tol, fixef_maxiter=fixef_maxiter,
                          demean_method=demean_method, max_dummies=max_dummies, alpha=alpha, t0=t0)


def fit_sample(con, scope, sample, stats, spec_f: Formula, spec_v: VcovSpec, *, ssc: SSC | None = None,
               weights: str | None = None, collin_tol: float = 1e-10, fixef_tol: float = 1e-13,
               fixef_maxiter: int = 10_000, demean_method: str = "auto", max_dummies: int = MAX_DUMMIES,
               alpha: float = 0.05, t0: float | None = None) -> FeolsResult:
    """:func:`feols` on an estimation sample already built by :func:`_estimation_sample` in ``scope``.

    Lets a caller that needs the sample itself too (the placebo batch) build it once.
    """
    t0 = time.perf_counter() if t0 is None else t0
    ssc = ssc or SSC()
    clusters = list(spec_v.clusters) if spec_v.kind == "CRV1" else []
    kind = {"iid": "iid", "hetero": "hetero", "CRV1": "cluster"}[spec_v.kind]
    dm = demean(con, scope, sample.table, sample.columns, sample.fe, sample.keys, stats,
                weights=sample.weights, method=demean_method, balanced_grid=sample.balanced_grid,
                tol=fixef_tol, maxiter=fixef_maxiter, fe_levels=sample.fe_levels,
                max_dummies=max_dummies, lazy_dummies=True,
                pairs_unique=None if sample.n_cells is None else sample.n_cells == sample.nobs)
    design = _design(con, dm, sample, stats, spec_f)
    fit = _solve(design, collin_tol)
    scored = _scores(con, scope, dm, design, fit)
    rm = residual_moments(con, scored.relation, sample.y, scored.x, scored.beta, kind,
                          weights=sample.weights, cluster=sample.clusters if kind == "cluster" else None,
                          scores=scored.scores, score_params=scored.score_params)

    k, n = len(fit.keep_x), sample.nobs
    vr = compute_vcov(spec_v, ssc, scored.bread, rm.ssr, rm.meat, n, k, sample.fe_levels,
                      sample.fe_nested_in_cluster, sample.n_clusters)
    V = vr.matrix if fit.keep_d else vr.matrix[np.ix_(fit.sel, fit.sel)]
    beta = fit.beta_all[fit.sel]
    if not design.has_fe:
        beta, V = _raw_intercept(beta, V, stats, fit.keep_x)
    se = np.sqrt(np.diag(V))
    tstat, p, lo, hi = t_inference(beta, se, vr.df_t, alpha)
    # the model F: all coefficients but the intercept are zero, with this vcov
    slopes = [i for i, nm in enumerate(fit.names) if nm != INTERCEPT]
    ftest = wald_test(beta, V, slopes, vr.df_t) if slopes else None
    gof = _goodness_of_fit(rm.ssr, stats.tss[0], fit.yy_within, n, k, sample.fe_levels, design.has_fe)

    idx = pd.Index(fit.names, name="term")
    return FeolsResult(
        formula=str(spec_f),
        depvar=spec_f.y,
        regressors=tuple(design.names[1:] if not design.has_fe else design.names),
        fixef=tuple(spec_f.fe),
        coef=pd.Series(beta, index=idx, name="coef"),
        se=pd.Series(se, index=idx, name="se"),
        tstat=pd.Series(tstat, index=idx, name="t"),
        pvalue=pd.Series(p, index=idx, name="p"),
        conf_int=pd.DataFrame({"ci_low": lo, "ci_high": hi}, index=idx),
        vcov_matrix=pd.DataFrame(V, index=idx, columns=idx),
        vcov=spec_v.kind,
        cluster=spec_v.cluster_label if spec_v.kind == "CRV1" else None,
        n_clusters=sample.n_clusters if spec_v.kind == "CRV1" else None,
        nobs=n,
        df_t=int(vr.df_t),
        df_k=int(vr.df_k),
        ssc_factor=float(vr.ssc_factor),
        **gof,
        rmse=float(np.sqrt(rm.ssr / n)),
        ssr=float(rm.ssr),
        dropped=fit.dropped,
        weights=weights,
        alpha=alpha,
        n_missing=sample.n_missing,
        n_singletons=sample.n_singletons,
        demean_method=dm.method,
        demean_iterations=dm.iterations,
        elapsed_s=time.perf_counter() - t0,
        fstat=float(ftest.f) if ftest else float("nan"),
        f_pvalue=float(ftest.p_f) if ftest else float("nan"),
        f_df=(ftest.df1, ftest.df2) if ftest else None,
        extra={
            "fe_levels": dict(zip(spec_f.fe, sample.fe_levels)),
            "fe_nested_in_cluster": dict(zip(spec_f.fe, sample.fe_nested_in_cluster)),
            "cluster_sizes": dict(zip(clusters, sample.cluster_sizes)),
            "n_source_rows": sample.n_source,
            "singleton_rounds": sample.singleton_rounds,
            "demean_max_change": dm.max_change,
            "demean_operator": dm.operator,
        },
    )


# ------------------------------------------------------------------ stages

def _check_arguments(y, x, fe, vcov, fixef_rm) -> tuple[Formula, VcovSpec]:
    """The formula and the variance specification, validated before any data is read."""
    spec_f = _resolve_spec(y, x, fe)
    if INTERCEPT in spec_f.x:
        raise ValueError(f"a regressor may not be called {INTERCEPT!r}")
    if len(set(spec_f.fe)) != len(spec_f.fe):
        raise ValueError("duplicated fixed effect")
    if fixef_rm not in ("singleton", "none"):
        raise ValueError("fixef_rm must be 'singleton' or 'none'")
    return spec_f, parse_vcov(vcov)


def _estimation_sample(con, scope, relation, spec_f: Formula, clusters, weights, fixef_rm, carry=None,
                       source: str | None = None):
    """Expand the terms, build the listwise-complete singleton-free sample, and its moments.

    ``carry``: raw columns kept under internal names (see :func:`build_sample`); ``source``: the
    relation already resolved in ``scope``."""
    source = source or resolve_relation(relation, scope)
    needed = [spec_f.y, *spec_f.x, *(c for t in spec_f.factors for c in t.columns),
              *spec_f.fe, *clusters] + ([weights] if weights else [])
    terms = design_columns(con, source, spec_f.rhs, complete_sql(needed))
    sample = build_sample(con, scope, source, spec_f.y, terms, list(spec_f.fe), clusters or None, weights,
                          drop_singletons=(fixef_rm == "singleton"), carry=carry)
    sample.term_names = [t.name for t in terms]
    return sample, column_stats(con, sample.table, sample.columns, sample.weights)


@dataclass
class _Design:
    """Columns of the k x k algebra: [FE dummies] + [Intercept] + regressors, and their Gram matrix."""

    has_fe: bool
    names: list[str]  # coefficient names ([Intercept] + terms), without the dummies
    columns: list[str]  # SQL expressions on the demeaned table, dummies first
    n_dummies: int
    ref_ss: list[float]  # raw sums of squares, the collinearity check's scale
    gram: np.ndarray  # [y, columns] x [y, columns]


def _design(con, dm, sample, stats, spec_f: Formula) -> _Design:
    has_fe = len(spec_f.fe) > 0
    # dummies go first so that a regressor absorbed by the fixed effects is the one dropped as collinear
    names = ([] if has_fe else [INTERCEPT]) + list(sample.term_names)
    columns = dm.dummies + ([] if has_fe else ["1.0"]) + list(sample.x)
    ref_ss = dm.dummy_ref_ss + ([] if has_fe else [stats.sum_w]) + list(stats.raw_ss[1:])
    if dm.pattern:  # lazy within_dummies: dummy moments from per-level / per-level-set sums
        gram = within_dummies_gram(con, dm.table, [sample.y, *sample.x], dm.dummy_fe, dm.pattern,
                                   dm.dummy_levels, dm.groups)
    else:
        gram = cross_products(con, dm.table, [sample.y, *columns], sample.weights)
    return _Design(has_fe, names, columns, len(dm.dummies), ref_ss, gram)


@dataclass
class _Fit:
    keep: list[int]  # kept design columns (dummies and regressors)
    keep_x: list[int]  # kept regressors (design indices)
    keep_d: list[int]  # kept dummies
    sel: list[int]  # positions of keep_x within keep
    names: list[str]  # kept coefficient names
    dropped: list[str]  # regressors dropped as collinear
    beta_all: np.ndarray  # coefficients of every kept column
    bread: np.ndarray  # (X'X)^-1 of the kept columns
    xx: np.ndarray
    yy_within: float  # y'y after both fixed effects (the within R2's denominator)


def _solve(design: _Design, collin_tol: float) -> _Fit:
    """Drop collinear columns, then solve the normal equations by Cholesky (k x k, numpy)."""
    gram, nd = design.gram, design.n_dummies
    yy, xy, xx = gram[0, 0], gram[1:, 0], gram[1:, 1:]
    drop_idx = find_collinear(xx, design.ref_ss, collin_tol)
    keep = [j for j in range(len(design.columns)) if j not in drop_idx]
    keep_x = [j for j in keep if j >= nd]
    if not keep_x:
        raise ValueError("all regressors are collinear with the fixed effects")
    keep_d = [j for j in keep if j < nd]
    chol = linalg.cho_factor(xx[np.ix_(keep, keep)], lower=False)
    beta_all = linalg.cho_solve(chol, xy[keep])
    bread = linalg.cho_solve(chol, np.eye(len(keep)))
    if keep_d:
        # within R2 needs y'y after both FE: partial the dummies out of y_w'y_w
        xy_d = xy[keep_d]
        yy = yy - xy_d @ linalg.solve(xx[np.ix_(keep_d, keep_d)], xy_d, assume_a="pos")
    return _Fit(keep, keep_x, keep_d, [keep.index(j) for j in keep_x],
                [design.names[j - nd] for j in keep_x], [design.names[j - nd] for j in drop_idx if j >= nd],
                beta_all, (bread + bread.T) / 2.0, xx, float(yy))


@dataclass
class _Scored:
    """The relation and expressions of the residual pass: fit, scores (and their bound values)."""

    relation: str
    x: list[str]
    beta: np.ndarray
    scores: list[str] | None
    score_params: list[float]
    bread: np.ndarray


def _scores(con, scope, dm, design: _Design, fit: _Fit) -> _Scored:
    """Scores of the regressors, purged of the period dummies when there are any.

    By Frisch-Waugh-Lovell only the regressors' scores are needed, with the regressors
    purged of the dummies: x.. = x~ - D~ Pi, Pi = (D'D)^-1 D'X (bound). Their meat is the
    regressors' block of the full model's meat, and the regressors' block of the bread is
    (X..'X..)^-1.
    """
    cols = design.columns
    design_k = [cols[j] for j in fit.keep]
    if not fit.keep_d:
        return _Scored(dm.table, design_k, fit.beta_all, None, [], fit.bread)
    keep_d, keep_x, keep = fit.keep_d, fit.keep_x, fit.keep
    pi = linalg.solve(fit.xx[np.ix_(keep_d, keep_d)], fit.xx[np.ix_(keep_d, keep_x)], assume_a="pos")
    bread = fit.bread[np.ix_(fit.sel, fit.sel)]
    if not dm.pattern:
        scores = [f"{cols[j]} - ({' + '.join(f'? * {cols[d]}' for d in keep_d)})" for j in keep_x]
        params = [float(v) for i in range(len(keep_x)) for v in pi[:, i]]
        return _Scored(dm.table, design_k, fit.beta_all, scores, params, bread)
    # lazy dummies: D~ gamma and D~ Pi_j as joined per-level / per-level-set columns
    vecs = np.zeros((dm.dummy_levels, 1 + len(keep_x)))
    for pos, d in enumerate(keep_d):  # design index d <-> level d + 2
        vecs[d + 1, 0] = fit.beta_all[keep.index(d)]
        vecs[d + 1, 1:] = pi[pos, :]
    rel, pe = period_effect_table(con, scope, dm.table, dm.dummy_fe, dm.pattern, dm.dummy_levels, vecs, dm.groups)
    x_res = [cols[j] for j in keep_x] + [pe[0]]
    beta_res = np.append(fit.beta_all[fit.sel], 1.0)
    scores = [f"{cols[j]} - {pe[1 + i]}" for i, j in enumerate(keep_x)]
    return _Scored(rel, x_res, beta_res, scores, [], bread)


def _raw_intercept(beta: np.ndarray, V: np.ndarray, stats, keep_x: list[int]):
    """Back-transform the intercept of a model fitted on centred data.

    y - ybar = a_c + (x - xbar) b, so the raw intercept is a = ybar + a_c - xbar'b:
    theta = A theta_c with A = [[1, -xbar'], [0, I]] and V = A V_c A'.
    """
    k = len(beta)
    xbar = np.array([stats.mean[j] for j in keep_x if j > 0])  # design j -> column j
    A = np.eye(k)
    if k > 1:
        A[0, 1:] = -xbar
    beta = beta.copy()
    beta[0] = stats.mean[0] + beta[0] - (xbar @ beta[1:] if k > 1 else 0.0)
    return beta, A @ V @ A.T


def _goodness_of_fit(ssr: float, tss: float, yy_within: float, n: int, k: int, fe_levels, has_fe: bool) -> dict:
    """R2, adjusted R2 and their within versions, as pyfixest defines them."""
    r2 = _ratio_complement(ssr, tss)
    if has_fe:
        k_fe = int(np.sum(np.asarray(fe_levels) - 1) + 1)
        return {"r2": float(r2), "adj_r2": float(_adjusted(ssr, tss, n - 1, n - k - k_fe)),
                "r2_within": float(_ratio_complement(ssr, yy_within)),
                "adj_r2_within": float(_adjusted(ssr, yy_within, n - k_fe, n - k - k_fe))}
    return {"r2": float(r2), "adj_r2": float(_adjusted(ssr, tss, n - 1, n - k)),
            "r2_within": float("nan"), "adj_r2_within": float("nan")}
