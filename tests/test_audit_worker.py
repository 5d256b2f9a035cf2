"""The audit in its own process (expectations/worker.py) decides exactly what the audit in the
calling process decides, and a worker that died costs time, not the audit."""
from __future__ import annotations

import os
import signal
from dataclasses import asdict

from expectations.worker import AuditWorker, audit_here


def _results(outcome) -> list[dict]:
    return [asdict(r) for r in outcome.results]


def test_the_worker_and_the_calling_process_give_the_same_outcome(published_sample):
    here, _ = audit_here(published_sample.warehouse_db, "here", load_id=None).result()
    with AuditWorker() as worker:
        assert worker.warmed.result() > 0  # GX imported in the worker
        there, seconds = worker.submit(published_sample.warehouse_db, "there", load_id=None).result()
    assert seconds > 0
    assert len(here.results) > 30
    assert _results(there) == _results(here)
    assert there.notes == here.notes
    assert there.publishable == here.publishable


def test_a_worker_that_died_falls_back_to_the_calling_process(published_sample):
    expected, _ = audit_here(published_sample.warehouse_db, "here", load_id=None).result()
    with AuditWorker() as worker:
        worker.warmed.result()
        (pid,) = list(worker._pool._processes)
        os.kill(pid, signal.SIGKILL)  # e.g. the OOM killer
        outcome, _ = worker.submit(published_sample.warehouse_db, "after", load_id=None).result()
    assert _results(outcome) == _results(expected)
