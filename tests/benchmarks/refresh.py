"""The whole `cityres` process on the bundled sample: a full refresh in a new home (new Prefect
database) and in a home whose Prefect database and dbt parse already exist, a refresh with nothing
new, `cityres query "select 1"` and `cityres --help`.

Every figure is the wall time of a separate `python -m flows.cli ...` process (start-up, imports,
Prefect's server, the flow, shut-down), median of >= 3 runs with each run listed. The per-stage
times of one full refresh come from the flow's own step timings (reports/last_refresh.json) and
from its log (when the flow began and ended, relative to the process start).

Goals: full refresh <= 30 s, no-op refresh <= 2 s, `cityres query "select 1"` <= 0.5 s.

Run alone: python -m tests.benchmarks.refresh (writes tests/benchmarks/results/refresh.json), or
through the driver: python -m tests.benchmarks.run --only refresh.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from statistics import median

NAME = "refresh"
TITLE = "Refresh of the bundled sample, no-op refresh and query: whole processes"
ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
GOALS = {"full_cold": 30.0, "full_warm": 30.0, "noop": 2.0, "query": 0.5}
LOG_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \|")


def add_arguments(parser) -> None:
    parser.add_argument("--refresh-runs", type=int, default=3, help="timed runs of each case (>= 3)")
    parser.add_argument("--refresh-root", default=str(ROOT),
                        help="the cityres source tree to measure (default: this one)")


# ---------------------------------------------------------------- processes

def _env(root: Path) -> dict:
    """A clean environment: no Prefect API or home, no cityres home or fault injection of the
    caller, and Python's default bytecode cache (as in a user's installation, where cityres's own
    modules are compiled once, by the first command, not at every command as with
    PYTHONDONTWRITEBYTECODE set)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "CITYRES_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(root), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DBT_SEND_ANONYMOUS_USAGE_STATS="false", GX_ANALYTICS_ENABLED="false")
    return env


def cityres(root: Path, *args: str, cwd: Path | None = None, log: Path | None = None) -> tuple[float, float, int]:
    """(process start as epoch seconds, wall seconds, exit status) of one `cityres` process."""
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        started, t0 = time.time(), time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd or root, env=_env(root),
                              stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
    finally:
        if log:
            out.close()
    return started, wall, proc.returncode


def new_home(root: Path, base: Path, name: str) -> Path:
    home = base / name
    shutil.rmtree(home, ignore_errors=True)
    code = subprocess.run([sys.executable, "-m", "flows.cli", "sample", "--out", str(home / "landing")],
                          cwd=root, env=_env(root), stdout=subprocess.DEVNULL).returncode
    assert code == 0, "cityres sample failed"
    return home


def reset_for_full_refresh(home: Path) -> None:
    """Everything a full refresh builds goes; the Prefect database and dbt's parse stay (warm)."""
    for name in ("warehouse.duckdb", "candidate.duckdb", "candidate.duckdb.wal", "landing_hashes.json"):
        (home / name).unlink(missing_ok=True)
    for name in ("archive", "reports"):
        shutil.rmtree(home / name, ignore_errors=True)
    for run in (home / "dbt").glob("*"):
        if run.is_dir():
            shutil.rmtree(run, ignore_errors=True)


def _clock(line: str, day_start: float) -> float | None:
    m = LOG_TIME.match(line)
    if not m:
        return None
    h, mi, s, ms = map(int, m.groups())
    return day_start + h * 3600 + mi * 60 + s + ms / 1000


def stages(home: Path, log: Path, started: float, wall: float) -> dict:
    """The stages of one full refresh: before the flow, the flow's steps, after it."""
    summary = json.loads((home / "reports" / "last_refresh.json").read_text(encoding="utf-8"))
    local = dt.datetime.fromtimestamp(started)
    day_start = started - (local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6)
    began = ended = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        at = _clock(line, day_start)
        if at is None:
            continue
        if began is None and "Beginning flow run" in line:
            began = at
        if "Finished in state" in line and "Flow run" in line:
            ended = at
    out = {"until the flow begins (start-up, imports, Prefect server)": round(began - started, 2) if began else None}
    out.update({f"flow: {k}": v for k, v in summary.get("step_seconds", {}).items()})
    if began and ended:
        out["flow: whole"] = round(ended - began, 2)
        out["after the flow (shut-down)"] = round(started + wall - ended, 2)
    return out


# ---------------------------------------------------------------- the section

