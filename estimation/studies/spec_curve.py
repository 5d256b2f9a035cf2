"""A specification curve over the resilience index itself: how much does Table 3's column (4)
depend on the way the outcome ``res`` was built?

The index is rebuilt in SQL from the warehouse's long indicator values
(``intermediate.int_index_inputs``, index ``resilience``: 14 positive indicators) under every
combination of four choices, 3 x 2 x 2 x 2 = 24 specifications:

* weighting ``entropy`` (the warehouse's own dbt macros ``normalise_indicators`` and
  ``entropy_weights``, rendered by :mod:`warehouse.index_tools`), ``equal`` (w_j = 1/K) or ``pca`` (the squared
  loadings of the unit-length first principal component of the correlation matrix of the
  normalised indicators: non-negative, summing to one). The correlation matrix is computed in
  SQL over the city-years with all K indicators; only its K x K eigen-decomposition is numpy.
  A correlation that is undefined (a constant indicator) counts as 0 (1 on the diagonal);
* scope ``panel`` (one min-max normalisation, one set of weights over all city-years) or
  ``year`` (both per year) - for every weighting, so the 24 indices differ;
* interpolation ``on`` (the warehouse's values, interior gaps interpolated) or ``off``: an
  indicator value computed from any yearbook cell that was not reported (``is_imputed`` or
  ``is_extrapolated`` in ``int_city_year_values_long``; with the default ``extrapolation =
  none`` exactly the interpolated cells) is NULL, as the warehouse would have it without
  interpolation. The cells are those of :data:`INDICATOR_CELLS`, last year's GDP included for
  the growth rate, so a gap in a variable the index does not use removes nothing. A city-year
  with such a value gets no index; the indicator's remaining values still set its bounds and
  entropy (the macros' rule for any missing value);
* winsorising ``off`` or ``on``: each indicator clipped at its 1% and 99% quantiles over the
  whole panel (quantile_cont, the dbt macro ``winsorize``) before normalisation, in either scope.

Every index is a weighted sum of min-max normalised indicators with weights summing to one, so
every score lies in [0, 1] and the DID coefficients of the 24 specifications are on one scale.
Each index replaces ``res`` in ``main.analysis_panel`` for the baseline DID (Table 3 column 4:
controls, city and year FE, CRV1 by city). Specification (entropy, panel, on, off) is the
warehouse's own ``res``. A specification whose scores equal an earlier one's exactly (possible
only on data without a single interpolated cell, where interpolation on = off) is dropped and
listed in ``SpecCurve.dropped``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from estimation.engine.model import feols
from estimation.engine.sqlutil import temp_scope
from warehouse.index_tools import entropy_weights_sql, normalise_sql, winsorize_sql

from .common import CLUSTER, PANEL, simple_table
from .resilience import OUTCOME, WINSOR_P
from .resilience import specs as table3_specs

WEIGHTINGS = ("entropy", "equal", "pca")
SCOPES = ("panel", "year")
INTERPOLATION = ("on", "off")
WINSORISING = ("off", "on")
CHOICES = ("weighting", "scope", "interpolation", "winsorising")
BASELINE = ("entropy", "panel", "on", "off")  # the warehouse's res
INDEX = "resilience"
INPUTS = "intermediate.int_index_inputs"
VALUES_LONG = "intermediate.int_city_year_values_long"

# The yearbook and patent cells each indicator is computed from (int_resilience_indicators.sql;
# patents_granted is the variable itself). The usd_cny rate is a national series, not a cell.
INDICATOR_CELLS: dict[str, tuple[str, ...]] = {
    "gdp_per_capita": ("gdp", "pop_total"),
    "trade_dependency": ("trade_total", "gdp"),
    "unemp_insurance_coverage": ("unemp_insured", "pop_total"),
    "savings_per_capita": ("savings", "pop_total"),
    "urbanisation_rate": ("pop_urban", "pop_total"),
    "consumption_capacity": ("retail_sales", "gdp"),
    "gdp_growth": ("gdp",),
    "fiscal_self_sufficiency": ("fiscal_revenue", "fiscal_expenditure"),
    "financial_development": ("deposits", "loans", "gdp"),
    "hospital_beds_per_10k": ("hospital_beds", "pop_total"),
    "edu_sci_expenditure_share": ("edu_expenditure", "sci_expenditure", "gdp"),
    "industrial_advancement": ("va_tertiary", "va_secondary"),
    "human_capital": ("college_students", "pop_total"),
    "patents_granted": ("patents_granted",),
}
LAST_YEAR_CELLS = {"gdp_growth": ("gdp",)}  # GDP_t / GDP_(t-1) - 1 reads last year's cell too


def specifications() -> list[tuple[str, str, str, str]]:
    """The 24 (weighting, scope, interpolation, winsorising), the baseline first."""
    return list(product(WEIGHTINGS, SCOPES, INTERPOLATION, WINSORISING))


def inputs_sql(interpolation: str = "on", winsorising: str = "off") -> str:
    """The resilience indicators (rows shaped like int_index_inputs) under one interpolation and
    one winsorising choice."""
    if interpolation not in INTERPOLATION or winsorising not in WINSORISING:
        raise ValueError("interpolation and winsorising are 'on' or 'off'")
    cells = ", ".join(f"('{ind}', '{var}', {lag})" for lag, table in ((0, INDICATOR_CELLS), (1, LAST_YEAR_CELLS))
                      for ind, variables in table.items() for var in variables)
    value = "value"
    if interpolation == "off":
        value = "case when filled.indicator is null then value end"
    clipped = winsorize_sql('value', WINSOR_P, 'indicator')  # a missing value stays missing
    return f"""
        with cells(indicator, variable, lag) as (values {cells}),
        filled as (
            select distinct cells.indicator, v.city_code, v.year + cells.lag as year
            from {VALUES_LONG} as v inner join cells using (variable)
            where v.is_imputed or v.is_extrapolated),
        inputs as (
            select inputs.* replace ({value} as value)
            from {INPUTS} as inputs
            left join filled using (indicator, city_code, year)
            where inputs.index_name = '{INDEX}')
        select * replace ({clipped if winsorising == "on" else "value"} as value) from inputs"""


@dataclass
class SpecCurve:
    """One row per specification: the four choices, coef, se, ci_low, ci_high, pvalue, nobs and
    is_baseline; the scores (the choices, city_code, year, score) and weights (the choices,
    weight_year (NaN in panel scope), indicator, weight) of every index; the specifications
    dropped as identical to an earlier one."""

    table: pd.DataFrame
    scores: pd.DataFrame
    weights: pd.DataFrame
    dropped: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def baseline(self) -> pd.Series:
        return self.table[self.table["is_baseline"]].iloc[0]

    def summary_line(self) -> str:
        t, b = self.table, self.baseline
        n, hits = len(t), int(((t["coef"] > 0) & (t["pvalue"] < 0.05)).sum())
        return (f"{hits} of {n} specifications ({hits / n:.0%}) give a positive estimate significant at 5%; "
                f"estimates range from {t['coef'].min():.4g} to {t['coef'].max():.4g}; the study's own index "
                f"(entropy, panel scope, interpolated, not winsorised) gives {b['coef']:.4g} "
                f"(95% CI {b['ci_low']:.4g} to {b['ci_high']:.4g}, p = {b['pvalue']:.3g}).")

    def render(self, fmt: str = "markdown") -> str:
        """The specifications sorted by estimate, as Markdown or HTML."""
        head = ["Weighting", "Scope", "Interpolation", "Winsorising", "Coef.", "95% CI", "p", "N"]
        body = [[r.weighting, r.scope, r.interpolation, r.winsorising,
                 f"{r.coef:.5f}" + (" (study's index)" if r.is_baseline else ""),
                 f"[{r.ci_low:.5f}, {r.ci_high:.5f}]", f"{r.pvalue:.4f}", f"{r.nobs:,}"]
                for r in self.table.sort_values("coef", kind="stable").itertuples(index=False)]
        note = ("Table 3 column (4) (controls, city and year FE, CRV1 by city) with the index rebuilt each way. "
                "Weighting: entropy (the warehouse's macros), equal, or squared loadings of the first principal "
                "component; scope: normalisation and weights over the whole panel or per year; interpolation "
                "off: a city-year with any interpolated input has no index; winsorising: indicators clipped at "
                "1%/99% before normalisation. All indices lie in [0, 1], so the coefficients share one scale.")
        return simple_table(head, body, note, fmt)

    def plot(self, path) -> Path:
        """Sorted estimates with 95% CIs (baseline in red, zero line) above a panel marking each
        specification's choices."""
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        t = self.table.sort_values("coef", kind="stable").reset_index(drop=True)
        x = np.arange(len(t))
        rows = [(c, v) for c, values in zip(CHOICES, (WEIGHTINGS, SCOPES, INTERPOLATION, WINSORISING)) for v in values]
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, height_ratios=[3, 2])
        base = t["is_baseline"].to_numpy()
        top.axhline(0.0, color="0.4", lw=0.8)
        for mask, colour, label in ((~base, "#1f4e79", "specification"), (base, "#b22222", "study's own index")):
            top.errorbar(x[mask], t["coef"][mask], yerr=[t["coef"][mask] - t["ci_low"][mask],
                                                         t["ci_high"][mask] - t["coef"][mask]],
                         fmt="o", color=colour, ecolor=colour, capsize=2, ms=4, lw=1, label=label)
        top.set_ylabel("DID coefficient (95% CI)")
        top.set_title("Specification curve over the resilience index")
        top.legend(frameon=False, fontsize=8)
        for i, (choice, value) in enumerate(rows):
            used = (t[choice] == value).to_numpy()
            bottom.plot(x[used], np.full(used.sum(), i), "s", color="#1f4e79", ms=4)
            bottom.plot(x[used & base], [i] * int((used & base).sum()), "s", color="#b22222", ms=4)
        for edge in np.cumsum([len(v) for v in (WEIGHTINGS, SCOPES, INTERPOLATION)]) - 0.5:
            bottom.axhline(edge, color="0.8", lw=0.6)
        bottom.set_yticks(range(len(rows)), [f"{c}: {v}" for c, v in rows], fontsize=8)
        bottom.set_ylim(len(rows) - 0.5, -0.5)
        bottom.set_xlabel("specifications, sorted by estimate")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
        plt.close(fig)
        return path


