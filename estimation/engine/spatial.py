"""Spatial difference-in-differences: weights from coordinates, W·DID, distance bands, and the
spatial Durbin / spatial lag panel model with unit and time fixed effects by maximum likelihood.

Four public steps, all on a DuckDB connection and a relation (table, query or DataFrame):

* :func:`spatial_weights` - a weights matrix W from unit coordinates, as a long table
  ``(unit_i, unit_j, w_ij, distance_km)``; distances are great-circle (haversine) on a sphere of
  radius :data:`EARTH_RADIUS_KM`, computed in SQL by a self-join;
* :func:`spatial_lag` / :func:`spatial_lag_did` - the spatial lag ``W_x_it = sum_j w_ij x_jt``
  by joining the weights table to the panel in SQL, and the DID with ``did`` and ``W_did``
  (:func:`.model.feols`, unit and time FE): the direct and the spillover effect;
* :func:`spillover_by_distance_band` - the exposure design: the DID with indicators "untreated
  in t, and the nearest unit treated in t lies in distance band b";
* :func:`spatial_panel_ml` / :func:`spatial_durbin_did` - y = rho W y + X b + W X theta + mu_i +
  lambda_t + e by maximum likelihood (Elhorst 2003, 2014), with LeSage-Pace effects.

The O(NT) work - lags, the two-way within transform, the Gram matrix of the demeaned columns,
the cross-products of the information matrix - runs in DuckDB; numpy does the N x N algebra
(eigenvalues of W, (I - rho W)^-1) and the k x k algebra.
"""

from __future__ import annotations

import itertools
import math
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from .collinear import find_collinear
from .demean import column_stats, demean
from .model import feols
from .moments import cross_products
from .result import FeolsResult
from .sqlutil import TempScope, quote_ident, resolve_relation, temp_scope

#: Mean Earth radius R1 = (2a + b) / 3 of the WGS84 ellipsoid (IUGG), in km.
EARTH_RADIUS_KM = 6371.0088

#: Seed and number of draws of the simulated standard errors of the LeSage-Pace effects.
EFFECTS_SEED = 20240601
EFFECTS_DRAWS = 1000

_KINDS = ("inverse_distance", "knn")
_ISOLATED = ("error", "keep")


def _lag_name(column: str) -> str:
    """The name of the spatial lag of ``column`` in results and generated tables."""
    return f"W_{column}"


# ===================================================================== weights from coordinates


@dataclass
class SpatialWeights:
    """A spatial weights matrix W as a long table, with how it was built.

    ``table`` has one row per link ``(unit_i, unit_j, w_ij, distance_km)``, sorted by
    ``unit_i, unit_j``; W has a zero diagonal.  A unit without a neighbour, kept with
    ``isolated="keep"``, appears once as a zero-weight link to itself (``w_ij = 0``,
    ``distance_km = 0``), so that the table lists every unit; such a row of W is zero.
    """

    table: pd.DataFrame
    params: dict
    units: tuple

    def dense(self) -> np.ndarray:
        """W as an N x N array, rows and columns in the order of :attr:`units` (sorted)."""
        pos = {u: i for i, u in enumerate(self.units)}
        w = np.zeros((len(self.units), len(self.units)))
        rows = self.table["unit_i"].map(pos).to_numpy()
        cols = self.table["unit_j"].map(pos).to_numpy()
        w[rows, cols] = self.table["w_ij"].to_numpy(dtype=float)
        return w

    def to_duckdb(self, con: duckdb.DuckDBPyConnection, name: str, replace: bool = False) -> str:
        """Store the long table as table ``name`` on ``con``; returns the quoted name."""
        target = quote_ident(name)
        view = f"__cr_weights_{id(self):x}"
        con.register(view, self.table)
        try:
            verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
            con.execute(f"{verb} {target} AS SELECT * FROM {view} ORDER BY unit_i, unit_j")
        finally:
            con.unregister(view)
        return target

    def to_dict(self) -> dict:
        return dict(self.params)


def _haversine_sql(a: str, b: str) -> str:
    """Great-circle distance in km between rows ``a`` and ``b`` (columns lat, lon in degrees).

    d = 2 R asin( sqrt( sin^2((phi_b - phi_a)/2) + cos phi_a cos phi_b sin^2((l_b - l_a)/2) ) ),
    R bound as the expression's one parameter; the argument of asin is capped at 1 (rounding).
    """
    return (
        f"2.0 * ? * asin(least(1.0, sqrt("
        f"pow(sin(radians({b}.lat - {a}.lat) / 2.0), 2) + cos(radians({a}.lat)) * cos(radians({b}.lat)) "
        f"* pow(sin(radians({b}.lon - {a}.lon) / 2.0), 2))))"
    )


def _check_weight_options(kind, cutoff_km, k, power, isolated) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    if isolated not in _ISOLATED:
        raise ValueError(f"isolated must be one of {_ISOLATED}, not {isolated!r}")
    if kind == "knn":
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"kind='knn' needs k, a positive integer number of neighbours, not {k!r}")
        if cutoff_km is not None:
            raise ValueError("kind='knn' takes no cutoff_km; use kind='inverse_distance' for a distance band")
        return
    if k is not None:
        raise ValueError("k is the number of neighbours of kind='knn'; kind='inverse_distance' takes none")
    if cutoff_km is not None and not (np.isfinite(cutoff_km) and cutoff_km > 0):
        raise ValueError(f"cutoff_km must be a positive number of km, not {cutoff_km!r}")
    if not (np.isfinite(power) and power >= 0):
        raise ValueError(f"power must be a number >= 0 (w = d^-power), not {power!r}")


def _coordinates_table(con, scope: TempScope, source: str, unit: str, lat: str, lon: str) -> tuple[str, int]:
    """Materialise (u, lat, lon) and check it: one row per unit, no NULL, degrees in range."""
    table = scope.table("coords")
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT {quote_ident(unit)} AS u, CAST({quote_ident(lat)} AS DOUBLE) AS lat, "
        f"CAST({quote_ident(lon)} AS DOUBLE) AS lon FROM {source}"
    )
    n, n_units, null_u, null_ll, bad_lat, bad_lon = con.execute(
        f"""SELECT count(*), count(DISTINCT u), count(*) FILTER (WHERE u IS NULL),
                   count(*) FILTER (WHERE lat IS NULL OR lon IS NULL OR isnan(lat) OR isnan(lon)),
                   count(*) FILTER (WHERE abs(lat) > 90), count(*) FILTER (WHERE abs(lon) > 180)
            FROM {table}"""
    ).fetchone()
    if null_u:
        raise ValueError(f"column {unit!r} has {null_u} NULL values; every coordinate row needs a unit id")
    if n_units != n:
        raise ValueError(f"column {unit!r} repeats units ({n} rows, {n_units} units); one row per unit expected")
    if null_ll:
        raise ValueError(f"{null_ll} units have a NULL or NaN in {lat!r} or {lon!r}; coordinates are required")
    if bad_lat or bad_lon:
        raise ValueError(f"{lat!r} must lie in [-90, 90] and {lon!r} in [-180, 180] degrees "
                         f"({bad_lat} and {bad_lon} rows are outside)")
    if n < 2:
        raise ValueError("spatial weights need at least two units")
    return table, int(n)


