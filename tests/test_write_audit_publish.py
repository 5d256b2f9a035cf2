"""Write-audit-publish through the Prefect refresh flow: a load that violates a critical raw
expectation is refused, the report names the problem (file, row, column), the published
warehouse stays byte-for-byte the same; a load with warnings only is published and reported.

One Prefect test harness and one published baseline (the sample, few firms) per module; each
test corrects one file of the 2022 yearbook (an interior year) in a private copy of the home.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from scipy.stats import ks_2samp

from warehouse.paths import Home
from wap_fixtures import YEARBOOK_2022, CsvFile, copy_home, manifest_rows, published_data_digest

pytestmark = pytest.mark.slow
GDP = "地区生产总值(万元)"


@pytest.fixture(scope="module")
def baseline(published_sample, prefect_harness) -> Home:
    """The session's published sample; each test refreshes a copy of it through the Prefect flow."""
    return published_sample


def refresh_copy(baseline: Home, tmp_path: Path, corrupt) -> tuple[Home, dict, str]:
    """Copy the published home, re-deliver a corrected file, refresh; a refused load changes no
    published data and leaves its attempts in the published manifest."""
    from flows.refresh import refresh

    home = copy_home(baseline, tmp_path / "home")
    corrupt(home.landing)
    before, manifest_before = published_data_digest(home.warehouse_db), manifest_rows(home.warehouse_db)
    result = refresh(home_dir=str(home.root))
    if result["status"] == "refused":
        assert published_data_digest(home.warehouse_db) == before, "a refused load changed published data"
        assert not (home.root / "warehouse.duckdb.wal").exists()
        after = manifest_rows(home.warehouse_db)
        assert after[: len(manifest_before)] == manifest_before  # nothing lost
        attempts = [r for r in after[len(manifest_before):]]
        assert attempts and all(r[0] == result["vintage"] and r[3] in ("failed", "refused") for r in attempts)
    return home, result, Path(result["report"]).read_text(encoding="utf-8")


def failed(result: dict, severity: str = "critical") -> dict[str, dict]:
    return {f["check"]: f for f in result["expectations_failed"] if f["severity"] == severity}


def city_rows(home: Home, file_name: str) -> int:
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        return con.execute("select count(distinct source_row) from raw.city_cells "
                           "where file_name = ? and row_kind = 'city'", [file_name]).fetchone()[0]


def assert_reported(home: Home, result: dict, report: str, check: str, *needles: str) -> None:
    """The report (Markdown and HTML), validation.json and the candidate all name the failure."""
    html = Path(result["report_html"]).read_text(encoding="utf-8")
    for text in (check, *needles):
        assert text in report, text
        assert text in html, text
    assert f"[critical] {check}" in report
    assert any(check in reason for reason in result["reasons"])
    saved = json.loads((Path(result["report"]).parent / "validation.json").read_text(encoding="utf-8"))
    assert saved["publishable"] is False
    assert any(r["check"] == check and not r["success"] for r in saved["results"])
    with duckdb.connect(str(home.candidate_db), read_only=True) as con:  # kept for inspection
        rows = con.execute("select count(*) from main.validation_results where vintage = ? "
                           "and check_name = ? and not success", [result["vintage"], check]).fetchone()[0]
    assert rows >= 1
    assert (Path(result["report"]).parent / result["gx_docs"]).exists()


# ---------------------------------------------------------------- one corruption per critical check

def rename_gdp_header(landing: Path) -> None:
    f = CsvFile.open(landing, YEARBOOK_2022)
    f.rows[f.header_index][f.column(GDP)] = "地区总产值(万元)"
    f.save()


def test_a_renamed_header_is_refused_at_ingest_with_the_closest_known_header(baseline, tmp_path):
    home, result, report = refresh_copy(baseline, tmp_path, rename_gdp_header)
    assert result["status"] == "refused"
    (failure,) = result["files_failed"]
    assert failure["error"].startswith(YEARBOOK_2022)
    assert "column 5: header '地区总产值(万元)' is not mapped for city_yearbook" in failure["error"]
    assert "the closest known header is '地区生产总值'" in failure["error"]
    assert "地区总产值" in report


