"""Imputation DID (Borusyak, Jaravel & Spiess 2024) and two-stage DID (Gardner 2021), in DuckDB.

Setting: units i, periods t (integers), cohort E_i = the unit's first treated period (0 or NULL:
never treated), D_it = 1[t >= E_i], event time K_it = t - E_i.  Omega_0 = untreated rows
(never treated and not yet treated), Omega_1 = treated rows.  Y_it(0) = alpha_i + gamma_t +
z_it'delta + e_it (Assumption 1' of BJS with covariates z).

Stage 1 (both estimators).  OLS of y on unit FE, period FE and z on Omega_0 only.  The unit
FE are absorbed by within-unit demeaning and the period FE enter as demeaned dummies (levels
2..T), :func:`.demean.demean` ``within_dummies``, so with theta = (gamma_2..gamma_T, delta)

    S theta^ = Theta~'y~,    S = Theta~'Theta~ (the Gram of the unit-demeaned [dummies, z] on Omega_0),
    alpha^_i = mean over the unit's untreated rows of (y - gamma^_t - z'delta^),

the period values are bound back into SQL and the residualised outcome

    y~_it = y_it - alpha^_i - gamma^_t - z_it'delta^        (every row)

is stored: on Omega_0 it is the stage-1 residual e^_it, on Omega_1 the imputed effect
tau^_it = Y_it - Y^_it(0).

Estimands.  Every reported number is tau^_w = sum_{it} w_it y~_it for weights w that are
constant within (cohort, period) cells: the ATT (w = 1/N_1 on Omega_1), event time h
(1[K = h]/N_{1,h}), cohort g, calendar period t, and the "overall" averages of those (equal
weights over event times or periods, cohort-size weights over cohorts, as Callaway and
Sant'Anna's aggregations).  For did2s the event-study second stage is the no-intercept OLS of
y~ on mutually exclusive event-time dummies, whose coefficients are exactly these cell means
(Gardner's and BJS's point estimates coincide: the imputation identity).

Projection weights.  A linear estimator sum w y~ loads on the untreated rows through the
stage-1 fit: tau^_w = sum_it v_it Y_it with v = w on the rows where w != 0 and, on Omega_0,
v_0 = -X_0 (X_0'X_0)^-1 X'w  (X = [unit dummies, period dummies, z]; BJS's v_it).  With the
unit dummies absorbed (Schur complement; n_i = untreated rows of unit i):

    r_alpha,i = sum_t w_it,  r_theta = sum_it theta_it w_it           (X'w in blocks)
    b_theta = S^-1 (r_theta - sum_{it in Omega_0} theta_it r_alpha,i / n_i)
    v_0,it = -(a_i + theta_it'b_theta)  for some unit constants a_i.

Because the stage-1 residuals sum to zero within every unit and clusters contain whole units,
the unit constants a_i drop out of every cluster score: sum_{it in c, Omega_0} v_it e^_it =
-b_theta' m_c with m_c = sum_{it in c, Omega_0} theta_it e^_it (period-by-cluster sums of the
residual and the cluster sums of z e^).  Everything O(N) is a GROUP BY in SQL; Python sees
G x (T + k) and J x (T + k) matrices (J estimands).

Variances (cluster scores psi_c, V = sum_c psi_c psi_c', no small-sample factor, as both
references):

* did2s (Gardner 2021; Butts' R ``did2s``, pyfixest ``did2s``): the GMM sandwich
  (X2'X2)^-1 sum_c W_c W_c' (X2'X2)^-1 with W_c = X2_c'u2_c - X2'X1 (X10'X10)^-1 X10_c'u1_c.
  For one exclusive indicator column of the second stage, with w = x2/n,
  psi_c = sum_{it in c} w_it (y~_it - beta_j) - b_theta' m_c.
* BJS (2024, Theorem 3, eqs. 7-8): the conservative estimator
  psi_c = sum_{it in c} v_it e~_it with e~ = e^ on Omega_0 and, on Omega_1,
  e~_it = tau^_it - tau~_g(it), tau~_g = sum_i a_ig b_ig / sum_i a_ig^2 (a_ig = sum_{t in g} v_it,
  b_ig = sum_{t in g} v_it tau^_it) within the groups g of ``avg_effects_by`` (default cohort x
  period).  ``leave_out=True`` uses the leave-one-unit-out tau~ (BJS Supplementary Appendix A.9,
  Stata ``did_imputation, leaveout``), which for unit i scales its group contribution
  b_ig - a_ig tau~_g by 1 / (1 - a_ig^2 / sum_j a_jg^2); a group with one unit keeps the plain
  contribution (the leave-out mean is undefined; counted in ``n_singleton_groups``).

Rows that cannot be imputed (treated rows of a unit without untreated rows - always treated -
or in a period without untreated rows) are dropped and counted (``n_not_imputable``): their
effects are not identified (BJS Proposition 5).

The pre-trend test :func:`pretrend_test` is BJS's Test 1: OLS on Omega_0 of y on the lead
indicators 1[K = -1], ..., 1[K = -L], z, unit and period FE, Wald/F test that the leads are
zero with cluster-robust (CRV1, pyfixest's small-sample factor) errors, via :func:`.model.feols`.

Checked against pyfixest 0.60 ``pf.did2s`` (static and event-study second stages, with a
covariate, balanced and unbalanced panels: coefficients 1e-8, standard errors 1e-6), an
independent dense numpy transcription of BJS eqs. 7-8 (estimates 1e-10, variances 1e-8
relative), and pyfixest ``feols`` on the untreated subsample for the pre-trend test
(tests/test_did_sa_bjs_did2s.py).

Queries are read with ``fetchall()``: a fully consumed result leaves the caller's connection
free even when a check raises right after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import linalg, stats

from .collinear import find_collinear
from .demean import column_stats, demean
from .inference import WaldTest
from .model import feols
from .moments import cross_products, within_dummies_gram
from .result import FeolsResult
from .sqlutil import TempScope, quote_ident, resolve_relation, temp_scope
from .vcov import SSC

AVG_EFFECTS_BY = ("cohort_period", "cohort", "event_time", "all")
KEY_NAMES = {"dynamic": "event_time", "group": "cohort", "calendar": "time"}


# ----------------------------------------------------------------- results

def _rows_dict(est: pd.DataFrame, aggregate: str) -> dict:
    """One aggregate (``simple``, ``dynamic``, ...) of an estimates frame as a plain dict."""
    part = est[est["aggregation"] == aggregate]
    if part.empty:
        return {}
    overall = part[part["key"].isna()]
    out = {"coef": float(overall["coef"].iloc[0]) if len(overall) else float("nan"),
           "se": float(overall["se"].iloc[0]) if len(overall) else float("nan")}
    if aggregate in KEY_NAMES:
        out["rows"] = [{KEY_NAMES[aggregate]: int(r.key), "coef": float(r.coef), "se": float(r.se),
                        "n_obs": int(r.n_obs)}
                       for r in part[part["key"].notna()].itertuples()]
    return out


def aggregates_dict(estimates: pd.DataFrame) -> dict:
    """``{"simple": {coef, se}, "dynamic": {coef, se, rows}, "group": ..., "calendar": ...}``."""
    out = {}
    for agg in ("simple", "dynamic", "group", "calendar"):
        d = _rows_dict(estimates, agg)
        if d:
            out[agg] = d
    return out


class AggregatedEstimates:
    """Look-ups on an ``estimates`` frame (aggregation, key, coef, se, n_obs) and ``alpha``,
    shared by the imputation / did2s and Sun-Abraham results."""

    estimates: pd.DataFrame
    alpha: float

    def coef(self, aggregate: str, key=None) -> float:
        return float(self._row(aggregate, key)["coef"])

    def se(self, aggregate: str, key=None) -> float:
        return float(self._row(aggregate, key)["se"])

    def _row(self, aggregate, key):
        e = self.estimates
        sel = (e["aggregation"] == aggregate) & (e["key"].isna() if key is None else e["key"] == key)
        if not sel.any():
            raise KeyError(f"no estimate {aggregate!r} {key!r}")
        return e[sel].iloc[0]

    def tidy(self) -> pd.DataFrame:
        return normal_tidy(self.estimates, self.alpha)


def normal_tidy(estimates: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Add z statistics, two-sided normal p-values and 1 - alpha intervals (large-G inference)."""
    out = estimates.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["z"] = out["coef"] / out["se"]
    out["p"] = 2.0 * stats.norm.sf(np.abs(out["z"]))
    crit = stats.norm.ppf(1.0 - alpha / 2.0)
    out["ci_low"] = out["coef"] - crit * out["se"]
    out["ci_high"] = out["coef"] + crit * out["se"]
    return out


