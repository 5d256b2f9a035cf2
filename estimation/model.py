"""``feols``: OLS with up to two absorbed fixed effects, estimated in DuckDB.

Pipeline (each step is its own module):

1. :mod:`.formula`  - parse ``"y ~ x1 + i(k, ref=-1) | fe1 + fe2"`` (or take
   lists); :mod:`.terms` expands ``i()`` into dummy columns;
2. :mod:`.sample`   - listwise deletion, FE/cluster coding, singleton removal;
3. :mod:`.demean`   - centring / one-way / balanced two-way / within plus
   period dummies / alternating projections, all in SQL;
4. :mod:`.moments`  - X'X, X'y, y'y in one aggregate query;
5. :mod:`.collinear`- drop collinear regressors (k x k, numpy);
6. solve the normal equations (k x k Cholesky, numpy/scipy);
7. :mod:`.moments`  - residuals, SSR and sandwich meat in SQL, coefficients
   bound as parameters;
8. :mod:`.vcov`, :mod:`.inference` - small-sample corrections, t/p/CI, F.

With ``within_dummies`` demeaning the dummies of the smaller fixed effect are
regressors of the k x k algebra; by Frisch-Waugh-Lovell the regressors' block
of the full-model coefficients, bread and sandwich equals the two-way FE
estimator's, so only that block is reported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

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
from .vcov import SSC, compute_vcov, parse_vcov

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
    """Estimate ``y`` on ``x`` absorbing 0, 1 or 2 fixed effects, in DuckDB.

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
        Regressor columns and fixed-effect columns (at most two).  Without
        fixed effects an intercept named ``Intercept`` is added.
    vcov
        ``"iid"`` (default, as pyfixest), ``"hetero"``/``"HC1"``,
        ``{"CRV1": "cluster_col"}`` or two-way ``{"CRV1": "a+b"}``.
    weights
        Optional analytic-weights column (must be > 0).
    ssc
        Small-sample corrections, default ``SSC()`` = pyfixest 0.60 defaults.
    fixef_rm
        ``"singleton"`` (default, as pyfixest) removes singleton FE groups
        repeatedly; ``"none"`` keeps them.
    collin_tol
        Relative tolerance of the collinearity check (see
        :mod:`estimation.collinear`).
    fixef_tol, fixef_maxiter
        Convergence tolerance (absolute plus relative change per sweep) and
        sweep cap of the alternating-projections demeaner.
    demean_method
        ``"auto"`` or force one of ``"center"``, ``"oneway"``, ``"balanced"``,
        ``"within_dummies"``, ``"alternating"`` (the closed form is refused on
        unbalanced data).
    max_dummies
        ``auto`` uses ``within_dummies`` on unbalanced two-way panels when the
        smaller fixed effect has at most ``max_dummies + 1`` levels.
    alpha
        1 - confidence level of ``conf_int``.
    """
    t0 = time.perf_counter()
    spec_f = _resolve_spec(y, x, fe)
    if len(spec_f.fe) > 2:
        raise NotImplementedError("at most two fixed effects are supported")
    if INTERCEPT in spec_f.x:
        raise ValueError(f"a regressor may not be called {INTERCEPT!r}")
    if len(set(spec_f.fe)) != len(spec_f.fe):
        raise ValueError("duplicated fixed effect")
    if fixef_rm not in ("singleton", "none"):
        raise ValueError("fixef_rm must be 'singleton' or 'none'")
    spec_v = parse_vcov(vcov)
    ssc = ssc or SSC()
    has_fe = len(spec_f.fe) > 0
    clusters = list(spec_v.clusters) if spec_v.kind == "CRV1" else []

    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        needed = [spec_f.y, *spec_f.x, *(c for t in spec_f.factors for c in t.columns),
                  *spec_f.fe, *clusters] + ([weights] if weights else [])
        terms = design_columns(con, source, spec_f.rhs, complete_sql(needed))
        sample = build_sample(
            con,
            scope,
            source,
            spec_f.y,
            terms,
            list(spec_f.fe),
            clusters or None,
            weights,
            drop_singletons=(fixef_rm == "singleton"),
        )
        stats = column_stats(con, sample.table, sample.columns, sample.weights)
        dm = demean(
            con,
            scope,
            sample.table,
            sample.columns,
            sample.fe,
            sample.keys,
            stats,
            weights=sample.weights,
            method=demean_method,
            balanced_grid=sample.balanced_grid,
            tol=fixef_tol,
            maxiter=fixef_maxiter,
            fe_levels=sample.fe_levels,
            max_dummies=max_dummies,
            lazy_dummies=True,
        )

        # design: [FE dummies] + [Intercept] + regressors, as SQL expressions on
        # the demeaned table; dummies go first so that a regressor absorbed by
        # the fixed effects is the one dropped as collinear
        nd = len(dm.dummies)
        names = ([] if has_fe else [INTERCEPT]) + [t.name for t in terms]
        design = dm.dummies + ([] if has_fe else ["1.0"]) + list(sample.x)
        ref_ss = dm.dummy_ref_ss + ([] if has_fe else [stats.sum_w]) + list(stats.raw_ss[1:])
        if dm.pattern:  # lazy within_dummies: dummy moments from per-level / per-level-set sums
            gram = within_dummies_gram(con, dm.table, [sample.y, *sample.x], dm.dummy_fe, dm.pattern,
                                       dm.dummy_levels)
        else:
            gram = cross_products(con, dm.table, [sample.y, *design], sample.weights)
        yy, xy, xx = gram[0, 0], gram[1:, 0], gram[1:, 1:]

        drop_idx = find_collinear(xx, ref_ss, collin_tol)
        keep = [j for j in range(len(design)) if j not in drop_idx]
        keep_x = [j for j in keep if j >= nd]
        if not keep_x:
            raise ValueError("all regressors are collinear with the fixed effects")
        dropped = [names[j - nd] for j in drop_idx if j >= nd]
        names_k = [names[j - nd] for j in keep_x]
        design_k = [design[j] for j in keep]
        xx_k = xx[np.ix_(keep, keep)]
        xy_k = xy[keep]

        chol = linalg.cho_factor(xx_k, lower=False)
        beta_all = linalg.cho_solve(chol, xy_k)
        bread = linalg.cho_solve(chol, np.eye(len(keep)))
        bread = (bread + bread.T) / 2.0

        kind = {"iid": "iid", "hetero": "hetero", "CRV1": "cluster"}[spec_v.kind]
        keep_d = [j for j in keep if j < nd]
        sel = [keep.index(j) for j in keep_x]
        scores, score_params = None, []
        if keep_d:
            # By FWL only the regressors' scores are needed, with the regressors
            # purged of the dummies: x.. = x~ - D~ Pi, Pi = (D'D)^-1 D'X (bound).
            # Their meat is the regressors' block of the full model's meat, and
            # the regressors' block of the bread is (X..'X..)^-1.
            pi = linalg.solve(xx[np.ix_(keep_d, keep_d)], xx[np.ix_(keep_d, keep_x)], assume_a="pos")
            scores = [
                f"{design[j]} - ({' + '.join(f'? * {design[d]}' for d in keep_d)})" for j in keep_x
            ]
            score_params = [float(v) for i in range(len(keep_x)) for v in pi[:, i]]
            bread = bread[np.ix_(sel, sel)]
        rel, x_res, beta_res = dm.table, design_k, beta_all
        if keep_d and dm.pattern:
            # D~ gamma and D~ Pi_j as joined per-level / per-level-set columns
            vecs = np.zeros((dm.dummy_levels, 1 + len(keep_x)))
            for pos, d in enumerate(keep_d):  # design index d <-> level d + 2
                vecs[d + 1, 0] = beta_all[keep.index(d)]
                vecs[d + 1, 1:] = pi[pos, :]
            rel, pe = period_effect_table(con, scope, dm.table, dm.dummy_fe, dm.pattern, dm.dummy_levels, vecs)
            x_res = [design[j] for j in keep_x] + [pe[0]]
            beta_res = np.append(beta_all[sel], 1.0)
            scores = [f"{design[j]} - {pe[1 + i]}" for i, j in enumerate(keep_x)]
            score_params = []
        rm = residual_moments(
            con,
            rel,
            sample.y,
            x_res,
            beta_res,
            kind,
            weights=sample.weights,
            cluster=sample.clusters if kind == "cluster" else None,
            scores=scores,
            score_params=score_params,
        )
        # within R2 needs y'y after both FE: partial the dummies out of y_w'y_w
        if keep_d:
            xy_d = xy[keep_d]
            yy = yy - xy_d @ linalg.solve(xx[np.ix_(keep_d, keep_d)], xy_d, assume_a="pos")

    k = len(keep_x)
    n = sample.nobs
    vr = compute_vcov(
        spec_v,
        ssc,
        bread,
        rm.ssr,
        rm.meat,
        n,
        k,
        sample.fe_levels,
        sample.fe_nested_in_cluster,
        sample.n_clusters,
    )
    V = vr.matrix if keep_d else vr.matrix[np.ix_(sel, sel)]
    beta = beta_all[sel]

    if not has_fe:
        # the model was fitted on centred data: y - ybar = a_c + (x - xbar) b.
        # Back-transform to the intercept of the raw data: a = ybar + a_c - xbar'b,
        # theta = A theta_c with A = [[1, -xbar'], [0, I]] and V = A V_c A'.
        xbar = np.array([stats.mean[j] for j in keep_x if j > 0])  # design j -> column j
        A = np.eye(k)
        if k > 1:
            A[0, 1:] = -xbar
        beta = beta.copy()
        beta[0] = stats.mean[0] + beta[0] - (xbar @ beta[1:] if k > 1 else 0.0)
        V = A @ V @ A.T

    se = np.sqrt(np.diag(V))
    tstat, p, lo, hi = t_inference(beta, se, vr.df_t, alpha)
    # the model F: all coefficients but the intercept are zero, with this vcov
    slopes = [i for i, nm in enumerate(names_k) if nm != INTERCEPT]
    ftest = wald_test(beta, V, slopes, vr.df_t) if slopes else None

    tss = stats.tss[0]
    r2 = _ratio_complement(rm.ssr, tss)
    if has_fe:
        k_fe = int(np.sum(np.asarray(sample.fe_levels) - 1) + 1)
        adj_r2 = _adjusted(rm.ssr, tss, n - 1, n - k - k_fe)
        r2_within = _ratio_complement(rm.ssr, yy)
        adj_r2_within = _adjusted(rm.ssr, yy, n - k_fe, n - k - k_fe)
    else:
        adj_r2 = _adjusted(rm.ssr, tss, n - 1, n - k)
        r2_within = adj_r2_within = np.nan

    idx = pd.Index(names_k, name="term")
    return FeolsResult(
        formula=str(spec_f),
        depvar=spec_f.y,
        regressors=tuple(names[1:] if not has_fe else names),
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
        r2=float(r2),
        r2_within=float(r2_within),
        adj_r2=float(adj_r2),
        adj_r2_within=float(adj_r2_within),
        rmse=float(np.sqrt(rm.ssr / n)),
        ssr=float(rm.ssr),
        dropped=dropped,
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
        },
    )
