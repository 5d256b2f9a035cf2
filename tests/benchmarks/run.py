"""`make bench`: cityres against pyfixest, side by side in one run; writes BENCHMARKS.md.

1. Placebo: 1000 draws on the sample panel (the published analysis_panel of the
   sample yearbooks; built once into a temporary home when $CITYRES_HOME has
   none) - one batched SQL query vs a loop of pyfixest refits on the same
   assignments (pyfixest defaults).  Goal: >= 100x faster.
2. TWFE with CRV1 on a 9-million-row unbalanced panel (1M units x 10 periods,
   10% of rows missing, 5 controls), from a Parquet file.  Each side runs in
   its own subprocess; wall time includes reading the file (DuckDB reads the
   Parquet file itself, pyfixest needs pandas.read_parquet first) and the peak
   memory is the subprocess's maximum resident set size.  Goal: time and
   memory <= 0.5x pyfixest's.
3. Three fixed effects, 1M rows: a well-connected unit x year x sector panel and the
   AKM-like worker-firm-year panel (sparsely connected; plain alternating projections
   crawl), CRV1 by unit / worker, each from a Parquet file, each side in its own
   subprocess as in 2.  Peers: pyfixest's default (MAP, rust backend, tolerance 1e-6),
   its numba MAP backend and its ``within`` (preconditioned LSMR) backend.  Every side
   is first run once untimed and its coefficients and SEs are checked against cityres's
   (relative 1e-6, pyfixest's default demeaning tolerance); only sides that agree are
   then timed.  The same designs at 10M rows run with the 9M case (not with --skip-large).

Usage: python -m tests.benchmarks.run [--draws 1000] [--skip-large] [--skip-multife] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FORMULA = "res ~ did + eocden + traff + gove + inv + salary | city_code + year"
BIG_FML = "y ~ did + x1 + x2 + x3 + x4 + x5 | unit + year"
# model and cluster of each case a worker can run: the 9M TWFE panel and the 3-FE designs
CASES = {
    "twfe": (BIG_FML, "unit"),
    "fe3": ("y ~ x1 + x2 | unit + year + sector", "unit"),
    "akm": ("y ~ x1 + x2 | worker + firm + year", "worker"),
}
MULTI_FE_CHECK_RTOL = 1e-6  # pyfixest's default demeaning tolerance


# ------------------------------------------------------------------ placebo
def sample_warehouse(workdir: Path) -> Path:
    home = os.environ.get("CITYRES_HOME")
    if home and (Path(home) / "warehouse.duckdb").exists():
        return Path(home) / "warehouse.duckdb"
    from flows.refresh import refresh
    from warehouse.sample import write_sample

    root = workdir / "home"
    write_sample(root / "landing")
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
    refresh(home_dir=str(root))
    return root / "warehouse.duckdb"


def bench_placebo(db: Path, draws: int, repeats: int = 3) -> dict:
    import duckdb
    import pyfixest as pf

    from estimation.engine.placebo import run_placebo

    con = duckdb.connect(str(db), read_only=True)
    run_placebo(con, "main.analysis_panel", FORMULA, "did", "city_code", "year", draws=20, seed=1)  # warm-up (imports, caches)
    ours = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run_placebo(con, "main.analysis_panel", FORMULA, "did", "city_code", "year", draws=draws,
                          seed=20240601)
        ours.append(time.perf_counter() - t0)
    df = con.execute("SELECT * FROM main.analysis_panel").df()
    con.close()

    # the peer: one pyfixest refit per draw on the same pseudo-treatment
    fml = FORMULA.replace("did", "pdid")
    groups = dict(tuple(res.assignments.groupby("draw")))
    pf_coef, pf_se = [], []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in range(1, draws + 1):
            a = df["city_code"].map(groups[d].set_index("unit")["adoption"])
            pdid = ((df["year"] >= a) & a.notna()).astype(float)
            m = pf.feols(fml, df.assign(pdid=pdid), vcov={"CRV1": "city_code"})
            pf_coef.append(m.coef()["pdid"])
            pf_se.append(m.se()["pdid"])
    peer = time.perf_counter() - t0
    got = res.draws.set_index("draw").loc[range(1, draws + 1)]
    return {
        "rows": len(df), "draws": draws, "ours_s": float(np.median(ours)), "ours_runs_s": ours,
        "peer_s": peer, "speedup": peer / float(np.median(ours)), "method": res.method,
        "max_abs_coef_diff": float(np.max(np.abs(got["coef"].to_numpy() - np.array(pf_coef)))),
        "max_rel_se_diff": float(np.max(np.abs(got["se"].to_numpy() / np.array(pf_se) - 1))),
        "ri_p_value": res.ri_p_value,
    }


# -------------------------------------------------------------- 9M-row TWFE
def pyfixest_demeaner(side: str):
    """The pyfixest demeaner of a side: None (pyfixest's default, rust MAP at 1e-6), numba MAP, within LSMR."""
    import pyfixest as pf

    return {"pyfixest": None, "pyfixest-numba": pf.MapDemeaner(backend="numba"),
            "pyfixest-within": pf.LsmrDemeaner(backend="within")}[side]


def worker(side: str, path: str, case: str = "twfe") -> None:
    """Run one side in this process and print its figures as JSON (last line)."""
    fml, cluster = CASES[case]
    t0 = time.perf_counter()
    if side.startswith("ours"):
        import duckdb

        from estimation import feols

        con = duckdb.connect()
        if side == "ours-2gb":  # DuckDB spills to its temp directory beyond this
            con.execute("SET memory_limit = '2GB'")
        literal = "'" + path.replace("'", "''") + "'"
        r = feols(con, f"read_parquet({literal})", fml, vcov={"CRV1": cluster})
        coef, se, nobs = r.coef.tolist(), r.se.tolist(), r.nobs
        extra = {"method": r.demean_method, "iterations": r.demean_iterations}
    else:
        import pandas as pd
        import pyfixest as pf

        df = pd.read_parquet(path)
        t_load = time.perf_counter() - t0
        demeaner = pyfixest_demeaner(side)
        kw = {} if demeaner is None else {"demeaner": demeaner}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = pf.feols(fml, df, vcov={"CRV1": cluster}, **kw)
        except ValueError as exc:  # pyfixest's "Demeaning failed after N iterations": report it, do not fail the run
            print(json.dumps({"side": side, "wall_s": time.perf_counter() - t0, "error": f"{type(exc).__name__}: "
                              f"{exc}", "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
            return
        coef, se, nobs, extra = m.coef().tolist(), m.se().tolist(), int(m._N), {"load_s": t_load}
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"side": side, "wall_s": wall, "peak_bytes": peak, "coef": coef, "se": se,
                      "nobs": nobs, **extra}))


def run_worker(side: str, path: Path, case: str = "twfe") -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.run", "--worker", side, "--data", str(path),
                          "--case", case], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def generate(path: str, case: str = "twfe", rows: int = 1_000_000) -> None:
    from tests.panels import akm_panel, did_panel, multi_fe_panel

    if case == "twfe":
        did_panel(1_000_000, 10, 42, n_controls=5, drop=0.1, cohorts=(2014, 2016, 2018)).to_parquet(path)
    elif case == "fe3":  # units x 8 years, 200 sectors and 50 sources drawn per row
        multi_fe_panel(42, n_units=rows // 8, n_periods=8, n_sectors=200, n_sources=50).to_parquet(path)
    else:  # workers x 10 years, firms in regions of 10 (the AKM-like hard design)
        akm_panel(rows // 10, rows // 100, 10, seed=42).to_parquet(path)


def bench_large(workdir: Path) -> dict:
    path = workdir / "panel_9m.parquet"
    if not path.exists():
        # in its own process: on Linux a child's ru_maxrss starts at the high-water
        # mark of the process it was forked from, so the parent must stay small
        subprocess.run([sys.executable, "-m", "tests.benchmarks.run", "--generate", str(path)],
                       cwd=ROOT, check=True)
    peer = run_worker("pyfixest", path)
    ours = run_worker("ours", path)
    capped = run_worker("ours-2gb", path)
    return {
        "rows": ours["nobs"], "ours": ours, "peer": peer, "capped": capped,
        "capped_time_ratio": capped["wall_s"] / peer["wall_s"],
        "capped_memory_ratio": capped["peak_bytes"] / peer["peak_bytes"],
        "time_ratio": ours["wall_s"] / peer["wall_s"],
        "memory_ratio": ours["peak_bytes"] / peer["peak_bytes"],
        "max_abs_coef_diff": float(np.max(np.abs(np.subtract(ours["coef"], peer["coef"])))),
        "max_rel_se_diff": float(np.max(np.abs(np.divide(ours["se"], peer["se"]) - 1))),
    }


# ------------------------------------------------------------ 3 fixed effects
MULTI_FE_SIDES = ["ours", "pyfixest", "pyfixest-numba", "pyfixest-within"]


def agreement(side: dict, ours: dict) -> dict:
    """Max |coef diff| (relative to max(1, |b|)) and max relative SE diff of a side vs cityres."""
    if "error" in side:
        return {"agrees": False, "coef_diff": None, "se_diff": None}
    b, b0 = np.asarray(side["coef"]), np.asarray(ours["coef"])
    coef_diff = float(np.max(np.abs(b - b0) / np.maximum(1.0, np.abs(b0))))
    se_diff = float(np.max(np.abs(np.asarray(side["se"]) / np.asarray(ours["se"]) - 1)))
    agrees = side["nobs"] == ours["nobs"] and max(coef_diff, se_diff) <= MULTI_FE_CHECK_RTOL
    return {"agrees": agrees, "coef_diff": coef_diff, "se_diff": se_diff}


def bench_multi_fe(workdir: Path, rows: int) -> dict:
    """Each design: generate, check every side against cityres (untimed run), then time the agreeing sides."""
    out = {}
    for case in ("fe3", "akm"):
        path = workdir / f"{case}_{rows}.parquet"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "tests.benchmarks.run", "--generate", str(path), "--case", case,
                            "--rows", str(rows)], cwd=ROOT, check=True)
        check = {side: run_worker(side, path, case) for side in MULTI_FE_SIDES}
        ours = check["ours"]
        sides = {}
        for side in MULTI_FE_SIDES:
            ag = agreement(check[side], ours) if side != "ours" else {"agrees": True, "coef_diff": 0.0,
                                                                      "se_diff": 0.0}
            timed = run_worker(side, path, case) if ag["agrees"] else check[side]
            if ag["agrees"] and side != "ours":  # the timed run must give the same answer too
                ag = agreement(timed, ours)
            sides[side] = {**timed, **ag, "checked_wall_s": check[side]["wall_s"]}
        out[case] = {"rows": ours["nobs"], "formula": CASES[case][0], "cluster": CASES[case][1], "sides": sides}
        print(json.dumps({case: {k: {kk: vv for kk, vv in v.items() if kk not in ("coef", "se")}
                                 for k, v in sides.items()}}), flush=True)
    return out


