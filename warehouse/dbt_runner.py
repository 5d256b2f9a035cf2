"""Run dbt in a process of its own against a given warehouse file (in-process dbt keeps DuckDB locks).

`run_dbt` starts `dbt` when asked. `PreparedDbt` starts a process early that imports dbt and
parses the project (about 4 s) while the caller does other work (a refresh: its ingest), then
runs the command it is given and exits; anything that goes wrong there falls back to `run_dbt`.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from warehouse.connections import connect_memory
from warehouse.paths import DBT_PROJECT_DIR
from warehouse.processes import leave_without_teardown


@dataclass(frozen=True)
class DbtResult:
    success: bool
    command: str
    failures: list[dict]  # unique_id, status, message of every node that did not pass
    warnings: list[dict]
    elapsed_s: float
    log_tail: str


def _duckdb_threads() -> str:
    """DuckDB's thread count as the product's own connections get it (honours CITYRES_DUCKDB_THREADS)."""
    with connect_memory() as con:
        return str(con.execute("select current_setting('threads')").fetchone()[0])


def dbt_env(database: Path, work_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CITYRES_DBT_DATABASE=str(database),
        CITYRES_DBT_DUCKDB_THREADS=_duckdb_threads(),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DBT_TARGET_PATH=str(work_dir / "target"),
        DBT_LOG_PATH=str(work_dir / "logs"),
        DBT_PROFILES_DIR=str(DBT_PROJECT_DIR / "profiles"),
        DBT_PROJECT_DIR=str(DBT_PROJECT_DIR),
    )
    return env


PARSE_STATE = "partial_parse.msgpack"


def _restore_parse_state(cache: Path | None, target: Path) -> None:
    """Give dbt the parse of the previous run: it re-parses only the files (and environment
    variables) that changed since, instead of the whole project (seconds of every refresh)."""
    if cache is not None and cache.is_file() and not (target / PARSE_STATE).exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, target / PARSE_STATE)


def _keep_parse_state(cache: Path | None, target: Path) -> None:
    """Keep this run's parse for the next one (replaced in one rename: never half-written)."""
    state = target / PARSE_STATE
    if cache is None or not state.is_file():
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}.partial")
    shutil.copyfile(state, partial)
    partial.replace(cache)


def _command_env(database: Path, work_dir: Path, vars_: dict | None) -> tuple[dict[str, str], list[str]]:
    """The environment and the extra arguments (``--vars``) of a dbt command for `run_dbt`."""
    vars_ = dict(vars_ or {})
    env = dbt_env(database, work_dir)
    env.pop("CITYRES_VINTAGE", None)  # only the caller's vintage, never one left in the environment
    if "vintage" in vars_:
        env["CITYRES_VINTAGE"] = str(vars_.pop("vintage"))
    return env, (["--vars", json.dumps(vars_, sort_keys=True)] if vars_ else [])


def _result(args: list[str], work_dir: Path, returncode: int, output: str) -> DbtResult:
    """What a dbt command did, from its exit status, run_results.json and its output."""
    results_file = work_dir / "target" / "run_results.json"
    failures, warnings, elapsed = [], [], 0.0
    if results_file.exists():
        results = json.loads(results_file.read_text())
        elapsed = results.get("elapsed_time", 0.0)
        for node in results.get("results", []):
            entry = {"unique_id": node["unique_id"], "status": node["status"],
                     "message": node.get("message"), "failures": node.get("failures"),
                     "compiled_code": node.get("compiled_code")}
            if node["status"] in ("error", "fail", "runtime error"):
                failures.append(entry)
            elif node["status"] == "warn":
                warnings.append(entry)
    return DbtResult(
        success=returncode == 0 and not failures,
        command=" ".join(["dbt", *args]),
        failures=failures,
        warnings=warnings,
        elapsed_s=elapsed,
        log_tail="\n".join(output.strip().splitlines()[-40:]),
    )


