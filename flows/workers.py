"""The processes that do a refresh's heavy Python work: the audit, the studies, their figures.

A refresh's audit (Great Expectations: ~4 s to import, ~8 s to validate the sample) and its
studies (~20 s) are Python that holds one core each; run in the flow's own process, threads or
not, they would share that one core. `RefreshWorkers` starts worker processes when the ingest
begins: one per core (at most MAX_WORKERS) for the studies, and one for the audit. At a lower
priority than the flow's process and dbt, they import the estimation stack, and GX (the audit's
alone), on the core the ingest leaves free; then the audit runs beside the studies as they
come, and then the studies' figures for the report. Each opens the candidate read-only, so
none can change what another reads; the flow's process writes the validation results and the
estimates once all are done (estimates only if the audit passed).

Where no workers run (a dry run, `cityres validate`, the test suite's plain steps) or a worker
died, the same functions run in the calling process: a result never depends on where it ran.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from warehouse.connections import THREADS_ENV
from warehouse.processes import leave_without_teardown

MAX_WORKERS = 4
WORKER_NICENESS = 10


def _prepare_common() -> None:
    # Once the pool lets it go, the worker leaves without tearing down GX and pandas (a second
    # the refresh's process spent waiting for it before it could exit).
    leave_without_teardown()
    # Below the flow's own process and dbt's: the workers start with the ingest and import what
    # they need on the core it leaves free, without taking cycles from it (measured on the
    # sample: the ingest 15 s at equal priority, 9 s below it; the refresh ~7 s shorter).
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # The workers already fill the cores with their own work (the sample's studies read a few
    # thousand rows): DuckDB's own threads would only compete with the other workers.
    os.environ.setdefault(THREADS_ENV, "1")


def _prepare_audit() -> None:
    """Import what the audit needs (the audit's worker, when it starts)."""
    _prepare_common()
    import great_expectations  # noqa: F401  (the slow one: ~4 s)

    import expectations.audit  # noqa: F401


def _prepare_studies() -> None:
    """Import what the studies and their figures need (each study worker, when it starts)."""
    _prepare_common()
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only, as the report draws them
    import matplotlib.pyplot  # noqa: F401

    import estimation.studies.program  # noqa: F401


def _started() -> int:
    return os.getpid()


def timed_audit(database: Path, run_id: str, kwargs: dict):
    """(ValidationOutcome of expectations.audit.audit, the seconds it took)."""
    from expectations.audit import audit

    started = time.perf_counter()
    outcome = audit(database, run_id, **kwargs)
    return outcome, time.perf_counter() - started


def study_on(candidate: Path, name: str):
    """One study of the program on its own read-only connection to the candidate."""
    from estimation.studies.program import run_study
    from warehouse.connections import connect_read_only

    with connect_read_only(candidate) as con:
        return run_study(con, name)


@dataclass
class Pending:
    """Work under way in a worker (or done here): `result()` waits for it."""

    future: Future
    fallback: Callable[[], Any] | None = None  # the same work, run here if the worker died

    def result(self):
        try:
            return self.future.result()
        except BrokenProcessPool:
            if self.fallback is None:
                raise
            return self.fallback()


def run_here(fn: Callable, *args) -> Pending:
    """`fn(*args)` run now, in this process, as a finished Pending."""
    future: Future = Future()
    future.set_result(fn(*args))
    return Pending(future)


class RefreshWorkers:
    """Spawned worker processes, started at once and prepared in the background.

    One process for the audit, which alone imports Great Expectations (~4 s of a core that every
    study worker would otherwise spend too), and one per core (at most MAX_WORKERS) for the
    studies and their figures. The audit's process is one more than the cores: while it runs,
    the system shares the cores among it and the study workers, and once it is done the study
    workers have them all.
    """

    def __init__(self, workers: int | None = None) -> None:
        count = workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))
        # spawn, not fork: the flow's process has DuckDB, Prefect and thread pools a fork would copy mid-flight
        spawn = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=count, mp_context=spawn, initializer=_prepare_studies)
        self._audit_pool = ProcessPoolExecutor(max_workers=1, mp_context=spawn, initializer=_prepare_audit)
        self.count = count
        self.started: list[Future] = []

    def start(self) -> "RefreshWorkers":
        """Start every worker now (else each starts with its first piece of work)."""
        if not self.started:
            # one call per worker: the pool spawns a process for each call that finds no idle one
            self.started = [self._audit_pool.submit(_started)] + [self._pool.submit(_started)
                                                                   for _ in range(self.count)]
        return self

    def pids(self) -> list[int]:
        """The worker processes running now (the audit's first)."""
        return list(self._audit_pool._processes or {}) + list(self._pool._processes or {})

    @staticmethod
    def _submit(pool: ProcessPoolExecutor, fn: Callable, *args) -> Pending:
        try:
            return Pending(pool.submit(fn, *args), fallback=lambda: fn(*args))
        except (BrokenProcessPool, RuntimeError):
            return run_here(fn, *args)

    def submit(self, fn: Callable, *args) -> Pending:
        """``fn(*args)`` in a study worker."""
        return self._submit(self._pool, fn, *args)

    def audit(self, database: Path, run_id: str, **kwargs) -> Pending:
        return self._submit(self._audit_pool, timed_audit, database, run_id, kwargs)

    def study(self, candidate: Path, name: str) -> Pending:
        return self.submit(study_on, candidate, name)

    def close(self) -> None:
        # Not waiting: the workers leave on their own (without tearing down GX and pandas,
        # warehouse.processes); the interpreter joins them before it exits.
        for pool in (self._audit_pool, self._pool):
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "RefreshWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
