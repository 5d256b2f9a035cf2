"""The NQP -> resilience study: does new quality productivity raise urban economic resilience?

Outcome: the Martin-Sunley sensitivity index ``sensitivity`` (its eq. 1); regressor: the
hierarchical NQP index ``nqp_h`` (its Table 1); city and year fixed effects, CRV1 by city.
Controls, as far as the warehouse holds them: ln GDP per capita (GDP), science and technology
spending / fiscal spending (FTE), ln FDI (OPEN, ``inv`` = ln(1 + FDI)), deposits and loans / GDP
(FEF). The study's fifth control, library books per 10,000 people (BOOK), is not a yearbook
variable the warehouse loads, so every model here leaves it out (docs/methods.md says so).

Table 4 (:func:`run_table4_iv`): 2SLS with the one-year lag of NQP as the instrument for NQP,
with the Kleibergen-Paap statistics. The lag is taken only across consecutive years of the
same city, so the first panel year and any year after a gap have no instrument.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

from estimation.engine.model import feols
from estimation.engine.result import FeolsResult

from .common import PANEL, TIME, UNIT, IVEstimates

OUTCOME = "sensitivity"
NQP = "nqp_h"
CONTROLS = ("ln_gdp_per_capita", "sci_expenditure_share", "inv", "deposits_loans_to_gdp")
INSTRUMENT = "nqp_h_lag1"


def iv_relation(panel: str = PANEL) -> str:
    """The panel with the previous year's NQP of the same city (NULL after a gap)."""
    return (f"select *, case when lag({TIME}) over w = {TIME} - 1 then lag({NQP}) over w end as {INSTRUMENT} "
            f"from {panel} window w as (partition by {UNIT} order by {TIME})")


def iv_formula() -> str:
    return f"{OUTCOME} ~ {' + '.join(CONTROLS)} | {UNIT} + {TIME} | {NQP} ~ {INSTRUMENT}"


def run_table4_iv(con: duckdb.DuckDBPyConnection, relation=None) -> IVEstimates:
    """Table 4: the first stage (NQP on its lag) and 2SLS, controls, city and year FE, CRV1 by city."""
    relation = relation or iv_relation()
    first = feols(con, relation, f"{NQP} ~ {INSTRUMENT} + {' + '.join(CONTROLS)} | {UNIT} + {TIME}",
                  vcov={"CRV1": UNIT})
    second = feols(con, relation, iv_formula(), vcov={"CRV1": UNIT})
    return IVEstimates(first, second)


# ------------------------------------------------------------ Table 3: controls added one group at a time

@dataclass
class Columns:
    """Models side by side (one study table), each with its id and column label."""

    model_ids: list[str]
    labels: list[str]
    formulas: list[str]
    results: list[FeolsResult]
    note: str = ""

    def render(self, fmt: str = "markdown", terms: list[str] | None = None) -> str:
        from estimation.engine.tables import regression_table

        from .common import FE_LABELS, TERM_LABELS

        labels = {**TERM_LABELS, **{c: TERM_LABELS_SHORT[c] for c in CONTROLS}}
        tab = regression_table(self.results, terms=terms or [NQP, *CONTROLS], labels=labels, controls=False,
                               fe_labels=FE_LABELS, stats=("nobs", "r2"),
                               model_names=[f"({i}) {lab}" for i, lab in enumerate(self.labels, start=1)])
        if self.note:
            tab.note += " " + self.note
        return tab.render(fmt)


def _fit(con, relation: str, outcome: str, regressors: list[str]) -> tuple[str, FeolsResult]:
    formula = f"{outcome} ~ {' + '.join(regressors)} | {UNIT} + {TIME}"
    return formula, feols(con, relation, formula, vcov={"CRV1": UNIT})


def _columns(con, specs: list[tuple[str, str, str, str, list[str]]], note: str = "") -> Columns:
    """specs: (model id, label, relation, outcome, regressors)."""
    fits = [_fit(con, relation, outcome, regressors) for _, _, relation, outcome, regressors in specs]
    return Columns([s[0] for s in specs], [s[1] for s in specs], [f for f, _ in fits], [r for _, r in fits], note)


