"""Fixed-effects demeaning in DuckDB SQL (all DOUBLE).

Method choice (``method="auto"``):

* no fixed effect   -> ``"center"``: subtract the (weighted) grand mean; the
  model then carries an explicit intercept column (see :mod:`.model`);
* one fixed effect  -> ``"oneway"``: subtract (weighted) group means, one
  window pass;
* two fixed effects, unweighted, and the sample is a complete grid (every
  (fe1, fe2) cell exactly once, i.e. a balanced panel after all deletions)
  -> ``"balanced"``: closed form ``x - x_i. - x_.t + x_..`` in one pass;
* two fixed effects otherwise, when the smaller one has at most
  ``max_dummies + 1`` levels (e.g. years) -> ``"within_dummies"``: exact, in one
  pass: demean by the larger FE and add the equally demeaned dummies of the
  smaller FE (all levels but the first) as extra columns.  By
  Frisch-Waugh-Lovell, regressing on them together with the regressors gives
  exactly the two-way FE estimates; :mod:`.model` partials them out in the
  k x k algebra and never reports them;
* otherwise (many levels in both) -> ``"alternating"``: the method of
  alternating projections, one materialised temp table per sweep (demean by
  fe1, then by fe2, ...), until every row's change in a sweep is at most
  ``tol * (1 + scale)`` (absolute plus relative; scale = max |x - mean| of the
  column), raising :class:`DemeanNotConverged` after ``maxiter`` sweeps;
* three or more fixed effects -> ``"cg"``: conjugate gradient on the FE normal
  equations after eliminating the largest FE exactly (:mod:`.fe_cg`), same
  stopping rule per iteration.  ``"alternating"`` (plain, unaccelerated) and
  ``"cg"`` can also be forced for two or more fixed effects.

The one-pass closed form is never used on an unbalanced layout, and no
Mundlak-style shortcut is taken: each method gives the two-way FE estimand.

Every column is first centred at its (weighted) grand mean (bound as a
parameter) - this does not change the demeaned result but keeps group sums
small and precise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

from .sqlutil import TempScope


class DemeanNotConverged(RuntimeError):
    """The iterative demeaning (alternating projections, conjugate gradient) did not reach the
    tolerance within maxiter iterations."""


@dataclass
class ColumnStats:
    """Per-column moments of the raw (un-demeaned) sample."""

    mean: list[float]  # (weighted) grand mean
    scale: list[float]  # max |x - mean|  (1.0 for constant columns)
    tss: list[float]  # sum w (x - mean)^2
    raw_ss: list[float]  # sum w x^2
    sum_w: float


@dataclass
class Demeaned:
    table: str
    columns: list[str]
    method: str
    iterations: int
    max_change: float = 0.0
    # within_dummies: names of the demeaned dummy columns of the smaller FE and
    # their raw sums of squares (= weighted level counts), for the collinearity check
    dummies: list[str] = field(default_factory=list)
    dummy_ref_ss: list[float] = field(default_factory=list)
    # lazy within_dummies (unweighted): the demeaned dummies are not stored;
    # ``table`` holds the FE code ``dummy_fe`` and the bit set ``pattern`` of
    # the levels of that FE observed in each row's group of the larger FE
    # (bit s-1 for level s), from which every dummy moment follows
    dummy_fe: str | None = None
    pattern: str | None = None
    dummy_levels: int = 0
    operator: str | None = None  # cg: "explicit" (sparse S in numpy) or "sql" (one pass an iteration)
    groups: str | None = None  # lazy within_dummies: one row per group of the larger FE, with ``pattern``


def column_stats(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    weights: str | None = None,
) -> ColumnStats:
    """Grand means, scales, centred and raw sums of squares, in two scans."""
    w = f"{weights} * " if weights else ""
    sw = f"sum({weights})" if weights else "count(*)"
    # means: compensated sums, as large means would cancel; the raw sums of squares (only a scale
    # for the collinearity check) add non-negative terms, so a plain sum is accurate (and cheaper)
    first = [f"fsum({w}{c}) / {sw}" for c in columns] + [f"sum({w}{c} * {c})" for c in columns]
    row = con.execute(f"SELECT {sw}, {', '.join(first)} FROM {table}").fetchone()
    sum_w = float(row[0])
    m = len(columns)
    mean = [float(v) for v in row[1 : 1 + m]]
    raw_ss = [float(v) for v in row[1 + m : 1 + 2 * m]]
    second = []
    for c in columns:
        second.append(f"sum({w}({c} - ?) * ({c} - ?))")
        second.append(f"max(abs({c} - ?))")
    params: list[float] = []
    for mu in mean:
        params += [mu, mu, mu]
    row = con.execute(f"SELECT {', '.join(second)} FROM {table}", params).fetchone()
    tss = [float(row[2 * j]) for j in range(m)]
    scale = [float(row[2 * j + 1]) or 1.0 for j in range(m)]
    return ColumnStats(mean=mean, scale=scale, tss=tss, raw_ss=raw_ss, sum_w=sum_w)


def _group_mean(col: str, fe: str, weights: str | None, sw: str | None) -> str:
    """SQL for the (weighted) mean of ``col`` within groups of ``fe``."""
    if weights is None:
        return f"avg({col}) OVER (PARTITION BY {fe})"
    total = sw if sw is not None else f"sum({weights}) OVER (PARTITION BY {fe})"
    return f"sum({weights} * {col}) OVER (PARTITION BY {fe}) / {total}"


MAX_DUMMIES = 100


def choose_method(
    n_fe: int,
    balanced_grid: bool,
    weighted: bool,
    fe_levels: Sequence[int] = (),
    max_dummies: int = MAX_DUMMIES,
) -> str:
    if n_fe == 0:
        return "center"
    if n_fe == 1:
        return "oneway"
    if n_fe == 2:
        if balanced_grid and not weighted:
            return "balanced"
        if fe_levels and min(fe_levels) - 1 <= max_dummies:
            return "within_dummies"
        return "alternating"
    return "cg"


def _create_from_centred(con, out: str, table: str, keep_sql: str, centred, columns, sel: str, params) -> None:
    """CREATE TEMP TABLE out AS the select `sel` over the grand-mean-centred columns.

    The centring happens in a CTE so that each bound parameter (a grand mean) binds once.
    """
    cen = ", ".join(f"{e} AS {c}" for e, c in zip(centred, columns))
    con.execute(
        f"""
        CREATE TEMP TABLE {out} AS
        WITH z AS (SELECT {keep_sql}{cen} FROM {table})
        SELECT {keep_sql}{sel} FROM z
        """,
        params,
    )


def demean(
    con: duckdb.DuckDBPyConnection,
    scope: TempScope,
    table: str,
    columns: Sequence[str],
    fe: Sequence[str],
    keep: Sequence[str],
    stats: ColumnStats,
    weights: str | None = None,
    method: str = "auto",
    balanced_grid: bool = False,
    tol: float = 1e-13,
    maxiter: int = 10_000,
    fe_levels: Sequence[int] = (),
    max_dummies: int = MAX_DUMMIES,
    dummy_fe: int | None = None,
    lazy_dummies: bool = False,
    pairs_unique: bool | None = None,
) -> Demeaned:
    """Demean ``columns`` of ``table`` by the fixed effects ``fe``.

    ``dummy_fe`` (0 or 1) forces which FE gets dummies under
    ``within_dummies`` (default: the one with fewer levels).  With
    ``lazy_dummies`` (honoured when unweighted and the smaller FE has at most
    63 levels) the demeaned dummies are not materialised: the result carries
    the level bit set per row instead (see :class:`Demeaned` and
    :func:`.moments.within_dummies_gram`).  ``pairs_unique``: whether every pair of the two FE
    codes is one row, when the caller knows it (the sample's cell count); else it is queried.

    ``keep`` are pass-through columns (ids, FE codes, cluster, weight); they
    must include ``fe`` and ``weights``.  Returns the name of a new temp table
    holding ``keep`` + the demeaned ``columns`` under their original names.
    """
    columns = list(columns)
    fe = list(fe)
    if method == "auto":
        method = choose_method(len(fe), balanced_grid, weights is not None, fe_levels, max_dummies)
    allowed = {0: ("center",), 1: ("oneway",), 2: ("balanced", "within_dummies", "alternating", "cg")}
    applicable = allowed.get(len(fe), ("alternating", "cg"))
    if method not in applicable:
        raise ValueError(
            f"demeaning method {method!r} does not apply to {len(fe)} fixed effect(s); "
            f"use one of {applicable}"
        )
    if method == "balanced" and (len(fe) != 2 or weights is not None or not balanced_grid):
        raise ValueError("the closed-form two-way demeaning needs an unweighted complete grid")
    # pass-through columns, each followed by a comma (none without FE or clusters)
    keep_sql = "".join(f"{c}, " for c in keep)
    centred = [f"({c} - ?)" for c in columns]
    params = list(stats.mean)

    if method == "center":
        out = scope.table("dm")
        sel = ", ".join(f"{e} AS {c}" for e, c in zip(centred, columns))
        con.execute(f"CREATE TEMP TABLE {out} AS SELECT {keep_sql}{sel} FROM {table}", params)
        return Demeaned(out, columns, method, 0)

    if method == "oneway":
        out = scope.table("dm")
        f = fe[0]
        sel = ", ".join(
            f"{c} - {_group_mean(c, f, weights, None)} AS {c}" for c in columns
        )
        _create_from_centred(con, out, table, keep_sql, centred, columns, sel, params)
        return Demeaned(out, columns, method, 1)

    if method == "balanced":
        out = scope.table("dm")
        f0, f1 = fe
        # work on the centred values in a CTE so that each parameter binds once
        sel = ", ".join(
            f"{c} - avg({c}) OVER (PARTITION BY {f0}) - avg({c}) OVER (PARTITION BY {f1}) "
            f"+ avg({c}) OVER () AS {c}"
            for c in columns
        )
        _create_from_centred(con, out, table, keep_sql, centred, columns, sel, params)
        return Demeaned(out, columns, method, 1)

    if method == "within_dummies":
        if len(fe_levels) != 2:
            raise ValueError("within_dummies needs the level counts of both fixed effects")
        return _within_dummies(con, scope, table, columns, fe, keep, stats, weights, fe_levels, dummy_fe,
                               lazy_dummies, pairs_unique)

    if method == "alternating":
        return _alternating(
            con, scope, table, columns, fe, keep, stats, weights, tol, maxiter
        )
    if method == "cg":
        return _conjugate_gradient(con, scope, table, columns, fe, keep, stats, weights, tol, maxiter)
    raise ValueError(f"unknown demeaning method {method!r}")


def _within_dummies(con: duckdb.DuckDBPyConnection, scope: TempScope, table: str, columns: list[str],
                    fe: list[str], keep: Sequence[str], stats: ColumnStats, weights: str | None,
                    fe_levels: Sequence[int], dummy_fe: int | None = None,
                    lazy: bool = False, pairs_unique: bool | None = None) -> Demeaned:
    """Demean by the FE with more levels; add its partner's demeaned dummies."""
    small = dummy_fe if dummy_fe is not None else (0 if fe_levels[0] <= fe_levels[1] else 1)
    f_small, f_big = fe[small], fe[1 - small]
    if lazy and weights is None and int(fe_levels[small]) <= 63 and (
            pairs_unique if pairs_unique is not None else _pairs_unique(con, table, f_big, f_small)):
        return _within_lazy(con, scope, table, columns, f_small, f_big, keep, stats, int(fe_levels[small]))
    # FE codes are internal integers 1..L (see sample.py), not data: safe as literals
    dummies = [f"__d{j}" for j in range(2, int(fe_levels[small]) + 1)]
    keep_sql = "".join(f"z.{c}, " for c in keep)
    cen = ", ".join(f"({c} - ?) AS {c}" for c in columns)
    dum = "".join(f", CAST({f_small} = {j} AS DOUBLE) AS {d}" for j, d in enumerate(dummies, start=2))
    allc = [*columns, *dummies]
    # group means by GROUP BY + hash join rather than window functions: no
    # full-width sort of the table, which halves the peak memory on big panels
    if weights:
        means = ", ".join(f"sum({weights} * {c}) / sum({weights}) AS __m_{j}" for j, c in enumerate(allc))
    else:
        means = ", ".join(f"avg({c}) AS __m_{j}" for j, c in enumerate(allc))
    sel = ", ".join(f"z.{c} - m.__m_{j} AS {c}" for j, c in enumerate(allc))
    out = scope.table("dm")
    con.execute(
        f"""
        CREATE TEMP TABLE {out} AS
        WITH z AS (SELECT {"".join(f"{c}, " for c in keep)}{cen}{dum} FROM {table}),
             m AS (SELECT {f_big}, {means} FROM z GROUP BY {f_big})
        SELECT {keep_sql}{sel} FROM z JOIN m ON z.{f_big} = m.{f_big}
        """,
        list(stats.mean),
    )
    w = f"sum({weights})" if weights else "count(*)"
    counts = dict(
        con.execute(f"SELECT {f_small}, {w} FROM {table} GROUP BY 1").fetchall()
    )
    ref_ss = [float(counts.get(j, 0.0)) for j in range(2, int(fe_levels[small]) + 1)]
    return Demeaned(out, columns, "within_dummies", 1, 0.0, dummies, ref_ss)


def _pairs_unique(con: duckdb.DuckDBPyConnection, table: str, f_big: str, f_small: str) -> bool:
    """Does each (f_big, f_small) pair occur in one row at most? The lazy path stores only which
    f_small levels a f_big group holds, so it is exact only then (e.g. unit x year, not unit x
    sector with a unit in one sector for several years)."""
    (repeated,) = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY {f_big}, {f_small} HAVING count(*) > 1 LIMIT 1)"
    ).fetchall()[0]
    return repeated == 0