@dataclass
class ImputationResult(AggregatedEstimates):
    """Estimates of :func:`did_imputation` or :func:`did2s`.

    ``estimates``: one row per estimand - columns ``aggregation`` (simple / dynamic / group /
    calendar), ``key`` (event time, cohort or period; NaN for the aggregate's overall value),
    ``coef``, ``se``, ``n_obs`` (rows with a non-zero weight).  ``vcov``: their covariance (same
    order).  ``first_stage``: the covariate slopes of the untreated-only fit.
    """

    method: str  # "imputation" (BJS) | "did2s" (Gardner)
    estimates: pd.DataFrame
    vcov: np.ndarray
    first_stage: pd.Series
    nobs: int
    n_treated: int
    n_untreated: int
    n_units: int
    n_periods: int
    n_clusters: int
    cluster: str
    covariates: tuple[str, ...]
    n_not_imputable: int
    dropped: list[str] = field(default_factory=list)  # covariates collinear with the FE on Omega_0
    avg_effects_by: str | None = None
    leave_out: bool = False
    n_singleton_groups: int = 0
    alpha: float = 0.05

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "aggregates": aggregates_dict(self.estimates),
            "nobs": self.nobs, "n_treated": self.n_treated, "n_untreated": self.n_untreated,
            "n_units": self.n_units, "n_periods": self.n_periods, "n_clusters": self.n_clusters,
            "cluster": self.cluster, "covariates": list(self.covariates),
            "first_stage": {k: float(v) for k, v in self.first_stage.items()},
            "n_not_imputable": self.n_not_imputable, "dropped": list(self.dropped),
            "avg_effects_by": self.avg_effects_by, "leave_out": self.leave_out,
            "n_singleton_groups": self.n_singleton_groups,
        }


