"""The marts suite: checks on what users query, run on the candidate warehouse after dbt.

Critical: unique (city, year), coverage, ratio indicators in range, entropy weights, index in
[0, 1], policy timing. Warning: year-on-year jumps of the input variables (cells listed) and
distribution drift of every index indicator against the previously published vintage.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from expectations.config import (
    COVERAGE_COLUMNS,
    COVERAGE_INDICES,
    COVERAGE_MIN,
    CRITICAL,
    INDEX_COLUMNS,
    INDEX_SCORE_COLUMNS,
    JUMP_THRESHOLD,
    JUMP_THRESHOLD_BY_VARIABLE,
    KS_THRESHOLD,
    RATIO_BOUNDS,
    REVISION_MEAN_RELATIVE,
    WARNING,
    UNIT_SWITCH_SHARE,
    UNIT_SWITCH_SLACK,
    WEIGHT_TOLERANCE,
)
from expectations.runner import Batch, Expect
from warehouse.connections import connect_read_only

WEIGHT_GROUP_KEYS = ("index_name", "scope", "weight_year")

POLICY_SQL = """
select city_code, year, policy, treat, adoption_year, post, did, event_time,
       coalesce(lag(post) over w and not post, false) as post_switched_off,
       event_time is not distinct from (year - adoption_year)
           and treat = (adoption_year is not null)
           and post = coalesce(year >= adoption_year, false) as event_time_consistent,
       did = cast(treat and post as integer) as did_consistent
from main.policy_panel
window w as (partition by policy, city_code order by year)
order by policy, city_code, year
"""

COVERAGE_SQL = """
select index_name || '.' || indicator as indicator, year, count(*) as city_years,
       count(value) as with_value
from intermediate.int_index_inputs
where index_name in (select unnest($indices))
group by all
"""

JUMPS_SQL = """
with series as (
    select city_code, year, variable, value, is_imputed,
           lag(value) over w as previous_value, lag(year) over w as previous_year
    from intermediate.int_city_year_values_long
    window w as (partition by city_code, variable order by year)
),

cells as (
    select city_code, year, variable, file_name, source_row, source_col
    from intermediate.int_city_yearbook_values
    union all
    select city_code, year, variable, file_name, source_row, source_col
    from intermediate.int_patent_city_counts
)

select series.city_code, series.year, series.variable, series.value, series.previous_value,
       abs(ln(series.value / series.previous_value)) as abs_dlog, series.is_imputed,
       any_value(cells.file_name) as file_name, any_value(cells.source_row) as source_row,
       any_value(cells.source_col) as source_col
from series
left join cells using (city_code, year, variable)
where series.value > 0 and series.previous_value > 0 and series.previous_year = series.year - 1
group by all
order by series.variable, series.city_code, series.year
"""

UNIT_SWITCH_SQL = """
with series as (
    select city_code, year, variable, value, is_imputed,
           lag(value) over w as previous_value, lag(year) over w as previous_year
    from intermediate.int_city_year_values_long
    window w as (partition by city_code, variable order by year)
),
steps as (
    select variable, year, log10(value / previous_value) as dlog10
    from series
    where value > 0 and previous_value > 0 and previous_year = year - 1 and not is_imputed
)
select variable, year, count(*) as cities,
       avg(case when abs(dlog10) >= 1 - $slack and abs(dlog10 - round(dlog10)) <= $slack
                then 1.0 else 0.0 end) as share_power_of_ten,
       round(median(dlog10)) as median_power_of_ten
