"""What a delivered header, unit or city name means: the shipped seeds merged with the user's own.

The shipped mappings are dbt seeds (`seeds/yearbook_headers.csv`, `seeds/unit_conversions.csv`,
`seeds/reference/ref_city_aliases.csv`). A user adds to them, without touching the package, in
`$CITYRES_HOME/mappings/`:

    headers.csv   source,header,variable,unit   a delivered header without its unit (`户籍人口（年末）`
                  for `户籍人口（年末）(万人)`; written with its unit it matches that unit only) →
                  a variable of that source, or `ignore` to store the column without using it;
                  `unit` is the unit of the values when the header carries none; source defaults
                  to city_yearbook
    units.csv     unit,canonical_unit,factor      value in `unit` × factor = value in canonical_unit
    cities.csv    name,city_code,valid_from_year,valid_to_year
                  a name → a city code of ref_cities.csv, or `exclude` (a unit outside the
                  panel); years optional

A user line wins over a shipped one for the same header or unit. Every problem of these files is
reported as `file line N: what is wrong` (:class:`MappingError`), never as a traceback.

Headers are matched on a key: NFKC (full-width brackets and letters read as ASCII), no
whitespace, lower case, with the unit in the last bracket split off; in a bilingual header the
English part after the Chinese is dropped (`地区生产总值(万元) Gross regional product (10,000
yuan)` → `地区生产总值`, unit 万元).
"""
from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.paths import REFERENCE_SEEDS_DIR, SEEDS_DIR

MAPPINGS_DIR = "mappings"
HEADERS_FILE, UNITS_FILE, CITIES_FILE = "headers.csv", "units.csv", "cities.csv"
IGNORE, EXCLUDE = "ignore", "exclude"
DEFAULT_SOURCE = "city_yearbook"
# Change when ingest would read the same bytes differently: every file in force is then re-read.
PARSER_VERSION = "2"

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_UNIT_AT_END = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$", re.S)


class MappingError(ValueError):
    """The user's mapping files have problems; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


# ---------------------------------------------------------------- header and unit keys

def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def chinese_part(text: str) -> str:
    """A bilingual header without its English translation; a header without Chinese unchanged.

    Kept: everything up to the last Chinese character, the bracket that character sits in (the
    unit of `…(万元) Gross …`) or a bracket right after it (the unit of `面积(km2)`).
    """
    text = _nfkc(text)
    lines = [line for line in text.splitlines() if _CJK.search(line)]
    if lines:
        text = " ".join(lines)
    last = None
    for last in _CJK.finditer(text):
        pass
    if last is None:
        return text.strip()
    end = last.end()
    depth = text[:end].count("(") - text[:end].count(")")
    if depth > 0:  # inside a bracket: keep it up to its close
        close = text.find(")", end)
        end = close + 1 if close >= 0 else len(text)
    else:
        following = re.match(r"\s*\([^()]*\)", text[end:])
        if following:
            end += following.end()
    return text[:end].strip()


def split_header(text: str) -> tuple[str, str | None]:
    """(base, unit) of a delivered header: `地区生产总值（亿元）` → (`地区生产总值`, `亿元`)."""
    text = chinese_part(text)
    match = _UNIT_AT_END.match(text)
    if match and match.group(1).strip() and match.group(2).strip():
        return match.group(1).strip(), match.group(2).strip()
    return text.strip(), None


def header_key(base: str) -> str:
    return re.sub(r"\s+", "", _nfkc(base)).lower()


def unit_key(unit: str | None) -> str | None:
    if unit is None:
        return None
    key = re.sub(r"\s+", "", _nfkc(unit)).lower()
    return key or None


# ---------------------------------------------------------------- the merged mappings

@dataclass(frozen=True)
class HeaderRule:
    source: str
    base: str  # as written in the file that defines the rule
    variable: str  # a variable of the source, or IGNORE
    unit: str | None  # unit key of values delivered without a unit in the header
    origin: str  # "yearbook_headers.csv line 12" or "mappings/headers.csv line 3"


@dataclass(frozen=True)
class HeaderMatch:
    """What one delivered header means: a variable (with the unit its values are in), an
    ignored column, or an error in words with the closest known header."""

    header: str
    variable: str | None = None
    unit: str | None = None  # unit key of the delivered values
    canonical_unit: str | None = None
    factor: float | None = None
    ignored: bool = False
    origin: str | None = None
    error: str | None = None


@dataclass
class Mappings:
    headers: dict[tuple[str, str], HeaderRule] = field(default_factory=dict)
    units: dict[tuple[str, str], float] = field(default_factory=dict)  # (unit key, canonical) → factor
    canonical: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, variable) → unit
    user_units: list[tuple[str, str, float, str]] = field(default_factory=list)
    user_headers: list[HeaderRule] = field(default_factory=list)
    user_cities: list[dict] = field(default_factory=list)
    digest: dict[str, str] = field(default_factory=dict)  # what each source's parse depends on

    def resolve_header(self, source: str, header: str) -> HeaderMatch:
        base, unit = split_header(header)
        rule = self.headers.get((source, header_key(base)))
        if rule is None:
            # the header as a whole: `户籍人口（年末）` mapped as written, its bracket no unit
            rule = self.headers.get((source, header_key(chinese_part(header))))
            if rule is not None and rule.variable != IGNORE and \
                    (unit_key(unit), self.canonical[(source, rule.variable)]) not in self.units:
                unit = None
        if rule is None:
            return HeaderMatch(header, error=self._unmapped(source, header, base))
        if rule.variable == IGNORE:
            return HeaderMatch(header, ignored=True, origin=rule.origin)
        canonical = self.canonical[(source, rule.variable)]
        delivered = unit_key(unit) or rule.unit or unit_key(canonical)
        factor = self.units.get((delivered, canonical))
        if factor is None:
            return HeaderMatch(header, variable=rule.variable, unit=delivered, canonical_unit=canonical,
                               origin=rule.origin, error=(
                f"header '{header}' is {rule.variable} ({rule.origin}) but its unit '{unit or delivered}' "
                f"does not convert to {canonical}; add a line '{unit or delivered},{canonical},<factor>' "
                f"to {MAPPINGS_DIR}/{UNITS_FILE}"))
        return HeaderMatch(header, variable=rule.variable, unit=delivered, canonical_unit=canonical,
                           factor=factor, origin=rule.origin)

    def _unmapped(self, source: str, header: str, base: str) -> str:
        known = {rule.base: key for (s, key), rule in self.headers.items() if s == source}
        close = difflib.get_close_matches(base, list(known), n=1, cutoff=0.4)
        hint = f"; the closest known header is '{close[0]}'" if close else ""
        return (f"header '{header}' is not mapped for {source}{hint}; map it in "
                f"{MAPPINGS_DIR}/{HEADERS_FILE} (a line '{source},{base},<variable>,') or mark it "
                f"'{source},{base},{IGNORE},' to store the column without using it")

    def variables(self, source: str) -> list[str]:
        return sorted({v for (s, v) in self.canonical if s == source})


def _read_csv(path: Path, label: str, required: tuple[str, ...], problems: list[str]) -> list[tuple[int, dict]]:
    """(line number, row) of a small CSV, UTF-8 or GBK; problems appended in words."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        problems.append(f"{label}: not UTF-8 or GBK text; save it as UTF-8")
        return []
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in required if c not in columns]
    if missing:
        problems.append(f"{label} line 1: the header must name the columns {', '.join(required)} "
                        f"(missing {', '.join(missing)}; found {', '.join(columns) or 'nothing'})")
        return []
    rows = []
    for row in reader:
        cleaned = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if any(cleaned.values()):
            rows.append((reader.line_num, cleaned))
    return rows


