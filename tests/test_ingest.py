"""Landing → raw: hashing, archiving, idempotency, parsing mess, and clear errors for bad names."""
from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from pathlib import Path

import duckdb
import pytest
import xlsxwriter

from warehouse.ingest import ingest_landing

HEADER = ["城市", "地区生产总值(万元)", "年末户籍人口(万人)"]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\n".join(",".join(r) for r in rows).encode(encoding))
    return path


def yearbook_rows(city_rows: list[list[str]], year: int = 2015) -> list[list[str]]:
    return [
        [f"{year}年 地级及以上城市主要统计指标", "", ""],
        ["", "", ""],
        HEADER,
        ["河北省", "300000", "7000"],
        *city_rows,
        ["注：本表为测试数据。", "", ""],
        ["资料来源：测试。", "", ""],
    ]


@pytest.fixture()
def home(tmp_path: Path):
    landing, archive = tmp_path / "landing", tmp_path / "archive"
    landing.mkdir()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield landing, archive, con
    con.close()


def test_loads_cells_with_traceability_and_flags_row_kinds(home):
    landing, archive, con = home
    write_csv(landing / "city_yearbook" / "yb_2015.csv",
              yearbook_rows([["石家庄市", "5000000", "1000"], ["唐山", "—", "750"]]))
    summary = ingest_landing(con, landing, archive)
    assert [f.status for f in summary.files] == ["loaded"]
    rows = con.execute("""
        select row_kind, city_name_text, header_text, value_text, source_row, source_col, year
        from raw.city_cells order by source_row, source_col""").fetchall()
    kinds = [r[0] for r in rows]
    assert kinds.count("subtotal") == 2 and kinds.count("city") == 4 and kinds.count("footnote") == 2
    assert ("city", "唐山", "地区生产总值(万元)", "—", 6, 2, 2015) in rows
    assert summary.files[0].rows == 5  # 1 subtotal + 2 cities + 2 footnotes


def test_same_file_twice_is_a_no_op_and_file_is_archived_untouched(home):
    landing, archive, con = home
    path = write_csv(landing / "city_yearbook" / "yb_2015.csv", yearbook_rows([["石家庄市", "1", "2"]]))
    first = ingest_landing(con, landing, archive)
    n_cells = con.execute("select count(*) from raw.city_cells").fetchone()[0]
    second = ingest_landing(con, landing, archive)
    assert [f.status for f in first.files] == ["loaded"]
    assert [f.status for f in second.files] == ["skipped"]
    assert con.execute("select count(*) from raw.city_cells").fetchone()[0] == n_cells
    assert con.execute("select count(*) from raw.load_manifest").fetchone()[0] == 1
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    archived = list(archive.rglob("yb_2015.csv"))
    assert len(archived) == 1 and hashlib.sha256(archived[0].read_bytes()).hexdigest() == sha
    assert con.execute("select sha256, status from raw.load_manifest").fetchone() == (sha, "loaded")


def test_unresolvable_city_fails_the_load_naming_file_row_and_name(home):
    landing, archive, con = home
    write_csv(landing / "city_yearbook" / "yb_2015.csv",
              yearbook_rows([["石家庄市", "1", "2"], ["不存在市", "3", "4"]]))
    summary = ingest_landing(con, landing, archive)
    (failed,) = summary.failed
    assert "city_yearbook/yb_2015.csv" in failed.error
    assert "row 6" in failed.error and "'城市'" in failed.error and "不存在市" in failed.error
    assert con.execute("select count(*) from raw.city_cells").fetchone()[0] == 0
    status, error, archived = con.execute(
        "select status, error, archived_path from raw.load_manifest").fetchone()
    # archived_path is relative to the home (the archive folder's parent), so a moved home still finds it
    assert status == "failed" and "不存在市" in error and not Path(archived).is_absolute()
    assert (archive.parent / archived).exists()


def test_city_that_does_not_exist_that_year_is_an_error(home):
    landing, archive, con = home
    # Haidong became a prefecture-level city in 2013; Laiwu merged into Jinan after 2018.
    write_csv(landing / "city_yearbook" / "yb_2012.csv", yearbook_rows([["海东市", "1", "2"]], 2012))
    write_csv(landing / "city_yearbook" / "yb_2019.csv", yearbook_rows([["莱芜市", "1", "2"]], 2019))
    errors = sorted(f.error for f in ingest_landing(con, landing, archive).failed)
    assert "海东市" in errors[0] and "2013" in errors[0]
    assert "莱芜市" in errors[1] and "济南市" in errors[1]