from steps
group by variable, year
order by variable, year
"""

INDEX_INPUTS_SQL = "select index_name, indicator, value from intermediate.int_index_inputs where value is not null"


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, table]).fetchall()]


def index_batch(con: duckdb.DuckDBPyConnection, mart: str) -> Batch:
    present = [c for c in INDEX_COLUMNS[mart] if c in _columns(con, "main", mart)]
    frame = con.execute(f"select city_code, year, {', '.join(present)} from main.{mart}").df()
    index_column = present[0]
    return Batch("marts", mart, frame, [
        Expect("ExpectTableRowCountToBeBetween", "marts.not_empty", CRITICAL,
               f"{mart} has rows", {"min_value": 1}),
        Expect("ExpectCompoundColumnsToBeUnique", "marts.unique_city_year", CRITICAL,
               f"{mart}: one row per city and year", {"column_list": ["city_code", "year"]}),
        Expect("ExpectColumnValuesToNotBeNull", "marts.not_null", CRITICAL,
               f"{mart}: city_code is never NULL", {"column": "city_code"}),
        Expect("ExpectColumnValuesToNotBeNull", "marts.not_null", CRITICAL,
               f"{mart}: {index_column} is never NULL", {"column": index_column}),
        *[Expect("ExpectColumnValuesToBeBetween", "marts.index_in_unit_interval", CRITICAL,
                 f"{mart}: {column} in [0, 1]",
                 {"column": column, "min_value": 0, "max_value": 1}, threshold="[0, 1]")
          for column in present],
    ], ("city_code", "year"))


def weight_batches(con: duckdb.DuckDBPyConnection) -> list[Batch]:
    keys = [k for k in WEIGHT_GROUP_KEYS if k in _columns(con, "main", "index_weights")]
    weights = con.execute(f"select {', '.join(keys)}, indicator, weight from main.index_weights").df()
    totals = con.execute(
        f"select {', '.join(keys)}, sum(weight) as weight_total, count(*) as indicators "
        f"from main.index_weights group by all order by all").df()
    tolerance = f"1 ± {WEIGHT_TOLERANCE:g}"
    return [
        Batch("marts", "index_weights", weights, [
            Expect("ExpectColumnValuesToNotBeNull", "marts.weights_valid", CRITICAL,
                   "index_weights: every weight is defined", {"column": "weight"}),
            Expect("ExpectColumnValuesToBeBetween", "marts.weights_valid", CRITICAL,
                   "index_weights: every weight is non-negative (and at most 1)",
                   {"column": "weight", "min_value": 0, "max_value": 1}, threshold="[0, 1]"),
        ], (*keys, "indicator")),
        Batch("marts", "index_weight_totals", totals, [
            Expect("ExpectColumnValuesToBeBetween", "marts.weights_sum_to_one", CRITICAL,
                   f"index_weights: weights sum to 1 per {', '.join(keys)}",
                   {"column": "weight_total", "min_value": 1 - WEIGHT_TOLERANCE,
                    "max_value": 1 + WEIGHT_TOLERANCE}, threshold=tolerance),
        ], tuple(keys)),
    ]


def _long(relation: str, keys: str, columns: list[str], include_nulls: bool) -> str:
    """SQL: the columns of `relation` as (keys…, indicator, value) rows, values cast to DOUBLE."""
    casts = ", ".join(f"cast({c} as double) as {c}" for c in columns)
    nulls = "include nulls " if include_nulls else ""
    return (f"(select {keys}, {casts} from {relation}) "
            f"unpivot {nulls}(value for indicator in ({', '.join(columns)}))")


def coverage_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Index inputs: share of panel city-years with a value, per indicator and year."""
    frame = con.execute(COVERAGE_SQL, {"indices": list(COVERAGE_INDICES)}).df()
    frame["coverage"] = frame["with_value"] / frame["city_years"]
    return frame.sort_values(["indicator", "year"], ignore_index=True)


