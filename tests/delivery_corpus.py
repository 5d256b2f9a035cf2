"""Fixture corpus: one wide yearbook delivery of the synthetic sample rewritten in the other layouts
researchers receive (CNKI workbook, EPS long table, GBK wide table in 亿元, a later edition's
wording, several years in one sheet, bilingual headers, a file named by its edition year).

Every writer keeps the numbers (rescaled exactly where a unit changes), so a test can require each
layout to load to the same cells - city, year, variable, value in canonical unit - as the original.
Only the standard library and openpyxl write; python_calamine reads the sample's XLSX years.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from openpyxl import Workbook

SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"
FOOTNOTE_PREFIXES = ("注", "资料来源")
SAMPLE_FOOTNOTES = ("注：本表为合成样本数据（SYNTHETIC）。", "资料来源：cityres 合成样本生成器（非真实数据）。")

# Keys as the sample prints them; GDP is in 万元 except in 2015 (亿元), hence two keys.
LATER_EDITION_HEADERS = {
    "年末户籍人口(万人)": "户籍人口（年末）(万人)",
    "地区生产总值(万元)": "GDP(万元)",
    "地区生产总值(亿元)": "GDP(万元)",
    "在岗职工平均工资(元)": "职工平均工资",
    "行政区域土地面积(平方公里)": "行政区域土地面积(km²)",
    "移动电话年末用户数(万户)": "年末移动电话用户数(万户)",
    "互联网宽带接入用户数(万户)": "固定互联网宽带接入用户数(万户)",
}
# 行政区域土地面积 keeps its base, which the yearbook_headers seed already maps: a second row for
# it would map the base twice. Its new unit km² is what LATER_EDITION_UNITS_CSV adds.
LATER_EDITION_MAPPINGS_CSV = """source,header,variable,unit
city_yearbook,户籍人口（年末）,pop_total,
city_yearbook,GDP,gdp,
city_yearbook,职工平均工资,avg_wage,元
city_yearbook,年末移动电话用户数,mobile_users,
city_yearbook,固定互联网宽带接入用户数,broadband_users,
"""
LATER_EDITION_UNITS_CSV = "unit,canonical_unit,factor\nkm²,平方公里,1\n"

# Value factors of the unit changes the writers make; any other relabelling keeps the numbers.
_UNIT_FACTORS = {("亿元", "万元"): Decimal(10000), ("万元", "亿元"): Decimal(1) / Decimal(10000)}
_ENGLISH_UNITS = {
    "万人": "10,000 persons", "人": "persons", "平方公里": "km2", "亿元": "100 million yuan",
    "万元": "10,000 yuan", "元": "yuan", "万美元": "10,000 US dollars", "张": "beds",
    "万平方米": "10,000 m2", "吨": "tonnes", "万千瓦时": "10,000 kWh", "%": "%", "万户": "10,000 subscribers",
}
_PROVINCE_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")
_UNIT_IN_HEADER = re.compile(r"^(.*)\(([^()]*)\)$")


@dataclass
class WideTable:
    year: int
    headers: list[str]  # value headers exactly as delivered, e.g. "地区生产总值(亿元)"
    rows: list[tuple[str, list[str]]]  # (city name as delivered, value cells as text)


# ---------------------------------------------------------------- reading the sample

def _cell_text(value: object) -> str:
    """A typed spreadsheet cell as the text a CSV of the same sheet holds (16410.0 -> "16410")."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return "" if value is None else str(value).strip()


def _sheet_rows(path: Path) -> list[list[str]]:
    if path.suffix.lower() == ".xlsx":
        from python_calamine import CalamineWorkbook

        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        return [[_cell_text(v) for v in row] for row in sheet.to_python(skip_empty_area=False)]
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # the sample delivers some years in GBK
        text = raw.decode("gb18030")
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))]


def read_wide(path: Path) -> WideTable:
    """The sample's wide yearbook (CSV in any of its encodings, or XLSX); year from the title row."""
    title, header, *body = [row for row in _sheet_rows(path) if any(row)]
    year = re.search(r"((?:19|20)\d{2})年", title[0])
    if year is None or header[0] != "城市":
        raise ValueError(f"{path}: expected a title row with the year ('2015年 …') then a header row '城市,…'")
    headers = header[1:]
    while headers and not headers[-1]:
        headers.pop()
    rows = [(row[0], (row[1:] + [""] * len(headers))[:len(headers)])
            for row in body if not row[0].startswith(FOOTNOTE_PREFIXES)]
    return WideTable(int(year.group(1)), headers, rows)


