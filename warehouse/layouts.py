"""The layouts of city tables as people receive them, read into one list of cells.

A city table is read top to bottom:

* **preamble** - rows above the header: titles (the data year is read from a title such as
  `…（2023年）`), notes and source lines;
* **header** - the first row with a city column (城市, 地区, city, …). Below it, optionally: a
  **scope row** (全市 / 市辖区 under each indicator of a two-level header, the indicator merged
  over both columns) and an **English row** (a bilingual header: no Chinese, no numbers);
* **body** - one row per city, with rows that are not cities recognised by rule: footnotes and
  source lines (注, 资料来源, 数据来源, 说明, 备注, note, source) wherever they are, province
  heading rows (a name and nothing else), subtotals (合计, 全省, a province name that is no
  city), a repeated header. A heading is recognised by its shape - a province's name (吉林, also
  a city's short name) with no values - not by the name alone.

Two shapes of body: **wide** (one column per indicator, optionally a year column: several years
in one sheet) and **long**, as EPS exports (地区, 年份, 指标, 单位, 数值: one row per city,
year and indicator). Both become the same cells; dbt pivots them into the panel.

Every column's header is mapped here (warehouse/mappings.py), so a header nobody mapped refuses
the file at ingest - with its file, column and the closest known header - instead of being
dropped in silence.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd

from warehouse.cells import EXPECTED, CellError, parse_number
from warehouse.mappings import HeaderMatch, Mappings
from warehouse.names import CityResolver, city_key
from warehouse.settings import SCOPES, DeliveryProfile

CITY_COLUMN_NAMES = {"城市", "城市名称", "地区", "地区名称", "city", "cityname", "city_name", "region"}
PROVINCE_COLUMN_NAMES = {"省份", "省", "所属省份", "province", "prov_name", "province_name"}
YEAR_COLUMN_NAMES = {"年份", "年度", "year"}
LONG_INDICATOR_NAMES = {"指标", "指标名称", "indicator"}
LONG_UNIT_NAMES = {"单位", "unit"}
LONG_VALUE_NAMES = {"数值", "值", "value"}
FOOTNOTE_PREFIXES = ("注", "资料来源", "数据来源", "来源", "说明", "备注", "note", "source")
TITLE_YEAR = re.compile(r"((?:19|20)\d{2})\s*年")

CELL_COLUMNS = ["year", "source_row", "source_col", "row_kind", "city_name_text", "city_key",
                "province_text", "header_text", "value_text", "scope", "variable", "unit", "column_kind"]


class LayoutError(ValueError):
    """A table that cannot be read: the message names file, row and column."""


def _key(text: str) -> str:
    return city_key(text)


def _has_cjk(text: str) -> bool:
    return bool(re.search(r"[\u3400-\u9fff]", text))


def is_footnote(text: str) -> bool:
    return _key(text).startswith(FOOTNOTE_PREFIXES)


def _is_number(text: str) -> bool:
    try:
        return parse_number(text) is not None
    except CellError:
        return False


@dataclass
class Column:
    index: int  # 0-based
    header: str  # the delivered header text (levels joined by " | ")
    match: HeaderMatch
    scope: str | None = None

    @property
    def kind(self) -> str:
        return "ignored" if self.match.ignored else "value"


@dataclass
class Table:
    """The structure found in a sheet: where the header is and what each column holds."""

    header_row: int  # 0-based
    body_start: int
    city_col: int
    province_col: int | None
    year_col: int | None
    title_year: int | None
    long: tuple[int, int | None, int] | None = None  # (indicator, unit, value) columns of a long table
    columns: list[Column] = field(default_factory=list)


def _find(keys: list[str], names: set[str]) -> int | None:
    return next((i for i, k in enumerate(keys) if k in names), None)


def title_year(rows: list[list[str]], header_row: int) -> int | None:
    """The data year a title row states (`2023年`, `（2023年）`), if exactly one year is stated."""
    years = {int(m.group(1)) for row in rows[:header_row] for cell in row if cell and not is_footnote(cell)
             for m in TITLE_YEAR.finditer(unicodedata.normalize("NFKC", cell))}
    return years.pop() if len(years) == 1 else None


def find_table(rows: list[list[str]], file_name: str) -> Table:
    header_row = next((i for i, row in enumerate(rows) if any(_key(c) in CITY_COLUMN_NAMES for c in row)), None)
    if header_row is None:
        raise LayoutError(f"{file_name}: no header row with a city column (one of "
                          f"{', '.join(sorted(CITY_COLUMN_NAMES))})")
    keys = [_key(c) for c in rows[header_row]]
    table = Table(header_row=header_row, body_start=header_row + 1,
                  city_col=_find(keys, CITY_COLUMN_NAMES), province_col=_find(keys, PROVINCE_COLUMN_NAMES),
                  year_col=_find(keys, YEAR_COLUMN_NAMES), title_year=title_year(rows, header_row))
    indicator, value = _find(keys, LONG_INDICATOR_NAMES), _find(keys, LONG_VALUE_NAMES)
    if indicator is not None and value is not None:
        table.long = (indicator, _find(keys, LONG_UNIT_NAMES), value)
    return table


def _sub_header_rows(rows: list[list[str]], table: Table) -> tuple[dict[int, str], dict[int, str]]:
    """The scope row and the English row below the header, if any: (scope by column, English by column)."""
    scopes, english = {}, {}
    r = table.header_row + 1
    while r < len(rows):
        cells = {i: c for i, c in enumerate(rows[r]) if c}
        if not cells:
            break
        keys = {i: unicodedata.normalize("NFKC", c).replace(" ", "") for i, c in cells.items()}
        if not scopes and all(k in SCOPES for k in keys.values()):
            scopes = keys
        elif (not english and not any(_has_cjk(c) for c in cells.values())
              and any(re.search(r"[A-Za-z]", c) for c in cells.values())
              and not any(_is_number(c) for c in cells.values())):
            english = cells
        else:
            break
        r += 1
    table.body_start = r
    return scopes, english


def column_headers(rows: list[list[str]], table: Table) -> tuple[list[tuple[int, str, str | None, str | None]], bool, bool]:
    """(index, header, scope, English label) of every column but city, province and year, with
    an indicator merged over its 全市/市辖区 columns carried to both; plus whether the header has
    a scope row and an English row. Sets ``table.body_start``."""
    header = list(rows[table.header_row])
    scopes, english = _sub_header_rows(rows, table)
    width = max(len(r) for r in rows[table.header_row:])
    header += [""] * (width - len(header))
    reserved = {table.city_col, table.province_col, table.year_col}
    out, last = [], ""
    for i in range(width):
        if i in reserved:
            last = ""
            continue
        text = header[i] or (last if i in scopes else "")
        last = text
        out.append((i, text, scopes.get(i), english.get(i)))
    return out, bool(scopes), bool(english)


def map_columns(rows: list[list[str]], table: Table, source: str, mappings: Mappings,
                file_name: str) -> list[Column]:
    """Every value column with what its header means; unmapped headers refuse the file."""
    headers, _, _ = column_headers(rows, table)
    columns, problems = [], []
    for i, text, scope, english in headers:
        if not text:
            if any(i < len(row) and row[i] for row in rows[table.body_start:] if not _row_is_note(row)):
                problems.append(f"column {i + 1} has values but no header")
            continue
        match = mappings.resolve_header(source, text)
        if match.error:
            problems.append(f"column {i + 1}: {match.error}")
            continue
        shown = " | ".join(part for part in (text, scope, english) if part)
        columns.append(Column(i, shown, match, scope))
    if problems:
        raise LayoutError(f"{file_name} row {table.header_row + 1}: " + "; ".join(problems))
    return columns


def _row_is_note(row: list[str]) -> bool:
    first = next((c for c in row if c), "")
    return is_footnote(first)


def _row_year(row: list[str], table: Table, default: int | None, file_name: str, line: int,
              header: list[str]) -> int | None:
    if table.year_col is None:
        return default
    text = unicodedata.normalize("NFKC", row[table.year_col]).strip().removesuffix("年")
    try:
        year = int(float(text))
    except ValueError:
        year = None
    if year is None or not 1900 <= year <= 2100:
        raise LayoutError(f"{file_name} row {line}, column {table.year_col + 1} ('{header[table.year_col]}'): "
                          f"year '{row[table.year_col]}' is not a year (expected e.g. 2023 or 2023年)")
    return year


@dataclass
class ParsedTable:
    frame: pd.DataFrame
    years: list[int]
    year_from: str  # column | title | file name


def parse_city_table(rows: list[list[str]], file_name: str, source: str, name_year: int | None,
                     profile: DeliveryProfile, mappings: Mappings, resolver: CityResolver) -> ParsedTable:
    """Long text cells of a city table in any supported layout; every row kind kept and flagged."""
    table = find_table(rows, file_name)
    header = rows[table.header_row]
    if table.long:
        _sub_header_rows(rows, table)
    else:
        table.columns = map_columns(rows, table, source, mappings, file_name)
    # the data year: a year column, else the title's year, else the file name's (with the offset)
    if table.year_col is not None:
        year, year_from = None, "column"
    elif table.title_year is not None:
        year, year_from = table.title_year, "title"
    elif name_year is not None:
        year, year_from = name_year + profile.year_offset, "file name"
    else:
        raise LayoutError(f"{file_name}: no year - no year column ({' / '.join(sorted(YEAR_COLUMN_NAMES))}), "
                          "no year in a title row (e.g. 2023年) and none (19xx/20xx) in the file name")
    # Historical tables (1984 telephones, 2014 population) are keyed by today's cities.
    keyed_today = source == "historical"
    width = max(len(header), *(len(r) for r in rows)) if rows else 0
    records, problems, bad_cells = [], [], []
    long_matches: dict[tuple[str, str], HeaderMatch] = {}
    value_cols = [c.index for c in table.columns]
    for r in range(table.body_start, len(rows)):
        row = rows[r] + [""] * (width - len(rows[r]))
        line = r + 1  # 1-based, as a spreadsheet shows it
        first = next((c for c in row if c), "")
        if not first:
            continue
        name = row[table.city_col]
        province = row[table.province_col] if table.province_col is not None else None
        if is_footnote(first):
            records.append((year, line, row.index(first) + 1, "footnote", first, "", None, "", first,
                            None, None, None, "note"))
            continue
        if _key(name) in CITY_COLUMN_NAMES:  # the header repeated (a page break in an export)
            continue
        data_cols = [table.long[2]] if table.long else value_cols
        if name and not any(row[c] for c in data_cols) and resolver.is_province_name(name):
            kind = "heading"  # a province heading: a province's name and no values (吉林 is no city here)
        else:
            row_year = _row_year(row, table, year, file_name, line, header)
            if not name:
                problems.append(f"row {line}, column {table.city_col + 1}: values but no city name")
                continue
            if resolver.is_province_row(name):
                kind = "subtotal"
            else:
                result = resolver.resolve(name, None if keyed_today else row_year, province)
                if result.error:
                    problems.append(f"row {line}, column {table.city_col + 1} ('{header[table.city_col]}'): "
                                    f"{result.error}")
                    continue
                kind = "excluded" if result.excluded else "city"
        if kind == "heading":
            records.append((year, line, table.city_col + 1, kind, name, _key(name), province,
                            header[table.city_col], "", None, None, None, "note"))
            continue
        if table.long:
            indicator_col, unit_col, value_col = table.long
            indicator = row[indicator_col]
            unit = row[unit_col] if unit_col is not None else ""
            text = f"{indicator}({unit})" if unit else indicator
            match = long_matches.get((indicator, unit))
            if match is None:
                match = long_matches[(indicator, unit)] = mappings.resolve_header(source, text)
            if match.error:
                problems.append(f"row {line}, column {indicator_col + 1}: {match.error}")
                continue
            cells = [(value_col, text, match, None)]
        else:
            cells = [(c.index, c.header, c.match, c.scope) for c in table.columns]
        for col, text, match, scope in cells:
            column_kind = "ignored" if match.ignored else (
                "other_scope" if scope and scope != profile.scope else "value")
            records.append((row_year, line, col + 1, kind, name, _key(name), province, text, row[col],
                            scope, match.variable, match.unit, column_kind))
            if kind == "city" and column_kind == "value":
                bad_cells.append((line, col + 1, text, row[col]))
    if problems:
        shown = "; ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise LayoutError(f"{file_name} {shown}")
    check_numbers(bad_cells, file_name)
    frame = pd.DataFrame.from_records(records, columns=CELL_COLUMNS)
    if frame.empty or not (frame["row_kind"] == "city").any():
        raise LayoutError(f"{file_name}: no city rows below the header (row {table.header_row + 1})")
    years = sorted(int(y) for y in frame.loc[frame["row_kind"] == "city", "year"].dropna().unique())
    return ParsedTable(frame, years, year_from)


def check_numbers(cells, file_name: str, shown: int = 5) -> None:
    """Refuse a file with cells that are neither numbers nor missing markers (warehouse/cells.py)."""
    bad = []
    for line, col, header, value in cells:
        try:
            parse_number(value)
        except CellError:
            bad.append(f"row {line}, column {col} ({header}): {value!r}")
    if bad:
        more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
        raise LayoutError(f"{file_name}: {len(bad)} cell(s) are not {EXPECTED}: " + "; ".join(bad[:shown]) + more)


@dataclass
class HeaderReport:
    column: int  # 1-based
    row: int  # 1-based row of the header (or of the first row of a long table's indicator)
    header: str
    match: HeaderMatch
    scope: str | None = None


@dataclass
class Description:
    """What ingest would read in a city table, before anything is loaded (`cityres mappings check`)."""

    layout: str  # wide | wide, two-level (全市/市辖区) | long (EPS) ...
    header_row: int  # 1-based
    year: str  # in words: where the data year comes from
    headers: list[HeaderReport]


def describe_table(rows: list[list[str]], file_name: str, source: str, name_year: int | None,
                   profile: DeliveryProfile, mappings: Mappings) -> Description:
    """Every header of a city table with what it maps to (errors included, nothing raised for them)."""
    table = find_table(rows, file_name)
    if table.year_col is not None:
        year = f"a year column ('{rows[table.header_row][table.year_col]}', column {table.year_col + 1})"
    elif table.title_year is not None:
        year = f"{table.title_year}, from the title"
    elif name_year is not None:
        shift = f" {profile.year_offset:+d} ({profile.origin})" if profile.year_offset else ""
        year = f"{name_year + profile.year_offset}, from the file name ({name_year}{shift})"
    else:
        year = "none found: the file would be refused"
    headers = []
    if table.long:
        _sub_header_rows(rows, table)
        indicator_col, unit_col, _ = table.long
        layout = "long (one row per city, year and indicator)"
        seen = set()
        for r in range(table.body_start, len(rows)):
            row = rows[r] + [""] * (max(indicator_col, unit_col or 0) + 1 - len(rows[r]))
            indicator, unit = row[indicator_col], (row[unit_col] if unit_col is not None else "")
            if not indicator or (indicator, unit) in seen or is_footnote(next((c for c in row if c), "")):
                continue
            seen.add((indicator, unit))
            text = f"{indicator}({unit})" if unit else indicator
            headers.append(HeaderReport(indicator_col + 1, r + 1, text, mappings.resolve_header(source, text)))
    else:
        columns, two_level, bilingual = column_headers(rows, table)
        layout = ("wide" + (f", two-level header (全市 / 市辖区; {profile.scope} used)" if two_level else "")
                  + (", bilingual header" if bilingual else ""))
        headers = [HeaderReport(i + 1, table.header_row + 1, text, mappings.resolve_header(source, text), scope)
                   for i, text, scope, _ in columns if text]
    return Description(layout, table.header_row + 1, year, headers)
