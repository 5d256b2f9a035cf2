"""One grammar for numeric cells, two implementations: warehouse/cells.py (ingest) and the
dbt macro parse_number (staging). Both must agree on every case, and neither may half-parse."""
from __future__ import annotations

import math
import re
from pathlib import Path

import duckdb
import pytest

from warehouse.cells import CellError, parse_number

MACROS = Path(__file__).resolve().parents[1] / "dbt_project" / "macros" / "parse_number.sql"

CASES = {
    "123": 123.0, "1,234": 1234.0, "1,234,567.5": 1234567.5, "1 234 567": 1234567.0, "-12.5": -12.5,
    "+3": 3.0, ".5": 0.5, "1e3": 1000.0, "2.5E-2": 0.025, "１２３，４５６．７": 123456.7, "−4": -4.0,
    "98.41%": 98.41, "123*": 123.0, "456①": 456.0, "7²": 7.0, "12#": 12.0, "0": 0.0,
    "—": None, "——": None, "-": None, "--": None, "…": None, "...": None, "": None, "NA": None, "n.a.": None,
    "null": None, "无": None,
    "12,3a": "refused", "12,3": "refused", "1,23,456": "refused", "123a": "refused", "1.2.3": "refused",
    "约100": "refused", "100万": "refused", "1,2345": "refused", "abc": "refused", "12-3": "refused",
    "1,234.5.6": "refused", "e5": "refused", "$100": "refused",
}


def _macro_sql(expr: str) -> str:
    """Render the Jinja macros by hand (only {{ expr }} and the two nested macros)."""
    text = MACROS.read_text(encoding="utf-8")
    body = {m.group(1): m.group(2) for m in re.finditer(
        r"{% macro (\w+)\(expr\) -%}(.*?){%- endmacro %}", text, re.S)}
    clean = body["clean_number_text"].replace("{{ expr }}", expr)
    return body["parse_number"].replace("{{ clean_number_text(expr) }}", clean).replace("{{ expr }}", expr)


@pytest.mark.parametrize("text, expected", list(CASES.items()))
def test_python_grammar(text, expected):
    if expected == "refused":
        with pytest.raises(CellError, match="is not a number"):
            parse_number(text)
    else:
        got = parse_number(text)
        assert got == expected or (got is not None and expected is not None and math.isclose(got, expected))


def test_sql_macro_agrees_with_python_on_every_case():
    con = duckdb.connect()
    texts = list(CASES)
    rows = con.execute(f"select t, {_macro_sql('t')} from unnest(?) as u(t)", [texts]).fetchall()
    for text, value in rows:
        expected = CASES[text]
        if expected == "refused" or expected is None:
            assert value is None, (text, value)
        else:
            assert value == pytest.approx(expected, rel=1e-15), text
