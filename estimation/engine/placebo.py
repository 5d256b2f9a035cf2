"""Randomisation inference for a DID: all placebo draws in ONE DuckDB query.

Model: y_it = b D_it + X_it'c + mu_i + g_t + e_it, with D_it = 1[t >= A_i] and
each draw d re-assigning the adoption dates A_i (see :mod:`.assign`).

Why one query suffices (Frisch-Waugh-Lovell).  Absorb the unit FE by
within-unit demeaning and treat the period FE as demeaned dummies, so that
Z~ = [period dummies, X] (unit-demeaned, k' columns) is the same in every
draw.  With e = y~ - Z~ g (the residual of y on the controls and both FE,
computed once), the draw's treatment D~ = D - c_i/n_i (c_i = treated periods
of unit i, n_i its periods) and r = D~ - Z~ p_d, p_d = (Z~'Z~)^-1 Z~'D_d:

    b_d  = r'e / r'r = D_d'e / r'r,          r'r = sum_i DD_i(A_i) - (Z~'D_d)'p_d
    score of unit i:  S_di = sum_t r_it (e_it - r_it b_d)
                           = E_i(A_i) - p_d'XE_i - b_d [DD_i(A_i) - 2 p_d'A_i(A_i) + p_d'XX_i p_d]

where, for a candidate adoption date a,

    E_i(a) = sum_{t>=a} e_it,  A_i(a) = sum_{t>=a} Z~_it,  DD_i(a) = c - c^2/n_i (c = #{t >= a}),
    XE_i = sum_t Z~_it e_it,   XX_i = sum_t Z~_it Z~_it'

(the sums over t of e and of Z~ within a unit are zero, which is what makes
the draw enter only through these per-unit, per-date sums).  The O(N) work -
demeaning, e, the unit x date and unit sums - is done once; each draw then
costs O(units x k'^2) inside the same SQL statement: per-draw sums over the
treated units give p_d and b_d, a draws x units product gives S_di, and
``GROUP BY draw, cluster`` gives the meat.  CRV1 for draw d:

    V_d = G/(G-1) (N-1)/(N-K) sum_g (sum_{i in g} S_di)^2 / (r'r)^2

with K counted as for the real model (see :mod:`.vcov`); iid: V_d =
(e'e - b_d^2 r'r)/(N-K) / r'r.  Clusters must contain whole units.  This is
exactly the estimate, SE and p-value a full refit on the draw's assignment
would give (tested against a loop of pyfixest refits).
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy import linalg

from .adoption import check_absorbing
from .assign import draw_assignments
from .collinear import find_collinear
from .demean import column_stats, demean
from .formula import parse_formula
from .inference import t_inference
from .model import feols
from .moments import cross_products
from .result import FeolsResult
from .sample import build_sample, complete_sql
from .sqlutil import quote_ident, resolve_relation, temp_scope
from .terms import design_columns
from .vcov import SSC, parse_vcov, small_sample_correction


@dataclass
class PlaceboResult:
    real: FeolsResult  # the model on the actual assignment
    treatment: str
    draws: pd.DataFrame  # draw, coef, se, t, p (draw 1..D)
    ri_p_value: float  # share of draws with |b_d| >= |b|, as pyfixest ritest / Stata ritest
    ri_p_value_plus1: float  # (1 + count) / (1 + draws): never 0, valid at any draws
    n_draws: int
    n_valid: int  # draws whose pseudo-treatment is not collinear with the FE/controls
    permute: str
    strata: str | None
    n_pseudo_treated: int | None
    seed: int | None
    vcov: str
    df_t: int
    batch_real: dict = field(default_factory=dict)  # the batch's own draw 0 (the actual assignment)
    method: str = ""  # "balanced_invariant" or "within_dummies"/"oneway" (see the module doc)
    assignments: pd.DataFrame | None = None  # draw, unit, adoption (pseudo-treated units only)
    elapsed_s: float = 0.0

    @property
    def estimate(self) -> float:
        return float(self.real.coef[self.treatment])

    def summary(self) -> dict:
        r = self.real.tidy().set_index("term").loc[self.treatment]
        return {
            "term": self.treatment, "coef": float(r.coef), "se": float(r.se), "t": float(r.t),
            "p": float(r.p), "ci_low": float(r.ci_low), "ci_high": float(r.ci_high),
            "ri_p_value": self.ri_p_value, "ri_p_value_plus1": self.ri_p_value_plus1,
            "draws": self.n_draws, "valid_draws": self.n_valid, "permute": self.permute,
            "strata": self.strata, "n_pseudo_treated": self.n_pseudo_treated, "seed": self.seed,
            "placebo_mean": float(self.draws["coef"].mean()),
            "placebo_sd": float(self.draws["coef"].std()),
            "share_p_below_0.1": float((self.draws["p"] < 0.1).mean()),
            "elapsed_s": self.elapsed_s,
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Kernel density of the placebo coefficients, their p-values, the real estimate."""
        from .figures import placebo_figure

        return placebo_figure(
            self.draws["coef"].to_numpy(), self.draws["p"].to_numpy(), self.estimate,
            self.ri_p_value, Path(path),
            title or f"Placebo test: {self.n_draws} random assignments ({self.permute})",
        )