def run_spec_curve(con: duckdb.DuckDBPyConnection) -> SpecCurve:
    """Rebuild the index 24 ways and run Table 3's column (4) on each (see the module docstring)."""
    scores, weights = build_indices(con)
    key = list(CHOICES)
    wide = scores.set_index([*key, "city_code", "year"])["score"].unstack(key)
    dropped = _identical_to_an_earlier(wide)
    formula = table3_specs()[3].formula
    rows = []
    with temp_scope(con) as tmp:
        # one column per specification in a DuckDB table: each model joins it on the city-year
        # instead of scanning (twice) the long pandas frame of all 24 indices
        column = {tuple(spec): f"score_{j}" for j, spec in enumerate(wide.columns)}
        frame = pd.DataFrame(wide.to_numpy(dtype=float), index=wide.index, columns=list(column.values()))
        registered = tmp.register(frame.reset_index(), "spec_scores")
        table = tmp.table("spec_scores")
        con.execute(f"create temp table {table} as select * from {registered}")
        for spec in specifications():
            if spec in dropped:
                continue
            relation = (f"select p.* replace (s.{column[spec]} as {OUTCOME}) from {PANEL} as p left join {table} as s "
                        f"on s.city_code = p.city_code and s.year = p.year")
            r = feols(con, relation, formula, vcov={"CRV1": CLUSTER})
            low, high = (float(v) for v in r.conf_int.loc["did"])
            rows.append({**dict(zip(CHOICES, spec)), "coef": float(r.coef["did"]), "se": float(r.se["did"]),
                         "ci_low": low, "ci_high": high, "pvalue": float(r.pvalue["did"]), "nobs": r.nobs,
                         "is_baseline": spec == BASELINE})
    return SpecCurve(pd.DataFrame(rows), scores, weights, dropped)


