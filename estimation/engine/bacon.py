"""Goodman-Bacon (2021) decomposition of the two-way FE DID coefficient, in DuckDB.

Model: y_it = b D_it + mu_i + g_t + e_it on a balanced panel of N units and T periods,
D_it = 1[t >= G_i] with G_i the unit's first treated period (``cohort``; 0 or NULL: never
treated).  Units sharing a treatment path form a timing group k with share of units n_k
and share of treated periods Dbar_k = #{t : t >= k} / T.  Groups:

* U, never treated: cohort 0/NULL, or a cohort after the last period (D is 0 throughout,
  so the TWFE regression cannot tell them from never-treated units);
* timing groups, 0 < Dbar_k < 1;
* always treated: a cohort at or before the first period (Dbar_k = 1).

Goodman-Bacon (2021, J. Econometrics 225(2), Theorem 1, eqs. 10a-10g): the TWFE
coefficient is a weighted average of every 2x2 DID between two groups,

    b_TWFE = sum_k s_kU b_kU + sum_{k earlier than l} (s^k_kl b^k_kl + s^l_kl b^l_kl),

with ybar_g(W) the mean of the cohort-by-period means of group g over the periods W,
PRE(k) = {t < k}, MID(k, l) = {k <= t < l}, POST(l) = {t >= l}:

    b_kU   = [ybar_k(POST(k)) - ybar_k(PRE(k))] - [ybar_U(POST(k)) - ybar_U(PRE(k))]
    b^k_kl = [ybar_k(MID) - ybar_k(PRE(k))] - [ybar_l(MID) - ybar_l(PRE(k))]   (window t < l)
    b^l_kl = [ybar_l(POST(l)) - ybar_l(MID)] - [ybar_k(POST(l)) - ybar_k(MID)] (window t >= k)

and weights = (the subsample's share of the panel)^2 x (the variance of D in it) / V^D:

    s_kU   = (n_k + n_U)^2            n_kU (1 - n_kU) Dbar_k (1 - Dbar_k)                          / V^D
    s^k_kl = ((n_k + n_l)(1 - Dbar_l))^2 n_kl (1 - n_kl) (Dbar_k - Dbar_l)(1 - Dbar_k) / (1 - Dbar_l)^2 / V^D
    s^l_kl = ((n_k + n_l) Dbar_k)^2      n_kl (1 - n_kl) Dbar_l (Dbar_k - Dbar_l) / Dbar_k^2          / V^D

(n_kU = n_k / (n_k + n_U), n_kl = n_k / (n_k + n_l)), which simplify to n_k n_U Dbar_k (1 -
Dbar_k), n_k n_l (Dbar_k - Dbar_l)(1 - Dbar_k) and n_k n_l Dbar_l (Dbar_k - Dbar_l) over
V^D.  V^D = (1/NT) sum_it (D_it - Dbar_i - Dbar_t + Dbar)^2 is the variance of the
two-way demeaned treatment; it is computed from the panel in SQL, not from the weights,
so sum s = 1 is a check of the identity rather than a normalisation.  Always-treated
units enter as an "earlier" group with Dbar = 1: their comparisons as the treated group
have weight 0 (no pre-period) and are left out; as the control of a later group
("later vs earlier treated") the window is the whole panel.  Weights are bilinear in the
group shares, so two cohorts with the same treatment path (e.g. two always-treated
cohorts) may stay separate: the comparison between them has weight 0 and is left out.

All O(N) work is SQL: the balance and cohort checks, the cohort x period means of y and
D, the group sizes and V^D; the comparisons are then O(groups^2 x T) numpy.  The TWFE
coefficient is estimated independently by :func:`.model.feols` (unit + period FE).
Checked in tests/test_bacon.py: sum s b = b_TWFE (pyfixest and feols) to 1e-10, each b
against a two-group TWFE regression on its subsample and window to 1e-10, sum s = 1 to
1e-12.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from .model import feols
from .sqlutil import quote_ident, resolve_relation, temp_scope

TREATED_VS_NEVER = "treated vs never"
EARLIER_VS_LATER = "earlier vs later treated"  # the later cohort, not yet treated, is the control
LATER_VS_EARLIER = "later vs earlier treated"  # the earlier cohort, already treated, is the control
TYPES = (TREATED_VS_NEVER, EARLIER_VS_LATER, LATER_VS_EARLIER)
NEVER = 0  # the control cohort of a "treated vs never" comparison


@dataclass(frozen=True)
class BaconComparison:
    """One 2x2 DID: ``treated`` against ``control`` (cohorts; 0 = never treated)."""

    type: str
    treated: float
    control: float
    estimate: float
    weight: float
    window: tuple[float, float]  # first and last period of the comparison's subsample

    def to_dict(self) -> dict:
        return {"type": self.type, "treated": _number(self.treated), "control": _number(self.control),
                "estimate": self.estimate, "weight": self.weight,
                "window": [_number(self.window[0]), _number(self.window[1])]}


@dataclass
class BaconResult:
    """The decomposition: the comparisons, their weighted sum and the TWFE coefficient."""

    twfe: float  # feols, unit + period FE, computed independently of the comparisons
    comparisons: list[BaconComparison]
    variance_d: float  # V^D: variance of the two-way demeaned treatment
    n_units: int
    n_periods: int
    cohorts: dict = field(default_factory=dict)  # cohort -> units (0 = never treated)
    always_treated: list = field(default_factory=list)  # cohorts at or before the first period

    @property
    def weighted_sum(self) -> float:
        return float(sum(c.weight * c.estimate for c in self.comparisons))

    @property
    def weight_total(self) -> float:
        return float(sum(c.weight for c in self.comparisons))

    def by_type(self) -> list[dict]:
        """Per comparison type: total weight and the weighted mean of its 2x2 estimates."""
        out = []
        for kind in TYPES:
            members = [c for c in self.comparisons if c.type == kind]
            if members:
                w = sum(c.weight for c in members)
                avg = sum(c.weight * c.estimate for c in members) / w if w > 0 else float("nan")
                out.append({"type": kind, "weight": float(w), "avg_estimate": float(avg), "n": len(members)})
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison: type, treated, control, estimate, weight, window_start, window_end."""
        rows = [(c.type, c.treated, c.control, c.estimate, c.weight, *c.window) for c in self.comparisons]
        return pd.DataFrame(rows, columns=["type", "treated", "control", "estimate", "weight", "window_start",
                                           "window_end"])

    def to_dict(self) -> dict:
        return {
            "method": "bacon", "twfe": self.twfe, "weighted_sum": self.weighted_sum,
            "weight_total": self.weight_total, "variance_d": self.variance_d,
            "n_units": self.n_units, "n_periods": self.n_periods,
            "cohorts": {str(_number(k)): v for k, v in self.cohorts.items()},
            "always_treated": [_number(g) for g in self.always_treated],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "by_type": self.by_type(),
        }


