"""Read delivered files into rows of text, whatever their format or encoding.

Everything stays text here: numbers are parsed in dbt staging, where the original text is kept
beside the parsed value for traceability.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 is a superset of GBK and GB2312


class UnreadableFile(ValueError):
    """A file that cannot be decoded or parsed at all."""


def decode(raw: bytes, path: Path) -> tuple[str, str]:
    """Decode bytes as UTF-8 (with or without BOM), else as GB18030; return (text, encoding)."""
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise UnreadableFile(f"{path}: not UTF-8 and not GBK/GB18030 text")


def _cell_text(value: object) -> str:
    """Spreadsheet cells come typed; store them as the text a CSV of the same sheet would hold."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value).strip()


def read_rows(path: Path) -> tuple[list[list[str]], str]:
    """All rows of the first sheet / the CSV as lists of stripped text; plus the encoding used."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls"):
        from python_calamine import CalamineWorkbook

        try:
            workbook = CalamineWorkbook.from_path(str(path))
            sheet = workbook.get_sheet_by_index(0)
            rows = sheet.to_python(skip_empty_area=False)
        except Exception as exc:  # calamine raises its own error types
            raise UnreadableFile(f"{path}: cannot read the workbook ({exc})") from exc
        return [[_cell_text(v) for v in row] for row in rows], "xlsx"
    if suffix in (".csv", ".txt"):
        text, encoding = decode(path.read_bytes(), path)
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))], encoding
    raise UnreadableFile(f"{path}: unsupported file type '{suffix}' (expected .csv or .xlsx)")
