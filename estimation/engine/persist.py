"""Persist estimates into the warehouse.

* ``main.estimates``: one row per term of every model (run id, model id, spec,
  term, coef, se, t, p, CI, N, R2, within R2, clusters, vcov, vintage,
  synthetic flag, time);
* ``main.placebo_draws``: one row per placebo draw (run_id, model_id, draw,
  coef, se, t, p, vintage);
* ``main.model_tests``: joint tests attached to a model - the event study's
  pre-trend Wald/F test and the placebo's randomisation p-value (run_id,
  model_id, test, statistic, df1, df2, p_value, vintage, created_at).

Values are bound as parameters or inserted from a registered DataFrame,
never formatted into SQL.
"""

from __future__ import annotations

import uuid

import duckdb
import pandas as pd

from .result import FeolsResult
from .sqlutil import insert_rows

ESTIMATES_DDL = """
create table if not exists main.estimates (
    run_id varchar not null, model_id varchar not null, spec varchar not null,
    term varchar not null, coef double, se double, t double, p double,
    ci_low double, ci_high double, nobs bigint, r2 double, r2_within double,
    n_clusters bigint, vcov varchar, vintage varchar, synthetic boolean,
    created_at timestamp not null
)
"""

PLACEBO_DRAWS_DDL = """
create table if not exists main.placebo_draws (
    run_id varchar not null, model_id varchar not null, draw integer not null,
    coef double, se double, t double, p double, vintage varchar
)
"""

DESCRIPTIVES_DDL = """
create table if not exists main.descriptives (
    run_id varchar not null, table_id varchar not null, variable varchar not null,
    n bigint, mean double, sd double, min double, max double, vif double, vintage varchar,
    created_at timestamp not null
)
"""

MODEL_TESTS_DDL = """
create table if not exists main.model_tests (
    run_id varchar not null, model_id varchar not null, test varchar not null,
    statistic double, df1 double, df2 double, p_value double, vintage varchar,
    created_at timestamp not null
)
"""


def _nan_to_none(v):
    return None if v is None or v != v else float(v)


def persist_results(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    vintage: str,
    synthetic: bool,
    models: list[tuple[str, str, FeolsResult]],
) -> int:
    """Append every term of each ``(model_id, spec, result)`` to main.estimates."""
    con.execute(ESTIMATES_DDL)
    rows = []
    for model_id, spec, result in models:
        for rec in result.tidy().itertuples(index=False):
            rows.append((
                run_id, model_id, spec, rec.term, float(rec.coef), float(rec.se), float(rec.t),
                float(rec.p), float(rec.ci_low), float(rec.ci_high), int(result.nobs),
                float(result.r2), _nan_to_none(result.r2_within), result.n_clusters,
                result.vcov if result.cluster is None else f"{result.vcov}:{result.cluster}",
                vintage, synthetic,
            ))
    return insert_rows(con, "main.estimates", rows, trailing="now()")


def persist_tests(
    con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, model_id: str,
    tests: list[tuple[str, float, float | None, float | None, float]],
) -> int:
    """Append ``(test, statistic, df1, df2, p_value)`` rows to main.model_tests."""
    con.execute(MODEL_TESTS_DDL)
    rows = [(run_id, model_id, name, _nan_to_none(stat), _nan_to_none(df1), _nan_to_none(df2),
             _nan_to_none(p), vintage) for name, stat, df1, df2, p in tests]
    return insert_rows(con, "main.model_tests", rows, trailing="now()")


def persist_draws(
    con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, model_id: str, draws: pd.DataFrame
) -> int:
    """Append the per-draw frame (draw, coef, se, t, p) to main.placebo_draws."""
    con.execute(PLACEBO_DRAWS_DDL)
    frame = pd.DataFrame({
        "run_id": run_id, "model_id": model_id, "draw": draws["draw"].astype("int32"),
        "coef": draws["coef"].astype(float), "se": draws["se"].astype(float),
        "t": draws["t"].astype(float), "p": draws["p"].astype(float), "vintage": vintage,
    })
    name = f"__cr_draws_{uuid.uuid4().hex[:12]}"
    con.register(name, frame)
    try:
        con.execute(
            f"insert into main.placebo_draws SELECT run_id, model_id, draw, coef, se, t, p, vintage FROM {name}"
        )
    finally:
        con.unregister(name)
    return len(frame)


def persist_descriptives(
    con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, table_id: str, frame: pd.DataFrame,
    vifs: pd.Series | None = None,
) -> int:
    """Append one row per variable (n, mean, sd, min, max, and its VIF when given) to main.descriptives."""
    con.execute(DESCRIPTIVES_DDL)
    vifs = vifs if vifs is not None else pd.Series(dtype=float)
    rows = [(run_id, table_id, r.variable, int(r.n), _nan_to_none(r.mean), _nan_to_none(r.sd),
             _nan_to_none(r.min), _nan_to_none(r.max), _nan_to_none(float(vifs[r.variable]))
             if r.variable in vifs.index else None, vintage) for r in frame.itertuples(index=False)]
    return insert_rows(con, "main.descriptives", rows, trailing="now()")
