"""City-name resolution: from the text a delivery uses to a panel city code.

The rule lists (noise characters, province suffixes, alias change types that never identify a
city or mark an intended exclusion, subtotal markers) live in one place, the dbt seed
`seeds/name_rules.csv`, read here and by the dbt models `int_city_aliases`,
`int_cities_with_province_keys` and `int_city_names_resolved`. The SQL macro `city_key` must keep
its pattern literal; a dbt test and tests/test_names.py check it against the seed and this module.
Ingest uses this module as a gate (a name that cannot be resolved fails the load with file, row
and column); dbt resolves the stored key again in SQL.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from warehouse.paths import REFERENCE_SEEDS_DIR, SEEDS_DIR

NAME_RULES_CSV = SEEDS_DIR / "name_rules.csv"


def _read_name_rules(path: Path = NAME_RULES_CSV) -> dict[str, tuple[str, ...]]:
    """The values of each rule of the seed, in position order."""
    rules: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            rules[row["rule"]].append((int(row["position"]), row["value"]))
    return {rule: tuple(value for _, value in sorted(values)) for rule, values in rules.items()}


_RULES = _read_name_rules()

# Characters that vary between deliveries of the same name: whitespace, apostrophes, dots, hyphens.
(_NOISE_PATTERN,) = _RULES["noise_pattern"]
_NOISE = re.compile(_NOISE_PATTERN)

# Alias rows that name another unit than the one the delivery means: they never identify a city.
NON_IDENTITY_TYPES = frozenset(_RULES["non_identity_change_type"])
EXCLUDED_TYPES = frozenset(_RULES["excluded_change_type"])

_PROVINCE_SUFFIXES = _RULES["province_suffix"]
USER_ALIAS, USER_EXCLUDED = "user_alias", "user_excluded"  # change types of the user's aliases
SUBTOTAL_MARKERS = _RULES["subtotal_marker"]


def city_key(text: str | None) -> str:
    """The matching key of a name: NFKC, no noise characters, lower case."""
    if text is None:
        return ""
    return _NOISE.sub("", unicodedata.normalize("NFKC", str(text))).lower()


@dataclass(frozen=True)
class City:
    code: str
    name_zh: str
    province_code: str
    province_zh: str
    province_en: str
    first_year: int | None
    last_year: int | None

    def exists_in(self, year: int | None) -> bool:
        """year=None asks about current boundaries."""
        if year is None:
            return self.last_year is None
        return (self.first_year is None or year >= self.first_year) and (
            self.last_year is None or year <= self.last_year
        )


@dataclass(frozen=True)
class Alias:
    key: str
    city_code: str | None
    valid_from: int | None
    valid_to: int | None
    change_type: str

    def valid_in(self, year: int | None) -> bool:
        if year is None:
            return self.valid_to is None
        return (self.valid_from is None or year >= self.valid_from) and (
            self.valid_to is None or year <= self.valid_to
        )


@dataclass(frozen=True)
class Resolution:
    """Outcome for one name: a city code, an intended exclusion, or an error message."""

    city_code: str | None = None
    excluded: bool = False
    error: str | None = None


def _int_or_none(value: str) -> int | None:
    value = (value or "").strip()
    return int(float(value)) if value else None


def province_keys(province_zh: str, province_en: str) -> set[str]:
    short = province_zh
    for suffix in _PROVINCE_SUFFIXES:
        if short.endswith(suffix) and len(short) > len(suffix):
            short = short[: -len(suffix)]
            break
    return {city_key(province_zh), city_key(short), city_key(province_en)}


class CityResolver:
    """Resolves (name, year, optional province) to a city code using the reference seeds and
    the user's aliases ($CITYRES_HOME/mappings/cities.csv, read by warehouse/mappings.py)."""

    def __init__(self, seeds_dir: Path = REFERENCE_SEEDS_DIR, user_aliases: tuple[dict, ...] = ()):
        self.cities: dict[str, City] = {}
        with open(seeds_dir / "ref_cities.csv", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                self.cities[row["city_code"]] = City(
                    code=row["city_code"],
                    name_zh=row["city_name_zh"],
                    province_code=row["province_code"],
                    province_zh=row["province_name_zh"],
                    province_en=row["province_name_en"],
                    first_year=_int_or_none(row["became_prefecture_city_year"]),
                    last_year=_int_or_none(row["valid_to_year"]),
                )
        self.aliases: dict[str, list[Alias]] = defaultdict(list)
        with open(seeds_dir / "ref_city_aliases.csv", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                name = row["alias_name_zh"] or row["alias_name_en"]
                alias = Alias(
                    key=city_key(name),
                    city_code=row["maps_to_city_code"] or None,
                    valid_from=_int_or_none(row["valid_from_year"]),
                    valid_to=_int_or_none(row["valid_to_year"]),
                    change_type=row["change_type"],
                )
                self.aliases[alias.key].append(alias)
        for row in user_aliases:
            alias = Alias(key=city_key(row["name"]), city_code=row["city_code"],
                          valid_from=row["valid_from_year"], valid_to=row["valid_to_year"],
                          change_type=USER_EXCLUDED if row["excluded"] else USER_ALIAS)
            self.aliases[alias.key].append(alias)
        self.province_by_key: dict[str, str] = {}
        for city in self.cities.values():
            for key in province_keys(city.province_zh, city.province_en):
                self.province_by_key[key] = city.province_code

    def is_province_name(self, name: str) -> bool:
        """A province's name, full or short (吉林省, 吉林, Jilin) - possibly also a city's."""
        return city_key(name) in self.province_by_key

    def is_province_row(self, name: str) -> bool:
        """A province (subtotal) row rather than a city row: a province name that is no city."""
        key = city_key(name)
        if any(marker in name for marker in SUBTOTAL_MARKERS):
            return True
        return key in self.province_by_key and not self.aliases.get(key)

    def resolve(self, name: str, year: int | None, province: str | None = None) -> Resolution:
        """Resolve a name as used in data year `year` (None: under current boundaries)."""
        key = city_key(name)
        aliases = self.aliases.get(key, [])
        candidates = {
            a.city_code
            for a in aliases
            if a.change_type not in NON_IDENTITY_TYPES
            and a.valid_in(year)
            and a.city_code in self.cities
            and self.cities[a.city_code].exists_in(year)
        }
        if len(candidates) > 1 and province:
            wanted = self.province_by_key.get(city_key(province))
            candidates = {c for c in candidates if self.cities[c].province_code == wanted}
        if len(candidates) == 1:
            return Resolution(city_code=candidates.pop())
        if len(candidates) > 1:
            names = ", ".join(sorted(f"{self.cities[c].name_zh} ({c})" for c in candidates))
            return Resolution(error=f"city name '{name}' is ambiguous in {year or 'current boundaries'}: {names}; add a province column")
        if any(a.change_type in EXCLUDED_TYPES for a in aliases):
            return Resolution(excluded=True)
        if aliases:
            return Resolution(error=f"city name '{name}' does not name a panel city in {year or 'current boundaries'} ({self._why(aliases, year)})")
        return Resolution(error=f"city name '{name}' cannot be resolved: not in the city alias seed")

    def _why(self, aliases: list[Alias], year: int) -> str:
        for alias in aliases:
            if alias.change_type in ("merged_into", "abolished_split") and alias.city_code in self.cities:
                return f"{alias.change_type.replace('_', ' ')} {self.cities[alias.city_code].name_zh} after {alias.valid_to}"
        for alias in aliases:
            city = self.cities.get(alias.city_code or "")
            if city is not None and not city.exists_in(year):
                return f"{city.name_zh} is a prefecture-level city {city.first_year or '…'}–{city.last_year or '…'}"
        spans = sorted({(a.valid_from or 0, a.valid_to or 9999) for a in aliases})
        return "the name is valid " + ", ".join(f"{f or '…'}–{t if t != 9999 else '…'}" for f, t in spans)


@lru_cache(maxsize=1)
def default_resolver() -> CityResolver:
    return CityResolver()


def resolver_with(user_aliases: list[dict]) -> CityResolver:
    """The resolver of the shipped seeds, plus the user's aliases when there are any."""
    return CityResolver(user_aliases=tuple(user_aliases)) if user_aliases else default_resolver()
