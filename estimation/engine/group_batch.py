"""Every draw of :func:`.groups.permutation_test` in ONE DuckDB query.

Model, fitted on each group g separately: y_it = x_it'b_g + mu_i + lambda_gt + e_it (unit
FE, and group-specific period FE when the formula has a period FE).  A draw only moves
units between the two groups, so everything is built from per-unit pieces computed once.
With z = (y, x) and u_it = z_it - zbar_i (the unit's own mean):

* unit FE only:  Z~'Z~ within g = sum_{i in g} W_i,  W_i = sum_t u_it u_it';
* unit and period FE on a balanced panel: inside g the two-way within transform is
  z~_it = u_it - (1/n_g) S_gt with S_gt = sum_{j in g} u_jt, so

      Z~'Z~ within g = sum_{i in g} W_i - (1/n_g) sum_t S_gt S_gt'

  (the cross term is -2/n_g sum_t S_gt S_gt' and the square +1/n_g of it).

Per draw d the query joins the (draw, unit) assignment of ONE group (the smaller, J) with
the per-unit table (W_i, and the raw sums of squares the collinearity check is scaled
by) and the per-unit-period table (u_it), summing W_J and S_Jt by draw; the other group
follows from the totals, W_O = W - W_J and S_Ot = S_t - S_Jt.  The O(N) pass (means,
u, W) happens once; a draw costs O(n_J (k^2 + T k)).  Python then solves two k x k
systems per draw, stacked, with feols's collinearity rule (:mod:`.collinear`): a draw in
which the term is collinear within a pseudo-group is NaN, other collinear controls are
dropped as feols drops them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .collinear import find_collinear
from .formula import Formula
from .sample import build_sample, complete_sql
from .sqlutil import quote_ident
from .terms import design_columns


@dataclass
class PermSample:
    """The pooled estimation sample of the two groups and its units' labels."""

    restricted: str  # SQL: the source's rows of g0 and g1, with their rank as __gr
    table: str  # build_sample's table (internal names __y, __x0.., __f0..)
    y: str
    x: list[str]
    unit_fe: str | None  # internal code of the unit FE (None when it is not a FE)
    period_fe: str | None  # internal code of the period FE (None: unit FE only)
    units: np.ndarray  # raw unit ids, sorted
    codes: np.ndarray | None  # the units' FE codes (SQL path)
    labels: np.ndarray  # 0 (g0) / 1 (g1) per unit
    strata: np.ndarray | None
    note: str  # non-empty: why the SQL batch cannot be used


def permutation_sample(con, scope, source: str, fml: Formula, unit: str, lv, ranks, strata: str | None) -> PermSample:
    """The listwise-complete, singleton-free sample of g0 and g1, and one row per unit."""
    restricted = (f"SELECT s.*, lv.r AS __gr FROM {source} s JOIN {lv.table} lv ON s.{lv.group} = lv.v "
                  f"WHERE lv.r IN ({int(ranks[0])}, {int(ranks[1])})")
    src = f"({restricted})"
    needed = [fml.y, *fml.x, *(c for t in fml.factors for c in t.columns), *fml.fe]
    terms = design_columns(con, src, fml.rhs, complete_sql(needed))
    sample = build_sample(con, scope, src, fml.y, terms, list(fml.fe), None, None,
                          carry={"__uraw": unit, "__g": "__gr"})
    fe = list(fml.fe)
    unit_fe = sample.fe[fe.index(unit)] if unit in fe else None
    units = con.execute(
        f"SELECT __uraw AS unit, count(DISTINCT __g) AS n_g, any_value(__g) AS r"
        f"{f', any_value({unit_fe}) AS code' if unit_fe else ''} FROM {sample.table} GROUP BY 1 ORDER BY 1"
    ).df()
    if (units["n_g"] > 1).any():
        raise ValueError("the group varies within a unit: labels can only be permuted across units")
    labels = (units["r"].to_numpy() == ranks[1]).astype(np.int8)
    if labels.min() == labels.max():
        raise ValueError("both groups need units in the estimation sample")
    note = _why_loop(fml, unit, sample)
    period = sample.fe[1 - fe.index(unit)] if not note and len(fe) == 2 else None
    if period and min(labels.sum(), labels.size - labels.sum()) < 2:
        note = "a group with one unit"
    return PermSample(restricted, sample.table, sample.y, list(sample.x), unit_fe, period,
                      units["unit"].to_numpy(), units["code"].to_numpy() if unit_fe else None, labels,
                      _strata(con, src, unit, strata, units["unit"]), note)