def _check_spec(fml, treatment: str, unit: str, time: str) -> list[str]:
    if treatment not in fml.x:
        raise ValueError(f"the treatment {treatment!r} must be a regressor of the formula")
    if unit not in fml.fe or set(fml.fe) - {unit, time}:
        raise ValueError(f"the fixed effects must be {unit!r} and optionally {time!r}")
    return [t for t in fml.rhs if t != treatment]


def _same_cohorts(A: np.ndarray) -> bool:
    """Every row of A (draws x units) holds the same multiset of adoption dates."""
    srt = np.sort(np.where(np.isnan(A), np.inf, A), axis=1)
    return bool(np.all(srt == srt[0]))


def _unit_table(con, sample, unit_fe: str, strata_col: str | None, source: str, unit: str):
    """One row per unit code: raw id, observed adoption date, (stratum)."""
    frame = con.execute(
        f"SELECT {unit_fe} AS u, any_value(__uraw) AS unit, "
        f"min(__t) FILTER (WHERE {sample.x[-1]} = 1) AS adopt "
        f"FROM {sample.table} GROUP BY 1 ORDER BY 1"
    ).df()
    if strata_col is not None:
        s = quote_ident(strata_col)
        st = con.execute(
            f"SELECT {quote_ident(unit)} AS unit, any_value({s}) AS stratum, count(DISTINCT {s}) AS k "
            f"FROM {source} GROUP BY 1"
        ).df()
        if (st["k"] > 1).any():
            raise ValueError(f"strata column {strata_col!r} varies within a unit")
        frame = frame.merge(st[["unit", "stratum"]], on="unit", how="left")
    return frame


