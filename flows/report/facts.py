"""What the report reads from DuckDB: the facts of a load and the data of the index figures.

`collect_facts` reads what a load changed — files (hash, rows), new and changed city-years,
imputed cells, revisions to published index values — from the candidate and the published
warehouse before the candidate replaces it. `index_data` reads, from the warehouse whose index
the report shows, the frames the report's own figures draw (distribution by year, cities by
location, treated vs control means, top and bottom cities). Every relation the report reads is
named in this module.
"""
from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from expectations.config import INDEX_SCORE_COLUMNS, REVISION_TOLERANCE
from warehouse.connections import connect_memory, connect_read_only

EXAMPLE_LIMIT = 10  # rows listed per fact table (new/changed city-years, imputed cells, revisions)

# ---------------------------------------------------------------- the index (published relations)

INDEX = "main.resilience_index"
PANEL = "main.analysis_panel"
# Relations carrying the reference seed's city coordinates (ref_cities.csv: lat, lon), tried in
# order: the seed as dbt loads it, then the models that pass its columns on.
COORDINATE_RELATIONS = ("reference.ref_cities", "staging.stg_reference__cities",
                        "intermediate.int_city_attributes")

TOP_CITIES_SQL = f"""
select rank_in_year as rank, city_name, city_name_en, province_name, year,
       round(res, 4) as res,
       round(resistance_recovery, 4) as resistance_recovery,
       round(adaptability_adjustment, 4) as adaptability_adjustment,
       round(innovation_transformation, 4) as innovation_transformation
from {INDEX}
where year = (select max(year) from {INDEX})
order by rank_in_year, city_code
limit ?
"""

INDEX_BY_YEAR_SQL = f"select year, res from {INDEX} where res is not null order by year, city_code"

RANKED_LATEST_SQL = f"""
select city_code, city_name, city_name_en, province_name, year, res, rank_in_year
from {INDEX}
where year = (select max(year) from {INDEX}) and res is not null
order by rank_in_year, city_code
"""

LOCATED_LATEST_SQL = """
select i.city_code, i.city_name, i.city_name_en, i.res, c.lon, c.lat
from ({ranked}) as i
inner join {coordinates} as c using (city_code)
where c.lon is not null and c.lat is not null
order by i.res
"""

TREATED_CONTROL_SQL = f"""
select year, coalesce(treat, false) as treated, avg(res) as mean_res, count(*) as cities
from {PANEL}
where res is not null
group by all
order by year, treated
"""

ADOPTION_SQL = f"""
select adoption_year, count(distinct city_code) as cities
from {PANEL}
where coalesce(treat, false) and adoption_year is not null
group by adoption_year
order by adoption_year
"""


def top_cities(con: duckdb.DuckDBPyConnection, n: int = 10) -> pd.DataFrame:
    """The n most resilient cities of the latest year (the CLI's demo shows them too)."""
    return con.execute(TOP_CITIES_SQL, [n]).df()


@dataclass
class IndexData:
    """The frames the report's own figures draw, and where the coordinates came from."""

    by_year: pd.DataFrame  # year, res
    ranked: pd.DataFrame  # latest year: city_code, city_name, city_name_en, province_name, year, res, rank_in_year
    located: pd.DataFrame | None  # latest year with lon, lat (None: no relation carries coordinates)
    coordinates: str | None  # the relation the coordinates were read from
    treated_control: pd.DataFrame | None  # year, treated, mean_res, cities
    adoption: pd.DataFrame | None  # adoption_year, cities
    notes: list[str] = field(default_factory=list)

    @property
    def latest_year(self) -> int | None:
        return int(self.ranked["year"].iloc[0]) if len(self.ranked) else None

    @property
    def years(self) -> tuple[int, int] | None:
        if self.by_year.empty:
            return None
        return int(self.by_year["year"].min()), int(self.by_year["year"].max())


def _exists(con: duckdb.DuckDBPyConnection, relation: str, columns: tuple[str, ...] = ()) -> bool:
    schema, name = relation.split(".")
    found = {row[0] for row in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, name]).fetchall()}
    return bool(found) and set(columns) <= found