# ----------------------------------------------------------------- input checks

def check_staggered_columns(con, source: str, unit: str, time: str, cohort: str, nested_cluster: str | None = None):
    """Raise ValueError unless time and cohort are integer periods, the cohort is constant
    within a unit, (unit, time) is unique and - when given - ``nested_cluster`` is constant
    within a unit."""
    u, t, g = quote_ident(unit), quote_ident(time), quote_ident(cohort)
    for col in (time, cohort):
        c = quote_ident(col)
        (bad,) = con.execute(
            f"SELECT count(*) FROM {source} WHERE {c} IS NOT NULL AND (TRY_CAST({c} AS DOUBLE) IS NULL "
            f"OR TRY_CAST({c} AS DOUBLE) <> round(TRY_CAST({c} AS DOUBLE)))").fetchall()[0]
        if bad:
            raise ValueError(f"column {col!r} must hold integer periods (e.g. years); {bad} rows do not")
    (varying,) = con.execute(
        f"SELECT count(*) FROM (SELECT {u} FROM {source} WHERE {u} IS NOT NULL GROUP BY {u} "
        f"HAVING count(DISTINCT coalesce(nullif(CAST({g} AS DOUBLE), 0), 0)) > 1)").fetchall()[0]
    if varying:
        raise ValueError(f"cohort column {cohort!r} must be constant within each unit of {unit!r} "
                         f"(the unit's first treated period); it varies in {varying} unit(s)")
    (dups,) = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {u} IS NOT NULL AND {t} IS NOT NULL "
        f"GROUP BY {u}, {t} HAVING count(*) > 1)").fetchall()[0]
    if dups:
        raise ValueError(f"({unit!r}, {time!r}) must identify rows; {dups} pairs occur more than once")
    if nested_cluster is not None and nested_cluster != unit:
        c = quote_ident(nested_cluster)
        (split,) = con.execute(
            f"SELECT count(*) FROM (SELECT {u} FROM {source} WHERE {u} IS NOT NULL GROUP BY {u} "
            f"HAVING count(DISTINCT {c}) > 1)").fetchall()[0]
        if split:
            raise ValueError(f"cluster column {nested_cluster!r} must contain whole units: {split} unit(s) of "
                             f"{unit!r} lie in more than one cluster")


def check_did_names(outcome, unit, time, cohort, covariates, cluster) -> list[str]:
    """The covariates as a list; raise ValueError for empty or repeated column names."""
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    names = [outcome, unit, time, cohort, *covariates] + ([cluster] if cluster else [])
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise ValueError(f"column names must be non-empty strings, got {n!r}")
    if len({outcome, unit, time, cohort, *covariates}) != 4 + len(covariates):
        raise ValueError("outcome, unit, time, cohort and the covariates must be distinct columns")
    return covariates


# ----------------------------------------------------------------- the panel and stage 1

@dataclass
class _Panel:
    """The imputable sample with y~ (``__r``) and what every estimand's variance needs."""

    table: str  # __u, __tc, __time, __g, __e, __d, __cl, __y, __z*, __r
    z: list[str]
    n_units: int
    n_periods: int
    n_clusters: int
    nobs: int
    n_treated: int
    n_not_imputable: int
    S: np.ndarray  # Gram of the kept unit-demeaned [period dummies 2..T, z] on Omega_0
    keep: list[int]  # kept columns of [period dummies 2..T, z]
    delta: np.ndarray  # covariate slopes (0 for dropped)
    dropped: list[str]
    M: np.ndarray  # clusters x kept columns: sum_{it in c, Omega_0} theta_it e^_it
    cells: pd.DataFrame  # __g, __time, __e, __d, n (cohort x period cells of ever-treated units)
    units_per_cohort: dict