def test_a_required_column_mapped_to_ignore_is_refused(baseline, tmp_path):
    """Ignoring a header is explicit (mappings/headers.csv) - and a required variable then
    missing is still refused by the raw suite, which names the ignored header."""
    def corrupt(landing):
        rename_gdp_header(landing)
        (landing.parent / "mappings").mkdir()
        (landing.parent / "mappings" / "headers.csv").write_text("header,variable\n地区总产值,ignore\n",
                                                                  encoding="utf-8")

    home, result, report = refresh_copy(baseline, tmp_path, corrupt)
    assert result["status"] == "refused"
    assert set(failed(result)) == {"raw.required_columns"}
    (example,) = failed(result)["raw.required_columns"]["example_rows"]
    assert example == {"present": False, "file_name": YEARBOOK_2022, "variable": "gdp",
                       "ignored_headers": "地区总产值(万元)"}
    assert_reported(home, result, report, "raw.required_columns", YEARBOOK_2022, "地区总产值(万元)")


def test_a_cell_that_is_not_a_number_is_refused_at_ingest_naming_file_row_and_column(baseline, tmp_path):
    cell = {}

    def corrupt(landing):
        f = CsvFile.open(landing, YEARBOOK_2022)
        cell["at"] = f.set("石家庄市", GDP, "12,3a")  # once read as 123
        f.save()

    home, result, report = refresh_copy(baseline, tmp_path, corrupt)
    assert result["status"] == "refused"
    row, col = cell["at"]
    (failure,) = result["files_failed"]
    assert failure["file"] == YEARBOOK_2022
    assert f"row {row}, column {col} ({GDP}): '12,3a'" in failure["error"]
    assert "thousands separators only in groups of three" in failure["error"]
    assert failure["error"] in report and "12,3a" in Path(result["report_html"]).read_text("utf-8")
    # the refusal is in the published manifest, and the unchanged file is not read again
    (attempt,) = [r for r in manifest_rows(home.warehouse_db) if r[0] == result["vintage"]]
    assert attempt[1:] == (YEARBOOK_2022, attempt[2], "failed", failure["error"])
    from flows.refresh import refresh

    again = refresh(home_dir=str(home.root))
    assert again["status"] == "unchanged"


def test_an_unknown_unit_is_refused_at_ingest_saying_how_to_convert_it(baseline, tmp_path):
    def corrupt(landing):
        f = CsvFile.open(landing, YEARBOOK_2022)
        f.rows[f.header_index][f.column(GDP)] = "地区生产总值(千元)"
        f.save()

    home, result, report = refresh_copy(baseline, tmp_path, corrupt)
    assert result["status"] == "refused"
    (failure,) = result["files_failed"]
    assert ("header '地区生产总值(千元)' is gdp (yearbook_headers.csv line 5) but its unit '千元' does not convert "
            "to 万元; add a line '千元,万元,<factor>' to mappings/units.csv") in failure["error"]
    assert "地区生产总值(千元)" in report


def test_a_value_outside_its_plausible_range_is_refused(baseline, tmp_path):
    cell = {}

    def corrupt(landing):  # 12 万元: a GDP printed in 亿元 under a 万元 header, say
        f = CsvFile.open(landing, YEARBOOK_2022)
        cell["at"] = f.set("石家庄市", GDP, "12")
        f.save()

    home, result, report = refresh_copy(baseline, tmp_path, corrupt)
    assert result["status"] == "refused"
    check = failed(result)["raw.plausible_range"]
    row, col = cell["at"]
    assert check["unexpected_count"] == 1 and check["threshold"] == "[100000, 2e+09]"
    assert check["example_rows"][0]["value"] == 12.0
    assert (check["example_rows"][0]["source_row"], check["example_rows"][0]["source_col"]) == (row, col)
    # the marts see it too (GDP-based ratios explode), but the raw check names the cell
    assert set(failed(result)) <= {"raw.plausible_range", "marts.ratio_bounds"}
    assert_reported(home, result, report, "raw.plausible_range", "gdp within its plausible range")


def test_a_city_delivered_twice_for_a_year_is_refused(baseline, tmp_path):
    def corrupt(landing):
        f = CsvFile.open(landing, YEARBOOK_2022)
        r = f.row_of("石家庄市")
        f.rows.insert(r + 1, list(f.rows[r]))
        f.save()

    home, result, report = refresh_copy(baseline, tmp_path, corrupt)
    assert result["status"] == "refused"
    assert set(failed(result)) == {"raw.unique_city_year"}
    # dbt's own uniqueness test fails too - said in words (the test id stays in the report) -, yet
    # the raw suite still runs on the delivery views
    assert any("int_city_yearbook_values: each (city_code, year, variable) must appear once" in r
               and "city_code '130100', year 2022" in r for r in result["reasons"])
    assert "unique_combination_int_city_yearbook_values" in report
    rows = failed(result)["raw.unique_city_year"]["example_rows"]
    assert {(r["city_code"], r["year"], r["source_row"]) for r in rows} == {("130100", 2022, 6), ("130100", 2022, 7)}
    assert_reported(home, result, report, "raw.unique_city_year", "130100")