def index_data(database: Path) -> IndexData | None:
    """The index figures' data from a built warehouse; None when it holds no index."""
    with closing(connect_read_only(database)) as con:
        if not _exists(con, INDEX):
            return None
        by_year = con.execute(INDEX_BY_YEAR_SQL).df()
        ranked = con.execute(RANKED_LATEST_SQL).df()
        data = IndexData(by_year, ranked, None, None, None, None)
        coordinates = next((r for r in COORDINATE_RELATIONS if _exists(con, r, ("city_code", "lon", "lat"))), None)
        if coordinates is None:
            data.notes.append("no relation of the warehouse carries city coordinates "
                              f"({', '.join(COORDINATE_RELATIONS)}): the map is left out")
        else:
            data.coordinates = coordinates
            data.located = con.execute(LOCATED_LATEST_SQL.format(
                ranked=RANKED_LATEST_SQL, coordinates=coordinates)).df()
        if _exists(con, PANEL, ("treat", "adoption_year", "res")):
            data.treated_control = con.execute(TREATED_CONTROL_SQL).df()
            data.adoption = con.execute(ADOPTION_SQL).df()
        else:
            data.notes.append(f"{PANEL} has no treat/adoption_year/res columns: "
                              "the treated-vs-control figure is left out")
    return data


# ---------------------------------------------------------------- facts of a load

FILES_SQL = """
select m.source, m.file_name, m.sha256, m.rows, m.status, m.error, m.encoding, m.year,
       exists (select 1 from cand.raw.load_manifest as p
               where p.file_name = m.file_name and p.status = 'loaded' and p.load_id <> m.load_id
                 and p.sha256 <> m.sha256) as replaces_earlier
from cand.raw.load_manifest as m
where m.load_id = ?
order by m.source, m.file_name
"""

NAMES_SQL = "select distinct city_code, city_name from {db}.main.resilience_index"

CITY_YEARS_SQL = """
with new as (select city_code, year, variable, value from cand.intermediate.int_city_year_values_long),
old as (select city_code, year, variable, value from pub.intermediate.int_city_year_values_long),
compared as (
    select coalesce(new.city_code, old.city_code) as city_code, coalesce(new.year, old.year) as year,
           coalesce(new.variable, old.variable) as variable,
           old.city_code is null as is_new, new.city_code is null as is_removed,
           new.value is distinct from old.value
               and not coalesce(abs(new.value - old.value) <= 1e-9 * greatest(1, abs(old.value)), false)
               as is_changed
    from new full outer join old using (city_code, year, variable)
)
select city_code, year, bool_and(is_new) as is_new, bool_and(is_removed) as is_removed,
       list(variable order by variable) filter (where is_changed and not is_new and not is_removed)
           as changed_variables
from compared
group by city_code, year
"""

IMPUTED_SQL = """
select variable, count(*) filter (where is_imputed) as imputed,
       count(*) filter (where is_missing) as still_missing
from cand.intermediate.int_city_year_values_long
group by variable
having count(*) filter (where is_imputed or is_missing) > 0
order by imputed desc, variable
"""

IMPUTED_EXAMPLES_SQL = """
select v.city_code, n.city_name, v.year, v.variable, round(v.value, 4) as value
from cand.intermediate.int_city_year_values_long as v
left join names as n using (city_code)
where v.is_imputed
order by v.year desc, v.city_code, v.variable
limit ?
"""

REVISIONS_SQL = """
select new.city_code, names.city_name, new.year, old.res as published_res, new.res as new_res,
       new.res - old.res as revision, old.rank_in_year as published_rank, new.rank_in_year as new_rank
from cand.main.resilience_index as new
inner join pub.main.resilience_index as old using (city_code, year)
left join names using (city_code)
"""


def _attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    con.execute(f"attach '{str(path).replace(chr(39), chr(39) * 2)}' as {alias} (read_only)")


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", force_ascii=False, double_precision=10))


def _changes(con: duckdb.DuckDBPyConnection) -> dict:
    con.execute(f"create temp table city_years as {CITY_YEARS_SQL}")
    by_year = con.execute("""
        select year, count(*) filter (where is_new) as new_city_years,
               count(*) filter (where len(changed_variables) > 0) as changed_city_years,
               count(*) filter (where is_removed) as removed_city_years
        from city_years group by year
        having new_city_years + changed_city_years + removed_city_years > 0 order by year""").df()
    changed = con.execute("""
        select c.city_code, n.city_name, c.year, array_to_string(c.changed_variables, ', ') as changed_variables
        from city_years as c left join names as n using (city_code)
        where len(c.changed_variables) > 0 order by c.year desc, c.city_code limit ?""",
                          [EXAMPLE_LIMIT]).df()
    new_cities = con.execute("""
        select c.city_code, any_value(n.city_name) as city_name, min(c.year) as first_year, max(c.year) as last_year
        from city_years as c left join names as n using (city_code)
        group by c.city_code having bool_and(c.is_new) order by c.city_code""").df()
    years = con.execute("""
        select year, bool_and(is_new) as all_new from city_years group by year order by year""").df()
    return {
        "by_year": records(by_year),
        "changed_examples": records(changed),
        "new_cities": records(new_cities),
        "new_years": [int(y) for y, new in zip(years["year"], years["all_new"]) if new],
    }