def _batch_sql(z: list[str], unit_fe: str, cluster: str | None, iid: bool, dm: str, asg: str,
               invariant_h: bool) -> str:
    """The one statement computing every draw's b, r'r and cluster meat.

    Parameters bound in order: g (k'), then Gamma = (Z'Z)^-1 row by row (k'^2).
    With ``invariant_h`` the period effects of D enter through h_t (see
    :func:`run_placebo`), computed here from draw 0's cohort sizes.
    """
    k = len(z)
    J = range(k)
    pairs = [(j, m) for j in J for m in J if j <= m]
    fit = " + ".join(f"? * {c}" for c in z)
    zsel = ", ".join(f"{c} AS z{j}" for j, c in enumerate(z))
    g_sel = f"{cluster} AS g" if cluster else f"{unit_fe} AS g"
    a_sums = ", ".join(f"fsum(r.z{j}) AS a{j}" for j in J)
    sa = ", ".join(f"fsum(dt.a{j}) AS sa{j}" for j in J)
    pis = ", ".join("(" + " + ".join(f"? * sa{m}" for m in J) + f") AS p{j}" for j in J)
    sa_p = " + ".join(f"sa{j} * p{j}" for j in J)
    if invariant_h:
        # h_t = m_t/U - mean_t(m_t/U), m_t = units treated by t (the same in every draw)
        h_ctes = f"""
         r0 AS (SELECT {unit_fe} AS u, {g_sel}, __t AS t, __y - ({fit}) AS e, {zsel} FROM {dm}),
         tl AS (SELECT DISTINCT t FROM r0),
         a0 AS (SELECT adopt FROM {asg} WHERE draw = 0),
         mt AS (SELECT tl.t, count(a0.adopt) / (SELECT count(DISTINCT u) FROM r0) AS m
                FROM tl LEFT JOIN a0 ON a0.adopt <= tl.t GROUP BY tl.t),
         ht AS (SELECT t, m - avg(m) OVER () AS h FROM mt),
         r AS (SELECT r0.*, ht.h FROM r0 JOIN ht USING (t)),"""
    else:
        h_ctes = f"""
         r AS (SELECT {unit_fe} AS u, {g_sel}, __t AS t, __y - ({fit}) AS e, {zsel}, 0.0 AS h
               FROM {dm}),"""
    head = f"""
    WITH {h_ctes}
         coh AS (SELECT DISTINCT adopt AS a FROM {asg}),
         ua AS (SELECT r.u, coh.a, fsum(r.e) AS e_a, count(*) AS c, fsum(r.h) AS h_a, {a_sums}
                FROM r JOIN coh ON r.t >= coh.a GROUP BY r.u, coh.a),
         un AS (SELECT u, any_value(g) AS g, count(*) AS n, fsum(h * e) AS pe, fsum(h * h) AS hh,
                       {", ".join(f"fsum(h * z{j}) AS q{j}" for j in J)},
                       {", ".join(f"fsum(z{j} * e) AS xe{j}" for j in J)},
                       {", ".join(f"fsum(z{j} * z{m}) AS xx{j}_{m}" for j, m in pairs)}
                FROM r GROUP BY u),
         hsum AS (SELECT fsum(hh) AS hh_all FROM un),
         dt AS (SELECT asg.draw, asg.u, ua.e_a, ua.c,
                       ua.c - ua.c * ua.c / un.n - 2 * ua.h_a AS dd, {", ".join(f"ua.a{j}" for j in J)}
                FROM {asg} AS asg JOIN ua ON ua.u = asg.u AND ua.a = asg.adopt JOIN un ON un.u = asg.u),
         dd AS (SELECT draw, fsum(e_a) AS se, fsum(dd) + any_value(hh_all) AS sdd, sum(c) AS sc, {sa}
                FROM dt, hsum GROUP BY draw),
         b0 AS (SELECT draw, se, sdd, sc, {", ".join(f"sa{j}" for j in J)}, {pis} FROM dd),
         b1 AS (SELECT *, sdd - ({sa_p}) AS rr FROM b0),
         b AS (SELECT *, se / rr AS beta FROM b1)"""
    if iid:
        return head + "\n    SELECT draw, beta, rr, sc, NULL AS meat, NULL AS n_g FROM b ORDER BY draw"
    # p'XX p with the products p_j p_m formed once per draw
    qcoef = ", ".join(f"{'2 * ' if j < m else ''}p{j} * p{m} AS w{j}_{m}" for j, m in pairs)
    quad = " + ".join(f"w{j}_{m} * un.xx{j}_{m}" for j, m in pairs)
    pxe = " + ".join(f"p{j} * un.xe{j}" for j in J)
    pq = " + ".join(f"p{j} * un.q{j}" for j in J)
    pa = " + ".join(f"s0.p{j} * coalesce(dt.a{j}, 0)" for j in J)
    return head + f""",
         bq AS (SELECT draw, beta, {", ".join(f"p{j}" for j in J)}, {qcoef} FROM b),
         s0 AS (SELECT bq.draw, un.u, un.g, bq.beta, {", ".join(f"bq.p{j}" for j in J)},
                       un.pe + {pxe} AS pxe, un.hh + 2 * ({pq}) + {quad} AS pxxp
                FROM bq CROSS JOIN un),
         s1 AS (SELECT s0.draw, s0.g,
                       coalesce(dt.e_a, 0) - s0.pxe
                       - s0.beta * (coalesce(dt.dd, 0) - 2 * ({pa}) + s0.pxxp) AS s
                FROM s0 LEFT JOIN dt ON dt.draw = s0.draw AND dt.u = s0.u),
         sg AS (SELECT draw, g, sum(s) AS s FROM s1 GROUP BY draw, g),
         m AS (SELECT draw, fsum(s * s) AS meat, count(*) AS n_g FROM sg GROUP BY draw)
    SELECT b.draw, b.beta, b.rr, b.sc, m.meat, m.n_g FROM b JOIN m USING (draw) ORDER BY b.draw"""