def test_a_file_with_too_few_city_rows_is_refused(baseline, tmp_path):
    removed = {}

    def corrupt(landing):  # Guangdong's subtotal and its 21 cities are missing from the file
        f = CsvFile.open(landing, YEARBOOK_2022)
        start = f.row_of("广东省")
        end = next(i for i in range(start + 1, len(f.rows)) if f.rows[i][0].endswith(("省", "自治区")))
        removed["cities"] = end - start - 1
        del f.rows[start:end]
        f.save()

    home, result, report = refresh_copy(baseline, tmp_path, corrupt)
    assert result["status"] == "refused"
    assert set(failed(result)) == {"raw.row_count_band"}
    (example,) = failed(result)["raw.row_count_band"]["example_rows"]
    assert removed["cities"] == 21
    assert example["city_rows"] == city_rows(baseline, YEARBOOK_2022) - 21
    assert example["expected_rows"] == 297  # reference cities existing in 2022 (Sansha included)
    assert example["row_ratio"] == pytest.approx(example["city_rows"] / 297, abs=1e-12)
    assert_reported(home, result, report, "raw.row_count_band", YEARBOOK_2022)


# ---------------------------------------------------------------- warnings publish, and are reported

def test_a_load_with_warnings_only_is_published_with_jumps_and_drift_reported(baseline, tmp_path):
    def corrupt(landing):
        f = CsvFile.open(landing, "city_yearbook/中国城市统计年鉴_2023.csv")
        sci, beds = f.column("科学技术支出(万元)"), f.column("医院床位数(张)")
        for row in f.rows[f.header_index + 1:]:
            for column, factor in ((sci, 3), (beds, 2)):  # ln 3 > 1: a jump; beds: drift only
                if len(row) > column and row[column].isdigit():
                    row[column] = str(int(row[column]) * factor)
        f.save()

    home, result, report = refresh_copy(baseline, tmp_path, corrupt)
    assert result["status"] == "published", result["reasons"]
    assert failed(result, "critical") == {}
    warnings = failed(result, "warning")
    assert set(warnings) == {"marts.yoy_jumps", "marts.drift"}
    jumps = warnings["marts.yoy_jumps"]
    assert jumps["unexpected_count"] >= 250
    assert all(r["variable"] == "sci_expenditure" and r["year"] == 2023 for r in jumps["example_rows"])
    assert all(r["file_name"] == "city_yearbook/中国城市统计年鉴_2023.csv" and r["source_col"] == 16
               for r in jumps["example_rows"])
    drifted = {(r["index_name"], r["indicator"]): r["ks_statistic"] for r in warnings["marts.drift"]["example_rows"]}
    assert ("resilience", "hospital_beds_per_10k") in drifted
    sql = "select value from intermediate.int_index_inputs where index_name = ? and indicator = ? and value is not null"
    with duckdb.connect(str(baseline.warehouse_db), read_only=True) as old, \
            duckdb.connect(str(home.warehouse_db), read_only=True) as new:
        for key, statistic in drifted.items():  # each reported KS statistic, recomputed from both vintages
            expected = ks_2samp(old.execute(sql, list(key)).df()["value"], new.execute(sql, list(key)).df()["value"])
            assert statistic == pytest.approx(expected.statistic, abs=1e-12) and statistic > 0.05, key
        old_index = old.execute("select * from resilience_index").df()
        new_index = new.execute("select * from resilience_index").df()
        stored = new.execute("select severity, success, check_name from main.validation_results "
                             "where vintage = ? and not success order by check_name",
                             [result["vintage"]]).fetchall()
    assert stored == [("warning", False, "marts.drift"), ("warning", False, "marts.yoy_jumps")]
    both = old_index.merge(new_index, on=["city_code", "year"], suffixes=("_old", "_new"))
    revised = int(((both["res_new"] - both["res_old"]).abs() > 1e-12).sum())
    assert revised > 0
    assert "[warning] marts.yoy_jumps" in report and "[warning] marts.drift" in report
    assert f"{revised} of {len(both)} published city-year values revised" in report
    assert "| 2023 | 0 | 287 | 0 |" in report  # every panel city's 2023 changed, none new