def _revisions(con: duckdb.DuckDBPyConnection) -> dict:
    con.execute(f"create temp table revisions as {REVISIONS_SQL}")
    n, revised, max_abs, mean_abs = con.execute(
        "select count(*), count(*) filter (where abs(revision) > ?), max(abs(revision)), "
        "avg(abs(revision)) filter (where abs(revision) > ?) from revisions",
        [REVISION_TOLERANCE, REVISION_TOLERANCE]).fetchone()
    largest = con.execute(
        "select city_code, city_name, year, round(published_res, 6) as published_res, "
        "round(new_res, 6) as new_res, round(revision, 6) as revision, published_rank, new_rank "
        "from revisions where abs(revision) > ? order by abs(revision) desc, city_code, year limit ?",
        [REVISION_TOLERANCE, EXAMPLE_LIMIT]).df()
    return {"compared": int(n), "revised": int(revised), "max_abs": max_abs, "mean_abs": mean_abs,
            "largest": records(largest), "by_index": _revisions_by_index(con)}


# Every published composite index and its score column (expectations.config.INDEX_SCORE_COLUMNS):
# a load that moves one index only (a variable of the NQP index alone) is as visible as one that
# moves all.
REVISIONS_BY_INDEX_SQL = """
select count(*) as compared,
       count(*) filter (where abs(new.{col} - old.{col}) > $tol) as revised,
       max(abs(new.{col} - old.{col})) as max_abs,
       avg(abs(new.{col} - old.{col})) filter (where abs(new.{col} - old.{col}) > $tol) as mean_abs,
       avg(abs(new.{col} - old.{col}) / nullif(abs(old.{col}), 0)) as mean_relative
from cand.main.{mart} as new
inner join pub.main.{mart} as old using (city_code, year)
"""


def _revisions_by_index(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per published index: values compared with the published vintage, how many moved, by how much."""
    out = []
    for mart, col in INDEX_SCORE_COLUMNS.items():
        try:
            row = con.execute(REVISIONS_BY_INDEX_SQL.format(mart=mart, col=col), {"tol": REVISION_TOLERANCE}).fetchall()[0]
        except duckdb.CatalogException:
            continue  # an index this vintage (or the published one) does not have
        compared, revised, max_abs, mean_abs, mean_rel = row
        out.append({"index": f"{mart}.{col}", "compared": int(compared), "revised": int(revised or 0),
                    "max_abs": max_abs, "mean_abs": mean_abs, "mean_relative": mean_rel})
    return out


def empty_facts() -> dict:
    return {"files": [], "first_load": False, "changes": None, "imputed": None, "revisions": None,
            "errors": [], "coverage": None, "notes": []}


def collect_facts(candidate: Path, published: Path | None, vintage: str, marts_built: bool) -> dict:
    """What the load brings, read before publishing (the published file is about to be replaced)."""
    facts: dict = {**empty_facts(), "first_load": published is None or not published.exists()}
    with closing(connect_memory()) as con:
        _attach(con, candidate, "cand")
        facts["files"] = records(con.execute(FILES_SQL, [vintage]).df())
        if not marts_built:
            return facts
        try:
            con.execute(f"create temp table names as {NAMES_SQL.format(db='cand')}")
            facts["imputed"] = {
                "by_variable": records(con.execute(IMPUTED_SQL).df()),
                "examples": records(con.execute(IMPUTED_EXAMPLES_SQL, [EXAMPLE_LIMIT]).df()),
            }
            facts["imputed"]["total"] = sum(r["imputed"] for r in facts["imputed"]["by_variable"])
            if not facts["first_load"]:
                _attach(con, published, "pub")
                facts["changes"] = _changes(con)
                facts["revisions"] = _revisions(con)
        except duckdb.Error as exc:  # a published vintage of another shape: report, do not fail
            facts["errors"].append(str(exc).splitlines()[0])
    return facts
