"""Sufficient statistics computed by DuckDB aggregates.

* :func:`cross_products` - the full (weighted) Gram matrix of a list of
  columns, ``sum(w * a * b)`` for every pair, in one query; with the response
  first this yields y'y, X'y and X'X at once.
* :func:`residual_moments` - one pass over the demeaned data with the
  estimated coefficients bound as ``?`` parameters: the residual sum of
  squares and the "meat" of the sandwich (heteroskedasticity-robust
  ``sum(w^2 u^2 x x')`` or cluster-robust ``sum_g s_g s_g'`` with the
  per-cluster score sums ``s_g = sum_{i in g} w_i x_i u_i`` formed by a
  ``GROUP BY``).

Columns are SQL expressions over the demeaned table (internal column names,
or the literal ``1.0`` for an intercept).  Python receives only k x k
matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i, k)]


def _fill_symmetric(values: Sequence[float], k: int) -> np.ndarray:
    out = np.empty((k, k), dtype=float)
    for (i, j), v in zip(_pairs(k), values):
        out[i, j] = out[j, i] = float(v)
    return out


def cross_products(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    weights: str | None = None,
) -> np.ndarray:
    """Return the k x k matrix ``[sum(w * c_i * c_j)]`` in one query."""
    k = len(columns)
    w = f"{weights} * " if weights else ""
    aggs = [f"sum({w}({columns[i]}) * ({columns[j]}))" for i, j in _pairs(k)]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {table}").fetchone()
    return _fill_symmetric(row, k)


@dataclass
class ResidualMoments:
    ssr: float  # sum w u^2
    meat: np.ndarray | None  # k x k, None for iid
    n_clusters: int | None = None


def residual_moments(
    con: duckdb.DuckDBPyConnection,
    table: str,
    y: str,
    x: Sequence[str],
    beta: Sequence[float],
    kind: str,
    weights: str | None = None,
    cluster: str | None = None,
) -> ResidualMoments:
    """Residual sum of squares and the sandwich meat, coefficients bound as ``?``.

    ``kind`` is ``"iid"`` (SSR only), ``"hetero"`` or ``"cluster"``.
    """
    k = len(x)
    if len(beta) != k or k == 0:
        raise ValueError("beta and x must be non-empty and of equal length")
    params = [float(b) for b in beta]
    z = [f"__z{j}" for j in range(k)]
    fit = " + ".join(f"? * {zj}" for zj in z)
    sel = ", ".join(f"({c}) AS {zj}" for c, zj in zip(x, z))
    wsel = f", {weights} AS __w_" if weights else ""
    csel = f", {cluster} AS __g_" if cluster else ""
    base = f"b AS (SELECT {sel}, {y} AS __y_{wsel}{csel} FROM {table})"
    resid = f"{base}, r AS (SELECT *, __y_ - ({fit}) AS __u FROM b)"
    w = "__w_ * " if weights else ""
    ssr = f"sum({w}__u * __u)"

    if kind == "iid":
        (val,) = con.execute(f"WITH {resid} SELECT {ssr} FROM r", params).fetchone()
        return ResidualMoments(float(val), None)

    if kind == "hetero":
        # scores w * x * u ; meat = sum of their outer products
        ww = "__w_ * __w_ * " if weights else ""
        aggs = [f"sum({ww}__u * __u * {z[i]} * {z[j]})" for i, j in _pairs(k)]
        row = con.execute(
            f"WITH {resid} SELECT {ssr}, {', '.join(aggs)} FROM r", params
        ).fetchone()
        return ResidualMoments(float(row[0]), _fill_symmetric(row[1:], k))

    if kind == "cluster":
        if cluster is None:
            raise ValueError("cluster column required")
        sums = ", ".join(f"sum({w}__u * {zj}) AS __s{j}" for j, zj in enumerate(z))
        aggs = [f"sum(__s{i} * __s{j})" for i, j in _pairs(k)]
        row = con.execute(
            f"""
            WITH {resid},
                 g AS (SELECT __g_, {sums} FROM r GROUP BY __g_),
                 q AS (SELECT count(*) AS __G, {", ".join(aggs)} FROM g),
                 e AS (SELECT {ssr} AS __ssr FROM r)
            SELECT e.__ssr, q.* FROM q, e
            """,
            params,
        ).fetchone()
        return ResidualMoments(float(row[0]), _fill_symmetric(row[2:], k), int(row[1]))

    raise ValueError(f"unknown residual moment kind {kind!r}")