def _within_lazy(con: duckdb.DuckDBPyConnection, scope: TempScope, table: str, columns: list[str],
                 f_small: str, f_big: str, keep: Sequence[str], stats: ColumnStats, levels: int) -> Demeaned:
    """Unweighted within_dummies without the dummy columns.

    Demean ``columns`` within ``f_big`` (GROUP BY + hash join) and store per
    row the bit set of the ``f_small`` levels present in its ``f_big`` group.
    The demeaned dummy of level s in a row of group i with level set S_i
    (n_i = |S_i|) is 1{f_small = s} - 1{s in S_i} / n_i, which holds only when every
    (f_big, f_small) pair is one row (:func:`_pairs_unique`; the caller checks).
    """
    # Only the group means are stored (one row per f_big group); the demeaned rows are a view
    # that subtracts them on each read, so the panel is never held twice.  The centring by the
    # column means (bound once into the means table) keeps the sums well scaled.
    keep_sql = "".join(f"z.{c}, " for c in keep)
    cen = ", ".join(f"avg({c} - ?) AS __m_{j}" for j, c in enumerate(columns))
    means = scope.table("means")
    con.execute(
        f"""
        CREATE TEMP TABLE {means} AS
        SELECT {f_big}, {cen}, bit_or(CAST(1 AS BIGINT) << ({f_small} - 1)) AS __pat
        FROM {table} GROUP BY {f_big}
        """,
        list(stats.mean),
    )
    out = scope.view("dm")
    mean_sql = [f"'{float(v)!r}'::DOUBLE" for v in stats.mean]  # a view takes no parameters; repr round-trips
    sel = ", ".join(f"(z.{c} - {mu}) - m.__m_{j} AS {c}" for j, (c, mu) in enumerate(zip(columns, mean_sql)))
    con.execute(
        f"CREATE TEMP VIEW {out} AS SELECT {keep_sql}{sel}, m.__pat "
        f"FROM {table} AS z JOIN {means} AS m ON z.{f_big} = m.{f_big}"
    )
    counts = dict(con.execute(f"SELECT {f_small}, count(*) FROM {table} GROUP BY 1").fetchall())
    ref_ss = [float(counts.get(j, 0.0)) for j in range(2, levels + 1)]
    dummies = [f"__d{j}" for j in range(2, levels + 1)]
    return Demeaned(out, columns, "within_dummies", 1, 0.0, dummies, ref_ss,
                    dummy_fe=f_small, pattern="__pat", dummy_levels=levels, groups=means)


