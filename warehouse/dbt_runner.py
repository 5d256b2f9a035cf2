"""Run dbt as a subprocess against a given warehouse file (in-process dbt keeps DuckDB locks)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from warehouse.connections import connect_memory
from warehouse.paths import DBT_PROJECT_DIR


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


def run_dbt(args: list[str], database: Path, work_dir: Path, vars_: dict | None = None,
            parse_cache: Path | None = None) -> DbtResult:
    """Run `dbt <args>` for the cityres project on `database`; parse run_results.json.

    ``vars_["vintage"]`` reaches the models as the environment variable CITYRES_VINTAGE (macro
    ``vintage()``), the other vars as ``--vars``. ``parse_cache``: a file that carries dbt's
    partial parse from one run to the next (dbt checks it against the project and reparses what
    changed).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    vars_ = dict(vars_ or {})
    env = dbt_env(database, work_dir)
    env.pop("CITYRES_VINTAGE", None)  # only the caller's vintage, never one left in the environment
    if "vintage" in vars_:
        env["CITYRES_VINTAGE"] = str(vars_.pop("vintage"))
    command = [str(Path(sys.executable).with_name("dbt")), *args]
    if vars_:
        command += ["--vars", json.dumps(vars_, sort_keys=True)]
    _restore_parse_state(parse_cache, work_dir / "target")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    _keep_parse_state(parse_cache, work_dir / "target")
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
    output = (proc.stdout or "") + (proc.stderr or "")
    return DbtResult(
        success=proc.returncode == 0 and not failures,
        command=" ".join(["dbt", *args]),
        failures=failures,
        warnings=warnings,
        elapsed_s=elapsed,
        log_tail="\n".join(output.strip().splitlines()[-40:]),
    )