def _identical_to_an_earlier(wide: pd.DataFrame) -> list[tuple]:
    """Columns (specifications) whose every value equals an earlier column's, NaN equal to NaN
    (the same city-years without an index). One byte key per column: DataFrame.T.duplicated
    does the same but builds a 3,000-column frame to do it."""
    seen, dropped = set(), []
    values = wide.to_numpy(dtype=float)
    for j, spec in enumerate(wide.columns):
        column = values[:, j] + 0.0  # -0.0 becomes 0.0; NaN stays NaN
        key = np.nan_to_num(column, nan=np.inf).tobytes() + np.isnan(column).tobytes()
        if key in seen:
            dropped.append(tuple(spec))
        seen.add(key)
    return dropped


def build_indices(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, weights) of the 24 indices, as in :class:`SpecCurve`.

    Per interpolation and winsorising choice: one normalised table (both scopes, the macro
    ``normalise_indicators``), the weights of both scopes per weighting, and all six weighted
    sums in one query. int_index_inputs has a row for every indicator of every city-year
    (``unpivot include nulls``), so the entropy score is the weighted sum of the same rows
    that entropy_index scores."""
    scores, weights = [], []
    with temp_scope(con) as tmp:
        for interpolation, winsorising in product(INTERPOLATION, WINSORISING):
            inputs = tmp.table("inputs")
            con.execute(f"create temp table {inputs} as {inputs_sql(interpolation, winsorising)}")
            normalised = tmp.table("normalised")
            con.execute(f"create temp table {normalised} as {normalise_sql(inputs)}")
            w = pd.concat([_entropy_weights(con, normalised).assign(weighting="entropy"),
                           _equal_weights(con, normalised).assign(weighting="equal"),
                           _pca_weights(con, normalised).assign(weighting="pca")], ignore_index=True)
            w["weight_year"] = w["weight_year"].astype("float64")  # NaN in panel scope
            s = _weighted_sums(con, tmp, normalised, w)
            labels = {"interpolation": interpolation, "winsorising": winsorising}
            # the specifications in program order: scope, then weighting
            w = w.assign(**labels)
            w_groups = dict(list(w.groupby(["scope", "weighting"], sort=False)))
            s_groups = dict(list(s.assign(**labels).groupby(["scope", "weighting"], sort=False)))
            for scope in SCOPES:
                for weighting in WEIGHTINGS:
                    weights.append(w_groups[(scope, weighting)])
                    scores.append(s_groups[(scope, weighting)])
    order = list(CHOICES)
    return (pd.concat(scores, ignore_index=True)[[*order, "city_code", "year", "score"]],
            pd.concat(weights, ignore_index=True)[[*order, "weight_year", "indicator", "weight"]])


def _entropy_weights(con, normalised: str) -> pd.DataFrame:
    """The warehouse's entropy macro (through index_tools) on the normalised indicators."""
    return con.execute(f"""
        select scope, weight_year, indicator, weight from ({entropy_weights_sql(normalised)})
        order by scope, weight_year nulls first, indicator""").df()


