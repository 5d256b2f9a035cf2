"""The raw suite: per source and load, checks on what the delivered files say.

Read from the staging views of the candidate after dbt (header mapped, unit converted, name
resolved, but every row still carrying file_name, source_row and source_col), restricted to the
rows a load brought (`load_id`), or to every load in force (`load_id=None`: the published
warehouse). Examples of failed expectations point at file, row and column.

Ingest already refuses files with unresolvable city names (warehouse/ingest.py); the name
check here is the second line, and the dry run's.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from expectations.config import (
    CRITICAL,
    PLAUSIBLE_RANGES,
    REQUIRED_VARIABLES,
    ROW_COUNT_BANDS,
)
from expectations.runner import Batch, Expect

CITY_SOURCES = {
    "city_yearbook": "intermediate.int_city_yearbook_values",
    "patents": "intermediate.int_patent_city_counts",
    "historical": "intermediate.int_historical_city_values",
    "digital_finance": "intermediate.int_digital_finance_values",
}
IN_SCOPE = "(cast($load_id as varchar) is null or load_id = $load_id)"

FILES_IN_SCOPE_SQL = f"""
select source, file_name, load_id
from intermediate.int_current_files
where {IN_SCOPE}
order by source, file_name
"""

CELLS_SQL = """
select file_name, source_row, source_col, year, city_name_text, header_text, variable,
       delivered_unit, value_text, value, is_unparsed,
       value is not null or is_missing or is_unparsed as unit_converted
from {view}
where {scope}
order by file_name, source_row, source_col
"""

# One row per city row of the files in force for the years the scope touches (a long table has
# one row per city and indicator): every name must resolve.
CITY_ROWS_SQL = """
with scope_years as (select distinct year from {view} where {scope})
select distinct file_name, source_row, year, city_name_text, city_code
from {view}
where year in (select year from scope_years)
order by file_name, source_row
"""

# One row per delivered value of the files in force for the years the scope touches: a city
# delivered twice for a year (in one file or in two, in any layout) repeats its variables.
CITY_VALUES_SQL = """
with scope_years as (select distinct year from {view} where {scope})
select file_name, source_row, source_col, year, city_name_text, city_code, variable
from {view}
where year in (select year from scope_years)
order by city_code, year, variable, file_name, source_row  -- a duplicate's rows side by side in the examples
"""

# Cities of each file and year against the reference cities that exist in that year (historical
# tables: today's cities); a sheet with several years is counted year by year, a long table by
# its distinct cities.
CITY_ROW_COUNTS_SQL = """
with files as (
    select f.file_name, f.load_id, c.year,
           count(distinct (c.city_key, c.province_text)) as city_rows
    from intermediate.int_current_files as f
    inner join raw.city_cells as c using (source, file_name, load_id)
    where f.source = $source and (cast($load_id as varchar) is null or f.load_id = $load_id)
      and c.row_kind = 'city'
    group by f.file_name, f.load_id, c.year
)
select file_name, year, city_rows,
       (select count(*) from reference.ref_cities as r
        where case when $source = 'historical' then r.valid_to_year is null
                   else coalesce(r.became_prefecture_city_year, 0) <= files.year
                        and files.year <= coalesce(r.valid_to_year, 9999) end) as expected_rows
from files
order by file_name, year
"""

MAPPED_VARIABLES_SQL = """
select distinct file_name, variable from {view} where {scope}
"""

IGNORED_HEADERS_SQL = """
select file_name, string_agg(distinct header_text, ' | ' order by header_text) as ignored_headers
from intermediate.int_ignored_headers
group by file_name
"""

NATIONAL_SQL = """
select file_name, source_row, year, indicator_text, variable, value_text, value
from intermediate.int_national_indicators
where year in (select distinct year from intermediate.int_national_indicators where {scope})
order by file_name, source_row
"""

# Firm registrations are many (millions at full scale): aggregated per file and city name in
# DuckDB, keeping the first offending row of each kind so that examples still point at a row.
ENTERPRISES_SQL = """
with rows as (
    select r.file_name, r.year, r.source_row, r.city_key, r.city_name_text,
           try_cast(trim(r.registration_date_text) as date) as registration_date,
           try_cast(replace(trim(r.registered_capital_text), ',', '') as double) as capital,
           trim(coalesce(r.registered_capital_text, '')) as capital_text
    from raw.enterprise_registrations as r
    inner join intermediate.int_current_files as f
        on f.source = 'enterprises' and f.file_name = r.file_name and f.load_id = r.load_id
    where (cast($load_id as varchar) is null or r.load_id = $load_id)
)
select rows.file_name, rows.year, any_value(rows.city_name_text) as city_name_text,
       any_value(names.city_code) as city_code,
       min(rows.source_row) as first_row, count(*) as n_rows,
       count(*) filter (where rows.registration_date is null
                           or year(rows.registration_date) <> rows.year) as bad_dates,
       min(rows.source_row) filter (where rows.registration_date is null
                                       or year(rows.registration_date) <> rows.year) as first_bad_date_row,
       count(*) filter (where rows.capital is null and rows.capital_text <> '') as bad_capital,
       min(rows.source_row) filter (where rows.capital is null and rows.capital_text <> '') as first_bad_capital_row
