"""Landing → raw: hash, archive untouched, parse to text rows, record in raw.load_manifest.

Each file of `landing/<source>/` is one load unit. A file whose sha256 was already loaded is a
no-op. A file that cannot be parsed, or names a city that cannot be resolved, is recorded as
`failed` with an error naming file, row and column; its rows never reach raw, and the refresh
refuses to publish (see flows/refresh.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from warehouse.archive import ArchiveMismatch, archive_file
from warehouse.cells import EXPECTED, CellError, parse_number
from warehouse.faults import crash_point
from warehouse.landing import landing_delta, landing_rejects, manifest_hashes
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
    note: str | None = None  # something repaired or worth knowing, for the report


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
    if year is None and year_col is None:
        raise LoadError(f"{file_name}: no year - neither a year column ({' / '.join(sorted(YEAR_COLUMN_NAMES))}) "
                        "nor a year (19xx/20xx) in the file name")
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
    _check_numbers([(line, col, header, value) for (_, line, col, kind, _, _, _, header, value) in records
                    if kind == "city"], file_name)
    frame = pd.DataFrame.from_records(
        records,
        columns=["year", "source_row", "source_col", "row_kind", "city_name_text", "city_key",
                 "province_text", "header_text", "value_text"],
    )
    if frame.empty:
        raise LoadError(f"{file_name}: no data rows below the header (row {header_idx + 1})")
    return frame


def _check_numbers(cells, file_name: str, shown: int = 5) -> None:
    """Refuse a file with cells that are neither numbers nor missing markers (warehouse/cells.py)."""
    bad = []
    for line, col, header, value in cells:
        try:
            parse_number(value)
        except CellError:
            bad.append(f"row {line}, column {col} ({header}): {value!r}")
    if bad:
        more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
        raise LoadError(f"{file_name}: {len(bad)} cell(s) are not {EXPECTED}: " + "; ".join(bad[:shown]) + more)


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
    _check_numbers([(line, 2, indicator, value) for _, line, indicator, value in records], file_name)
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
    _, encoding = decode(raw[:1 << 16].rsplit(b"\n", 1)[0], file_name)
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
                   load_id: str | None = None, resolver: CityResolver | None = None,
                   retry_failed: bool = False, home_root: Path | None = None) -> IngestSummary:
    """Load every new landing file into raw.*; record each attempt in raw.load_manifest.

    New means: content not loaded before and, unless ``retry_failed``, not refused for a fault
    of its own before (an unchanged refused file is not re-read until it changes). Each file is
    archived first (crash-safe, verified) and parsed from its archived copy, so the rows loaded
    are exactly the bytes kept. Entries that are not regular files are refused, never read.
    ``archived_path`` is stored relative to ``home_root`` (default: the archive's parent).
    """
    con.execute(RAW_DDL)
    resolver = resolver or default_resolver()
    summary = IngestSummary(load_id or new_load_id())
    home_root = home_root or archive_dir.parent
    known = manifest_hashes(con) | (set() if retry_failed else manifest_hashes(con, "failed"))
    delta = landing_delta(landing, known)
    for item in delta.loaded:
        summary.files.append(FileLoad(item.source, item.path.relative_to(landing).as_posix(), item.sha256, "skipped"))
    for rejected in landing_rejects(landing):
        file_name = rejected.path.relative_to(landing).as_posix()
        if rejected.fingerprint in known:
            summary.files.append(FileLoad(rejected.source, file_name, rejected.fingerprint, "skipped"))
            continue
        record = FileLoad(rejected.source, file_name, rejected.fingerprint, "failed",
                          error=f"{file_name}: {rejected.reason}")
        _record(con, summary.load_id, record, None, None, None)
        summary.files.append(record)
    loaded: set[str] = set()
    for item in delta.new:
        file_name = item.path.relative_to(landing).as_posix()
        if item.sha256 in loaded:  # the same content delivered twice in one landing: load it once
            summary.files.append(FileLoad(item.source, file_name, item.sha256, "skipped"))
            continue
        record, archived, encoding = _load_file(con, item, file_name, archive_dir, summary.load_id, resolver)
        crash_point("ingest")
        _record(con, summary.load_id, record, item.path.stat().st_size, encoding,
                _relative(archived, home_root) if archived else None)
        if record.status == "loaded":
            loaded.add(item.sha256)
        summary.files.append(record)
    return summary


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _record(con, load_id: str, record: FileLoad, size: int | None, encoding: str | None,
            archived: str | None) -> None:
    con.execute(
        "insert into raw.load_manifest values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [load_id, record.source, record.file_name, record.sha256, size, encoding, record.year,
         record.rows, record.status, record.error, archived, datetime.now(timezone.utc)],
    )


def _load_file(con, item, file_name: str, archive_dir: Path, load_id: str, resolver: CityResolver):
    """Archive one delivered file, parse its archived copy and insert its rows in one transaction."""
    source = item.source
    year = year_from_name(item.path.name)
    record = FileLoad(source, file_name, item.sha256, "loaded", year=year)
    encoding, archived = None, None
    try:
        if source not in SOURCES:
            raise LoadError(f"{file_name}: unknown source folder '{source}' (expected one of {', '.join(SOURCES)})")
        stored = archive_file(item.path, source, item.sha256, archive_dir)
        archived = stored.path
        if stored.repaired:
            record.note = f"{file_name}: its archived copy was damaged and has been replaced from the delivery"
        con.execute("begin transaction")
        if source == "enterprises":
            table = parse_enterprises(archived, file_name, year, resolver)
            _insert(con, "enterprise_registrations", table, load_id, file_name)
            record.rows = table.num_rows
        else:
            rows, encoding = read_rows(archived, file_name)
            if source == "national":
                frame = parse_national(rows, file_name, year)
                _insert(con, "national_values", frame, load_id, file_name)
            else:
                frame = parse_city_table(rows, file_name, source, year, resolver)
                _insert(con, "city_cells", frame, load_id, file_name, source=source)
            record.rows = int(frame["source_row"].nunique())
        con.execute("commit")
    except (LoadError, UnreadableFile, ArchiveMismatch, pa.ArrowInvalid) as exc:
        try:
            con.execute("rollback")
        except duckdb.Error:
            pass  # the error came before the transaction began
        message = str(exc) if not isinstance(exc, pa.ArrowInvalid) else f"{file_name}: not readable as CSV ({exc})"
        record.status, record.error, record.rows = "failed", message, 0
    return record, archived, encoding