def control_coverage_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The same for the controls of analysis_panel."""
    present = [c for c in COVERAGE_COLUMNS if c in _columns(con, "main", "analysis_panel")]
    frame = con.execute(
        "select 'analysis_panel.' || indicator as indicator, year, count(*) as city_years, "
        f"count(value) as with_value from {_long('main.analysis_panel', 'year', present, True)} "
        "group by all").df()
    frame["coverage"] = frame["with_value"] / frame["city_years"]
    return frame.sort_values(["indicator", "year"], ignore_index=True)


def ratio_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    present = [c for c in RATIO_BOUNDS if c in _columns(con, "intermediate", "int_city_year_panel")]
    long = _long("intermediate.int_city_year_panel", "city_code, year", present, False)
    return con.execute(f"select city_code, year, indicator, value from {long} "
                       "order by indicator, city_code, year").df()


def policy_batch(con: duckdb.DuckDBPyConnection) -> Batch:
    return Batch("marts", "policy_panel", con.execute(POLICY_SQL).df(), [
        Expect("ExpectCompoundColumnsToBeUnique", "marts.unique_city_year", CRITICAL,
               "policy_panel: one row per policy, city and year",
               {"column_list": ["policy", "city_code", "year"]}),
        Expect("ExpectColumnValuesToBeInSet", "marts.post_never_switches_off", CRITICAL,
               "policy_panel: post never switches off once a city is treated",
               {"column": "post_switched_off", "value_set": [False]}),
        Expect("ExpectColumnValuesToBeInSet", "marts.event_time_consistent", CRITICAL,
               "policy_panel: event_time = year − adoption_year, post ⇔ event_time ≥ 0, "
               "treat ⇔ an adoption year", {"column": "event_time_consistent", "value_set": [True]}),
        Expect("ExpectColumnValuesToBeInSet", "marts.event_time_consistent", CRITICAL,
               "policy_panel: did = treat × post", {"column": "did_consistent", "value_set": [True]}),
    ], ("policy", "city_code", "year", "adoption_year", "post", "event_time"))


SPATIAL_SQL = """
with panel as (select distinct city_code from main.analysis_panel),
schemes as (select distinct scheme from main.spatial_weights),
rows_of_w as (
    select scheme, city_code, sum(weight) as row_sum, count(*) as neighbours
    from main.spatial_weights group by scheme, city_code
)
select schemes.scheme, panel.city_code, coalesce(rows_of_w.neighbours, 0) as neighbours,
       abs(coalesce(rows_of_w.row_sum, 0) - 1) <= 1e-12 as row_sums_to_one
