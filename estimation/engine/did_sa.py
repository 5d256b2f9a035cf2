"""Sun & Abraham (2021) interaction-weighted event study, estimated with :func:`.model.feols`.

Model (the "saturated" event study): with cohorts e (each unit's first treated period E_i),
event time K_it = t - E_i and the control cohort C,

    y_it = alpha_i + gamma_t + sum_{e not in C} sum_{k != -1} b_{e,k} 1[E_i = e] 1[K_it = k] + z_it'delta + u_it,

the cohort x event-time indicators built in SQL (a view over the relation, one column per
observed (e, k) cell) and the two-way FE regression run by :func:`.model.feols` with CRV1 errors
clustered by ``cluster`` (default the unit; pyfixest's small-sample factor
G/(G-1) (N-1)/(N-K)).  The control cohort is the never-treated units when there are any (units
whose cohort is 0/NULL or lies after the last period), otherwise the last-treated cohort, and
then only the periods before that cohort's treatment are used (SA section 4).  Cohorts treated
at or before the first period (always treated) are dropped.

Interaction weights.  Every aggregate is theta = sum_{(e,k)} w_{e,k} b_{e,k} with w the share of
cell (e, k) in the observations of the cells it averages over (SA's Pr(E_i = e | E_i in the
cohorts observed at k) with observation counts, as pyfixest's ``aggregate`` and fixest's
``sunab``):

* ``dynamic``, event time k:   w_{e,k} = n_{e,k} / sum_e' n_{e',k}  (leads k <= -2 included);
* ``simple``:                  w_{e,k} = n_{e,k} / sum_{k >= 0} n   over all post cells;
* ``group``, cohort e:         n_{e,k} / sum_{k >= 0} n_{e,k};
* ``calendar``, period t:      the post cells with e + k = t, by n;
* overall values: the mean over k >= 0 of the dynamic rows, the cohort values weighted by the
  cohorts' unit counts, the mean over periods of the calendar rows.

Variance by the delta method with the weights held fixed: Var(theta) = w'V w, V the CRV1
covariance of the b_{e,k} - it ignores the sampling variance of the cohort shares (SA's
Proposition 6 adds it; pyfixest and fixest leave it out too).  Cells dropped as collinear are
left out and the weights renormalised over the estimated cells (listed in ``dropped``).

Cell counts n_{e,k} are taken over the complete rows (outcome, covariates, unit, time, cluster
non-NULL) of units with at least two such rows, i.e. after one round of singleton removal;
``feols`` removes singletons repeatedly, which can differ only in pathological panels.

Checked against pyfixest 0.60: ``pf.event_study(..., estimator="saturated")`` and its
``aggregate()`` (coefficients 1e-8, standard errors 1e-6), and ``pf.feols`` with the same cells
plus a covariate, on a balanced and an unbalanced panel and without never-treated units
(tests/test_did_sa_bjs_did2s.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from .did_imputation import (
    AggregatedEstimates,
    aggregates_dict,
    check_did_names,
    check_staggered_columns,
)
from .model import feols
from .result import FeolsResult
from .sample import complete_sql
from .sqlutil import quote_ident, resolve_relation, temp_scope
from .vcov import SSC

CONTROLS = ("auto", "never", "last")


def sa_term(cohort: int, event_time: int) -> str:
    """Coefficient name of the cohort x event-time indicator (pyfixest-like)."""
    return f"event_time::{int(event_time)}:cohort::{int(cohort)}"


@dataclass
class SunAbrahamResult(AggregatedEstimates):
    """Cohort x event-time coefficients (``cells``) and their interaction-weighted aggregates.

    ``cells``: cohort, event_time, term, coef, se, n_obs.  ``estimates``: aggregation (simple /
    dynamic / group / calendar), key (event time / cohort / period; NA for the overall value),
    coef, se, n_obs; ``vcov`` their covariance (w'Vw, weights fixed).  ``model`` is the
    underlying :class:`FeolsResult`.
    """

    model: FeolsResult
    cells: pd.DataFrame
    estimates: pd.DataFrame
    vcov: np.ndarray
    control: str  # "never_treated" | "last_treated"
    control_cohort: int | None
    cluster: str
    covariates: tuple[str, ...]
    n_always_treated: int  # rows of units treated at or before the first period, dropped
    dropped: list[str] = field(default_factory=list)
    alpha: float = 0.05
    method: str = "sun_abraham"

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "aggregates": aggregates_dict(self.estimates),
            "cells": [{"cohort": int(r.cohort), "event_time": int(r.event_time), "coef": float(r.coef),
                       "se": float(r.se), "n_obs": int(r.n_obs)} for r in self.cells.itertuples()],
            "control": self.control, "control_cohort": self.control_cohort, "cluster": self.cluster,
            "covariates": list(self.covariates), "nobs": self.model.nobs, "n_clusters": self.model.n_clusters,
            "n_always_treated": self.n_always_treated, "dropped": list(self.dropped),
            "variance": "delta method, cohort-share weights held fixed",
        }


@dataclass
class _Design:
    where: str  # rows of the estimation sample (SQL over the source)
    cohort_sql: str  # the cohort as BIGINT, NULL for the control units
    control: str
    control_cohort: int | None
    n_always_treated: int


def _design(con, source: str, unit, time, cohort, complete: str, control: str) -> _Design:
    """Control cohort and sample: never-treated units, else the last-treated cohort (periods before it)."""
    t, g = quote_ident(time), quote_ident(cohort)
    gv = f"CAST(nullif(CAST({g} AS DOUBLE), 0) AS BIGINT)"
    tv = f"CAST({t} AS BIGINT)"
    t_min, t_max = con.execute(f"SELECT min({tv}), max({tv}) FROM {source} WHERE {complete}").fetchall()[0]
    if t_min is None:
        raise ValueError("no complete rows: every row has a NULL in the outcome, a covariate, unit, time or cluster")
    t_min, t_max = int(t_min), int(t_max)
    cohorts = sorted(int(v) for (v,) in con.execute(
        f"SELECT DISTINCT {gv} FROM {source} WHERE {complete} AND {gv} > ? AND {gv} <= ?", [t_min, t_max]).fetchall())
    (n_never,) = con.execute(
        f"SELECT count(*) FROM {source} WHERE {complete} AND coalesce({gv} > ?, TRUE)", [t_max]).fetchall()[0]
    (n_always,) = con.execute(f"SELECT count(*) FROM {source} WHERE {complete} AND {gv} <= ?", [t_min]).fetchall()[0]
    if not cohorts:
        raise ValueError(f"no cohort of {cohort!r} is treated within the observed periods of {time!r}")
    if control == "never" and not n_never:
        raise ValueError("control='never' needs never-treated units (cohort 0/NULL or after the last period)")
    use_last = control == "last" or (control == "auto" and not n_never)
    base = f"{complete} AND NOT coalesce({gv} <= {t_min}, FALSE)"
    if not use_last:
        return _Design(base, f"CASE WHEN {gv} <= {t_max} THEN {gv} END", "never_treated", None, int(n_always))
    if len(cohorts) < 2:
        raise ValueError("without never-treated units Sun-Abraham needs at least two treated cohorts "
                         "(the last-treated one is the control)")
    last = cohorts[-1]
    return _Design(f"{base} AND {tv} < {last}", f"CASE WHEN {gv} < {last} THEN {gv} END", "last_treated", last,
                   int(n_always))


def _cell_counts(con, view: str, unit: str, drop_singletons: bool) -> pd.DataFrame:
    u = quote_ident(unit)
    keep = (f" AND {u} IN (SELECT {u} FROM {view} GROUP BY {u} HAVING count(*) > 1)" if drop_singletons else "")
    return con.execute(
        f"SELECT __sa_g AS cohort, __sa_e AS event_time, count(*) AS n_obs FROM {view} "
        f"WHERE __sa_g IS NOT NULL{keep} GROUP BY ALL ORDER BY 1, 2").df()


def _aggregations(cells: pd.DataFrame, units_per_cohort: dict) -> list[tuple[tuple[str, object], np.ndarray]]:
    """(label, weight vector over the estimated cells) of every aggregate."""
    n = cells["n_obs"].to_numpy(float)
    k = cells["event_time"].to_numpy()
    g = cells["cohort"].to_numpy()
    post = k >= 0
    if not post.any():
        raise ValueError("no post-treatment cohort x event-time cell was estimated")

    def share(sel):
        tot = n[sel].sum()
        return np.where(sel, n / tot, 0.0)

    out = [(("simple", None), share(post))]
    dyn = [(("dynamic", int(h)), share(k == h)) for h in sorted(set(k.tolist()))]
    out += dyn
    post_dyn = [w for (_, h), w in dyn if h >= 0]
    out.append((("dynamic", None), sum(post_dyn) / len(post_dyn)))
    grp = [(("group", int(c)), share(post & (g == c))) for c in sorted(set(g[post].tolist()))]
    out += grp
    tot_units = sum(units_per_cohort.get(c, 0) for (_, c), _ in grp)
    out.append((("group", None), sum(units_per_cohort.get(c, 0) / tot_units * w for (_, c), w in grp)))
    cal_t = g + k
    cal = [(("calendar", int(t)), share(post & (cal_t == t))) for t in sorted(set(cal_t[post].tolist()))]
    out += cal
    out.append((("calendar", None), sum(w for _, w in cal) / len(cal)))
    return out


def sun_abraham(
    con: duckdb.DuckDBPyConnection,
    relation,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    *,
    control: str = "auto",
    ssc: SSC | None = None,
    fixef_rm: str = "singleton",
    alpha: float = 0.05,
) -> SunAbrahamResult:
    """Sun-Abraham interaction-weighted event study (see the module docstring for the formulas).

    ``control``: ``"auto"`` (never-treated units if any, else the last-treated cohort),
    ``"never"`` or ``"last"`` (the last-treated cohort, periods before its treatment; never-treated
    units, if any, stay as controls too).  ``ssc``/``fixef_rm`` go to :func:`.model.feols`.
    """
    covariates = check_did_names(outcome, unit, time, cohort, covariates, cluster)
    cluster = cluster or unit
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, not {control!r}")
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        check_staggered_columns(con, source, unit, time, cohort)
        complete = complete_sql([outcome, *covariates, unit, time, cluster])
        des = _design(con, source, unit, time, cohort, complete, control)
        base = scope.name("sa_base")
        t = quote_ident(time)
        con.execute(f"CREATE TEMP VIEW {base} AS SELECT *, {des.cohort_sql} AS __sa_g, "
                    f"CAST({t} AS BIGINT) - ({des.cohort_sql}) AS __sa_e FROM {source} WHERE {des.where}")
        view = scope.name("sa")
        try:
            counts = _cell_counts(con, base, unit, fixef_rm == "singleton")
            counts = counts[counts["event_time"] != -1].reset_index(drop=True)
            if counts.empty:
                raise ValueError("no cohort x event-time cell besides the reference period -1")
            terms = [sa_term(c, e) for c, e in zip(counts["cohort"], counts["event_time"])]
            dummies = ", ".join(
                f"CAST(coalesce(__sa_g = {int(c)} AND __sa_e = {int(e)}, FALSE) AS DOUBLE) AS {quote_ident(nm)}"
                for c, e, nm in zip(counts["cohort"], counts["event_time"], terms))
            con.execute(f"CREATE TEMP VIEW {view} AS SELECT *, {dummies} FROM {base}")
            upc = dict(con.execute(f"SELECT __sa_g, count(DISTINCT {quote_ident(unit)}) FROM {base} "
                                   "WHERE __sa_g IS NOT NULL GROUP BY 1").fetchall())
            model = feols(con, view, outcome, terms + covariates, [unit, time], vcov={"CRV1": cluster},
                          ssc=ssc, fixef_rm=fixef_rm, alpha=alpha)
        finally:
            con.execute(f"DROP VIEW IF EXISTS {view}")
            con.execute(f"DROP VIEW IF EXISTS {base}")
    counts["term"] = terms
    est_mask = counts["term"].isin(model.coef.index).to_numpy()
    dropped = counts.loc[~est_mask, "term"].tolist()
    cells = counts[est_mask].reset_index(drop=True)
    cells["coef"] = model.coef[cells["term"]].to_numpy()
    cells["se"] = model.se[cells["term"]].to_numpy()
    cells = cells[["cohort", "event_time", "term", "coef", "se", "n_obs"]]
    aggs = _aggregations(cells, {int(k): int(v) for k, v in upc.items()})
    R = np.vstack([w for _, w in aggs])
    Vb = model.vcov_matrix.loc[cells["term"], cells["term"]].to_numpy()
    b = cells["coef"].to_numpy()
    V = R @ Vb @ R.T
    n = cells["n_obs"].to_numpy()
    estimates = pd.DataFrame({
        "aggregation": [lb[0] for lb, _ in aggs],
        "key": pd.array([lb[1] for lb, _ in aggs], dtype="Int64"),
        "coef": R @ b, "se": np.sqrt(np.maximum(np.diag(V), 0.0)),
        "n_obs": [int(n[w != 0].sum()) for _, w in aggs]})
    return SunAbrahamResult(model, cells, estimates, V, des.control, des.control_cohort, cluster,
                            tuple(covariates), des.n_always_treated, dropped, alpha)