def spatial_weights(
    con: duckdb.DuckDBPyConnection | None,
    relation,
    *,
    unit: str = "unit",
    lat: str = "lat",
    lon: str = "lon",
    kind: str = "inverse_distance",
    cutoff_km: float | None = None,
    k: int | None = None,
    power: float = 1.0,
    row_standardise: bool = True,
    isolated: str = "error",
) -> SpatialWeights:
    """Spatial weights from unit coordinates (degrees), computed in DuckDB.

    Distances: haversine great-circle distance on a sphere of radius ``EARTH_RADIUS_KM`` =
    6371.0088 km (the IUGG mean radius), for every ordered pair i != j (a self-join, N^2 rows).

    * ``kind="inverse_distance"``: w*_ij = d_ij^-power for 0 < d_ij <= ``cutoff_km`` (every
      pair without a cut-off); ``power=0`` gives a binary distance band.  Two units at the same
      coordinates (d = 0) are an error.
    * ``kind="knn"``: w*_ij = 1 for the ``k`` nearest units j != i (ties at equal distance broken
      by the order of unit ids), so W is not symmetric in general.
    * ``row_standardise`` (default): w_ij = w*_ij / sum_j w*_ij, so every row sums to one.

    A unit with no neighbour within the cut-off is an error by default (``isolated="error"``,
    the safe choice: a zero row silently gives that unit no spillover); ``isolated="keep"``
    keeps it with a zero row of W (recorded as a zero self-link and listed in
    ``params["isolated_units"]``).  ``con`` may be None for a DataFrame ``relation`` (a private
    in-memory connection is used).
    """
    _check_weight_options(kind, cutoff_km, k, power, isolated)
    own = con is None
    con = duckdb.connect() if own else con
    try:
        with temp_scope(con) as scope:
            coords, n = _coordinates_table(con, scope, resolve_relation(relation, scope), unit, lat, lon)
            if kind == "knn" and k >= n:
                raise ValueError(f"k = {k} neighbours needs at least k + 1 units; there are {n}")
            pairs = scope.table("pairs")
            con.execute(
                f"CREATE TEMP TABLE {pairs} AS SELECT a.u AS unit_i, b.u AS unit_j, "
                f"{_haversine_sql('a', 'b')} AS distance_km FROM {coords} a JOIN {coords} b ON a.u <> b.u",
                [EARTH_RADIUS_KM],
            )
            links = _links_sql(pairs, kind, cutoff_km, k, power, row_standardise)
            table = con.execute(links.sql, links.params).df()
            units = [u for (u,) in con.execute(f"SELECT u FROM {coords} ORDER BY u").fetchall()]
            nn_max = con.execute(f"SELECT max(m) FROM (SELECT min(distance_km) AS m FROM {pairs} GROUP BY unit_i)"
                                 ).fetchone()[0]
    finally:
        if own:
            con.close()
    if kind == "inverse_distance" and power > 0:
        _check_distinct_points(table)
    table, isolated_units = _handle_isolated(table, units, isolated, cutoff_km)
    counts = table.loc[table["w_ij"] != 0].groupby("unit_i").size().reindex(units, fill_value=0)
    params = {
        "kind": kind, "cutoff_km": cutoff_km, "k": int(k) if k is not None else None,
        "power": float(power) if kind == "inverse_distance" else None, "row_standardise": bool(row_standardise),
        "distance": "haversine great-circle", "earth_radius_km": EARTH_RADIUS_KM, "n_units": len(units),
        "n_links": int((table["w_ij"] != 0).sum()), "isolated": isolated,
        "isolated_units": [_plain(u) for u in isolated_units],
        "neighbours_min": int(counts.min()), "neighbours_max": int(counts.max()),
        "neighbours_mean": float(counts.mean()),
        "max_nearest_neighbour_km": float(nn_max),  # the smallest cut-off that leaves no unit isolated
    }
    return SpatialWeights(table=table, params=params, units=tuple(units))


@dataclass
class _SQL:
    sql: str
    params: list


def _links_sql(pairs: str, kind, cutoff_km, k, power, row_standardise) -> _SQL:
    """The links of W (unit_i, unit_j, w_ij, distance_km) from the pair distances."""
    if kind == "knn":
        raw = (f"SELECT unit_i, unit_j, 1.0 AS w, distance_km FROM (SELECT *, row_number() OVER "
               f"(PARTITION BY unit_i ORDER BY distance_km, unit_j) AS r FROM {pairs}) WHERE r <= ?")
        params: list = [int(k)]
    else:
        where = "WHERE distance_km <= ?" if cutoff_km is not None else ""
        raw = f"SELECT unit_i, unit_j, pow(distance_km, -?) AS w, distance_km FROM {pairs} {where}"
        params = [float(power)] + ([float(cutoff_km)] if cutoff_km is not None else [])
    w = "w / sum(w) OVER (PARTITION BY unit_i)" if row_standardise else "w"
    return _SQL(f"SELECT unit_i, unit_j, {w} AS w_ij, distance_km FROM ({raw}) ORDER BY unit_i, unit_j", params)


def _check_distinct_points(table: pd.DataFrame) -> None:
    """Two units at one point have d = 0 and an infinite inverse-distance weight."""
    if (table["distance_km"] == 0).any():
        pair = table.loc[table["distance_km"] == 0].iloc[0]
        raise ValueError(f"units {_plain(pair['unit_i'])!r} and {_plain(pair['unit_j'])!r} have the same "
                         "coordinates: an inverse distance weight is infinite; merge them or use kind='knn'")


def _handle_isolated(table: pd.DataFrame, units: list, isolated: str, cutoff_km) -> tuple[pd.DataFrame, list]:
    linked = set(table["unit_i"])
    lonely = [u for u in units if u not in linked]
    if not lonely:
        return table, []
    if isolated == "error":
        shown = ", ".join(repr(_plain(u)) for u in lonely[:5])
        raise ValueError(f"{len(lonely)} units have no neighbour within cutoff_km = {cutoff_km} ({shown}"
                         f"{', ...' if len(lonely) > 5 else ''}); raise the cut-off, use kind='knn', or pass "
                         "isolated='keep' to give them a zero row of W")
    zero = pd.DataFrame({"unit_i": lonely, "unit_j": lonely, "w_ij": 0.0, "distance_km": 0.0})
    zero = zero.astype(table.dtypes.to_dict())
    out = pd.concat([table, zero], ignore_index=True).sort_values(["unit_i", "unit_j"], kind="stable")
    return out.reset_index(drop=True), lonely


def _plain(v):
    """numpy scalars -> Python scalars (JSON-able parameters)."""
    return v.item() if isinstance(v, np.generic) else v


# ===================================================================== spatial lags in SQL


def _weights_source(weights, scope: TempScope) -> str:
    """A FROM-item with columns unit_i, unit_j, w_ij for a SpatialWeights, DataFrame, table or query."""
    if isinstance(weights, SpatialWeights):
        return scope.register(weights.table, "weights")
    return resolve_relation(weights, scope)