@dataclass
class _Batch:
    """What the one batched query returns, with the sample facts its inference needs."""

    out: pd.DataFrame  # draw, beta, rr, sc, meat, n_g (draw 0 = the actual assignment)
    ee: float  # e'e: SSR of y on the controls and both FE
    k: int  # treatment + kept controls
    sample: object
    method: str
    assignments: pd.DataFrame | None


def run_placebo(
    con: duckdb.DuckDBPyConnection,
    relation,
    formula: str,
    treatment: str,
    unit: str,
    time: str,
    draws: int = 500,
    seed: int | None = None,
    strata: str | None = None,
    n_pseudo_treated: int | None = None,
    permute: str = "adoption",
    *,
    vcov: str | Mapping[str, str] | None = None,
    ssc: SSC | None = None,
    alpha: float = 0.05,
    keep_assignments: bool = True,
    collin_tol: float = 1e-10,
) -> PlaceboResult:
    """Placebo DID estimates for ``draws`` random assignments, in one SQL batch.

    ``formula`` is the real model, ``"y ~ treatment + controls | unit + time"``
    (the period FE may be left out).  ``treatment`` is a 0/1 absorbing post
    indicator; adoption dates are read from it per unit.  ``vcov`` defaults
    to CRV1 by ``unit``; ``{"CRV1": col}`` with ``col`` constant within units
    (e.g. province) and ``"iid"`` are supported.  Returns the real estimate
    (:func:`feols`), each draw's coef/se/t/p and the two-sided randomisation
    p-value.  Stages: the real model; the sample and the draws' assignments; the
    O(N) batch in SQL; per-draw inference with the engine's own corrections.
    """
    t0 = _time.perf_counter()
    fml = parse_formula(formula)
    controls = _check_spec(fml, treatment, unit, time)
    vcov = vcov if vcov is not None else {"CRV1": unit}
    spec_v = parse_vcov(vcov)
    if spec_v.kind == "hetero" or len(spec_v.clusters) > 1:
        raise NotImplementedError("placebo batches support iid and one-way CRV1 errors")
    ssc = ssc or SSC()
    real = feols(con, relation, formula, vcov=vcov, ssc=ssc, alpha=alpha, collin_tol=collin_tol)
    if treatment not in real.coef.index:
        raise ValueError(f"the treatment {treatment!r} is collinear with the fixed effects")
    rng = np.random.default_rng(seed)
    batch = _run_batch(con, relation, fml, controls, treatment, unit, time, spec_v, rng, draws, strata,
                       n_pseudo_treated, permute, real.nobs, keep_assignments, collin_tol)
    frame, dft = _draw_inference(batch, spec_v, ssc, collin_tol, alpha)
    batch_real = frame.iloc[0].to_dict()
    frame = frame.iloc[1:].reset_index(drop=True)
    valid = frame["coef"].notna()
    b_real = float(real.coef[treatment])
    hits = int((frame.loc[valid, "coef"].abs() >= abs(b_real)).sum())
    n_valid = int(valid.sum())
    return PlaceboResult(
        real=real,
        treatment=treatment,
        draws=frame,
        ri_p_value=hits / n_valid if n_valid else float("nan"),
        ri_p_value_plus1=(1 + hits) / (1 + n_valid),
        n_draws=int(draws),
        n_valid=n_valid,
        permute=permute,
        strata=strata,
        n_pseudo_treated=n_pseudo_treated,
        seed=seed,
        vcov=spec_v.kind,
        df_t=int(dft),
        batch_real=batch_real,
        method=batch.method,
        assignments=batch.assignments,
        elapsed_s=_time.perf_counter() - t0,
    )


