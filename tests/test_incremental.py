"""The recurring job: a new year's files arrive, a file is re-delivered corrected, nothing arrives.

Runs the refresh pipeline without Prefect (the flow itself is exercised under Prefect's test
harness in test_refresh_flow.py); every refresh publishes a new vintage that stays queryable.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from flows.refresh import PLAIN_STEPS, Workspace, run_pipeline
from warehouse.ingest import new_load_id
from warehouse.paths import Home
from warehouse.sample import write_sample

pytestmark = pytest.mark.slow
LAST_YEAR = 2023


def refresh(home: Home) -> dict:
    return run_pipeline(Workspace.for_refresh(home), new_load_id(), PLAIN_STEPS).to_dict()


def query(home: Home, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        return con.execute(sql).df()


def deliver(stage: Path, landing: Path, keep) -> list[str]:
    """Copy the staged files that `keep(relative path)` accepts into the landing folder."""
    copied = []
    for path in sorted(stage.rglob("*")):
        rel = path.relative_to(stage).as_posix()
        if path.is_file() and keep(rel):
            target = landing / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied.append(rel)
    return copied


def is_last_year(rel: str) -> bool:
    return re.search(rf"_{LAST_YEAR}\.(csv|xlsx)$", rel) is not None


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Three refreshes: 2011–2022, then the 2023 files, then a corrected 2015 national file."""
    root = tmp_path_factory.mktemp("incremental")
    stage = root / "stage"
    write_sample(stage, firm_scale=0.01)
    home = Home(root / "home").ensure()
    # The latest yearbook has gaps that only the next year's files make interior: carry the last
    # value forward (flagged) until then, instead of refusing the load.
    (home.root / "cityres.toml").write_text('[refresh]\nstudies = []\n[dbt_vars]\nextrapolation = "nearest"\n',
                                         encoding="utf-8")
    first_files = deliver(stage, home.landing, lambda rel: not is_last_year(rel))
    first = refresh(home)
    first_hash = hashlib.sha256(home.warehouse_db.read_bytes()).hexdigest()
    new_files = deliver(stage, home.landing, is_last_year)
    second = refresh(home)
    national = home.landing / "national" / "national_2015.csv"
    original = national.read_text(encoding="utf-8")
    corrected = re.sub(r"(居民消费价格指数\(上年=100\),)([0-9.]+)", r"\g<1>103.3", original)
    assert corrected != original
    national.write_text(corrected, encoding="utf-8")
    third = refresh(home)
    return home, first_files, new_files, (first, second, third), first_hash


def test_each_refresh_publishes_a_vintage(history):
    home, _, _, runs, _ = history
    assert [r["status"] for r in runs] == ["published"] * 3, [r["reasons"] for r in runs]
    assert len({r["vintage"] for r in runs}) == 3
    cells = query(home, """select coverage, count(*) as n from intermediate.int_city_year_values_long
        where year = 2022 group by coverage""").set_index("coverage")["n"]
    assert "extrapolated" not in cells.index  # 2022's end gaps became interior once 2023 arrived


def test_new_files_are_ingested_alone(history):
    home, first_files, new_files, (first, second, third), _ = history
    assert len(new_files) == 4  # yearbook, national, patents, enterprises of the new year
    assert sorted(second["files_loaded"]) == sorted(new_files)
    assert second["files_skipped"] == len([f for f in first_files if "/" in f])
    manifest = query(home, "select load_id, file_name from raw.load_manifest where status = 'loaded'")
    assert manifest.groupby("load_id").size().to_dict() == {
        first["vintage"]: len(first["files_loaded"]), second["vintage"]: 4, third["vintage"]: 1}


def test_the_panel_grows_with_the_new_year_and_history_stays_queryable(history):
    home, _, _, (first, second, third), _ = history
    years = query(home, "select min(year) lo, max(year) hi from resilience_index")
    assert (years["lo"].iloc[0], years["hi"].iloc[0]) == (2012, LAST_YEAR)
    vintages = query(home, """select vintage, max(year) as last_year, count(*) as n from index_history
        where index_name = 'resilience' and level = 'index' group by vintage""").set_index("vintage")
    assert vintages.loc[first["vintage"], "last_year"] == LAST_YEAR - 1
    assert vintages.loc[second["vintage"], "last_year"] == LAST_YEAR
    assert vintages.loc[first["vintage"], "n"] == 287 * 11 and vintages.loc[second["vintage"], "n"] == 287 * 12
    # Re-estimated weights revise history: the first vintage's 2016 values differ from the second's.
    both = query(home, f"""select a.score - b.score as diff from index_history a join index_history b
        using (index_name, level, node, city_code, year)
        where a.vintage = '{first["vintage"]}' and b.vintage = '{second["vintage"]}'
          and index_name = 'resilience' and level = 'index' and year = 2016""")
    assert len(both) == 287 and (both["diff"].abs() > 1e-12).sum() > 200
    report = Path(second["report"]).read_text(encoding="utf-8")
    assert "published city-year values revised" in report
    weights = query(home, "select count(distinct vintage) as n from index_weights_history")
    assert weights["n"].iloc[0] == 3


def test_a_redelivered_file_replaces_its_year_and_the_old_one_stays_archived(history):
    home, _, _, (_, second, third), _ = history
    assert third["files_loaded"] == ["national/national_2015.csv"]
    cpi = query(home, "select cpi_index from intermediate.int_national_by_year where year = 2015")
    assert cpi["cpi_index"].iloc[0] == pytest.approx(103.3)
    archived = sorted(home.archive.glob("national/*/national_2015.csv"))
    assert len(archived) == 2 and len({p.read_bytes() for p in archived}) == 2
    raw = query(home, """select count(distinct load_id) as loads from raw.national_values
        where file_name = 'national/national_2015.csv'""")
    assert raw["loads"].iloc[0] == 2  # both versions kept in raw; staging uses the newest


def test_a_refresh_without_new_files_is_a_no_op(history):
    home, _, _, _, _ = history
    before = hashlib.sha256(home.warehouse_db.read_bytes()).hexdigest()
    result = refresh(home)
    assert result["status"] == "unchanged" and not result["report"]
    assert hashlib.sha256(home.warehouse_db.read_bytes()).hexdigest() == before
    assert not home.candidate_db.exists()
