"""The city universe of the synthetic yearbooks: attributes, history, aliases, neighbours, size tiers.

Everything here comes from the product's reference seeds, so the sample data and the
harmonisation layer agree on which cities exist in which year.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warehouse.paths import REFERENCE_SEEDS_DIR

# No statistical yearbook publishes figures for Sansha, so no synthetic file does either.
SANSHA = "460300"
LAIWU = "371200"
JINAN = "370100"
# Laiwu's last separately published data year; from the next year its data sit inside Jinan.
LAIWU_LAST_YEAR = 2018

COASTAL_PROVINCES = frozenset(
    {"120000", "130000", "210000", "310000", "320000", "330000", "350000", "370000", "440000", "450000", "460000"}
)

# State Council 2014 city-size classes by 城区常住人口 (万人); bounds are [low, high).
SIZE_TIERS: tuple[tuple[str, str, float, float], ...] = (
    ("megacity", "超大城市", 1000.0, float("inf")),
    ("extra_large", "特大城市", 500.0, 1000.0),
    ("large_I", "I型大城市", 300.0, 500.0),
    ("large_II", "II型大城市", 100.0, 300.0),
    ("medium", "中等城市", 50.0, 100.0),
    ("small", "小城市", 0.0, 50.0),
)
TIER_NAMES = tuple(t[0] for t in SIZE_TIERS)


def size_tier(core_population: np.ndarray) -> np.ndarray:
    """Tier label per city from its 2014 urban-core resident population (万人)."""
    out = np.empty(core_population.shape, dtype=object)
    for name, _zh, low, high in SIZE_TIERS:
        out[(core_population >= low) & (core_population < high)] = name
    return out


def read_seed(name: str, seeds_dir: Path | None = None) -> list[dict[str, str]]:
    """Rows of a reference seed as strings (city codes must stay 6-digit text)."""
    path = Path(seeds_dir or REFERENCE_SEEDS_DIR) / name
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _year(text: str) -> int | None:
    return int(text) if text.strip() else None


@dataclass(frozen=True)
class Alias:
    name_zh: str
    name_en: str
    city_code: str
    valid_from: int | None
    valid_to: int | None
    change_type: str

    def covers(self, year: int) -> bool:
        return (self.valid_from is None or self.valid_from <= year) and (
            self.valid_to is None or year <= self.valid_to
        )


class CityTable:
    """All reference cities (sorted by code) as parallel numpy arrays."""

    def __init__(self, rows: list[dict[str, str]], alias_rows: list[dict[str, str]]):
        rows = sorted(rows, key=lambda r: r["city_code"])
        self.n = len(rows)
        col = lambda key: np.array([r[key] for r in rows], dtype=object)  # noqa: E731
        self.code = col("city_code")
        self.name_zh = col("city_name_zh")
        self.short_zh = col("city_name_short_zh")
        self.name_en = col("city_name_en")
        self.name_en_ascii = col("city_name_en_ascii")
        self.name_en_conventional = col("city_name_en_conventional")
        self.name_en_unique = col("city_name_en_unique")
        self.province_code = col("province_code")
        self.province_zh = col("province_name_zh")
        self.province_en = col("province_name_en")
        self.admin_level = col("admin_level")
        self.region = col("region")
        self.is_capital = np.array([r["is_provincial_capital"] == "1" for r in rows])
        self.key_city = np.array([r["key_city"] == "1" for r in rows])
        self.resource = np.array([r["resource_based"] == "1" for r in rows])
        self.lat = np.array([float(r["lat"]) for r in rows])
        self.lon = np.array([float(r["lon"]) for r in rows])
        # Blank "became" means the city existed before the sample period.
        self.first_year = np.array([_year(r["became_prefecture_city_year"]) or 0 for r in rows])
        self.last_year = np.array([_year(r["valid_to_year"]) or 9999 for r in rows])
        self.balanced = np.array([r["balanced_2011_2023"] == "1" for r in rows])
        self.coastal = np.array([r["province_code"] in COASTAL_PROVINCES for r in rows])
        self.idx = {c: i for i, c in enumerate(self.code)}
        self.aliases = [
            Alias(
                a["alias_name_zh"],
                a["alias_name_en"],
                a["maps_to_city_code"],
                _year(a["valid_from_year"]),
                _year(a["valid_to_year"]),
                a["change_type"],
            )
            for a in alias_rows
        ]

    @classmethod
    def load(cls, seeds_dir: Path | None = None) -> "CityTable":
        return cls(read_seed("ref_cities.csv", seeds_dir), read_seed("ref_city_aliases.csv", seeds_dir))

    def exists(self, year: int) -> np.ndarray:
        """Cities that exist at the end of `year` according to the reference history."""
        return (self.first_year <= year) & (year <= self.last_year)

    def published(self, year: int) -> np.ndarray:
        """Cities that get a row in the synthetic files of `year` (existing, minus Sansha)."""
        return self.exists(year) & (self.code != SANSHA)

    def distances_km(self) -> np.ndarray:
        """Great-circle distances between all city centroids (haversine, R = 6371 km)."""
        lat, lon = np.radians(self.lat), np.radians(self.lon)
        dlat = lat[:, None] - lat[None, :]
        dlon = lon[:, None] - lon[None, :]
        a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
        return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))

    def province_groups(self, mask: np.ndarray) -> list[tuple[str, list[int]]]:
        """Cities under `mask` grouped by province in code order, as a yearbook lists them."""
        groups: dict[str, list[int]] = {}
        for i in np.flatnonzero(mask):
            groups.setdefault(self.province_code[i], []).append(int(i))
        return [(p, groups[p]) for p in sorted(groups)]
