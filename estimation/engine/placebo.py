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

Nothing above assumes one adoption date per draw: ``ua`` holds the per-unit sums
for every date that any draw uses, and each (draw, unit) row picks its own date,
so a staggered draw (units adopting in different periods) goes through the same
batch.  Only the closed-form ``balanced_invariant`` path needs every draw to hold
the same multiset of dates as the data; other draws use the within-unit path.

Assignments are generated (:mod:`.assign`) or given by the caller
(``assignments=``: one row per draw and unit with the unit's adoption period in
that draw, 0 = untreated), e.g. a permutation set saved by an earlier run
(:meth:`PlaceboResult.assignment_table`) or drawn by another program.
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
from .inference import t_inference
from .model import _check_arguments, _estimation_sample, fit_sample
from .moments import cross_products
from .result import FeolsResult
from .sqlutil import quote_ident, resolve_relation, temp_scope
from .vcov import SSC, small_sample_correction


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
    assignment_source: str = "generated"  # "generated" (seeded permutations) or "given" (assignments=)
    n_staggered_draws: int = 0  # draws whose pseudo-treated units adopt in more than one period
    units: np.ndarray | None = field(default=None, repr=False)  # the sample's units (raw ids, sorted)
    unit_column: str | None = None

    def assignment_table(self) -> pd.DataFrame:
        """Every draw x every unit: ``draw``, the unit column, ``adoption`` (0 = untreated).

        The format that ``run_placebo(assignments=...)`` and ``estimate placebo
        --assignments`` read back: feeding it to them reproduces these draws.
        """
        if self.assignments is None or self.units is None:
            raise ValueError("the assignments were not kept (run_placebo(..., keep_assignments=True))")
        col = self.unit_column or "unit"
        draws = self.draws["draw"].to_numpy()
        grid = pd.DataFrame({"draw": np.repeat(draws, len(self.units)), col: np.tile(self.units, len(draws))})
        given = self.assignments.rename(columns={"unit": col})
        out = grid.merge(given, on=["draw", col], how="left")
        adoption = out["adoption"].fillna(0.0).to_numpy(dtype=float)
        integral = bool(np.all(adoption == np.round(adoption)))
        out["adoption"] = adoption.astype(np.int64) if integral else adoption
        return out

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
            "assignment_source": self.assignment_source, "staggered_draws": self.n_staggered_draws,
            "batch_method": self.method, "elapsed_s": self.elapsed_s,
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Kernel density of the placebo coefficients, their p-values, the real estimate."""
        from .figures import placebo_figure

        return placebo_figure(
            self.draws["coef"].to_numpy(), self.draws["p"].to_numpy(), self.estimate,
            self.ri_p_value, Path(path),
            title or f"Placebo test: {self.n_draws} random assignments ({self.permute})",
        )


def _check_spec(fml, treatment: str, unit: str, time: str) -> None:
    if treatment not in fml.x:
        raise ValueError(f"the treatment {treatment!r} must be a regressor of the formula")
    if unit not in fml.fe or set(fml.fe) - {unit, time}:
        raise ValueError(f"the fixed effects must be {unit!r} and optionally {time!r}")


def _same_cohorts(A: np.ndarray) -> bool:
    """Every row of A (draws x units) holds the same multiset of adoption dates."""
    srt = np.sort(np.where(np.isnan(A), np.inf, A), axis=1)
    return bool(np.all(srt == srt[0]))


def _unit_table(con, sample, d_col: str, unit_fe: str, strata_col: str | None, source: str, unit: str):
    """One row per unit code: raw id, observed adoption date, (stratum)."""
    frame = con.execute(
        f"SELECT {unit_fe} AS u, any_value(__uraw) AS unit, "
        f"min(__t) FILTER (WHERE {d_col} = 1) AS adopt "
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
    labels: np.ndarray  # the draws' labels, internal draw d = 1..D <-> labels[d - 1]
    units: np.ndarray  # the sample's units (raw ids) in code order
    n_staggered: int


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
    assignments=None,
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

    ``assignments`` (a DataFrame, or a table/query/relation of ``con``) gives the draws
    instead of generating them: columns ``draw`` (an integer label), ``unit`` (the
    column named by ``unit``) and ``adoption`` (the unit's adoption period in that draw;
    0 or NULL = untreated), one row per draw and unit, every unit of the estimation
    sample exactly once per draw, no other unit (else :class:`AssignmentError`, a
    ValueError naming the first such draw and unit).  ``draws``, ``seed``, ``strata``,
    ``n_pseudo_treated`` and ``permute`` are then ignored; the result's draws carry the
    given labels, ``permute == "given"``.  Draws may be staggered (several adoption
    periods): they go through the same batch (see the module doc).
    """
    t0 = _time.perf_counter()
    vcov = vcov if vcov is not None else {"CRV1": unit}
    fml, spec_v = _check_arguments(formula, None, None, vcov, "singleton")
    _check_spec(fml, treatment, unit, time)
    if spec_v.kind == "hetero" or len(spec_v.clusters) > 1:
        raise NotImplementedError("placebo batches support iid and one-way CRV1 errors")
    ssc = ssc or SSC()
    given = assignments is not None
    if given:  # the options of the generator do not apply
        seed, strata, n_pseudo_treated, permute = None, None, None, "given"
    rng = np.random.default_rng(seed)
    with temp_scope(con) as scope:
        # one estimation sample for the real model and the batch: the real fit is the feols of
        # this sample; the raw time and unit ride along for the adoption dates
        source = resolve_relation(relation, scope)
        sample, stats = _estimation_sample(con, scope, None, fml, list(spec_v.clusters), None, "singleton",
                                           carry={"__t": time, "__uraw": unit}, source=source)
        real = fit_sample(con, scope, sample, stats, fml, spec_v, ssc=ssc, collin_tol=collin_tol, alpha=alpha)
        if treatment not in real.coef.index:
            raise ValueError(f"the treatment {treatment!r} is collinear with the fixed effects")
        check_absorbing(con, source, unit, time, treatment)
        batch = _run_batch(con, scope, source, sample, fml, treatment, unit, spec_v, rng, draws, strata,
                           n_pseudo_treated, permute, keep_assignments, collin_tol, assignments)
    frame, dft = _draw_inference(batch, spec_v, ssc, collin_tol, alpha)
    batch_real = frame.iloc[0].to_dict()
    frame = frame.iloc[1:].reset_index(drop=True)
    frame["draw"] = batch.labels[frame["draw"].to_numpy() - 1]
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
        n_draws=len(batch.labels),
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
        assignment_source="given" if given else "generated",
        n_staggered_draws=batch.n_staggered,
        units=batch.units,
        unit_column=unit,
    )