def cells_of(table: WideTable) -> dict[tuple[str, int, str], str]:
    """(city name as delivered, year, header) -> cell text, blank cells included."""
    return {(name, table.year, header): cell
            for name, cells in table.rows for header, cell in zip(table.headers, cells, strict=True)}


# ---------------------------------------------------------------- shared pieces

def _split_header(header: str) -> tuple[str, str | None]:
    """("地区生产总值", "亿元") for "地区生产总值(亿元)"; only the last ASCII bracket is a unit."""
    match = _UNIT_IN_HEADER.match(header)
    return (match.group(1), match.group(2)) if match else (header, None)


def _fullwidth(header: str) -> str:
    base, unit = _split_header(header)
    return header if unit is None else f"{base}（{unit}）"


def _number(cell: str) -> Decimal | None:
    """The cell's value, or None for a missing marker ("—", "...", blank)."""
    try:
        value = Decimal(cell)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")  # format "f": no exponent, even for 1E+1


def _rescaled(table: WideTable, renames: dict[str, str]) -> WideTable:
    """The table with headers renamed; a column whose unit changes is rescaled exactly (Decimal)."""
    factors = [_UNIT_FACTORS.get((_split_header(h)[1], _split_header(renames.get(h, h))[1]), Decimal(1))
               for h in table.headers]

    def scaled(cell: str, factor: Decimal) -> str:
        value = _number(cell)
        return cell if value is None or factor == 1 else _plain(value * factor)

    rows = [(name, [scaled(c, f) for c, f in zip(cells, factors, strict=True)]) for name, cells in table.rows]
    return WideTable(table.year, [renames.get(h, h) for h in table.headers], rows)


def _write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", pad: bool = True) -> Path:
    """CRLF rows like the sample's; padded to one width as a spreadsheet export is."""
    width = max(map(len, rows)) if pad else 0
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(row + [""] * (width - len(row)) for row in rows)
    return path


def _write_sample_layout(table: WideTable, path: Path, title: str) -> Path:
    return _write_csv(path, [[title], [], ["城市", *table.headers],
                             *([name, *cells] for name, cells in table.rows),
                             *([note] for note in SAMPLE_FOOTNOTES)])


@cache
def _province_of_city() -> dict[str, str]:
    """City name (full or short, as ref_cities spells them) -> province; provinces in seed order."""
    with (SEEDS / "reference" / "ref_cities.csv").open(encoding="utf-8") as f:
        cities = list(csv.DictReader(f))
    return {name: city["province_name_zh"]
            for city in cities for name in (city["city_name_zh"], city["city_name_short_zh"])}


@cache
def _yearbook_descriptions() -> dict[str, str]:
    with (SEEDS / "yearbook_headers.csv").open(encoding="utf-8") as f:
        return {row["header_base"]: row["description"]
                for row in csv.DictReader(f) if row["source"] == "city_yearbook"}


# ---------------------------------------------------------------- the layouts

def _short_province(name: str) -> str:
    return next((name.removesuffix(s) for s in _PROVINCE_SUFFIXES if name.endswith(s)), name)


def _short_city(name: str) -> str:
    return name[:-1] if name.endswith("市") and len(name) > 2 else name


def _xlsx_value(cell: str) -> int | float | str | None:
    value = _number(cell)
    if value is None:
        return cell or None
    return float(cell) if "." in cell else int(cell)


def _district(cell: str) -> str:
    """A deterministic 市辖区 value different from the 全市 one; markers stay markers."""
    return cell if _number(cell) is None else str(round(float(cell) * 0.6, 2))


