"""The refresh's worker processes (flows/workers.py) give exactly what the calling process gives,
for the audit, the studies and their figures, and a worker that died costs time, not the work."""
from __future__ import annotations

import os
import signal
from dataclasses import asdict

import pytest

from flows.workers import RefreshWorkers, run_here, study_on, timed_audit


@pytest.fixture(scope="module")
def workers():
    with RefreshWorkers(workers=2) as pool:
        yield pool.start()


def _results(outcome) -> list[dict]:
    return [asdict(r) for r in outcome.results]


def test_the_workers_are_other_processes(workers):
    ran_in = {f.result() for f in workers.started}  # the first study worker up may take both calls
    # the audit's own process and one per study worker
    assert len(workers.pids()) == 3 and ran_in <= set(workers.pids()) and os.getpid() not in ran_in
    assert workers.started[0].result() == workers.pids()[0]


def test_the_audit_in_a_worker_equals_the_audit_here(published_sample, workers):
    db = published_sample.warehouse_db
    here, _ = run_here(timed_audit, db, "here", {"load_id": None}).result()
    there, seconds = workers.audit(db, "there", load_id=None).result()
    assert seconds > 0
    assert len(here.results) > 30
    assert _results(there) == _results(here)
    assert (there.notes, there.publishable) == (here.notes, here.publishable)


def test_a_study_in_a_worker_equals_the_study_here(published_sample, workers):
    db = published_sample.warehouse_db
    here = study_on(db, "baseline")
    there = workers.study(db, "baseline").result()
    # the same computation on the same file; DuckDB's parallel sums may only reorder the last bits
    (specs_here, fits_here), (specs_there, fits_there) = here, there
    assert [s.model_id for s in specs_there] == [s.model_id for s in specs_here]
    assert len(fits_here) == 4
    for a, b in zip(fits_here, fits_there):
        assert list(b.coef.index) == list(a.coef.index) and b.nobs == a.nobs
        assert (b.coef - a.coef).abs().max() <= 1e-12 * max(1.0, a.coef.abs().max())
        assert ((b.se - a.se) / a.se).abs().max() <= 1e-10


def test_a_figure_drawn_in_a_worker_is_the_figure_drawn_here(published_sample, workers, tmp_path):
    """The report's study figures are drawn by the workers (bound methods of the results,
    pickled): the same PNG bytes as drawn in this process."""
    db = published_sample.warehouse_db
    event_study, placebo = study_on(db, "event_study"), study_on(db, "placebo")
    here = [event_study.plot(tmp_path / "here_event.png"), placebo.plot(tmp_path / "here_placebo.png")]
    pending = [workers.submit(event_study.plot, tmp_path / "there_event.png"),
               workers.submit(placebo.plot, tmp_path / "there_placebo.png")]
    there = [p.result() for p in pending]
    assert [p.name for p in there] == ["there_event.png", "there_placebo.png"]
    for a, b in zip(here, there):
        assert a.stat().st_size > 10_000
        assert a.read_bytes() == b.read_bytes()


def test_work_of_a_worker_that_died_runs_in_the_calling_process():
    with RefreshWorkers(workers=1) as pool:
        [f.result() for f in pool.start().started]
        audit_pid, study_pid = pool.pids()
        os.kill(study_pid, signal.SIGKILL)  # e.g. the OOM killer
        assert pool.submit(os.getpid).result() == os.getpid()  # run again here
        assert pool.submit(os.getpid).result() == os.getpid()  # and so on, once the pool is broken
