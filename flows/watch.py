"""Which landing files are new and settled: the trigger of `cityres serve`.

A file is new when its content hash is not among the loaded files of the published warehouse,
and settled when its size and modification time have not changed for `settle_seconds` (a file
still being copied is not loaded half-written).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.ingest import landing_files, sha256_of


@dataclass
class LandingWatcher:
    landing: Path
    settle_seconds: float
    _seen: dict[Path, tuple[int, int, float]] = field(default_factory=dict)  # size, mtime_ns, since
    _hashes: dict[tuple[Path, int, int], str] = field(default_factory=dict)

    def _hash(self, path: Path, size: int, mtime: int) -> str:
        key = (path, size, mtime)
        if key not in self._hashes:
            self._hashes[key] = sha256_of(path)
        return self._hashes[key]

    def pending(self, known: set[str], now: float | None = None) -> list[Path]:
        """Settled landing files whose content is not loaded yet; unsettled ones wait."""
        now = time.monotonic() if now is None else now
        ready = []
        current = set()
        for _source, path in landing_files(self.landing):
            current.add(path)
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
            previous = self._seen.get(path)
            if previous is None or previous[:2] != (size, mtime):
                self._seen[path] = (size, mtime, now)
                continue
            if now - previous[2] < self.settle_seconds:
                continue
            if self._hash(path, size, mtime) not in known:
                ready.append(path)
        for gone in set(self._seen) - current:
            del self._seen[gone]
        return ready

    def fingerprint(self, paths: list[Path]) -> frozenset[str]:
        """The content of a set of pending files, to avoid re-running a refused delivery."""
        return frozenset(self._hash(p, *self._seen[p][:2]) for p in paths)