def _check_weights(con, wsrc: str) -> None:
    """unit_i, unit_j, w_ij present; no NULL or non-finite weight; no repeated link; zero diagonal."""
    try:
        n_null, n_bad, n_self = con.execute(
            f"""SELECT count(*) FILTER (WHERE unit_i IS NULL OR unit_j IS NULL OR w_ij IS NULL),
                       count(*) FILTER (WHERE isnan(CAST(w_ij AS DOUBLE)) OR isinf(CAST(w_ij AS DOUBLE))),
                       count(*) FILTER (WHERE unit_i = unit_j AND w_ij <> 0)
                FROM {wsrc}"""
        ).fetchone()
    except duckdb.Error as exc:
        raise ValueError("the weights table needs columns unit_i, unit_j and a numeric w_ij "
                         f"(as spatial_weights returns): {exc}") from exc
    if n_null:
        raise ValueError(f"the weights table has {n_null} rows with a NULL unit_i, unit_j or w_ij")
    if n_bad:
        raise ValueError(f"the weights table has {n_bad} NaN or infinite w_ij")
    if n_self:
        raise ValueError(f"the weights table links {n_self} units to themselves with w_ij != 0; W needs a zero "
                         "diagonal")
    (n_dup,) = con.execute(
        f"SELECT count(*) FROM (SELECT unit_i, unit_j FROM {wsrc} GROUP BY 1, 2 HAVING count(*) > 1)"
    ).fetchone()
    if n_dup:
        raise ValueError(f"the weights table repeats {n_dup} (unit_i, unit_j) links; one row per link expected")


def _panel_table(con, scope, source: str, unit: str, time: str, columns: Sequence[str]) -> str:
    """(__u, __t, __c0..) with the columns cast to DOUBLE; one row per (unit, time) required."""
    cols = "".join(f", CAST({quote_ident(c)} AS DOUBLE) AS __c{j}" for j, c in enumerate(columns))
    table = scope.table("panel")
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT {quote_ident(unit)} AS __u, {quote_ident(time)} AS __t{cols} "
                f"FROM {source}")
    n_null, n_dup = con.execute(
        f"""SELECT (SELECT count(*) FROM {table} WHERE __u IS NULL OR __t IS NULL),
                   (SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY __u, __t HAVING count(*) > 1))"""
    ).fetchone()
    if n_null:
        raise ValueError(f"{n_null} rows have a NULL {unit!r} or {time!r}")
    if n_dup:
        raise ValueError(f"{n_dup} ({unit}, {time}) pairs occur more than once; a panel has one row per unit "
                         "and period")
    return table


def _check_units(con, panel: str, wsrc: str, unit: str) -> None:
    """Every panel unit has a row of W; every neighbour (w_ij != 0) of a panel unit is a panel unit."""
    try:
        missing = con.execute(
            f"SELECT DISTINCT __u FROM {panel} WHERE __u NOT IN (SELECT unit_i FROM {wsrc}) ORDER BY 1 LIMIT 6"
        ).fetchall()
        foreign = con.execute(
            f"""SELECT DISTINCT unit_i, unit_j FROM {wsrc} WHERE w_ij <> 0
                  AND unit_i IN (SELECT __u FROM {panel}) AND unit_j NOT IN (SELECT __u FROM {panel})
                ORDER BY 1, 2 LIMIT 6"""
        ).fetchall()
    except duckdb.Error as exc:
        raise ValueError(f"the weights' unit_i/unit_j cannot be compared with column {unit!r}: {exc}") from exc
    if missing:
        shown = ", ".join(repr(_plain(u)) for (u,) in missing[:5])
        raise ValueError(f"panel units have no row in the weights table ({shown}); build W for the panel's units "
                         "(spatial_weights with isolated='keep' gives a unit without neighbours a zero row)")
    if foreign:
        i, j = foreign[0]
        raise ValueError(f"the weights link unit {_plain(i)!r} to unit {_plain(j)!r}, which is not in the panel; "
                         "restrict W to the panel's units and re-standardise it")


def _lag_table(con, scope, panel: str, wsrc: str, lag: Sequence[int]) -> str:
    """Add __w{j} = sum_j w_ij __c{j} (same period) for each j in ``lag`` to the panel table.

    Only links with w_ij != 0 count.  A unit-period whose lag would miss a neighbour (no row
    in that period, or a NULL value) is an error: a silent zero would understate the lag.
    """
    lag = list(lag)
    sums = "".join(f", fsum(l.w * p.__c{j}) AS __w{j}, count(p.__c{j}) AS __n{j}" for j in lag)
    out = scope.table("lag")
    con.execute(
        f"""
        CREATE TEMP TABLE {out} AS
        WITH links AS (SELECT unit_i, unit_j, CAST(w_ij AS DOUBLE) AS w FROM {wsrc} WHERE w_ij <> 0),
             nl AS (SELECT unit_i, count(*) AS n FROM links GROUP BY unit_i),
             lg AS (SELECT l.unit_i AS __u, p.__t{sums} FROM links l JOIN {panel} p ON p.__u = l.unit_j
                    GROUP BY l.unit_i, p.__t)
        SELECT p.*{"".join(f", coalesce(lg.__w{j}, 0.0) AS __w{j}" for j in lag)},
               coalesce(nl.n, 0) AS __nl{"".join(f", coalesce(lg.__n{j}, 0) AS __n{j}" for j in lag)}
        FROM {panel} p LEFT JOIN lg ON lg.__u = p.__u AND lg.__t = p.__t LEFT JOIN nl ON nl.unit_i = p.__u
        """
    )
    for j in lag:
        bad = con.execute(
            f"SELECT __u, __t, __nl, __n{j} FROM {out} WHERE __n{j} <> __nl ORDER BY __u, __t LIMIT 1"
        ).fetchone()
        if bad:
            u, t, n_links, n_found = bad
            raise ValueError(
                f"the spatial lag of column #{j} of unit {_plain(u)!r} in period {_plain(t)!r} needs all its "
                f"{n_links} neighbours, but {n_links - n_found} have no row or a NULL value in that period"
            )
    return out


def spatial_lag(
    con: duckdb.DuckDBPyConnection,
    relation,
    weights,
    *,
    unit: str,
    time: str,
    columns: str | Sequence[str],
) -> pd.DataFrame:
    """The spatial lags W_x_it = sum_j w_ij x_jt of ``columns``, by a join in DuckDB.

    ``weights``: a :class:`SpatialWeights`, or a table / query / DataFrame with columns
    ``unit_i, unit_j, w_ij``.  Returns one row per panel row: ``unit, time``, the columns and
    ``W_<column>`` for each, sorted by unit and time.
    """
    columns = [columns] if isinstance(columns, str) else list(columns)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        wsrc = _weights_source(weights, scope)
        _check_weights(con, wsrc)
        panel = _panel_table(con, scope, source, unit, time, columns)
        _check_units(con, panel, wsrc, unit)
        lagged = _lag_table(con, scope, panel, wsrc, range(len(columns)))
        sel = ", ".join([f"__u AS {quote_ident(unit)}", f"__t AS {quote_ident(time)}"]
                        + [f"__c{j} AS {quote_ident(c)}" for j, c in enumerate(columns)]
                        + [f"__w{j} AS {quote_ident(_lag_name(c))}" for j, c in enumerate(columns)])
        return con.execute(f"SELECT {sel} FROM {lagged} ORDER BY __u, __t").df()


