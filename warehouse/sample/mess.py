"""The delivery plan: how each year's yearbook looks and which of its cells are missing.

Format, encoding, units, header wording and city names all vary by year, as they do in
real deliveries.

Kept apart from the writers so the documentation, the tests and the files all read the
same rules.  Years outside 2011-2023 get the plain layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.sample.cities import CityTable

XLSX_YEARS = frozenset({2013, 2019})
GBK_YEARS = frozenset({2012, 2017})
YI_YUAN_YEARS = frozenset({2015})  # GDP and value added printed in 亿元 instead of 万元
OLD_INDUSTRY_LAST_YEAR = 2012  # GB/T 4754-2002 sector names up to here, 2011 standard after
SHORT_NAME_YEARS = frozenset({2016, 2020})  # city names without the 市 suffix
TRADITIONAL_YEARS = frozenset({2014})  # a few cities in traditional characters
TRADITIONAL_CITIES_PER_YEAR = 8
HISTORICAL_CHANGE_TYPES = frozenset({"renamed", "prefecture_to_city", "county_city_upgraded"})

MISSING_MARKERS = ("—", "...", "")
PANEL_MISSING_SHARE = 0.005
DATA_POOR_MISSING_SHARE = 0.03  # Tibet: thin statistics, still interior and non-consecutive gaps
NON_PANEL_MISSING_SHARE = 0.05
FIRST_YEAR_MISSING_SHARE = 0.3  # a newly created city's first yearbook row

TITLE = "{year}年 地级及以上城市主要统计指标（合成样本数据）"
FOOTNOTES = (
    "注：本表为合成样本数据（SYNTHETIC），由 cityres 样本生成器按已知数据生成过程模拟，"
    "不代表任何真实统计；“—”“...”或空白表示数据缺失。",
    "资料来源：cityres 合成样本生成器（非真实数据），格式仿照《中国城市统计年鉴》。",
)


@dataclass(frozen=True)
class Column:
    var: str
    base: str
    unit: str
    decimals: int
    additive: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("pop_total", "年末户籍人口", "万人", 2),
    Column("pop_urban", "城镇人口", "万人", 2),
    Column("land_area", "行政区域土地面积", "平方公里", 0),
    Column("gdp", "地区生产总值", "万元", 0),
    Column("va_secondary", "第二产业增加值", "万元", 0),
    Column("va_tertiary", "第三产业增加值", "万元", 0),
    Column("trade_total", "货物进出口总额", "万美元", 0),
    Column("fdi", "当年实际使用外资金额", "万美元", 0),
    Column("unemp_insured", "失业保险参保人数", "人", 0),
    Column("savings", "城乡居民储蓄年末余额", "万元", 0),
    Column("retail_sales", "社会消费品零售总额", "万元", 0),
    Column("fiscal_revenue", "地方一般公共预算收入", "万元", 0),
    Column("fiscal_expenditure", "地方一般公共预算支出", "万元", 0),
    Column("edu_expenditure", "教育支出", "万元", 0),
    Column("sci_expenditure", "科学技术支出", "万元", 0),
    Column("deposits", "年末金融机构各项存款余额", "万元", 0),
    Column("loans", "年末金融机构各项贷款余额", "万元", 0),
    Column("hospital_beds", "医院床位数", "张", 0),
    Column("college_students", "普通高等学校在校学生数", "人", 0),
    Column("road_area", "年末实有城市道路面积", "万平方米", 0),
    Column("avg_wage", "在岗职工平均工资", "元", 0, additive=False),
    Column("emp_total", "城镇单位从业人员期末人数", "万人", 2),
    Column("emp_it", "信息传输、软件和信息技术服务业从业人员", "万人", 2),
    Column("emp_research", "科学研究和技术服务业从业人员", "万人", 2),
    # Used only by the new-quality-productivity indices.
    Column("college_teachers", "普通高等学校专任教师数", "人", 0),
    Column("so2_industrial", "工业二氧化硫排放量", "吨", 0),
    Column("electricity_use", "全社会用电量", "万千瓦时", 0),
    Column("wastewater_treatment_rate", "污水处理厂集中处理率", "%", 2, additive=False),
    Column("broadband_users", "互联网宽带接入用户数", "万户", 2),
    Column("mobile_users", "移动电话年末用户数", "万户", 2),
    Column("telecom_volume", "电信业务总量", "万元", 0),
)
OLD_INDUSTRY_BASES = {
    "emp_it": "信息传输、计算机服务和软件业从业人员",
    "emp_research": "科学研究、技术服务和地质勘查业从业人员",
}
YI_YUAN_VARS = frozenset({"gdp", "va_secondary", "va_tertiary"})


@dataclass(frozen=True)
class YearLayout:
    year: int
    fmt: str  # "csv" or "xlsx"
    encoding: str | None  # python codec for CSV years
    yi_yuan: bool
    old_industry_names: bool
    short_names: bool
    blank_row_after_title: bool

    @property
    def filename(self) -> str:
        return f"中国城市统计年鉴_{self.year}.{self.fmt}"

    def header(self, col: Column) -> str:
        base = OLD_INDUSTRY_BASES.get(col.var, col.base) if self.old_industry_names else col.base
        return f"{base}({self.unit(col)})"

    def unit(self, col: Column) -> str:
        return "亿元" if self.yi_yuan and col.var in YI_YUAN_VARS else col.unit

    def scale(self, col: Column) -> float:
        return 1e-4 if self.yi_yuan and col.var in YI_YUAN_VARS else 1.0

    def decimals(self, col: Column) -> int:
        return 2 if self.yi_yuan and col.var in YI_YUAN_VARS else col.decimals


def layout(year: int) -> YearLayout:
    fmt = "xlsx" if year in XLSX_YEARS else "csv"
    if fmt == "xlsx":
        encoding = None
    elif year in GBK_YEARS:
        encoding = "gbk"
    else:
        # Excel-style exports carry a BOM in even years, plain UTF-8 in odd years.
        encoding = "utf-8-sig" if year % 2 == 0 else "utf-8"
    return YearLayout(
        year=year,
        fmt=fmt,
        encoding=encoding,
        yi_yuan=year in YI_YUAN_YEARS,
        old_industry_names=year <= OLD_INDUSTRY_LAST_YEAR,
        short_names=year in SHORT_NAME_YEARS,
        blank_row_after_title=year % 2 == 1,
    )


def city_labels(cities: CityTable, year: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, str]]:
    """The name each city carries in `year`'s yearbook, and a log of the non-canonical ones."""
    lay = layout(year)
    labels = (cities.short_zh if lay.short_names else cities.name_zh).copy()
    variants: dict[str, str] = {}
    published = cities.published(year)
    if year in TRADITIONAL_YEARS:
        options = {
            a.city_code: a.name_zh
            for a in cities.aliases
            if a.change_type == "traditional_chars" and a.name_zh.endswith("市") and a.covers(year)
        }
        codes = sorted(c for c in options if published[cities.idx[c]])
        picked = rng.choice(len(codes), size=min(TRADITIONAL_CITIES_PER_YEAR, len(codes)), replace=False)
        for j in sorted(picked):
            code = codes[j]
            labels[cities.idx[code]] = variants[code] = options[code]
    # Former names, only where the alias table says they are valid for this data year.
    for a in cities.aliases:
        if a.change_type in HISTORICAL_CHANGE_TYPES and a.name_zh and a.covers(year):
            i = cities.idx.get(a.city_code)
            if i is not None and published[i]:
                labels[i] = variants[a.city_code] = a.name_zh
    return labels, variants


def missing_mask(cities: CityTable, years: np.ndarray, published: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(city, year, column) cells printed as missing.

    Balanced-panel cities only get interior gaps (never the first or last year, never two
    consecutive years in one column), so interpolation can always fill them.
    """
    n, T = published.shape
    C = len(COLUMNS)
    draws = rng.random((n, T, C))
    data_poor = cities.province_code == "540000"
    share = np.where(cities.balanced, np.where(data_poor, DATA_POOR_MISSING_SHARE, PANEL_MISSING_SHARE),
                     NON_PANEL_MISSING_SHARE)  # fmt: skip
    mask = draws < share[:, None, None]
    first = np.argmax(published, axis=1)
    exists_before = published[:, 0] & (cities.first_year < years[0])
    for i in np.flatnonzero(~cities.balanced & published.any(axis=1) & ~exists_before):
        mask[i, first[i]] |= draws[i, first[i]] < FIRST_YEAR_MISSING_SHARE
    mask[cities.balanced, 0] = False
    mask[cities.balanced, -1] = False
    for t in range(1, T):
        mask[cities.balanced, t] &= ~mask[cities.balanced, t - 1]
    return mask & published[:, :, None]


def marker_choice(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, len(MISSING_MARKERS), size)