def _why_loop(fml: Formula, unit: str, sample) -> str:
    if fml.factors:
        return "i() terms"
    if unit not in fml.fe or len(fml.fe) > 2:
        return f"fixed effects other than {unit!r} and one period FE"
    if len(fml.fe) == 2 and not sample.balanced_grid:
        return "unbalanced panel"
    return ""


def _strata(con, src: str, unit: str, strata: str | None, units: pd.Series) -> np.ndarray | None:
    if strata is None:
        return None
    s, u = quote_ident(strata), quote_ident(unit)
    st = con.execute(f"SELECT {u} AS unit, any_value({s}) AS stratum, count(DISTINCT {s}) AS k "
                     f"FROM {src} GROUP BY 1").df()
    if (st["k"] > 1).any():
        raise ValueError(f"strata column {strata!r} varies within a unit")
    return units.map(st.set_index("unit")["stratum"]).astype(str).to_numpy()


def _batch_sql(ps: PermSample, asg: str, m: int) -> tuple[str, list[tuple[int, int]]]:
    """Columns: draw, jw/tw (W of J / of all), jq/tq (raw x'x of J / all), pj/po (sum_t S S' of J / O)."""
    J = range(m)
    pairs = [(a, b) for a in J for b in J if a <= b and b > 0]  # y'y is never needed
    cols = [ps.y, *ps.x]
    t = ps.period_fe or "0"
    wsum = ", ".join(f"sum(c{a} * c{b}) AS w{a}_{b}" for a, b in pairs)
    ctes = [
        (f"z AS (SELECT {ps.unit_fe} AS u, {t} AS t, {', '.join(f'{c} AS c{j}' for j, c in enumerate(cols))} "
         f"FROM {ps.table})"),
        (f"um AS (SELECT u, {', '.join(f'avg(c{j}) AS m{j}' for j in J)}, "
         f"{', '.join(f'sum(c{j} * c{j}) AS q{j}' for j in J if j)} FROM z GROUP BY u)"),
        f"d AS (SELECT z.u, z.t, {', '.join(f'z.c{j} - um.m{j} AS c{j}' for j in J)} FROM z JOIN um USING (u))",
        f"w AS (SELECT d.u, {wsum} FROM d GROUP BY d.u)",
        "wu AS (SELECT w.*, um.* EXCLUDE (u) FROM w JOIN um USING (u))",
        (f"tot AS (SELECT {', '.join(f'fsum(w{a}_{b}) AS tw{a}_{b}' for a, b in pairs)}, "
         f"{', '.join(f'fsum(q{j}) AS tq{j}' for j in J if j)} FROM wu)"),
        (f"wj AS (SELECT a.draw, {', '.join(f'fsum(wu.w{a}_{b}) AS jw{a}_{b}' for a, b in pairs)}, "
         f"{', '.join(f'fsum(wu.q{j}) AS jq{j}' for j in J if j)} FROM {asg} a JOIN wu ON wu.u = a.u "
         "GROUP BY a.draw)"),
    ]
    final = "SELECT * FROM wj CROSS JOIN tot"
    if ps.period_fe:
        s = ", ".join(f"sum(d.c{j}) AS s{j}" for j in J)
        ctes += [
            f"st AS (SELECT d.t, {s} FROM d GROUP BY d.t)",
            f"sj AS (SELECT a.draw, d.t, {s} FROM {asg} a JOIN d ON d.u = a.u GROUP BY a.draw, d.t)",
            f"q AS (SELECT sj.draw, {', '.join(f'fsum(sj.s{a} * sj.s{b}) AS pj{a}_{b}' for a, b in pairs)}, "
            + ", ".join(f"fsum((st.s{a} - sj.s{a}) * (st.s{b} - sj.s{b})) AS po{a}_{b}" for a, b in pairs)
            + " FROM sj JOIN st USING (t) GROUP BY sj.draw)",
        ]
        final = "SELECT * FROM wj JOIN q USING (draw) CROSS JOIN tot"
    return f"WITH {', '.join(ctes)} {final} ORDER BY draw", pairs