def test_gbk_csv_and_xlsx_are_read(home):
    landing, archive, con = home
    write_csv(landing / "city_yearbook" / "yb_2012.csv", yearbook_rows([["邯郸市", "12.5", "9"]]), "gbk")
    xlsx = landing / "city_yearbook" / "yb_2013.xlsx"
    workbook = xlsxwriter.Workbook(str(xlsx))
    sheet = workbook.add_worksheet()
    for r, row in enumerate(yearbook_rows([["保定", "3000", "1100.5"]])):
        for c, value in enumerate(row):
            try:
                sheet.write_number(r, c, float(value))
            except ValueError:
                sheet.write_string(r, c, value)
    workbook.close()
    summary = ingest_landing(con, landing, archive)
    assert [f.status for f in summary.files] == ["loaded", "loaded"]
    values = dict(con.execute("""
        select city_name_text || '|' || header_text, value_text from raw.city_cells where row_kind = 'city'
    """).fetchall())
    assert values["邯郸市|地区生产总值(万元)"] == "12.5"
    assert values["保定|地区生产总值(万元)"] == "3000"
    assert values["保定|年末户籍人口(万人)"] == "1100.5"
    encodings = dict(con.execute("select file_name, encoding from raw.load_manifest").fetchall())
    assert encodings["city_yearbook/yb_2012.csv"] == "gb18030"


def test_ambiguous_pinyin_needs_the_province(home):
    landing, archive, con = home
    write_csv(landing / "patents" / "patents_2015.csv", [
        ["year", "province", "city", "patents_granted"],
        ["2015", "Anhui", "Suzhou", "100"],
        ["2015", "Jiangsu", "Suzhou", "9000"],
    ])
    write_csv(landing / "patents" / "patents_2016.csv", [
        ["year", "city", "patents_granted"],
        ["2016", "Suzhou", "100"],
    ])
    summary = ingest_landing(con, landing, archive)
    assert [f.status for f in summary.files] == ["loaded", "failed"]
    assert "ambiguous" in summary.failed[0].error and "row 2" in summary.failed[0].error


def test_unknown_source_folder_fails_with_a_clear_error(home):
    landing, archive, con = home
    write_csv(landing / "misc" / "x_2015.csv", [["a"], ["1"]])
    (failed,) = ingest_landing(con, landing, archive).failed
    assert "unknown source folder 'misc'" in failed.error


def test_enterprise_records_keep_text_and_row_numbers(home):
    landing, archive, con = home
    write_csv(landing / "enterprises" / "registrations_2016.csv", [
        ["企业ID", "所在城市", "成立日期", "行业代码", "注册资本(万元)"],
        ["F1", "贵阳市", "2016-03-01", "I6510", "100.5"],
        ["F2", "遵义", "2016-12-31", "C1310", "20"],
    ])
    summary = ingest_landing(con, landing, archive)
    assert summary.files[0].rows == 2
    assert con.execute("""
        select firm_id, city_name_text, source_row, industry_code_text, registered_capital_text
        from raw.enterprise_registrations order by source_row""").fetchall() == [
        ("F1", "贵阳市", 2, "I6510", "100.5"), ("F2", "遵义", 3, "C1310", "20")]


# ---------------------------------------------------------------- enterprise files, read in blocks

ENTERPRISE_HEADER = "企业ID,所在城市,成立日期,行业代码,注册资本(万元)"