def _run_batch(con, scope, source, sample, fml, treatment, unit, spec_v, rng, draws, strata,
               n_pseudo_treated, permute, keep_assignments, collin_tol, given) -> _Batch:
    """Assignments, demeaning of y and the controls, and the one batched query."""
    fe = list(fml.fe)
    d_col = sample.x[sample.term_names.index(treatment)]
    controls = [c for c in sample.x if c != d_col]
    unit_fe = sample.fe[fe.index(unit)]
    cl = sample.cluster
    _check_clusters_hold_units(con, sample, cl, unit_fe)
    units = _unit_table(con, sample, d_col, unit_fe, strata, source, unit)
    if given is None:
        A = _assignment_matrix(units, rng, draws, strata, n_pseudo_treated, permute)
        labels = np.arange(1, A.shape[0], dtype=np.int64)
    else:
        A, labels = _given_matrix(units, _given_frame(con, scope, given, unit), unit)
    asg, asg_name = _register_assignments(con, scope, units, A)
    # Balanced panel and the same cohort sizes in every draw (a permutation of
    # adoption dates): D's period means are then draw-invariant, so y and the
    # controls are demeaned two-way in closed form and the period effects of
    # D enter as h_t (k' = k).  Otherwise: within-unit demeaning with the
    # period FE as demeaned dummies among the controls (k' = k + T - 1).
    invariant = len(fe) == 2 and sample.balanced_grid and _same_cohorts(A)
    cols = [sample.y, *controls]
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
    z, gamma, Gam, ee, n_controls = _controls_projection(con, dm, st, sample, controls, collin_tol)
    sql = _batch_sql(z, unit_fe, cl, spec_v.kind == "iid", dm.table, asg_name, invariant)
    params = [float(v) for v in gamma] + [float(v) for v in Gam.ravel()]
    out = con.execute(sql, params).df()
    assignments = _assignments_frame(units, asg, labels) if keep_assignments else None
    return _Batch(out, ee, 1 + n_controls, sample, "balanced_invariant" if invariant else dm.method, assignments,
                  labels, units["unit"].to_numpy(), _staggered_draws(A[1:]))


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


