"""Every delivery can be corrected, brought back or withdrawn, and each vintage stays queryable.

The refreshes run the real pipeline (plain steps, no Prefect) on a copy of the published sample:
v1 → v2 → v1 of one yearbook, a CSV replaced by a CNKI workbook of the same numbers, and a
withdrawal with `cityres landing withdraw`; `index_history` keeps every vintage.
"""
from __future__ import annotations

import duckdb
import pytest
from wap_fixtures import YEARBOOK_2022, CsvFile, cli, copy_home

from flows.refresh import PLAIN_STEPS, Workspace, run_pipeline
from tests import delivery_corpus as corpus
from warehouse.deliveries import DeliveryConfig, in_force, plan_landing
from warehouse.ingest import ingest_landing, new_load_id
from warehouse.paths import Home

YEARBOOK_2017 = "city_yearbook/中国城市统计年鉴_2017.csv"
CNKI_2017 = "city_yearbook/2-1 地级及以上城市主要统计指标 2017.xlsx"
YEARBOOKS_2018_2019 = ("city_yearbook/中国城市统计年鉴_2018.csv", "city_yearbook/中国城市统计年鉴_2019.xlsx")
PANEL_2018_2019 = "city_yearbook/城市面板 2018-2019.csv"
YEARBOOK_2020 = "city_yearbook/中国城市统计年鉴_2020.csv"
EPS_2020 = "city_yearbook/EPS 城市数据 2020.csv"


def refresh(home: Home) -> tuple[str, object]:
    vintage = new_load_id()
    summary = run_pipeline(Workspace.for_refresh(home), vintage, PLAIN_STEPS)
    assert summary.status == "published", summary.reasons
    return vintage, summary