def run_table3(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> Columns:
    """ER on NQP with city and year FE, the controls added one at a time (the study's order)."""
    specs = [(f"nqp_resilience.table3.col{i + 1}", f"+ {TERM_LABELS_SHORT[c]}" if i else "FE only", panel,
              OUTCOME, [NQP, *CONTROLS[:i]]) for i, c in enumerate((None, *CONTROLS))]
    return _columns(con, specs, "The study's BOOK (library books per 10,000 people) is not in the warehouse: "
                                "five columns instead of six.")


TERM_LABELS_SHORT = {"ln_gdp_per_capita": "GDP", "sci_expenditure_share": "FTE", "inv": "OPEN",
                     "deposits_loans_to_gdp": "FEF"}


# ------------------------------------------------------------ Table 5: robustness

MUNICIPALITIES = ("110000", "120000", "310000", "500000")


def run_table5(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> Columns:
    """To 2019; without the four municipalities; winsorised 1%. The study's column (3), the
    unemployment rate as outcome, needs registered unemployment, which the yearbook files the
    warehouse loads do not carry; it is left out and the note says so."""
    from .common import winsorised

    regressors = [NQP, *CONTROLS]
    specs = [
        ("nqp_resilience.table5.to_2019", "Up to 2019", f"select * from {panel} where {TIME} <= 2019", OUTCOME,
         regressors),
        ("nqp_resilience.table5.excl_municipalities", "Excl. municipalities",
         f"select * from {panel} where {UNIT} not in ({', '.join(repr(c) for c in MUNICIPALITIES)})", OUTCOME,
         regressors),
        ("nqp_resilience.table5.winsorised", "Winsorised 1%", winsorised(panel, (OUTCOME, NQP, *CONTROLS)), OUTCOME,
         regressors),
    ]
    return _columns(con, specs, "The study's column (3) (unemployment rate as the outcome) needs registered "
                                "unemployment, which the warehouse does not load.")


# ------------------------------------------------------------ Table 7: mechanisms

def mechanism_relation(panel: str = PANEL) -> str:
    """The panel with the study's three mechanism variables: DI = ln(1 + digital-economy patent
    applications); IA = location quotient of IT and research employment (the city's share of
    urban-unit employment over the national share that year; the yearbook files carry no other
    industry employment, so this stands in for the study's industrial location entropy); HUM =
    ln(college students per 10,000 people)."""
    return f"""
        select p.*, p.log_digital_patent_applications as di,
               (v.emp_it + v.emp_research) / v.emp_total
                 / (sum(v.emp_it + v.emp_research) over (partition by p.{TIME}) / sum(v.emp_total) over (partition by p.{TIME}))
                 as ia,
               ln(v.human_capital / 10) as hum
        from {panel} as p join {INPUTS} as v using ({UNIT}, {TIME})"""


INPUTS = "intermediate.int_city_year_panel"
MECHANISMS = {"di": "DI: digital technology", "ia": "IA: IT-employment agglomeration", "hum": "HUM: human capital"}


def run_table7(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> Columns:
    relation = mechanism_relation(panel)
    specs = [(f"nqp_resilience.table7.{m}", label, relation, m, [NQP, *CONTROLS]) for m, label in MECHANISMS.items()]
    return _columns(con, specs, "Each column: the mechanism variable on NQP and the controls (the study's eq. 3).")


MEDIATION_DRAWS = 999
MEDIATION_SEED = 20240607


def run_table7_mediation(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> dict[str, object]:
    """Beyond the study's eq. (3): for each mechanism M, a (M on NQP), b (ER on M given NQP), the
    indirect effect a*b with Sobel and a 999-draw cluster bootstrap by city, and the share
    mediated — the study tests only the first step."""
    from estimation.engine.mediation import mediation
    from estimation.engine.sqlutil import temp_scope

    with temp_scope(con) as scope:
        table = scope.table("mechanisms")
        con.execute(f"create temp table {table} as {mechanism_relation(panel)}")
        return {m: mediation(con, table, OUTCOME, NQP, m, controls=CONTROLS, fe=(UNIT, TIME), cluster=UNIT,
                             draws=MEDIATION_DRAWS, seed=MEDIATION_SEED) for m in MECHANISMS}


@dataclass
class NQPResilienceTables:
    """The NQP -> resilience study's Tables 3, 5 and 7, with the mediation beyond its eq. (3)."""

    table3: Columns
    table5: Columns
    table7: Columns
    mediation: dict[str, object]
    table6: object = None  # splits.SplitTable


def run_tables(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> NQPResilienceTables:
    return NQPResilienceTables(run_table3(con, panel), run_table5(con, panel), run_table7(con, panel),
                               run_table7_mediation(con, panel), run_table6(con, panel))


def persist_tables(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                   tables: NQPResilienceTables) -> int:
    from estimation.engine.persist import persist_results

    from .common import persist_mediation

    n = 0
    for cols in (tables.table3, tables.table5, tables.table7):
        n += persist_results(con, run_id, vintage, synthetic, list(zip(cols.model_ids, cols.formulas, cols.results)))
    for m, med in tables.mediation.items():
        n += persist_mediation(con, run_id, vintage, synthetic, f"nqp_resilience.table7.{m}.mediation", med)
    if tables.table6 is not None:
        from .splits import persist_split_table

        n += persist_split_table(con, run_id, vintage, synthetic, tables.table6)
    return n


# ------------------------------------------------------------ Table 6: split samples

TABLE6_SEED = 20240608


def split_relation(panel: str = PANEL) -> str:
    """The panel with ``st_spending``: 'high' when the city's mean S&T share of the budget over
    the panel years is above the median of the cities' means, else 'low' (time-invariant, so that
    the labels can be permuted across cities)."""
    return f"""
        with city as (select {UNIT}, avg(sci_expenditure_share) as st_mean from {panel} group by {UNIT}),
        cut as (select median(st_mean) as st_median from city)
        select p.*, case when c.st_mean > cut.st_median then 'high' else 'low' end as st_spending
        from {panel} as p join city as c using ({UNIT}) cross join cut"""


def run_table6(con: duckdb.DuckDBPyConnection, panel: str = PANEL):
    """S&T spending low vs high (at the median), west vs east of the Hu line, non-resource-based vs
    resource-based, as the study's six columns, with the differences tested."""
    from estimation.engine.sqlutil import temp_scope

    from .splits import SplitSpec, run_split_table

    specs = [SplitSpec("st_spending", "st_spending", ("low", "high"), ("Low S&T", "High S&T")),
             SplitSpec("hu_line", "hu_line_side", ("west", "east"), ("Western", "Eastern")),
             SplitSpec("resource", "is_resource_based", (False, True), ("Non-resource-based", "Resource-based"))]
    formula = f"{OUTCOME} ~ {' + '.join((NQP, *CONTROLS))} | {UNIT} + {TIME}"
    with temp_scope(con) as scope:
        table = scope.table("splits")
        con.execute(f"create temp table {table} as {split_relation(panel)}")
        return run_split_table(con, table, "nqp_resilience.table6", formula, NQP, specs, TABLE6_SEED)
