"""What a numeric yearbook cell may hold: one grammar, used at ingest (Python) and in dbt
staging (the `parse_number` macro of dbt_project/macros/parse_number.sql implements the same
steps in SQL; tests/test_cells.py checks that both agree on every case).

A cell is, after trimming:

* a **missing marker** - empty, ``—``, ``——``, ``-``, ``--``, ``…``, ``...``, ``……``, ``NA``,
  ``n.a.``, ``null``, ``无`` (case-insensitive): the value is missing;
* or a **number**: an optional sign, digits - with thousands separators (``,`` or a space) only
  in groups of three (``1,234,567``; ``12,3`` is refused) -, an optional decimal part and
  exponent; full-width digits and punctuation (``１２３，４５６．７``) and the minus sign ``−``
  read as their ASCII forms; one trailing ``%`` and trailing footnote marks (``*``, ``#``,
  ``△``, ``▲``, circled digits ①…⑳, superscript digits) are dropped.

Anything else (``12,3a``, ``1.2.3``, ``约100``, ``100万``) is refused with the file, row,
column, value and this description - never half-parsed.
"""
from __future__ import annotations

import re

MISSING_MARKERS = frozenset({"", "—", "——", "-", "--", "…", "...", "……", "na", "n.a.", "null", "无"})
FOOTNOTES = re.compile(r"[*#△▲\u2460-\u2473\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+$")
FULL_WIDTH = str.maketrans("０１２３４５６７８９，．－＋−", "0123456789,.-+-")
NUMBER = re.compile(r"^[+-]?(?:(?:[0-9]{1,3}(?:[, ][0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
EXPECTED = ("a number (thousands separators only in groups of three) or a missing marker "
            "(empty, —, -, …, NA)")


class CellError(ValueError):
    """A cell that is neither a number nor a missing marker."""


def is_missing(text: str | None) -> bool:
    return (text or "").strip().lower() in MISSING_MARKERS


def clean(text: str) -> str:
    """The cell text reduced to the number grammar's alphabet (the same steps as the SQL macro)."""
    t = FOOTNOTES.sub("", text.strip())
    t = t.translate(FULL_WIDTH)
    return t[:-1] if t.endswith("%") else t


def parse_number(text: str | None) -> float | None:
    """The cell's value; None when it is a missing marker; CellError when it is neither."""
    if is_missing(text):
        return None
    t = clean(text)
    if not NUMBER.match(t):
        raise CellError(f"{text!r} is not {EXPECTED}")
    return float(t.replace(",", "").replace(" ", ""))