# ===================================================================== W·DID by feols


@dataclass
class SpilloverDIDResult:
    """The DID with the treatment and its spatial lag: direct and spillover effects."""

    model: FeolsResult
    treatment: str
    lag: str  # the name of the W·treatment regressor
    weights_params: dict = field(default_factory=dict)

    @property
    def direct(self) -> float:
        return float(self.model.coef[self.treatment])

    @property
    def spillover(self) -> float:
        return float(self.model.coef[self.lag])

    def to_dict(self) -> dict:
        tab = self.model.tidy()
        return {
            "method": "W·DID (feols, unit and time FE)", "treatment": self.treatment, "lag": self.lag,
            "direct": self.direct, "direct_se": float(self.model.se[self.treatment]),
            "spillover": self.spillover, "spillover_se": float(self.model.se[self.lag]),
            "vcov": self.model.vcov, "cluster": self.model.cluster, "nobs": self.model.nobs,
            "coefficients": tab.to_dict(orient="records"), "weights": dict(self.weights_params),
        }


def _fe_vcov(vcov, unit: str):
    return {"CRV1": unit} if vcov is None else vcov


def spatial_lag_did(
    con: duckdb.DuckDBPyConnection,
    relation,
    weights_table,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    controls: Sequence[str] = (),
    vcov=None,
) -> SpilloverDIDResult:
    """DID with the spatial lag of treatment: y_it = a D_it + g (W D)_it + X_it b + mu_i + l_t + e.

    ``(W D)_it = sum_j w_ij D_jt`` is computed in SQL by joining the weights table to the panel
    (every neighbour's treatment must be known in every period of the unit); the regression is
    :func:`.model.feols` with unit and time fixed effects and, by default, CRV1 errors clustered
    by ``unit`` (pyfixest's small-sample corrections).  ``a`` is the direct effect, ``g`` the
    spillover (coefficient ``W_<treatment>``).  Checked against pyfixest on the same column.
    """
    controls = list(controls)
    lag = _lag_name(treatment)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        names = [d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0").description]
        if lag in names:
            raise ValueError(f"the relation already has a column {lag!r}, the name of the spatial lag of "
                             f"{treatment!r}; rename it")
        wsrc = _weights_source(weights_table, scope)
        _check_weights(con, wsrc)
        panel = _panel_table(con, scope, source, unit, time, [treatment])
        _check_units(con, panel, wsrc, unit)
        lagged = _lag_table(con, scope, panel, wsrc, [0])
        data = scope.table("wdid")
        con.execute(
            f"CREATE TEMP TABLE {data} AS SELECT s.*, l.__w0 AS {quote_ident(lag)} FROM {source} s "
            f"JOIN {lagged} l ON l.__u = s.{quote_ident(unit)} AND l.__t = s.{quote_ident(time)}"
        )
        model = feols(con, data, outcome, [treatment, lag, *controls], [unit, time], vcov=_fe_vcov(vcov, unit))
    params = weights_table.params if isinstance(weights_table, SpatialWeights) else {}
    return SpilloverDIDResult(model=model, treatment=treatment, lag=lag, weights_params=dict(params))


# ===================================================================== distance bands


@dataclass
class DistanceBandResult:
    """The exposure-band DID: one coefficient per distance band of the nearest treated unit."""

    model: FeolsResult
    bands: pd.DataFrame  # band, lo_km, hi_km, coef, se, ci_low, ci_high, p, n_exposed, n_units_exposed
    treatment: str

    def to_dict(self) -> dict:
        return {
            "method": "DID with distance-band exposure indicators (feols, unit and time FE)",
            "treatment": self.treatment, "direct": float(self.model.coef[self.treatment]),
            "direct_se": float(self.model.se[self.treatment]), "nobs": self.model.nobs,
            "vcov": self.model.vcov, "cluster": self.model.cluster,
            "bands": self.bands.to_dict(orient="records"),
        }


def band_name(lo: float, hi: float) -> str:
    """The regressor name of the band [lo, hi) km, e.g. ``band_0_50``."""
    return f"band_{lo:g}_{hi:g}".replace("-", "m")


def _check_bands(bands_km) -> list[tuple[float, float]]:
    edges = [float(b) for b in bands_km]
    if len(edges) < 2 or any(not np.isfinite(e) for e in edges) or edges[0] < 0:
        raise ValueError(f"bands_km must be at least two finite edges >= 0, not {bands_km!r}")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"bands_km must increase strictly, not {bands_km!r}")
    return list(itertools.pairwise(edges))


