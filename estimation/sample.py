"""Build the estimation sample in DuckDB.

Steps, all in SQL:

1. project the needed columns under internal names (``__y``, ``__x0``..,
   ``__f0``.., ``__cl``, ``__w``), casting variables to DOUBLE and
   integer-coding fixed effects and the cluster variable with ``dense_rank``;
2. listwise deletion of rows with NULL (or NaN) in y, any regressor, any fixed
   effect, the cluster or the weight column; +/-inf raises;
3. repeated removal of singleton fixed-effect groups (as fixest / pyfixest
   ``fixef_rm="singleton"``) until none is left;
4. sample statistics: N, levels per fixed effect, clusters, whether the two-way
   layout is a complete balanced grid, and which fixed effects are nested in
   the cluster variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from .sqlutil import TempScope, quote_ident


@dataclass
class Sample:
    table: str
    y: str
    x: list[str]
    fe: list[str]
    cluster: str | None
    weights: str | None
    nobs: int = 0
    n_source: int = 0
    n_missing: int = 0
    n_singletons: int = 0
    singleton_rounds: int = 0
    fe_levels: list[int] = field(default_factory=list)
    n_clusters: int | None = None
    balanced_grid: bool = False
    fe_nested_in_cluster: list[bool] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Internal names of the variables to be demeaned (y first)."""
        return [self.y, *self.x]

    @property
    def keys(self) -> list[str]:
        """Internal names of the pass-through columns (ids, weight)."""
        out = ["__rid", *self.fe]
        if self.cluster is not None and self.cluster not in self.fe:
            out.append(self.cluster)
        if self.weights is not None:
            out.append(self.weights)
        return out


def build_sample(
    con: duckdb.DuckDBPyConnection,
    scope: TempScope,
    source: str,
    y: str,
    x: list[str],
    fe: list[str],
    cluster: str | None,
    weights: str | None,
    drop_singletons: bool = True,
) -> Sample:
    """Materialise the listwise-complete, singleton-free estimation sample."""
    fe_internal = [f"__f{j}" for j in range(len(fe))]
    # the cluster re-uses the FE code if it is the same column
    if cluster is not None and cluster in fe:
        cl_internal: str | None = fe_internal[fe.index(cluster)]
    elif cluster is not None:
        cl_internal = "__cl"
    else:
        cl_internal = None

    s = Sample(
        table="",
        y="__y",
        x=[f"__x{j}" for j in range(len(x))],
        fe=fe_internal,
        cluster=cl_internal,
        weights="__w" if weights is not None else None,
    )

    # 1. projection (raw values, DOUBLE casts)
    proj = [f"CAST({quote_ident(y)} AS DOUBLE) AS __y"]
    proj += [f"CAST({quote_ident(v)} AS DOUBLE) AS {iv}" for v, iv in zip(x, s.x)]
    proj += [f"{quote_ident(v)} AS {iv}_raw" for v, iv in zip(fe, fe_internal)]
    if cl_internal == "__cl":
        proj.append(f"{quote_ident(cluster)} AS __cl_raw")
    if weights is not None:
        proj.append(f"CAST({quote_ident(weights)} AS DOUBLE) AS __w")
    num = [s.y, *s.x] + ([s.weights] if s.weights else [])
    ids = [f"{iv}_raw" for iv in fe_internal] + (["__cl_raw"] if cl_internal == "__cl" else [])
    complete = " AND ".join(
        [f"{c} IS NOT NULL AND NOT isnan({c})" for c in num] + [f"{c} IS NOT NULL" for c in ids]
    )

    n_source, n_complete, n_inf, n_badw = con.execute(
        f"""
        WITH p AS (SELECT {", ".join(proj)} FROM {source})
        SELECT count(*),
               count(*) FILTER (WHERE {complete}),
               count(*) FILTER (WHERE {complete} AND ({" OR ".join(f"isinf({c})" for c in num)})),
               {f"count(*) FILTER (WHERE {complete} AND __w <= 0)" if weights else "0"}
        FROM p
        """
    ).fetchone()
    if n_inf:
        raise ValueError(
            f"{n_inf} complete rows contain +/-inf in y, a regressor or the weights; "
            "recode them to NULL to drop them"
        )
    if n_badw:
        raise ValueError(f"{n_badw} rows have non-positive weights")
    if n_complete == 0:
        raise ValueError("no complete rows: every row has a NULL in a model variable")

    coded = [s.y, *s.x]
    coded += [f"dense_rank() OVER (ORDER BY {iv}_raw) AS {iv}" for iv in fe_internal]
    if cl_internal == "__cl":
        coded.append("dense_rank() OVER (ORDER BY __cl_raw) AS __cl")
    if weights is not None:
        coded.append("__w")
    table = scope.table("sample")
    con.execute(
        f"""
        CREATE TEMP TABLE {table} AS
        WITH p AS (SELECT {", ".join(proj)} FROM {source}),
             c AS (SELECT * FROM p WHERE {complete})
        SELECT row_number() OVER () AS __rid, {", ".join(coded)} FROM c
        """
    )
    s.table = table
    s.n_source = int(n_source)
    s.n_missing = int(n_source - n_complete)
    nobs = int(n_complete)

    # 3. singletons, removed repeatedly until none is left
    if drop_singletons and fe_internal:
        while True:
            flags = " OR ".join(
                f"{f} IN (SELECT {f} FROM {s.table} GROUP BY {f} HAVING count(*) = 1)"
                for f in fe_internal
            )
            (n_single,) = con.execute(
                f"SELECT count(*) FROM {s.table} WHERE {flags}"
            ).fetchone()
            if n_single == 0:
                break
            if n_single == nobs:
                raise ValueError("every observation is a fixed-effect singleton")
            new = scope.table("sample")
            con.execute(
                f"CREATE TEMP TABLE {new} AS SELECT * FROM {s.table} WHERE NOT ({flags})"
            )
            scope.drop(s.table)
            s.table = new
            s.n_singletons += int(n_single)
            s.singleton_rounds += 1
            nobs -= int(n_single)
    s.nobs = nobs

    # 4. statistics
    _sample_stats(con, s)
    return s


def _sample_stats(con: duckdb.DuckDBPyConnection, s: Sample) -> None:
    aggs = [f"count(DISTINCT {f})" for f in s.fe]
    if s.cluster is not None:
        aggs.append(f"count(DISTINCT {s.cluster})")
    if len(s.fe) == 2:
        aggs.append(f"count(DISTINCT ({s.fe[0]}, {s.fe[1]}))")
    row = con.execute(f"SELECT {', '.join(aggs) or '0'} FROM {s.table}").fetchone()
    s.fe_levels = [int(v) for v in row[: len(s.fe)]]
    pos = len(s.fe)
    if s.cluster is not None:
        s.n_clusters = int(row[pos])
        pos += 1
    if len(s.fe) == 2:
        n_cells = int(row[pos])
        s.balanced_grid = (
            n_cells == s.nobs and s.fe_levels[0] * s.fe_levels[1] == s.nobs
        )
    if s.cluster is not None:
        for f in s.fe:
            if f == s.cluster:
                s.fe_nested_in_cluster.append(True)
                continue
            (mx,) = con.execute(
                f"SELECT max(n) FROM (SELECT count(DISTINCT {s.cluster}) AS n "
                f"FROM {s.table} GROUP BY {f})"
            ).fetchone()
            s.fe_nested_in_cluster.append(int(mx) == 1)
    else:
        s.fe_nested_in_cluster = [False] * len(s.fe)
