"""Helper processes that leave without the interpreter's teardown.

A refresh's helper processes (the dbt process, the audit and study workers) import dbt, Great
Expectations, pandas and matplotlib. Tearing those down when the process exits takes about a
second, and the refresh waits for it: for the dbt process before anything may open the
candidate, for the workers before the command can exit. Their work is finished and sent by
then, so `leave_without_teardown` ends the process as soon as multiprocessing has run its own
finalizers (queues flushed to the parent, semaphores released).
"""
from __future__ import annotations

import multiprocessing.util
import os
import sys

# Below every finalizer multiprocessing and its queues register (they use 10 down to -5).
_LAST = -100


def _leave() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


def leave_without_teardown() -> None:
    """In a multiprocessing child: once its target has returned (or raised) and multiprocessing
    has finalized its queues, end the process at once with status 0, skipping atexit handlers
    and the interpreter's teardown. Close anything that must be closed (databases) first."""
    multiprocessing.util.Finalize(None, _leave, exitpriority=_LAST)
