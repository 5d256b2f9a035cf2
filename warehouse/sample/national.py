"""National annual series written to national/ and used as common year effects of the DGP.

The exchange rate and internet users are close to the published annual figures, the
GDP per capita and CPI are rounded stand-ins of the published magnitudes; all of them are
only there to make the synthetic files look plausible.  Years outside 2011-2023 are
extrapolated so that other sample windows still work.
"""
from __future__ import annotations

import numpy as np

# year: (GDP per capita 元, internet users 万人, CNY per USD annual average, CPI previous year = 100)
_TABLE: dict[int, tuple[float, float, float, float]] = {
    2011: (36300, 51310, 6.4588, 105.4),
    2012: (39800, 56400, 6.3125, 102.6),
    2013: (43500, 61758, 6.1932, 102.6),
    2014: (46900, 64875, 6.1428, 102.0),
    2015: (49900, 68826, 6.2284, 101.4),
    2016: (53800, 73125, 6.6423, 102.0),
    2017: (59600, 77198, 6.7518, 101.6),
    2018: (65500, 82851, 6.6174, 102.1),
    2019: (70300, 90359, 6.8985, 102.9),
    2020: (71800, 98899, 6.8976, 102.5),
    2021: (81400, 103195, 6.4515, 100.9),
    2022: (85700, 106744, 6.7261, 102.0),
    2023: (89400, 109217, 7.0467, 100.2),
}
_FIRST, _LAST = min(_TABLE), max(_TABLE)

HEADERS = (
    "人均国内生产总值(元)",
    "互联网上网人数(万人)",
    "人民币对美元汇率(年平均价)(元/美元)",
    "居民消费价格指数(上年=100)",
)


def _row(year: int) -> tuple[float, float, float, float]:
    if year in _TABLE:
        return _TABLE[year]
    # Outside the table: 7 % nominal growth, 8 % internet growth, the nearest exchange rate, CPI 102.
    edge = _FIRST if year < _FIRST else _LAST
    gdppc, net, fx, _cpi = _TABLE[edge]
    step = year - edge
    return (round(gdppc * 1.07**step, -2), round(net * 1.08**step), fx, 102.0)


def series(years: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.array([_row(int(y)) for y in years], dtype=float)
    return {
        "gdp_per_capita": rows[:, 0],
        "internet_users": rows[:, 1],
        "usd_cny": rows[:, 2],
        "cpi": rows[:, 3],
    }


def formatted_rows(year: int) -> list[tuple[str, str]]:
    gdppc, net, fx, cpi = _row(year)
    return list(zip(HEADERS, (f"{gdppc:.0f}", f"{net:.0f}", f"{fx:.4f}", f"{cpi:.1f}")))
