"""Mediation analysis on fixed-effects panels: two steps, Sobel test, cluster bootstrap.

Three regressions on ONE estimation sample (rows complete in Y, D, M and the controls X,
singleton-free), with the same controls, fixed effects and CRV1 errors::

    step 1   M = a D            + X'g1 + FE + u
    step 2   Y = c' D + b M     + X'g2 + FE + e
    total    Y = c D            + X'g3 + FE + v

On the same rows OLS gives ``c = c' + a b`` exactly (omitted-variable algebra), so the
indirect effect ``a b`` and the direct effect ``c'`` add up to the total effect.

Sobel: ``se(ab) = sqrt(b^2 se_a^2 + a^2 se_b^2)``, the first-order delta method with the
two steps' CRV1 standard errors and the covariance of a and b set to zero, as Sobel (1982)
does.  a and b come from different equations on the same clusters, so that covariance is
not zero in general; the normal p-value of ``z = ab / se`` is a rough guide only.

Cluster bootstrap: each draw resamples the G clusters with replacement (multinomial
multiplicities m_g, summing to G, from ``numpy.random.default_rng(seed)``) and re-estimates
a and b.  A cluster drawn m times is its rows weighted m: copies of a unit that get their
own unit FE give the same slopes as one copy weighted m.  The percentile interval is
``numpy.quantile(ab_draws, [alpha/2, 1 - alpha/2], method="linear")`` (Hyndman-Fan type 7),
the bootstrap SE the standard deviation (ddof=1) of the draws.

``bootstrap_method="sql"`` (clusters are the units, FE are unit + period, balanced panel):
with weights w_i constant within units, the weighted two-way within transform is exact in
one pass, ``x~_it = u_it - sum_j w_j u_jt / W`` (W = sum_j w_j), for any unit-demeaned
u; we take u = the unweighted two-way within transform, since a period shift h_t with
sum_t h_t = 0 leaves x~ unchanged and the subtraction then removes only small numbers.
The weighted Gram matrix of every draw is then

    sum_i w_i sum_t x~_it z~_it = sum_i w_i P_i(x, z) - sum_t U_t(x) U_t(z) / W,
    P_i(x, z) = sum_t u_it(x) u_it(z),   U_t(x) = sum_i w_i u_it(x),

one SQL statement for all draws: (draw, unit, weight) joined to the per-unit products P_i
and to the unit-period rows (grouped by draw and period).  Python solves the small systems.
On an unbalanced panel the one-pass transform is not the projection, and with other FE or
clusters that are not the units the weights are not unit-constant: ``"loop"`` then refits
:func:`feols` per draw with ``weights`` = the multiplicity of the row's cluster (rows of
undrawn clusters left out; unit ids are not relabelled, which for clusters holding whole
units changes nothing).  Draw 0 of the SQL batch gives every cluster weight 1 and must
reproduce the two steps (``batch_check``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from .model import feols
from .result import FeolsResult
from .sample import build_sample
from .sqlutil import quote_ident, resolve_relation, temp_scope
from .tables import simple_table


@dataclass
class MediationResult:
    outcome: str
    treatment: str
    mediator: str
    controls: tuple[str, ...]
    fe: tuple[str, ...]
    cluster: str
    nobs: int
    n_clusters: int
    a: float
    se_a: float
    p_a: float
    b: float
    se_b: float
    p_b: float
    c_prime: float  # direct effect
    se_c_prime: float
    p_c_prime: float
    c: float  # total effect
    se_c: float
    p_c: float
    indirect: float  # a * b
    sobel_se: float
    sobel_z: float
    sobel_p: float
    share_mediated: float  # a * b / c
    draws: int
    n_valid: int  # draws where a and b are identified
    seed: int | None
    bootstrap_method: str  # "sql" | "loop" | "none"
    boot_ci: tuple[float, float]
    boot_se: float
    boot_share_nonpositive: float  # share of valid draws with a * b <= 0
    alpha: float = 0.05
    batch_check: float = float("nan")  # SQL path: max |draw 0 - the steps' a, b, c'|
    bootstrap_draws: pd.DataFrame | None = None  # draw (1..), a, b, c_prime, ab
    multiplicities: np.ndarray | None = None  # draws x G; column g = cluster code g (sorted raw values)
    steps: dict[str, FeolsResult] = field(default_factory=dict)  # "mediator", "outcome", "total"
    bootstrap_s: float = 0.0
    elapsed_s: float = 0.0

    def summary(self) -> dict:
        keys = ["outcome", "treatment", "mediator", "nobs", "n_clusters", "a", "se_a", "p_a", "b", "se_b", "p_b",
                "c_prime", "se_c_prime", "p_c_prime", "c", "se_c", "p_c", "indirect", "sobel_se", "sobel_z",
                "sobel_p", "share_mediated", "draws", "n_valid", "seed", "bootstrap_method", "boot_se",
                "boot_share_nonpositive", "batch_check", "bootstrap_s", "elapsed_s"]
        out = {k: getattr(self, k) for k in keys}
        out["boot_ci_low"], out["boot_ci_high"] = self.boot_ci
        return out

    def render(self, fmt: str = "markdown", digits: int = 4) -> str:
        """A small table: the paths, the indirect effect, its bootstrap CI, the share mediated."""
        if fmt not in ("markdown", "html"):
            raise ValueError("fmt must be 'markdown' or 'html'")

        def f(v: float, d: int = digits) -> str:
            return "" if v is None or math.isnan(v) else f"{v:.{d}f}"

        d_, m_, y_ = self.treatment, self.mediator, self.outcome
        level = f"{1 - self.alpha:.0%}"
        lo, hi = self.boot_ci
        body = [
            [f"a: {d_} → {m_} (step 1)", f(self.a), f(self.se_a), f(self.p_a, 3)],
            [f"b: {m_} → {y_} given {d_} (step 2)", f(self.b), f(self.se_b), f(self.p_b, 3)],
            [f"c′: direct effect of {d_} (step 2)", f(self.c_prime), f(self.se_c_prime), f(self.p_c_prime, 3)],
            [f"c: total effect of {d_} (without {m_})", f(self.c), f(self.se_c), f(self.p_c, 3)],
            ["a·b: indirect effect (Sobel)", f(self.indirect), f(self.sobel_se), f(self.sobel_p, 3)],
            [f"Bootstrap {level} CI of a·b", f"[{f(lo)}, {f(hi)}]" if self.n_valid else "", f(self.boot_se),
             ""],
            ["Bootstrap draws with a·b ≤ 0", f(self.boot_share_nonpositive, 3), "", ""],
            ["Share mediated a·b / c", f(self.share_mediated, 3), "", ""],
        ]
        fe = " and ".join(self.fe) if self.fe else "no"
        ctrl = ", ".join(self.controls) if self.controls else "none"
        note = (
            f"N = {self.nobs:,}, {self.n_clusters} clusters. One sample for every equation; controls: {ctrl}; "
            f"{fe} fixed effects; SE clustered by {self.cluster} (CRV1), t p-values. "
            f"a: coefficient of {d_} in {m_} on {d_} + controls; b, c′: coefficients of {m_} and {d_} in "
            f"{y_} on {d_}, {m_} + controls; c: coefficient of {d_} in {y_} on {d_} + controls (c = c′ + a·b). "
            "Sobel SE = sqrt(b² se_a² + a² se_b²), covariance of a and b ignored, normal p. "
            f"Bootstrap: {self.draws} draws of whole clusters with replacement (seed {self.seed}, "
            f"{self.n_valid} valid), percentile CI (linear quantiles), SE = s.d. of the draws."
        )
        return simple_table(["", "Estimate", "SE", "p"], body, note, fmt)


def mediation(
    con: duckdb.DuckDBPyConnection,
    relation,
    outcome: str,
    treatment: str,
    mediator: str,
    controls=(),
    fe=("city_code", "year"),
    cluster: str = "city_code",
    draws: int = 999,
    seed: int | None = 12345,
    alpha: float = 0.05,
    method: str = "auto",
) -> MediationResult:
    """Two-step mediation of ``treatment`` -> ``mediator`` -> ``outcome`` with a cluster bootstrap.

    ``relation`` is any FROM-item (see :func:`feols`); ``controls``, ``fe`` and ``cluster`` are
    plain column names.  ``method`` forces the bootstrap path (``"sql"`` raises when its
    conditions fail; ``"loop"`` always works); ``draws=0`` skips the bootstrap.
    """
    t0 = time.perf_counter()
    controls, fe = tuple(controls), tuple(fe)
    variables = [outcome, treatment, mediator, *controls]
    if len(set(variables)) != len(variables) or set(variables) & {*fe, cluster}:
        raise ValueError("outcome, treatment, mediator, controls, fixed effects and cluster must be distinct")
    if method not in ("auto", "sql", "loop"):
        raise ValueError("method must be 'auto', 'sql' or 'loop'")
    if draws < 0:
        raise ValueError("draws must be >= 0")
    rng = np.random.default_rng(seed)

    with temp_scope(con) as scope:
        med, n_clusters, balanced = _sample_table(con, scope, resolve_relation(relation, scope), variables,
                                                  fe, cluster)

        def fit(y, x):
            return feols(con, med, y, list(x), list(fe), vcov={"CRV1": cluster}, alpha=alpha)

        s1 = fit(mediator, [treatment, *controls])
        s2 = fit(outcome, [treatment, mediator, *controls])
        tot = fit(outcome, [treatment, *controls])
        for r, need in ((s1, [treatment]), (s2, [treatment, mediator]), (tot, [treatment])):
            if any(t not in r.coef.index for t in need):
                raise ValueError(f"{need} collinear with the fixed effects or the controls in {r.formula}")
        if not s1.nobs == s2.nobs == tot.nobs:  # pragma: no cover - the sample is singleton-free already
            raise RuntimeError("the mediation steps ran on different samples")
        # controls dropped as collinear anywhere leave the bootstrap too (a and b are unaffected)
        kept = [x for x in controls if x not in {*s1.dropped, *s2.dropped, *tot.dropped}]

        sql_ok = len(fe) == 2 and cluster in fe and balanced
        if method == "sql" and not sql_ok:
            raise ValueError("the SQL bootstrap needs clusters = units, unit + period FE and a balanced panel")
        boot_method = "none" if draws == 0 else ("sql" if sql_ok and method != "loop" else "loop")
        mult = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=draws)
        t1 = time.perf_counter()
        batch_check = float("nan")
        if boot_method == "sql":
            period = quote_ident(fe[1 - fe.index(cluster)])
            gram = _bootstrap_gram(con, scope, med, [quote_ident(v) for v in [outcome, treatment, mediator, *kept]],
                                   period, np.vstack([np.ones(n_clusters), mult]))
            ab = _paths_from_gram(gram)
            real = np.array([s1.coef[treatment], s2.coef[mediator], s2.coef[treatment]])
            batch_check = float(np.max(np.abs(ab[0] - real)))
            ab = ab[1:]
        elif boot_method == "loop":
            ab = _bootstrap_loop(con, scope, med, outcome, treatment, mediator, kept, fe, mult)
        else:
            ab = np.empty((0, 3))
        bootstrap_s = time.perf_counter() - t1

    a, b = float(s1.coef[treatment]), float(s2.coef[mediator])
    se_a, se_b = float(s1.se[treatment]), float(s2.se[mediator])
    c = float(tot.coef[treatment])
    sobel_se = math.sqrt(b * b * se_a * se_a + a * a * se_b * se_b)
    z = a * b / sobel_se if sobel_se > 0 else float("nan")
    frame = pd.DataFrame({"draw": np.arange(1, len(ab) + 1), "a": ab[:, 0], "b": ab[:, 1], "c_prime": ab[:, 2],
                          "ab": ab[:, 0] * ab[:, 1]})
    valid = frame["ab"].dropna().to_numpy()
    if len(valid):
        lo, hi = np.quantile(valid, [alpha / 2, 1 - alpha / 2], method="linear")
        boot_ci = (float(lo), float(hi))
    else:
        boot_ci = (float("nan"), float("nan"))
    return MediationResult(
        outcome=outcome, treatment=treatment, mediator=mediator, controls=controls, fe=fe, cluster=cluster,
        nobs=s2.nobs, n_clusters=n_clusters,
        a=a, se_a=se_a, p_a=float(s1.pvalue[treatment]),
        b=b, se_b=se_b, p_b=float(s2.pvalue[mediator]),
        c_prime=float(s2.coef[treatment]), se_c_prime=float(s2.se[treatment]),
        p_c_prime=float(s2.pvalue[treatment]),
        c=c, se_c=float(tot.se[treatment]), p_c=float(tot.pvalue[treatment]),
        indirect=a * b, sobel_se=sobel_se, sobel_z=z, sobel_p=float(2 * stats.norm.sf(abs(z))),
        share_mediated=a * b / c if c != 0 else float("nan"),
        draws=int(draws), n_valid=len(valid), seed=seed, bootstrap_method=boot_method,
        boot_ci=boot_ci, boot_se=float(np.std(valid, ddof=1)) if len(valid) > 1 else float("nan"),
        boot_share_nonpositive=float(np.mean(valid <= 0)) if len(valid) else float("nan"),
        alpha=alpha, batch_check=batch_check, bootstrap_draws=frame, multiplicities=mult,
        steps={"mediator": s1, "outcome": s2, "total": tot},
        bootstrap_s=bootstrap_s, elapsed_s=time.perf_counter() - t0,
    )


def _sample_table(con, scope, source: str, variables: list[str], fe, cluster: str):
    """The one estimation sample, under the caller's column names, with cluster codes ``__g`` = 0..G-1.

    :func:`build_sample` applies feols's rules (listwise deletion, repeated singleton removal),
    so the three regressions and the bootstrap see exactly these rows.  FE and cluster columns
    hold integer codes in the sorted order of the raw values.
    """
    y, *x = variables
    s = build_sample(con, scope, source, y, x, list(fe), cluster, None)
    proj = [f"{s.y} AS {quote_ident(y)}"] + [f"{i} AS {quote_ident(v)}" for i, v in zip(s.x, x)]
    proj += [f"{i} AS {quote_ident(v)}" for i, v in zip(s.fe, fe)]
    if cluster not in fe:
        proj.append(f"{s.cluster} AS {quote_ident(cluster)}")
    # dense: singleton removal may have emptied whole clusters
    proj.append(f"CAST(dense_rank() OVER (ORDER BY {s.cluster}) - 1 AS INTEGER) AS __g")
    table = scope.table("mediation")
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT {', '.join(proj)} FROM {s.table}")
    (g,) = con.execute(f"SELECT max(__g) + 1 FROM {table}").fetchone()
    return table, int(g), bool(s.balanced_grid)


def _bootstrap_gram(con, scope, med: str, cols: list[str], period: str, weights: np.ndarray) -> np.ndarray:
    """Weighted two-way within Gram matrices of ``cols`` for every row of ``weights`` (draws x G), one query."""
    k = len(cols)
    pairs = [(j, m) for j in range(k) for m in range(j, k)]
    ud = scope.table("ud")
    two_way = ", ".join(f"{c} - avg({c}) OVER (PARTITION BY __g) - avg({c}) OVER (PARTITION BY {period}) "
                        f"+ avg({c}) OVER () AS v{j}" for j, c in enumerate(cols))
    con.execute(f"CREATE TEMP TABLE {ud} AS SELECT __g AS u, {period} AS t, {two_way} FROM {med}")
    un = scope.table("un")
    con.execute(f"CREATE TEMP TABLE {un} AS SELECT u, "
                + ", ".join(f"fsum(v{j} * v{m}) AS p{j}_{m}" for j, m in pairs) + f" FROM {ud} GROUP BY u")
    d, u = np.nonzero(weights)
    bw = scope.table("bw")
    view = scope.register(pd.DataFrame({"draw": d.astype(np.int32), "u": u.astype(np.int32),
                                        "w": weights[d, u].astype(float)}), "bw_df")
    con.execute(f"CREATE TEMP TABLE {bw} AS SELECT * FROM {view}")
    # fsum: sums do not depend on the thread count, and P - Q/W cancels
    sql = f"""
    WITH pu AS (SELECT bw.draw, fsum(bw.w) AS sw, {", ".join(f"fsum(bw.w * un.p{j}_{m}) AS p{j}_{m}" for j, m in pairs)}
                FROM {bw} AS bw JOIN {un} AS un USING (u) GROUP BY bw.draw),
         pt AS (SELECT bw.draw, ud.t, {", ".join(f"fsum(bw.w * ud.v{j}) AS s{j}" for j in range(k))}
                FROM {bw} AS bw JOIN {ud} AS ud USING (u) GROUP BY bw.draw, ud.t),
         pq AS (SELECT draw, {", ".join(f"fsum(s{j} * s{m}) AS q{j}_{m}" for j, m in pairs)}
                FROM pt GROUP BY draw)
    SELECT pu.*, {", ".join(f"pq.q{j}_{m}" for j, m in pairs)} FROM pu JOIN pq USING (draw) ORDER BY draw"""
    out = con.execute(sql).fetchnumpy()
    gram = np.empty((len(out["draw"]), k, k))
    for j, m in pairs:
        gram[:, j, m] = gram[:, m, j] = out[f"p{j}_{m}"] - out[f"q{j}_{m}"] / out["sw"]
    return gram


def _ols_from_gram(gram: np.ndarray, y: int, xs: list[int], cond_max: float = 1e10) -> np.ndarray:
    """Coefficients of column y on columns xs for every draw; NaN where the design is singular."""
    A = gram[:, xs][:, :, xs]
    r = gram[:, xs, y]
    diag = np.einsum("dii->di", A)
    out = np.full((len(gram), len(xs)), np.nan)
    ok = np.all(diag > 0, axis=1)
    # scaling to unit diagonal: the controls' units (yuan vs shares) should not decide singularity
    s = np.sqrt(np.where(diag > 0, diag, 1.0))
    As, rs = A / s[:, :, None] / s[:, None, :], r / s
    ok &= np.linalg.cond(As) < cond_max
    out[ok] = np.linalg.solve(As[ok], rs[ok][..., None])[..., 0] / s[ok]
    return out


def _paths_from_gram(gram: np.ndarray) -> np.ndarray:
    """(a, b, c') per draw from Gram matrices over [Y, D, M, controls...]."""
    k = gram.shape[1]
    a = _ols_from_gram(gram, 2, [1, *range(3, k)])[:, 0]
    step2 = _ols_from_gram(gram, 0, [1, 2, *range(3, k)])
    return np.column_stack([a, step2[:, 1], step2[:, 0]])


def _bootstrap_loop(con, scope, med: str, outcome, treatment, mediator, controls, fe, mult) -> np.ndarray:
    """(a, b, c') per draw from weighted :func:`feols` refits, weights = the row's cluster multiplicity."""
    d, g = np.nonzero(mult)
    wt = scope.table("bw")
    view = scope.register(pd.DataFrame({"draw": d.astype(np.int32), "g": g.astype(np.int32),
                                        "w": mult[d, g].astype(float)}), "bw_df")
    con.execute(f"CREATE TEMP TABLE {wt} AS SELECT * FROM {view}")
    out = np.full((len(mult), 3), np.nan)
    for i in range(len(mult)):
        rel = f"SELECT m.*, w.w AS __bw FROM {med} AS m JOIN {wt} AS w ON w.g = m.__g WHERE w.draw = {i}"
        try:
            r1 = feols(con, rel, mediator, [treatment, *controls], list(fe), vcov="iid", weights="__bw")
            r2 = feols(con, rel, outcome, [treatment, mediator, *controls], list(fe), vcov="iid", weights="__bw")
        except ValueError:  # every regressor collinear in this draw
            continue
        out[i] = [r1.coef.get(treatment, np.nan), r2.coef.get(mediator, np.nan), r2.coef.get(treatment, np.nan)]
    return out