# ------------------------------------------------------------------ report
def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import duckdb
    import pyfixest

    return (f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"duckdb {duckdb.__version__}, pyfixest {pyfixest.__version__}")


# ------------------------------------------------------------------ placebo, staggered adoption
def staggered_panel(seed: int = 3):
    """50 states x 11 years (550 rows), five adoption cohorts 2003-2007 and never-treated states,
    one control, five regions (strata)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cohort = rng.choice([0, 2003, 2004, 2005, 2006, 2007], size=50, p=[0.3, 0.14, 0.14, 0.14, 0.14, 0.14])
    rows = []
    for s in range(50):
        a = rng.normal()
        for t in range(2000, 2011):
            d = int(cohort[s] > 0 and t >= cohort[s])
            x = rng.normal()
            rows.append((s, s % 5, t, int(cohort[s]), d, x, a + 0.1 * (t - 2000) + 0.5 * d + 0.3 * x + rng.normal()))
    return pd.DataFrame(rows, columns=["state", "region", "year", "g", "did", "x", "y"])


def bench_staggered_placebo(workdir: Path, draws: int, repeats: int = 3) -> dict:
    """run_placebo (adoption dates permuted across states) against a pyfixest refit per draw on the
    same assignments: without and with a control, and permuting within regions; then the whole
    `cityres estimate placebo` process on the panel as a CSV file."""
    import duckdb
    import pyfixest as pf

    from estimation.engine.placebo import run_placebo

    df = staggered_panel()
    cases = {"no controls": ("y ~ did | state + year", None), "one control": ("y ~ did + x | state + year", None),
             "one control, strata": ("y ~ did + x | state + year", "region")}
    out = {"rows": len(df), "draws": draws, "cohorts": int(df.loc[df.g > 0, "g"].nunique()), "cases": {}}
    con = duckdb.connect()
    con.register("panel", df)
    for name, (fml, strata) in cases.items():
        run_placebo(con, "panel", fml, "did", "state", "year", draws=20, seed=1, strata=strata)  # warm-up
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = run_placebo(con, "panel", fml, "did", "state", "year", draws=draws, seed=20240601, strata=strata)
            runs.append(time.perf_counter() - t0)
        groups = dict(tuple(res.assignments.groupby("draw")))
        coefs, ses = [], []
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for d in range(1, draws + 1):
                a = df["state"].map(groups[d].set_index("unit")["adoption"])
                pdid = ((df["year"] >= a) & a.notna() & (a > 0)).astype(float)
                m = pf.feols(fml.replace("did", "pdid"), df.assign(pdid=pdid), vcov={"CRV1": "state"})
                coefs.append(m.coef()["pdid"])
                ses.append(m.se()["pdid"])
        peer = time.perf_counter() - t0
        got = res.draws.set_index("draw").loc[range(1, draws + 1)]
        ours = sorted(runs)[len(runs) // 2]
        out["cases"][name] = {
            "method": res.method, "ours_s": ours, "ours_runs_s": runs, "peer_s": peer, "speedup": peer / ours,
            "max_abs_coef_diff": float(np.max(np.abs(got["coef"].to_numpy() - np.array(coefs)))),
            "max_rel_se_diff": float(np.max(np.abs(got["se"].to_numpy() / np.array(ses) - 1))),
        }
    con.close()
    path = workdir / "staggered_panel.csv"
    df.to_csv(path, index=False)
    cli = [str(Path(sys.executable).with_name("cityres")), "estimate", "placebo", "--data", str(path),
           "--formula", "y ~ did + x | state + year", "--treatment", "did", "--unit", "state", "--time", "year",
           "--draws", str(draws), "--format", "json"]
    walls = []
    for _ in range(repeats + 1):  # the first run warms the file cache; not counted
        t0 = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    walls = walls[1:]
    out["cli_wall_s"], out["cli_runs_s"] = sorted(walls)[len(walls) // 2], walls
    return out


def staggered_lines(st: dict) -> list[str]:
    lines = [f"## 4. Placebo on a staggered panel: {st['draws']} draws, {st['rows']} rows, {st['cohorts']} cohorts", "",
             ("50 states x 11 years, adoption dates permuted across states (never-treated states included), "
              "state and year FE, CRV1 by state; the peer refits pyfixest `feols` on each of the same "
              "assignments."), "",
             "| case | cityres `run_placebo` | path | pyfixest loop | speed-up | goal >= 200x | agreement (coef, rel. SE) |",
             "|---|---:|---|---:|---:|---|---|"]
    for name, c in st["cases"].items():
        lines.append(f"| {name} | {c['ours_s']:.3f} s (runs " + ", ".join(f"{x:.3f}" for x in c["ours_runs_s"])
                     + f") | `{c['method']}` | {c['peer_s']:.1f} s | {c['speedup']:.0f}x | "
                     f"{verdict(c['speedup'] >= 200)} | {c['max_abs_coef_diff']:.1e}, {c['max_rel_se_diff']:.1e} |")
    lines += ["", (f"The whole command `cityres estimate placebo --data staggered_panel.csv ... --draws {st['draws']}` "
                   f"(process start, imports, reading the CSV, the batch, JSON out): median {st['cli_wall_s']:.2f} s "
                   f"wall of " + ", ".join(f"{x:.2f}" for x in st["cli_runs_s"])
                   + f" (goal <= 1.5 s: {verdict(st['cli_wall_s'] <= 1.5)})."), ""]
    return lines


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


SIDE_LABELS = {
    "ours": "cityres `feols` (DuckDB defaults)",
    "pyfixest": "pyfixest `feols` default (MAP, rust, tol 1e-6)",
    "pyfixest-numba": "pyfixest, `MapDemeaner(backend=\"numba\")`",
    "pyfixest-within": "pyfixest, `LsmrDemeaner(backend=\"within\")`",
}
DESIGNS = {
    "fe3": "unit x year x sector (units x 8 years, 200 sectors and 50 sources drawn per row; well connected)",
    "akm": "AKM-like worker x firm x year (workers x 10 years, firms in regions of 10, workers move with "
           "probability 0.1 a year, to another region with 0.02 of that: a sparsely connected worker-firm graph)",
}


def multi_fe_lines(title: str, mf: dict) -> list[str]:
    lines = [title, "",
             ("Each side in its own subprocess (wall time includes reading the Parquet file; memory = peak RSS). "
              "Each side was first run untimed and checked against cityres (coefficients and SEs within a relative "
              f"{MULTI_FE_CHECK_RTOL:g}, pyfixest's default demeaning tolerance); only agreeing sides were timed."),
             ""]
    for case, res in mf.items():
        ours = res["sides"]["ours"]
        lines += [(f"**{DESIGNS[case]}**: {res['rows']:,} rows, `{res['formula']}`, CRV1 by {res['cluster']}; "
                   f"cityres path `{ours.get('method')}`, {ours.get('iterations')} iterations."), "",
                  "| | wall time | peak memory | max coef diff | max rel. SE diff | time / cityres |",
                  "|---|---:|---:|---:|---:|---:|"]
        for side, r in res["sides"].items():
            if "error" in r:
                lines.append(f"| {SIDE_LABELS[side]} | failed after {r['wall_s']:.1f} s: {r['error'][:80]} | | | | |")
                continue
            diffs = ("" if side == "ours" else f"{r['coef_diff']:.1e}", "" if side == "ours" else f"{r['se_diff']:.1e}")
            ratio = f"{r['wall_s'] / ours['wall_s']:.2f}" if r["agrees"] else "not timed: differs"
            lines.append(f"| {SIDE_LABELS[side]} | {r['wall_s']:.1f} s | {r['peak_bytes'] / 2**30:.2f} GiB | "
                         f"{diffs[0]} | {diffs[1]} | {ratio} |")
        lines.append("")
    return lines


def report(pl: dict | None, big: dict | None, multi: dict | None = None, staggered: dict | None = None) -> str:
    lines = ["# Benchmarks", "",
             (f"Measured by `make bench` (`python -m tests.benchmarks.run`) on {dt.date.today().isoformat()}; "
             f"machine: {machine()}. Both sides run in the same invocation."), ""]
    if pl:
        lines += [
            f"## 1. Placebo / randomisation inference: {pl['draws']} draws on the sample panel", "",
            (f"Sample panel: `main.analysis_panel` of the sample yearbooks ({pl['rows']:,} rows, 5 controls, "
            f"city and year FE, CRV1 by city). Same {pl['draws']} assignments on both sides."), "",
            "| | time | |", "|---|---:|---|",
            f"| cityres `run_placebo` (one SQL batch, path `{pl['method']}`) | {pl['ours_s']:.3f} s | "
            f"median of {len(pl['ours_runs_s'])} runs: " + ", ".join(f"{x:.3f}" for x in pl["ours_runs_s"]) + " |",
            f"| pyfixest `feols` loop (defaults) | {pl['peer_s']:.1f} s | |",
            f"| **speed-up** | **{pl['speedup']:.0f}x** | goal >= 100x: {verdict(pl['speedup'] >= 100)} |", "",
            (f"Agreement (pyfixest at its default demeaning tolerance 1e-6): max |coef diff| = "
            f"{pl['max_abs_coef_diff']:.1e}, max relative SE diff = {pl['max_rel_se_diff']:.1e}. "
            "The unit tests check 1e-8 / 1e-6 against pyfixest at tolerance 1e-12."), ""]
    if big:
        o, p = big["ours"], big["peer"]
        lines += [
            "## 2. TWFE with CRV1 on a 9-million-row unbalanced panel", "",
            (f"{big['rows']:,} rows (1,000,000 units x 10 years, 10% of rows deleted at random), 5 controls + "
            "a staggered DID, unit and year FE, CRV1 by unit, read from one Parquet file. Each side in its own "
            "subprocess; wall time includes reading the file; memory = the subprocess's peak RSS (the panel "
            "is generated in a third process, so that no side inherits its memory high-water mark)."), "",
            "| | wall time | peak memory |", "|---|---:|---:|",
            f"| cityres `feols` (DuckDB defaults, `{o['method']}`) | {o['wall_s']:.1f} s | {o['peak_bytes'] / 2**30:.2f} GiB |",
            (f"| cityres `feols`, DuckDB `SET memory_limit = '2GB'` | {big['capped']['wall_s']:.1f} s | "
            f"{big['capped']['peak_bytes'] / 2**30:.2f} GiB |"),
            (f"| pyfixest `feols` (of which `read_parquet` {p['load_s']:.1f} s) | {p['wall_s']:.1f} s | "
            f"{p['peak_bytes'] / 2**30:.2f} GiB |"),
            (f"| **ratio cityres / pyfixest** | **{big['time_ratio']:.2f}** (goal <= 0.5: "
            f"{verdict(big['time_ratio'] <= 0.5)}) | **{big['memory_ratio']:.2f}** (goal <= 0.5: "
            f"{verdict(big['memory_ratio'] <= 0.5)}) |"),
            (f"| ratio with `memory_limit = '2GB'` | {big['capped_time_ratio']:.2f} "
            f"({verdict(big['capped_time_ratio'] <= 0.5)}) | {big['capped_memory_ratio']:.2f} "
            f"({verdict(big['capped_memory_ratio'] <= 0.5)}) |"), "",
            ("DuckDB's default lets its buffer pool grow to 80% of RAM before spilling, so its peak RSS "
            "depends on the setting; with a 2 GB limit it spills temporary tables to disk instead."), "",
            (f"Agreement: max |coef diff| = {big['max_abs_coef_diff']:.1e}, max relative SE diff = "
            f"{big['max_rel_se_diff']:.1e}."), ""]
    for rows, mf in (multi or {}).items():
        lines += multi_fe_lines(f"## 3. Three fixed effects, {rows // 1_000_000}M rows", mf)
    if staggered:
        lines += staggered_lines(staggered)
    lines += ["The machine is shared (2 cores); timings vary by roughly +-15% between runs.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["ours", "ours-2gb", "pyfixest", "pyfixest-numba", "pyfixest-within"])
    ap.add_argument("--data")
    ap.add_argument("--case", choices=sorted(CASES), default="twfe")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of a generated 3-FE panel")
    ap.add_argument("--generate", metavar="PATH", help="write the --case panel to PATH and exit")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--skip-large", action="store_true", help="skip the 9M TWFE and the 10M 3-FE runs")
    ap.add_argument("--skip-placebo", action="store_true")
    ap.add_argument("--skip-multife", action="store_true", help="skip the 3-FE runs")
    ap.add_argument("--skip-staggered", action="store_true", help="skip the staggered-panel placebo")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, args.case, args.rows)
        return
    if args.worker:
        worker(args.worker, args.data, args.case)
        return
    with tempfile.TemporaryDirectory(prefix="cityres-bench-") as tmp:
        work = Path(tmp)
        pl = None if args.skip_placebo else bench_placebo(sample_warehouse(work), args.draws)
        if pl:
            print(json.dumps(pl), flush=True)
        big = None if args.skip_large else bench_large(work)
        if big:
            print(json.dumps({k: v for k, v in big.items() if k not in ("ours", "peer", "capped")}), flush=True)
        sizes = [] if args.skip_multife else [1_000_000] + ([] if args.skip_large else [10_000_000])
        multi = {rows: bench_multi_fe(work, rows) for rows in sizes}
        staggered = None if args.skip_staggered else bench_staggered_placebo(work, args.draws)
    text = report(pl, big, multi, staggered)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