def write_cnki_xlsx(table: WideTable, path: Path) -> Path:
    """CNKI export: two header rows (indicator over 全市 | 市辖区), cities under short province headings."""
    province_of = _province_of_city()
    groups: dict[str | None, list[tuple[str, list[str]]]] = {p: [] for p in province_of.values()}
    groups[None] = []  # last, without heading: names the seed does not know (subtotal rows among them)
    for row in table.rows:
        groups[province_of.get(row[0])].append(row)

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = str(table.year)
    width = 1 + 2 * len(table.headers)
    sheet.append([f"2-1 地级及以上城市主要统计指标（{table.year}年）"])
    sheet.append(["地区", *(v for h in table.headers for v in (_fullwidth(h), None))])
    sheet.append([None, *["全市", "市辖区"] * len(table.headers)])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet.merge_cells(start_row=2, start_column=1, end_row=3, end_column=1)
    for column in range(2, width, 2):
        sheet.merge_cells(start_row=2, start_column=column, end_row=2, end_column=column + 1)
    for province, rows in groups.items():
        if rows and province is not None:
            sheet.append([_short_province(province)])  # "吉林" is also a city of this group
        for name, cells in rows:
            sheet.append([_short_city(name),
                          *(_xlsx_value(v) for cell in cells for v in (cell, _district(cell)))])
    sheet.append(["注：全市包括市辖区和所辖县（市）。"])
    sheet.append(["资料来源：合成样本（SYNTHETIC）。"])
    workbook.save(path)
    return path


def write_eps_long_csv(table: WideTable, path: Path) -> Path:
    """EPS long export in GBK: one row per city x indicator; blank cells are left out."""
    rows = [["地区", "年份", "指标", "单位", "数值"]]
    for name, cells in table.rows:
        for header, cell in zip(table.headers, cells, strict=True):
            if cell:
                base, unit = _split_header(header)
                rows.append([name, str(table.year), base, unit or "", cell])
    return _write_csv(path, [*rows, [], ["数据来源：EPS数据平台（合成样本）"]], "gb18030", pad=False)


def write_wide_gbk_yi(table: WideTable, path: Path) -> Path:
    """Wide GBK table with full-width brackets and every 万元 column restated in 亿元."""
    yi = _rescaled(table, {h: f"{base}(亿元)" for h in table.headers
                           for base, unit in [_split_header(h)] if unit == "万元"})
    return _write_csv(path, [[f"{table.year}年 城市主要指标"], ["城市", *map(_fullwidth, yi.headers)],
                             *([name, *cells] for name, cells in yi.rows)], "gb18030")


def write_later_edition(table: WideTable, path: Path) -> Path:
    """The sample's layout with LATER_EDITION_HEADERS' wording (GDP restated in 万元)."""
    later = _rescaled(table, LATER_EDITION_HEADERS)
    return _write_sample_layout(later, path, f"{table.year}年 地级及以上城市主要统计指标（合成样本数据）")


def write_multi_year(tables: list[WideTable], path: Path) -> Path:
    """Several years stacked in one sheet (year-major) under one header with a 年份 column."""
    tables = sorted(tables, key=lambda t: t.year)
    if any(t.headers != tables[0].headers for t in tables):
        # One sheet has one header row: years whose headers differ (2011-2012, 2015) cannot share it.
        raise ValueError(f"years {[t.year for t in tables]} do not share their headers")
    return _write_csv(path, [["城市", "年份", *tables[0].headers],
                             *([name, str(t.year), *cells] for t in tables for name, cells in t.rows)])


def _english(header: str) -> str:
    base, unit = _split_header(header)
    label = re.sub(r"\s*\([^()]*\)$", "", _yearbook_descriptions()[base])  # drop "(GB/T … name)" notes
    return label if unit is None else f"{label} ({_ENGLISH_UNITS[unit]})"


def write_bilingual(table: WideTable, path: Path) -> Path:
    """Chinese header row with an English one directly below; the note above the headers."""
    return _write_csv(path, [[f"{table.year}年 地级及以上城市主要统计指标（合成样本数据）"],
                             ["说明：本表数据为合成样本。"],
                             ["城市", *table.headers], ["City", *map(_english, table.headers)],
                             *([name, *cells] for name, cells in table.rows)])


def write_edition_named(table: WideTable, folder: Path) -> Path:
    """The sample's layout without the year in the title, named by the edition (data year + 1)."""
    path = folder / f"中国城市统计年鉴{table.year + 1}.csv"
    return _write_sample_layout(table, path, "地级及以上城市主要统计指标")
