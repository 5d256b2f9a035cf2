"""Cheap answers about the landing folder: which files hold content not loaded yet.

Content hashes are cached in $CITYRES_HOME/landing_hashes.json keyed on (path, size,
modification time), so a refresh with nothing new does not re-read gigabytes of deliveries.
Ingest itself always hashes what it loads.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from warehouse.connections import connect_read_only
from warehouse.ingest import landing_files, sha256_of

CACHE_FILE = "landing_hashes.json"


def loaded_hashes(warehouse_db: Path) -> set[str]:
    """Content hashes already loaded into the published warehouse (empty if none yet)."""
    if not warehouse_db.exists():
        return set()
    with connect_read_only(warehouse_db) as con:
        try:
            return {r[0] for r in con.execute(
                "select sha256 from raw.load_manifest where status = 'loaded'").fetchall()}
        except duckdb.CatalogException:
            return set()


def landing_hashes(landing: Path, cache_path: Path) -> dict[Path, str]:
    """sha256 of every delivered file, reusing cached hashes of unchanged files."""
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    fresh, hashes = {}, {}
    for _source, path in landing_files(landing):
        stat = path.stat()
        key = path.relative_to(landing).as_posix()
        entry = cache.get(key)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            sha = entry[2]
        else:
            sha = sha256_of(path)
        fresh[key] = [stat.st_size, stat.st_mtime_ns, sha]
        hashes[path] = sha
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_text(json.dumps(fresh, ensure_ascii=False), encoding="utf-8")
    return hashes


def new_landing_files(landing: Path, loaded: set[str], cache_path: Path) -> list[Path]:
    """Landing files whose content is not among the `loaded` hashes."""
    return [p for p, sha in landing_hashes(landing, cache_path).items() if sha not in loaded]
