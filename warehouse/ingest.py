"""Landing → raw: hash, archive untouched, parse to text rows, record in raw.load_manifest.

Each file of `landing/<source>/` is one load unit; which files are loaded, skipped or withdrawn
is decided by warehouse/deliveries.py. A file that cannot be parsed, has a header nobody mapped,
or names a city that cannot be resolved, is recorded as `failed` with an error naming file, row
and column; its rows never reach raw, and the refresh refuses to publish (flows/refresh.py).
The layouts of city tables are read by warehouse/layouts.py; firm-registration files, too large
to hold in memory, are read and inserted block by block (warehouse/enterprises.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from warehouse.archive import ArchiveMismatch, archive_file
from warehouse.deliveries import WITHDRAWAL, DeliveryConfig, ManifestRow, plan_landing
from warehouse.enterprises import read_enterprises, sniff_encoding
from warehouse.faults import crash_point
from warehouse.landing import landing_rejects, manifest_hashes
from warehouse.layouts import LayoutError, check_numbers, is_footnote, parse_city_table
from warehouse.names import CityResolver, city_key, resolver_with
from warehouse.readers import UnreadableFile, read_rows

SOURCES = ("city_yearbook", "national", "patents", "enterprises", "historical", "digital_finance")
YEAR_IN_NAME = re.compile(r"(?<!\d)(19|20)\d{2}(?!\d)")

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.load_manifest (
    load_id varchar not null, source varchar not null, file_name varchar not null,
    sha256 varchar not null, bytes bigint, encoding varchar, year integer, rows bigint,
    status varchar not null, error varchar, archived_path varchar, loaded_at timestamp not null
);
alter table raw.load_manifest add column if not exists config_fingerprint varchar;
alter table raw.load_manifest add column if not exists years integer[];
alter table raw.load_manifest add column if not exists note varchar;
create table if not exists raw.city_cells (
    load_id varchar not null, source varchar not null, file_name varchar not null,
    year integer, source_row integer not null, source_col integer not null,
    row_kind varchar not null, city_name_text varchar, city_key varchar, province_text varchar,
    header_text varchar not null, value_text varchar
);
alter table raw.city_cells add column if not exists scope varchar;
alter table raw.city_cells add column if not exists variable varchar;
alter table raw.city_cells add column if not exists unit varchar;
alter table raw.city_cells add column if not exists column_kind varchar;
create table if not exists raw.national_values (
    load_id varchar not null, file_name varchar not null, year integer not null,
    source_row integer not null, indicator_text varchar not null, value_text varchar
);
create table if not exists raw.enterprise_registrations (
    load_id varchar not null, file_name varchar not null, year integer not null,
    source_row integer not null, firm_id varchar, city_name_text varchar, city_key varchar,
    registration_date_text varchar, industry_code_text varchar, registered_capital_text varchar
);
create or replace table raw.mapping_headers (
    source varchar, header_base varchar, variable varchar, unit varchar, origin varchar
);
create or replace table raw.mapping_units (
    unit varchar, canonical_unit varchar, factor double, origin varchar
);
create or replace table raw.mapping_cities (
    alias_name varchar, city_code varchar, valid_from_year integer, valid_to_year integer,
    excluded boolean, origin varchar
);
"""


class LoadError(LayoutError):
    """A delivered file that cannot be loaded: the message names file, row and column."""


@dataclass
class FileLoad:
    source: str
    file_name: str
    sha256: str
    status: str  # loaded | failed | skipped (in force unchanged: not recorded again) | withdrawn
    rows: int = 0
    year: int | None = None
    error: str | None = None
    note: str | None = None  # something repaired or worth knowing, for the report
    years: list[int] = field(default_factory=list)
    why: str | None = None  # new | changed | re-read | withdrawn
    fingerprint: str | None = None

    def add_note(self, note: str) -> None:
        self.note = f"{self.note}; {note}" if self.note else note


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

    @property
    def withdrawn(self) -> list[FileLoad]:
        return [f for f in self.files if f.status == "withdrawn"]


def new_load_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return "L" + now.strftime("%Y%m%dT%H%M%S%fZ")


def year_from_name(name: str) -> int | None:
    match = YEAR_IN_NAME.search(name)
    return int(match.group(0)) if match else None


# ---------------------------------------------------------------- national (indicator, value)

