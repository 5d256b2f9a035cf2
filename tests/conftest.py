"""Shared fixtures.

Machine independence: ``CITYRES_DUCKDB_THREADS=N`` limits every DuckDB connection the
product opens (see ``warehouse.connections``) and the ``con`` fixture here to N threads,
so the suite can be run with one thread to show that no assertion depends on the
summation order of parallel aggregates.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import duckdb
import pytest

from warehouse.connections import duckdb_config, duckdb_threads


def _limit_threads_of_every_connection() -> None:
    """With CITYRES_DUCKDB_THREADS set, the tests' own duckdb.connect calls honour it too."""
    if duckdb_threads() is None or getattr(duckdb.connect, "_cityres_threads", False):
        return
    original = duckdb.connect

    def connect(database=":memory:", read_only=False, config=None, **kw):
        return original(database, read_only=read_only, config={**duckdb_config(), **(config or {})}, **kw)

    connect._cityres_threads = True
    duckdb.connect = connect


_limit_threads_of_every_connection()


@pytest.fixture
def con():
    """A fresh in-memory DuckDB connection, honouring CITYRES_DUCKDB_THREADS."""
    c = duckdb.connect()
    yield c
    c.close()


@pytest.fixture(scope="module")
def prefect_harness():
    """A temporary Prefect server and database for the tests of one module."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=90):
        yield


def _published_once(tmp_path_factory, worker_id, name: str, adoption: str = "single"):
    """A sample home refreshed and published once per session, shared by the xdist workers."""
    from wap_fixtures import FIRM_SCALE

    from flows.workers import RefreshWorkers
    from flows.refresh import PLAIN_STEPS, Workspace, run_pipeline
    from warehouse.ingest import new_load_id
    from warehouse.paths import Home
    from warehouse.sample import write_sample

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base
    target, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            home = Home(Path(target)).ensure()
            if adoption != "single":
                (home.root / "cityres.toml").write_text(f'[dbt_vars]\nadoption_dates = "{adoption}"\n')
            write_sample(home.landing, firm_scale=FIRM_SCALE, adoption=adoption)
            with RefreshWorkers() as workers:  # as a refresh runs them: the audit beside the studies
                summary = run_pipeline(Workspace.for_refresh(home), new_load_id(), PLAIN_STEPS, workers=workers)
            assert summary.status == "published", summary.reasons
            done.touch()
    return Home(Path(target))


@pytest.fixture(scope="session")
def published_sample(tmp_path_factory, worker_id):
    """The synthetic sample (few firms), refreshed and published once per test session.

    Built by the refresh pipeline's plain steps (no Prefect) into a folder shared by the xdist
    workers of this session (the first worker builds it under a file lock, the others wait and
    reuse it). Tests must not change it: take a copy (``wap_fixtures.copy_home``) to refresh.
    """
    return _published_once(tmp_path_factory, worker_id, "published-sample")


@pytest.fixture(scope="session")
def published_staggered(tmp_path_factory, worker_id):
    """The staggered-adoption sample (cohorts 2015, 2016, 2017), published once per session."""
    return _published_once(tmp_path_factory, worker_id, "published-staggered", "staggered")
