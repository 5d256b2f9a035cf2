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
