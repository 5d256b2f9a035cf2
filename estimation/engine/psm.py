"""Propensity-score matching for PSM-DID, as the studies do it: matching year by year.

For each period t, on the cross-section of that period:

1. a logit of the (time-invariant) treatment-group indicator on the covariates (statsmodels, by
   maximum likelihood) gives each unit's propensity score p;
2. common support: treated units whose p lies outside [min, max] of the controls' p are
   dropped (psmatch2's ``common``);
3. matching (a join of treated and control rows in DuckDB):

   * ``nearest``: each treated unit on support takes the control with the closest p, with
     replacement, if |p_t - p_c| <= ``caliper``; the matched sample is the treated units with a
     match and every control used at least once (psmatch2's ``_weight != .``), each row once;
   * ``kernel``: each treated unit on support gets every control with |p_t - p_c| < h, weighted
     by the Epanechnikov kernel K(u) = 3/4 (1 - u^2), u = (p_c - p_t)/h, normalised to sum to
     one per treated unit; a control's weight is the sum over the treated units, a treated
     unit's weight is 1 (psmatch2 ``kernel`` with its default bandwidth h = 0.06).

The DID is then the baseline regression on the matched rows (kernel: weighted by the matching
weights). :func:`balance` reports, per covariate, the means of treated and controls before and
after matching, the standardised bias 100 (m_t - m_c) / sqrt((v_t + v_c) / 2) with the
variances of the unmatched sample (as ``pstest``), its reduction, and the p-value of the t-test
of equal means after matching (weighted least squares of the covariate on the treatment).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from .sqlutil import quote_ident, resolve_relation, temp_scope

KERNEL_BANDWIDTH = 0.06  # psmatch2's default
CALIPER = 0.05


@dataclass
class Matching:
    method: str  # nearest | kernel
    rows: pd.DataFrame  # unit, time, treated, pscore, weight (matched rows only, weight > 0)
    scores: pd.DataFrame  # unit, time, treated, pscore, on_support: every row of the sample
    covariates: tuple[str, ...]
    caliper: float | None
    bandwidth: float | None

    @property
    def n_treated(self) -> int:
        return int(self.rows["treated"].sum())

    @property
    def n_controls(self) -> int:
        return int((~self.rows["treated"].astype(bool)).sum())


def _frame(con, relation, unit, time, treat, covariates) -> pd.DataFrame:
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        cols = [unit, time, treat, *covariates]
        complete = " and ".join(f"{quote_ident(c)} is not null" for c in cols)
        sel = ", ".join(quote_ident(c) for c in cols)
        return con.execute(f"select {sel} from {source} where {complete} order by 1, 2").df()


def propensity_scores(con: duckdb.DuckDBPyConnection, relation, unit: str, time: str, treat: str,
                      covariates: Sequence[str]) -> pd.DataFrame:
    """Per-period logit propensity scores: unit, time, treated, pscore (statsmodels Logit)."""
    # the modules themselves, not statsmodels.api (which also loads datasets, graphics, tsa: ~0.7 s)
    from statsmodels.discrete.discrete_model import Logit
    from statsmodels.tools.tools import add_constant

    df = _frame(con, relation, unit, time, treat, covariates)
    out = []
    for t, g in df.groupby(time, sort=True):
        y = g[treat].astype(float).to_numpy()
        if y.min() == y.max():
            continue  # a period without both groups cannot be matched
        x = add_constant(g[list(covariates)].astype(float).to_numpy(), has_constant="add")
        fit = Logit(y, x).fit(disp=0, maxiter=200)
        out.append(pd.DataFrame({"unit": g[unit].to_numpy(), "time": t, "treated": y.astype(bool),
                                 "pscore": fit.predict(x)}))
    if not out:
        raise ValueError("no period has both treated and control units to match")
    return pd.concat(out, ignore_index=True)


def match(con: duckdb.DuckDBPyConnection, relation, unit: str, time: str, treat: str, covariates: Sequence[str],
          method: str = "nearest", caliper: float | None = CALIPER,
          bandwidth: float = KERNEL_BANDWIDTH) -> Matching:
    """Match year by year (see the module docstring); the matched rows with their weights.

    The neighbour search is a join of each period's treated and control rows in DuckDB: the
    nearest control by |p_t - p_c| (ties to the smaller unit code), or every control within the
    kernel's bandwidth with its Epanechnikov weight.
    """
    if method not in ("nearest", "kernel"):
        raise ValueError("method must be 'nearest' or 'kernel'")
    scores = propensity_scores(con, relation, unit, time, treat, covariates)
    limit = caliper if (method == "nearest" and caliper is not None) else (bandwidth if method == "kernel" else None)
    with temp_scope(con) as scope:
        ps = scope.register(scores, "pscores")
        support = f"""
            with bounds as (select time, min(pscore) as lo, max(pscore) as hi from {ps} where not treated group by time)
            select s.*, s.treated = false or s.pscore between b.lo and b.hi as on_support
            from {ps} as s join bounds as b using (time)"""
        scored = con.execute(support).df()
        sup = scope.register(scored, "support")
        pairs = f"""
            select t.unit as t_unit, c.unit as c_unit, t.time, abs(t.pscore - c.pscore) as distance
            from {sup} as t join {sup} as c on t.time = c.time and t.treated and not c.treated
            where t.on_support"""
        if method == "nearest":
            within = "" if limit is None else f"where distance <= {float(limit)!r}"
            matches = con.execute(f"""
                with nearest as (
                    select t_unit, time, arg_min(c_unit, (distance, c_unit)) as c_unit,
                           min(distance) as distance
                    from ({pairs}) group by t_unit, time)
                select t_unit as unit, time, true as treated, 1.0 as weight from nearest {within}
                union all
                select distinct c_unit as unit, time, false as treated, 1.0 as weight from nearest {within}
            """).df()
        else:
            matches = con.execute(f"""
                with kernel as (
                    select t_unit, c_unit, time, 0.75 * (1 - (distance / {float(bandwidth)!r}) ** 2) as k
                    from ({pairs}) where distance < {float(bandwidth)!r}),
                normalised as (select *, k / sum(k) over (partition by t_unit, time) as w from kernel)
                select t_unit as unit, time, true as treated, 1.0 as weight from normalised group by t_unit, time
                union all
                select c_unit as unit, time, false as treated, sum(w) as weight from normalised group by c_unit, time
            """).df()
    rows = matches.merge(scored[["unit", "time", "pscore"]], on=["unit", "time"])
    rows = rows[["unit", "time", "treated", "pscore", "weight"]].sort_values(["time", "unit"]).reset_index(drop=True)
    scores = scored.sort_values(["time", "unit"]).reset_index(drop=True)
    return Matching(method, rows, scores, tuple(covariates), caliper if method == "nearest" else None,
                    bandwidth if method == "kernel" else None)


def matched_relation(con: duckdb.DuckDBPyConnection, scope, relation, unit: str, time: str,
                     matching: Matching, weight_column: str = "match_weight") -> str:
    """The relation restricted to the matched rows, with their weights as ``weight_column``."""
    source = resolve_relation(relation, scope)
    weights = scope.register(matching.rows[["unit", "time", "weight"]], "psm")
    return (f"(select s.*, w.weight as {weight_column} from {source} as s join {weights} as w "
            f"on s.{quote_ident(unit)} = w.unit and s.{quote_ident(time)} = w.time)")


def balance(con: duckdb.DuckDBPyConnection, relation, unit: str, time: str, treat: str,
            matching: Matching) -> pd.DataFrame:
    """Covariate balance before and after matching (see the module docstring)."""
    from statsmodels.regression.linear_model import WLS
    from statsmodels.tools.tools import add_constant

    df = _frame(con, relation, unit, time, treat, matching.covariates)
    df = df.rename(columns={unit: "unit", time: "time"})
    after = df.merge(matching.rows[["unit", "time", "weight"]], on=["unit", "time"])
    records = []
    for c in matching.covariates:
        t_all, c_all = df.loc[df[treat] == 1, c].astype(float), df.loc[df[treat] == 0, c].astype(float)
        scale = np.sqrt((t_all.var(ddof=1) + c_all.var(ddof=1)) / 2)
        t_m, c_m = after[after[treat] == 1], after[after[treat] == 0]
        mean_t = np.average(t_m[c], weights=t_m["weight"])
        mean_c = np.average(c_m[c], weights=c_m["weight"])
        bias_before = 100 * (t_all.mean() - c_all.mean()) / scale
        bias_after = 100 * (mean_t - mean_c) / scale
        fit = WLS(after[c].astype(float), add_constant(after[treat].astype(float)), weights=after["weight"]).fit()
        records.append({"variable": c, "mean_treated_before": t_all.mean(), "mean_control_before": c_all.mean(),
                        "bias_before": bias_before, "mean_treated_after": mean_t, "mean_control_after": mean_c,
                        "bias_after": bias_after,
                        "reduction": 100 * (1 - abs(bias_after) / abs(bias_before)) if bias_before else np.nan,
                        "p_after": float(fit.pvalues.iloc[1])})
    return pd.DataFrame.from_records(records)