def _prepare(con, scope: TempScope, relation, outcome, unit, time, cohort, covariates, cluster) -> _Panel:
    source = resolve_relation(relation, scope)
    check_staggered_columns(con, source, unit, time, cohort, cluster)
    y, u, t, g, c = (quote_ident(v) for v in (outcome, unit, time, cohort, cluster))
    z = [f"__z{j}" for j in range(len(covariates))]
    zproj = "".join(f", CAST({quote_ident(v)} AS DOUBLE) AS {n}" for v, n in zip(covariates, z))
    num = ["__y", *z]
    complete = " AND ".join([f"{v} IS NOT NULL AND NOT isnan({v})" for v in num]
                            + ["__unit IS NOT NULL", "__time IS NOT NULL", "__cl_raw IS NOT NULL"])
    proj = (f"SELECT {u} AS __unit, CAST({t} AS BIGINT) AS __time, "
            f"CAST(nullif(CAST({g} AS DOUBLE), 0) AS BIGINT) AS __g, CAST({y} AS DOUBLE) AS __y{zproj}, "
            f"{c} AS __cl_raw FROM {source}")
    (n_inf,) = con.execute(
        f"SELECT count(*) FROM ({proj}) WHERE {complete} AND ({' OR '.join(f'isinf({v})' for v in num)})").fetchall()[0]
    if n_inf:
        raise ValueError(f"{n_inf} rows hold +/-inf in {outcome!r} or a covariate; recode them to NULL")
    base = scope.table("did_base")
    con.execute(
        f"""CREATE TEMP TABLE {base} AS
        WITH p AS (SELECT *, coalesce(__time >= __g, FALSE) AS __d FROM ({proj}) WHERE {complete}),
             uu AS (SELECT DISTINCT __unit FROM p WHERE NOT __d),
             tt AS (SELECT DISTINCT __time FROM p WHERE NOT __d),
             k AS (SELECT * FROM p WHERE __unit IN (SELECT __unit FROM uu) AND __time IN (SELECT __time FROM tt)),
             um AS (SELECT __unit, CAST(row_number() OVER (ORDER BY __unit) AS INTEGER) AS __u FROM uu),
             tm AS (SELECT __time, CAST(row_number() OVER (ORDER BY __time) AS INTEGER) AS __tc FROM tt),
             cm AS (SELECT v AS __cl_raw, CAST(row_number() OVER (ORDER BY v) AS INTEGER) AS __cl
                    FROM (SELECT DISTINCT __cl_raw AS v FROM k))
        SELECT um.__u, tm.__tc, k.__time, k.__g, k.__time - k.__g AS __e, k.__d, cm.__cl, k.__y
               {''.join(f', k.{v}' for v in z)}
        FROM k JOIN um USING (__unit) JOIN tm USING (__time) JOIN cm USING (__cl_raw)""")
    n_treated_all = con.execute(
        f"SELECT count(*) FROM ({proj}) WHERE {complete} AND coalesce(__time >= __g, FALSE)").fetchall()[0][0]
    nobs, n_treated, n_units, n_periods, n_clusters = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE __d), count(DISTINCT __u), count(DISTINCT __tc), "
        f"count(DISTINCT __cl) FROM {base}").fetchall()[0]
    if nobs == 0 or nobs == n_treated:
        raise ValueError("no untreated observations: the imputation needs never- or not-yet-treated rows")
    if n_periods < 2:
        raise ValueError(f"the untreated rows cover a single value of {time!r}; period effects need two or more")
    if n_treated == 0:
        raise ValueError(f"no imputable treated observation: check the cohort column {cohort!r}")
    if n_clusters < 2:
        raise ValueError("cluster-robust variances need at least two clusters")
    untreated = scope.table("did_u")
    con.execute(f"CREATE TEMP TABLE {untreated} AS SELECT __u, __tc, __cl, __y{''.join(', ' + v for v in z)} "
                f"FROM {base} WHERE NOT __d")
    fit = _stage_one(con, scope, untreated, z, int(n_units), int(n_periods), covariates)
    table = _residualise(con, scope, base, untreated, z, fit)
    M = _untreated_cluster_sums(con, table, z, int(n_periods), int(n_clusters), fit["keep"])
    cells = con.execute(f"SELECT __g, __time, __e, __d, count(*) AS n FROM {table} WHERE __g IS NOT NULL "
                        "GROUP BY ALL ORDER BY __g, __time").df()
    upc = dict(con.execute(f"SELECT __g, count(DISTINCT __u) FROM {table} WHERE __d GROUP BY __g").fetchall())
    return _Panel(table, z, int(n_units), int(n_periods), int(n_clusters), int(nobs), int(n_treated),
                  int(n_treated_all - n_treated), fit["S"], fit["keep"], fit["delta"], fit["dropped"], M,
                  cells, {int(k): int(v) for k, v in upc.items()})


def _stage_one(con, scope, untreated: str, z: list[str], n_units: int, n_periods: int, covariates) -> dict:
    """Two-way FE + covariates on Omega_0: the Gram S of [period dummies 2..T, z] after the unit
    FE, and gamma^, delta^ from S theta = Theta~'y~ (Cholesky on the non-collinear columns)."""
    cols = ["__y", *z]
    st = column_stats(con, untreated, cols)
    dm = demean(con, scope, untreated, cols, ["__u", "__tc"], ["__u", "__tc"], st, method="within_dummies",
                fe_levels=[n_units, n_periods], dummy_fe=1, lazy_dummies=True)
    if dm.pattern:
        gram = within_dummies_gram(con, dm.table, cols, dm.dummy_fe, dm.pattern, dm.dummy_levels, dm.groups)
    else:
        gram = cross_products(con, dm.table, ["__y", *dm.dummies, *z])
    xx, xy = gram[1:, 1:], gram[1:, 0]
    ref = list(dm.dummy_ref_ss) + list(st.raw_ss[1:])
    drop = find_collinear(xx, ref, 1e-10)
    nd = n_periods - 1
    if any(j < nd for j in drop):
        raise ValueError("the untreated observations do not identify every period effect (the units' "
                         "untreated periods do not connect all periods)")
    keep = [j for j in range(xx.shape[0]) if j not in drop]
    S = xx[np.ix_(keep, keep)]
    theta = np.zeros(xx.shape[0])
    theta[keep] = linalg.cho_solve(linalg.cho_factor(S), xy[keep])
    return {"S": (S + S.T) / 2.0, "keep": keep, "gamma": np.concatenate([[0.0], theta[:nd]]),
            "delta": theta[nd:], "dropped": [covariates[j - nd] for j in drop]}


