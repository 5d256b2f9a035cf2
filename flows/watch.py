"""Which landing files are new and settled: the trigger of `cityres serve`.

A file is new when its content hash is not among the loaded files of the published warehouse
(`warehouse.landing.landing_delta`, the refresh's own test), and settled when its size and
modification time have not changed for `settle_seconds` (a file still being copied is not
loaded half-written). Hashes are cached on (path, size, mtime) in the home's cache file.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.landing import landing_delta


@dataclass
class LandingWatcher:
    landing: Path
    settle_seconds: float
    cache_path: Path | None = None  # the home's landing-hash cache (None: hash every scan)
    _seen: dict[Path, tuple[int, int, float]] = field(default_factory=dict)  # size, mtime_ns, since
    _sha: dict[Path, str] = field(default_factory=dict)  # content hash of each file at the last scan

    def pending(self, known: set[str], now: float | None = None) -> list[Path]:
        """Settled landing files whose content is not loaded yet; unsettled ones wait."""
        now = time.monotonic() if now is None else now
        delta = landing_delta(self.landing, known, self.cache_path)
        self._sha = {item.path: item.sha256 for item in delta.new + delta.loaded}
        ready = []
        for item in delta.new:
            stat = item.path.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
            previous = self._seen.get(item.path)
            if previous is None or previous[:2] != (size, mtime):
                self._seen[item.path] = (size, mtime, now)
            elif now - previous[2] >= self.settle_seconds:
                ready.append(item.path)
        for gone in set(self._seen) - set(self._sha):
            del self._seen[gone]
        return ready

    def fingerprint(self, paths: list[Path]) -> frozenset[str]:
        """The content of a set of pending files, to avoid re-running a refused delivery."""
        return frozenset(self._sha[p] for p in paths)