def _alternating(
    con: duckdb.DuckDBPyConnection,
    scope: TempScope,
    table: str,
    columns: list[str],
    fe: list[str],
    keep: Sequence[str],
    stats: ColumnStats,
    weights: str | None,
    tol: float,
    maxiter: int,
) -> Demeaned:
    """Method of alternating projections over any number of fixed effects, one temp table per sweep.

    A sweep subtracts the (weighted) group means of fe1, then of fe2, ... in turn; it is
    plain MAP, without acceleration (:mod:`.fe_cg` is the fast method for 3+ fixed effects).
    """
    keep = list(keep)
    n_fe = len(fe)
    sw = [f"__sw{q}" for q in range(n_fe)] if weights else [None] * n_fe
    # start: centred columns (+ group weight totals when weighted)
    cur = scope.table("map")
    extra = ""
    if weights:
        extra = "".join(f", sum({weights}) OVER (PARTITION BY {f}) AS __sw{q}" for q, f in enumerate(fe))
        keep_iter = keep + [f"__sw{q}" for q in range(n_fe)]
    else:
        keep_iter = keep
    cen = ", ".join(f"({c} - ?) AS {c}" for c in columns)
    con.execute(
        f"CREATE TEMP TABLE {cur} AS SELECT {', '.join(keep)}{extra}, {cen} FROM {table}",
        list(stats.mean),
    )
    keep_sql = ", ".join(keep_iter)
    # change of a row in one sweep = m1 + ... + mQ (the subtracted means, summed in
    # __t_j), scaled by 1/(1 + scale) of its column (bound as parameters): the sweep has
    # converged when |change| <= tol * (1 + scale), an absolute-plus-relative test
    cols_sql = ", ".join(columns)
    ctes = []
    prev = "{cur}"
    for q, f in enumerate(fe):
        carried = "" if q == 0 else ", " + ", ".join(f"__t_{j}" for j in range(len(columns)))
        means = ", ".join(f"{_group_mean(c, f, weights, sw[q])} AS __m_{j}" for j, c in enumerate(columns))
        sub = ", ".join(f"{c} - __m_{j} AS {c}" for j, c in enumerate(columns))
        total = ", ".join(
            (f"__m_{j} AS __t_{j}" if q == 0 else f"__t_{j} + __m_{j} AS __t_{j}") for j in range(len(columns))
        )
        ctes.append(f"a{q} AS (SELECT {keep_sql}, {cols_sql}{carried}, {means} FROM {prev})")
        ctes.append(f"s{q} AS (SELECT {keep_sql}, {sub}, {total} FROM a{q})")
        prev = f"s{q}"
    delta = (
        "greatest("
        + ", ".join(f"abs(__t_{j}) * ?" for j in range(len(columns)))
        + ", 0.0) AS __delta"
    )
    sweep = f"""
            WITH {", ".join(ctes)}
            SELECT {keep_sql}, {cols_sql}, {delta} FROM {prev}
    """
    inv_scale = [1.0 / (1.0 + s) for s in stats.scale]
    change = float("inf")
    for it in range(1, maxiter + 1):
        nxt = scope.table("map")
        con.execute(
            f"""
            CREATE TEMP TABLE {nxt} AS {sweep.replace("{cur}", cur)}
            """,
            inv_scale,
        )
        scope.drop(cur)
        cur = nxt
        (change,) = con.execute(f"SELECT max(__delta) FROM {cur}").fetchone()
        change = float(change)
        if math.isnan(change):  # a non-finite value slipped in; sweeping on cannot help
            raise DemeanNotConverged("alternating projections produced NaN (a non-finite value in the data)")
        if change <= tol:
            return Demeaned(cur, columns, "alternating", it, change)
    raise DemeanNotConverged(
        f"alternating projections did not converge in {maxiter} sweeps "
        f"(last change {change:.3g} x (1 + scale) > tol {tol:.3g} x (1 + scale))"
    )


def _conjugate_gradient(con: duckdb.DuckDBPyConnection, scope: TempScope, table: str, columns: list[str],
                        fe: list[str], keep: Sequence[str], stats: ColumnStats, weights: str | None,
                        tol: float, maxiter: int) -> Demeaned:
    """Preconditioned conjugate gradient on the Schur complement of the largest FE (:mod:`.fe_cg`)."""
    # imported here: fe_cg imports this module (DemeanNotConverged)
    from .fe_cg import fe_index, schur_rhs, solve_schur, subtract_fitted

    index = fe_index(con, scope, table, fe, weights)
    rhs = schur_rhs(con, index, table, fe, columns, stats.mean, weights)
    sol = solve_schur(con, scope, index, rhs, stats.scale, tol, maxiter)
    out = subtract_fitted(con, scope, index, table, fe, keep, columns, stats.mean, weights, sol.coef)
    scope.drop(index.cells)
    return Demeaned(out, columns, "cg", sol.iterations, sol.max_change, operator=sol.operator)
