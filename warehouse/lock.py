"""One refresh at a time: an exclusive lock on $CITYRES_HOME/refresh.lock.

The lock is an OS file lock (``fcntl.flock``) on an open file, so it is released by the kernel
when its holder exits or is killed: a crashed refresh never leaves a stale lock behind. The file
also holds who took it (pid, host, command, start time), so a second caller can say whom it is
waiting for. Taken before the candidate warehouse is touched, by every command that builds one
(`cityres refresh`, the runs of `cityres serve`, `cityres validate --landing`).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

LOCK_FILE = "refresh.lock"


class RefreshBusy(RuntimeError):
    """Another refresh holds the lock and did not finish within the wait."""


def _owner_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return "another refresh"
    if not info:
        return "another refresh"
    return (f"{info.get('command', 'a refresh')} (pid {info.get('pid')} on {info.get('host')}, "
            f"since {info.get('started')})")


@contextmanager
def refresh_lock(home_root: Path, wait_seconds: float = 0.0, command: str = "refresh",
                 on_wait: Callable[[str], None] | None = None, poll_seconds: float = 0.5) -> Iterator[None]:
    """Hold the home's refresh lock for the duration of the block.

    When another process holds it, wait up to ``wait_seconds`` (calling ``on_wait`` once with
    a message naming the holder), then raise :class:`RefreshBusy`.
    """
    home_root.mkdir(parents=True, exist_ok=True)
    path = home_root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, wait_seconds)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                owner = _owner_text(path)
                if time.monotonic() >= deadline:
                    raise RefreshBusy(f"{owner} is running in {home_root}; try again when it has finished") from None
                if not told and on_wait is not None:
                    on_wait(f"waiting up to {wait_seconds:.0f} s for {owner} to finish")
                    told = True
                time.sleep(poll_seconds)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "argv": " ".join(sys.argv[:4]), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
