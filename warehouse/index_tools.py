"""The warehouse's entropy-weight method on any table (`cityres index entropy`).

One implementation: the SQL is the dbt macros `normalise_indicators` and `entropy_weights`
(dbt_project/macros/entropy_weights.sql), rendered with Jinja outside dbt and run in DuckDB on
the user's table: min-max normalisation by direction, entropy e_j, divergence 1 - e_j, weights
w_j = d_j / Σ d_j (panel scope: one set; year scope: one set per period). The score of a row is
Σ_j w_j x'_j, NULL when an indicator is missing; a dimension's score sums its indicators.
``shift`` adds a constant to every normalised value before the entropy and the scores (some
papers add 1e-4 so that ln 0 never occurs); the warehouse itself uses no shift.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import jinja2
import pandas as pd

from warehouse.paths import DBT_PROJECT_DIR

MACROS = DBT_PROJECT_DIR / "macros" / "entropy_weights.sql"
WINSORIZE = DBT_PROJECT_DIR / "macros" / "winsorize.sql"
INDEX = "custom"


@dataclass(frozen=True)
class Indicator:
    name: str
    direction: str  # positive | negative
    dimension: str | None = None


def parse_indicators(text: str, dimensions: str | None = None) -> list[Indicator]:
    """``"a+,b+,c-"`` and optionally ``"econ:a,b;env:c"`` → indicators with direction and dimension."""
    groups = {}
    for part in (dimensions or "").split(";"):
        if part.strip():
            name, _, members = part.partition(":")
            for m in members.split(","):
                if m.strip():
                    groups[m.strip()] = name.strip()
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item[-1] not in "+-":
            raise ValueError(f"indicator {item!r} needs a direction: {item}+ (more is better) or {item}- (less is better)")
        name = item[:-1].strip()
        out.append(Indicator(name, "positive" if item[-1] == "+" else "negative", groups.get(name)))
    if len(out) < 2:
        raise ValueError("an index needs at least two indicators")
    unknown = sorted(set(groups) - {i.name for i in out})
    if unknown:
        raise ValueError(f"--dimensions names indicators not in --indicators: {', '.join(unknown)}")
    return out


def _macro(call: str) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(MACROS.read_text(encoding="utf-8") + "\n" + call).render().strip()


def _render(path, call: str, **context) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(path.read_text(encoding="utf-8") + "\n" + call).render(**context).strip()


def normalise_sql(inputs: str) -> str:
    """The macro ``normalise_indicators`` on ``inputs`` (a table shaped like
    intermediate.int_index_inputs): its rows under both scopes with ``normalised``."""
    return _render(MACROS, "{{ normalise_indicators(inputs) }}", inputs=inputs)


def entropy_weights_sql(normalised: str) -> str:
    """The macro ``entropy_weights`` on ``normalised`` (rows shaped like :func:`normalise_sql`'s):
    one row per scope, weight group and indicator with ``weight``."""
    return _render(MACROS, "{{ entropy_weights(normalised) }}", normalised=normalised)


def winsorize_sql(expr: str, p: float = 0.01, partition_by: str | None = None) -> str:
    """The dbt macro ``winsorize``: ``expr`` clipped at its p and 1 - p quantiles (quantile_cont),
    over the whole relation or within ``partition_by``. NULL stays NULL only if the caller guards
    it: DuckDB's greatest/least ignore NULL arguments."""
    return _render(WINSORIZE, "{{ winsorize(expr, p, partition_by) }}", expr=expr, p=p, partition_by=partition_by)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def entropy_index(con: duckdb.DuckDBPyConnection, source: str, id_col: str, time_col: str,
                  indicators: list[Indicator], scope: str = "panel",
                  shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(weights: indicator, direction, dimension, entropy, weight [, weight_year]; scores: id,
    time, score and one column per dimension) of ``source`` (a FROM-item)."""
    if scope not in ("panel", "year"):
        raise ValueError("scope must be 'panel' or 'year'")
    selects = [
        f"select '{INDEX}' as index_name, null::varchar as criterion, "
        f"{repr(i.dimension) if i.dimension else 'null::varchar'} as dimension, null::varchar as sub_dimension, "
        f"{_sql_text(i.name)} as indicator, '{i.direction}' as direction, "
        f"{_ident(id_col)} as city_code, {_ident(time_col)} as year, "
        f"cast({_ident(i.name)} as double) as value from {source}"
        for i in indicators
    ]
    con.execute("create or replace temp view __idx_inputs as " + " union all ".join(selects))
    con.execute("create or replace temp table __idx_normalised_raw as " + _macro("{{ normalise_indicators('__idx_inputs') }}"))
    con.execute(f"create or replace temp table __idx_normalised as select * replace (normalised + {float(shift)!r} "
                "as normalised) from __idx_normalised_raw")
    con.execute("create or replace temp table __idx_weights as " + _macro("{{ entropy_weights('__idx_normalised') }}"))
    weights = con.execute(
        "select indicator, direction, dimension, weight_year, n_obs, min_value, max_value, entropy, divergence, "
        "weight from __idx_weights where scope = ? order by weight_year nulls first, indicator", [scope]).df()
    if scope == "panel":
        weights = weights.drop(columns="weight_year")
    dims = sorted({i.dimension for i in indicators if i.dimension})
    dim_cols = "".join(
        f", case when count(contribution) filter (where dimension = {_sql_text(d)}) = "
        f"count(*) filter (where dimension = {_sql_text(d)}) "
        f"then sum(contribution) filter (where dimension = {_sql_text(d)}) end as {_ident(d)}" for d in dims)
    scores = con.execute(f"""
        with contributions as (
            select n.city_code, n.year, n.dimension, w.weight * n.normalised as contribution
            from __idx_normalised as n
            join __idx_weights as w on w.scope = n.scope and w.weight_year is not distinct from n.weight_year
                and w.indicator = n.indicator
            where n.scope = ?)
        select city_code as {_ident(id_col)}, year as {_ident(time_col)},
               case when count(contribution) = count(*) then sum(contribution) end as score{dim_cols}
        from contributions group by city_code, year order by 1, 2""", [scope]).df()
    for name in ("__idx_weights", "__idx_normalised", "__idx_normalised_raw"):
        con.execute(f"drop table if exists {name}")
    con.execute("drop view if exists __idx_inputs")
    return weights, scores


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


BENCHMARKS = ("mean_level", "weighted", "mean_growth")


def martin_sunley(con: duckdb.DuckDBPyConnection, source: str, unit: str, time: str, value: str,
                  weight: str | None = None, benchmark: str = "mean_growth") -> pd.DataFrame:
    """Martin-Sunley sensitivity R_it = (g_it - g_Nt) / |g_Nt| on any panel, in SQL.

    g_it = (v_it - v_i,prev) / v_i,prev over the unit's previous observation (any step). The
    benchmark g_Nt comes from the panel itself: ``mean_growth`` the mean of g_it over the units
    of period t; ``weighted`` its mean weighted by ``weight`` (e.g. population); ``mean_level``
    the growth of the cross-unit mean level from the previous period of the panel to t.
    Rows without a previous observation (or with v_prev = 0) have NULL growth and sensitivity.
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}")
    if benchmark == "weighted" and not weight:
        raise ValueError("the weighted benchmark needs --weight COL")
    u, t, v = _ident(unit), _ident(time), _ident(value)
    w = f"cast({_ident(weight)} as double)" if weight else "1.0"
    bench = {
        "mean_growth": "avg(growth)",
        "weighted": "sum(w * growth) / sum(w) filter (where growth is not null)",
        "mean_level": "null",
    }[benchmark]
    level = """,
        levels as (select t, avg(v) as mean_v from base group by t),
        level_growth as (select t, (mean_v - lag(mean_v) over (order by t)) / lag(mean_v) over (order by t)
                         as g from levels)""" if benchmark == "mean_level" else ""
    bench_expr = "lg.g" if benchmark == "mean_level" else "b.g"
    join = "left join level_growth as lg using (t)" if benchmark == "mean_level" else "left join bench as b using (t)"
    return con.execute(f"""
        with base as (select {u} as u, {t} as t, cast({v} as double) as v, {w} as w from {source}
                      where {u} is not null and {t} is not null),
        grown as (select *, (v - lag(v) over (partition by u order by t))
                            / nullif(lag(v) over (partition by u order by t), 0) as growth from base),
        bench as (select t, {bench} as g from grown group by t){level}
        select g.u as {u}, g.t as {t}, g.v as {v}, g.growth, {bench_expr} as benchmark_growth,
               (g.growth - {bench_expr}) / abs({bench_expr}) as sensitivity
        from grown as g {join}
        order by 1, 2""").df()