def _number(v):
    """Periods come back as DOUBLE: integral ones are reported as int."""
    v = float(v)
    return int(v) if v.is_integer() else v


def bacon_decomposition(
    con: duckdb.DuckDBPyConnection,
    relation,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
) -> BaconResult:
    """Decompose the TWFE DID coefficient of ``outcome`` on D_it = 1[time >= cohort].

    ``relation`` as in :func:`.model.feols`; ``cohort`` holds each unit's first treated
    period (0 or NULL: never treated; constant within a unit).  The panel must be balanced:
    every unit observed once in every period, with a finite outcome.  Returns every 2x2
    comparison with positive weight (see the module doc for the formulas) and the TWFE
    coefficient from :func:`.model.feols`.
    """
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        _check_columns(con, source, [outcome, unit, time, cohort])
        cells = _cells_table(con, scope, source, outcome, unit, time, cohort)
        _check_balanced(con, cells, outcome)
        _check_cohort_constant(con, cells, cohort)
        grid = _cohort_grid(con, cells)
        variance_d = _variance_d(con, cells)
        twfe = _twfe(con, cells)
    comparisons = list(_comparisons(grid, variance_d))
    return BaconResult(twfe=twfe, comparisons=comparisons, variance_d=variance_d, n_units=int(grid.units.sum()),
                       n_periods=len(grid.periods),
                       cohorts={float(g): int(n) for g, n in zip(grid.cohorts, grid.units)},
                       always_treated=[float(g) for g, c in zip(grid.cohorts, grid.treated_periods)
                                       if g != NEVER and c == len(grid.periods)])


