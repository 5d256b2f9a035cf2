"""What every benchmark section shares: the stamp of a result (date, command, machine, versions),
subprocess workers with their peak memory, medians with each run, agreement checks, exponents."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
# pyfixest's default demeaning tolerance: a peer iterating to it cannot be asked for more
CHECK_RTOL = 1e-6
VERSIONED = ("duckdb", "pyfixest", "linearmodels", "statsmodels", "duckreg", "numpy", "pandas", "scipy", "pyarrow")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()}"


def commit() -> str | None:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or None


def stamp(name: str, args, options: tuple[str, ...] = ()) -> dict:
    """Date, rerun command (this section alone, with the options it was run with), machine, versions."""
    argv = ["python", "-m", "tests.benchmarks.run", "--only", name]
    for opt in options:
        value = getattr(args, opt.lstrip("-").replace("-", "_"))
        argv += [opt, ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)]
    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "command": shlex.join(argv),
            "machine": machine(), "versions": versions(), "commit": commit()}


def int_list(text: str) -> list[int]:
    """'1e6,3_000_000' -> [1000000, 3000000] (sizes on the command line)."""
    return [int(float(x)) for x in text.replace("_", "").split(",") if x.strip()]


def median(runs: list[float]) -> float:
    return float(np.median(runs))


def runs_text(runs: list[float], fmt: str = "{:.2f}") -> str:
    return ", ".join(fmt.format(x) for x in runs)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def run_module(module: str, *argv: str, timeout: float | None = None) -> dict:
    """Run ``python -m tests.benchmarks.<module> ...`` and parse the JSON on its last line.

    A fresh process per side, which reports its own peak RSS (VmHWM, see ``sides.peak_rss``).
    """
    cmd = [sys.executable, "-m", f"tests.benchmarks.{module}", *argv]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after the time limit of {timeout:.0f} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit status {out.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def agreement(side: dict, ours: dict, rtol: float = CHECK_RTOL) -> dict:
    """Max coefficient difference (relative to max(1, |b|)) and max relative SE difference to cityres.

    SEs are compared in the peer's own small-sample convention: ``se_scale`` "cityres" (the same
    factor as cityres: pyfixest) or "raw" (no factor: cityres's G/(G-1)(N-1)/(N-K) is divided out).
    A side without SEs (``se`` None) is checked on its coefficients only and says so.
    """
    if "error" in side:
        return {"agrees": False, "coef_diff": None, "se_diff": None, "reason": side["error"]}
    if side["nobs"] != ours["nobs"]:
        return {"agrees": False, "coef_diff": None, "se_diff": None,
                "reason": f"{side['nobs']:,} observations used, cityres {ours['nobs']:,}"}
    b, b0 = np.asarray(side["coef"]), np.asarray(ours["coef"])
    coef_diff = float(np.max(np.abs(b - b0) / np.maximum(1.0, np.abs(b0))))
    se_diff = None
    if side.get("se") is not None:
        se0 = np.asarray(ours["se"])
        if side.get("se_scale") == "raw":
            se0 = se0 / np.sqrt(ours["ssc_factor"])
        se_diff = float(np.max(np.abs(np.asarray(side["se"]) / se0 - 1)))
    agrees = coef_diff <= rtol and (se_diff is None or se_diff <= rtol)
    reason = None if agrees else (f"coefficients differ by {coef_diff:.1e}" if coef_diff > rtol
                                  else f"SEs differ by {se_diff:.1e}")
    return {"agrees": agrees, "coef_diff": coef_diff, "se_diff": se_diff, "reason": reason}


def exponent(points: list[list[float]]) -> float | None:
    """Slope of log(time) on log(size) by least squares: time ~ size^slope."""
    pts = [(x, t) for x, t in points if x > 0 and t and t > 0]
    if len(pts) < 2:
        return None
    x, t = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, t, 1)[0])


def panel_file(workdir: Path, case: str, rows: int, balanced: bool = False) -> Path:
    """The Parquet panel of a case, generated once per work directory in a process of its own."""
    path = workdir / f"{case}_{rows}{'_balanced' if balanced else ''}.parquet"
    if not path.exists():
        out = run_module("sides", "--generate", str(path), "--case", case, "--rows", str(rows),
                         *(["--balanced"] if balanced else []))
        if "error" in out:
            raise RuntimeError(f"generating {path.name}: {out['error']}")
    return path


def fit_side(side: str, path: Path, case: str, timeout: float | None = None) -> dict:
    return run_module("sides", "--side", side, "--data", str(path), "--case", case, timeout=timeout)


def compare_sides(path: Path, case: str, sides: list[str], repeats: int, timeout: float | None = None,
                  reference: dict | None = None) -> dict:
    """Each side once untimed and checked against cityres, then ``repeats`` timed runs of each agreeing side.

    Returns {side: {"agrees", "coef_diff", "se_diff", "reason", "runs_s", "wall_s" (median),
    "peak_bytes" (max over the timed runs), ...the last run's figures}}; ``reference`` is a cityres
    check run already made on the same file (the first side must then not be "ours").
    """
    ours = reference or fit_side("ours", path, case, timeout)
    if "error" in ours:
        raise RuntimeError(f"cityres failed on {path.name}: {ours['error']}")
    out = {}
    for side in sides:
        check = ours if side == "ours" else fit_side(side, path, case, timeout)
        ag = ({"agrees": True, "coef_diff": 0.0, "se_diff": 0.0, "reason": None} if side == "ours"
              else agreement(check, ours))
        if not ag["agrees"]:  # reported with its reason and the untimed run's wall time, never timed
            out[side] = {**{k: v for k, v in check.items() if k not in ("coef", "se")}, **ag,
                         "runs_s": [], "check_wall_s": check.get("wall_s")}
            continue
        runs = []
        for _ in range(repeats):
            r = fit_side(side, path, case, timeout)
            again = agreement(r, ours) if side != "ours" else ag
            if not again["agrees"]:  # a timed run that changed its answer is a disagreement too
                ag = again
                break
            runs.append(r)
        if not ag["agrees"]:
            out[side] = {"side": side, **ag, "runs_s": [], "check_wall_s": check.get("wall_s")}
            continue
        last = {k: v for k, v in runs[-1].items() if k not in ("coef", "se")}
        out[side] = {**last, **ag, "runs_s": [r["wall_s"] for r in runs],
                     "wall_s": median([r["wall_s"] for r in runs]),
                     "peak_bytes": max(r["peak_bytes"] for r in runs), "check_wall_s": check.get("wall_s"),
                     "coef": runs[-1]["coef"], "se": runs[-1]["se"]}
    return out