def _assignments_frame(units, asg, labels: np.ndarray) -> pd.DataFrame:
    raw_units = units.set_index("u")["unit"]
    frame = pd.DataFrame({"draw": asg["draw"], "unit": raw_units.loc[asg["u"]].to_numpy(),
                          "adoption": asg["adopt"]})
    frame = frame[frame["draw"] > 0].reset_index(drop=True)
    frame["draw"] = labels[frame["draw"].to_numpy() - 1]
    return frame


def _staggered_draws(A: np.ndarray) -> int:
    """Draws (rows of A) whose treated units do not all adopt in the same period."""
    treated = ~np.isnan(A)
    lo = np.where(treated, A, np.inf).min(axis=1)
    hi = np.where(treated, A, -np.inf).max(axis=1)
    return int(np.sum(treated.any(axis=1) & (hi > lo)))


class AssignmentError(ValueError):
    """A given assignment set that is not one row per draw and unit of the estimation sample.

    Attributes: ``reason`` (what is wrong, in words), ``expected`` (what was expected),
    ``index`` (the label of the offending row of the frame passed; None for a unit that is
    missing from a draw or a missing column), ``first_index`` (a repeated row's first
    occurrence), ``column``/``value`` (the offending cell), ``draw``/``unit``.  A caller that
    knows where the rows came from (a file) words the location with :meth:`describe`.
    """

    def __init__(self, reason: str, expected: str, *, draw=None, unit=None, index=None, first_index=None,
                 column: str | None = None, value=None):
        self.reason, self.expected = reason, expected
        self.draw, self.unit, self.index, self.first_index = draw, unit, index, first_index
        self.column, self.value = column, value
        super().__init__(self.describe())

    def describe(self, source: str = "assignments", locate=lambda label: f"index {label!r}") -> str:
        """``source, <row>, column 'c', value v: reason; expected ...`` with rows worded by ``locate``."""
        where = [source]
        if self.index is not None:
            where.append(locate(self.index))
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.value is not None:
            where.append(f"value {self.value!r}")
        reason = self.reason
        if self.first_index is not None:
            reason += f" (first at {locate(self.first_index)})"
        return f"{', '.join(where)}: {reason}; expected {self.expected}"


_EXPECT_DRAW = "an integer draw label"
_EXPECT_ADOPTION = "the unit's adoption period in that draw (a number; 0 or empty = untreated)"
_EXPECT_ONCE = "every unit of the estimation sample exactly once per draw, and no other unit"


def _plain(v):
    """numpy scalars as Python values, so that messages read 17, not np.int64(17)."""
    return v.item() if isinstance(v, np.generic) else v


def _given_frame(con, scope, given, unit: str) -> pd.DataFrame:
    """The caller's assignments as a DataFrame (its index labels name the rows in errors)."""
    if isinstance(given, pd.DataFrame):
        frame = given
    else:
        frame = con.execute(f"SELECT * FROM {resolve_relation(given, scope)}").df()
    missing = [c for c in dict.fromkeys(("draw", unit, "adoption")) if c not in frame.columns]
    if missing:
        raise AssignmentError(f"no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns))})",
                              f"the columns draw, {unit} and adoption")
    if frame.empty:
        raise AssignmentError("no rows", "one row per draw and unit")
    return frame