from panel cross join schemes
left join rows_of_w on rows_of_w.scheme = schemes.scheme and rows_of_w.city_code = panel.city_code
"""


def spatial_batch(con: duckdb.DuckDBPyConnection) -> Batch:
    return Batch("marts", "spatial_weights", con.execute(SPATIAL_SQL).df(), [
        Expect("ExpectColumnValuesToBeBetween", "marts.spatial_neighbours", CRITICAL,
               "spatial_weights: every panel city has at least one neighbour in every scheme "
               "(raise spatial_cutoff_km if a remote city has none)", {"column": "neighbours", "min_value": 1}),
        Expect("ExpectColumnValuesToBeInSet", "marts.spatial_row_sums", CRITICAL,
               "spatial_weights: each city's weights sum to 1 (row-standardised)",
               {"column": "row_sums_to_one", "value_set": [True]}),
    ], ("scheme", "city_code", "neighbours"))


def analysis_batch(con: duckdb.DuckDBPyConnection) -> Batch:
    return Batch("marts", "analysis_panel", con.execute("select city_code, year from main.analysis_panel").df(), [
        Expect("ExpectCompoundColumnsToBeUnique", "marts.unique_city_year", CRITICAL,
               "analysis_panel: one row per city and year", {"column_list": ["city_code", "year"]}),
    ], ("city_code", "year"))


def coverage_batch(name: str, frame: pd.DataFrame) -> Batch:
    return Batch("marts", name, frame, [
        Expect("ExpectColumnValuesToBeBetween", "marts.coverage", CRITICAL,
               f"{name}: share of panel city-years with a value, per indicator and year, at least {COVERAGE_MIN:g}",
               {"column": "coverage", "min_value": COVERAGE_MIN, "max_value": 1},
               threshold=f"≥ {COVERAGE_MIN:g}"),
    ], ("indicator", "year", "city_years", "with_value"))


def ratio_batch(con: duckdb.DuckDBPyConnection) -> Batch:
    ratios = ratio_frame(con)
    return Batch("marts", "ratio_indicators", ratios, [
        Expect("ExpectColumnValuesToBeBetween", "marts.ratio_bounds", severity,
               f"{indicator} within [{low:g}, {high:g}]",
               {"column": "value", "min_value": low, "max_value": high},
               threshold=f"[{low:g}, {high:g}]", where=("indicator", "==", indicator))
        for indicator, (low, high, severity) in RATIO_BOUNDS.items()
        if indicator in set(ratios["indicator"])
    ], ("city_code", "year", "indicator"))


def jump_expects() -> list[Expect]:
    special = sorted(JUMP_THRESHOLD_BY_VARIABLE)
    expects = [Expect(
        "ExpectColumnValuesToBeBetween", "marts.yoy_jumps", WARNING,
        f"year-on-year |Δ ln| of every variable except {', '.join(special)} at most {JUMP_THRESHOLD:g}",
        {"column": "abs_dlog", "max_value": JUMP_THRESHOLD},
        threshold=f"|Δ ln| ≤ {JUMP_THRESHOLD:g}", where=("variable", "not in", tuple(special)))]
    for variable in special:
        limit = JUMP_THRESHOLD_BY_VARIABLE[variable]
        expects.append(Expect(
            "ExpectColumnValuesToBeBetween", "marts.yoy_jumps", WARNING,
            f"year-on-year |Δ ln| of {variable} at most {limit:g}",
            {"column": "abs_dlog", "max_value": limit},
            threshold=f"|Δ ln| ≤ {limit:g}", where=("variable", "==", variable)))
    return expects


def drift_frame(candidate: duckdb.DuckDBPyConnection, previous: Path) -> pd.DataFrame:
    """KS statistic of every index indicator: candidate against the published vintage."""
    from scipy.stats import ks_2samp

    with connect_read_only(previous) as con:
        old = con.execute(INDEX_INPUTS_SQL).df()
    new = candidate.execute(INDEX_INPUTS_SQL).df()
    old_groups = dict(tuple(old.groupby(["index_name", "indicator"])))
    records = []
    for key, values in new.groupby(["index_name", "indicator"]):
        before = old_groups.get(key)
        if before is None or before.empty:
            continue
        test = ks_2samp(values["value"].to_numpy(), before["value"].to_numpy(), method="asymp")
        records.append((*key, float(test.statistic), float(test.pvalue), len(values), len(before)))
    return pd.DataFrame.from_records(records, columns=[
        "index_name", "indicator", "ks_statistic", "p_value", "n_candidate", "n_published"])


def jumps_batch(con: duckdb.DuckDBPyConnection) -> Batch:
    return Batch("marts", "yoy_jumps", con.execute(JUMPS_SQL).df(), jump_expects(),
                 ("city_code", "variable", "year", "previous_value", "file_name", "source_row",
                  "source_col", "is_imputed"))


def revisions_frame(candidate: duckdb.DuckDBPyConnection, previous: Path) -> pd.DataFrame:
    """Per published index: mean relative change of its city-year values against the published vintage."""
    records = []
    with connect_read_only(previous) as con:
        for mart, col in INDEX_SCORE_COLUMNS.items():
            try:
                old = con.execute(f"select city_code, year, {col} as old from main.{mart}").df()
                new = candidate.execute(f"select city_code, year, {col} as new from main.{mart}").df()
            except duckdb.CatalogException:
                continue
            both = new.merge(old, on=["city_code", "year"])
            rel = (both["new"] - both["old"]).abs() / both["old"].abs().where(both["old"] != 0)
            records.append((f"{mart}.{col}", len(both), float(rel.mean()) if len(both) else 0.0,
                            float(rel.max()) if len(both) else 0.0))
    return pd.DataFrame.from_records(records, columns=["index", "compared", "mean_relative_revision",
                                                       "max_relative_revision"])


def revisions_batch(con: duckdb.DuckDBPyConnection, previous: Path) -> Batch:
    return Batch("marts", "revisions", revisions_frame(con, previous), [
        Expect("ExpectColumnValuesToBeBetween", "marts.revisions", WARNING,
               f"mean relative revision of every published index against the published vintage at most "
               f"{REVISION_MEAN_RELATIVE:g}",
               {"column": "mean_relative_revision", "max_value": REVISION_MEAN_RELATIVE},
               threshold=f"mean |Δ|/value ≤ {REVISION_MEAN_RELATIVE:g}"),
    ], ("index", "compared", "max_relative_revision"))


def unit_switch_batch(con: duckdb.DuckDBPyConnection) -> Batch:
    frame = con.execute(UNIT_SWITCH_SQL, {"slack": UNIT_SWITCH_SLACK}).df()
    return Batch("marts", "unit_switch", frame, [
        Expect("ExpectColumnValuesToBeBetween", "marts.unit_switch", CRITICAL,
               f"no variable jumps by a power of ten for more than {UNIT_SWITCH_SHARE:.0%} of the cities "
               "between two years (a delivery in another unit)",
               {"column": "share_power_of_ten", "max_value": UNIT_SWITCH_SHARE},
               threshold=f"share ≤ {UNIT_SWITCH_SHARE:g}"),
    ], ("variable", "year", "cities", "median_power_of_ten"))


def drift_batch(con: duckdb.DuckDBPyConnection, previous: Path) -> Batch:
    return Batch("marts", "drift", drift_frame(con, previous), [
        Expect("ExpectColumnValuesToBeBetween", "marts.drift", WARNING,
               f"KS statistic of each index indicator against the published vintage at most {KS_THRESHOLD:g}",
               {"column": "ks_statistic", "max_value": KS_THRESHOLD}, threshold=f"KS ≤ {KS_THRESHOLD:g}"),
    ], ("index_name", "indicator", "n_candidate", "n_published"))


def marts_batches(con: duckdb.DuckDBPyConnection, previous: Path | None,
                  rebuilt: set[str] | None = None) -> tuple[list[Batch], list[str]]:
    """Every marts batch; `previous` is the published warehouse the candidate would replace.

    `rebuilt` names the models this load's dbt build rebuilt (None: all of them). After a failed
    build, checks whose relations were not rebuilt are skipped (they hold the previous vintage)
    and say so in the notes; the others still run, so the report names the problem.
    """
    notes: list[str] = []
    parts: list[tuple[tuple[str, ...], str, object]] = [
        *(((mart,), mart, lambda mart=mart: [index_batch(con, mart)]) for mart in INDEX_COLUMNS),
        (("index_weights",), "weights", lambda: weight_batches(con)),
        (("int_index_inputs",), "index input coverage",
         lambda: [coverage_batch("index_input_coverage", coverage_frame(con))]),
        (("analysis_panel",), "control coverage",
         lambda: [coverage_batch("control_coverage", control_coverage_frame(con))]),
        (("int_city_year_panel",), "ratio indicators", lambda: [ratio_batch(con)]),
        (("policy_panel",), "policy timing", lambda: [policy_batch(con)]),
        (("analysis_panel",), "analysis panel keys", lambda: [analysis_batch(con)]),
        (("spatial_weights", "analysis_panel"), "spatial weights", lambda: [spatial_batch(con)]),
        (("int_city_year_values_long",), "year-on-year jumps", lambda: [jumps_batch(con)]),
        (("int_city_year_values_long",), "unit switches", lambda: [unit_switch_batch(con)]),
    ]
    if previous is not None and previous.exists():
        parts.append((("int_index_inputs",), "drift", lambda: [drift_batch(con, previous)]))
        parts.append((tuple(INDEX_SCORE_COLUMNS), "revisions", lambda: [revisions_batch(con, previous)]))
    else:
        notes.append("drift not checked: no published vintage to compare with (first load)")
    batches: list[Batch] = []
    for requires, label, build in parts:
        stale = [r for r in requires if rebuilt is not None and r not in rebuilt]
        if stale:
            notes.append(f"{label} not checked: {', '.join(stale)} not rebuilt (dbt build failed before it)")
            continue
        try:
            batches += build()
        except duckdb.CatalogException as exc:
            if label not in ("drift", "revisions"):
                raise
            notes.append(f"drift not checked: the published warehouse has no index inputs ({exc})")
    return batches, notes