def run(workdir: Path, args) -> dict:
    root = Path(getattr(args, "refresh_root", ROOT)).resolve()
    n = max(3, int(getattr(args, "refresh_runs", 3)))
    base = Path(workdir) / "refresh"
    base.mkdir(parents=True, exist_ok=True)
    result: dict = {"runs": n, "root": str(root), "cases": {}, "stages": {}}

    cold, warm = [], []
    for i in range(n):
        home = new_home(root, base, f"cold{i}")
        log = base / f"cold{i}.log"
        started, wall, code = cityres(root, "refresh", "--home", str(home), log=log)
        assert code == 0, f"cold refresh {i} exited {code}: see {log}"
        cold.append(wall)
        if i == 0:
            result["stages"]["full_cold"] = stages(home, log, started, wall)
    warm_home = base / "cold0"
    for i in range(n):
        reset_for_full_refresh(warm_home)
        log = base / f"warm{i}.log"
        started, wall, code = cityres(root, "refresh", "--home", str(warm_home), log=log)
        assert code == 0, f"warm refresh {i} exited {code}: see {log}"
        warm.append(wall)
        if i == 0:
            result["stages"]["full_warm"] = stages(warm_home, log, started, wall)
    noop = []
    for _ in range(n):
        _, wall, code = cityres(root, "refresh", "--home", str(warm_home))
        assert code == 0
        noop.append(wall)
        status = json.loads((warm_home / "reports" / "last_refresh.json").read_text(encoding="utf-8"))["status"]
        assert status == "unchanged", f"the no-op refresh said {status}"
    query = [cityres(root, "query", "select 1", "--home", str(warm_home))[1] for _ in range(n)]
    help_ = [cityres(root, "--help")[1] for _ in range(n)]
    for name, runs in (("full_cold", cold), ("full_warm", warm), ("noop", noop), ("query", query),
                       ("help", help_)):
        result["cases"][name] = {"median_s": round(median(runs), 3), "runs_s": [round(x, 3) for x in runs],
                                 "goal_s": GOALS.get(name)}
    return {**_stamp(args), **result}


def _stamp(args) -> dict:
    versions = {"python": platform.python_version()}
    for package in ("prefect", "dbt-core", "dbt-duckdb", "duckdb", "great-expectations"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    command = ["python", "-m", "tests.benchmarks.run", "--only", NAME, "--refresh-runs",
               str(getattr(args, "refresh_runs", 3))]
    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "command": shlex.join(command),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()}",
            "versions": versions, "commit": commit.stdout.strip() or None}


CASE_TEXT = {
    "full_cold": "full refresh, new home (new Prefect database, no dbt parse yet)",
    "full_warm": "full refresh, Prefect database and dbt parse kept (warehouse, archive, reports removed)",
    "noop": "refresh with nothing new",
    "query": '`cityres query "select 1"`',
    "help": "`cityres --help`",
}


def lines(result: dict) -> list[str]:
    out = [("The sample yearbooks (`cityres sample`: 55 files, 115 MB of firm registrations) loaded by "
            "`cityres refresh --home H`, each case a separate process timed from its start to its exit "
            f"(median of {result['runs']} runs, each run listed). Python caches compiled bytecode as it "
            "does by default (PYTHONDONTWRITEBYTECODE, if set by the caller, is removed): the first "
            "command after installation compiles cityres's modules, the later ones reuse them."), "",
           "| case | median | runs | goal |", "|---|---:|---|---|"]
    for name, case in result["cases"].items():
        goal = case.get("goal_s")
        if goal is None:
            verdict = ""
        elif case["median_s"] <= goal:
            verdict = f"<= {goal:g} s: **met**"
        else:
            verdict = f"<= {goal:g} s: **missed** ({case['median_s'] / goal:.2f}x the goal)"
        runs = ", ".join(f"{x:.2f}" for x in case["runs_s"])
        out.append(f"| {CASE_TEXT.get(name, name)} | {case['median_s']:.2f} s | {runs} | {verdict} |")
    for name, stage in result.get("stages", {}).items():
        out += ["", f"Stages of the first run of the {CASE_TEXT.get(name, name)} (seconds: the flow's own "
                "step timings, and from its log when it began and ended; `ingest` includes the check "
                "for new files and the candidate's preparation):", "",
                "| stage | s |", "|---|---:|"]
        out += [f"| {k} | {'' if v is None else f'{v:.2f}'} |" for k, v in stage.items()]
    out += ["", ("How the stages overlap: a dbt process imports dbt and parses the project while the files "
                 "are ingested; worker processes (one per core) import Great Expectations and the "
                 "estimation stack while dbt runs, then run the audit, the studies and the studies' "
                 "figures side by side (`flows/workers.py`), so `estimate` is the wall time of the audit "
                 "and the studies together and the audit's own line is not on the path."),
            "", ("The machine is shared (2 cores) with other work: a refresh is CPU-bound (dbt, Great "
                 "Expectations, the studies, the Prefect server; about 85 CPU-seconds in all, so about "
                 "43 s of wall time on 2 cores even with every stage overlapped), so other load on the "
                 "machine lengthens it directly.")]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cityres-bench-refresh-") as tmp:
        result = run(Path(tmp), args)
    result["command"] = shlex.join(["python", "-m", "tests.benchmarks.refresh", "--refresh-runs",
                                    str(args.refresh_runs)])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\n".join(lines(result)))


if __name__ == "__main__":
    main()
