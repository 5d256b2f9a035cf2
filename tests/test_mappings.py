"""The user's mappings: header keys, validation in words, and `cityres mappings check`."""
from __future__ import annotations

from pathlib import Path

import pytest
from wap_fixtures import cli

from warehouse.mappings import MappingError, chinese_part, load_mappings, split_header
from warehouse.paths import Home
from warehouse.settings import check_config, load_delivery_profiles, profile_for


@pytest.mark.parametrize("header, expected", [
    ("地区生产总值(亿元)", ("地区生产总值", "亿元")),
    ("地区生产总值（亿元）", ("地区生产总值", "亿元")),  # full-width brackets
    ("地区生产总值（万元） Gross Regional Product (10,000 yuan)", ("地区生产总值", "万元")),
    ("地区生产总值(万元)\nGross Regional Product", ("地区生产总值", "万元")),
    ("行政区域土地面积(km²)", ("行政区域土地面积", "km2")),  # NFKC: ² reads as 2
    ("户籍人口（年末）(万人)", ("户籍人口(年末)", "万人")),
    ("职工平均工资", ("职工平均工资", None)),
    ("patents_granted", ("patents_granted", None)),
    ("GDP(万元)", ("GDP", "万元")),
])
def test_a_header_splits_into_base_and_unit(header, expected):
    assert split_header(header) == expected


def test_the_english_part_of_a_bilingual_header_is_dropped():
    assert chinese_part("年末户籍人口 Registered population") == "年末户籍人口"
    assert chinese_part("Registered population") == "Registered population"


def write(home: Home, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = home.root / "mappings" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_every_problem_of_the_mapping_files_is_one_line_with_file_and_line(tmp_path):
    home = Home(tmp_path)
    write(home, "headers.csv", "source,header,variable,unit\n"
                               "city_yearbook,GDP,gpd,\n"
                               "city_yearbook,职工平均工资,avg_wage,美元\n"
                               "city_yearbook,户籍人口（年末）,pop_total,\n"
                               "city_yearbook,户籍人口(年末),pop_total,\n"
                               "nowhere,x,gdp,\n")
    write(home, "units.csv", "unit,canonical_unit,factor\nkm²,平方公里,abc\n亩,公顷,0.0667\n")
    write(home, "cities.csv", "name,city_code,valid_from_year\n新区,999999,\n老城,130100,19x\n")
    problems = check_config(home)
    assert problems == [
        "mappings/units.csv line 2: factor 'abc' must be a positive number (value in km² × factor = value in 平方公里)",
        "mappings/units.csv line 3: '公顷' is not the canonical unit of any variable (one of "
        + problems[1].split("(one of ")[1],
        "mappings/headers.csv line 2: 'gpd' is not a variable of city_yearbook - did you mean 'gdp'? "
        + "(use one of " + problems[2].split("(use one of ")[1],
        "mappings/headers.csv line 3: unit '美元' does not convert to 元 (the unit of avg_wage); "
        "add it to mappings/units.csv",
        "mappings/headers.csv line 5: header '户籍人口(年末)' is mapped twice (also line 4)",
        "mappings/headers.csv line 6: unknown source 'nowhere' (one of city_yearbook, digital_finance, historical, patents)",
        "mappings/cities.csv line 2: city_code '999999' is not a city of ref_cities.csv (a 6-digit code such as "
        "130100, or 'exclude')",
        "mappings/cities.csv line 3: valid_from_year '19x' is not a year",
    ]
    with pytest.raises(MappingError):
        load_mappings(home.root)


def test_a_mapping_file_without_its_columns_is_refused_in_words(tmp_path):
    home = Home(tmp_path)
    write(home, "headers.csv", "表头,变量\nGDP,gdp\n", encoding="gb18030")
    assert check_config(home) == ["mappings/headers.csv line 1: the header must name the columns header, variable "
                                  "(missing header, variable; found 表头, 变量)"]


def test_delivery_profiles_match_by_pattern_and_are_validated(tmp_path):
    home = Home(tmp_path)
    (tmp_path / "cityres.toml").write_text(
        '[[deliveries]]\nfiles = "city_yearbook/中国城市统计年鉴20*.csv"\nyear_offset = -1\n'
        '[[deliveries]]\nfiles = "city_yearbook/*.xlsx"\nscope = "市辖区"\n', encoding="utf-8")
    profiles = load_delivery_profiles(home)
    assert profile_for(profiles, "city_yearbook/中国城市统计年鉴2024.csv").year_offset == -1
    assert profile_for(profiles, "city_yearbook/2-1.xlsx").scope == "市辖区"
    assert profile_for(profiles, "patents/p_2020.csv").origin == "default"
    (tmp_path / "cityres.toml").write_text('[[deliveries]]\nyear_offset = 1.5\nscope = "全省"\nfoo = 1\n',
                                           encoding="utf-8")
    assert check_config(home) == [
        "cityres.toml: [[deliveries]] #1: year_offset must be an integer between -5 and 5, got 1.5",
        "cityres.toml: [[deliveries]] #1: scope must be one of 全市 or 市辖区, got '全省'",
        "cityres.toml: [[deliveries]] #1: unknown key 'foo' (known: files, year_offset, scope)",
        "cityres.toml: [[deliveries]] #1: files is required (a pattern of landing paths such as "
        "\"city_yearbook/*.csv\")",
    ]


def test_mappings_check_shows_each_header_before_loading(tmp_path):
    home = Home(tmp_path).ensure()
    delivery = home.landing / "city_yearbook" / "EPS_2020.csv"
    delivery.parent.mkdir(parents=True)
    delivery.write_bytes("地区,年份,指标,单位,数值\n石家庄市,2020,地区生产总值,亿元,5935.1\n"
                         "石家庄市,2020,年末移动电话用户数,万户,1100\n\n数据来源：EPS\n".encode("gb18030"))
    out = cli(home, "mappings", "check", timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "long (one row per city, year and indicator)" in text and "year: a year column" in text
    assert "gdp" in text and "亿元 → 万元 × 10000" in text
    assert "header '年末移动电话用户数(万户)' is not mapped for city_yearbook" in text
    assert "1 problem(s)" in text
    write(home, "headers.csv", "header,variable\n年末移动电话用户数,mobile_users\n")
    out = cli(home, "mappings", "check", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mappings/headers.csv line 2" in " ".join(out.stdout.split())


def test_a_broken_mapping_file_stops_a_refresh_with_words_not_a_traceback(tmp_path):
    home = Home(tmp_path).ensure()
    write(home, "units.csv", "unit,canonical_unit,factor\n斤,吨,-1\n")
    out = cli(home, "refresh", timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "mappings/units.csv line 2: factor '-1' must be a positive number" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_a_header_map_in_cityres_toml_points_to_the_mapping_files(tmp_path):
    home = Home(tmp_path)
    (tmp_path / "cityres.toml").write_text('[header_map]\n"GDP(万元)" = "gdp"\n', encoding="utf-8")
    (problem,) = check_config(home)
    assert problem.startswith("cityres.toml: unknown table [header_map]")
    assert "mappings are CSV files in $CITYRES_HOME/mappings/ (docs/deliveries.md)" in problem