def _shipped_headers() -> tuple[dict, dict]:
    headers, canonical = {}, {}
    path = SEEDS_DIR / "yearbook_headers.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            key = (row["source"], header_key(row["header_base"]))
            headers[key] = HeaderRule(row["source"], row["header_base"], row["variable"], None,
                                      f"{path.name} line {line}")
            canonical[(row["source"], row["variable"])] = row["canonical_unit"]
    return headers, canonical


def _shipped_units() -> dict:
    with open(SEEDS_DIR / "unit_conversions.csv", encoding="utf-8", newline="") as fh:
        return {(unit_key(r["unit"]), r["canonical_unit"]): float(r["factor"]) for r in csv.DictReader(fh)}


def _city_codes() -> set[str]:
    with open(REFERENCE_SEEDS_DIR / "ref_cities.csv", encoding="utf-8", newline="") as fh:
        return {r["city_code"] for r in csv.DictReader(fh)}


def _year(value: str, label: str, column: str, problems: list[str]) -> int | None:
    if not value:
        return None
    try:
        year = int(value)
    except ValueError:
        problems.append(f"{label}: {column} '{value}' is not a year")
        return None
    if not 1900 <= year <= 2100:
        problems.append(f"{label}: {column} {year} is not a year between 1900 and 2100")
    return year


def _user_headers(folder: Path, mappings: Mappings, problems: list[str]) -> None:
    path = folder / HEADERS_FILE
    if not path.exists():
        return
    label_file = f"{MAPPINGS_DIR}/{HEADERS_FILE}"
    sources = sorted({s for s, _ in mappings.canonical})
    seen: dict[tuple[str, str], int] = {}
    for line, row in _read_csv(path, label_file, ("header", "variable"), problems):
        label = f"{label_file} line {line}"
        source = row.get("source") or DEFAULT_SOURCE
        header, variable = row["header"], row["variable"]
        if source not in sources:
            problems.append(f"{label}: unknown source '{source}' (one of {', '.join(sources)})")
            continue
        if not header:
            problems.append(f"{label}: the header is empty")
            continue
        known = mappings.variables(source)
        if variable != IGNORE and variable not in known:
            close = difflib.get_close_matches(variable, known, n=1)
            hint = f" - did you mean '{close[0]}'?" if close else ""
            problems.append(f"{label}: '{variable}' is not a variable of {source}{hint} "
                            f"(use one of {', '.join(known)}, or '{IGNORE}')")
            continue
        base = chinese_part(header)  # as written: `户籍人口（年末）` keeps its bracket
        key = (source, header_key(base))
        if key in seen:
            problems.append(f"{label}: header '{base}' is mapped twice (also line {seen[key]})")
            continue
        seen[key] = line
        unit = unit_key(row.get("unit") or None)
        if unit and variable != IGNORE and (unit, mappings.canonical[(source, variable)]) not in mappings.units:
            problems.append(f"{label}: unit '{row['unit']}' does not convert to "
                            f"{mappings.canonical[(source, variable)]} (the unit of {variable}); "
                            f"add it to {MAPPINGS_DIR}/{UNITS_FILE}")
            continue
        rule = HeaderRule(source, base, variable, unit, label)
        mappings.headers[key] = rule
        mappings.user_headers.append(rule)