def _run_batch(con, relation, fml, controls, treatment, unit, time, spec_v, rng, draws, strata,
               n_pseudo_treated, permute, nobs_real, keep_assignments, collin_tol) -> _Batch:
    """Sample, assignments, demeaning of y and the controls, and the one batched query."""
    fe = list(fml.fe)
    clusters = list(spec_v.clusters)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        check_absorbing(con, source, unit, time, treatment)
        needed = [fml.y, *fml.x, *(c for t in fml.factors for c in t.columns), *fe, *clusters]
        terms = design_columns(con, source, tuple(controls), complete_sql(needed))
        sample = build_sample(con, scope, source, fml.y, [*terms, treatment], fe, clusters or None,
                              None, carry={"__t": time, "__uraw": unit})
        if sample.nobs != nobs_real:  # pragma: no cover - same sample rules as feols
            raise RuntimeError("placebo sample differs from the real model's sample")
        unit_fe = sample.fe[fe.index(unit)]
        cl = sample.cluster
        _check_clusters_hold_units(con, sample, cl, unit_fe)
        units = _unit_table(con, sample, unit_fe, strata, source, unit)
        A = _assignment_matrix(units, rng, draws, strata, n_pseudo_treated, permute)
        asg, asg_name = _register_assignments(con, scope, units, A)
        # Balanced panel and the same cohort sizes in every draw (a permutation of
        # adoption dates): D's period means are then draw-invariant, so y and the
        # controls are demeaned two-way in closed form and the period effects of
        # D enter as h_t (k' = k).  Otherwise: within-unit demeaning with the
        # period FE as demeaned dummies among the controls (k' = k + T - 1).
        invariant = len(fe) == 2 and sample.balanced_grid and _same_cohorts(A)
        cols = [sample.y, *sample.x[:-1]]
        st = column_stats(con, sample.table, cols)
        keep = [*sample.fe, *([cl] if cl and cl not in sample.fe else []), "__t"]
        if invariant:
            dm = demean(con, scope, sample.table, cols, sample.fe, keep, st, method="balanced",
                        balanced_grid=True)
        elif len(fe) == 2:
            dm = demean(con, scope, sample.table, cols, sample.fe, keep, st, method="within_dummies",
                        fe_levels=sample.fe_levels, dummy_fe=1 - fe.index(unit))
        else:
            dm = demean(con, scope, sample.table, cols, sample.fe, keep, st, method="oneway")
        z, gamma, Gam, ee, n_controls = _controls_projection(con, dm, st, sample, collin_tol)
        sql = _batch_sql(z, unit_fe, cl, spec_v.kind == "iid", dm.table, asg_name, invariant)
        params = [float(v) for v in gamma] + [float(v) for v in Gam.ravel()]
        out = con.execute(sql, params).df()
        assignments = _assignments_frame(units, asg) if keep_assignments else None
    return _Batch(out, ee, 1 + n_controls, sample, "balanced_invariant" if invariant else dm.method, assignments)


def _check_clusters_hold_units(con, sample, cl, unit_fe) -> None:
    if cl is None or cl == unit_fe:
        return
    (mx,) = con.execute(
        f"SELECT max(n) FROM (SELECT count(DISTINCT {cl}) AS n FROM {sample.table} GROUP BY {unit_fe})"
    ).fetchone()
    if mx > 1:
        raise ValueError("placebo clusters must contain whole units (cluster constant within unit)")


