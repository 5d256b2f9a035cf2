"""Landing → raw: hash, archive untouched, parse to text rows, record in raw.load_manifest.

Each file of `landing/<source>/` is one load unit. A file whose sha256 was already loaded is a
no-op. A file that cannot be parsed, or names a city that cannot be resolved, is recorded as
`failed` with an error naming file, row and column; its rows never reach raw, and the refresh
refuses to publish (see flows/refresh.py).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from warehouse.landing import landing_delta, manifest_hashes
from warehouse.names import CityResolver, city_key, default_resolver
from warehouse.readers import UnreadableFile, decode, read_rows

SOURCES = ("city_yearbook", "national", "patents", "enterprises", "historical")
CITY_COLUMN_NAMES = {"城市", "城市名称", "地区", "city", "cityname", "city_name"}
PROVINCE_COLUMN_NAMES = {"省份", "省", "province"}
YEAR_COLUMN_NAMES = {"年份", "year"}
FOOTNOTE_PREFIXES = ("注", "资料来源", "说明", "备注", "note", "source")
YEAR_IN_NAME = re.compile(r"(19|20)\d{2}")

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.load_manifest (
    load_id varchar not null, source varchar not null, file_name varchar not null,
    sha256 varchar not null, bytes bigint, encoding varchar, year integer, rows bigint,
    status varchar not null, error varchar, archived_path varchar, loaded_at timestamp not null
);
create table if not exists raw.city_cells (
    load_id varchar not null, source varchar not null, file_name varchar not null,
    year integer, source_row integer not null, source_col integer not null,
    row_kind varchar not null, city_name_text varchar, city_key varchar, province_text varchar,
    header_text varchar not null, value_text varchar
);
create table if not exists raw.national_values (
    load_id varchar not null, file_name varchar not null, year integer not null,
    source_row integer not null, indicator_text varchar not null, value_text varchar
);
create table if not exists raw.enterprise_registrations (
    load_id varchar not null, file_name varchar not null, year integer not null,
    source_row integer not null, firm_id varchar, city_name_text varchar, city_key varchar,
    registration_date_text varchar, industry_code_text varchar, registered_capital_text varchar
);
"""


class LoadError(ValueError):
    """A delivered file that cannot be loaded: the message names file, row and column."""


@dataclass
class FileLoad:
    source: str
    file_name: str
    sha256: str
    status: str  # loaded | failed | skipped (already loaded: not recorded again)
    rows: int = 0
    year: int | None = None
    error: str | None = None


@dataclass
class IngestSummary:
    load_id: str
    files: list[FileLoad] = field(default_factory=list)

    @property
    def failed(self) -> list[FileLoad]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def loaded(self) -> list[FileLoad]:
        return [f for f in self.files if f.status == "loaded"]

    @property
    def skipped(self) -> list[FileLoad]:
        return [f for f in self.files if f.status == "skipped"]


def new_load_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return "L" + now.strftime("%Y%m%dT%H%M%S%fZ")


def year_from_name(name: str) -> int | None:
    match = YEAR_IN_NAME.search(name)
    return int(match.group(0)) if match else None


# ---------------------------------------------------------------- city tables (wide, one row per city)

def _find_header(rows: list[list[str]], file_name: str) -> int:
    for i, row in enumerate(rows):
        if any(city_key(c) in CITY_COLUMN_NAMES for c in row):
            return i
    raise LoadError(f"{file_name}: no header row with a city column (one of {sorted(CITY_COLUMN_NAMES)})")