def spillover_by_distance_band(
    con: duckdb.DuckDBPyConnection,
    relation,
    coords,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    bands_km: Sequence[float] = (0, 50, 100, 150, 200, 300),
    controls: Sequence[str] = (),
    lat: str = "lat",
    lon: str = "lon",
    vcov=None,
) -> DistanceBandResult:
    """DID with exposure indicators by distance to the nearest treated unit.

    For a unit-period with D_it = 0, n_it = min over units j with D_jt = 1 of the haversine
    distance d_ij (km, radius ``EARTH_RADIUS_KM``); its exposure indicator of band b = [lo, hi)
    is E_b,it = 1{D_it = 0, lo <= n_it < hi} (zero while no unit is treated, and for treated
    unit-periods).  Unit-periods beyond the last edge are the pure controls.  Then

        y_it = a D_it + sum_b g_b E_b,it + X_it b + mu_i + l_t + e_it

    by :func:`.model.feols` (CRV1 by ``unit`` by default): g_b is the spillover on untreated
    units whose nearest treated unit lies in band b.  The treatment must be 0/1; ``coords`` has
    one row per unit with columns ``unit``, ``lat``, ``lon`` (degrees).
    """
    bands = _check_bands(bands_km)
    names = [band_name(lo, hi) for lo, hi in bands]
    controls = list(controls)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        cols = [d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0").description]
        clash = [n for n in names if n in cols]
        if clash:
            raise ValueError(f"the relation already has columns named like the band indicators: {clash}")
        ctab, _ = _coordinates_table(con, scope, resolve_relation(coords, scope), unit, lat, lon)
        panel = _panel_table(con, scope, source, unit, time, [treatment])
        _check_binary_treatment(con, panel, treatment)
        (n_missing,) = con.execute(
            f"SELECT count(DISTINCT __u) FROM {panel} WHERE __u NOT IN (SELECT u FROM {ctab})").fetchone()
        if n_missing:
            raise ValueError(f"{n_missing} panel units have no row in the coordinates table")
        exposure = scope.table("exposure")
        con.execute(
            f"""CREATE TEMP TABLE {exposure} AS
                WITH d AS (SELECT a.u AS i, b.u AS j, {_haversine_sql('a', 'b')} AS km
                           FROM {ctab} a JOIN {ctab} b ON a.u <> b.u),
                     near AS (SELECT p.__u, p.__t, min(d.km) AS km
                              FROM {panel} p JOIN d ON d.i = p.__u
                              JOIN {panel} q ON q.__u = d.j AND q.__t = p.__t AND q.__c0 = 1
                              WHERE p.__c0 = 0 GROUP BY p.__u, p.__t)
                SELECT p.__u, p.__t, near.km AS __near_km FROM {panel} p
                LEFT JOIN near ON near.__u = p.__u AND near.__t = p.__t""",
            [EARTH_RADIUS_KM],
        )
        flags = ", ".join(f"CAST(coalesce(e.__near_km >= ? AND e.__near_km < ?, FALSE) AS DOUBLE) AS "
                          f"{quote_ident(n)}" for n in names)
        data = scope.table("bands")
        con.execute(
            f"CREATE TEMP TABLE {data} AS SELECT s.*, {flags} FROM {source} s JOIN {exposure} e "
            f"ON e.__u = s.{quote_ident(unit)} AND e.__t = s.{quote_ident(time)}",
            [v for lo, hi in bands for v in (lo, hi)],
        )
        counts = con.execute(
            "SELECT " + ", ".join(f"sum({quote_ident(n)}), count(DISTINCT {quote_ident(unit)}) FILTER "
                                  f"(WHERE {quote_ident(n)} = 1)" for n in names) + f" FROM {data}"
        ).fetchone()
        model = feols(con, data, outcome, [treatment, *names, *controls], [unit, time], vcov=_fe_vcov(vcov, unit))
    return DistanceBandResult(model=model, bands=_band_table(model, bands, names, counts), treatment=treatment)


def _check_binary_treatment(con, panel: str, treatment: str) -> None:
    n_null, n_other = con.execute(
        f"SELECT count(*) FILTER (WHERE __c0 IS NULL), count(*) FILTER (WHERE __c0 NOT IN (0, 1)) FROM {panel}"
    ).fetchone()
    if n_null:
        raise ValueError(f"{treatment!r} is NULL in {n_null} rows; exposure needs every unit's status each period")
    if n_other:
        raise ValueError(f"{treatment!r} must be 0/1; {n_other} rows have another value")


def _band_table(model: FeolsResult, bands, names, counts) -> pd.DataFrame:
    tidy = model.tidy().set_index("term")
    rows = []
    for b, ((lo, hi), name) in enumerate(zip(bands, names)):
        est = tidy.loc[name] if name in tidy.index else None
        rows.append({
            "band": name, "lo_km": lo, "hi_km": hi,
            **{c: (float(est[c]) if est is not None else float("nan")) for c in ("coef", "se", "ci_low", "ci_high", "p")},
            "n_exposed": int(counts[2 * b] or 0), "n_units_exposed": int(counts[2 * b + 1] or 0),
        })
    return pd.DataFrame(rows)


# ===================================================================== the spatial panel model by ML


@dataclass
class SpatialResult:
    """Spatial lag (SAR) or spatial Durbin (SDM) panel model with unit and time FE, by ML.

    ``coef``/``se``/``z``/``p``/``conf_int`` are indexed by term: the regressors (b), their
    lags ``W_<x>`` (theta, SDM only) and ``rho``; inference is asymptotic normal from the
    inverse information matrix.  ``effects`` has one row per regressor: the LeSage-Pace
    direct, indirect and total effects with simulated SEs (``*_se``) and delta-method SEs
    (``*_se_delta``).
    """

    depvar: str
    regressors: tuple[str, ...]
    lagged: tuple[str, ...]  # regressors whose W-lag enters (the Durbin terms)
    coef: pd.Series
    se: pd.Series
    z: pd.Series
    p: pd.Series
    conf_int: pd.DataFrame
    vcov_matrix: pd.DataFrame  # the coefficients' and rho's, from the inverse information matrix
    sigma2: float
    sigma2_se: float
    loglik: float
    nobs: int
    n_units: int
    n_periods: int
    rho_bounds: tuple[float, float]
    effects: pd.DataFrame
    effects_draws: int
    effects_seed: int
    alpha: float = 0.05
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def model(self) -> str:
        return "SDM" if self.lagged else "SAR"

    @property
    def rho(self) -> float:
        return float(self.coef["rho"])

    def tidy(self) -> pd.DataFrame:
        return pd.DataFrame({"term": self.coef.index, "coef": self.coef.to_numpy(), "se": self.se.to_numpy(),
                             "z": self.z.to_numpy(), "p": self.p.to_numpy(),
                             "ci_low": self.conf_int["ci_low"].to_numpy(),
                             "ci_high": self.conf_int["ci_high"].to_numpy()})

    def to_dict(self) -> dict:
        return {
            "method": f"{self.model} panel, unit and time FE, ML (Elhorst), no Lee-Yu bias correction",
            "depvar": self.depvar, "regressors": list(self.regressors), "lagged": list(self.lagged),
            "coefficients": self.tidy().to_dict(orient="records"), "sigma2": self.sigma2,
            "sigma2_se": self.sigma2_se, "loglik": self.loglik, "nobs": self.nobs, "n_units": self.n_units,
            "n_periods": self.n_periods, "rho_bounds": list(self.rho_bounds),
            "effects": self.effects.to_dict(orient="records"), "effects_draws": self.effects_draws,
            "effects_seed": self.effects_seed, "alpha": self.alpha, "extra": dict(self.extra),
        }


@dataclass
class _MLData:
    """The demeaned panel in DuckDB and its sufficient statistics."""

    table: str  # demeaned: __i, __tt, __c0 (y), __w0 (Wy), then the regressors
    z: list[str]  # SQL names of the regressor columns (X, then WX), demeaned
    gram: np.ndarray  # [y, Wy, z] x [y, Wy, z] of the demeaned columns
    W: np.ndarray  # N x N, units in sorted order (= codes __i 1..N)
    period_means: np.ndarray  # T x 2: mean of y and of Wy per period (sorted periods)
    n_units: int
    n_periods: int


def _ml_data(con, scope, relation, weights, outcome, regressors, lagged, unit, time) -> _MLData:
    source = resolve_relation(relation, scope)
    wsrc = _weights_source(weights, scope)
    _check_weights(con, wsrc)
    columns = [outcome, *regressors]
    panel = _panel_table(con, scope, source, unit, time, columns)
    _check_complete_balanced(con, panel, columns, unit, time)
    _check_units(con, panel, wsrc, unit)
    lag_idx = [0] + [1 + regressors.index(x) for x in lagged]
    lagged_t = _lag_table(con, scope, panel, wsrc, lag_idx)
    coded = scope.table("coded")
    keep = ["__c0", "__w0"] + [f"__c{j}" for j in range(1, len(columns))] + [f"__w{j}" for j in lag_idx[1:]]
    con.execute(f"CREATE TEMP TABLE {coded} AS SELECT CAST(dense_rank() OVER (ORDER BY __u) AS INTEGER) AS __i, "
                f"CAST(dense_rank() OVER (ORDER BY __t) AS INTEGER) AS __tt, {', '.join(keep)} FROM {lagged_t}")
    n_units, n_periods = con.execute(f"SELECT max(__i), max(__tt) FROM {coded}").fetchone()
    links = con.execute(
        f"""SELECT ci.__i, cj.__i, CAST(w.w_ij AS DOUBLE) FROM {wsrc} w
            JOIN (SELECT DISTINCT __u, dense_rank() OVER (ORDER BY __u) AS __i FROM {panel}) ci ON ci.__u = w.unit_i
            JOIN (SELECT DISTINCT __u, dense_rank() OVER (ORDER BY __u) AS __i FROM {panel}) cj ON cj.__u = w.unit_j
            WHERE w.w_ij <> 0"""
    ).fetchall()
    W = np.zeros((n_units, n_units))
    for i, j, w in links:
        W[int(i) - 1, int(j) - 1] = float(w)
    means = np.array(con.execute(f"SELECT avg(__c0), avg(__w0) FROM {coded} GROUP BY __tt ORDER BY __tt").fetchall(),
                     dtype=float)
    st = column_stats(con, coded, keep)
    dm = demean(con, scope, coded, keep, ["__i", "__tt"], ["__i", "__tt"], st, method="balanced", balanced_grid=True)
    gram = cross_products(con, dm.table, keep)
    names = [*regressors, *(_lag_name(x) for x in lagged)]
    dropped = find_collinear(gram[2:, 2:], st.raw_ss[2:])
    if dropped:
        bad = ", ".join(repr(names[j]) for j in dropped)
        raise ValueError(f"regressors {bad} are collinear with the unit and time fixed effects and the other "
                         "regressors; drop them (or the Durbin lag) from the model")
    return _MLData(dm.table, keep[2:], gram, W, means, int(n_units), int(n_periods))


def _check_complete_balanced(con, panel: str, columns: list[str], unit: str, time: str) -> None:
    nulls = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE __c{j} IS NULL OR isnan(__c{j}) OR isinf(__c{j}))"
                              for j in range(len(columns))) + f" FROM {panel}"
    ).fetchone()
    bad = [f"{c!r} ({n})" for c, n in zip(columns, nulls) if n]
    if bad:
        raise ValueError("the spatial ML model needs a complete panel; NULL/NaN/inf values in " + ", ".join(bad))
    n, n_u, n_t = con.execute(f"SELECT count(*), count(DISTINCT __u), count(DISTINCT __t) FROM {panel}").fetchone()
    if n != n_u * n_t:
        raise ValueError(f"the spatial ML model needs a balanced panel: {n} rows for {n_u} units x {n_t} periods "
                         f"of {unit!r} x {time!r}")
    if n_t < 2 or n_u < 3:
        raise ValueError("the spatial ML model needs at least 3 units and 2 periods")


