"""``feiv``: two-stage least squares with absorbed fixed effects, estimated in DuckDB.

``feols(con, rel, "y ~ x1 + x2 | fe1 + fe2 | d1 + d2 ~ z1 + z2")`` lands here. The O(N) work
is the OLS engine's: the listwise-complete, singleton-free sample; the fixed effects partialled
out of y, the exogenous regressors X, the endogenous D and the excluded instruments Z (fully,
never as dummy regressors); one aggregate query for the Gram matrix of [y, X, D, Z]; one pass
for the residuals and the sandwich meat with the coefficients bound as parameters; one pass per
robust identification statistic for its score covariance. Python receives only small matrices.

Notation: W = [X, D] (regressors), Q = [X, Z] (instruments), A = (Q'Q)^-1 Q'W, so that the
first-stage fitted regressors are W^ = Q A.

* 2SLS:  b = (W'P W)^-1 W'P y with P = Q (Q'Q)^-1 Q';  u = y - W b (with D, not W^).
* Variance: bread (W^'W^)^-1 = (W'P W)^-1; iid V = c * SSR/(N-1) * bread; HC1 / CRV1
  V = c * bread M bread with M the meat of the scores W^ u (per observation or per cluster);
  c the OLS engine's small-sample factor (:func:`.vcov.small_sample_correction`) with K the
  second-stage coefficients - pyfixest's ``feols`` IV convention.
* First stage of each d: OLS of d on Q with the same variance; F = the Wald test of the
  excluded instruments / L1 (pyfixest's ``_f_stat_1st_stage``); partial R2 of Z given X;
  effective F (Montiel Olea and Pflueger 2013) = pi' Z~'Z~ pi / trace(S Z~'Z~) with Z~ the
  instruments partialled on X and S their block of the first stage's robust variance (HC1
  when the model's is iid).
* Identification (Stata's ``ivreg2``/``ivreghdfe`` with ``ranktest``; docs/methods.md § IV):
  canonical correlations of D~ and Z~ (partialled on X and the fixed effects), the Anderson
  LM and Cragg-Donald F; under HC1 or CRV1 the Kleibergen-Paap rk LM and rk Wald F from the
  rank statistic of Kleibergen and Paap (2006), with ``ivreghdfe``'s small-sample scaling:
  sdofminus = max(1, the absorbed degrees of freedom not nested in the cluster).
* Over-identification: Sargan (iid) or Hansen J of the two-step efficient GMM (robust), as
  ivreg2 reports them.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import linalg

from .collinear import find_collinear
from .demean import demean
from .formula import Formula, _split_top, parse_formula
from .inference import chi2_sf, t_inference, wald_test
from .model import INTERCEPT, _estimation_sample
from .moments import cross_products, residual_moments, score_meat
from .result import FeolsResult
from .sqlutil import temp_scope
from .vcov import SSC, compute_vcov, parse_vcov

# Stock and Yogo (2005) critical values for 10% maximal IV size, one endogenous regressor,
# L1 = 1..10 excluded instruments (the values ivreg2 prints).
STOCK_YOGO_10PCT_SIZE = {1: 16.38, 2: 19.93, 3: 22.30, 4: 24.58, 5: 26.87, 6: 29.18, 7: 31.50, 8: 33.84,
                         9: 36.19, 10: 38.54}


@dataclass(frozen=True)
class IVFormula:
    main: Formula  # y ~ exogenous | fixed effects
    endogenous: tuple[str, ...]
    instruments: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.main} | {' + '.join(self.endogenous)} ~ {' + '.join(self.instruments)}"


def parse_iv_formula(text: str) -> IVFormula:
    """``y ~ x1 + x2 | fe1 + fe2 | d1 + d2 ~ z1 + z2`` (the fixed effects and x optional)."""
    parts = _split_top(text, "|")
    if len(parts) < 2 or "~" not in parts[-1]:
        raise ValueError(f"not an IV formula (expected 'y ~ x | fe | d ~ z'): {text!r}")
    if len(parts) > 3:
        raise ValueError(f"an IV formula has at most three parts 'y ~ x | fe | d ~ z': {text!r}")
    lhs, _, rhs = parts[-1].partition("~")
    endog = tuple(t.strip() for t in lhs.split("+") if t.strip())
    instr = tuple(t.strip() for t in rhs.split("+") if t.strip())
    if not endog or not instr:
        raise ValueError(f"the IV part needs endogenous regressors and instruments: {parts[-1].strip()!r}")
    y_part, _, x_part = parts[0].partition("~")
    fe = tuple(t.strip() for t in parts[1].split("+") if t.strip()) if len(parts) == 3 else ()
    if x_part.strip() in ("", "1", "0"):
        main = Formula(y=y_part.strip(), x=(), fe=fe)
    else:
        main = parse_formula(parts[0] + (" | " + parts[1] if len(parts) == 3 else ""))
    names = [*endog, *instr]
    if len(set(names)) != len(names) or set(names) & set(main.x):
        raise ValueError("a column may appear once among the regressors, endogenous regressors and instruments")
    if len(instr) < len(endog):
        raise ValueError(f"under-identified: {len(endog)} endogenous regressor(s) but only {len(instr)} instrument(s)")
    return IVFormula(main, endog, instr)


@dataclass
class FirstStage:
    """The first-stage regression of one endogenous regressor on the instruments."""

    endogenous: str
    coef: pd.Series
    se: pd.Series
    f: float  # Wald F of the excluded instruments with the model's variance (pyfixest)
    f_p: float
    f_df: tuple[int, int]
    partial_r2: float
    effective_f: float  # Montiel Olea-Pflueger

    def to_dict(self) -> dict:
        return {"endogenous": self.endogenous,
                "coefficients": [{"term": t, "coef": float(self.coef[t]), "se": float(self.se[t])}
                                 for t in self.coef.index],
                "f": self.f, "f_p": self.f_p, "f_df": list(self.f_df), "partial_r2": self.partial_r2,
                "effective_f": self.effective_f}


@dataclass
class IVResult(FeolsResult):
    method = "2SLS"
    endogenous: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    first_stages: list[FirstStage] = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)


def feiv(
    con: duckdb.DuckDBPyConnection,
    relation,
    formula: str,
    *,
    vcov: str | Mapping[str, str] | None = "iid",
    weights: str | None = None,
    ssc: SSC | None = None,
    fixef_rm: str = "singleton",
    collin_tol: float = 1e-10,
    fixef_tol: float = 1e-13,
    fixef_maxiter: int = 10_000,
    alpha: float = 0.05,
) -> IVResult:
    """2SLS of ``formula`` (``y ~ x | fe | d ~ z``) on ``relation``; see the module docstring."""
    t0 = time.perf_counter()
    spec = parse_iv_formula(formula)
    spec_v = parse_vcov(vcov)
    ssc = ssc or SSC()
    clusters = list(spec_v.clusters) if spec_v.kind == "CRV1" else []
    kind = {"iid": "iid", "hetero": "hetero", "CRV1": "cluster"}[spec_v.kind]
    everything = Formula(y=spec.main.y, x=(*spec.main.x, *spec.endogenous, *spec.instruments), fe=spec.main.fe,
                         rhs=(*spec.main.rhs, *spec.endogenous, *spec.instruments))
    has_fe = bool(spec.main.fe)
    with temp_scope(con) as scope:
        sample, col_stats = _estimation_sample(con, scope, relation, everything, clusters, weights, fixef_rm)
        # the fixed effects are partialled out of every column (no dummy regressors: the
        # instruments' projection needs the full partialling)
        dm = demean(con, scope, sample.table, sample.columns, sample.fe, sample.keys, col_stats,
                    weights=sample.weights, balanced_grid=sample.balanced_grid, tol=fixef_tol,
                    maxiter=fixef_maxiter, fe_levels=sample.fe_levels, max_dummies=0)
        n_d, n_z = len(spec.endogenous), len(spec.instruments)
        n_x = len(sample.x) - n_d - n_z
        names_x = ([] if has_fe else [INTERCEPT]) + list(sample.term_names[:n_x])
        cols_x = ([] if has_fe else ["1.0"]) + list(sample.x[:n_x])
        cols_d, cols_z = list(sample.x[n_x:n_x + n_d]), list(sample.x[n_x + n_d:])
        names_d, names_z = list(spec.endogenous), list(spec.instruments)
        gram = cross_products(con, dm.table, [sample.y, *cols_x, *cols_d, *cols_z], sample.weights)
        ix = list(range(1, 1 + len(cols_x)))
        idd = list(range(1 + len(cols_x), 1 + len(cols_x) + n_d))
        iz = list(range(1 + len(cols_x) + n_d, 1 + len(cols_x) + n_d + n_z))
        iw, iq = ix + idd, ix + iz
        ref_ss = [col_stats.sum_w if c == "1.0" else col_stats.raw_ss[1 + sample.x.index(c)]
                  for c in cols_x + cols_d + cols_z]
        _check_rank(gram, ref_ss, iw, iq, names_x + names_d + names_z, collin_tol)
        qq, qw, qy = gram[np.ix_(iq, iq)], gram[np.ix_(iq, iw)], gram[iq, 0]
        a = linalg.solve(qq, qw, assume_a="pos")  # W^ = Q A
        h = qw.T @ a  # W'PW
        beta = linalg.solve(h, a.T @ qy, assume_a="pos")
        bread = linalg.inv(h)
        bread = (bread + bread.T) / 2
        cols_w, cols_q = cols_x + cols_d, cols_x + cols_z
        score_exprs = [" + ".join(f"? * ({c})" for c in cols_q)] * len(cols_w)
        score_params = [float(v) for j in range(len(cols_w)) for v in a[:, j]]
        cluster_cols = sample.clusters if kind == "cluster" else None
        rm = residual_moments(con, dm.table, sample.y, cols_w, beta, kind, weights=sample.weights,
                              cluster=cluster_cols, scores=score_exprs, score_params=score_params)
        n, k = sample.nobs, len(cols_w)
        vr = compute_vcov(spec_v, ssc, bread, rm.ssr, rm.meat, n, k, sample.fe_levels,
                          sample.fe_nested_in_cluster, sample.n_clusters)
        gram_cols = [sample.y, *cols_x, *cols_d, *cols_z]  # the SQL column of each Gram row
        first = [_first_stage(con, dm.table, sample, gram, gram_cols[j], j, iq, ix, iz, names_x + names_z, cols_q,
                              spec_v, ssc, kind, cluster_cols, names_d[p]) for p, j in enumerate(idd)]
        diagnostics = _identification(con, dm.table, sample, gram, ix, idd, iz, cols_x, cols_d, cols_z, kind,
                                      cluster_cols, has_fe)
        diagnostics.update(_overidentification(con, dm.table, sample, gram, iw, iq, cols_w, cols_q, beta, rm.ssr,
                                               kind, cluster_cols))

    names = names_x + names_d
    V = vr.matrix
    if not has_fe:
        beta, V = _raw_intercept(beta, V, col_stats, cols_w, sample)
    se = np.sqrt(np.diag(V))
    tstat, p, lo, hi = t_inference(beta, se, vr.df_t, alpha)
    slopes = [i for i, nm in enumerate(names) if nm != INTERCEPT]
    ftest = wald_test(beta, V, slopes, vr.df_t) if slopes else None
    tss = col_stats.tss[0]
    idx = pd.Index(names, name="term")
    return IVResult(
        formula=str(spec), depvar=spec.main.y, regressors=tuple(names), fixef=tuple(spec.main.fe),
        coef=pd.Series(beta, index=idx, name="coef"), se=pd.Series(se, index=idx, name="se"),
        tstat=pd.Series(tstat, index=idx, name="t"), pvalue=pd.Series(p, index=idx, name="p"),
        conf_int=pd.DataFrame({"ci_low": lo, "ci_high": hi}, index=idx),
        vcov_matrix=pd.DataFrame(V, index=idx, columns=idx), vcov=spec_v.kind,
        cluster=spec_v.cluster_label if spec_v.kind == "CRV1" else None,
        n_clusters=sample.n_clusters if spec_v.kind == "CRV1" else None,
        nobs=n, df_t=int(vr.df_t), df_k=int(vr.df_k), ssc_factor=float(vr.ssc_factor),
        r2=float(1 - rm.ssr / tss) if tss > 0 else float("nan"), adj_r2=float("nan"),
        r2_within=float("nan"), adj_r2_within=float("nan"),
        rmse=float(np.sqrt(rm.ssr / n)), ssr=float(rm.ssr), dropped=[], weights=weights, alpha=alpha,
        n_missing=sample.n_missing, n_singletons=sample.n_singletons, demean_method=dm.method,
        demean_iterations=dm.iterations, elapsed_s=time.perf_counter() - t0,
        fstat=float(ftest.f) if ftest else float("nan"), f_pvalue=float(ftest.p_f) if ftest else float("nan"),
        f_df=(ftest.df1, ftest.df2) if ftest else None,
        extra={"fe_levels": dict(zip(spec.main.fe, sample.fe_levels)),
               "fe_nested_in_cluster": dict(zip(spec.main.fe, sample.fe_nested_in_cluster))},
        endogenous=spec.endogenous, instruments=spec.instruments, first_stages=first, diagnostics=diagnostics,
    )


def _check_rank(gram, ref_ss, iw, iq, names, tol) -> None:
    for block, what in ((iq, "instruments (exogenous regressors and excluded instruments)"),
                        (iw, "regressors (exogenous and endogenous)")):
        dropped = find_collinear(gram[np.ix_(block, block)], [ref_ss[i - 1] for i in block], tol)
        if dropped:
            raise ValueError(f"collinear {what}: {', '.join(names[block[i] - 1] for i in dropped)} "
                             "(after the fixed effects); drop them from the formula")


def _raw_intercept(beta, V, col_stats, cols_w, sample):
    """Without fixed effects the data were centred: a = ybar + a_c - wbar'b (and V = A V_c A')."""
    means = np.array([0.0] + [col_stats.mean[1 + sample.x.index(c)] for c in cols_w[1:]])
    A = np.eye(len(beta))
    A[0, 1:] = -means[1:]
    beta = beta.copy()
    beta[0] = col_stats.mean[0] + beta[0] - means[1:] @ beta[1:]
    return beta, A @ V @ A.T


def _partialled(gram: np.ndarray, rows: list[int], on: list[int]) -> np.ndarray:
    """The Gram block of ``rows`` after partialling ``on`` out (Frisch-Waugh-Lovell)."""
    g = gram[np.ix_(rows, rows)]
    if not on:
        return g
    cross = gram[np.ix_(rows, on)]
    return g - cross @ linalg.solve(gram[np.ix_(on, on)], cross.T, assume_a="pos")


def _first_stage(con, table, sample, gram, column, j, iq, ix, iz, names_q, cols_q, spec_v, ssc, kind,
                 cluster_cols, name) -> FirstStage:
    qq = gram[np.ix_(iq, iq)]
    pi = linalg.solve(qq, gram[iq, j], assume_a="pos")
    bread = linalg.inv(qq)
    rm = residual_moments(con, table, column, cols_q, pi, kind, weights=sample.weights,
                          cluster=cluster_cols)
    n, k = sample.nobs, len(iq)
    vr = compute_vcov(spec_v, ssc, (bread + bread.T) / 2, rm.ssr, rm.meat, n, k, sample.fe_levels,
                      sample.fe_nested_in_cluster, sample.n_clusters)
    excluded = list(range(len(ix), len(iq)))
    test = wald_test(pi, vr.matrix, excluded, vr.df_t)
    restricted = _partialled(gram, [j], ix)[0, 0]
    partial_r2 = 1 - rm.ssr / restricted if restricted > 0 else float("nan")
    # Montiel Olea-Pflueger: the instruments partialled on X, their block of a robust variance
    if kind == "iid":
        hc = parse_vcov("hetero")
        rmh = residual_moments(con, table, column, cols_q, pi, "hetero", weights=sample.weights)
        robust = compute_vcov(hc, ssc, (bread + bread.T) / 2, rmh.ssr, rmh.meat, n, k, sample.fe_levels, [],
                              None).matrix
    else:
        robust = vr.matrix
    zz = _partialled(gram, iz, ix)
    pz = pi[excluded]
    sigma = robust[np.ix_(excluded, excluded)]
    eff = float(pz @ zz @ pz / np.trace(sigma @ zz))
    idx = pd.Index(names_q, name="term")
    return FirstStage(name, pd.Series(pi, index=idx), pd.Series(np.sqrt(np.diag(vr.matrix)), index=idx),
                      float(test.f), float(test.p_f), (test.df1, test.df2), float(partial_r2), eff)


def absorbed_dof(fe_levels: Sequence[int], nested: Sequence[bool]) -> int:
    """Degrees of freedom of the absorbed fixed effects as reghdfe counts them for ivreghdfe:
    a fixed effect nested in the cluster variable counts 0, the first other one all its levels,
    a later one its levels less one (connected panels)."""
    total = 0
    for pos, (levels, is_nested) in enumerate(zip(fe_levels, list(nested) or [False] * len(fe_levels))):
        if is_nested:
            continue
        total += levels if pos == 0 else levels - 1
    return total


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def rank_statistic(theta: np.ndarray, u: np.ndarray, v: np.ndarray, kpvar: np.ndarray, n: int) -> tuple[float, int]:
    """Kleibergen-Paap rk chi2 of H0: rank(theta) = K1 - 1, and its degrees of freedom.

    ``theta`` (L1 x K1) with SVD theta = u diag(s) v'; ``kpvar`` the covariance of vec(theta)
    (times N).
    """
    l1, k1 = theta.shape
    kk = k1 - 1
    u12, u22 = u[:kk, kk:], u[kk:, kk:]
    v12, v22 = v[:kk, kk:], v[kk:, kk:]
    aq = np.vstack([u12, u22]) @ linalg.inv(u22) @ _sym_sqrt(u22 @ u22.T)
    bq = _sym_sqrt(v22 @ v22.T) @ linalg.inv(v22.T) @ np.vstack([v12, v22]).T
    kron = np.kron(bq, aq.T)
    lab = kron @ theta.flatten(order="F")
    vlab = kron @ kpvar @ kron.T
    chi2 = float(n * lab @ np.linalg.pinv((vlab + vlab.T) / 2) @ lab)
    return chi2, l1 - kk


def _identification(con, table, sample, gram, ix, idd, iz, cols_x, cols_d, cols_z, kind, cluster_cols,
                    has_fe) -> dict:
    n = sample.nobs
    k1, l1 = len(idd), len(iz)
    m = _partialled(gram, idd + iz, ix) / n
    qyy, qzz, qzy = m[:k1, :k1], m[k1:, k1:], m[k1:, :k1]
    r_zz = linalg.cholesky(qzz, lower=False)  # qzz = r'r
    r_yy = linalg.cholesky(qyy, lower=False)
    ir_zz, ir_yy = linalg.inv(r_zz), linalg.inv(r_yy)
    pihat = linalg.solve(qzz, qzy, assume_a="pos")
    theta = r_zz @ pihat @ ir_yy
    u, s, vt = np.linalg.svd(theta, full_matrices=True)
    eigen = float(min(s[:min(k1, l1)]) ** 2)
    n_exog = len(cols_x) - (0 if has_fe else 1)  # the constant is counted apart
    sdofminus = max(1, absorbed_dof(sample.fe_levels, sample.fe_nested_in_cluster if kind == "cluster" else []))\
        if has_fe else 0
    big_l = n_exog + l1 + (0 if has_fe else 1)
    out = {
        "anderson_lm": {"statistic": n * eigen, "df": l1 - k1 + 1,
                        "p": float(chi2_sf(n * eigen, l1 - k1 + 1))},
        "cragg_donald_f": eigen / (1 - eigen) * (n - big_l - sdofminus) / l1,
        "stock_yogo_10pct": STOCK_YOGO_10PCT_SIZE.get(l1) if k1 == 1 else None,
        "sdofminus": sdofminus,
    }
    if kind == "iid" or sample.weights:
        return out
    if kind == "cluster" and len(cluster_cols) > 1:
        out["kp_note"] = "Kleibergen-Paap statistics are not computed under two-way clustering"
        return out
    # scores kron(v_i, z~_i): z~ = Z - X G, d~ = D - X H (partialled on X), wald: v = d~ - z~ pihat
    gx = linalg.solve(gram[np.ix_(ix, ix)], gram[np.ix_(ix, iz + idd)], assume_a="pos") if ix else None

    def partialled_expr(col: str, pos: int) -> tuple[str, list[float]]:
        if gx is None:
            return f"({col})", []
        return f"(({col}) - ({' + '.join(f'? * ({c})' for c in cols_x)}))", [float(v) for v in gx[:, pos]]

    z_exprs = [partialled_expr(c, p) for p, c in enumerate(cols_z)]
    d_exprs = [partialled_expr(c, l1 + p) for p, c in enumerate(cols_d)]
    transform = np.kron(ir_yy.T, ir_zz.T)
    results = {}
    for variant in ("lm", "wald"):
        exprs, params = [], []
        for j, (d_sql, d_par) in enumerate(d_exprs):
            v_sql, v_par = d_sql, list(d_par)
            if variant == "wald":
                v_sql = f"({d_sql} - ({' + '.join(f'? * {z}' for z, _ in z_exprs)}))"
                # the bound values in textual order: d~'s, then for each z~ its coefficient and its own
                v_par = list(d_par)
                for l, (z_sql, z_par) in enumerate(z_exprs):
                    v_par += [float(pihat[l, j])] + list(z_par)
            for z_sql, z_par in z_exprs:
                exprs.append(f"{v_sql} * {z_sql}")
                params += v_par + list(z_par)
        shat = score_meat(con, table, exprs, params, kind, cluster_cols) / n
        kpvar = transform @ ((shat + shat.T) / 2) @ transform.T
        results[variant] = rank_statistic(theta, u, vt.T, kpvar, n)
    (lm, df_lm), (wald, _) = results["lm"], results["wald"]
    if kind == "cluster":
        g = sample.n_clusters
        wald_f = wald / (n - 1) * (n - big_l - sdofminus) * (g - 1) / g / l1
    else:
        wald_f = wald / n * (n - big_l - sdofminus) / l1
    out.update({
        "kp_rk_lm": {"statistic": lm, "df": df_lm, "p": float(chi2_sf(lm, df_lm))},
        "kp_rk_wald_chi2": wald,
        "kp_rk_wald_f": wald_f,
    })
    return out


def _overidentification(con, table, sample, gram, iw, iq, cols_w, cols_q, beta, ssr, kind, cluster_cols) -> dict:
    overid = len(iq) - len(iw)
    if overid <= 0:
        return {}
    n = sample.nobs
    qu = gram[iq, 0] - gram[np.ix_(iq, iw)] @ beta  # Q'u at the 2SLS estimates
    qq = gram[np.ix_(iq, iq)]
    if kind == "iid":
        sargan = float(n * qu @ linalg.solve(qq, qu, assume_a="pos") / ssr)
        return {"sargan": {"statistic": sargan, "df": overid, "p": float(chi2_sf(sargan, overid))}}
    if kind == "cluster" and sample.n_clusters <= len(iq):
        return {"overid_note": f"Hansen J needs more clusters ({sample.n_clusters}) than instruments ({len(iq)})"}
    # Hansen J: the two-step efficient GMM criterion, S from the 2SLS residuals
    s = residual_moments(con, table, sample.y, cols_w, beta, kind, weights=sample.weights, cluster=cluster_cols,
                         scores=cols_q).meat
    if kind == "cluster" and len(cluster_cols) > 1:
        return {}
    s_inv = linalg.pinv((s + s.T) / 2)
    qw, qy = gram[np.ix_(iq, iw)], gram[iq, 0]
    b_gmm = linalg.solve(qw.T @ s_inv @ qw, qw.T @ s_inv @ qy)
    qu_gmm = qy - qw @ b_gmm
    j = float(qu_gmm @ s_inv @ qu_gmm)
    return {"hansen_j": {"statistic": j, "df": overid, "p": float(chi2_sf(j, overid))}}