def parse_city_table(rows: list[list[str]], file_name: str, source: str, year: int | None,
                     resolver: CityResolver) -> pd.DataFrame:
    """Long text cells of a table with one row per city; every row kind is kept and flagged."""
    header_idx = _find_header(rows, file_name)
    header = rows[header_idx]
    keys = [city_key(h) for h in header]
    city_col = next(i for i, k in enumerate(keys) if k in CITY_COLUMN_NAMES)
    province_col = next((i for i, k in enumerate(keys) if k in PROVINCE_COLUMN_NAMES), None)
    year_col = next((i for i, k in enumerate(keys) if k in YEAR_COLUMN_NAMES), None)
    value_cols = [i for i, h in enumerate(header) if h and i not in (city_col, province_col, year_col)]
    # Historical tables (1984 telephones, 2014 population) are keyed by today's cities.
    resolve_year_default = None if source == "historical" else year

    records = []
    for r in range(header_idx + 1, len(rows)):
        row = rows[r] + [""] * (len(header) - len(rows[r]))
        line = r + 1  # 1-based, as a spreadsheet shows it
        name = row[city_col]
        first = next((c for c in row if c), "")
        if not first:
            continue
        province = row[province_col] if province_col is not None else None
        row_year = year
        if year_col is not None:
            try:
                row_year = int(float(row[year_col]))
            except ValueError:
                raise LoadError(f"{file_name} row {line}, column '{header[year_col]}': "
                                f"year '{row[year_col]}' is not a number") from None
        if city_key(first).startswith(FOOTNOTE_PREFIXES) and not name:
            kind = "footnote"
        elif city_key(name).startswith(FOOTNOTE_PREFIXES):
            kind = "footnote"
        elif resolver.is_province_row(name):
            kind = "subtotal"
        else:
            resolve_year = row_year if year_col is not None else resolve_year_default
            result = resolver.resolve(name, resolve_year, province)
            if result.error:
                raise LoadError(f"{file_name} row {line}, column '{header[city_col]}': {result.error}")
            kind = "excluded" if result.excluded else "city"
        if kind == "footnote":
            records.append((row_year, line, city_col + 1, kind, first, "", province, header[city_col], first))
            continue
        for c in value_cols:
            records.append((row_year, line, c + 1, kind, name, city_key(name), province, header[c], row[c]))
    frame = pd.DataFrame.from_records(
        records,
        columns=["year", "source_row", "source_col", "row_kind", "city_name_text", "city_key",
                 "province_text", "header_text", "value_text"],
    )
    if frame.empty:
        raise LoadError(f"{file_name}: no data rows below the header (row {header_idx + 1})")
    return frame


# ---------------------------------------------------------------- national (indicator, value)

def parse_national(rows: list[list[str]], file_name: str, year: int | None) -> pd.DataFrame:
    if year is None:
        raise LoadError(f"{file_name}: no year in the file name")
    records = []
    for r, row in enumerate(rows):
        if len(row) < 2 or not row[0] or city_key(row[0]) in {"指标", "indicator"}:
            continue
        if city_key(row[0]).startswith(FOOTNOTE_PREFIXES):
            continue
        records.append((year, r + 1, row[0], row[1]))
    if not records:
        raise LoadError(f"{file_name}: no indicator rows")
    return pd.DataFrame.from_records(records, columns=["year", "source_row", "indicator_text", "value_text"])


# ---------------------------------------------------------------- enterprises (firm-level, large)

ENTERPRISE_COLUMNS = {
    "firm_id": {"企业id", "企业编号", "firmid", "firm_id"},
    "city_name_text": {"所在城市", "城市", "city"},
    "registration_date_text": {"成立日期", "注册日期", "registrationdate", "registration_date"},
    "industry_code_text": {"行业代码", "国民经济行业代码", "industrycode", "industry_code"},
    "registered_capital_text": {"注册资本(万元)", "注册资本", "registeredcapital", "registered_capital"},
}


def parse_enterprises(path: Path, file_name: str, year: int | None, resolver: CityResolver) -> pa.Table:
    if year is None:
        raise LoadError(f"{file_name}: no year in the file name")
    raw = path.read_bytes()
    _, encoding = decode(raw[:1 << 16].rsplit(b"\n", 1)[0], path)
    table = pacsv.read_csv(
        pa.py_buffer(raw),
        read_options=pacsv.ReadOptions(encoding="utf8" if encoding == "utf-8-sig" else "gb18030"),
        convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=False,
                                             auto_dict_encode=False, check_utf8=True),
    )
    table = table.cast(pa.schema([(n, pa.string()) for n in table.column_names]))
    header_keys = {city_key(n): n for n in table.column_names}
    columns = {}
    for target, accepted in ENTERPRISE_COLUMNS.items():
        found = next((header_keys[k] for k in header_keys if k in accepted), None)
        if found is None:
            raise LoadError(f"{file_name} row 1: missing column for {target} (one of {sorted(accepted)})")
        columns[target] = table[found]
    names = pa.compute.unique(columns["city_name_text"]).to_pylist()
    keys = {}
    for name in names:
        result = resolver.resolve(name, year)
        if result.error:
            rows = pa.compute.indices_nonzero(pa.compute.equal(columns["city_name_text"], name))
            first_row = rows[0].as_py() + 2  # +1 for the header, +1 for 1-based
            raise LoadError(f"{file_name} row {first_row}, column 'city': {result.error}")
        keys[name] = city_key(name)
    n = table.num_rows
    return pa.table({
        "year": pa.array([year] * n, pa.int32()),
        "source_row": pa.array(range(2, n + 2), pa.int32()),
        "firm_id": columns["firm_id"],
        "city_name_text": columns["city_name_text"],
        "city_key": pa.array([keys[v] for v in columns["city_name_text"].to_pylist()], pa.string()),
        "registration_date_text": columns["registration_date_text"],
        "industry_code_text": columns["industry_code_text"],
        "registered_capital_text": columns["registered_capital_text"],
    })


