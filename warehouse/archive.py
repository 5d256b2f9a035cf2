"""The archive: every delivered file kept byte for byte, crash-safe.

A file is copied to a temporary name beside its place, hashed while copying, fsynced, checked
against the content hash it was delivered with, and only then renamed into place (and the
folder fsynced). A crash mid-copy leaves a ``.partial`` file that is never trusted. An archive
file that already exists is trusted only if its hash matches; a damaged one is replaced from
the delivery and the repair is reported.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from warehouse.faults import crash_point
from warehouse.landing import sha256_of

CHUNK = 1 << 20


class ArchiveMismatch(ValueError):
    """The delivered file changed between hashing and archiving."""


@dataclass(frozen=True)
class Archived:
    path: Path
    repaired: bool  # an earlier, damaged archive copy was replaced


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archive_file(path: Path, source: str, sha: str, archive_dir: Path) -> Archived:
    """Archive ``path`` (content hash ``sha``) as archive/<source>/<sha[:16]>/<name>."""
    target = archive_dir / source / sha[:16] / path.name
    repaired = False
    if target.is_file() and not target.is_symlink():
        if sha256_of(target) == sha:
            return Archived(target, False)
        repaired = True
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.partial"):  # left by a crash mid-copy
        stale.unlink(missing_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            first = True
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                dst.write(chunk)
                if first:
                    dst.flush()
                    crash_point("archive_copy")
                    first = False
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != sha:
            raise ArchiveMismatch(f"{path.name}: the file changed while it was being loaded "
                                  "(its content differs from the hash taken a moment before); deliver it again")
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return Archived(target, repaired)
