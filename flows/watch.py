"""Which landing files are new and settled, and which left: the trigger of `cityres serve`.

A file is new when its content differs from the version of that path in force in the published
warehouse (a file equal to an earlier version is new too: it brings that version back;
warehouse/deliveries.py), and settled when its size and modification time have not changed for
`settle_seconds` (a file still being copied is not loaded half-written). A file in force that
left the landing folder is a withdrawal, pending at once. Hashes are cached on (path, size,
mtime) in the home's cache file. A change of the mappings or delivery profiles is picked up by
the next scheduled refresh, not by the watcher.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.landing import landing_hashes


@dataclass
class LandingWatcher:
    landing: Path
    settle_seconds: float
    cache_path: Path | None = None  # the home's landing-hash cache (None: hash every scan)
    _seen: dict[Path, tuple[int, int, float]] = field(default_factory=dict)  # size, mtime_ns, since
    _sha: dict[Path, str] = field(default_factory=dict)  # content hash of each file at the last scan

    def pending(self, in_force: dict[str, str], now: float | None = None) -> list[Path]:
        """Settled landing files whose content is not the version in force of their path
        (``in_force``: landing path → sha256); unsettled ones wait."""
        now = time.monotonic() if now is None else now
        delivered = landing_hashes(self.landing, self.cache_path)
        self._sha = {item.path: item.sha256 for item in delivered}
        ready = []
        for item in delivered:
            if in_force.get(self._name(item.path)) == item.sha256:
                continue
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

    def withdrawn(self, in_force: dict[str, str]) -> list[str]:
        """Paths in force that are no longer in the landing folder (after :meth:`pending`)."""
        present = {self._name(p) for p in self._sha}
        return sorted(set(in_force) - present)

    def fingerprint(self, paths: list[Path], withdrawn: list[str] = ()) -> frozenset[tuple[str, str]]:
        """The (path, content) of a set of pending files and withdrawals, to avoid re-running a
        refused delivery."""
        return frozenset({(self._name(p), self._sha[p]) for p in paths} | {(w, "withdrawn") for w in withdrawn})

    def _name(self, path: Path) -> str:
        return path.relative_to(self.landing).as_posix()