@dataclass
class _Spectrum:
    """Eigenvalues of W and the admissible interval of rho: I - rho W non-singular from 0."""

    eig: np.ndarray  # complex
    lo: float
    hi: float

    def logdet(self, rho: float) -> float:
        """log |det(I - rho W)| = sum_i log |1 - rho lambda_i|."""
        return float(np.sum(np.log(np.abs(1.0 - rho * self.eig))))

    def dlogdet(self, rho: float) -> float:
        """d/drho log |det(I - rho W)| = -sum_i Re(lambda_i / (1 - rho lambda_i))."""
        return float(-np.sum((self.eig / (1.0 - rho * self.eig)).real))


def _spectrum(W: np.ndarray) -> _Spectrum:
    eig = np.linalg.eigvals(W)
    scale = float(np.max(np.abs(eig))) or 1.0
    real = eig.real[np.abs(eig.imag) <= 1e-10 * scale]
    neg, pos = real[real < 0], real[real > 0]
    if len(pos) == 0:
        raise ValueError("W has no positive real eigenvalue; a spatial lag model needs a non-trivial W")
    lo = 1.0 / float(neg.min()) if len(neg) else -1.0 / float(pos.max())
    return _Spectrum(eig, lo, 1.0 / float(pos.max()))


@dataclass
class _Concentrated:
    """The likelihood concentrated in rho, from the Gram matrix of the demeaned columns.

    b(rho) = b0 - rho b1 (b0, b1: OLS of y and Wy on Z), e(rho) = e0 - rho e1 and
    logL(rho) = -(NT/2)(log(2 pi e'e/NT) + 1) + T log|I - rho W|.
    """

    b0: np.ndarray
    b1: np.ndarray
    e00: float
    e01: float
    e11: float
    nt: int
    t: int
    spec: _Spectrum

    @classmethod
    def from_gram(cls, gram: np.ndarray, nt: int, t: int, spec: _Spectrum) -> _Concentrated:
        szz, szy, szw = gram[2:, 2:], gram[2:, 0], gram[2:, 1]
        chol = linalg.cho_factor(szz)
        b0, b1 = linalg.cho_solve(chol, szy), linalg.cho_solve(chol, szw)
        return cls(b0, b1, float(gram[0, 0] - szy @ b0), float(gram[0, 1] - szy @ b1),
                   float(gram[1, 1] - szw @ b1), nt, t, spec)

    def ssr(self, rho: float) -> float:
        return self.e00 - 2.0 * rho * self.e01 + rho * rho * self.e11

    def loglik(self, rho: float) -> float:
        return (-0.5 * self.nt * (math.log(2.0 * math.pi * self.ssr(rho) / self.nt) + 1.0)
                + self.t * self.spec.logdet(rho))

    def score(self, rho: float) -> float:
        return self.nt * (self.e01 - rho * self.e11) / self.ssr(rho) + self.t * self.spec.dlogdet(rho)

    def maximise(self, grid: int = 400) -> float:
        """Global grid over the admissible interval, then the root of the score (Brent) nearby.

        The score is analytic and cheap, so the root is found to machine precision (brentq,
        xtol 1e-15); the grid guards against a local maximum.
        """
        lo, hi = self.spec.lo, self.spec.hi
        margin = 1e-9 * (hi - lo)
        pts = np.linspace(lo + margin, hi - margin, grid + 1)
        ll = np.array([self.loglik(r) for r in pts])
        m = int(np.nanargmax(ll))
        a, b = pts[max(m - 1, 0)], pts[min(m + 1, grid)]
        if self.score(a) > 0 > self.score(b):
            return float(optimize.brentq(self.score, a, b, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200))
        res = optimize.minimize_scalar(lambda r: -self.loglik(r), bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-12})
        rho = float(res.x)
        if min(rho - lo, hi - rho) < 1e-6 * (hi - lo):
            raise ValueError(f"the likelihood is maximal at the edge of rho's interval ({lo:.4g}, {hi:.4g}); "
                             "the spatial lag model does not fit these data")
        return rho


