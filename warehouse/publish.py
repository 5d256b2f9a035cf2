"""Write-audit-publish: build in a candidate file beside the published warehouse, swap atomically.

Readers hold the old file open until they reconnect, so they see the old vintage or the new one,
never a mix; a refused refresh leaves the published file untouched.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

# Files stay readable by DuckDB 1.x clients (R, older CLIs) that economists often use.
STORAGE_COMPATIBILITY = "v1.4.0"


def connect_for_write(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_COMPATIBILITY})


def prepare_candidate(published: Path, candidate: Path) -> Path:
    """A fresh candidate: a copy of the published warehouse (raw history included) or a new file."""
    for stale in (candidate, candidate.with_name(candidate.name + ".wal")):
        stale.unlink(missing_ok=True)
    if published.exists():
        shutil.copy2(published, candidate)
    else:
        connect_for_write(candidate).close()
    return candidate


def publish(candidate: Path, published: Path) -> None:
    """Checkpoint the candidate and move it over the published file in one rename."""
    with connect_for_write(candidate) as con:
        con.execute("checkpoint")
    os.replace(candidate, published)
    candidate.with_name(candidate.name + ".wal").unlink(missing_ok=True)


def discard(candidate: Path) -> None:
    for stale in (candidate, candidate.with_name(candidate.name + ".wal")):
        stale.unlink(missing_ok=True)
