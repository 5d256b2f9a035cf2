"""Read delivered files into rows of text, whatever their format or encoding.

Everything stays text here: numbers are parsed in dbt staging, where the original text is kept
beside the parsed value for traceability. What cannot be read is refused with the file, the row
(and column) and what was expected - never a library's traceback.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 is a superset of GBK and GB2312
MAX_CELL_CHARS = 100_000  # no yearbook cell is longer; a longer one is a broken file

csv.field_size_limit(MAX_CELL_CHARS)


class UnreadableFile(ValueError):
    """A file that cannot be decoded or parsed at all."""


def _where(raw: bytes, offset: int) -> str:
    """'row R, byte B of the row' for a byte offset of a text file (1-based, as an editor shows)."""
    row = raw.count(b"\n", 0, offset) + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    return f"row {row}, byte {offset - start + 1} of the row (0x{raw[offset]:02x})"


def decode(raw: bytes, name: str) -> tuple[str, str]:
    """Decode bytes as UTF-8 (with or without BOM), else as GB18030; return (text, encoding)."""
    errors = []
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            errors.append((encoding, exc))
    (_, utf8), (_, gb) = errors
    if utf8.start >= len(raw) - 3 and utf8.reason.startswith("unexpected end"):
        hint = "the file ends inside a character: it looks truncated (copy it again)"
    else:
        hint = "a file must be one encoding throughout; re-save it as UTF-8"
    raise UnreadableFile(
        f"{name}: not UTF-8 text (first invalid byte at {_where(raw, utf8.start)}) and not GBK/GB18030 "
        f"text (first invalid byte at {_where(raw, gb.start)}); {hint}"
    )


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


def _check_cell_sizes(rows: list[list[str]], name: str) -> None:
    for r, row in enumerate(rows, start=1):
        for c, cell in enumerate(row, start=1):
            if len(cell) > MAX_CELL_CHARS:
                raise UnreadableFile(f"{name} row {r}, column {c}: a cell of {len(cell):,} characters "
                                     f"(at most {MAX_CELL_CHARS:,} expected); the file looks broken")


def _csv_rows(text: str, name: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            rows.append([c.strip() for c in row])
    except csv.Error as exc:
        line = reader.line_num
        if "field larger than field limit" in str(exc):
            raise UnreadableFile(f"{name} row {line}: a cell longer than {MAX_CELL_CHARS:,} characters "
                                 "(no yearbook cell is); the file looks broken (an unclosed quote?)") from None
        raise UnreadableFile(f"{name} row {line}: not valid CSV ({exc})") from None
    return rows


def read_rows(path: Path, name: str | None = None) -> tuple[list[list[str]], str]:
    """All rows of the first sheet / the CSV as lists of stripped text; plus the encoding used.

    ``name`` is how the file is named in messages (its landing path), default its path.
    """
    name = name or str(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls"):
        from python_calamine import CalamineWorkbook

        try:
            workbook = CalamineWorkbook.from_path(str(path))
            sheet = workbook.get_sheet_by_index(0)
            rows = sheet.to_python(skip_empty_area=False)
        except Exception as exc:  # calamine raises its own error types
            raise UnreadableFile(f"{name}: cannot read the workbook ({exc})") from exc
        rows = [[_cell_text(v) for v in row] for row in rows]
        _check_cell_sizes(rows, name)
        return rows, "xlsx"
    if suffix in (".csv", ".txt"):
        text, encoding = decode(path.read_bytes(), name)
        return _csv_rows(text, name), encoding
    raise UnreadableFile(f"{name}: unsupported file type '{suffix}' (expected .csv or .xlsx)")
