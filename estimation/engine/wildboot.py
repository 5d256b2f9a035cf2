"""Wild cluster bootstrap (restricted, WCR) of one coefficient of :func:`.model.feols`.

Model ``y = b d + Z g + FE + e`` (fixest-style formula, up to two absorbed FE),
CRV1 errors clustered by ``cluster`` (G clusters), H0: b = b0 (b0 = 0 for the
p-value; every b0 for the confidence set by test inversion).  Done "fast and
wild" (Roodman, MacKinnon, Nielsen & Webb 2019, *Fast and wild: bootstrap
inference in Stata using boottest*): the O(N) work is done once in DuckDB SQL,
each draw is cluster-level algebra, and all draws are one batch of numpy
matrix products.

Notation (Frisch-Waugh-Lovell).  F = the absorbed fixed effect (one FE; with
two FE the one nested in the clusters - else the larger - is absorbed and the
other enters Z as demeaned dummies, :func:`.demean.demean` ``within_dummies``;
without FE, F is the constant).  Tilde = demeaned by F, then

    Z~ = M_F Z,   G_Z = (Z~'Z~)^-1,
    d~ = M_FZ d   (= d_F - Z~ G_Z Z~'d_F),   D = d~'d~,
    y~ = M_FZ y,
    u~(b0) = M_FZ (y - b0 d) = y~ - b0 d~        (restricted residuals, linear in b0).

Bootstrap DGP: y* = (y - u~) + v_g u~ with v_g i.i.d. Rademacher or Webb per
cluster.  Since y - u~ lies in span(F, Z, d) with coefficient b0 on d, and
writing w = v o u~ (u~_i scaled by its cluster's v_g):

    b* - b0 = d~'w / D = sum_g v_g a_g / D,   a_g = sum_{i in g} d~_i u~_i,
    e* = M_X y* = M_FZ w - d~ (b* - b0)          (unrestricted residual, X = [F, Z, d]).

The CRV1 score of cluster g is s*_g = sum_{i in g} d~_i e*_i (the d-row of
(X'X)^-1 X' is d~'/D), and M_FZ = I - P_F - Z~ G_Z Z~', so with u^(h) = u~
restricted to cluster h (zero elsewhere)

    s*_g = sum_h C_gh v_h - (b* - b0) dd_g,       dd_g = sum_{i in g} d~_i^2,
    C_gh = 1{g = h} a_g - CF_gh - Q_g' G_Z R_h,
    Q_g  = sum_{i in g} Z~_i d~_i,   R_h = sum_{i in h} Z~_i u~_i          (G x k'),
    CF_gh = d~^(g)' P_F u^(h) = sum_j (sum_{i in g, j} d~_i)(sum_{i in h, j} u~_i) / n_j

(j the levels of F; CF = 0 when F is nested in the clusters, because u~ sums
to zero within each level of F).  CRV1 with the original model's small-sample
factor c (G/(G-1) (N-1)/(N-K), :attr:`FeolsResult.ssc_factor`):

    se* = sqrt(c sum_g s*_g^2) / D,      t* = (b* - b0) / se*,
    and on the data  t(b0) = (b^ - b0) / se,  se = sqrt(c sum_g (a_g(b^))^2) / D.

Everything is linear in b0: a = a_y - b0 dd, C = C_y - b0 C_d (C_y from u = y~,
C_d from u = d~, where R_d = Q).  For the B x G weight matrix V, with
al = V a_y / D, be = V dd / D, P = V C_y' - al dd', Qm = V C_d' - be dd':

    b* - b0 = al - b0 be,   S*(b0) = P - b0 Qm   (B x G),
    sum_g s*_g^2 = pp - 2 b0 pq + b0^2 qq,   pp = rowsum(P o P), pq = rowsum(P o Qm), qq = rowsum(Qm o Qm),

so after two B x G x G products (done once) each b0 costs O(B): the p-value
curve p(b0) is cheap and the confidence set is found by bisection on each
side of b^ (the same weights for every b0), as boottest does.

Bootstrap p-values: symmetric  p = #{|t*| >= |t|} / B;  equal-tailed
p = 2 min(#{t* <= t}, #{t* >= t}) / B (capped at 1).  ``impose_null=False``
gives the unrestricted WCU: u = e^ = u~(b^), t* = (b* - b^)/se* compared with
t(0), and the percentile-t interval [b^ - q_{1-a/2} se, b^ - q_{a/2} se].

Cluster sums are compensated (``fsum``), so the cluster-level inputs - and the
t* - do not depend on DuckDB's thread count beyond rounding.  Weights given as
an explicit (draws x G) array use the cluster order of the sorted cluster
values (the engine's cluster codes 1..G).
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field

import duckdb
import numpy as np
from scipy import linalg

from .collinear import find_collinear
from .demean import MAX_DUMMIES, column_stats, demean
from .formula import parse_formula
from .model import feols
from .moments import cross_products
from .result import FeolsResult
from .sample import build_sample, complete_sql
from .sqlutil import resolve_relation, temp_scope
from .terms import design_columns
from .vcov import SSC

WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])


@dataclass
class WildBootResult:
    term: str
    coef: float
    se: float  # CRV1 standard error of the model (the t statistic's denominator)
    t_stat: float  # (coef - 0) / se
    p_value: float  # symmetric bootstrap p-value of H0: coef = 0
    p_value_equal_tailed: float
    ci: tuple[float, float]  # (nan, nan) when ci=False
    draws: int
    weights_type: str
    seed: int | None
    n_clusters: int
    elapsed_s: float
    t_draws: np.ndarray  # the B bootstrap t* (under H0: coef = 0 for WCR)
    impose_null: bool = True
    alpha: float = 0.05
    nobs: int = 0
    ssc_factor: float = 1.0
    model: FeolsResult | None = None
    timings: dict = field(default_factory=dict)
    _curve: object = field(default=None, repr=False)

    def p_value_at(self, b0: float) -> float:
        """Symmetric WCR bootstrap p-value of H0: coef = b0 (the same weights)."""
        return self._curve.p_sym(b0)

    def t_draws_at(self, b0: float) -> np.ndarray:
        """The t* of the WCR bootstrap imposing coef = b0."""
        return self._curve.t_star(b0)

    def summary(self) -> dict:
        return {
            "term": self.term, "coef": self.coef, "se": self.se, "t": self.t_stat,
            "p_boot": self.p_value, "p_boot_equal_tailed": self.p_value_equal_tailed,
            "ci_low": self.ci[0], "ci_high": self.ci[1], "alpha": self.alpha,
            "draws": self.draws, "weights": self.weights_type, "seed": self.seed,
            "impose_null": self.impose_null, "n_clusters": self.n_clusters, "nobs": self.nobs,
            "elapsed_s": self.elapsed_s,
        }


# ----------------------------------------------------------------- the O(N) part, in SQL

@dataclass
class _ClusterMoments:
    """Everything a draw needs, at cluster level (G codes 1..G in order)."""

    D: float  # d~'d~
    a_y: np.ndarray  # G: sum_g d~ y~
    dd: np.ndarray  # G: sum_g d~^2
    C_y: np.ndarray  # G x G
    C_d: np.ndarray  # G x G
    nobs: int
    n_clusters: int


def _cluster_moments(con, relation, fml, term: str, cluster: str, fixef_rm: str, collin_tol: float,
                     ) -> _ClusterMoments:
    fe = list(fml.fe)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        needed = [fml.y, *fml.x, *(c for t in fml.factors for c in t.columns), *fe, cluster]
        terms = design_columns(con, source, fml.rhs, complete_sql(needed))
        names = [t.name for t in terms]
        if term not in names:
            raise ValueError(f"{term!r} is not a regressor of the formula")
        sample = build_sample(con, scope, source, fml.y, terms, fe, [cluster], None,
                              drop_singletons=(fixef_rm == "singleton"))
        d_col = sample.x[names.index(term)]
        controls = [c for c in sample.x if c != d_col]
        cols = [sample.y, *sample.x]
        st = column_stats(con, sample.table, cols)
        nested = list(sample.fe_nested_in_cluster)
        if len(fe) == 0:
            dm = demean(con, scope, sample.table, cols, [], sample.keys, st, method="center")
            level, nested_f = "1", False
        elif len(fe) == 1:
            dm = demean(con, scope, sample.table, cols, sample.fe, sample.keys, st, method="oneway")
            level, nested_f = sample.fe[0], bool(nested[0])
        else:
            # absorb the FE nested in the clusters (CF = 0), else the larger; the other gets
            # dummies (so it must have at most MAX_DUMMIES + 1 levels)
            lv = list(sample.fe_levels)
            fits = [lv[1 - a] - 1 <= MAX_DUMMIES for a in (0, 1)]
            cands = [a for a in (0, 1) if fits[a] and nested[a]] or [a for a in (0, 1) if fits[a]]
            if not cands:
                raise NotImplementedError("the wild bootstrap needs one FE with at most "
                                          f"{MAX_DUMMIES + 1} levels (it enters as dummies)")
            absorb = max(cands, key=lambda a: lv[a])
            dm = demean(con, scope, sample.table, cols, sample.fe, sample.keys, st, method="within_dummies",
                        fe_levels=lv, dummy_fe=1 - absorb)
            level, nested_f = sample.fe[absorb], bool(nested[absorb])
        z_all = list(dm.dummies) + controls
        ref = list(dm.dummy_ref_ss) + [st.raw_ss[1 + sample.x.index(c)] for c in controls]
        gram = cross_products(con, dm.table, [sample.y, d_col, *z_all])
        drop = find_collinear(gram[2:, 2:], ref, collin_tol) if z_all else []
        keep = [j for j in range(len(z_all)) if j not in drop]
        z = [z_all[j] for j in keep]
        k = len(z)
        if k:
            zz = gram[2:, 2:][np.ix_(keep, keep)]
            chol = linalg.cho_factor(zz)
            g_y = linalg.cho_solve(chol, gram[2:, 0][keep])
            g_d = linalg.cho_solve(chol, gram[2:, 1][keep])
            Gz = linalg.cho_solve(chol, np.eye(k))
            Gz = (Gz + Gz.T) / 2.0
            D = float(gram[1, 1] - gram[2:, 1][keep] @ g_d)
        else:
            g_y = g_d = np.zeros(0)
            Gz = np.zeros((0, 0))
            D = float(gram[1, 1])
        if not D > collin_tol * st.raw_ss[1 + sample.x.index(d_col)]:
            raise ValueError(f"{term!r} is collinear with the fixed effects and the other regressors")
        fit_y = " - ".join([sample.y] + [f"? * {c}" for c in z])
        fit_d = " - ".join([d_col] + [f"? * {c}" for c in z])
        params = [float(v) for v in g_y] + [float(v) for v in g_d]
        zsel = "".join(f", {c} AS z{j}" for j, c in enumerate(z))
        r = (f"r AS (SELECT {sample.cluster} AS g, {level} AS j, ({fit_y}) AS yt, ({fit_d}) AS dt{zsel} "
             f"FROM {dm.table})")
        aggs = ", ".join(["fsum(dt * yt)", "fsum(dt * dt)"]
                         + [f"fsum(z{j} * dt)" for j in range(k)] + [f"fsum(z{j} * yt)" for j in range(k)])
        rows = con.execute(f"WITH {r} SELECT g, {aggs} FROM r GROUP BY g ORDER BY g", params).fetchall()
        G = int(sample.n_clusters)
        if len(rows) != G or [int(x[0]) for x in rows] != list(range(1, G + 1)):  # pragma: no cover
            raise RuntimeError("unexpected cluster coding")
        M = np.array([[float(v) for v in x[1:]] for x in rows]).reshape(G, 2 + 2 * k)
        a_y, dd = M[:, 0], M[:, 1]
        Q, R = M[:, 2:2 + k], M[:, 2 + k:]
        CF_y = np.zeros((G, G))
        CF_d = np.zeros((G, G))
        if not nested_f:
            cf = con.execute(
                f"""WITH {r},
                     cj AS (SELECT j, g, fsum(dt) AS sd, fsum(yt) AS sy FROM r GROUP BY j, g),
                     nj AS (SELECT j, count(*) AS n FROM r GROUP BY j)
                SELECT a.g, b.g, fsum(a.sd * b.sy / nj.n), fsum(a.sd * b.sd / nj.n)
                FROM cj a JOIN cj b ON a.j = b.j JOIN nj ON nj.j = a.j GROUP BY a.g, b.g""",
                params).fetchall()
            for g, h, vy, vd in cf:
                CF_y[int(g) - 1, int(h) - 1] = float(vy)
                CF_d[int(g) - 1, int(h) - 1] = float(vd)
        QG = Q @ Gz
        C_y = np.diag(a_y) - CF_y - QG @ R.T
        C_d = np.diag(dd) - CF_d - QG @ Q.T
    return _ClusterMoments(D, a_y, dd, C_y, C_d, sample.nobs, G)


# ----------------------------------------------------------------- the per-draw algebra

def draw_weights(kind: str, draws: int, n_clusters: int, seed: int | None) -> np.ndarray:
    """A (draws x G) matrix of Rademacher (+-1, p = 1/2) or Webb (six-point) weights."""
    rng = np.random.default_rng(seed)
    if kind == "rademacher":
        return rng.integers(0, 2, size=(draws, n_clusters)).astype(float) * 2.0 - 1.0
    if kind == "webb":
        return WEBB[rng.integers(0, 6, size=(draws, n_clusters))]
    raise ValueError("weights must be 'rademacher', 'webb' or a (draws x G) array")


class _Curve:
    """t*(b0) and p(b0) for every b0 from B-vectors computed once (see the module doc)."""

    def __init__(self, cm: _ClusterMoments, V: np.ndarray, ssc_factor: float):
        self.D, self.c = cm.D, ssc_factor
        self.al = V @ cm.a_y / cm.D
        self.be = V @ cm.dd / cm.D
        P = V @ cm.C_y.T - np.outer(self.al, cm.dd)
        Qm = V @ cm.C_d.T - np.outer(self.be, cm.dd)
        self.pp = np.einsum("bg,bg->b", P, P)
        self.pq = np.einsum("bg,bg->b", P, Qm)
        self.qq = np.einsum("bg,bg->b", Qm, Qm)
        self.b_hat = math.fsum(cm.a_y) / cm.D
        s = cm.a_y - self.b_hat * cm.dd  # the data's CRV1 scores
        self.se = math.sqrt(ssc_factor * math.fsum(s * s)) / cm.D

    def t_star(self, b0: float) -> np.ndarray:
        meat = np.maximum(self.pp - 2.0 * b0 * self.pq + b0 * b0 * self.qq, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.al - b0 * self.be) * self.D / np.sqrt(self.c * meat)

    def t(self, b0: float) -> float:
        return (self.b_hat - b0) / self.se

    def p_sym(self, b0: float) -> float:
        return float(np.mean(np.abs(self.t_star(b0)) >= abs(self.t(b0))))

    def p_et(self, b0: float) -> float:
        ts, t = self.t_star(b0), self.t(b0)
        return float(min(1.0, 2.0 * min(np.mean(ts <= t), np.mean(ts >= t))))


def _invert(curve: _Curve, alpha: float, tol: float, side: int) -> float:
    """The b0 on one side of b^ where p(b0) falls to alpha: bracket, then bisect."""
    b, se = curve.b_hat, curve.se
    inside = b
    if not curve.p_sym(inside) > alpha:
        return float("nan")
    h = 1.0
    out = b + side * h * se
    for _ in range(80):
        if curve.p_sym(out) <= alpha:
            break
        inside, h = out, 2.0 * h
        out = b + side * h * se
    else:
        return side * float("inf")
    while abs(out - inside) > tol * se:
        mid = 0.5 * (inside + out)
        if curve.p_sym(mid) > alpha:
            inside = mid
        else:
            out = mid
    return 0.5 * (inside + out)


def wild_bootstrap(
    con: duckdb.DuckDBPyConnection,
    relation,
    formula: str,
    term: str,
    cluster: str,
    draws: int = 9999,
    weights: str | np.ndarray = "rademacher",
    seed: int | None = None,
    alpha: float = 0.05,
    impose_null: bool = True,
    ci: bool = True,
    *,
    ssc: SSC | None = None,
    ci_tol: float = 1e-6,
    fixef_rm: str = "singleton",
    collin_tol: float = 1e-10,
) -> WildBootResult:
    """Wild cluster bootstrap p-value (and test-inversion CI) of ``term``'s coefficient.

    ``formula`` as :func:`feols` (``"y ~ d + x1 | unit + year"``, no IV, no
    weights); ``cluster`` one column.  ``weights``: ``"rademacher"``,
    ``"webb"`` or an explicit (draws x G) array (``draws`` and ``seed`` are
    then ignored; columns in sorted cluster-value order).  ``ci_tol``: the
    bisection stops when the bracket is narrower than ``ci_tol * se``.
    """
    t0 = _time.perf_counter()
    fml = parse_formula(formula)
    if term not in fml.x:
        raise ValueError(f"{term!r} must be a plain regressor of the formula")
    if not isinstance(cluster, str):
        raise NotImplementedError("one cluster column is supported")
    model = feols(con, relation, formula, vcov={"CRV1": cluster}, ssc=ssc, fixef_rm=fixef_rm,
                  collin_tol=collin_tol, alpha=alpha)
    if term not in model.coef.index:
        raise ValueError(f"{term!r} was dropped as collinear")
    t1 = _time.perf_counter()
    cm = _cluster_moments(con, relation, fml, term, cluster, fixef_rm, collin_tol)
    t2 = _time.perf_counter()
    if isinstance(weights, str):
        V = draw_weights(weights, int(draws), cm.n_clusters, seed)
        wtype = weights
    else:
        V = np.asarray(weights, dtype=float)
        if V.ndim != 2 or V.shape[1] != cm.n_clusters:
            raise ValueError(f"a weight array must be (draws x {cm.n_clusters})")
        wtype, seed = "custom", None
    curve = _Curve(cm, V, float(model.ssc_factor))
    t_data = curve.t(0.0)
    if impose_null:
        ts = curve.t_star(0.0)
        p_sym, p_et = curve.p_sym(0.0), curve.p_et(0.0)
        bounds = (_invert(curve, alpha, ci_tol, -1), _invert(curve, alpha, ci_tol, +1)) if ci \
            else (float("nan"), float("nan"))
    else:
        ts = curve.t_star(curve.b_hat)  # WCU: residuals e^, t* centred at b^
        p_sym = float(np.mean(np.abs(ts) >= abs(t_data)))
        p_et = float(min(1.0, 2.0 * min(np.mean(ts <= t_data), np.mean(ts >= t_data))))
        if ci:
            lo_q, hi_q = np.quantile(ts, [alpha / 2.0, 1.0 - alpha / 2.0])
            bounds = (curve.b_hat - hi_q * curve.se, curve.b_hat - lo_q * curve.se)
        else:
            bounds = (float("nan"), float("nan"))
    t3 = _time.perf_counter()
    return WildBootResult(
        term=term, coef=curve.b_hat, se=curve.se, t_stat=t_data, p_value=p_sym, p_value_equal_tailed=p_et,
        ci=(float(bounds[0]), float(bounds[1])), draws=int(V.shape[0]), weights_type=wtype, seed=seed,
        n_clusters=cm.n_clusters, elapsed_s=t3 - t0, t_draws=ts, impose_null=impose_null, alpha=alpha,
        nobs=cm.nobs, ssc_factor=float(model.ssc_factor), model=model,
        timings={"feols_s": t1 - t0, "sql_s": t2 - t1, "draws_s": t3 - t2}, _curve=curve,
    )
