"""Event study: leads and lags of adoption in a two-way FE regression, in DuckDB.

    y_it = sum_{k != base} a_k 1[E_it = k] + X_it'b + mu_i + g_t + e_it

E_it = t - A_i is the event time of unit i (A_i its adoption period, read from
a 0/1 post indicator, see :mod:`.adoption`); never-treated units have all
event dummies 0.  With ``bin_endpoints`` the end points are binned: E <= -leads
counts as -leads and E >= lags as lags, so every treated observation has a
dummy.  Without binning, event times outside
[-leads, lags] get no dummy, i.e. they are pooled with the base period.

The dummies are SQL expressions on the relation and the regression is
:func:`estimation.feols`; the joint pre-trend test is the Wald/F test that
every lead (k < 0, k != base) is zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .adoption import adoption_sql, check_absorbing, cohort_sql
from .inference import WaldTest
from .model import feols
from .result import FeolsResult
from .sqlutil import quote_ident, resolve_relation, temp_scope


def event_term(k: int) -> str:
    """Coefficient name of event time k (pyfixest's ``i()`` naming)."""
    return f"event_time::{k}"


def study_label(k: int) -> str:
    """The NQP study's labels relative to adoption: pre_2, pre_1, current, post_1, ..."""
    if k < 0:
        return f"pre_{-k}"
    return "current" if k == 0 else f"post_{k}"


@dataclass
class EventStudyResult:
    model: FeolsResult
    leads: int
    lags: int
    base: int
    bin_endpoints: bool
    pretrend: WaldTest | None
    counts: dict[int, int] = field(default_factory=dict)  # treated obs per event time

    @property
    def event_times(self) -> list[int]:
        return list(range(-self.leads, self.lags + 1))

    def tidy(self, alpha: float | None = None) -> pd.DataFrame:
        """One row per event time, the base period included with coefficient 0.

        Columns: event_time, term, coef, se, t, p, ci_low, ci_high, n_treated_obs.
        Event times dropped as collinear have NaN estimates.
        """
        a = self.model.alpha if alpha is None else alpha
        tid = self.model.tidy(alpha=a).set_index("term")
        rows = []
        for k in self.event_times:
            term = event_term(k)
            if k == self.base:
                rows.append((k, term, 0.0, 0.0, np.nan, np.nan, 0.0, 0.0))
            elif term in tid.index:
                r = tid.loc[term]
                rows.append((k, term, r.coef, r.se, r.t, r.p, r.ci_low, r.ci_high))
            else:
                rows.append((k, term, *([np.nan] * 6)))
        out = pd.DataFrame(rows, columns=["event_time", "term", "coef", "se", "t", "p", "ci_low", "ci_high"])
        out["n_treated_obs"] = [self.counts.get(k, 0) for k in self.event_times]
        return out

    def table(self, fmt: str = "markdown", labels: str = "k", digits: int = 4) -> str:
        """Publication table of the event-time coefficients (base omitted).

        ``labels="k"`` gives rows ``k = -4`` ...; ``"study"`` the NQP study's
        pre_2 ... current ... post_6 names.
        """
        from .tables import regression_table

        terms = [event_term(k) for k in self.event_times if k != self.base]
        lab = {
            event_term(k): (study_label(k) if labels == "study" else f"k = {k}")
            for k in self.event_times
        }
        tab = regression_table([self.model], terms=terms, labels=lab, digits=digits,
                               fe_labels={f: f"{f} FE" for f in self.model.fixef})
        tab.note += f" Base period: k = {self.base}."
        if self.pretrend is not None:
            pt = self.pretrend
            tab.note += (f" Joint pre-trend test (all leads = 0): F({pt.df1}, {pt.df2}) = "
                         f"{pt.f:.3f}, p = {pt.p_f:.4f}.")
        return tab.render(fmt)

    def plot(self, path: str | Path, level: float = 0.95, title: str | None = None) -> Path:
        """Coefficients with ``level`` confidence intervals against event time, as PNG."""
        from .figures import event_study_figure

        frame = self.tidy(alpha=1.0 - level)
        return event_study_figure(frame, self.base, level, Path(path), title or
                                  f"Event study: {self.model.depvar} (base k = {self.base})")


def _observed_window(con, relation, unit: str, time: str, treatment: str | None, cohort: str | None):
    """(min, max) event time t - A_i over the treated units' observations."""
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        adopt = adoption_sql(source, unit, time, treatment) if treatment else cohort_sql(source, unit, cohort)
        lo, hi = con.execute(
            f"WITH a AS ({adopt}) SELECT min(s.{quote_ident(time)} - a.__adopt), max(s.{quote_ident(time)} - a.__adopt) "
            f"FROM {source} s JOIN a ON s.{quote_ident(unit)} = a.__unit WHERE a.__adopt IS NOT NULL"
        ).fetchone()
    if lo is None:
        raise ValueError("no treated unit: every adoption period is empty")
    return int(lo), int(hi)


def _event_columns(leads: int, lags: int, base: int, bin_endpoints: bool) -> list[tuple[int, str]]:
    """(k, SQL) for every dummy; ``__e`` is the event time, NULL if never treated."""
    lo, hi = -int(leads), int(lags)
    ev = f"greatest({lo}, least({hi}, __e))" if bin_endpoints else "__e"
    return [(k, f"CAST(coalesce({ev} = {k}, FALSE) AS DOUBLE)") for k in range(lo, hi + 1) if k != base]


def run_event_study(
    con: duckdb.DuckDBPyConnection,
    relation,
    outcome: str,
    leads: int | None = None,
    lags: int | None = None,
    base: int = -1,
    controls=(),
    bin_endpoints: bool = True,
    *,
    unit: str,
    time: str,
    treatment: str | None = None,
    cohort: str | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    alpha: float = 0.05,
    **feols_kw,
) -> EventStudyResult:
    """Estimate the event study and the joint pre-trend test.

    Adoption periods come either from ``treatment``, a 0/1 absorbing post indicator (first
    ``time`` with treatment = 1 per ``unit``), or from ``cohort``, a column holding each unit's
    adoption period (0 or NULL: never treated) - exactly one of the two.  Fixed effects:
    ``unit`` and ``time``; CRV1 errors clustered by ``cluster`` (default: ``unit``).
    ``leads``/``lags`` default to the longest pre/post window observed in the data; the base
    must lie in [-leads, lags].  (The resilience study uses leads=4, lags=7, base=-1; the
    NQP study leads=2, lags=6, base=0.)
    """
    if (treatment is None) == (cohort is None):
        raise ValueError("give exactly one of treatment (a 0/1 post indicator) and cohort (adoption period)")
    if leads is None or lags is None:
        lo, hi = _observed_window(con, relation, unit, time, treatment, cohort)
        leads = max(1, -lo) if leads is None else leads
        lags = max(0, hi) if lags is None else lags
    leads, lags, base = int(leads), int(lags), int(base)
    if leads < 1 or lags < 0 or not -leads <= base <= lags:
        raise ValueError("need leads >= 1, lags >= 0 and -leads <= base <= lags")
    controls = list(controls or [])
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        if treatment is not None:
            check_absorbing(con, source, unit, time, treatment)
            adopt = adoption_sql(source, unit, time, treatment)
        else:
            adopt = cohort_sql(source, unit, cohort)
        cols = _event_columns(leads, lags, base, bin_endpoints)
        u, t = quote_ident(unit), quote_ident(time)
        view = scope.name("es")
        dummies = ", ".join(f"{sql} AS {quote_ident(event_term(k))}" for k, sql in cols)
        # a view, so the event dummies are computed by the estimation's own scans
        con.execute(
            f"""
            CREATE TEMP VIEW {view} AS
            WITH a AS ({adopt}),
                 s AS (SELECT src.*, CAST(src.{t} - a.__adopt AS BIGINT) AS __e
                       FROM {source} src LEFT JOIN a ON src.{u} = a.__unit)
            SELECT *, {dummies} FROM s
            """
        )
        binned = f"greatest({-leads}, least({lags}, __e))" if bin_endpoints else "__e"
        try:
            counts = dict(
                con.execute(
                    f"SELECT CAST({binned} AS BIGINT), count(*) FROM {view} "
                    f"WHERE __e IS NOT NULL AND {quote_ident(outcome)} IS NOT NULL GROUP BY 1"
                ).fetchall()
            )
            model = feols(
                con,
                view,
                outcome,
                [event_term(k) for k, _ in cols] + controls,
                [unit, time],
                vcov={"CRV1": cluster or unit},
                weights=weights,
                alpha=alpha,
                **feols_kw,
            )
        finally:
            con.execute(f"DROP VIEW IF EXISTS {view}")
    leads_in = [event_term(k) for k in range(-leads, 0) if k != base and event_term(k) in model.coef.index]
    pretrend = model.wald_test(leads_in) if leads_in else None
    return EventStudyResult(model, leads, lags, base, bin_endpoints, pretrend,
                            {int(k): int(v) for k, v in counts.items()})