def _information(con, scope, data: _MLData, beta: np.ndarray, rho: float, sigma2: float) -> np.ndarray:
    """The information matrix of (b, rho, sigma2) of the two-way FE model (Elhorst's form, as spreg).

    With S = I - rho W, W~ = W S^-1, Z the two-way demeaned regressors and h the fitted index of
    the unit-demeaned model, h_it = (Z b)_it + c_t, c_t = (ybar_t - ybar) - rho (Wybar_t - Wybar)
    (the time effects enter like regressors, as in spreg with period dummies), g_t = W~ h_t and
    g~ = g two-way demeaned (the time effects partialled out):

        I_bb = Z'Z / s2,  I_b,rho = Z'g~ / s2,  I_rho,rho = T tr(W~W~ + W~'W~) + g~'g~ / s2,
        I_rho,s2 = T tr(W~) / s2,  I_s2,s2 = NT / (2 s2^2),  I_b,s2 = 0.
    """
    n, t, W = data.n_units, data.n_periods, data.W
    Wt = W @ np.linalg.inv(np.eye(n) - rho * W)
    zb = " + ".join(f"? * {z}" for z in data.z)
    h = np.array([v for (v,) in con.execute(f"SELECT {zb} FROM {data.table} ORDER BY __i, __tt",
                                            [float(b) for b in beta]).fetchall()]).reshape(n, t)
    c = (data.period_means[:, 0] - data.period_means[:, 0].mean()) - rho * (
        data.period_means[:, 1] - data.period_means[:, 1].mean())
    g = Wt @ (h + c[None, :])
    g = g - g.mean(axis=1, keepdims=True) - g.mean(axis=0, keepdims=True) + g.mean()
    gview = scope.register(pd.DataFrame({"__i": np.repeat(np.arange(1, n + 1), t),
                                         "__tt": np.tile(np.arange(1, t + 1), n), "__g": g.ravel()}), "g")
    zg = np.array(con.execute(
        "SELECT " + ", ".join(f"fsum(d.{z} * g.__g)" for z in data.z)
        + f" FROM {data.table} d JOIN {gview} g ON g.__i = d.__i AND g.__tt = d.__tt").fetchone(), dtype=float)
    k = len(data.z)
    info = np.zeros((k + 2, k + 2))
    info[:k, :k] = data.gram[2:, 2:] / sigma2
    info[:k, k] = info[k, :k] = zg / sigma2
    info[k, k] = t * (np.sum(Wt * Wt.T) + np.sum(Wt * Wt)) + float(np.sum(g * g)) / sigma2
    info[k, k + 1] = info[k + 1, k] = t * np.trace(Wt) / sigma2
    info[k + 1, k + 1] = n * t / (2.0 * sigma2 ** 2)
    return info


@dataclass
class _Multipliers:
    """m1 = tr(S^-1)/N, m2 = tr(S^-1 W)/N, m3 = 1'S^-1 1/N, m4 = 1'S^-1 W 1/N at rho, and d/drho."""

    m: np.ndarray  # (4,)
    dm: np.ndarray  # (4,)


def _multipliers(W: np.ndarray, rho: float) -> _Multipliers:
    n = W.shape[0]
    B = np.linalg.inv(np.eye(n) - rho * W)
    P = B @ W
    m = np.array([np.trace(B), np.trace(P), B.sum(), P.sum()]) / n
    # d S^-1 / d rho = S^-1 W S^-1
    cs, rs = P.sum(axis=0), B.sum(axis=1)
    dm = np.array([np.sum(P * B.T), np.sum(P * P.T), cs @ rs, cs @ P.sum(axis=1)]) / n
    return _Multipliers(m, dm)


class _EigenMultipliers:
    """m1..m4 at any rho from W = V diag(lambda) V^-1 in O(N): used for the simulation draws."""

    def __init__(self, W: np.ndarray):
        lam, V = np.linalg.eig(W)
        ones = np.ones(W.shape[0])
        self.lam = lam
        self.a = (ones @ V) * np.linalg.solve(V, ones)
        self.n = W.shape[0]

    def __call__(self, rho: np.ndarray) -> np.ndarray:
        """(draws x 4) multipliers for a vector of rho."""
        inv = 1.0 / (1.0 - np.asarray(rho)[:, None] * self.lam[None, :])
        out = np.stack([inv.sum(1), (inv * self.lam).sum(1), (inv * self.a).sum(1),
                        (inv * self.a * self.lam).sum(1)], axis=1)
        return out.real / self.n