def _assignment_matrix(units, rng, draws, strata, n_pseudo_treated, permute) -> np.ndarray:
    """Row 0: the actual adoption dates; rows 1..draws: the placebo assignments."""
    adopt = units["adopt"].to_numpy(dtype=float)
    strata_v = units["stratum"].astype(str).to_numpy() if strata else None
    return np.vstack([adopt[None, :], draw_assignments(adopt, draws, rng, strata_v, n_pseudo_treated, permute)])


def _register_assignments(con, scope, units, A) -> tuple[pd.DataFrame, str]:
    d_idx, u_idx = np.nonzero(~np.isnan(A))
    asg = pd.DataFrame({"draw": d_idx.astype(np.int32),
                        "u": units["u"].to_numpy()[u_idx].astype(np.int32),
                        "adopt": A[d_idx, u_idx]})
    name = scope.table("asg")
    view = scope.register(asg, "asg_df")
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {view}")
    return asg, name


def _assignments_frame(units, asg) -> pd.DataFrame:
    raw_units = units.set_index("u")["unit"]
    frame = pd.DataFrame({"draw": asg["draw"], "unit": raw_units.loc[asg["u"]].to_numpy(),
                          "adoption": asg["adopt"]})
    return frame[frame["draw"] > 0].reset_index(drop=True)


def _controls_projection(con, dm, st, sample, collin_tol):
    """Z~ (period dummies and kept controls), g = (Z'Z)^-1 Z'y, (Z'Z)^-1, e'e and #controls kept."""
    z_all = dm.dummies + sample.x[:-1]
    ref = dm.dummy_ref_ss + st.raw_ss[1:]
    gram = cross_products(con, dm.table, [sample.y, *z_all])
    drop = find_collinear(gram[1:, 1:], ref, collin_tol)
    keep_z = [j for j in range(len(z_all)) if j not in drop]
    n_controls = sum(1 for j in keep_z if j >= len(dm.dummies))
    z = [z_all[j] for j in keep_z]
    zz = gram[1:, 1:][np.ix_(keep_z, keep_z)]
    zy = gram[1:, 0][keep_z]
    yy = gram[0, 0]
    if not z:
        # no control and no period dummy: a constant-zero column keeps the
        # batch SQL's shape, with p_d = 0 and e = y~
        return ["0.0"], np.zeros(1), np.zeros((1, 1)), float(yy), 0
    chol = linalg.cho_factor(zz)
    gamma = linalg.cho_solve(chol, zy)
    Gam = linalg.cho_solve(chol, np.eye(len(z)))
    return z, gamma, (Gam + Gam.T) / 2.0, float(yy - zy @ gamma), n_controls


def _draw_inference(batch: _Batch, spec_v, ssc: SSC, collin_tol: float, alpha: float):
    """Each draw's coef, se, t, p with the same corrections and t reference as the real model."""
    out, sample = batch.out, batch.sample
    n = sample.nobs
    beta = out["beta"].to_numpy(dtype=float)
    rr = out["rr"].to_numpy(dtype=float)
    degenerate = ~(rr > collin_tol * out["sc"].to_numpy(dtype=float))
    corr = small_sample_correction(spec_v, ssc, n, batch.k, sample.fe_levels, sample.fe_nested_in_cluster,
                                   sample.n_clusters)
    if spec_v.kind == "CRV1":
        var = corr.factor * out["meat"].to_numpy(dtype=float) / rr**2  # b' = (r'r)^-1, meat sum_g S_g^2
    else:
        var = corr.factor * (batch.ee - beta**2 * rr) / (n - 1) / rr  # SSR_d/(N-1) (r'r)^-1
    with np.errstate(invalid="ignore"):
        se = np.sqrt(var)
    beta = np.where(degenerate, np.nan, beta)
    se = np.where(degenerate, np.nan, se)
    tstat, p, _, _ = t_inference(beta, se, corr.df_t, alpha)
    frame = pd.DataFrame({"draw": out["draw"].to_numpy(dtype=int), "coef": beta, "se": se, "t": tstat, "p": p})
    return frame, corr.df_t