from rows
left join intermediate.int_city_names_resolved as names
    on names.source = 'enterprises' and names.city_key = rows.city_key
    and names.province_text is null and names.year = rows.year
group by rows.file_name, rows.year, rows.city_key
order by rows.file_name, first_row
"""

ENTERPRISE_FILES_SQL = """
select file_name, year, count(distinct city_code) as cities,
       (select count(*) from reference.ref_cities as r
        where coalesce(r.became_prefecture_city_year, 0) <= e.year
          and e.year <= coalesce(r.valid_to_year, 9999)) as expected_cities
from enterprises as e
group by file_name, year
order by file_name
"""


def _frame(con: duckdb.DuckDBPyConnection, sql: str, **params) -> pd.DataFrame:
    return con.execute(sql, params).df()


def _band(source: str) -> tuple[float, float]:
    return ROW_COUNT_BANDS[source]


def required_frame(files: list[str], mapped: pd.DataFrame, source: str,
                   ignored: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per file and required variable (mode all) or per file (mode any): present?
    The headers a mapping told ingest to ignore are shown beside (a likely cause)."""
    mode, variables = REQUIRED_VARIABLES[source]
    have = mapped.groupby("file_name")["variable"].agg(set).to_dict()
    notes = {} if ignored is None else dict(zip(ignored["file_name"], ignored["ignored_headers"]))
    records = []
    for file_name in files:
        found = have.get(file_name, set())
        if mode == "all":
            records += [(file_name, v, v in found) for v in variables]
        else:
            records.append((file_name, " or ".join(variables), bool(found & set(variables))))
    frame = pd.DataFrame.from_records(records, columns=["file_name", "variable", "present"])
    frame["ignored_headers"] = [notes.get(f, "") for f in frame["file_name"]]
    return frame


def _required_expect(source: str) -> Expect:
    mode, variables = REQUIRED_VARIABLES[source]
    return Expect(
        "ExpectColumnValuesToBeInSet", "raw.required_columns", CRITICAL,
        f"{source}: every file carries the required variables after header mapping",
        {"column": "present", "value_set": [True]},
        threshold=f"{mode} of {len(variables)} variables",
    )


def _range_expects(source: str, variables) -> list[Expect]:
    out = []
    for variable in sorted(set(variables) & set(PLAUSIBLE_RANGES)):
        low, high = PLAUSIBLE_RANGES[variable]
        out.append(Expect(
            "ExpectColumnValuesToBeBetween", "raw.plausible_range", CRITICAL,
            f"{source}: {variable} within its plausible range (canonical unit)",
            {"column": "value", "min_value": low, "max_value": high},
            threshold=f"[{low:g}, {high:g}]", where=("variable", "==", variable),
        ))
    return out


def city_source_batches(con: duckdb.DuckDBPyConnection, source: str, load_id: str | None,
                        files: list[str]) -> list[Batch]:
    view = CITY_SOURCES[source]
    scope = {"load_id": load_id}
    cells = _frame(con, CELLS_SQL.format(view=view, scope=IN_SCOPE), **scope)
    rows = _frame(con, CITY_ROWS_SQL.format(view=view, scope=IN_SCOPE), **scope)
    city_values = _frame(con, CITY_VALUES_SQL.format(view=view, scope=IN_SCOPE), **scope)
    counts = _frame(con, CITY_ROW_COUNTS_SQL, source=source, **scope)
    counts["row_ratio"] = counts["city_rows"] / counts["expected_rows"].where(counts["expected_rows"] > 0)
    mapped = _frame(con, MAPPED_VARIABLES_SQL.format(view=view, scope=IN_SCOPE), **scope)
    ignored = _frame(con, IGNORED_HEADERS_SQL)
    low, high = _band(source)
    cell_at = ("file_name", "source_row", "source_col", "city_name_text", "header_text", "value_text")
    return [
        Batch("raw", f"{source}.files", required_frame(files, mapped, source, ignored),
              [_required_expect(source)], ("file_name", "variable", "ignored_headers")),
        Batch("raw", f"{source}.row_counts", counts, [
            Expect("ExpectColumnValuesToBeBetween", "raw.row_count_band", CRITICAL,
                   f"{source}: city rows per file and year within the band of the reference cities of that year",
                   {"column": "row_ratio", "min_value": low, "max_value": high},
                   threshold=f"[{low:g}, {high:g}] × reference cities"),
        ], ("file_name", "year", "city_rows", "expected_rows")),
        Batch("raw", f"{source}.cells", cells, [
            Expect("ExpectColumnValuesToBeInSet", "raw.numeric_cells", CRITICAL,
                   f"{source}: every cell is a number or a missing marker",
                   {"column": "is_unparsed", "value_set": [False]}),
            Expect("ExpectColumnValuesToBeInSet", "raw.units_known", CRITICAL,
                   f"{source}: every delivered unit converts to the canonical unit",
                   {"column": "unit_converted", "value_set": [True]}),
            *_range_expects(source, cells["variable"].unique()),
        ], cell_at),
        Batch("raw", f"{source}.rows", rows, [
            Expect("ExpectColumnValuesToNotBeNull", "raw.city_names_resolve", CRITICAL,
                   f"{source}: every city name resolves to one city code for its year",
                   {"column": "city_code"}),
        ], ("file_name", "source_row", "city_name_text")),
        Batch("raw", f"{source}.values", city_values, [
            Expect("ExpectCompoundColumnsToBeUnique", "raw.unique_city_year", CRITICAL,
                   f"{source}: one value per city, year and variable across the files in force",
                   {"column_list": ["city_code", "year", "variable"], "ignore_row_if": "any_value_is_missing"}),
        ], ("file_name", "source_row", "source_col", "city_name_text")),
    ]


