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

import duckdb

from estimation.engine.model import feols

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
