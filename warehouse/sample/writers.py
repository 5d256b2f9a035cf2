"""File writers: turn latent data into deliveries that look like the real thing, mess included.

Every writer is byte-deterministic given its inputs (no timestamps, fixed workbook
properties, fixed line endings) so the same seed reproduces the same files.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import xlsxwriter

from warehouse.sample import national
from warehouse.sample.cities import SANSHA, CityTable
from warehouse.sample.mess import COLUMNS, FOOTNOTES, MISSING_MARKERS, TITLE, YearLayout

# Fixed workbook metadata: xlsxwriter otherwise stamps the current time into docProps/core.xml.
WORKBOOK_CREATED = dt.datetime(2024, 6, 1, 0, 0, 0)
YEARBOOK_LINE_END = "\r\n"  # the yearbooks look like Excel exports from Windows


def _csv_text(rows: list[list[str]], line_end: str = "\n") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=line_end).writerows(rows)
    return buf.getvalue()


def _grid(
    cities: CityTable,
    lay: YearLayout,
    values: dict[str, np.ndarray],
    labels: np.ndarray,
    published: np.ndarray,
    missing: np.ndarray,
    markers: np.ndarray,
) -> list[list[object]]:
    """The sheet as rows of cells: floats for numbers, str for text, None for an empty cell."""
    width = 1 + len(COLUMNS)
    rows: list[list[object]] = [[TITLE.format(year=lay.year)] + [None] * (width - 1)]
    if lay.blank_row_after_title:
        rows.append([None] * width)
    rows.append(["城市"] + [lay.header(c) for c in COLUMNS])

    def number(col, x: float) -> float:
        return round(float(x) * lay.scale(col), lay.decimals(col))

    for _prov, members in cities.province_groups(published):
        single_municipality = len(members) == 1 and cities.admin_level[members[0]] == "municipality"
        if not single_municipality:
            # Subtotals come from the complete data, as a statistics office would compute
            # them, so they need not equal the sum of the printed (rounded, gappy) cells.
            sub: list[object] = [cities.province_zh[members[0]]]
            for col in COLUMNS:
                sub.append(number(col, values[col.var][members].sum()) if col.additive else None)
            rows.append(sub)
        for i in members:
            row: list[object] = [labels[i]]
            for j, col in enumerate(COLUMNS):
                if missing[i, j]:
                    marker = MISSING_MARKERS[markers[i, j]]
                    row.append(marker or None)
                else:
                    row.append(number(col, values[col.var][i]))
            rows.append(row)
    rows.extend([[note] + [None] * (width - 1) for note in FOOTNOTES])
    return rows


def _cell_text(cell: object, decimals: int) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:.{decimals}f}"
    return str(cell)


def write_yearbook(
    folder: Path,
    cities: CityTable,
    lay: YearLayout,
    values: dict[str, np.ndarray],
    labels: np.ndarray,
    published: np.ndarray,
    missing: np.ndarray,
    markers: np.ndarray,
) -> Path:
    rows = _grid(cities, lay, values, labels, published, missing, markers)
    path = folder / lay.filename
    decimals = [0] + [lay.decimals(c) for c in COLUMNS]
    if lay.fmt == "csv":
        text_rows = [[_cell_text(cell, decimals[j]) for j, cell in enumerate(r)] for r in rows]
        # strict: a name that GBK cannot encode must fail loudly, not turn into '?'.
        path.write_bytes(_csv_text(text_rows, YEARBOOK_LINE_END).encode(lay.encoding, errors="strict"))
        return path
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False})
    wb.set_properties({"title": TITLE.format(year=lay.year), "author": "cityres sample generator (synthetic)",
                       "created": WORKBOOK_CREATED})  # fmt: skip
    ws = wb.add_worksheet(str(lay.year))
    bold = wb.add_format({"bold": True})
    width = len(rows[0])
    ws.merge_range(0, 0, 0, width - 1, rows[0][0], bold)
    for r, row in enumerate(rows[1:], start=1):
        for c, cell in enumerate(row):
            if cell is None:
                continue
            if isinstance(cell, float):
                ws.write_number(r, c, cell)
            else:
                ws.write_string(r, c, str(cell))
    wb.close()
    return path


def write_national(folder: Path, year: int) -> Path:
    path = folder / f"national_{year}.csv"
    path.write_bytes(_csv_text([["指标", "数值"], *map(list, national.formatted_rows(year))]).encode("utf-8"))
    return path


PATENT_HEADER = [
    "year", "province", "city", "patents_granted", "invention_patents_granted",
    "green_patent_applications", "digital_economy_patent_applications",
]  # fmt: skip


def patent_city_names(cities: CityTable, year: int, rng: np.random.Generator) -> np.ndarray:
    """English city names as the patent database spells them in `year`.

    The house style changes over time (pinyin with apostrophes, then plain ASCII, then
    conventional forms such as Harbin or Hohhot); some rows use the disambiguated form
    ('Suzhou (Anhui)'), and in a few years former English names (Peking, Canton...) appear.
    Every one of them is an alias in ref_city_aliases, and ambiguous bare names stay
    resolvable through the province column.
    """
    if year <= 2014:
        names = cities.name_en.copy()
    elif year <= 2018:
        names = cities.name_en_ascii.copy()
    else:
        names = cities.name_en_conventional.copy()
    unique = rng.random(cities.n) < 0.05
    names[unique] = cities.name_en_unique[unique]
    if year in (2012, 2020):
        for a in cities.aliases:
            if a.change_type == "historical_en" and a.name_en and a.covers(year) and a.city_code in cities.idx:
                names[cities.idx[a.city_code]] = a.name_en
    return names


def write_patents(folder: Path, cities: CityTable, year: int, values: dict[str, np.ndarray],
                  published: np.ndarray, names: np.ndarray) -> Path:  # fmt: skip
    rows = [PATENT_HEADER]
    order = sorted(np.flatnonzero(published), key=lambda i: (cities.province_code[i], cities.code[i]))
    for i in order:
        rows.append([
            str(year), cities.province_en[i], names[i],
            *(f"{values[v][i]:.0f}" for v in PATENT_HEADER[3:]),
        ])  # fmt: skip
    path = folder / f"patents_{year}.csv"
    path.write_bytes(_csv_text(rows).encode("utf-8"))
    return path


DIGITAL_FINANCE_FILE = "北京大学数字普惠金融指数_地级市.csv"
DIGITAL_FINANCE_HEADER = ["省份", "城市", "年份", "数字普惠金融指数"]


def write_digital_finance(folder: Path, cities: CityTable, years: np.ndarray, finance: np.ndarray,
                          published: np.ndarray) -> Path:
    """One long file, as the index is distributed: a row per city and year (the cities of that
    year's yearbooks), the aggregate index with two decimals. Synthetic like everything here."""
    rows = [DIGITAL_FINANCE_HEADER]
    for t, year in enumerate(years):
        order = sorted(np.flatnonzero(published[:, t]), key=lambda i: (cities.province_code[i], cities.code[i]))
        rows += [[cities.province_zh[i], cities.name_zh[i], str(int(year)), f"{finance[i, t]:.2f}"] for i in order]
    path = folder / DIGITAL_FINANCE_FILE
    path.write_bytes(_csv_text(rows).encode("utf-8"))
    return path


def write_historical(folder: Path, cities: CityTable, phones: np.ndarray, core2014: np.ndarray) -> list[Path]:
    """Historical tables are keyed by today's cities (they feed instruments and tiers of the
    current panel), so Laiwu, abolished in 2019, is not in them; nor is Sansha."""
    current = (cities.last_year == 9999) & (cities.code != SANSHA)
    phones_rows = [["城市", "每百人固定电话数(部)"]]
    phones_rows += [[cities.name_zh[i], f"{phones[i]:.2f}"] for i in np.flatnonzero(current)]
    core_rows = [["城市", "城区常住人口(万人)"]]
    core_rows += [[cities.name_zh[i], f"{core2014[i]:.2f}"] for i in np.flatnonzero(current & cities.published(2014))]
    out = []
    for name, rows in (("telephones_1984.csv", phones_rows), ("urban_population_2014.csv", core_rows)):
        path = folder / name
        path.write_bytes(_csv_text(rows).encode("utf-8"))
        out.append(path)
    return out


README = """SYNTHETIC SAMPLE DATA - NOT REAL STATISTICS
============================================

Everything in this folder was simulated by the cityres sample generator
(warehouse.sample.write_sample, seed {seed}, years {start}-{end}, firm_scale {scale}).
The files imitate the layout of real deliveries (Chinese city statistical yearbooks,
a patent database, a firm registry, national series, historical tables, a digital
inclusive finance index in the layout of the Peking University index), including
their mess, but every number comes from a known data-generating process.

ground_truth.json holds that process's true values: the entropy weights of the
resilience index and the true effects (ATT) of the Big Data Pilot Zone policy.

Do not cite, publish or analyse these numbers as facts about Chinese cities.
See docs/sample-data.md in the cityres repository for the full description.
"""


STAGGERED_NOTE = """
Adoption design: STAGGERED. The pilot cities adopt in cohorts ({cohorts}), with
effects that differ by cohort. Load this sample with the staggered adoption dates:
put these two lines in $CITYRES_HOME/cityres.toml before `cityres refresh`:

    [dbt_vars]
    adoption_dates = "staggered"
"""


def write_readme(out_dir: Path, seed: int, start: int, end: int, scale: float, design=None) -> Path:
    path = out_dir / "README.txt"
    text = README.format(seed=seed, start=start, end=end, scale=scale)
    if design is not None and design.design == "staggered":
        sizes = {g: int((design.adoption == g).sum()) for g in design.cohorts}
        text += STAGGERED_NOTE.format(cohorts=", ".join(f"{g}: {n} cities" for g, n in sizes.items()))
    path.write_bytes(text.encode("utf-8"))
    return path