def national_batches(con: duckdb.DuckDBPyConnection, load_id: str | None, files: list[str]) -> list[Batch]:
    values = _frame(con, NATIONAL_SQL.format(scope=IN_SCOPE), load_id=load_id)
    in_scope = values[values["file_name"].isin(files)]
    return [
        Batch("raw", "national.files", required_frame(files, in_scope, "national"),
              [_required_expect("national")], ("file_name", "variable")),
        Batch("raw", "national.values", values, [
            Expect("ExpectColumnValuesToNotBeNull", "raw.numeric_cells", CRITICAL,
                   "national: every indicator value is a number", {"column": "value"}),
            *_range_expects("national", values["variable"].unique()),
            Expect("ExpectCompoundColumnsToBeUnique", "raw.unique_city_year", CRITICAL,
                   "national: one value per indicator and year across the files in force",
                   {"column_list": ["variable", "year"]}),
        ], ("file_name", "source_row", "indicator_text", "value_text")),
    ]


def enterprise_batches(con: duckdb.DuckDBPyConnection, load_id: str | None) -> list[Batch]:
    enterprises = _frame(con, ENTERPRISES_SQL, load_id=load_id)
    con.register("enterprises", enterprises)
    try:
        per_file = con.execute(ENTERPRISE_FILES_SQL).df()
    finally:
        con.unregister("enterprises")
    per_file["city_share"] = per_file["cities"] / per_file["expected_cities"].where(per_file["expected_cities"] > 0)
    low, high = _band("enterprises")
    return [
        Batch("raw", "enterprises.cities", enterprises, [
            Expect("ExpectColumnValuesToNotBeNull", "raw.city_names_resolve", CRITICAL,
                   "enterprises: every city name resolves to one city code for its year",
                   {"column": "city_code"}),
        ], ("file_name", "first_row", "city_name_text")),
        Batch("raw", "enterprises.dates", enterprises, [
            Expect("ExpectColumnValuesToBeBetween", "raw.numeric_cells", CRITICAL,
                   "enterprises: every registration date parses and falls in the file's year",
                   {"column": "bad_dates", "min_value": 0, "max_value": 0}),
        ], ("file_name", "first_bad_date_row", "city_name_text")),
        Batch("raw", "enterprises.capital", enterprises, [
            Expect("ExpectColumnValuesToBeBetween", "raw.numeric_cells", CRITICAL,
                   "enterprises: every registered capital is a number",
                   {"column": "bad_capital", "min_value": 0, "max_value": 0}),
        ], ("file_name", "first_bad_capital_row", "city_name_text")),
        Batch("raw", "enterprises.row_counts", per_file, [
            Expect("ExpectColumnValuesToBeBetween", "raw.row_count_band", CRITICAL,
                   "enterprises: share of the year's cities with at least one registration",
                   {"column": "city_share", "min_value": low, "max_value": high},
                   threshold=f"[{low:g}, {high:g}]"),
        ], ("file_name", "year", "cities", "expected_cities")),
    ]


def raw_batches(con: duckdb.DuckDBPyConnection, load_id: str | None) -> list[Batch]:
    """Every raw batch for the files of load `load_id` (None: every file in force)."""
    files = con.execute(FILES_IN_SCOPE_SQL, {"load_id": load_id}).fetchall()
    by_source: dict[str, list[str]] = {}
    for source, file_name, _ in files:
        by_source.setdefault(source, []).append(file_name)
    batches: list[Batch] = []
    for source in CITY_SOURCES:
        if source in by_source:
            batches += city_source_batches(con, source, load_id, by_source[source])
    if "national" in by_source:
        batches += national_batches(con, load_id, by_source["national"])
    if "enterprises" in by_source:
        batches += enterprise_batches(con, load_id)
    return batches
