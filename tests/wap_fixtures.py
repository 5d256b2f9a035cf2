"""Helpers of the data-quality tests: a published baseline home, copies of it, and landing files
corrupted one way each (a corrected file re-delivered under the same name is a new load that
replaces the old one in force, exactly like a real correction)."""
from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from warehouse.paths import Home

FIRM_SCALE = 0.01
YEARBOOK_2022 = "city_yearbook/中国城市统计年鉴_2022.csv"  # an interior year: gaps interpolate
BOM = "\ufeff"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The copies' refreshes run the program's core studies only ([refresh] studies = []): the tests
# that take a copy are about loading, validating and publishing; the whole program runs in the
# published sample's own refresh and is checked there (test_report, test_modern_did_program, ...).
CORE_ONLY = "[refresh]\nstudies = []\n"


def copy_home(source: Home, target: Path, config: str = CORE_ONLY) -> Home:
    """A private copy of a published home (warehouse, archive, landing, reports), with ``config``
    as its cityres.toml."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("landing", "archive", "reports"):
        shutil.copytree(source.root / name, target / name)
    shutil.copy2(source.warehouse_db, target / "warehouse.duckdb")
    (target / "cityres.toml").write_text(config, encoding="utf-8")
    return Home(target).ensure()


@dataclass
class CsvFile:
    """A delivered CSV as rows of text; written back with its encoding, BOM and line endings."""

    path: Path
    rows: list[list[str]]
    bom: bool
    newline: str

    @classmethod
    def open(cls, landing: Path, name: str) -> "CsvFile":
        raw = (landing / name).read_bytes().decode("utf-8")
        newline = "\r\n" if "\r\n" in raw else "\n"
        bom = raw.startswith(BOM)
        rows = list(csv.reader(io.StringIO(raw.removeprefix(BOM), newline="")))
        return cls(landing / name, rows, bom, newline)

    def save(self) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=self.newline).writerows(self.rows)
        self.path.write_bytes(((BOM if self.bom else "") + buffer.getvalue()).encode("utf-8"))

    # -------------------------------------------------------- yearbook layout
    @property
    def header_index(self) -> int:
        return next(i for i, row in enumerate(self.rows) if row and row[0] in ("城市", "指标"))

    def column(self, header: str) -> int:
        return self.rows[self.header_index].index(header)

    def row_of(self, first_cell: str) -> int:
        return next(i for i, row in enumerate(self.rows) if row and row[0] == first_cell)

    def set(self, first_cell: str, header: str, value: str) -> tuple[int, int]:
        """Set a cell; return its 1-based (row, column) as the warehouse records them."""
        r, c = self.row_of(first_cell), self.column(header)
        self.rows[r][c] = value
        return r + 1, c + 1


def published_data_digest(db: Path) -> dict[str, str]:
    """A digest of every table of a warehouse file except the load manifest, which a refused
    load extends with its attempts (without changing any published data)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute("select schema_name, table_name from duckdb_tables() where not temporary "
                             "and not (schema_name = 'raw' and table_name = 'load_manifest') order by 1, 2").fetchall()
        out = {}
        for schema, table in tables:
            (digest,) = con.execute(
                f'select md5(coalesce(string_agg(t::varchar, chr(10) order by t::varchar), \'\')) '
                f'from "{schema}"."{table}" t').fetchone()
            out[f"{schema}.{table}"] = digest
    return out


def manifest_rows(db: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select load_id, file_name, sha256, status, error from raw.load_manifest "
                           "order by loaded_at, file_name").fetchall()


ROOT = Path(__file__).resolve().parents[1]


def cli(home: Home, *args, fault: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `cityres` in its own process group; output through files, not pipes.

    A process killed with SIGKILL leaves Prefect's temporary server (its child) running and
    holding inherited pipes open, so the group is killed after the command ends.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CITYRES_FAULT"))}
    env.update(CITYRES_HOME=str(home.root), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    if fault:
        env["CITYRES_FAULT_KILL_AT"] = fault
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], env=env, cwd=ROOT, stdout=out,
                                stderr=err, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # orphans of a killed refresh (its Prefect server)
            except ProcessLookupError:
                pass
            proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, returncode, out.read(), err.read())


def archive_is_intact(home: Home) -> list[Path]:
    """Every archived file hashes to the folder it is filed under; returns the files checked."""
    files = [p for p in home.archive.rglob("*") if p.is_file() and not p.name.endswith(".partial")]
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] == path.parent.name, f"damaged archive: {path}"
    return files