def parse_national(rows: list[list[str]], file_name: str, year: int | None) -> pd.DataFrame:
    if year is None:
        raise LoadError(f"{file_name}: no year in the file name")
    records = []
    for r, row in enumerate(rows):
        if len(row) < 2 or not row[0] or city_key(row[0]) in {"指标", "indicator"}:
            continue
        if is_footnote(row[0]):
            continue
        records.append((year, r + 1, row[0], row[1]))
    if not records:
        raise LoadError(f"{file_name}: no indicator rows")
    check_numbers([(line, 2, indicator, value) for _, line, indicator, value in records], file_name)
    return pd.DataFrame.from_records(records, columns=["year", "source_row", "indicator_text", "value_text"])


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


def _insert_batch(con: duckdb.DuckDBPyConnection, enterprise_batch: pa.Table, load_id: str, file_name: str) -> None:
    """Insert one batch of firm registrations. Read through DuckDB's scan of the Python variable,
    not con.register: a view registered and dropped inside the file's transaction keeps its table
    alive until the commit, which would hold every batch of the file in memory."""
    con.execute(
        "insert into raw.enterprise_registrations by name "
        "select ? as load_id, ? as file_name, * from enterprise_batch",
        [load_id, file_name],
    )


def ingest_landing(con: duckdb.DuckDBPyConnection, landing: Path, archive_dir: Path,
                   load_id: str | None = None, resolver: CityResolver | None = None,
                   retry_failed: bool = False, home_root: Path | None = None,
                   config: DeliveryConfig | None = None, cache_path: Path | None = None,
                   withdraw_missing: bool = True) -> IngestSummary:
    """Bring raw.* in line with the landing folder; record each decision in raw.load_manifest.

    Loaded: every file whose content or reading configuration differs from its load in force
    (warehouse/deliveries.py), unless this content was refused under this configuration before
    (``retry_failed`` tries it again). Withdrawn: every file in force that left the landing
    folder. Each file is archived first (crash-safe, verified) and parsed from its archived copy,
    so the rows loaded are exactly the bytes kept. Entries that are not regular files are
    refused, never read. ``archived_path`` is stored relative to ``home_root`` (default: the
    archive's parent). ``config``: the user's mappings and delivery profiles (default: shipped).
    ``withdraw_missing=False`` (a dry run of a delivery folder): files absent from ``landing``
    stay in force.
    """
    con.execute(RAW_DDL)
    config = config or DeliveryConfig.shipped()
    resolver = resolver or resolver_with(config.mappings.user_cities)
    _store_mappings(con, config)
    summary = IngestSummary(load_id or new_load_id())
    home_root = home_root or archive_dir.parent
    plan = plan_landing(con, landing, config, retry_failed, cache_path)
    for item in plan.skip:
        summary.files.append(FileLoad(item.source, item.path.relative_to(landing).as_posix(), item.sha256, "skipped"))
    known = manifest_hashes(con, "loaded", "failed")
    for rejected in landing_rejects(landing):
        file_name = rejected.path.relative_to(landing).as_posix()
        if rejected.fingerprint in known and not retry_failed:
            summary.files.append(FileLoad(rejected.source, file_name, rejected.fingerprint, "skipped"))
            continue
        record = FileLoad(rejected.source, file_name, rejected.fingerprint, "failed",
                          error=f"{file_name}: {rejected.reason}")
        _record(con, summary.load_id, record, None, None, None)
        summary.files.append(record)
    for row in plan.withdraw if withdraw_missing else []:
        record = _withdrawal(row)
        _record(con, summary.load_id, record, None, None, None)
        summary.files.append(record)
    for item, why in plan.load:
        file_name = item.path.relative_to(landing).as_posix()
        record, archived, encoding = _load_file(con, item, file_name, archive_dir, summary.load_id, resolver, config)
        record.why = why
        if why == "re-read" and record.status == "loaded":
            record.add_note(f"{file_name}: re-read from its archived copy under the changed mappings or "
                            "delivery profile")
        crash_point("ingest")
        _record(con, summary.load_id, record, item.path.stat().st_size, encoding,
                _relative(archived, home_root) if archived else None)
        summary.files.append(record)
    return summary


def _withdrawal(row: ManifestRow) -> FileLoad:
    return FileLoad(row.source, row.file_name, row.sha256, "withdrawn", why="withdrawn", fingerprint=WITHDRAWAL,
                    note=f"{row.file_name}: withdrawn (no longer in the landing folder); its rows of load "
                         f"{row.load_id} are out of force from this vintage on")


