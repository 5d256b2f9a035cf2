"""City-name keys and resolution: the Python gate and the dbt SQL agree."""
from __future__ import annotations

import csv
import re

import duckdb
import pytest

from warehouse.names import city_key, default_resolver
from warehouse.paths import DBT_PROJECT_DIR, REFERENCE_SEEDS_DIR


def sql_city_key_template() -> str:
    """The body of the dbt macro city_key, with its argument as a placeholder."""
    text = (DBT_PROJECT_DIR / "macros" / "city_key.sql").read_text(encoding="utf-8")
    body = re.search(r"%\}\s*(lower\(.*\))\s*\{%-? endmacro", text, re.S).group(1)
    return body.replace("{{ expr }}", "name")


def alias_names() -> list[str]:
    with open(REFERENCE_SEEDS_DIR / "ref_city_aliases.csv", encoding="utf-8") as fh:
        return [r["alias_name_zh"] or r["alias_name_en"] for r in csv.DictReader(fh)]


def test_sql_macro_and_python_give_the_same_key_for_every_alias():
    names = alias_names() + ["Xi An", "xi'an", "Ma-anshan", "Lu’an", " 石家庄 市 "]
    con = duckdb.connect()
    con.execute("create table names (name varchar)")
    con.executemany("insert into names values (?)", [[n] for n in names])
    sql_keys = dict(con.execute(f"select name, {sql_city_key_template()} from names").fetchall())
    mismatches = {n: (sql_keys[n], city_key(n)) for n in names if sql_keys[n] != city_key(n)}
    assert not mismatches
    assert city_key("Xi'an") == city_key("Xi An") == "xian"


@pytest.mark.parametrize("name, year, province, code", [
    ("石家庄市", 2015, None, "130100"),
    ("石家庄", 2015, None, "130100"),
    ("Suzhou", 2015, "Anhui", "341300"),
    ("Suzhou", 2015, "Jiangsu", "320500"),
    ("Suzhou (Anhui)", 2015, None, "341300"),
    ("Harbin", 2015, None, "230100"),
    ("莱芜市", 2018, None, "371200"),
    ("毕节市", 2011, None, "520500"),
    ("北京市", 2020, None, "110000"),
])
def test_resolution_follows_the_alias_seed(name, year, province, code):
    assert default_resolver().resolve(name, year, province).city_code == code


def test_autonomous_prefectures_are_intended_exclusions_not_errors():
    result = default_resolver().resolve("延边朝鲜族自治州", 2015)
    assert result.excluded and result.error is None and result.city_code is None


def test_province_rows_are_recognised_but_city_named_like_province_is_a_city():
    resolver = default_resolver()
    assert resolver.is_province_row("河北省") and resolver.is_province_row("广西壮族自治区")
    assert resolver.is_province_row("全省合计")
    assert not resolver.is_province_row("吉林")  # Jilin city
    assert not resolver.is_province_row("北京市")  # a municipality is a city row
