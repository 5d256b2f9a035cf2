"""The landing folder: which files are delivered and their content hashes.

What the next refresh does with each file (load, skip, withdraw) is decided from these by
warehouse/deliveries.py, for the refresh's no-op check, the ingest step and the watcher of
`cityres serve` alike. Content hashes are cached in $CITYRES_HOME/landing_hashes.json keyed on
(path, size, modification time), so a refresh with nothing new does not re-read gigabytes of
deliveries.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import duckdb


CACHE_FILE = "landing_hashes.json"


@dataclass(frozen=True)
class Delivered:
    source: str  # the landing sub-folder (city_yearbook, national, ...)
    path: Path
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Rejected:
    """A landing entry that is not a regular file inside the landing folder: never read."""

    source: str
    path: Path
    reason: str

    @property
    def fingerprint(self) -> str:
        """Stands in for a content hash: the entry's kind and target, so a change is noticed."""
        return hashlib.sha256(f"{self.reason}|{self.path}".encode()).hexdigest()


def _walk(landing: Path):
    """(relative path, path, lstat) of every entry below landing, without following links."""
    for root, dirs, files in os.walk(landing, followlinks=False):
        here = Path(root)
        for name in sorted(dirs + files):
            path = here / name
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                continue
            yield path.relative_to(landing), path, st


def _skipped(rel: Path) -> bool:
    # editor lock files, and files not in a source folder (README, ground truth)
    return rel.name.startswith((".", "~$")) or len(rel.parts) < 2


def landing_files(landing: Path) -> list[tuple[str, Path]]:
    """(source, path) for every delivered regular file, in a stable order (links never followed)."""
    found = [(rel.parts[0], path) for rel, path, st in _walk(landing)
             if stat.S_ISREG(st.st_mode) and not _skipped(rel)]
    return sorted(found, key=lambda item: item[1])


def landing_rejects(landing: Path) -> list[Rejected]:
    """Entries that are not regular files: symbolic links to files or folders (never followed, so
    nothing outside the landing folder is read), devices, pipes, sockets."""
    out = []
    for rel, path, st in _walk(landing):
        if stat.S_ISREG(st.st_mode) or _skipped(rel):
            continue
        if stat.S_ISLNK(st.st_mode):
            what = "a folder" if path.is_dir() else os.readlink(path)
            reason = f"a symbolic link (to {what}); links are not followed, deliver the file itself"
        else:
            reason = "not a regular file (a device, pipe or socket)"
        out.append(Rejected(rel.parts[0], path, reason))
    return sorted(out, key=lambda r: r.path)


def manifest_hashes(con: duckdb.DuckDBPyConnection, *statuses: str) -> set[str]:
    """Content hashes of the files with one of ``statuses`` (default: loaded) in the manifest."""
    statuses = statuses or ("loaded",)
    try:
        return {r[0] for r in con.execute(
            f"select sha256 from raw.load_manifest where status in ({', '.join('?' for _ in statuses)})",
            list(statuses)).fetchall()}
    except duckdb.CatalogException:
        return set()


def landing_hashes(landing: Path, cache_path: Path | None = None) -> list[Delivered]:
    """Every delivered file with its sha256, reusing cached hashes of unchanged files."""
    cache: dict = {}
    if cache_path is not None:
        try:
            cache = json.loads(cache_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            cache = {}
    fresh, out = {}, []
    for source, path in landing_files(landing):
        stat = path.stat()
        key = path.relative_to(landing).as_posix()
        entry = cache.get(key)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            sha = entry[2]
        else:
            sha = sha256_of(path)
        fresh[key] = [stat.st_size, stat.st_mtime_ns, sha]
        out.append(Delivered(source, path, sha))
    if cache_path is not None and fresh != cache:
        # written under a temporary name and renamed: the watcher and a refresh may share it
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(fresh, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, cache_path)
    return out