def _zfit(z: list[str]) -> str:
    """z'delta as SQL with the slopes bound as parameters."""
    return "".join(f" + ? * {v}" for v in z)


def _residualise(con, scope, base: str, untreated: str, z: list[str], fit: dict) -> str:
    """Table of every imputable row with y~ = y - alpha^_i - gamma^_t - z'delta^ (``__r``)."""
    gam = scope.register(pd.DataFrame({"__tc": np.arange(1, len(fit["gamma"]) + 1, dtype=np.int32),
                                       "__gamma": fit["gamma"]}), "gamma")
    delta = [float(d) for d in fit["delta"]]
    alpha = scope.table("did_alpha")
    con.execute(f"CREATE TEMP TABLE {alpha} AS SELECT __u, avg(__y - (__gamma{_zfit(z)})) AS __alpha "
                f"FROM {untreated} JOIN {gam} USING (__tc) GROUP BY __u", delta)
    out = scope.table("did_r")
    con.execute(f"CREATE TEMP TABLE {out} AS SELECT b.*, b.__y - a.__alpha - (g.__gamma{_zfit(z)}) AS __r "
                f"FROM {base} b JOIN {alpha} a USING (__u) JOIN {gam} g USING (__tc)", delta)
    return out


def _untreated_cluster_sums(con, table: str, z: list[str], n_periods: int, n_clusters: int, keep) -> np.ndarray:
    """m_c = sum over the cluster's untreated rows of theta_it e^_it, theta = [dummies 2..T, z]."""
    aggs = "".join(f", sum({v} * __r)" for v in z)
    rows = con.execute(f"SELECT __cl, __tc, sum(__r){aggs} FROM {table} WHERE NOT __d GROUP BY ALL").fetchall()
    E = np.zeros((n_clusters, n_periods))
    ZE = np.zeros((n_clusters, len(z)))
    for r in rows:
        E[r[0] - 1, r[1] - 1] += float(r[2])
        ZE[r[0] - 1] += [float(v) for v in r[3:]]
    return np.hstack([E[:, 1:], ZE])[:, keep]


# ----------------------------------------------------------------- estimands

@dataclass
class _Estimands:
    labels: list[tuple[str, object]]  # (aggregate, key or None)
    weights: pd.DataFrame  # long: __j, __g, __time, __w (non-zero weights only)
    combos: list[tuple[tuple[str, object], dict[int, float]]]  # overall values as c'tau (did2s)


def _cell_weights(cells: pd.DataFrame, sel: np.ndarray) -> np.ndarray:
    """1/N over the rows of the selected cells (cell weights; zero elsewhere)."""
    n = float(cells.loc[sel, "n"].sum())
    return np.where(sel, 1.0 / n, 0.0) if n > 0 else np.zeros(len(cells))


def _build_estimands(panel: _Panel, horizons, leads: int, overall_as_estimands: bool) -> _Estimands:
    cells = panel.cells.reset_index(drop=True)
    treated = cells["__d"].to_numpy(bool)
    e = cells["__e"].to_numpy()
    labels: list[tuple[str, object]] = []
    cols: list[np.ndarray] = []
    combos: list = []

    def add(label, w):
        labels.append(label)
        cols.append(w)
        return len(labels) - 1

    add(("simple", None), _cell_weights(cells, treated))
    hs = sorted(int(h) for h in np.unique(e[treated]))
    if horizons is not None:
        wanted = range(int(horizons) + 1) if np.isscalar(horizons) else sorted({int(h) for h in horizons})
        hs = [h for h in wanted if h in set(hs)]
    fams = {"dynamic": [], "group": [], "calendar": []}
    for lead in range(int(leads), 0, -1):
        sel = (e == -lead) & ~treated
        if sel.any():
            add(("dynamic", -lead), _cell_weights(cells, sel))
    for h in hs:
        fams["dynamic"].append((add(("dynamic", h), _cell_weights(cells, treated & (e == h))), 1.0 / len(hs)))
    n_units = sum(panel.units_per_cohort.values())
    for gv in sorted(panel.units_per_cohort):
        j = add(("group", gv), _cell_weights(cells, treated & (cells["__g"].to_numpy() == gv)))
        fams["group"].append((j, panel.units_per_cohort[gv] / n_units))
    periods = sorted(int(v) for v in np.unique(cells.loc[treated, "__time"]))
    for tv in periods:
        j = add(("calendar", tv), _cell_weights(cells, treated & (cells["__time"].to_numpy() == tv)))
        fams["calendar"].append((j, 1.0 / len(periods)))
    for agg, members in fams.items():
        if not members:
            continue
        coefs = {j: c for j, c in members}
        if overall_as_estimands:
            add((agg, None), sum(c * cols[j] for j, c in members))
        else:
            combos.append(((agg, None), coefs))
    W = np.column_stack(cols)
    long = [(j, int(cells.at[i, "__g"]), int(cells.at[i, "__time"]), float(W[i, j]))
            for j in range(W.shape[1]) for i in np.flatnonzero(W[:, j])]
    weights = pd.DataFrame(long, columns=["__j", "__g", "__time", "__w"]).astype(
        {"__j": "int64", "__g": "int64", "__time": "int64", "__w": "float64"})
    return _Estimands(labels, weights, combos)