# ------------------------------------------------------------------ SQL stages

def _check_columns(con, source: str, names: list[str]) -> None:
    available = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    for n in names:
        if n not in available:
            raise ValueError(f"column {n!r} is not in the data; available: {', '.join(available)}")


def _cells_table(con, scope, source: str, outcome: str, unit: str, time: str, cohort: str) -> str:
    """unit, period, outcome, normalised cohort (0 = never in sample) and D, as a temp table."""
    y, u, t, g = (quote_ident(c) for c in (outcome, unit, time, cohort))
    bad_time, bad_cohort, null_ids = con.execute(
        f"SELECT count(*) FILTER (WHERE {t} IS NOT NULL AND TRY_CAST({t} AS DOUBLE) IS NULL), "
        f"count(*) FILTER (WHERE {g} IS NOT NULL AND TRY_CAST({g} AS DOUBLE) IS NULL), "
        f"count(*) FILTER (WHERE {u} IS NULL OR {t} IS NULL) FROM {source}"
    ).fetchone()
    if bad_time:
        raise ValueError(f"time column {time!r} must be numeric (periods are compared with the cohort)")
    if bad_cohort:
        raise ValueError(f"cohort column {cohort!r} must be numeric: the first treated period, 0 = never")
    if null_ids:
        raise ValueError(f"{null_ids} rows have a NULL {unit!r} or {time!r}; the panel must be balanced")
    raw = scope.table("bacon_raw")
    # NULL, NaN and 0 all mean never treated; the cohort is compared as DOUBLE with the period
    con.execute(
        f"CREATE TEMP TABLE {raw} AS SELECT {u} AS u, CAST({t} AS DOUBLE) AS t, TRY_CAST({y} AS DOUBLE) AS y, "
        f"{y} IS NOT NULL AND TRY_CAST({y} AS DOUBLE) IS NULL AS y_bad, "
        f"CASE WHEN {g} IS NULL OR isnan(CAST({g} AS DOUBLE)) THEN 0.0 ELSE CAST({g} AS DOUBLE) END AS g0 "
        f"FROM {source}"
    )
    (t_max,) = con.execute(f"SELECT max(t) FROM {raw}").fetchone()
    if t_max is None:
        raise ValueError("the data has no rows")
    cells = scope.table("bacon_cells")
    # a cohort after the last period is never treated in the sample: it joins U
    con.execute(
        f"CREATE TEMP TABLE {cells} AS SELECT u, t, y, y_bad, g0, "
        "CASE WHEN g0 = 0 OR g0 > ? THEN 0.0 ELSE g0 END AS g, "
        "CASE WHEN g0 <> 0 AND g0 <= ? AND t >= g0 THEN 1.0 ELSE 0.0 END AS d FROM " + raw,
        [t_max, t_max],
    )
    scope.drop(raw)
    return cells