def query(home: Home, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def scores(home: Home, vintage: str) -> dict:
    rows = query(home, "select index_name, level, node, city_code, year, score from index_history "
                       "where vintage = ?", [vintage])
    return {r[:5]: r[5] for r in rows}


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    # the entropy sums run in parallel in DuckDB: equal inputs agree to rounding, not to the bit
    worst = max(abs(a[k] - b[k]) for k in a if a[k] is not None)
    assert worst < 1e-12


@pytest.fixture()
def home(published_sample, tmp_path) -> Home:
    return copy_home(published_sample, tmp_path / "home")


def test_v1_v2_v1_a_csv_replaced_by_a_workbook_and_a_withdrawal(home, tmp_path):
    (v0,) = {r[0] for r in query(home, "select distinct vintage from index_history")}
    original = (home.landing / YEARBOOK_2022).read_bytes()
    gdp_2022 = "select value from intermediate.int_city_yearbook_values where city_code = '130100' " \
               "and year = 2022 and variable = 'gdp'"
    (gdp_v1,) = query(home, gdp_2022)[0]

    # v2: a corrected 2022 yearbook replaces v1
    f = CsvFile.open(home.landing, YEARBOOK_2022)
    header = next(h for h in f.rows[f.header_index] if h.startswith("地区生产总值"))
    f.set("石家庄市", header, str(round(float(f.rows[f.row_of("石家庄市")][f.column(header)]) * 1.05, 2)))
    f.save()
    v2, summary = refresh(home)
    assert summary.files_loaded == [YEARBOOK_2022]
    (gdp_v2,) = query(home, gdp_2022)[0]
    assert gdp_v2 == pytest.approx(gdp_v1 * 1.05, rel=1e-4)
    assert scores(home, v2) != scores(home, v0)

    # v1 again; 2017 re-delivered as a CNKI workbook, 2018-2019 as one sheet, 2020 as an EPS
    # long table - the same numbers in other layouts, the files they replace withdrawn
    (home.landing / YEARBOOK_2022).write_bytes(original)
    corpus.write_cnki_xlsx(corpus.read_wide(home.landing / YEARBOOK_2017), home.landing / CNKI_2017)
    corpus.write_multi_year([corpus.read_wide(home.landing / name) for name in YEARBOOKS_2018_2019],
                            home.landing / PANEL_2018_2019)
    corpus.write_eps_long_csv(corpus.read_wide(home.landing / YEARBOOK_2020), home.landing / EPS_2020)
    replaced = sorted([YEARBOOK_2017, *YEARBOOKS_2018_2019, YEARBOOK_2020])
    for name in replaced:
        (home.landing / name).unlink()
    v3, summary = refresh(home)
    assert sorted(summary.files_loaded) == sorted([YEARBOOK_2022, CNKI_2017, PANEL_2018_2019, EPS_2020])
    assert summary.files_withdrawn == replaced
    assert query(home, gdp_2022) == [(gdp_v1,)]
    assert_close(scores(home, v3), scores(home, v0))  # v1 is back, and every layout reads as the CSV did
    manifest = query(home, "select file_name, status, years from raw.load_manifest where load_id = ? order by 1",
                     [v3])
    assert manifest == sorted([(CNKI_2017, "loaded", [2017]), (PANEL_2018_2019, "loaded", [2018, 2019]),
                               (EPS_2020, "loaded", [2020]), (YEARBOOK_2022, "loaded", [2022]),
                               *[(name, "withdrawn", None) for name in replaced]])

    # withdraw the workbook: 2017 leaves the panel's delivered values
    out = cli(home, "landing", "withdraw", CNKI_2017)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (home.landing / CNKI_2017).exists()
    status = cli(home, "landing", "status", "--json")
    assert '"state": "pending: withdrawal (no longer in the landing folder)"' in status.stdout
    v4, summary = refresh(home)
    assert summary.files_withdrawn == [CNKI_2017]
    assert query(home, "select count(*) from intermediate.int_city_yearbook_values where year = 2017") == [(0,)]
    assert {r[0] for r in query(home, "select distinct vintage from index_history")} == {v0, v2, v3, v4}
    assert_close(scores(home, v0), scores(home, v3))  # history is kept as published
    status = cli(home, "landing", "status", "--json")
    assert f'"file": "{CNKI_2017}",\n    "state": "withdrawn"' in status.stdout
    assert f'"file": "{YEARBOOK_2022}",\n    "state": "in force"' in status.stdout


def test_plan_reloads_changed_and_returning_content_and_withdraws_missing_files(tmp_path):
    """The lifecycle rules on a small landing folder, without dbt."""
    landing = tmp_path / "landing"
    path = landing / "historical" / "telephones_1984.csv"
    path.parent.mkdir(parents=True)
    v1, v2 = "城市,每百人固定电话数(部)\n北京市,1.2\n", "城市,每百人固定电话数(部)\n北京市,1.3\n"
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    config = DeliveryConfig.shipped()

    def load(text: str | None):
        if text is None:
            path.unlink()
        else:
            path.write_text(text, encoding="utf-8")
        return ingest_landing(con, landing, tmp_path / "archive", load_id=new_load_id(), config=config)

    def value_in_force():
        (load_id,) = [row.load_id for row in in_force(con).values()] or [None]
        rows = con.execute("select value_text from raw.city_cells where load_id = ? and row_kind = 'city'",
                           [load_id]).fetchall()
        return rows[0][0] if rows else None

    assert [f.why for f in load(v1).loaded] == ["new"] and value_in_force() == "1.2"
    assert load(v1).loaded == []  # unchanged: nothing to do
    assert [f.why for f in load(v2).loaded] == ["changed"] and value_in_force() == "1.3"
    assert [f.why for f in load(v1).loaded] == ["changed"] and value_in_force() == "1.2"  # v1 is back
    summary = load(None)
    assert [f.file_name for f in summary.withdrawn] == ["historical/telephones_1984.csv"]
    assert in_force(con) == {} and not plan_landing(con, landing, config).has_work
    assert [f.why for f in load(v1).loaded] == ["new"] and value_in_force() == "1.2"


def test_a_changed_mapping_re_reads_the_files_it_concerns(tmp_path):
    landing = tmp_path / "landing"
    path = landing / "historical" / "telephones_1984.csv"
    path.parent.mkdir(parents=True)
    path.write_text("城市,每百人固定电话数(部),备注列\n北京市,1.2,x\n", encoding="utf-8")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    home = Home(tmp_path / "home")
    refused = ingest_landing(con, landing, tmp_path / "archive", config=DeliveryConfig.for_home(home))
    (failed,) = refused.failed
    assert "header '备注列' is not mapped for historical" in failed.error and "column 3" in failed.error
    # unchanged and still unmapped: not tried again
    assert ingest_landing(con, landing, tmp_path / "archive", config=DeliveryConfig.for_home(home)).files[0].status \
        == "skipped"
    (home.root / "mappings").mkdir(parents=True)
    (home.root / "mappings" / "headers.csv").write_text("source,header,variable\nhistorical,备注列,ignore\n",
                                                        encoding="utf-8")
    summary = ingest_landing(con, landing, tmp_path / "archive", config=DeliveryConfig.for_home(home))
    assert [(f.status, f.why) for f in summary.files] == [("loaded", "new")]
    kinds = dict(con.execute("select column_kind, count(*) from raw.city_cells where row_kind = 'city' "
                             "group by 1").fetchall())
    assert kinds == {"value": 1, "ignored": 1}
    # the mapping changes again (a unit line added): the file in force is re-read, not duplicated
    (home.root / "mappings" / "units.csv").write_text("unit,canonical_unit,factor\n线,部/百人,1\n", encoding="utf-8")
    summary = ingest_landing(con, landing, tmp_path / "archive", config=DeliveryConfig.for_home(home))
    assert [(f.status, f.why) for f in summary.files] == [("loaded", "re-read")]
    assert "re-read from its archived copy" in summary.files[0].note
    assert len(in_force(con)) == 1


def test_a_dry_run_of_a_delivery_folder_withdraws_nothing(tmp_path):
    """`cityres validate --landing DIR` asks what adding DIR's files would do: the files in force
    that DIR does not hold stay in force (only a dry run of the landing folder itself withdraws)."""
    home = Home(tmp_path / "home").ensure()
    assert Workspace.for_refresh(home).withdraw_missing
    assert not Workspace.for_dry_run(home, tmp_path / "delivery", tmp_path / "scratch").withdraw_missing
    assert Workspace.for_dry_run(home, home.landing, tmp_path / "scratch").withdraw_missing
    landing = tmp_path / "landing"
    path = landing / "historical" / "telephones_1984.csv"
    path.parent.mkdir(parents=True)
    path.write_text("城市,每百人固定电话数(部)\n北京市,1.2\n", encoding="utf-8")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest_landing(con, landing, tmp_path / "archive")
    delivery = tmp_path / "delivery"
    (delivery / "historical").mkdir(parents=True)
    summary = ingest_landing(con, delivery, tmp_path / "archive", withdraw_missing=False)
    assert summary.withdrawn == [] and list(in_force(con)) == ["historical/telephones_1984.csv"]
    summary = ingest_landing(con, delivery, tmp_path / "archive")
    assert [f.file_name for f in summary.withdrawn] == ["historical/telephones_1984.csv"]
