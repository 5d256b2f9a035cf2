"""Shared fixtures.

Machine independence: ``CITYRES_DUCKDB_THREADS=N`` limits every DuckDB connection the
product opens (see ``warehouse.connections``) and the ``con`` fixture here to N threads,
so the suite can be run with one thread to show that no assertion depends on the
summation order of parallel aggregates.
"""

from __future__ import annotations

import os

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
