"""The marts suite's critical checks, the second line of the raw suite, the dry run and
`cityres validate`, on one published baseline built without Prefect (the refresh pipeline's
plain steps; the flow runs the same body with Prefect tasks, see test_write_audit_publish).

Checks a landing folder can violate get a corrected delivery and a real dbt build. Checks that
guard against bugs in the models (weights, index range, policy timing…) cannot be violated by
any landing file: there the candidate's marts are tampered after the (skipped) build and the
same pipeline — audit, gate, report, publish — runs on them.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import duckdb
import pytest

from flows.refresh import PLAIN_STEPS, Workspace, run_pipeline
from warehouse.dbt_runner import DbtResult
from warehouse.ingest import FileLoad, IngestSummary, new_load_id
from warehouse.paths import Home
from warehouse.publish import connect_for_write
from wap_fixtures import YEARBOOK_2022, CsvFile, copy_home, published_data_digest, sha256

pytestmark = pytest.mark.slow
TAMPERED_FILE = "city_yearbook/中国城市统计年鉴_2022_corrected.csv"


@pytest.fixture(scope="module")
def baseline(published_sample) -> Home:
    return published_sample


def failures(summary, severity: str = "critical") -> dict[tuple[str, str], dict]:
    return {(f["check"], f["relation"]): f for f in summary.expectations_failed if f["severity"] == severity}


def refresh_copy(baseline: Home, tmp_path: Path, corrupt):
    home = copy_home(baseline, tmp_path / "home")
    corrupt(home.landing)
    before = published_data_digest(home.warehouse_db)
    summary = run_pipeline(Workspace.for_refresh(home), new_load_id(), PLAIN_STEPS)
    assert summary.status == "refused"
    assert published_data_digest(home.warehouse_db) == before  # only the manifest records the attempt
    return home, summary, Path(summary.report).read_text(encoding="utf-8")


def refresh_tampered(baseline: Home, tmp_path: Path, tamper):
    """The refresh pipeline with a candidate whose marts were altered after the build.

    Ingest reports one new file and dbt is skipped (the candidate starts as a copy of the
    published warehouse, marts included); audit, gate, report and publish are the real ones.
    """
    home = copy_home(baseline, tmp_path / "home")
    vintage = new_load_id()

    def prepare(ws):
        PLAIN_STEPS.prepare(ws)
        with connect_for_write(ws.candidate) as con:
            tamper(con, vintage)

    def ingest(ws, load_id, retry_failed=False):
        return IngestSummary(load_id, [FileLoad("city_yearbook", TAMPERED_FILE, "0" * 64, "loaded", rows=1)])

    def dbt_build(ws, load_id, prepared=None):
        return DbtResult(True, "dbt build (skipped)", [], [], 0.0, "")

    steps = dataclasses.replace(PLAIN_STEPS, nothing_new=lambda ws, retry_failed=False: False, prepare=prepare, ingest=ingest,
                                dbt_build=dbt_build)
    before = published_data_digest(home.warehouse_db)
    summary = run_pipeline(Workspace.for_refresh(home), vintage, steps)
    assert summary.status == "refused", "a tampered candidate was published"
    assert published_data_digest(home.warehouse_db) == before
    return summary, Path(summary.report).read_text(encoding="utf-8")


# ---------------------------------------------------------------- landing folders that violate marts checks

def test_coverage_below_the_configured_share_is_refused(baseline, tmp_path):
    def corrupt(landing):  # the 2023 yearbook arrives with every GDP cell missing
        f = CsvFile.open(landing, "city_yearbook/中国城市统计年鉴_2023.csv")
        column = f.column("地区生产总值(万元)")
        for row in f.rows[f.header_index + 1:]:
            if len(row) > column and row[column]:
                row[column] = "—"
        f.save()

    home, summary, report = refresh_copy(baseline, tmp_path, corrupt)
    check = failures(summary)[("marts.coverage", "index_input_coverage")]
    gdp_based = {"gdp_per_capita", "trade_dependency", "consumption_capacity", "gdp_growth",
                 "financial_development", "edu_sci_expenditure_share"}
    assert check["unexpected_count"] == len(gdp_based)
    assert {r["indicator"] for r in check["example_rows"]} == {f"resilience.{i}" for i in gdp_based}
    assert all(r["year"] == 2023 and r["with_value"] == 0 and r["city_years"] == 287
               for r in check["example_rows"])
    # dbt failed on the same gap; the checks of relations it did not rebuild are skipped, and say so
    assert any(r.startswith("dbt build failed") for r in summary.reasons)
    assert any("not rebuilt" in note for note in summary.validation_notes)
    assert "[critical] marts.coverage — index_input_coverage" in report
    assert "| resilience.gdp_per_capita | 2023 | 287 | 0 |" in report


def test_a_ratio_outside_its_bounds_is_refused(baseline, tmp_path):
    cells = {}

    def corrupt(landing):  # urban employment of 石家庄 printed as 1.00 万人 (within its plausible range)
        f = CsvFile.open(landing, YEARBOOK_2022)
        row = f.rows[f.row_of("石家庄市")]
        cells["talent"] = (float(row[f.column("信息传输、软件和信息技术服务业从业人员(万人)")])
                           + float(row[f.column("科学研究和技术服务业从业人员(万人)")]))
        f.set("石家庄市", "城镇单位从业人员期末人数(万人)", "1.00")
        f.save()

    home, summary, report = refresh_copy(baseline, tmp_path, corrupt)
    assert set(failures(summary)) == {("marts.ratio_bounds", "ratio_indicators")}
    (example,) = failures(summary)[("marts.ratio_bounds", "ratio_indicators")]["example_rows"]
    assert (example["indicator"], example["city_code"], example["year"]) == ("tech_talent_share", "130100", 2022)
    assert example["value"] == pytest.approx(cells["talent"] / 1.0, rel=1e-12)
    assert "tech_talent_share within [0, 1]" in report


def test_an_enterprise_file_with_an_impossible_date_is_refused(baseline, tmp_path):
    def corrupt(landing):
        f = CsvFile.open(landing, "enterprises/registrations_2022.csv")
        f.rows[5][2] = "2022-13-45"  # line 6 of the file
        f.save()

    home, summary, report = refresh_copy(baseline, tmp_path, corrupt)
    check = failures(summary)[("raw.numeric_cells", "enterprises.dates")]
    (example,) = check["example_rows"]
    assert example["file_name"] == "enterprises/registrations_2022.csv"
    assert example["first_bad_date_row"] == 6 and example["bad_dates"] == 1
    assert set(failures(summary)) == {("raw.numeric_cells", "enterprises.dates")}
    assert "enterprises/registrations_2022.csv" in report


# ---------------------------------------------------------------- model bugs: tampered candidates

def _sql(*statements):
    return lambda con, vintage: [con.execute(s) for s in statements]


TREATED_2016 = "policy = 'big_data_pilot_zone' and city_code = '110000'"  # Beijing, adopted 2016
RESILIENCE = "index_name = 'resilience'"

TAMPERS = {
    "index above one": (_sql("update main.resilience_index set res = 1.5 "
                             "where city_code = '110000' and year = 2023"),
                        ("marts.index_in_unit_interval", "resilience_index"),
                        {"city_code": "110000", "year": 2023, "res": 1.5}),
    "index missing": (_sql("update main.resilience_index set res = null "
                           "where city_code = '120000' and year = 2020"),
                      ("marts.not_null", "resilience_index"), {"city_code": "120000", "year": 2020}),
    "empty index": (_sql("delete from main.resilience_index"), ("marts.not_empty", "resilience_index"), None),
    "negative weight": (_sql(f"update main.index_weights set weight = weight + 0.5 where {RESILIENCE} and indicator = 'patents_granted'",
                             f"update main.index_weights set weight = weight - 0.5 where {RESILIENCE} and indicator = 'trade_dependency'"),
                        ("marts.weights_valid", "index_weights"), {"indicator": "trade_dependency"}),
    "weights off one": (_sql(f"update main.index_weights set weight = weight + 1e-9 where {RESILIENCE} and indicator = 'human_capital'"),
                        ("marts.weights_sum_to_one", "index_weight_totals"), {"index_name": "resilience"}),
    "post switches off": (_sql(f"update main.policy_panel set post = false, did = 0 where {TREATED_2016} and year = 2020"),
                          ("marts.post_never_switches_off", "policy_panel"), {"city_code": "110000", "year": 2020}),
    "event time shifted": (_sql("update main.policy_panel set event_time = event_time + 1 "
                                "where policy = 'ip_demonstration_city' and treat"),
                           ("marts.event_time_consistent", "policy_panel"), {"policy": "ip_demonstration_city"}),
    "policy panel dropped": (_sql("drop table main.policy_panel"), ("marts.suite_runs", "(suite)"), None),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_a_model_bug_caught_by_a_critical_marts_check_blocks_publishing(baseline, tmp_path, case):
    tamper, key, example = TAMPERS[case]
    summary, report = refresh_tampered(baseline, tmp_path, tamper)
    failed = failures(summary)
    assert key in failed, sorted(failed)
    if example is not None:
        assert any(example.items() <= row.items() for row in failed[key]["example_rows"]), failed[key]
    assert f"[critical] {key[0]} — {key[1]}" in report
    assert key[0] in " ".join(summary.reasons)


def test_weight_checks_are_specific(baseline, tmp_path):
    """A negative weight that keeps the sum at 1 trips one check; a sum off by 1e-9 the other."""
    negative, _, _ = TAMPERS["negative weight"]
    summary, _ = refresh_tampered(baseline, tmp_path / "a", negative)
    assert set(failures(summary)) == {("marts.weights_valid", "index_weights")}
    off, _, _ = TAMPERS["weights off one"]
    summary, _ = refresh_tampered(baseline, tmp_path / "b", off)
    assert set(failures(summary)) == {("marts.weights_sum_to_one", "index_weight_totals")}
    check = failures(summary)[("marts.weights_sum_to_one", "index_weight_totals")]
    with duckdb.connect(str(baseline.warehouse_db), read_only=True) as con:  # one per scope and year
        groups = con.execute(f"select count(*) from index_weights where {RESILIENCE} "
                             "and indicator = 'human_capital'").fetchone()[0]
    assert check["unexpected_count"] == groups >= 1
    assert all(r["index_name"] == "resilience" and r["weight_total"] == pytest.approx(1 + 1e-9, abs=1e-13)
               for r in check["example_rows"])


def test_shifted_event_times_are_counted_exactly(baseline, tmp_path):
    with duckdb.connect(str(baseline.warehouse_db), read_only=True) as con:
        treated = con.execute("select count(*) from policy_panel "
                              "where policy = 'ip_demonstration_city' and treat").fetchone()[0]
    tamper, key, _ = TAMPERS["event time shifted"]
    summary, _ = refresh_tampered(baseline, tmp_path, tamper)
    assert set(failures(summary)) == {key}
    (check,) = [f for f in summary.expectations_failed if f["description"].startswith("policy_panel: event_time")]
    assert check["unexpected_count"] == treated > 0


def test_an_unresolvable_name_that_slipped_past_ingest_is_caught_by_the_raw_suite(baseline, tmp_path):
    def tamper(con, vintage):  # rows an older ingest let through: the GX raw suite is the second line
        con.execute("insert into raw.load_manifest by name select ? as load_id, 'city_yearbook' as source, "
                    "? as file_name, ? as sha256, 10 as bytes, 'utf-8' as encoding, 2022 as year, 1 as rows, "
                    "'loaded' as status, '' as archived_path, now() as loaded_at", [vintage, TAMPERED_FILE, "0" * 64])
        con.execute("insert into raw.city_cells by name select ? as load_id, 'city_yearbook' as source, "
                    "? as file_name, 2022 as year, 5 as source_row, 2 as source_col, 'city' as row_kind, "
                    "'乌托邦市' as city_name_text, '乌托邦市' as city_key, '年末户籍人口(万人)' as header_text, "
                    "'12.5' as value_text, 'pop_total' as variable, 'value' as column_kind",
                    [vintage, TAMPERED_FILE])

    summary, report = refresh_tampered(baseline, tmp_path, tamper)
    check = failures(summary)[("raw.city_names_resolve", "city_yearbook.rows")]
    assert list(check["example_rows"]) == [{"city_code": None, "file_name": TAMPERED_FILE, "source_row": 5,
                                            "city_name_text": "乌托邦市"}]
    assert "乌托邦市" in report and TAMPERED_FILE in report


# ---------------------------------------------------------------- cityres validate and the dry run

def _cli(monkeypatch, home: Home, *args: str):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("CITYRES_HOME", str(home.root))  # the CLI sets these; restore them afterwards
    monkeypatch.setenv("PREFECT_HOME", str(home.root / "prefect"))
    return CliRunner().invoke(app, ["validate", "--home", str(home.root), *args])


def test_cli_validate_checks_the_published_warehouse_without_changing_it(baseline, tmp_path, monkeypatch):
    home = copy_home(baseline, tmp_path / "home")
    before = sha256(home.warehouse_db)
    clean = _cli(monkeypatch, home)
    assert clean.exit_code == 0, clean.output
    assert "passed" in clean.output and "0 failed" in clean.output
    with connect_for_write(home.warehouse_db) as con:  # damage the published warehouse itself
        con.execute(f"update main.policy_panel set post = false where {TREATED_2016} and year = 2021")
    damaged = sha256(home.warehouse_db)
    result = _cli(monkeypatch, home)
    assert result.exit_code == 1, result.output
    assert "marts.post_never_switches_off" in result.output
    assert sha256(home.warehouse_db) == damaged != before
    reports = sorted(home.reports.glob("validate-*/report.md"))
    assert len(reports) == 2 and "[critical] marts.post_never_switches_off" in reports[-1].read_text("utf-8")
    assert (reports[-1].parent / "gx" / "index.html").exists()


def test_dry_run_reports_what_a_landing_folder_would_do_and_changes_nothing(baseline, tmp_path, monkeypatch):
    home = copy_home(baseline, tmp_path / "home")
    delivery = tmp_path / "delivery"
    (delivery / "national").mkdir(parents=True)
    f = CsvFile.open(home.landing, "national/national_2022.csv")
    f.path = delivery / "national" / "national_2022.csv"
    f.rows = [row for row in f.rows if not (row and row[0].startswith("居民消费价格指数"))]  # no CPI
    f.save()
    before = sha256(home.warehouse_db)
    archived = sorted(p.relative_to(home.archive) for p in home.archive.rglob("*"))
    result = _cli(monkeypatch, home, "--landing", str(delivery))
    assert result.exit_code == 1, result.output
    assert "would refuse" in result.output and "raw.required_columns" in result.output
    assert sha256(home.warehouse_db) == before
    assert sorted(p.relative_to(home.archive) for p in home.archive.rglob("*")) == archived
    assert not home.candidate_db.exists() and not (home.root / "dry-run").exists()
    (report,) = home.reports.glob("dry-*/report.md")
    text = report.read_text(encoding="utf-8")
    assert "Dry run: nothing was published" in text and "| national/national_2022.csv | cpi_index |" in text
    saved = json.loads((report.parent / "validation.json").read_text(encoding="utf-8"))
    assert not saved["publishable"]


def test_dry_run_of_a_file_ingest_refuses_names_the_row(baseline, tmp_path, monkeypatch):
    home = copy_home(baseline, tmp_path / "home")
    delivery = tmp_path / "delivery" / "historical"
    delivery.mkdir(parents=True)
    (delivery / "telephones_1984_extra.csv").write_text("城市,每百人固定电话数(部)\n石家庄市,1.2\n乌托邦市,0.5\n",
                                                      encoding="utf-8")
    before = sha256(home.warehouse_db)
    result = _cli(monkeypatch, home, "--landing", str(delivery.parent))
    assert result.exit_code == 1, result.output
    assert "would refuse" in result.output and "乌托邦市" in result.output
    assert sha256(home.warehouse_db) == before
    (report,) = home.reports.glob("dry-*/report.md")
    assert "historical/telephones_1984_extra.csv row 3" in report.read_text(encoding="utf-8")