@dataclass
class _Projection:
    tau: np.ndarray  # J point estimates sum w y~
    n_obs: np.ndarray  # J rows with a non-zero weight
    psi_u: np.ndarray  # G x J: the untreated rows' part of the cluster scores
    sw: np.ndarray  # G x J: sum of w per cluster
    swr: np.ndarray  # G x J: sum of w y~ per cluster


def _project(con, panel: _Panel, wl: str, J: int) -> _Projection:
    """Point estimates, per-cluster sums and b_theta (hence the untreated scores) of J weights."""
    t, z, T, G = panel.table, panel.z, panel.n_periods, panel.n_clusters
    join = f"FROM {t} f JOIN {wl} l ON f.__g = l.__g AND f.__time = l.__time"
    zw = "".join(f", sum(l.__w * f.{v})" for v in z)
    # X'w by period (and z), the estimates, per-cluster sums
    r_theta = np.zeros((J, T + len(z)))
    for j, tc, sw, *rest in con.execute(f"SELECT l.__j, f.__tc, sum(l.__w){zw} {join} GROUP BY ALL").fetchall():
        r_theta[j, tc - 1] += float(sw)
        r_theta[j, T:] += [float(v) for v in rest]
    n_obs = np.zeros(J, dtype=np.int64)
    sw_c, swr_c = np.zeros((G, J)), np.zeros((G, J))
    for cl, j, sw, swr, n in con.execute(
            f"SELECT f.__cl, l.__j, sum(l.__w), sum(l.__w * f.__r), count(*) {join} GROUP BY ALL").fetchall():
        sw_c[cl - 1, j], swr_c[cl - 1, j] = float(sw), float(swr)
        n_obs[j] += n
    tau = swr_c.sum(axis=0)
    # sum over Omega_0 of theta_it r_alpha,i / n_i  (r_alpha,i = the unit's total weight)
    zr = "".join(f", sum(f.{v} * ra.__ra / nu.__n0)" for v in z)
    an = np.zeros((J, T + len(z)))
    rows = con.execute(
        f"""WITH ra AS (SELECT f.__u, l.__j, sum(l.__w) AS __ra {join} GROUP BY ALL),
                 nu AS (SELECT __u, count(*) AS __n0 FROM {t} WHERE NOT __d GROUP BY __u)
            SELECT ra.__j, f.__tc, sum(ra.__ra / nu.__n0){zr}
            FROM {t} f JOIN ra USING (__u) JOIN nu USING (__u) WHERE NOT f.__d GROUP BY ALL""").fetchall()
    for j, tc, s, *rest in rows:
        an[j, tc - 1] += float(s)
        an[j, T:] += [float(v) for v in rest]
    rhs = (r_theta - an)[:, 1:][:, panel.keep]  # drop period 1 (the reference level)
    b = linalg.cho_solve(linalg.cho_factor(panel.S), rhs.T)  # kept columns x J
    return _Projection(tau, n_obs, -panel.M @ b, sw_c, swr_c)


def _group_keys(avg_effects_by: str) -> tuple[str, str]:
    return {"cohort_period": ("f.__g", "f.__time"), "cohort": ("f.__g", "0"),
            "event_time": ("f.__e", "0"), "all": ("0", "0")}[avg_effects_by]


def _bjs_treated_scores(con, panel: _Panel, wl: str, J: int, avg_effects_by: str, leave_out: bool):
    """Per-cluster sum_{it in Omega_1} v_it (tau^_it - tau~_g(it)) with BJS eq. 8's tau~ (optionally
    leave-one-unit-out), and the number of averaging groups with a single unit."""
    k0, k1 = _group_keys(avg_effects_by)
    rows = con.execute(
        f"""WITH lw AS (SELECT f.__cl, f.__u, {k0} AS __k0, {k1} AS __k1, l.__j, l.__w, f.__r
                        FROM {panel.table} f JOIN {wl} l ON f.__g = l.__g AND f.__time = l.__time WHERE f.__d),
                 ab AS (SELECT __cl, __u, __k0, __k1, __j, sum(__w) AS __a, sum(__w * __r) AS __b
                        FROM lw GROUP BY ALL),
                 gg AS (SELECT __k0, __k1, __j, sum(__a * __a) AS __aa, sum(__a * __b) AS __ab,
                               count(*) FILTER (WHERE __a <> 0) AS __m FROM ab GROUP BY ALL),
                 c AS (SELECT ab.__cl, ab.__j,
                              CASE WHEN gg.__aa > 0 THEN (ab.__b - ab.__a * gg.__ab / gg.__aa)
                                   / (CASE WHEN ? AND gg.__m > 1 THEN 1 - ab.__a * ab.__a / gg.__aa ELSE 1 END)
                              ELSE 0 END AS __c
                       FROM ab JOIN gg USING (__k0, __k1, __j))
            SELECT __cl, __j, fsum(__c) FROM c GROUP BY ALL""", [bool(leave_out)]).fetchall()
    out = np.zeros((panel.n_clusters, J))
    for cl, j, v in rows:
        out[cl - 1, j] = float(v)
    k0s, k1s = k0.replace("f.", ""), k1.replace("f.", "")
    (singles,) = con.execute(
        f"SELECT count(*) FROM (SELECT {k0s}, {k1s} FROM {panel.table} WHERE __d GROUP BY ALL "
        "HAVING count(DISTINCT __u) = 1)").fetchall()[0]
    return out, int(singles)