# ---------------------------------------------------------------- the load loop

def _archive(path: Path, source: str, sha: str, archive_dir: Path) -> Path:
    target = archive_dir / source / sha[:16] / path.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return target


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame, load_id: str, file_name: str,
            source: str | None = None) -> None:
    con.register("incoming", frame)
    extra = f"'{source}' as source, " if source else ""  # source comes from SOURCES, never user text
    columns = ", ".join(frame.column_names if isinstance(frame, pa.Table) else frame.columns)
    con.execute(
        f"insert into raw.{table} by name select ? as load_id, {extra}? as file_name, {columns} from incoming",
        [load_id, file_name],
    )
    con.unregister("incoming")


def ingest_landing(con: duckdb.DuckDBPyConnection, landing: Path, archive_dir: Path,
                   load_id: str | None = None, resolver: CityResolver | None = None) -> IngestSummary:
    """Load every new landing file into raw.*; record each attempt in raw.load_manifest."""
    con.execute(RAW_DDL)
    resolver = resolver or default_resolver()
    summary = IngestSummary(load_id or new_load_id())
    delta = landing_delta(landing, manifest_hashes(con))
    for item in delta.loaded:
        summary.files.append(FileLoad(item.source, item.path.relative_to(landing).as_posix(), item.sha256, "skipped"))
    loaded: set[str] = set()
    for item in delta.new:
        source, path, sha = item.source, item.path, item.sha256
        file_name = path.relative_to(landing).as_posix()
        if sha in loaded:  # the same content delivered twice in one landing: load it once
            summary.files.append(FileLoad(source, file_name, sha, "skipped"))
            continue
        archived = _archive(path, source, sha, archive_dir)
        year = year_from_name(path.name)
        record = FileLoad(source, file_name, sha, "loaded", year=year)
        encoding = None
        try:
            if source not in SOURCES:
                raise LoadError(f"{file_name}: unknown source folder '{source}' (expected one of {', '.join(SOURCES)})")
            con.execute("begin transaction")
            if source == "enterprises":
                table = parse_enterprises(path, file_name, year, resolver)
                _insert(con, "enterprise_registrations", table, summary.load_id, file_name)
                record.rows = table.num_rows
            else:
                rows, encoding = read_rows(path)
                if source == "national":
                    frame = parse_national(rows, file_name, year)
                    _insert(con, "national_values", frame, summary.load_id, file_name)
                else:
                    frame = parse_city_table(rows, file_name, source, year, resolver)
                    _insert(con, "city_cells", frame, summary.load_id, file_name, source=source)
                record.rows = int(frame["source_row"].nunique())
            con.execute("commit")
        except (LoadError, UnreadableFile, pa.ArrowInvalid) as exc:
            try:
                con.execute("rollback")
            except duckdb.Error:
                pass  # the error came before the transaction began
            record.status, record.error, record.rows = "failed", str(exc), 0
        con.execute(
            "insert into raw.load_manifest values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [summary.load_id, source, file_name, sha, path.stat().st_size, encoding, record.year,
             record.rows, record.status, record.error, str(archived), datetime.now(timezone.utc)],
        )
        if record.status == "loaded":
            loaded.add(sha)
        summary.files.append(record)
    return summary
