"""Firm-registration files (landing/enterprises/): read in blocks, whatever their size.

A year of a national registry is tens of millions of records (gigabytes of CSV), so a file is
never held in memory: pyarrow's streaming CSV reader hands over one block at a time, a few
blocks make one batch of rows for raw.enterprise_registrations, and the caller inserts it before
the next is read. Every value stays text (typed in dbt staging). A city name is resolved once per
distinct name of the file, and the city key is mapped onto the rows through a dictionary
encoding, not row by row in Python.

``source_row`` is the line of the file where the record starts (the header is line 1), also
across blank lines and quoted values that span lines, so an error or a check can point at it.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from warehouse.layouts import LayoutError
from warehouse.names import CityResolver, city_key
from warehouse.readers import decode

# pyarrow reads up to 32 blocks ahead of the one being parsed: small blocks keep that read-ahead
# small (32 MB); batches of several blocks keep the per-INSERT cost negligible. Together they bound
# the memory of a load whatever the file size.
BLOCK_BYTES = 1 << 20
BATCH_BYTES = 16 << 20
SNIFF_BYTES = 1 << 16  # enough lines to tell UTF-8 from GB18030

COLUMNS = {
    "firm_id": {"企业id", "企业编号", "firmid", "firm_id"},
    "city_name_text": {"所在城市", "城市", "city"},
    "registration_date_text": {"成立日期", "注册日期", "registrationdate", "registration_date"},
    "industry_code_text": {"行业代码", "国民经济行业代码", "industrycode", "industry_code"},
    "registered_capital_text": {"注册资本(万元)", "注册资本", "registeredcapital", "registered_capital"},
}
# pyarrow's name for each encoding readers.decode recognises (it skips a UTF-8 BOM itself)
ARROW_ENCODINGS = {"utf-8-sig": "utf8", "gb18030": "gb18030"}


class EnterpriseFileError(LayoutError):
    """A registration file that cannot be loaded: the message names file, row and column."""


def sniff_encoding(path: Path, file_name: str) -> str:
    """UTF-8 or GB18030, decided on the first complete lines (readers.decode's rules)."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if len(head) == SNIFF_BYTES:
        head = head.rsplit(b"\n", 1)[0]  # a multi-byte character may be cut at the end
    return decode(head, file_name)[1]


@dataclass
class _CityKeys:
    """City name → city key of one file, each distinct name resolved once."""

    resolver: CityResolver
    year: int
    keys: dict[str, str] = field(default_factory=dict)

    def unresolved(self, names: list[str]) -> tuple[str, str] | None:
        """(name, error) of the first name of ``names`` that does not resolve, else None."""
        for name in names:
            if name in self.keys:
                continue
            if not name.strip():
                return name, "no city name (the cell is empty)"
            result = self.resolver.resolve(name, self.year)
            if result.error:
                return name, result.error
            self.keys[name] = city_key(name)
        return None


def read_enterprises(path: Path, file_name: str, year: int | None, resolver: CityResolver,
                     encoding: str, block_size: int | None = None) -> Iterator[pa.Table]:
    """The file's records in file order, in tables of about BATCH_BYTES, with the columns of
    raw.enterprise_registrations (without load_id and file_name)."""
    if year is None:
        raise EnterpriseFileError(f"{file_name}: no year in the file name")
    invalid: list = []  # rows pyarrow refused (wrong number of values), for the message
    try:
        reader = _open(path, encoding, block_size or BLOCK_BYTES, invalid)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _unreadable(exc, path, file_name, encoding, invalid) from None
    try:
        names = reader.schema.names
        columns = _columns(names, file_name)
        cities = _CityKeys(resolver, year)
        parts: list[pa.Table] = []
        for batch, lines in _numbered_blocks(reader, path, file_name, encoding, invalid, columns["city_name_text"]):
            parts.append(_rows(batch, lines, columns, cities, names, file_name))
            if sum(part.nbytes for part in parts) >= BATCH_BYTES:
                yield pa.concat_tables(parts)
                parts = []
        if parts:
            yield pa.concat_tables(parts)
    finally:
        reader.close()


def _numbered_blocks(reader, path: Path, file_name: str, encoding: str, invalid: list, city: int):
    """(records, the line each starts on) of every block, blank lines left out."""
    next_line = 2  # line 1 is the header
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _unreadable(exc, path, file_name, encoding, invalid) from None
        lines = next_line + np.arange(batch.num_rows, dtype=np.int64)
        extra = _line_breaks_inside(batch)
        if extra is not None:
            lines += np.concatenate(([0], np.cumsum(extra)[:-1]))
            next_line += int(extra.sum())
        next_line += batch.num_rows
        batch, lines = _without_blank_lines(batch, lines, city)
        if batch.num_rows:
            yield batch, lines


def _open(path: Path, encoding: str, block_size: int, invalid: list) -> pacsv.CSVStreamingReader:
    def on_invalid(row) -> str:
        invalid.append(row)
        return "error"

    read = pacsv.ReadOptions(encoding=ARROW_ENCODINGS[encoding], block_size=block_size,
                             use_threads=False)  # keeps the row numbers of invalid rows known
    parse = pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid)
    # Every column as text: inferring types from the first block would rewrite text ('0123',
    # '1.10') and fail on a later block that does not fit the guess.
    with pacsv.open_csv(path, read_options=read, parse_options=parse) as probe:
        names = probe.schema.names
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                                   auto_dict_encode=False, check_utf8=True)
    return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)