def _equal_weights(con, normalised: str) -> pd.DataFrame:
    return con.execute(f"""
        select scope, weight_year, indicator, 1.0 / (select count(distinct indicator) from {normalised}) as weight
        from {normalised} group by all order by all""").df()


def _pca_weights(con, normalised: str) -> pd.DataFrame:
    """Squared loadings of PC1: the K x K correlation matrix (per scope and weight group) in SQL
    over the city-years with every indicator, its eigen-decomposition in numpy. One row per
    city-year (the indicators pivoted to columns) and one corr() per ordered pair, rather than
    a self-join of the long rows."""
    names = [r[0] for r in con.execute(f"select distinct indicator from {normalised} order by 1").fetchall()]
    col = {n: f"c{j}" for j, n in enumerate(names)}
    pairs = [(a, b) for a in names for b in names if a != b]
    corr = con.execute(f"""
        with wide as (
            pivot (select scope, weight_year, city_code, year, indicator, normalised from {normalised})
            on indicator in ({", ".join(f"'{n}' as {col[n]}" for n in names)})
            using first(normalised) group by scope, weight_year, city_code, year)
        select scope, weight_year, {", ".join(f"corr({col[a]}, {col[b]})" for a, b in pairs)}
        from wide where {" and ".join(f"{c} is not null" for c in col.values())}
        group by scope, weight_year order by scope, weight_year nulls first""").fetchall()
    rows = np.array([names.index(a) for a, _ in pairs])
    cols = np.array([names.index(b) for _, b in pairs])
    out = []
    for scope, year, *r in corr:
        m = np.eye(len(names))
        # an undefined correlation (a constant indicator) counts as 0
        m[rows, cols] = np.nan_to_num(np.array(r, dtype=float), nan=0.0)
        _, vectors = np.linalg.eigh(m)  # ascending eigenvalues: PC1 is the last column
        out.append(pd.DataFrame({"scope": scope, "weight_year": np.nan if year is None else float(year),
                                 "indicator": names, "weight": vectors[:, -1] ** 2}))
    return pd.concat(out, ignore_index=True)


def _weighted_sums(con, tmp, normalised: str, weights: pd.DataFrame) -> pd.DataFrame:
    """Σ_j w_j x'_j per weighting, scope and city-year, NULL when an indicator is missing (as
    int_index_scores)."""
    # weight_year -1 stands for the panel group: a NaN of pandas would not join as NULL
    w = tmp.register(weights.assign(weight_year=weights["weight_year"].fillna(-1).astype(int)), "weights")
    return con.execute(f"""
        select w.weighting, n.scope, n.city_code, n.year,
               case when count(n.normalised) = count(*) then sum(w.weight * n.normalised) end as score
        from {normalised} as n
        inner join {w} as w on w.scope = n.scope and w.indicator = n.indicator
            and w.weight_year = coalesce(n.weight_year, -1)
        group by w.weighting, n.scope, n.city_code, n.year order by 1, 2, 3, 4""").df()


SPEC_CURVE_DDL = """
create table if not exists main.spec_curve (
    run_id varchar not null, weighting varchar not null, scope varchar not null, interpolation varchar not null,
    winsorising varchar not null, coef double, se double, ci_low double, ci_high double, pvalue double,
    nobs bigint, is_baseline boolean, synthetic boolean, vintage varchar, created_at timestamp not null
)
"""


def persist_spec_curve(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                       curve: SpecCurve) -> int:
    """One row per specification into main.spec_curve."""
    con.execute(SPEC_CURVE_DDL)
    frame = curve.table.assign(run_id=run_id, synthetic=synthetic, vintage=vintage)
    con.register("__cr_spec_curve", frame)
    try:
        con.execute("insert into main.spec_curve by name select *, now() as created_at from __cr_spec_curve")
    finally:
        con.unregister("__cr_spec_curve")
    return len(frame)