def run_dbt(args: list[str], database: Path, work_dir: Path, vars_: dict | None = None,
            parse_cache: Path | None = None) -> DbtResult:
    """Run `dbt <args>` for the cityres project on `database`; parse run_results.json.

    ``vars_["vintage"]`` reaches the models as the environment variable CITYRES_VINTAGE (macro
    ``vintage()``), the other vars as ``--vars``. ``parse_cache``: a file that carries dbt's
    partial parse from one run to the next (dbt checks it against the project and reparses what
    changed).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    env, extra = _command_env(database, work_dir, vars_)
    command = [str(Path(sys.executable).with_name("dbt")), *args, *extra]
    _restore_parse_state(parse_cache, work_dir / "target")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    _keep_parse_state(parse_cache, work_dir / "target")
    return _result(args, work_dir, proc.returncode, (proc.stdout or "") + (proc.stderr or ""))


# ---------------------------------------------------------------- a dbt process prepared ahead of time

PREPARED_LOG = "prepared_dbt_output.log"


def _prepared_main(conn, env: dict[str, str], extra: list[str], output: str) -> None:
    """The prepared process: import dbt, parse, then run the one command it receives."""
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)  # dbt prints its log lines: into a file, as the subprocess's captured output
    os.dup2(fd, 2)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(DBT_PROJECT_DIR)
    from dbt.cli.main import dbtRunner

    parsed = dbtRunner().invoke(["parse", *extra])
    conn.send(parsed.success)
    args = conn.recv()
    if args is None:
        leave_without_teardown()
        return
    manifest = parsed.result if parsed.success else None  # a failed parse: the command parses again
    success = bool(dbtRunner(manifest=manifest).invoke([*args, *extra]).success)
    _close_dbt_database()
    conn.send(success)
    conn.close()
    leave_without_teardown()  # the parent waits for this process before it opens the warehouse


def _close_dbt_database() -> None:
    """Close the warehouse dbt-duckdb keeps open after a command (its own atexit hook would):
    checkpointed and released before the process leaves without the interpreter's teardown."""
    import gc

    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()
    gc.collect()  # the environment holding the DuckDB connection is freed, and the connection closed


class PreparedDbt:
    """A dbt process for one command on `database`, imported and parsed before it is needed.

    The same environment, vars and parse cache as `run_dbt`; `run` waits for the process to
    exit (so the warehouse file is free again) and returns what `run_dbt` would. If the process
    died, or was used already, `run` is `run_dbt`.
    """

    def __init__(self, database: Path, work_dir: Path, vars_: dict | None = None,
                 parse_cache: Path | None = None) -> None:
        self.database, self.work_dir, self.vars_, self.parse_cache = database, work_dir, vars_, parse_cache
        work_dir.mkdir(parents=True, exist_ok=True)
        env, self.extra = _command_env(database, work_dir, vars_)
        _restore_parse_state(parse_cache, work_dir / "target")
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._output = work_dir / PREPARED_LOG
        self._process = context.Process(target=_prepared_main, name="cityres-dbt",
                                        args=(child, env, self.extra, str(self._output)))
        self._process.start()
        child.close()

    def run(self, args: list[str]) -> DbtResult:
        process, self._process = self._process, None
        if process is None:
            return run_dbt(args, self.database, self.work_dir, self.vars_, self.parse_cache)
        try:
            self._conn.recv()  # parsed
            self._conn.send(args)
            success = self._conn.recv()
        except (EOFError, OSError):
            process.join()
            return run_dbt(args, self.database, self.work_dir, self.vars_, self.parse_cache)
        process.join()
        _keep_parse_state(self.parse_cache, self.work_dir / "target")
        output = self._output.read_text(encoding="utf-8", errors="replace") if self._output.exists() else ""
        return _result(args, self.work_dir, 0 if success else 1, output)

    def close(self) -> None:
        """Stop the process if `run` was never called (e.g. nothing to build)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            self._conn.send(None)
        except OSError:
            pass
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