def _user_units(folder: Path, mappings: Mappings, problems: list[str]) -> None:
    path = folder / UNITS_FILE
    if not path.exists():
        return
    label_file = f"{MAPPINGS_DIR}/{UNITS_FILE}"
    canonical_units = sorted(set(mappings.canonical.values()))
    for line, row in _read_csv(path, label_file, ("unit", "canonical_unit", "factor"), problems):
        label = f"{label_file} line {line}"
        unit, canonical = unit_key(row["unit"]), row["canonical_unit"]
        if not unit:
            problems.append(f"{label}: the unit is empty")
            continue
        if canonical not in canonical_units:
            problems.append(f"{label}: '{canonical}' is not the canonical unit of any variable "
                            f"(one of {', '.join(canonical_units)})")
            continue
        try:
            factor = float(row["factor"])
        except ValueError:
            factor = float("nan")
        if not factor > 0 or factor == float("inf"):
            problems.append(f"{label}: factor '{row['factor']}' must be a positive number "
                            f"(value in {row['unit']} × factor = value in {canonical})")
            continue
        mappings.units[(unit, canonical)] = factor
        mappings.user_units.append((unit, canonical, factor, label))


def _user_cities(folder: Path, mappings: Mappings, problems: list[str]) -> None:
    path = folder / CITIES_FILE
    if not path.exists():
        return
    label_file = f"{MAPPINGS_DIR}/{CITIES_FILE}"
    codes = _city_codes()
    for line, row in _read_csv(path, label_file, ("name", "city_code"), problems):
        label = f"{label_file} line {line}"
        if not row["name"]:
            problems.append(f"{label}: the name is empty")
            continue
        code = row["city_code"]
        if code != EXCLUDE and code not in codes:
            problems.append(f"{label}: city_code '{code}' is not a city of ref_cities.csv "
                            f"(a 6-digit code such as 130100, or '{EXCLUDE}')")
            continue
        first = _year(row.get("valid_from_year", ""), label, "valid_from_year", problems)
        last = _year(row.get("valid_to_year", ""), label, "valid_to_year", problems)
        if first and last and first > last:
            problems.append(f"{label}: valid_from_year {first} is after valid_to_year {last}")
            continue
        mappings.user_cities.append({"name": unicodedata.normalize("NFKC", row["name"]),
                                     "city_code": None if code == EXCLUDE else code,
                                     "valid_from_year": first, "valid_to_year": last,
                                     "excluded": code == EXCLUDE, "origin": label})


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def check_mappings(home_root: Path | None) -> list[str]:
    """Every problem of the user's mapping files, one line each."""
    try:
        load_mappings(home_root)
    except MappingError as exc:
        return exc.problems
    return []


def load_mappings(home_root: Path | None = None) -> Mappings:
    """The shipped seeds merged with $CITYRES_HOME/mappings/*.csv (raises MappingError)."""
    headers, canonical = _shipped_headers()
    mappings = Mappings(headers=headers, units=_shipped_units(), canonical=canonical)
    problems: list[str] = []
    folder = (home_root / MAPPINGS_DIR) if home_root else None
    if folder is not None and folder.exists():
        _user_units(folder, mappings, problems)  # before headers: a header's unit is checked against them
        _user_headers(folder, mappings, problems)
        _user_cities(folder, mappings, problems)
    if problems:
        raise MappingError(problems)
    shipped = [_file_bytes(SEEDS_DIR / "yearbook_headers.csv"), _file_bytes(SEEDS_DIR / "unit_conversions.csv")]
    units = repr(sorted(u[:3] for u in mappings.user_units))
    cities = [_file_bytes(REFERENCE_SEEDS_DIR / "ref_city_aliases.csv"), _file_bytes(SEEDS_DIR / "name_rules.csv"),
              repr([{k: v for k, v in c.items() if k != "origin"} for c in mappings.user_cities])]
    # what the reading of each source depends on: a mapping change re-reads the sources it concerns
    mappings.digest = {
        source: _digest(PARSER_VERSION, *shipped, units, *cities,
                        repr(sorted((h.base, h.variable, h.unit) for h in mappings.user_headers if h.source == source)))
        for source in sorted({s for s, _ in mappings.canonical})
    }
    mappings.digest["enterprises"] = _digest(PARSER_VERSION, *cities)
    mappings.digest["national"] = _digest(PARSER_VERSION)
    return mappings
