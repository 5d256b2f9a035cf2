"""Shared pieces of the staggered difference-in-differences estimators.

* :func:`read_staggered_panel` reads a panel with a unit, a time and a cohort column (each
  unit's first treated period; 0 or NULL for never treated, R ``did``'s ``gname``), checks it
  and materialises it, in DuckDB, as two temp tables of the caller's :class:`TempScope`:

  - ``panel``: one row per unit-period, ``__uid`` (1..N in sorted order of the unit values),
    ``__tid`` (0..T-1 in sorted order of the periods), ``__y`` and the covariates
    ``__x0, __x1, ...`` (DOUBLE);
  - ``units``: one row per unit, ``__uid``, ``__g`` (the cohort as DOUBLE, ``+inf`` for
    never treated) and ``__cl`` (cluster code 1..G, the unit itself without a cluster column).

  The preparation follows R ``did`` (``pre_process_did``) and ``moderndid`` 0.2.0: cohorts
  after the last period count as never treated; units treated in the first period (cohort
  <= first period + anticipation) are dropped; without a never-treated group the latest cohort
  becomes the comparison group and the periods from (latest cohort - anticipation) on are
  dropped.  Every such change is reported in :attr:`StaggeredPanel.warnings`.

* :class:`Aggregate` - one aggregation of group-time effects (overall coefficient and per-element
  rows) with the JSON shape every DID estimator of the engine reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
import numpy as np

from .sqlutil import TempScope, quote_ident, resolve_relation

NEVER = math.inf


@dataclass
class StaggeredPanel:
    """A checked, balanced staggered-adoption panel in two temp tables (see the module doc)."""

    panel: str
    units: str
    covariates: list[str]  # internal names __x0.. in the order of the caller's columns
    n_units: int
    periods: list  # sorted period values (ints when integral)
    cohorts: list  # sorted treated cohorts left after the preparation
    unit_ids: list  # raw unit values, index = __uid - 1
    unit_cohort: np.ndarray  # (N,) cohort per unit, +inf for never treated
    unit_cluster: np.ndarray  # (N,) cluster code 0..G-1
    n_clusters: int
    warnings: list[str] = field(default_factory=list)


def _as_number(v):
    """Period values back as ints when integral (2004.0 -> 2004), else floats."""
    f = float(v)
    return int(f) if f.is_integer() else f


def _columns_of(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0").description]


def _check_columns(con, source: str, roles: dict[str, list[str]]) -> None:
    have = set(_columns_of(con, source))
    for role, cols in roles.items():
        for c in cols:
            if not isinstance(c, str) or not c:
                raise ValueError(f"{role} must be a column name, not {c!r}")
            if c not in have:
                raise ValueError(f"{role} column {c!r} is not in the relation (columns: {sorted(have)})")


def _check_numeric(con, source: str, cols: list[str]) -> None:
    """Every non-NULL value of these columns must convert to DOUBLE."""
    for c in cols:
        q = quote_ident(c)
        row = con.execute(
            f"SELECT count(*), any_value(CAST({q} AS VARCHAR)) FROM {source} "
            f"WHERE {q} IS NOT NULL AND TRY_CAST({q} AS DOUBLE) IS NULL"
        ).fetchone()
        if row[0]:
            raise ValueError(f"column {c!r} must be numeric; {row[0]} value(s) such as {row[1]!r} are not")


def _first_bad_unit(con, sql: str, params=()) -> str | None:
    row = con.execute(sql, list(params)).fetchone()
    return None if row is None else str(row[0])


def read_staggered_panel(
    con: duckdb.DuckDBPyConnection,
    scope: TempScope,
    relation,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: list[str] | None = None,
    cluster: str | None = None,
    anticipation: int = 0,
) -> StaggeredPanel:
    """Check the panel and materialise it (see the module doc); raises ValueError on bad input.

    Requirements, each checked with an error naming the column and a unit: the columns exist;
    time, cohort, outcome and covariates are numeric; unit, time, outcome and covariates have
    no NULL/NaN; (unit, time) is unique; the cohort (and the cluster column) is constant within
    a unit; every unit is observed in every period (a balanced panel).
    """
    covariates = list(covariates or [])
    if anticipation < 0 or int(anticipation) != anticipation:
        raise ValueError(f"anticipation must be a non-negative integer number of periods, not {anticipation!r}")
    source = resolve_relation(relation, scope)
    roles = {"outcome": [outcome], "unit": [unit], "time": [time], "cohort": [cohort], "covariate": covariates}
    if cluster is not None:
        roles["cluster"] = [cluster]
    _check_columns(con, source, roles)
    _check_numeric(con, source, [time, cohort, outcome, *covariates])
    u, t, g = quote_ident(unit), quote_ident(time), quote_ident(cohort)

    for role, c in [("unit", unit), ("time", time), ("outcome", outcome), *(("covariate", x) for x in covariates),
                    *([("cluster", cluster)] if cluster is not None else [])]:
        q = quote_ident(c)
        numeric = role not in ("unit", "cluster")
        bad = f"{q} IS NULL" + (f" OR isnan(CAST({q} AS DOUBLE))" if numeric else "")
        row = con.execute(f"SELECT count(*), any_value(CAST({u} AS VARCHAR)) FROM {source} WHERE {bad}").fetchone()
        if row[0]:
            raise ValueError(
                f"{role} column {c!r} has {row[0]} NULL/NaN value(s) (e.g. unit {row[1]}); the Callaway-Sant'Anna "
                "estimator needs a balanced panel without missing values: drop or impute them first")

    raw = scope.table("did_raw")
    xs = "".join(f", CAST({quote_ident(c)} AS DOUBLE) AS __x{j}" for j, c in enumerate(covariates))
    cl = f", {quote_ident(cluster)} AS __cl_raw" if cluster is not None else f", {u} AS __cl_raw"
    con.execute(
        f"CREATE TEMP TABLE {raw} AS SELECT {u} AS __unit, CAST({t} AS DOUBLE) AS __t, "
        f"CAST({quote_ident(outcome)} AS DOUBLE) AS __y, "
        f"CASE WHEN {g} IS NULL OR isnan(CAST({g} AS DOUBLE)) OR CAST({g} AS DOUBLE) = 0 "
        f"OR isinf(CAST({g} AS DOUBLE)) THEN 'inf'::DOUBLE ELSE CAST({g} AS DOUBLE) END AS __g{xs}{cl} "
        f"FROM {source}")

    bad = _first_bad_unit(con, f"SELECT __unit, __t FROM {raw} GROUP BY __unit, __t HAVING count(*) > 1 "
                               "ORDER BY __unit, __t LIMIT 1")
    if bad is not None:
        raise ValueError(f"unit {bad} has more than one row for a value of time column {time!r}; "
                         "(unit, time) must identify the rows")
    bad = _first_bad_unit(con, f"SELECT __unit FROM {raw} GROUP BY __unit HAVING count(DISTINCT __g) > 1 "
                               "ORDER BY __unit LIMIT 1")
    if bad is not None:
        raise ValueError(f"cohort column {cohort!r} varies within unit {bad}; it must hold the unit's first "
                         "treated period (0 or NULL if never treated) in every row")
    if cluster is not None:
        bad = _first_bad_unit(con, f"SELECT __unit FROM {raw} GROUP BY __unit HAVING count(DISTINCT __cl_raw) > 1 "
                                   "ORDER BY __unit LIMIT 1")
        if bad is not None:
            raise ValueError(f"cluster column {cluster!r} varies within unit {bad}; clusters must be time-invariant")

    periods = [float(r[0]) for r in con.execute(f"SELECT DISTINCT __t FROM {raw} ORDER BY __t").fetchall()]
    n_periods = len(periods)
    row = con.execute(
        f"SELECT __unit, count(*) FROM {raw} GROUP BY __unit HAVING count(*) <> ? ORDER BY __unit LIMIT 1",
        [n_periods]).fetchone()
    if row is not None:
        raise ValueError(f"the panel is unbalanced: unit {row[0]} is observed in {row[1]} of the {n_periods} periods "
                         f"of time column {time!r}; the estimator needs every unit in every period")
    if n_periods < 2:
        raise ValueError(f"time column {time!r} has {n_periods} distinct value(s); at least two periods are needed")

    warnings: list[str] = []
    first, last = periods[0], periods[-1]
    (n_late,) = con.execute(f"SELECT count(DISTINCT __unit) FROM {raw} WHERE __g > ? AND NOT isinf(__g)",
                            [last]).fetchone()
    if n_late:
        warnings.append(f"{n_late} unit(s) first treated after the last period ({_as_number(last)}) are treated "
                        "as never treated")
        con.execute(f"UPDATE {raw} SET __g = 'inf'::DOUBLE WHERE __g > ?", [last])
    (n_early,) = con.execute(f"SELECT count(DISTINCT __unit) FROM {raw} WHERE __g <= ?",
                             [first + anticipation]).fetchone()
    if n_early:
        warnings.append(f"dropped {n_early} unit(s) already treated in the first period (cohort <= "
                        f"{_as_number(first + anticipation)}), as R did does")
        con.execute(f"DELETE FROM {raw} WHERE __g <= ?", [first + anticipation])
    (n_never, n_left) = con.execute(
        f"SELECT count(DISTINCT __unit) FILTER (WHERE isinf(__g)), count(DISTINCT __unit) FROM {raw}").fetchone()
    if n_left == 0:
        raise ValueError("no unit is left after dropping the units treated in the first period")
    if n_never == 0:
        (latest,) = con.execute(f"SELECT max(__g) FROM {raw}").fetchone()
        cutoff = latest - anticipation
        warnings.append(f"no never-treated units: the latest cohort ({_as_number(latest)}) is the comparison group "
                        f"and the periods from {_as_number(cutoff)} on are dropped, as R did does")
        con.execute(f"DELETE FROM {raw} WHERE __t >= ?", [cutoff])
        con.execute(f"UPDATE {raw} SET __g = 'inf'::DOUBLE WHERE __g = ?", [latest])
        periods = [p for p in periods if p < cutoff]
        if len(periods) < 2:
            raise ValueError("without never-treated units fewer than two periods precede the latest cohort")
    cohorts = [float(r[0]) for r in
               con.execute(f"SELECT DISTINCT __g FROM {raw} WHERE NOT isinf(__g) ORDER BY __g").fetchall()]
    if not cohorts:
        raise ValueError(f"cohort column {cohort!r} has no treated cohort inside the panel's periods")

    units = scope.table("did_units")
    con.execute(
        f"CREATE TEMP TABLE {units} AS "
        f"WITH u AS (SELECT __unit, any_value(__g) AS __g, any_value(__cl_raw) AS __cl_raw FROM {raw} GROUP BY __unit),"
        f" c AS (SELECT __cl_raw, CAST(row_number() OVER (ORDER BY __cl_raw) AS INTEGER) AS __cl "
        f"       FROM (SELECT DISTINCT __cl_raw FROM u)) "
        f"SELECT CAST(row_number() OVER (ORDER BY __unit) AS INTEGER) AS __uid, __unit, __g, __cl "
        f"FROM u JOIN c USING (__cl_raw)")
    panel = scope.table("did_panel")
    xsel = "".join(f", r.__x{j}" for j in range(len(covariates)))
    con.execute(
        f"CREATE TEMP TABLE {panel} AS "
        f"WITH p AS (SELECT __t, CAST(row_number() OVER (ORDER BY __t) - 1 AS INTEGER) AS __tid "
        f"           FROM (SELECT DISTINCT __t FROM {raw})) "
        f"SELECT u.__uid, p.__tid, r.__y{xsel} FROM {raw} r JOIN {units} u USING (__unit) JOIN p USING (__t)")
    scope.drop(raw)
    rows = con.execute(f"SELECT __unit, __g, __cl FROM {units} ORDER BY __uid").fetchall()
    unit_cluster = np.array([r[2] - 1 for r in rows], dtype=np.int64)
    return StaggeredPanel(
        panel=panel, units=units, covariates=[f"__x{j}" for j in range(len(covariates))], n_units=len(rows),
        periods=[_as_number(p) for p in periods], cohorts=[_as_number(c) for c in cohorts],
        unit_ids=[r[0] for r in rows], unit_cohort=np.array([float(r[1]) for r in rows]),
        unit_cluster=unit_cluster, n_clusters=int(unit_cluster.max()) + 1, warnings=warnings)


# ----------------------------------------------------------------- the aggregates' JSON shape

_ROW_KEY = {"dynamic": "event_time", "group": "group", "calendar": "time"}


def _num(v):
    """JSON-safe float (None for NaN/inf)."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass
class Aggregate:
    """One aggregation of ATT(g,t): the overall coefficient and, except ``simple``, its elements.

    ``rows`` hold ``{key: value, "coef", "se"}`` (``key`` = ``event_time`` / ``group`` /
    ``time``) and, when bootstrapped, ``se_boot``, ``lo`` and ``hi`` of the uniform band
    ``coef -/+ crit_val * se_boot``.
    """

    kind: str
    coef: float
    se: float
    rows: list[dict] = field(default_factory=list)
    se_boot: float | None = None
    crit_val: float | None = None  # the uniform band's critical value over the rows
    alpha: float = 0.05
    influence: np.ndarray | None = field(default=None, repr=False)  # (N,) overall IF
    row_influence: np.ndarray | None = field(default=None, repr=False)  # (N, rows) IFs

    @property
    def key(self) -> str | None:
        return _ROW_KEY.get(self.kind)

    def to_dict(self) -> dict:
        out: dict = {"coef": _num(self.coef), "se": _num(self.se)}
        if self.se_boot is not None:
            out["se_boot"] = _num(self.se_boot)
        if self.kind in _ROW_KEY:
            out["rows"] = [{k: (_num(v) if k != self.key else v) for k, v in r.items()} for r in self.rows]
            if self.crit_val is not None:
                out["crit_val"] = _num(self.crit_val)
        return out