def _columns(names: list[str], file_name: str) -> dict[str, int]:
    """Position of each raw column's source column in the file's header."""
    header_keys = [city_key(n) for n in names]
    found = {}
    for target, accepted in COLUMNS.items():
        position = next((i for i, k in enumerate(header_keys) if k in accepted), None)
        if position is None:
            raise EnterpriseFileError(f"{file_name} row 1: missing column for {target} (one of {sorted(accepted)})")
        found[target] = position
    return found


def _unreadable(exc: Exception, path: Path, file_name: str, encoding: str, invalid: list) -> EnterpriseFileError:
    """The error of a file pyarrow cannot read, naming the line."""
    if invalid:
        row = invalid[-1]
        where = f"row {record_line(path, encoding, row.number)}" if row.number is not None else "a row"
        return EnterpriseFileError(
            f"{file_name}: {where}: {row.actual_columns} values where the header has {row.expected_columns} "
            f"columns: '{row.text[:120]}' (a comma inside a value must be quoted)")
    if isinstance(exc, UnicodeDecodeError) or "invalid UTF8" in str(exc):
        label = "UTF-8" if encoding == "utf-8-sig" else "GBK/GB18030"
        return EnterpriseFileError(
            f"{file_name}: not {label} text throughout (first invalid byte at {first_invalid_byte(path, encoding)}); "
            "a file must be one encoding throughout; re-save it as UTF-8")
    return EnterpriseFileError(f"{file_name}: not readable as CSV ({exc})")


def record_line(path: Path, encoding: str, number: int) -> int:
    """The line where pyarrow's row ``number`` (1 = the header) starts: pyarrow counts rows, and
    a quoted value may span lines. Only read on the way to an error message."""
    with open(path, encoding=encoding, newline="", errors="replace") as fh:
        reader = csv.reader(fh)
        end_of_previous = 0
        for index, _ in enumerate(reader, start=1):
            if index == number:
                return end_of_previous + 1
            end_of_previous = reader.line_num
    return end_of_previous + 1


def first_invalid_byte(path: Path, encoding: str, chunk: int = 1 << 20) -> str:
    """'row R, byte B of the row (0x..)' of the first byte that does not decode; read in chunks."""
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    line, offset, row_start = 1, 0, 0  # offset: file position of data[0]
    pending = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            data = pending + block
            if not data:
                return "no byte (the file decodes)"
            try:
                data.decode(codec)
                good = len(data)
            except UnicodeDecodeError as exc:
                if not (block and exc.end == len(data) and exc.start >= len(data) - 3):
                    bad = exc.start
                    newline = data.rfind(b"\n", 0, bad)
                    start = offset + newline + 1 if newline >= 0 else row_start
                    row = line + data.count(b"\n", 0, bad)
                    return f"row {row}, byte {offset + bad - start + 1} of the row (0x{data[bad]:02x})"
                good = exc.start  # a character cut by the chunk boundary: decoded with the next one
            line += data.count(b"\n", 0, good)
            newline = data.rfind(b"\n", 0, good)
            if newline >= 0:
                row_start = offset + newline + 1
            offset += good
            pending = data[good:]


def _line_breaks_inside(batch: pa.RecordBatch) -> np.ndarray | None:
    """Per record, the line breaks inside its quoted values; None when there are none (the rule)."""
    extra = None
    for column in batch.columns:
        if not _contains_newline(column):
            continue
        counts = pc.count_substring(column, "\n").to_numpy(zero_copy_only=False).astype(np.int64)
        extra = counts if extra is None else extra + counts
    return extra


def _contains_newline(column: pa.StringArray) -> bool:
    # A scan of the value bytes (memchr speed) instead of a per-value search.
    if len(column) == 0:
        return False
    offsets = column.buffers()[1]
    data = column.buffers()[2]
    if data is None:
        return False
    bounds = np.frombuffer(offsets, dtype=np.int32)[column.offset:column.offset + len(column) + 1]
    return b"\n" in data.slice(int(bounds[0]), int(bounds[-1] - bounds[0])).to_pybytes()


def _without_blank_lines(batch: pa.RecordBatch, lines: np.ndarray, city: int):
    """Drop rows with no text at all (blank lines: the reader keeps them so lines can be counted)."""
    if not pc.any(pc.equal(batch.column(city), "")).as_py():
        return batch, lines
    blank = pc.equal(batch.column(0), "")
    for column in batch.columns[1:]:
        blank = pc.and_(blank, pc.equal(column, ""))
    if not pc.any(blank).as_py():
        return batch, lines
    keep = pc.invert(blank)
    return batch.filter(keep), lines[keep.to_numpy(zero_copy_only=False)]


def _rows(batch: pa.RecordBatch, lines: np.ndarray, columns: dict[str, int], cities: _CityKeys,
          names: list[str], file_name: str) -> pa.Table:
    city_names = batch.column(columns["city_name_text"])
    encoded = pc.dictionary_encode(city_names)
    dictionary = encoded.dictionary.to_pylist()
    failure = cities.unresolved(dictionary)
    if failure is not None:
        name, error = failure
        first = pc.index(city_names, name).as_py()
        position = columns["city_name_text"]
        raise EnterpriseFileError(f"{file_name}: row {lines[first]}, column {position + 1} "
                                  f"('{names[position]}'): {error}")
    keys = pa.array([cities.keys[name] for name in dictionary], pa.string())
    n = batch.num_rows
    return pa.table({
        "year": pa.array(np.full(n, cities.year, dtype=np.int32)),
        "source_row": pa.array(lines.astype(np.int32)),
        "firm_id": batch.column(columns["firm_id"]),
        "city_name_text": city_names,
        "city_key": pc.take(keys, encoded.indices),
        "registration_date_text": batch.column(columns["registration_date_text"]),
        "industry_code_text": batch.column(columns["industry_code_text"]),
        "registered_capital_text": batch.column(columns["registered_capital_text"]),
    })