def _effect_values(m: np.ndarray, b: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(direct, indirect, total) per variable: direct = b m1 + theta m2, total = b m3 + theta m4."""
    direct = b * m[..., 0:1] + theta * m[..., 1:2]
    total = b * m[..., 2:3] + theta * m[..., 3:4]
    return np.stack([direct, total - direct, total], axis=-1)


def _effects(W, rho, coef: pd.Series, V: np.ndarray, regressors, lagged, spec: _Spectrum, draws: int,
             seed: int) -> tuple[pd.DataFrame, dict]:
    """LeSage-Pace effects with delta-method and simulated standard errors."""
    k = len(regressors)
    names = list(coef.index)
    b = coef[list(regressors)].to_numpy()
    theta = np.array([coef[_lag_name(x)] if x in lagged else 0.0 for x in regressors])
    mult = _multipliers(W, rho)
    point = _effect_values(mult.m, b, theta)  # k x 3
    ir = names.index("rho")
    se_delta = np.zeros((k, 3))
    for v, x in enumerate(regressors):
        idx = [names.index(x)] + ([names.index(_lag_name(x))] if x in lagged else [])
        th = theta[v]
        grads = {  # d(direct, total) / d(b, theta, rho)
            "direct": [mult.m[0]] + ([mult.m[1]] if x in lagged else []) + [b[v] * mult.dm[0] + th * mult.dm[1]],
            "total": [mult.m[2]] + ([mult.m[3]] if x in lagged else []) + [b[v] * mult.dm[2] + th * mult.dm[3]],
        }
        sub = V[np.ix_(idx + [ir], idx + [ir])]
        gd, gt = np.array(grads["direct"]), np.array(grads["total"])
        gi = gt - gd
        se_delta[v] = [math.sqrt(max(g @ sub @ g, 0.0)) for g in (gd, gi, gt)]
    sims, n_redrawn, how, method = _simulate(W, coef.to_numpy(), V, ir, spec, draws, seed, mult)
    bs = sims[:, [names.index(x) for x in regressors]]
    ths = np.stack([sims[:, names.index(_lag_name(x))] if x in lagged else np.zeros(draws) for x in regressors], 1)
    eff_draws = _effect_values(method(sims[:, ir]), bs, ths)  # draws x k x 3
    se_sim = eff_draws.std(axis=0, ddof=1)
    rows = []
    for v, x in enumerate(regressors):
        row = {"variable": x}
        for e, kind in enumerate(("direct", "indirect", "total")):
            row[kind] = float(point[v, e])
            row[f"{kind}_se"] = float(se_sim[v, e])
            row[f"{kind}_se_delta"] = float(se_delta[v, e])
        rows.append(row)
    return pd.DataFrame(rows), {"effects_redrawn": n_redrawn, "effects_multipliers": how}


def _simulate(W, mean, V, ir, spec: _Spectrum, draws: int, seed: int, mult: _Multipliers):
    """Draws of all coefficients from N(estimate, V); draws of rho outside its interval are redrawn.

    Returns the draws, how many were redrawn, and the function rho -> multipliers with its name:
    "eigen" when the eigen form reproduces the exact multipliers at the estimate to 1e-9 (W well
    diagonalisable), else "exact" (an N x N inverse per draw).
    """
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky((V + V.T) / 2.0)
    out = mean + rng.standard_normal((draws, len(mean))) @ L.T
    redrawn = 0
    for _ in range(100):
        bad = (out[:, ir] <= spec.lo) | (out[:, ir] >= spec.hi)
        if not bad.any():
            break
        redrawn += int(bad.sum())
        out[bad] = mean + rng.standard_normal((int(bad.sum()), len(mean))) @ L.T
    else:  # pragma: no cover - rho's sampling distribution far outside its interval
        raise ValueError("the simulated rho keeps falling outside its admissible interval")
    eigen = _EigenMultipliers(W)
    at_hat = eigen(np.array([mean[ir]]))[0]
    if np.all(np.abs(at_hat - mult.m) <= 1e-9 * np.maximum(1.0, np.abs(mult.m))):
        return out, redrawn, "eigen", eigen

    def exact(rhos: np.ndarray) -> np.ndarray:
        return np.stack([_multipliers(W, float(r)).m for r in rhos])

    return out, redrawn, "exact", exact


def spatial_panel_ml(
    con: duckdb.DuckDBPyConnection,
    relation,
    weights,
    *,
    outcome: str,
    regressors: Sequence[str],
    unit: str,
    time: str,
    durbin: bool | Sequence[str] = True,
    draws: int = EFFECTS_DRAWS,
    seed: int = EFFECTS_SEED,
    alpha: float = 0.05,
) -> SpatialResult:
    """Spatial Durbin (``durbin=True``) or spatial lag (``durbin=False``) panel model by ML.

    Model (balanced panel, N units x T periods, W the N x N weights among the panel's units):

        y_t = rho W y_t + X_t b + W X_t theta + mu + lambda_t 1 + e_t,   e_t ~ N(0, s2 I)

    ``durbin`` may also list the regressors whose W-lag enters.  Elhorst's (2003, 2014) direct
    approach with the fixed effects as parameters: the within transform removes mu and lambda
    (two-way demeaning, in SQL); the likelihood concentrated in rho is

        logL(rho) = -(NT/2) (log(2 pi s2(rho)) + 1) + T log|I - rho W|,  s2(rho) = e(rho)'e(rho)/NT,

    log|I - rho W| = sum log|1 - rho lambda_i| from the eigenvalues of W, maximised over rho in
    (1/lambda_min, 1/lambda_max) (the real eigenvalues); then b(rho) and s2 = e'e/NT.  No
    Lee-Yu (2010) bias correction (as spreg): s2 is biased down by about (T-1)/T and rho, b
    by O(1/T) + O(1/N) with both fixed effects.  Variance: inverse of the information matrix
    (see :func:`_information`).  Effects (LeSage & Pace 2009) of regressor x:
    S = (I - rho W)^-1 (b_x I + theta_x W), direct = tr(S)/N, total = 1'S1/N, indirect =
    total - direct; SEs by simulation (``draws`` draws of all coefficients from their estimated
    normal distribution, ``seed``) and by the delta method.  Checked against spreg 1.9.0
    ``Panel_FE_Lag`` with period dummies.
    """
    t0 = _time.perf_counter()
    regressors = list(regressors)
    lagged = _lagged(durbin, regressors)
    if not regressors:
        raise ValueError("the spatial panel model needs at least one regressor")
    if len(set(regressors)) != len(regressors) or outcome in regressors:
        raise ValueError("regressors must be distinct columns other than the outcome")
    with temp_scope(con) as scope:
        data = _ml_data(con, scope, relation, weights, outcome, regressors, lagged, unit, time)
        spec = _spectrum(data.W)
        nt = data.n_units * data.n_periods
        conc = _Concentrated.from_gram(data.gram, nt, data.n_periods, spec)
        rho = conc.maximise()
        beta = conc.b0 - rho * conc.b1
        sigma2 = conc.ssr(rho) / nt
        info = _information(con, scope, data, beta, rho, sigma2)
    vfull = np.linalg.inv(info)
    vfull = (vfull + vfull.T) / 2.0
    k = len(beta)
    names = [*regressors, *(_lag_name(x) for x in lagged), "rho"]
    est = np.append(beta, rho)
    V = vfull[: k + 1, : k + 1]
    se = np.sqrt(np.diag(V))
    idx = pd.Index(names, name="term")
    z = est / se
    crit = stats.norm.ppf(1.0 - alpha / 2.0)
    coef = pd.Series(est, index=idx, name="coef")
    effects, eff_extra = _effects(data.W, rho, coef, V, regressors, lagged, spec, int(draws), int(seed))
    return SpatialResult(
        depvar=outcome, regressors=tuple(regressors), lagged=tuple(lagged), coef=coef,
        se=pd.Series(se, index=idx, name="se"), z=pd.Series(z, index=idx, name="z"),
        p=pd.Series(2.0 * stats.norm.sf(np.abs(z)), index=idx, name="p"),
        conf_int=pd.DataFrame({"ci_low": est - crit * se, "ci_high": est + crit * se}, index=idx),
        vcov_matrix=pd.DataFrame(V, index=idx, columns=idx), sigma2=float(sigma2),
        sigma2_se=float(math.sqrt(vfull[k + 1, k + 1])), loglik=conc.loglik(rho), nobs=nt,
        n_units=data.n_units, n_periods=data.n_periods, rho_bounds=(spec.lo, spec.hi), effects=effects,
        effects_draws=int(draws), effects_seed=int(seed), alpha=alpha, elapsed_s=_time.perf_counter() - t0,
        extra={"score_at_rho": conc.score(rho), "logdet": "eigenvalues of W", **eff_extra},
    )


def _lagged(durbin, regressors: list[str]) -> list[str]:
    if durbin is True:
        return list(regressors)
    if durbin is False or durbin is None:
        return []
    chosen = [durbin] if isinstance(durbin, str) else list(durbin)
    unknown = [x for x in chosen if x not in regressors]
    if unknown:
        raise ValueError(f"durbin lists {unknown}, which are not regressors of the model {regressors}")
    return [x for x in regressors if x in chosen]


def spatial_durbin_did(
    con: duckdb.DuckDBPyConnection,
    relation,
    weights_table,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    controls: Sequence[str] = (),
    durbin: bool | Sequence[str] = True,
    draws: int = EFFECTS_DRAWS,
    seed: int = EFFECTS_SEED,
    alpha: float = 0.05,
) -> SpatialResult:
    """The DID as a spatial Durbin (or, ``durbin=False``, spatial lag) panel model with unit and
    time FE: :func:`spatial_panel_ml` with regressors ``(treatment, *controls)``.  The
    treatment's LeSage-Pace direct effect is the effect on the treated unit including feedback,
    its indirect effect the spillover to the other units, summed (average row sum)."""
    return spatial_panel_ml(con, relation, weights_table, outcome=outcome, regressors=[treatment, *controls],
                            unit=unit, time=time, durbin=durbin, draws=draws, seed=seed, alpha=alpha)
