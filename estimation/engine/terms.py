"""Turn formula terms into design columns: SQL expressions plus bound parameters.

A plain column becomes ``CAST(col AS DOUBLE)``.  ``i(var, by, ref=...)`` becomes
one column per level of ``var`` (read from the data, sorted, references left
out): ``CAST(var = ? AS DOUBLE) [* CAST(by AS DOUBLE)]`` with the level bound as
a parameter, so data values never become SQL text.  Rows where ``var`` (or
``by``) is NULL are deleted listwise, as pyfixest drops missing factor values.
Levels are read from the complete rows of the source; a level whose dummy is
all zero after singleton removal is then dropped as collinear, as in pyfixest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from .formula import IFactor
from .sqlutil import quote_ident


@dataclass(frozen=True)
class DesignColumn:
    name: str  # coefficient name
    sql: str  # expression over the source relation
    params: tuple = ()  # values bound to the ``?`` in ``sql``
    required: tuple[str, ...] = field(default=())  # source columns that must be non-NULL


def plain_column(name: str) -> DesignColumn:
    return DesignColumn(name, f"CAST({quote_ident(name)} AS DOUBLE)", (), (name,))


def _level_label(level) -> str:
    return str(level)


def factor_levels(
    con: duckdb.DuckDBPyConnection, source: str, term: IFactor, complete: str
) -> list:
    """Sorted distinct non-NULL levels of ``term.var`` among complete rows."""
    v = quote_ident(term.var)
    rows = con.execute(
        f"SELECT DISTINCT {v} FROM {source} WHERE {v} IS NOT NULL AND ({complete}) ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def expand_factor(term: IFactor, levels: list) -> list[DesignColumn]:
    refs = set(term.ref)
    missing = [r for r in term.ref if r not in set(levels)]
    if missing:
        raise ValueError(f"reference level(s) {missing} of {term} are not levels of {term.var!r}")
    v = quote_ident(term.var)
    by = f" * CAST({quote_ident(term.by)} AS DOUBLE)" if term.by else ""
    out = []
    for lv in levels:
        if lv in refs:
            continue
        name = f"{term.var}::{_level_label(lv)}" + (f":{term.by}" if term.by else "")
        out.append(DesignColumn(name, f"CAST({v} = ? AS DOUBLE){by}", (lv,), term.columns))
    if not out:
        raise ValueError(f"{term} leaves no level to estimate")
    return out


def design_columns(
    con: duckdb.DuckDBPyConnection, source: str, rhs: tuple, complete_sql: str = "TRUE"
) -> list[DesignColumn]:
    """Expand formula terms in order; ``complete_sql`` restricts the rows whose
    levels count (the other model variables non-NULL)."""
    out: list[DesignColumn] = []
    for term in rhs:
        if isinstance(term, IFactor):
            out += expand_factor(term, factor_levels(con, source, term, complete_sql))
        else:
            out.append(plain_column(term))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicated regressor names after expanding factors: {names}")
    return out