def _with_combinations(est: _Estimands, tau: np.ndarray, V: np.ndarray, n_obs: np.ndarray):
    """Append the overall values c'tau (did2s) with covariances C V and C V C'."""
    labels = list(est.labels)
    if not est.combos:
        return labels, tau, V, n_obs
    C = np.zeros((len(est.combos), len(tau)))
    for r, (_, coefs) in enumerate(est.combos):
        for j, v in coefs.items():
            C[r, j] = v
    labels += [label for label, _ in est.combos]
    n_c = [int(sum(n_obs[j] for j in coefs)) for _, coefs in est.combos]
    VC = V @ C.T
    return labels, np.concatenate([tau, C @ tau]), np.block([[V, VC], [VC.T, C @ VC]]), np.concatenate([n_obs, n_c])


def _estimate(con, relation, outcome, unit, time, cohort, covariates, cluster, *, method: str, horizons,
              leads: int, avg_effects_by: str, leave_out: bool, alpha: float) -> ImputationResult:
    covariates = check_did_names(outcome, unit, time, cohort, covariates, cluster)
    cluster = cluster or unit
    if avg_effects_by not in AVG_EFFECTS_BY:
        raise ValueError(f"avg_effects_by must be one of {AVG_EFFECTS_BY}, not {avg_effects_by!r}")
    if int(leads) < 0:
        raise ValueError("leads must be >= 0")
    with temp_scope(con) as scope:
        panel = _prepare(con, scope, relation, outcome, unit, time, cohort, covariates, cluster)
        est = _build_estimands(panel, horizons, leads, overall_as_estimands=(method == "imputation"))
        J = len(est.labels)
        wl = scope.register(est.weights, "w")
        pr = _project(con, panel, wl, J)
        singles = 0
        if method == "imputation":
            psi_t, singles = _bjs_treated_scores(con, panel, wl, J, avg_effects_by, leave_out)
        else:
            psi_t = pr.swr - pr.sw * pr.tau[None, :]  # sum w (y~ - beta_j): the second-stage residual
    psi = psi_t + pr.psi_u
    labels, tau, V, n_obs = _with_combinations(est, pr.tau, psi.T @ psi, pr.n_obs)
    frame = pd.DataFrame({"aggregation": [lb[0] for lb in labels],
                          "key": pd.array([lb[1] for lb in labels], dtype="Int64"),
                          "coef": tau, "se": np.sqrt(np.maximum(np.diag(V), 0.0)),
                          "n_obs": np.asarray(n_obs, dtype=np.int64)})
    order = {"simple": 0, "dynamic": 1, "group": 2, "calendar": 3}
    frame["_o"] = frame["aggregation"].map(order)
    frame["_k"] = frame["key"].astype("Float64").fillna(np.inf)
    idx = frame.sort_values(["_o", "_k"], kind="stable").index.to_numpy()
    frame = frame.loc[idx].drop(columns=["_o", "_k"]).reset_index(drop=True)
    V = V[np.ix_(idx, idx)]
    first = pd.Series({cv: float(d) for cv, d in zip(covariates, panel.delta) if cv not in panel.dropped},
                      dtype=float, name="coef")
    return ImputationResult(
        method=method, estimates=frame, vcov=V, first_stage=first, nobs=panel.nobs, n_treated=panel.n_treated,
        n_untreated=panel.nobs - panel.n_treated, n_units=panel.n_units, n_periods=panel.n_periods,
        n_clusters=panel.n_clusters, cluster=cluster, covariates=tuple(covariates),
        n_not_imputable=panel.n_not_imputable, dropped=panel.dropped,
        avg_effects_by=avg_effects_by if method == "imputation" else None,
        leave_out=bool(leave_out) if method == "imputation" else False, n_singleton_groups=singles, alpha=alpha)


# ----------------------------------------------------------------- public API

def did_imputation(
    con: duckdb.DuckDBPyConnection,
    relation,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    *,
    horizons: int | Sequence[int] | None = None,
    avg_effects_by: str = "cohort_period",
    leave_out: bool = False,
    alpha: float = 0.05,
) -> ImputationResult:
    """Borusyak-Jaravel-Spiess (2024) imputation estimator with its conservative variance.

    tau^_it = Y_it - (alpha^_i + gamma^_t + z_it'delta^) on the treated rows, the FE and slopes
    fitted on the untreated rows only; aggregates tau^_w = sum w_it tau^_it: ``simple`` (the ATT,
    equal weights over treated rows), ``dynamic`` (event times 0..H; ``horizons`` = H or a list),
    ``group`` (cohorts), ``calendar`` (periods), each with an overall value (equal weights over
    event times / periods, cohort-size weights over cohorts).

    Variance: BJS Theorem 3, sigma^2_w = sum_c (sum_{it in c} v_it e~_it)^2 (clusters ``cluster``,
    default ``unit``, must contain whole units), e~ the stage-1 residual on untreated rows and
    tau^_it - tau~ on treated rows, tau~ by eq. 8 within ``avg_effects_by`` groups
    (``"cohort_period"`` default, ``"cohort"``, ``"event_time"``, ``"all"``); ``leave_out`` uses
    the leave-one-unit-out tau~ (BJS Appendix A.9).  No small-sample factor.  ``se`` are square
    roots of the diagonal of ``vcov`` (all estimands jointly).
    """
    return _estimate(con, relation, outcome, unit, time, cohort, covariates, cluster, method="imputation",
                     horizons=horizons, leads=0, avg_effects_by=avg_effects_by, leave_out=leave_out, alpha=alpha)