@pytest.fixture()
def small_blocks(monkeypatch):
    """Blocks of 4 KB and batches of about two blocks, so that a file of a few thousand records is
    read in many batches; counts the batches."""
    import warehouse.enterprises as enterprises
    import warehouse.ingest as ingest

    monkeypatch.setattr(enterprises, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(enterprises, "BATCH_BYTES", 8192)
    batches = []

    def counting(*args, **kwargs):
        for batch in enterprises.read_enterprises(*args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(ingest, "read_enterprises", counting)
    return batches


def csv_records(path: Path, encoding: str = "utf-8") -> list[tuple[int, list[str]]]:
    """(line where the record starts, values) of every non-blank record, by the csv module."""
    out = []
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        end = reader.line_num
        for values in reader:
            if any(values):
                out.append((end + 1, values))
            end = reader.line_num
    return out


def test_generated_registrations_load_in_many_batches_with_the_generators_counts(home, small_blocks, tmp_path):
    from warehouse.sample import write_sample
    from warehouse.sample.generate import DEFAULT_SEED, simulate

    landing, archive, con = home
    write_sample(tmp_path / "sample", firm_scale=0.02)
    for year in (2015, 2023):
        name = f"registrations_{year}.csv"
        (landing / "enterprises").mkdir(exist_ok=True)
        (tmp_path / "sample" / "enterprises" / name).rename(landing / "enterprises" / name)
    summary = ingest_landing(con, landing, archive)
    assert [f.status for f in summary.files] == ["loaded", "loaded"]
    assert len(small_blocks) > 20

    s = simulate(DEFAULT_SEED, firm_scale=0.02)
    for year in (2015, 2023):
        path = landing / "enterprises" / f"registrations_{year}.csv"
        records = csv_records(path)
        raw = con.execute("""
            select source_row, firm_id, city_name_text, registration_date_text, industry_code_text,
                   registered_capital_text
            from raw.enterprise_registrations where year = ? order by source_row""", [year]).fetchall()
        assert raw == [(line, *values) for line, values in records]
        t = year - 2011
        digital = Counter(r[2] for r in raw if re.match(r"I6[345]", r[4]))
        every = Counter(r[2] for r in raw)
        for i, name in enumerate(s.cities.name_zh):
            assert digital.get(name, 0) == s.firms.digital[i, t]
            assert every.get(name, 0) == s.firms.digital[i, t] + s.firms.other[i, t]
    assert sum(f.rows for f in summary.files) == sum(small_blocks)


def enterprise_file(path: Path, records: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\n".join([ENTERPRISE_HEADER, *records, ""]).encode(encoding))
    return path


def test_enterprise_rows_are_file_lines_across_blocks_blank_lines_and_quoted_line_breaks(home, small_blocks):
    landing, archive, con = home
    records = []
    for i in range(3000):
        if i % 700 == 5:
            records.append("")  # a blank line
        capital = f'"{i}\n万元"' if i % 450 == 7 else f"0{i}.10"  # a value over two lines; text kept as is
        records.append(f"{i:07d},{'贵阳市' if i % 3 else '遵义'},2016-03-01,I6510,{capital}")
    path = enterprise_file(landing / "enterprises" / "registrations_2016.csv", records, encoding="gbk")
    summary = ingest_landing(con, landing, archive)
    assert [f.status for f in summary.files] == ["loaded"] and summary.files[0].rows == 3000
    assert len(small_blocks) > 10
    raw = con.execute("""select source_row, firm_id, city_name_text, registration_date_text, industry_code_text,
                                registered_capital_text
                         from raw.enterprise_registrations order by source_row""").fetchall()
    assert raw == [(line, *values) for line, values in csv_records(path, "gbk")]
    assert con.execute("select encoding from raw.load_manifest").fetchone()[0] == "gb18030"


def test_an_unknown_city_deep_in_a_file_names_its_line_and_nothing_is_loaded(home, small_blocks):
    landing, archive, con = home
    records = [f"{i:07d},贵阳市,2016-03-01,I6510,1" for i in range(5000)]
    records[4321] = "0004321,黔东南州,2016-03-01,I6510,1"
    enterprise_file(landing / "enterprises" / "registrations_2016.csv", records)
    summary = ingest_landing(con, landing, archive)
    (failed,) = summary.failed
    assert len(small_blocks) > 10  # the batches before it were read (and inserted) first
    assert failed.error == ("enterprises/registrations_2016.csv: row 4323, column 2 ('所在城市'): "
                            "city name '黔东南州' cannot be resolved: not in the city alias seed")
    assert con.execute("select count(*) from raw.enterprise_registrations").fetchone()[0] == 0
    assert con.execute("select status, rows from raw.load_manifest").fetchone() == ("failed", 0)


@pytest.mark.parametrize("damage, expected", [
    (lambda b: b.replace(b"0003001,\xe8\xb4\xb5\xe9\x98\xb3\xe5\xb8\x82,", b"0003001,\xe8\xb4\xb5\xe9\x98\xb3\xe5\xb8\x82"),
     "enterprises/registrations_2016.csv: row 3003: 4 values where the header has 5 columns: "
     "'0003001,贵阳市2016-03-01,I6510,1' (a comma inside a value must be quoted)"),
    (lambda b: b.replace(b"0003001,\xe8\xb4\xb5", b"0003001,\xff\xb4\xb5"),
     "enterprises/registrations_2016.csv: not UTF-8 text throughout (first invalid byte at row 3003, byte 9 "
     "of the row (0xff)); a file must be one encoding throughout; re-save it as UTF-8"),
])
def test_a_broken_line_deep_in_a_file_is_named(home, small_blocks, damage, expected):
    landing, archive, con = home
    path = enterprise_file(landing / "enterprises" / "registrations_2016.csv",
                           [f"{i:07d},贵阳市,2016-03-01,I6510,1" for i in range(5000)])
    path.write_bytes(damage(path.read_bytes()))
    (failed,) = ingest_landing(con, landing, archive).failed
    assert failed.error == expected
    assert con.execute("select count(*) from raw.enterprise_registrations").fetchone()[0] == 0
