"""Real layouts load to exactly the cells of the wide delivery of the same numbers.

The corpus (tests/delivery_corpus.py) rewrites the sample's own yearbooks in the layouts people
receive - a CNKI workbook with a two-level header and province headings, an EPS long table in
GBK with a source footer, a GBK table in 亿元 with full-width brackets, a later edition's header
wording, several years in one sheet, bilingual headers with notes on top, a file named by its
edition. Each is loaded through ingest, the same path as the sample, and compared cell by cell
with the wide original: city code, year, variable and value in the canonical unit.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import pytest

from tests import delivery_corpus as corpus
from warehouse.cells import parse_number
from warehouse.deliveries import DeliveryConfig
from warehouse.ingest import ingest_landing
from warehouse.mappings import load_mappings
from warehouse.names import default_resolver
from warehouse.paths import Home
from warehouse.sample import write_sample
from warehouse.settings import DeliveryProfile

YEARS = (2016, 2017)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("sample")
    write_sample(out, seed=7, start_year=YEARS[0], end_year=YEARS[-1])
    return {int(p.stem[-4:]): p for p in (out / "city_yearbook").iterdir()}


def load(tmp_path: Path, files: dict[str, Path | bytes], config: DeliveryConfig | None = None,
         name: str = "w"):
    """Ingest ``files`` (landing path → file or bytes) into a fresh raw schema; (summary, con)."""
    landing = tmp_path / f"{name}_landing"
    for target, content in files.items():
        path = landing / target
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, path)
        else:
            path.write_bytes(content)
    con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
    summary = ingest_landing(con, landing, tmp_path / f"{name}_archive", config=config)
    return summary, con


def values(con, config: DeliveryConfig | None = None) -> dict[tuple[str, int, str], float]:
    """(city code, year, variable) → value in the canonical unit, of every non-missing city cell in use."""
    mappings = (config or DeliveryConfig.shipped()).mappings
    resolver = default_resolver()
    out = {}
    rows = con.execute("""
        select source, city_name_text, province_text, year, variable, unit, value_text from raw.city_cells
        where row_kind = 'city' and column_kind = 'value'""").fetchall()
    for source, name, province, year, variable, unit, text in rows:
        number = parse_number(text)
        if number is None:
            continue
        canonical = mappings.canonical[(source, variable)]
        factor = mappings.units[(unit or canonical, canonical)]
        key = (resolver.resolve(name, year, province).city_code, year, variable)
        assert key not in out, f"{key} delivered twice"
        out[key] = number * factor
    return out


def assert_same_cells(got: dict, expected: dict, exact: bool = True) -> None:
    assert got.keys() == expected.keys(), (sorted(set(expected) - set(got))[:5], sorted(set(got) - set(expected))[:5])
    if exact:
        differ = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    else:  # a unit was rescaled by the writer: one rounding of the float product apart
        differ = {k: (got[k], expected[k]) for k in expected if not math.isclose(got[k], expected[k], rel_tol=1e-12)}
    assert not differ, list(differ.items())[:5]


@pytest.fixture(scope="module")
def wide(sample, tmp_path_factory) -> dict[int, dict]:
    """The reference: each sample year as delivered (wide, the sample's own layout)."""
    tmp = tmp_path_factory.mktemp("wide")
    out = {}
    for year in YEARS:
        summary, con = load(tmp, {f"city_yearbook/{sample[year].name}": sample[year]}, name=f"w{year}")
        assert [f.status for f in summary.files] == ["loaded"], summary.files
        out[year] = values(con)
        assert len(out[year]) > 8000  # ~290 cities × 31 variables, less the missing cells
        con.close()
    return out


def test_cnki_workbook_two_level_header_province_headings_and_short_names(sample, wide, tmp_path):
    table = corpus.read_wide(sample[2016])
    path = corpus.write_cnki_xlsx(table, tmp_path / "cnki.xlsx")
    summary, con = load(tmp_path, {"city_yearbook/2-1 主要统计指标.xlsx": path})
    assert [f.status for f in summary.files] == ["loaded"], summary.files[0].error
    assert_same_cells(values(con), wide[2016])
    kinds = dict(con.execute("select row_kind, count(distinct source_row) from raw.city_cells group by 1").fetchall())
    assert kinds["heading"] == 31  # one heading per province, 吉林 among them - not read as Jilin city
    assert con.execute("select count(*) from raw.city_cells where city_name_text = '吉林' and row_kind = 'heading'"
                       ).fetchone()[0] == 1
    assert con.execute("select count(*) from raw.city_cells where city_name_text = '吉林' and row_kind = 'city'"
                       ).fetchone()[0] > 0


def test_cnki_workbook_with_the_urban_district_scope(sample, tmp_path):
    table = corpus.read_wide(sample[2016])
    path = corpus.write_cnki_xlsx(table, tmp_path / "cnki.xlsx")
    config = DeliveryConfig(load_mappings(None), [DeliveryProfile(files="city_yearbook/*.xlsx", scope="市辖区")])
    summary, con = load(tmp_path, {"city_yearbook/2-1 主要统计指标.xlsx": path}, config)
    assert [f.status for f in summary.files] == ["loaded"]
    got = values(con, config)
    # the writer's 市辖区 cells are round(全市 × 0.6, 2) in the delivered unit
    expected = {}
    mappings = config.mappings
    for (name, year, header), text in corpus.cells_of(table).items():
        number = parse_number(text)
        if number is None or default_resolver().is_province_row(name):
            continue
        match = mappings.resolve_header("city_yearbook", header)
        code = default_resolver().resolve(name, year).city_code
        expected[(code, year, match.variable)] = round(number * 0.6, 2) * match.factor
    assert_same_cells(got, expected)


def test_eps_long_table_in_gbk_with_a_source_footer(sample, wide, tmp_path):
    path = corpus.write_eps_long_csv(corpus.read_wide(sample[2017]), tmp_path / "eps.csv")
    assert b"\xca\xfd\xbe\xdd\xc0\xb4\xd4\xb4" in path.read_bytes()  # 数据来源 in GBK
    summary, con = load(tmp_path, {"city_yearbook/EPS城市数据_2017.csv": path})
    assert [f.status for f in summary.files] == ["loaded"], summary.files[0].error
    assert_same_cells(values(con), wide[2017])


def test_gbk_table_in_yi_yuan_with_full_width_brackets(sample, wide, tmp_path):
    path = corpus.write_wide_gbk_yi(corpus.read_wide(sample[2016]), tmp_path / "gbk.csv")
    summary, con = load(tmp_path, {"city_yearbook/城市_2016.csv": path})
    assert [f.status for f in summary.files] == ["loaded"], summary.files[0].error
    assert_same_cells(values(con), wide[2016], exact=False)


def test_later_edition_wording_loads_with_the_users_mappings_only(sample, wide, tmp_path):
    path = corpus.write_later_edition(corpus.read_wide(sample[2016]), tmp_path / "later.csv")
    summary, _ = load(tmp_path, {"city_yearbook/yb_2016.csv": path}, name="unmapped")
    (failed,) = summary.failed
    assert "户籍人口（年末）(万人)" in failed.error and "the closest known header is '年末户籍人口'" in failed.error
    assert "mappings/headers.csv" in failed.error
    home = Home(tmp_path / "home")
    (home.root / "mappings").mkdir(parents=True)
    (home.root / "mappings" / "headers.csv").write_text(corpus.LATER_EDITION_MAPPINGS_CSV, encoding="utf-8")
    (home.root / "mappings" / "units.csv").write_text(corpus.LATER_EDITION_UNITS_CSV, encoding="utf-8")
    config = DeliveryConfig.for_home(home)
    summary, con = load(tmp_path, {"city_yearbook/yb_2016.csv": path}, config, name="mapped")
    assert [f.status for f in summary.files] == ["loaded"], summary.files[0].error
    assert_same_cells(values(con, config), wide[2016])
    assert con.execute("select count(*) from raw.mapping_headers").fetchone()[0] == 5


def test_several_years_in_one_sheet(sample, wide, tmp_path):
    tables = [corpus.read_wide(sample[y]) for y in YEARS]
    path = corpus.write_multi_year(tables, tmp_path / "multi.csv")
    summary, con = load(tmp_path, {"city_yearbook/城市面板.csv": path})
    (record,) = summary.files
    assert record.status == "loaded" and record.years == list(YEARS)
    assert_same_cells(values(con), {**wide[YEARS[0]], **wide[YEARS[1]]})


def test_bilingual_header_with_notes_on_top(sample, wide, tmp_path):
    path = corpus.write_bilingual(corpus.read_wide(sample[2017]), tmp_path / "bi.csv")
    summary, con = load(tmp_path, {"city_yearbook/yb_2017.csv": path})
    assert [f.status for f in summary.files] == ["loaded"], summary.files[0].error
    assert_same_cells(values(con), wide[2017])
    header = con.execute("select any_value(header_text) from raw.city_cells where variable = 'gdp'").fetchone()[0]
    assert "地区生产总值" in header and "Gross regional product" in header


def test_edition_named_file_needs_its_year_offset(sample, wide, tmp_path):
    path = corpus.write_edition_named(corpus.read_wide(sample[2016]), tmp_path)
    assert path.name == "中国城市统计年鉴2017.csv"
    config = DeliveryConfig(load_mappings(None), [DeliveryProfile(files="city_yearbook/中国城市统计年鉴20*.csv",
                                                                  year_offset=-1)])
    summary, con = load(tmp_path, {f"city_yearbook/{path.name}": path}, config)
    assert summary.files[0].years == [2016]
    assert_same_cells(values(con), wide[2016])


def test_a_title_year_wins_over_the_file_name(sample, wide, tmp_path):
    summary, con = load(tmp_path, {"city_yearbook/中国城市统计年鉴2017.csv": sample[2016]})
    (record,) = summary.files
    assert record.years == [2016] and "taken from the title, not 2017 from the file name" in record.note
    assert_same_cells(values(con), wide[2016])


def test_the_digital_finance_index_in_the_peking_university_layout(tmp_path):
    """The index's city file as distributed (English headers, a year column, sub-indices the
    warehouse does not use) loads once the sub-indices are marked `ignore`; the sample's Chinese
    layout gives the same values."""
    chinese = ("省份,城市,年份,数字普惠金融指数\n北京市,北京市,2016,248.63\n河北省,石家庄市,2016,199.20\n"
               "北京市,北京市,2017,286.84\n河北省,石家庄市,2017,230.11\n").encode("utf-8")
    english = ("prov_name,city_name,year,index_aggregate,coverage_breadth,usage_depth,digitization_level\n"
               "北京市,北京市,2016,248.63,240.1,251.2,270.0\n河北省,石家庄市,2016,199.20,190.0,200.3,210.2\n"
               "北京市,北京市,2017,286.84,270.2,290.1,301.0\n河北省,石家庄市,2017,230.11,220.0,231.1,240.5\n"
               ).encode("utf-8")
    summary, con = load(tmp_path, {"digital_finance/difi_chinese.csv": chinese}, name="zh")
    assert [f.status for f in summary.files] == ["loaded"], summary.files
    expected = values(con)
    assert expected[("110000", 2017, "digital_finance")] == 286.84 and len(expected) == 4
    # unmapped sub-indices refuse the file, naming the header and the line to add
    summary, _ = load(tmp_path, {"digital_finance/difi.csv": english}, name="en_refused")
    (refused,) = summary.files
    assert refused.status != "loaded" and "coverage_breadth" in (refused.error or "")
    home = Home(tmp_path / "home").ensure()
    (home.root / "mappings").mkdir(exist_ok=True)
    (home.root / "mappings" / "headers.csv").write_text(
        "source,header,variable,unit\n" + "".join(f"digital_finance,{h},ignore,\n" for h in
                                                  ("coverage_breadth", "usage_depth", "digitization_level")),
        encoding="utf-8")
    config = DeliveryConfig.for_home(home)
    summary, con = load(tmp_path, {"digital_finance/difi.csv": english}, config=config, name="en")
    assert [f.status for f in summary.files] == ["loaded"], summary.files
    assert values(con, config) == expected
