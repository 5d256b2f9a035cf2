"""Write-audit-publish: build in a candidate file beside the published warehouse, swap atomically.

Readers hold the old file open until they reconnect, so they see the old vintage or the new one,
never a mix; a refused refresh leaves the published file untouched (byte for byte).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from warehouse.connections import connect_for_write


class PublishRefused(RuntimeError):
    """Publishing was asked for a candidate whose audit failed a critical expectation."""


def prepare_candidate(published: Path, candidate: Path) -> Path:
    """A fresh candidate: a copy of the published warehouse (raw history included) or a new file."""
    discard(candidate)
    if published.exists():
        shutil.copy2(published, candidate)
    else:
        connect_for_write(candidate).close()
    return candidate


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(candidate: Path, published: Path, *, gate) -> None:
    """Checkpoint the candidate and move it over the published file in one rename.

    `gate` is the audit's ValidationOutcome: a candidate with a failed critical expectation is
    never published, whoever asks.
    """
    if not gate.publishable:
        raise PublishRefused(f"{len(gate.failed_critical)} critical expectation(s) failed; not publishing")
    with connect_for_write(candidate) as con:
        con.execute("checkpoint")
    _fsync(candidate)  # the bytes are on disk before the name points at them
    os.replace(candidate, published)
    _fsync(published.parent)  # and the rename itself survives a crash
    candidate.with_name(candidate.name + ".wal").unlink(missing_ok=True)


def discard(candidate: Path) -> None:
    for stale in (candidate, candidate.with_name(candidate.name + ".wal")):
        stale.unlink(missing_ok=True)


# Columns raw.load_manifest gained after its first release (warehouse/ingest.py RAW_DDL adds them too).
MANIFEST_COLUMNS_ADDED = (("config_fingerprint", "varchar"), ("years", "integer[]"), ("note", "varchar"))


def publish_refused_attempts(candidate: Path, published: Path, vintage: str, reasons: list[str]) -> int:
    """Append a refused load's attempts to the published raw.load_manifest, nothing else.

    The published file is copied, the attempts of ``vintage`` are appended to the copy's
    manifest - a file refused for a fault of its own as ``failed`` with its error, every other
    file of the refused load as ``refused`` with the load's reasons (its rows are not in force) -
    and the copy replaces the published file in one rename. Every other table is unchanged.
    Returns the number of rows appended.
    """
    if not published.exists() or not candidate.exists():
        return 0
    staging = published.with_name(published.name + ".manifest-update")
    discard(staging)
    shutil.copy2(published, staging)
    reason = "the load was refused: " + "; ".join(reasons)
    with connect_for_write(staging) as con:
        escaped = str(candidate).replace("'", "''")
        con.execute(f"attach '{escaped}' as cand (read_only)")
        for column, kind in MANIFEST_COLUMNS_ADDED:  # a warehouse published by an older cityres
            con.execute(f"alter table raw.load_manifest add column if not exists {column} {kind}")
        n = con.execute(
            """
            insert into raw.load_manifest by name
            select load_id, source, file_name, sha256, bytes, encoding, year, 0 as rows,
                   case when status = 'failed' then 'failed' else 'refused' end as status,
                   case when status = 'failed' then error else ? end as error,
                   archived_path, loaded_at, config_fingerprint, years, note
            from cand.raw.load_manifest where load_id = ?
            """, [reason[:4000], vintage]).fetchone()
        con.execute("detach cand")
        con.execute("checkpoint")
    _fsync(staging)
    os.replace(staging, published)
    _fsync(published.parent)
    discard(staging)
    return int(n[0]) if n else 0