def batch_diffs(con, scope, ps: PermSample, L: np.ndarray, term: int, collin_tol: float) -> np.ndarray:
    """(draws, 2): the term's coefficient in g0 and g1 for each row of labels ``L`` (draws, units)."""
    n1 = int(L[0].sum())
    j_lab = 1 if 2 * n1 <= L.shape[1] else 0  # join the smaller group's units
    n_j, n_o = (n1, L.shape[1] - n1) if j_lab else (L.shape[1] - n1, n1)
    d_idx, u_idx = np.nonzero(L == j_lab)
    frame = pd.DataFrame({"draw": d_idx.astype(np.int32), "u": ps.codes[u_idx].astype(np.int32)})
    asg = scope.table("asg")
    con.execute(f"CREATE TEMP TABLE {asg} AS SELECT * FROM {scope.register(frame, 'asg_df')}")
    m = 1 + len(ps.x)
    sql, pairs = _batch_sql(ps, asg, m)
    out = con.execute(sql).fetchnumpy()
    if len(out["draw"]) != L.shape[0]:  # pragma: no cover - every draw has units in J
        raise RuntimeError("the batch lost draws")

    def gram(prefix: str) -> np.ndarray:
        g = np.zeros((L.shape[0], m, m))
        for a, b in pairs:
            g[:, a, b] = g[:, b, a] = np.asarray(out[f"{prefix}{a}_{b}"], dtype=float)
        return g

    def ref(prefix: str) -> np.ndarray:
        return np.column_stack([np.asarray(out[f"{prefix}{j}"], dtype=float) for j in range(1, m)])

    w_j, w_all = gram("jw"), gram("tw")
    m_j, m_o = w_j, w_all - w_j
    if ps.period_fe:
        m_j, m_o = m_j - gram("pj") / n_j, m_o - gram("po") / n_o
    coefs = np.empty((L.shape[0], 2))
    coefs[:, j_lab] = _solve(m_j, ref("jq"), term, collin_tol)
    coefs[:, 1 - j_lab] = _solve(m_o, ref("tq") - ref("jq"), term, collin_tol)
    return coefs


def _pivot_fails(xx: np.ndarray, ref: np.ndarray, tol: float) -> np.ndarray:
    """Stacked un-pivoted Cholesky: does any column fail feols's collinearity rule?"""
    D, k, _ = xx.shape
    R = np.zeros_like(xx)
    bad = np.zeros(D, dtype=bool)
    for j in range(k):
        rjj = xx[:, j, j] - np.sum(R[:, :j, j] ** 2, axis=1)
        bad |= ~(rjj > tol * ref[:, j]) | ~(ref[:, j] > 0)
        dj = np.sqrt(np.where(bad, 1.0, rjj))
        R[:, j, j + 1:] = (xx[:, j, j + 1:] - np.einsum("di,dim->dm", R[:, :j, j], R[:, :j, j + 1:])) / dj[:, None]
    return bad


def _solve(M: np.ndarray, ref: np.ndarray, term: int, tol: float) -> np.ndarray:
    """The term's coefficient from each draw's Gram [y, x] x [y, x]."""
    xx, xy = M[:, 1:, 1:], M[:, 1:, 0]
    out = np.full(M.shape[0], np.nan)
    bad = _pivot_fails(xx, ref, tol)
    good = ~bad
    if good.any():
        out[good] = np.linalg.solve(xx[good], xy[good][..., None])[:, term, 0]
    for d in np.flatnonzero(bad):  # rare: drop the collinear columns as feols does
        drop = find_collinear(xx[d], ref[d], tol)
        if term in drop:
            continue
        keep = [j for j in range(xx.shape[1]) if j not in drop]
        out[d] = np.linalg.solve(xx[d][np.ix_(keep, keep)], xy[d][keep])[keep.index(term)]
    return out