def _check_balanced(con, cells: str, outcome: str) -> None:
    """Every unit once in every period, with a finite outcome; else name the first offender."""
    dup = con.execute(f"SELECT u, t, count(*) FROM {cells} GROUP BY u, t HAVING count(*) > 1 "
                      "ORDER BY u, t LIMIT 1").fetchone()
    if dup:
        raise ValueError(f"unit {dup[0]!r} appears {dup[2]} times in period {_number(dup[1])}; the decomposition "
                         "needs a balanced panel with one row per unit and period")
    n_units, n_periods, n_rows = con.execute(f"SELECT count(DISTINCT u), count(DISTINCT t), count(*) "
                                             f"FROM {cells}").fetchone()
    if n_rows != n_units * n_periods:
        u, n = con.execute(f"SELECT u, count(*) FROM {cells} GROUP BY u HAVING count(*) < ? ORDER BY u LIMIT 1",
                           [n_periods]).fetchone()
        missing = con.execute(f"SELECT min(t) FROM (SELECT DISTINCT t FROM {cells}) WHERE t NOT IN "
                              f"(SELECT t FROM {cells} WHERE u = ?)", [u]).fetchone()[0]
        raise ValueError(f"unbalanced panel: unit {u!r} is observed in {n} of {n_periods} periods (missing "
                         f"{_number(missing)}); the decomposition needs a balanced panel")
    bad = con.execute(f"SELECT u, t FROM {cells} WHERE y_bad OR y IS NULL OR isnan(y) OR isinf(y) "
                      "ORDER BY u, t LIMIT 1").fetchone()
    if bad:
        raise ValueError(f"outcome {outcome!r} is missing or not a finite number for unit {bad[0]!r} in period "
                         f"{_number(bad[1])}; the decomposition needs a balanced panel")
    if n_periods < 2:
        raise ValueError("the decomposition needs at least two periods")


def _check_cohort_constant(con, cells: str, cohort: str) -> None:
    row = con.execute(f"SELECT u, min(g0), max(g0) FROM {cells} GROUP BY u HAVING count(DISTINCT g0) > 1 "
                      "ORDER BY u LIMIT 1").fetchone()
    if row:
        raise ValueError(f"cohort column {cohort!r} varies within unit {row[0]!r} ({_number(row[1])} and "
                         f"{_number(row[2])}); expected one first treated period per unit (0 or NULL = never)")


@dataclass
class _Grid:
    """Cohort x period means: what the 2x2 estimates and the weights are built from."""

    cohorts: np.ndarray  # sorted, 0 = never treated first when present
    periods: np.ndarray  # sorted
    units: np.ndarray  # units per cohort
    ybar: np.ndarray  # cohorts x periods: mean outcome
    d: np.ndarray  # cohorts x periods: the treatment (0/1, the same for every unit of a cohort)
    treated_periods: np.ndarray  # per cohort: #{t : t >= cohort}

    @property
    def shares(self) -> np.ndarray:
        return self.units / self.units.sum()

    @property
    def dbar(self) -> np.ndarray:
        return self.treated_periods / len(self.periods)


def _cohort_grid(con, cells: str) -> _Grid:
    rows = con.execute(
        f"SELECT g, t, fsum(y) / count(*) AS ybar, avg(d) AS d, count(*) AS n FROM {cells} "
        "GROUP BY g, t ORDER BY g, t"
    ).fetchall()
    cohorts = np.array(sorted({r[0] for r in rows}), dtype=float)
    periods = np.array(sorted({r[1] for r in rows}), dtype=float)
    gi = {g: i for i, g in enumerate(cohorts)}
    ti = {t: j for j, t in enumerate(periods)}
    ybar = np.full((cohorts.size, periods.size), np.nan)
    d = np.zeros_like(ybar)
    units = np.zeros(cohorts.size)
    for g, t, yb, dv, n in rows:
        ybar[gi[g], ti[t]] = yb
        d[gi[g], ti[t]] = dv
        units[gi[g]] = n  # balanced: the same count in every period
    treated = d.sum(axis=1).round().astype(int)
    if len(set(treated.tolist())) < 2:
        raise ValueError("every unit has the same treatment path: the TWFE DID coefficient is not identified")
    return _Grid(cohorts, periods, units, ybar, d, treated)


def _variance_d(con, cells: str) -> float:
    """V^D = (1/NT) sum (D_it - Dbar_i - Dbar_t + Dbar)^2 (balanced panel), in SQL."""
    (v,) = con.execute(
        f"""
        WITH um AS (SELECT u, avg(d) AS du FROM {cells} GROUP BY u),
             tm AS (SELECT t, avg(d) AS dt FROM {cells} GROUP BY t),
             al AS (SELECT avg(d) AS da FROM {cells})
        SELECT fsum((c.d - um.du - tm.dt + al.da) * (c.d - um.du - tm.dt + al.da)) / count(*)
        FROM {cells} c JOIN um USING (u) JOIN tm USING (t) CROSS JOIN al
        """
    ).fetchone()
    return float(v)