def _numeric_column(frame: pd.DataFrame, column: str, expected: str, *, integral: bool) -> np.ndarray:
    """The column as float (NaN where empty); the first value that is not a number raises."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    empty = raw.isna().to_numpy()
    bad = (np.isnan(values) & ~empty) | np.isinf(values)
    if integral:
        bad |= empty | (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = None if empty[i] else _plain(raw.iloc[i])
        what = "empty" if empty[i] else ("not an integer" if integral and np.isfinite(values[i]) else "not a number")
        raise AssignmentError(f"{what}", expected, index=_plain(frame.index[i]), column=column, value=value)
    return values


def _unit_positions(sample_units: pd.Series, given: pd.Series) -> np.ndarray:
    """Position of each given unit among the sample's units, -1 when unknown.

    Matched by value; when that leaves unknown units but matching the text of both sides
    does not (e.g. ids read as text from a file and as integers from the data), by text.
    """
    pos = pd.Index(sample_units).get_indexer(given)
    if (pos < 0).any():
        as_text = pd.Index(sample_units.astype(str))
        if as_text.is_unique:
            pos_text = as_text.get_indexer(given.astype(str))
            if (pos_text >= 0).sum() > (pos >= 0).sum():
                pos = pos_text
    return pos


def _given_matrix(units: pd.DataFrame, frame: pd.DataFrame, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """(1 + draws) x units adoption dates (row 0: the data's; NaN = untreated) and the draw labels."""
    draw = _numeric_column(frame, "draw", _EXPECT_DRAW, integral=True).astype(np.int64)
    adoption = _numeric_column(frame, "adoption", _EXPECT_ADOPTION, integral=False)
    adoption[adoption == 0] = np.nan  # NaN (empty) already means untreated
    raw_unit = frame[unit]
    empty = raw_unit.isna().to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise AssignmentError(f"empty unit in draw {draw[i]}", "a unit of the estimation sample", draw=int(draw[i]),
                              index=_plain(frame.index[i]), column=unit)
    pos = _unit_positions(units["unit"], raw_unit)
    labels, d_idx = np.unique(draw, return_inverse=True)
    _check_each_unit_once(units["unit"], frame, raw_unit, labels, d_idx, pos)
    A = np.full((1 + labels.size, len(units)), np.nan)
    A[0] = units["adopt"].to_numpy(dtype=float)
    A[1 + d_idx, pos] = adoption
    return A, labels


def _check_each_unit_once(sample_units, frame, raw_unit, labels, d_idx, pos) -> None:
    """Raise for the first draw (in label order) with an unknown, a repeated or a missing unit.

    Within that draw an unknown or repeated unit is named in row order, else the first
    missing unit in the sample's order.
    """
    n_units = len(sample_units)
    unknown = pos < 0
    key = d_idx.astype(np.int64) * (n_units + 1) + np.where(unknown, n_units, pos)
    repeated = pd.Series(key).duplicated(keep="first").to_numpy() & ~unknown
    listed = np.zeros(labels.size, dtype=np.int64)
    np.add.at(listed, d_idx[~unknown & ~repeated], 1)
    bad_draws = set(d_idx[unknown | repeated].tolist()) | set(np.flatnonzero(listed < n_units).tolist())
    if not bad_draws:
        return
    d = min(bad_draws)
    label = int(labels[d])
    rows = np.flatnonzero((d_idx == d) & (unknown | repeated))
    if rows.size:
        i = int(rows[0])
        u, idx = _plain(raw_unit.iloc[i]), _plain(frame.index[i])
        if unknown[i]:
            raise AssignmentError(f"draw {label} lists unit {u!r}, which is not in the estimation sample",
                                  _EXPECT_ONCE, draw=label, unit=u, index=idx, column=raw_unit.name, value=u)
        first = _plain(frame.index[int(np.flatnonzero(key == key[i])[0])])
        raise AssignmentError(f"draw {label} lists unit {u!r} a second time", _EXPECT_ONCE, draw=label, unit=u,
                              index=idx, first_index=first, column=raw_unit.name, value=u)
    seen = np.zeros(n_units, dtype=bool)
    seen[pos[(d_idx == d) & ~unknown]] = True
    u = _plain(sample_units.iloc[int(np.flatnonzero(~seen)[0])])
    raise AssignmentError(f"draw {label} does not list unit {u!r} of the estimation sample", _EXPECT_ONCE,
                          draw=label, unit=u)


def _controls_projection(con, dm, st, sample, controls, collin_tol):
    """Z~ (period dummies and kept controls), g = (Z'Z)^-1 Z'y, (Z'Z)^-1, e'e and #controls kept."""
    z_all = dm.dummies + controls
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
