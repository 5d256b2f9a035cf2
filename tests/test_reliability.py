"""Nothing lost, nothing silently wrong: bad deliveries, invalid configuration, and queries that
try to escape the sandbox (crashes and concurrency: test_crash_and_concurrency.py). Each case asserts the published warehouse
(its data, or its bytes), the archive's integrity and a clear message."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import duckdb
import pytest
from wap_fixtures import cli, copy_home, manifest_rows, published_data_digest, sha256

from warehouse.ingest import ingest_landing
from warehouse.paths import Home

pytestmark = pytest.mark.slow
BAD = Path(__file__).parent / "fixtures" / "bad"


@pytest.fixture(scope="module")
def baseline(published_sample) -> Home:
    return published_sample


# ---------------------------------------------------------------- bad deliveries, refused at ingest

def test_bad_deliveries_are_refused_at_ingest_with_file_row_and_column(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(BAD, landing, ignore=shutil.ignore_patterns("README.md"))
    huge = landing / "city_yearbook" / "yearbook_2021_huge_cell.csv"
    huge.write_text("城市,年末户籍人口(万人)\n石家庄市,\"" + "9" * 5_000_000 + "\"\n", encoding="utf-8")
    (landing / "city_yearbook" / "yearbook_2020_link.csv").symlink_to("/etc/passwd")
    (landing / "national").mkdir()
    (landing / "national" / "stolen").symlink_to("/etc", target_is_directory=True)
    con = duckdb.connect()
    summary = ingest_landing(con, landing, tmp_path / "archive")
    errors = {f.file_name: f.error for f in summary.files}
    assert all(f.status == "failed" for f in summary.files), errors
    expected = {
        "city_yearbook/yearbook_2022_bad_cell.csv": ["row 3, column 3 (地区生产总值(亿元)): '12,3a'",
                                                     "thousands separators only in groups of three"],
        "city_yearbook/yearbook_2022_word_in_cell.csv": ["row 3, column 2 (年末户籍人口(万人)): '约1123'"],
        "city_yearbook/yearbook_2022_truncated.csv": ["row 4", "looks truncated"],
        "city_yearbook/yearbook_2022_gbk_with_a_utf8_row.csv": ["GBK/GB18030 text (first invalid byte at row 4",
                                                                "one encoding throughout"],
        "city_yearbook/yearbook_without_year.csv": ["no year"],
        "city_yearbook/yearbook_2021_huge_cell.csv": ["row 2", "longer than 100,000 characters"],
        "city_yearbook/yearbook_2020_link.csv": ["symbolic link", "not followed"],
        "national/stolen": ["symbolic link (to a folder)"],
    }
    assert set(errors) == set(expected)
    for name, needles in expected.items():
        for needle in needles:
            assert needle in errors[name], (name, errors[name])
        assert errors[name].startswith(name)  # every message names its file first
    assert con.execute("select count(*) from raw.city_cells").fetchone()[0] == 0
    # nothing outside the landing folder was read or archived
    archived = [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    assert not any(p.read_bytes().startswith(b"root:") for p in archived)
    assert not any("passwd" in p.name or "stolen" in str(p) for p in archived)


def test_a_refused_file_is_recorded_in_the_published_manifest_and_not_read_again(baseline, tmp_path):
    home = copy_home(baseline, tmp_path / "home")
    shutil.copy2(BAD / "city_yearbook" / "yearbook_2022_bad_cell.csv", home.landing / "city_yearbook")
    before, manifest_before = published_data_digest(home.warehouse_db), manifest_rows(home.warehouse_db)
    first = cli(home, "refresh")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "row 3, column 3 (地区生产总值(亿元)): '12,3a'" in first.stdout
    assert "Traceback" not in first.stdout + first.stderr
    assert published_data_digest(home.warehouse_db) == before
    added = manifest_rows(home.warehouse_db)[len(manifest_before):]
    assert [(r[1], r[3]) for r in added] == [("city_yearbook/yearbook_2022_bad_cell.csv", "failed")]
    assert "'12,3a'" in added[0][4]
    # unchanged: not re-ingested, and decided without starting Prefect
    started = time.monotonic()
    again = cli(home, "refresh")
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert time.monotonic() - started < 15
    assert manifest_rows(home.warehouse_db)[len(manifest_before):] == added


def test_invalid_configuration_is_refused_first_one_line_per_problem(baseline, tmp_path):
    home = copy_home(baseline, tmp_path / "home")
    (home.root / "cityres.toml").write_text('[watch]\npoll_seconds = "often"\n[dbt_vars]\nentropy = 1\n'
                                            '[nonsense]\nx = 1\n', encoding="utf-8")
    shutil.copy2(BAD / "city_yearbook" / "yearbook_2022_bad_cell.csv", home.landing / "city_yearbook")
    before = sha256(home.warehouse_db)
    out = cli(home, "refresh")
    assert out.returncode == 2
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 3, out.stdout
    assert "[watch] poll_seconds must be a positive number, got 'often'" in out.stdout
    assert "unknown [dbt_vars] entropy" in out.stdout and "unknown table [nonsense]" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    assert sha256(home.warehouse_db) == before and not home.candidate_db.exists()


# ---------------------------------------------------------------- no query can destroy published data

ESCAPES = {
    "copy over the warehouse": "copy (select 1) to '{db}'",
    "copy to a file": "copy (select 1) to '{tmp}/x.csv'",
    "export database": "export database '{tmp}/dump'",
    "read_text": "select * from read_text('/etc/shadow')",
    "read_csv": "select * from read_csv('/etc/passwd')",
    "glob": "select * from glob('/*')",
    "attach read-write": "attach '{db}' as w",
    "attach another file": "attach '{tmp}/new.duckdb' as n",
    "set memory": "set memory_limit = '1TB'",
    "set external access": "set enable_external_access = true",
    "reset": "reset lock_configuration",
    "pragma setting": "pragma memory_limit = '1TB'",
    "install": "install httpfs",
    "load": "load httpfs",
    "two statements": "select 1; select 2",
    "drop": "drop table main.estimates",
    "delete": "delete from main.estimates",
    "update": "update main.estimates set coef = 0",
    "create": "create table main.t as select 1",
    "checkpoint": "checkpoint",
    "detach": "detach warehouse",
}


def test_no_query_can_change_read_or_escape(baseline, tmp_path):
    home = copy_home(baseline, tmp_path / "home")
    before = sha256(home.warehouse_db)
    for name, sql in ESCAPES.items():
        out = cli(home, "query", sql.format(db=home.warehouse_db, tmp=tmp_path), timeout=120)
        assert out.returncode == 2, (name, out.stdout, out.stderr)
        assert "error:" in out.stderr and "Traceback" not in out.stderr, (name, out.stderr)
        assert sha256(home.warehouse_db) == before, f"{name} changed the published warehouse"
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "dump").exists()
    assert not (tmp_path / "new.duckdb").exists()


def test_a_runaway_query_is_stopped_by_its_limits(baseline, tmp_path):
    home = copy_home(baseline, tmp_path / "home")
    (home.root / "cityres.toml").write_text('[query]\ntimeout_seconds = 3\nmemory_limit = "500MB"\n',
                                            encoding="utf-8")
    started = time.monotonic()
    out = cli(home, "query", "select count(*) from analysis_panel a, analysis_panel b, analysis_panel c, "
                             "analysis_panel d", timeout=120)
    assert out.returncode == 2 and "stopped after 3 s" in out.stderr, out.stderr
    assert time.monotonic() - started < 60
    out = cli(home, "query", "select a.*, b.* from raw.city_cells a, raw.city_cells b order by a.value_text",
              timeout=120)
    assert out.returncode == 2, out.stdout[-500:]
    assert "error:" in out.stderr and "Traceback" not in out.stderr


def test_a_missing_value_dbt_refuses_is_explained_in_words(baseline, tmp_path):
    """'—' (missing) in the latest year's GDP cannot be interpolated; the index needs it. The
    refusal names the model, column, city and year and says what to do - not a dbt test id."""
    from wap_fixtures import CsvFile

    home = copy_home(baseline, tmp_path / "home")
    deliveries = tmp_path / "deliveries"
    name = "city_yearbook/中国城市统计年鉴_2023.csv"
    (deliveries / "city_yearbook").mkdir(parents=True)
    shutil.copy2(home.landing / name, deliveries / name)
    f = CsvFile.open(deliveries, name)
    gdp = next(h for h in f.rows[f.header_index] if h.startswith("地区生产总值"))
    f.set("石家庄市", gdp, "—")
    f.save()
    out = cli(home, "validate", "--landing", str(deliveries))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "int_index_inputs.value must not be empty" in out.stdout
    assert "city_code '130100', year 2023" in out.stdout and "extrapolation" in out.stdout
    assert "test.cityres." not in out.stdout.split("report:")[0]  # the id stays in the report only


def test_a_variable_delivered_in_another_unit_is_refused_not_published(baseline, tmp_path):
    """Broadband users ×10,000 in a re-delivered 2022 yearbook, header unchanged (户 counted as
    万户): no plausible range catches it, but the unit-switch detector does, before any index
    moves."""
    from wap_fixtures import YEARBOOK_2022, CsvFile

    from flows.refresh import PLAIN_STEPS, Workspace, run_pipeline
    from warehouse.ingest import new_load_id

    home = copy_home(baseline, tmp_path / "home")
    f = CsvFile.open(home.landing, YEARBOOK_2022)
    col = f.column("互联网宽带接入用户数(万户)")
    from warehouse.cells import CellError, parse_number

    for row in f.rows[f.header_index + 1:]:
        try:
            value = parse_number(row[col]) if len(row) > col else None
        except CellError:
            value = None
        if value is not None:
            row[col] = f"{value * 10_000:.2f}"
    f.save()
    before = published_data_digest(home.warehouse_db)
    summary = run_pipeline(Workspace.for_refresh(home), new_load_id(), PLAIN_STEPS)
    assert summary.status == "refused", summary.reasons
    (switch,) = [c for c in summary.expectations_failed if c["check"] == "marts.unit_switch"]
    assert switch["severity"] == "critical"
    assert any(r["variable"] == "broadband_users" and r["year"] in (2022, 2023) for r in switch["example_rows"])
    assert published_data_digest(home.warehouse_db) == before


def test_a_damaged_archive_copy_is_repaired_not_trusted(tmp_path):
    import hashlib

    from warehouse.archive import archive_file

    source = tmp_path / "landing" / "national" / "national_2015.csv"
    source.parent.mkdir(parents=True)
    source.write_bytes("指标,数值\n人均国内生产总值(元),49900\n".encode() * 2000)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / "archive" / "national" / sha[:16] / "national_2015.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes()[:1000])  # what a copy killed half-way used to leave
    stored = archive_file(source, "national", sha, tmp_path / "archive")
    assert stored.repaired and stored.path == target
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
    again = archive_file(source, "national", sha, tmp_path / "archive")
    assert not again.repaired and list(target.parent.iterdir()) == [target]