def _twfe(con, cells: str) -> float:
    """The TWFE coefficient on D with unit and period FE, by the engine's feols."""
    view = f"(SELECT u AS bacon_unit, t AS bacon_time, y AS bacon_y, d AS bacon_d FROM {cells})"
    res = feols(con, view, "bacon_y", "bacon_d", ["bacon_unit", "bacon_time"], vcov="iid")
    if "bacon_d" not in res.coef.index:  # pragma: no cover - excluded by the path check
        raise ValueError("the treatment is collinear with the fixed effects")
    return float(res.coef["bacon_d"])


# ------------------------------------------------------------------ the 2x2 comparisons

def _did(grid: _Grid, treated: int, control: int, before: np.ndarray, after: np.ndarray) -> float:
    """[ybar_treated(after) - ybar_treated(before)] - [ybar_control(after) - ybar_control(before)]."""
    y = grid.ybar
    return float((y[treated, after].mean() - y[treated, before].mean())
                 - (y[control, after].mean() - y[control, before].mean()))


def _window(grid: _Grid, mask: np.ndarray) -> tuple[float, float]:
    p = grid.periods[mask]
    return float(p[0]), float(p[-1])


def _comparisons(grid: _Grid, variance_d: float) -> Iterator[BaconComparison]:
    """Every 2x2 comparison with positive weight, eqs. 10a-10g of Goodman-Bacon (2021)."""
    n, dbar, T = grid.shares, grid.dbar, len(grid.periods)
    c = grid.treated_periods
    first_treated = [int(np.argmax(grid.d[k])) if c[k] else T for k in range(len(c))]  # index of PRE's end
    never = [k for k in range(len(c)) if c[k] == 0]
    timing = [k for k in range(len(c)) if c[k] > 0]
    idx = np.arange(T)
    for k in timing:
        if never and c[k] < T:  # an always-treated group has no pre-period against U: weight 0
            u = never[0]
            pre, post = idx < first_treated[k], idx >= first_treated[k]
            nk, nu = n[k], n[u]
            s = (nk + nu) ** 2 * (nk / (nk + nu)) * (nu / (nk + nu)) * dbar[k] * (1 - dbar[k])
            yield BaconComparison(TREATED_VS_NEVER, float(grid.cohorts[k]), NEVER, _did(grid, k, u, pre, post),
                                  float(s / variance_d), _window(grid, pre | post))
    for k in timing:  # k earlier, l later: more treated periods
        for l in timing:  # the paper's name of the later group
            if not c[k] > c[l]:
                continue
            nk, nl = n[k], n[l]
            n_kl = nk / (nk + nl)
            pre, mid, post = idx < first_treated[k], (idx >= first_treated[k]) & (idx < first_treated[l]), \
                idx >= first_treated[l]
            if c[k] < T:  # k has a pre-period: k treated, l (not yet treated) the control, window t < l
                var_d = n_kl * (1 - n_kl) * (dbar[k] - dbar[l]) * (1 - dbar[k]) / (1 - dbar[l]) ** 2
                s = ((nk + nl) * (1 - dbar[l])) ** 2 * var_d
                yield BaconComparison(EARLIER_VS_LATER, float(grid.cohorts[k]), float(grid.cohorts[l]),
                                      _did(grid, k, l, pre, mid), float(s / variance_d), _window(grid, pre | mid))
            # l treated, k (already treated) the control, window t >= k
            var_d = n_kl * (1 - n_kl) * dbar[l] * (dbar[k] - dbar[l]) / dbar[k] ** 2
            s = ((nk + nl) * dbar[k]) ** 2 * var_d
            yield BaconComparison(LATER_VS_EARLIER, float(grid.cohorts[l]), float(grid.cohorts[k]),
                                  _did(grid, l, k, mid, post), float(s / variance_d), _window(grid, mid | post))