def did2s(
    con: duckdb.DuckDBPyConnection,
    relation,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    *,
    horizons: int | Sequence[int] | None = None,
    leads: int = 0,
    alpha: float = 0.05,
) -> ImputationResult:
    """Gardner (2021) two-stage DID with the GMM standard errors of Butts' ``did2s``.

    Stage 1: unit and period FE (and ``covariates``) on the untreated rows; stage 2: no-intercept
    OLS of y~ = y - FE^ - z'delta^ on exclusive treatment indicators - the static D (``simple``),
    event-time dummies (``dynamic``: ``leads`` pre-periods -leads..-1 of ever-treated units, then
    0..H), cohort x D (``group``), period x D (``calendar``).  Each coefficient is the mean of y~
    over its cells.  Variance: (X2'X2)^-1 sum_c W_c W_c' (X2'X2)^-1, W_c = X2_c'u2_c -
    X2'X1 (X10'X10)^-1 X10_c'u1_c (u1 = stage-1, u2 = stage-2 residuals, X10 = X1 on untreated
    rows), no small-sample factor, clusters containing whole units (default ``unit``).  The
    overall dynamic/group/calendar values are c'beta with c'Vc.
    """
    return _estimate(con, relation, outcome, unit, time, cohort, covariates, cluster, method="did2s",
                     horizons=horizons, leads=leads, avg_effects_by="cohort_period", leave_out=False, alpha=alpha)


@dataclass
class PretrendTest:
    """BJS Test 1: leads 1[K = -1..-L] on the untreated rows, Wald/F test that all are zero."""

    leads: list[int]
    wald: WaldTest
    model: FeolsResult

    def to_dict(self) -> dict:
        return {"method": "imputation_pretrend", "leads": self.leads,
                "coef": {int(k): float(self.model.coef[lead_term(k)]) for k in self.leads},
                "se": {int(k): float(self.model.se[lead_term(k)]) for k in self.leads},
                "f": self.wald.f, "df1": self.wald.df1, "df2": self.wald.df2, "p_f": self.wald.p_f,
                "wald": self.wald.wald, "p_chi2": self.wald.p_chi2, "nobs": self.model.nobs}


def lead_term(k: int) -> str:
    """Name of the lead indicator 1[K = k] (k < 0) in the pre-trend regression."""
    return f"pre::{k}"


def pretrend_test(
    con: duckdb.DuckDBPyConnection,
    relation,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    *,
    leads: int = 3,
    ssc: SSC | None = None,
    fixef_rm: str = "singleton",
) -> PretrendTest:
    """BJS (2024) Test 1: y_it = alpha_i + gamma_t + z'delta + sum_{k=1..L} g_k 1[K_it = -k] + e_it
    by OLS on the untreated rows only (never treated and not yet treated), CRV1 errors by
    ``cluster`` (default ``unit``; pyfixest's small-sample factor), F = Wald/L referred to
    F(L, G - 1) (``p_f``) and Wald to chi2(L) (``p_chi2``).  Leads with no observation are left out."""
    covariates = check_did_names(outcome, unit, time, cohort, covariates, cluster)
    cluster = cluster or unit
    if int(leads) < 1:
        raise ValueError("leads must be at least 1")
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        check_staggered_columns(con, source, unit, time, cohort)
        t, g = quote_ident(time), quote_ident(cohort)
        ev = f"(CAST({t} AS BIGINT) - CAST(nullif(CAST({g} AS DOUBLE), 0) AS BIGINT))"
        present = {int(k) for (k,) in con.execute(
            f"SELECT DISTINCT {ev} FROM {source} WHERE {ev} < 0 AND {ev} >= ?", [-int(leads)]).fetchall()}
        ks = [k for k in range(-1, -int(leads) - 1, -1) if k in present]
        if not ks:
            raise ValueError(f"no untreated observation of an ever-treated unit within {leads} periods of "
                             "its treatment: nothing to test")
        dummies = ", ".join(f"CAST(coalesce({ev} = {int(k)}, FALSE) AS DOUBLE) AS {quote_ident(lead_term(k))}"
                            for k in ks)
        view = scope.name("pretrend")
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT *, {dummies} FROM {source} "
                    f"WHERE coalesce({ev} < 0, TRUE)")
        try:
            model = feols(con, view, outcome, [lead_term(k) for k in ks] + covariates, [unit, time],
                          vcov={"CRV1": cluster}, ssc=ssc, fixef_rm=fixef_rm)
        finally:
            con.execute(f"DROP VIEW IF EXISTS {view}")
    kept = [k for k in ks if lead_term(k) in model.coef.index]
    if not kept:
        raise ValueError("every lead indicator is collinear with the fixed effects")
    return PretrendTest(kept, model.wald_test([lead_term(k) for k in kept]), model)
