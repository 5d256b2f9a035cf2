"""Fixed-effects demeaning in DuckDB SQL (all DOUBLE).

Method choice (``method="auto"``):

* no fixed effect   -> ``"center"``: subtract the (weighted) grand mean; the
  model then carries an explicit intercept column (see :mod:`.model`);
* one fixed effect  -> ``"oneway"``: subtract (weighted) group means, one
  window pass;
* two fixed effects, unweighted, and the sample is a complete grid (every
  (fe1, fe2) cell exactly once, i.e. a balanced panel after all deletions)
  -> ``"balanced"``: closed form ``x - x_i. - x_.t + x_..`` in one pass;
* otherwise (unbalanced, duplicated cells, or weights) -> ``"alternating"``:
  the method of alternating projections, one materialised temp table per
  sweep (demean by fe1, then by fe2), until the largest absolute change of
  every column in a sweep is below ``tol * scale`` (scale = max |x - mean|
  of that column), raising :class:`DemeanNotConverged` after ``maxiter``
  sweeps.  The one-pass formula is never used on an unbalanced layout.

Every column is first centred at its (weighted) grand mean (bound as a
parameter) - this does not change the demeaned result but keeps group sums
small and precise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from .sqlutil import TempScope


class DemeanNotConverged(RuntimeError):
    """Alternating projections did not reach the tolerance within maxiter."""


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


def column_stats(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    weights: str | None = None,
) -> ColumnStats:
    """Grand means, scales, centred and raw sums of squares, in two scans."""
    w = f"{weights} * " if weights else ""
    sw = f"sum({weights})" if weights else "count(*)"
    first = [f"sum({w}{c}) / {sw}" for c in columns] + [f"sum({w}{c} * {c})" for c in columns]
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


def choose_method(n_fe: int, balanced_grid: bool, weighted: bool) -> str:
    if n_fe == 0:
        return "center"
    if n_fe == 1:
        return "oneway"
    if n_fe == 2:
        return "balanced" if (balanced_grid and not weighted) else "alternating"
    raise NotImplementedError("at most two fixed effects are supported")


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
) -> Demeaned:
    """Demean ``columns`` of ``table`` by the fixed effects ``fe``.

    ``keep`` are pass-through columns (ids, FE codes, cluster, weight); they
    must include ``fe`` and ``weights``.  Returns the name of a new temp table
    holding ``keep`` + the demeaned ``columns`` under their original names.
    """
    columns = list(columns)
    fe = list(fe)
    if method == "auto":
        method = choose_method(len(fe), balanced_grid, weights is not None)
    allowed = {0: ("center",), 1: ("oneway",), 2: ("balanced", "alternating")}
    if method not in allowed.get(len(fe), ()):
        raise ValueError(
            f"demeaning method {method!r} does not apply to {len(fe)} fixed effect(s); "
            f"use one of {allowed.get(len(fe), ())}"
        )
    if method == "balanced" and (len(fe) != 2 or weights is not None or not balanced_grid):
        raise ValueError("the closed-form two-way demeaning needs an unweighted complete grid")
    keep_sql = ", ".join(keep)
    centred = [f"({c} - ?)" for c in columns]
    params = list(stats.mean)

    if method == "center":
        out = scope.table("dm")
        sel = ", ".join(f"{e} AS {c}" for e, c in zip(centred, columns))
        con.execute(f"CREATE TEMP TABLE {out} AS SELECT {keep_sql}, {sel} FROM {table}", params)
        return Demeaned(out, columns, method, 0)

    if method == "oneway":
        out = scope.table("dm")
        f = fe[0]
        cen = ", ".join(f"{e} AS {c}" for e, c in zip(centred, columns))
        sel = ", ".join(
            f"{c} - {_group_mean(c, f, weights, None)} AS {c}" for c in columns
        )
        con.execute(
            f"""
            CREATE TEMP TABLE {out} AS
            WITH z AS (SELECT {keep_sql}, {cen} FROM {table})
            SELECT {keep_sql}, {sel} FROM z
            """,
            params,
        )
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
        cen = ", ".join(f"{e} AS {c}" for e, c in zip(centred, columns))
        con.execute(
            f"""
            CREATE TEMP TABLE {out} AS
            WITH z AS (SELECT {keep_sql}, {cen} FROM {table})
            SELECT {keep_sql}, {sel} FROM z
            """,
            params,
        )
        return Demeaned(out, columns, method, 1)

    if method == "alternating":
        return _alternating(
            con, scope, table, columns, fe, keep, stats, weights, tol, maxiter
        )
    raise ValueError(f"unknown demeaning method {method!r}")


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
    """Method of alternating projections, one temp table per sweep."""
    f0, f1 = fe
    keep = list(keep)
    sw = ["__sw0", "__sw1"] if weights else [None, None]
    # start: centred columns (+ group weight totals when weighted)
    cur = scope.table("map")
    extra = ""
    if weights:
        extra = (
            f", sum({weights}) OVER (PARTITION BY {f0}) AS __sw0"
            f", sum({weights}) OVER (PARTITION BY {f1}) AS __sw1"
        )
        keep_iter = keep + ["__sw0", "__sw1"]
    else:
        keep_iter = keep
    cen = ", ".join(f"({c} - ?) AS {c}" for c in columns)
    con.execute(
        f"CREATE TEMP TABLE {cur} AS SELECT {', '.join(keep)}{extra}, {cen} FROM {table}",
        list(stats.mean),
    )
    keep_sql = ", ".join(keep_iter)
    # change of a row in one sweep = m0 + m1 (the two subtracted means),
    # measured relative to the column's scale (bound as parameters)
    cols_sql = ", ".join(columns)
    ms = ", ".join(f"__m_{j}" for j in range(len(columns)))
    m0 = ", ".join(
        f"{_group_mean(c, f0, weights, sw[0])} AS __m_{j}" for j, c in enumerate(columns)
    )
    sub0 = ", ".join(f"{c} - __m_{j} AS {c}" for j, c in enumerate(columns))
    m1 = ", ".join(
        f"{_group_mean(c, f1, weights, sw[1])} AS __n_{j}" for j, c in enumerate(columns)
    )
    sub1 = ", ".join(f"{c} - __n_{j} AS {c}" for j, c in enumerate(columns))
    delta = (
        "greatest("
        + ", ".join(f"abs(__m_{j} + __n_{j}) * ?" for j in range(len(columns)))
        + ", 0.0) AS __delta"
    )
    sweep = f"""
            WITH a0 AS (SELECT {keep_sql}, {cols_sql}, {m0} FROM {{cur}}),
                 a AS (SELECT {keep_sql}, {sub0}, {ms} FROM a0),
                 b0 AS (SELECT {keep_sql}, {cols_sql}, {ms}, {m1} FROM a)
            SELECT {keep_sql}, {sub1}, {delta} FROM b0
    """
    inv_scale = [1.0 / s for s in stats.scale]
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
        if change < tol:
            return Demeaned(cur, columns, "alternating", it, change)
    raise DemeanNotConverged(
        f"alternating projections did not converge in {maxiter} sweeps "
        f"(last relative change {change:.3g} > tol {tol:.3g})"
    )
