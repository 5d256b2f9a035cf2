"""Every DuckDB connection the product opens, configured in one place.

``CITYRES_DUCKDB_THREADS`` (optional, a positive integer) limits DuckDB's worker threads in
every connection, the dbt subprocess included: a way to run everything single-threaded, e.g.
to show that results do not depend on the summation order of parallel aggregates.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

THREADS_ENV = "CITYRES_DUCKDB_THREADS"
# Files stay readable by DuckDB 1.x clients (R, older CLIs) that economists often use.
STORAGE_COMPATIBILITY = "v1.4.0"


def duckdb_threads() -> int | None:
    """The thread limit asked for by CITYRES_DUCKDB_THREADS, or None for DuckDB's default."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={text!r}: expected a positive integer") from None
    if value < 1:
        raise ValueError(f"{THREADS_ENV}={text!r}: expected a positive integer")
    return value


def duckdb_config(**extra) -> dict:
    """DuckDB configuration for a new connection: the thread limit, then ``extra``."""
    config: dict = {}
    threads = duckdb_threads()
    if threads is not None:
        config["threads"] = threads
    config.update(extra)
    return config


def connect_memory() -> duckdb.DuckDBPyConnection:
    """An in-memory scratch connection (attach files to it read-only)."""
    return duckdb.connect(config=duckdb_config())


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a warehouse file, for the product's own reads."""
    return duckdb.connect(str(path), read_only=True, config=duckdb_config())


def connect_for_write(path: Path) -> duckdb.DuckDBPyConnection:
    """The one writer of a candidate warehouse file."""
    return duckdb.connect(str(path), config=duckdb_config(storage_compatibility_version=STORAGE_COMPATIBILITY))
