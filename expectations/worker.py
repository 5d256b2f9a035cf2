"""The audit of a candidate warehouse in a process of its own, with Great Expectations imported early.

A refresh spends about 4 s importing GX and about 8 s more validating the sample, all of it
Python holding one core; the studies' program, which comes next, holds that same core. With a
worker process started when the refresh begins, GX is imported on the other core while files
are ingested and dbt runs, and the audit runs there while the flow estimates. Both sides open
the candidate read-only, so neither can change what the other reads; the results are written
into the candidate only after both have finished.

Where no worker runs (a dry run, `cityres validate`, a worker that could not start or died) the
same `audit` runs in the calling process: the outcome does not depend on where it ran.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from expectations.gate import ValidationOutcome


def _import_gx() -> float:
    """Import what the audit needs; the seconds it took (runs in the worker)."""
    started = time.perf_counter()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations  # noqa: F401  (the slow part: ~4 s)

    import expectations.audit  # noqa: F401

    return time.perf_counter() - started


def _timed_audit(database: Path, run_id: str, kwargs: dict) -> tuple[ValidationOutcome, float]:
    from expectations.audit import audit

    started = time.perf_counter()
    outcome = audit(database, run_id, **kwargs)
    return outcome, time.perf_counter() - started


@dataclass
class PendingAudit:
    """An audit under way (or done): `result()` waits for its outcome."""

    future: Future
    fallback: tuple | None = None  # (database, run_id, kwargs): rerun here if the worker died

    def result(self) -> tuple[ValidationOutcome, float]:
        """(outcome, seconds the audit itself took)."""
        try:
            return self.future.result()
        except BrokenProcessPool:
            if self.fallback is None:
                raise
            return _timed_audit(*self.fallback)


class AuditWorker:
    """One spawned process that imports GX at once and then runs audits on request."""

    def __init__(self) -> None:
        # spawn, not fork: the parent has DuckDB, Prefect and thread pools that a fork would copy mid-flight
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.warmed: Future = self._pool.submit(_import_gx)

    def submit(self, database: Path, run_id: str, **kwargs) -> PendingAudit:
        try:
            future = self._pool.submit(_timed_audit, database, run_id, kwargs)
        except (BrokenProcessPool, RuntimeError):
            return audit_here(database, run_id, **kwargs)
        return PendingAudit(future, fallback=(database, run_id, kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "AuditWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def audit_here(database: Path, run_id: str, **kwargs) -> PendingAudit:
    """The audit run now, in this process, as a finished PendingAudit."""
    future: Future = Future()
    future.set_result(_timed_audit(database, run_id, kwargs))
    return PendingAudit(future)
