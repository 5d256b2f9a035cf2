"""Descriptive statistics and variance inflation factors, computed in DuckDB.

* :func:`describe` - N, mean, standard deviation (N - 1), min and max of each column, in one
  aggregate query (Stata's ``summarize``);
* :func:`vif` - VIF_j = 1 / (1 - R2_j), R2_j of regressor j on the others with an intercept
  (Stata's ``estat vif`` after ``regress``): the diagonal of the inverse correlation matrix,
  from one query for the covariance matrix over the rows complete in every column.
"""
from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from .sqlutil import quote_ident, resolve_relation, temp_scope


def describe(con: duckdb.DuckDBPyConnection, relation, columns: Sequence[str]) -> pd.DataFrame:
    """One row per column: variable, n, mean, sd, min, max (each over its own non-missing rows)."""
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        aggs = []
        for c in columns:
            q = f"cast({quote_ident(c)} as double)"
            aggs += [f"count({q})", f"avg({q})", f"stddev_samp({q})", f"min({q})", f"max({q})"]
        row = con.execute(f"select {', '.join(aggs)} from {source}").fetchone()
    records = [(c, int(row[5 * i]), *(float(v) if v is not None else float("nan") for v in row[5 * i + 1:5 * i + 5]))
               for i, c in enumerate(columns)]
    return pd.DataFrame.from_records(records, columns=["variable", "n", "mean", "sd", "min", "max"])


def vif(con: duckdb.DuckDBPyConnection, relation, columns: Sequence[str]) -> pd.Series:
    """Variance inflation factor of each column among ``columns`` (rows complete in all)."""
    if len(columns) < 2:
        raise ValueError("VIFs need at least two regressors")
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        q = [f"cast({quote_ident(c)} as double)" for c in columns]
        complete = " and ".join(f"{x} is not null and isfinite({x})" for x in q)
        k = len(q)
        pairs = [(i, j) for i in range(k) for j in range(i, k)]
        row = con.execute(f"select {', '.join(f'covar_samp({q[i]}, {q[j]})' for i, j in pairs)} "
                          f"from {source} where {complete}").fetchone()
    cov = np.empty((k, k))
    for (i, j), v in zip(pairs, row):
        cov[i, j] = cov[j, i] = float(v)
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    return pd.Series(np.diag(np.linalg.inv(corr)), index=list(columns), name="vif")