def _store_mappings(con: duckdb.DuckDBPyConnection, config: DeliveryConfig) -> None:
    """The user's mappings of this refresh, for dbt (merged over the seeds in staging)."""
    m = config.mappings
    if m.user_headers:
        con.executemany("insert into raw.mapping_headers values (?, ?, ?, ?, ?)",
                        [[h.source, h.base, h.variable, h.unit, h.origin] for h in m.user_headers])
    if m.user_units:
        con.executemany("insert into raw.mapping_units values (?, ?, ?, ?)", [list(u) for u in m.user_units])
    if m.user_cities:
        con.executemany("insert into raw.mapping_cities values (?, ?, ?, ?, ?, ?)",
                        [[c["name"], c["city_code"], c["valid_from_year"], c["valid_to_year"], c["excluded"],
                          c["origin"]] for c in m.user_cities])


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _record(con, load_id: str, record: FileLoad, size: int | None, encoding: str | None,
            archived: str | None) -> None:
    con.execute(
        "insert into raw.load_manifest by name select ? as load_id, ? as source, ? as file_name, "
        "? as sha256, ? as bytes, ? as encoding, ? as year, ? as rows, ? as status, ? as error, "
        "? as archived_path, ? as loaded_at, ? as config_fingerprint, ? as years, ? as note",
        [load_id, record.source, record.file_name, record.sha256, size, encoding, record.year,
         record.rows, record.status, record.error, archived, datetime.now(timezone.utc),
         record.fingerprint, record.years or None, record.note],
    )


def year_of(file_name: str) -> int | None:
    """The year in a landing path's file name (not its folders): the first 19xx/20xx."""
    return year_from_name(Path(file_name).name)


def _load_file(con, item, file_name: str, archive_dir: Path, load_id: str, resolver: CityResolver,
               config: DeliveryConfig):
    """Archive one delivered file, parse its archived copy and insert its rows in one transaction."""
    source = item.source
    profile = config.profile(file_name)
    name_year = year_of(file_name)
    year = name_year + profile.year_offset if name_year is not None else None
    record = FileLoad(source, file_name, item.sha256, "loaded", year=year,
                      fingerprint=config.fingerprint(source, file_name))
    encoding, archived = None, None
    try:
        if source not in SOURCES:
            raise LoadError(f"{file_name}: unknown source folder '{source}' (expected one of {', '.join(SOURCES)})")
        stored = archive_file(item.path, source, item.sha256, archive_dir)
        archived = stored.path
        if stored.repaired:
            record.add_note(f"{file_name}: its archived copy was damaged and has been replaced from the delivery")
        con.execute("begin transaction")
        if source == "enterprises":
            encoding = sniff_encoding(archived, file_name)
            for batch in read_enterprises(archived, file_name, year, resolver, encoding):
                _insert_batch(con, batch, load_id, file_name)
                record.rows += batch.num_rows
            record.years = [year]
        else:
            rows, encoding = read_rows(archived, file_name)
            if source == "national":
                frame = parse_national(rows, file_name, year)
                record.years = [year]
                _insert(con, "national_values", frame, load_id, file_name)
            else:
                parsed = parse_city_table(rows, file_name, source, name_year, profile, config.mappings, resolver)
                frame = parsed.frame
                record.years = parsed.years
                record.year = parsed.years[0] if len(parsed.years) == 1 else None
                if parsed.year_from != "file name" and year is not None and parsed.years != [year]:
                    record.add_note(f"{file_name}: data year{'s' if len(parsed.years) > 1 else ''} "
                                    f"{_span(parsed.years)} taken from the {parsed.year_from}, not {year} "
                                    "from the file name")
                _insert(con, "city_cells", frame, load_id, file_name, source=source)
            record.rows = int(frame["source_row"].nunique())
        con.execute("commit")
    except (LayoutError, UnreadableFile, ArchiveMismatch, pa.ArrowInvalid) as exc:
        try:
            con.execute("rollback")
        except duckdb.Error:
            pass  # the error came before the transaction began
        message = str(exc) if not isinstance(exc, pa.ArrowInvalid) else f"{file_name}: not readable as CSV ({exc})"
        record.status, record.error, record.rows, record.years = "failed", message, 0, []
    return record, archived, encoding


def _span(years: list[int]) -> str:
    if len(years) > 2 and years == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}–{years[-1]}"
    return ", ".join(str(y) for y in years)
