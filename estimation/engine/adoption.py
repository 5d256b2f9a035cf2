"""Adoption dates per unit, read in SQL from a 0/1 post-treatment indicator.

For a staggered (absorbing) design the treatment column D_it is 1 from the
unit's adoption period on and 0 before; the adoption date of unit i is
min{t : D_it = 1}, NULL for never-treated units.  A unit whose indicator
switches back from 1 to 0 is not an absorbing design: :func:`check_absorbing`
refuses it, because permuting or re-timing such a path has no meaning.
"""

from __future__ import annotations

import duckdb

from .sqlutil import quote_ident


def adoption_sql(source: str, unit: str, time: str, treatment: str) -> str:
    """SQL returning one row per unit: ``(unit, adopt)`` with adopt NULL if never treated."""
    u, t, d = quote_ident(unit), quote_ident(time), quote_ident(treatment)
    return (
        f"SELECT {u} AS __unit, min({t}) FILTER (WHERE CAST({d} AS DOUBLE) = 1) AS __adopt "
        f"FROM {source} WHERE {u} IS NOT NULL AND {t} IS NOT NULL GROUP BY {u}"
    )


def cohort_sql(source: str, unit: str, cohort: str) -> str:
    """SQL returning ``(unit, adopt)`` from a column holding each unit's adoption period.

    0 and NULL mean never treated (the convention of R's ``did`` and of Stata's
    ``csdid``); the column must be constant within a unit (checked by the caller's query:
    a unit with two non-zero values raises).
    """
    u, g = quote_ident(unit), quote_ident(cohort)
    return (
        f"SELECT {u} AS __unit, CASE WHEN count(DISTINCT nullif({g}, 0)) > 1 "
        f"THEN error('cohort column ' || '{cohort.replace(chr(39), chr(39) * 2)}' || ' varies within unit ' "
        f"|| CAST({u} AS VARCHAR)) ELSE max(nullif({g}, 0)) END AS __adopt "
        f"FROM {source} WHERE {u} IS NOT NULL GROUP BY {u}"
    )


def check_absorbing(
    con: duckdb.DuckDBPyConnection, source: str, unit: str, time: str, treatment: str
) -> None:
    """Raise unless the treatment is 0/1 and never switches off within a unit."""
    u, t, d = quote_ident(unit), quote_ident(time), quote_ident(treatment)
    bad_values, bad_units = con.execute(
        f"""
        WITH a AS ({adoption_sql(source, unit, time, treatment)})
        SELECT count(*) FILTER (WHERE CAST(s.{d} AS DOUBLE) NOT IN (0, 1)),
               count(DISTINCT s.{u}) FILTER (
                   WHERE a.__adopt IS NOT NULL AND s.{t} >= a.__adopt AND CAST(s.{d} AS DOUBLE) = 0)
        FROM {source} s JOIN a ON s.{u} = a.__unit
        """
    ).fetchone()
    if bad_values:
        raise ValueError(f"treatment column {treatment!r} must be 0/1 ({bad_values} other values)")
    if bad_units:
        raise ValueError(
            f"treatment column {treatment!r} switches off again in {bad_units} unit(s); "
            "adoption dates need an absorbing 0/1 post indicator"
        )
