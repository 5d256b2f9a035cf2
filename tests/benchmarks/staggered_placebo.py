"""Placebo on a staggered panel: adoption dates permuted across states (never-treated states
included), state and year FE, CRV1 by state - without and with a control, and permuting within
regions (strata) - against a pyfixest refit per draw on the same assignments (goal >= 200x); then
the whole `cityres estimate placebo` command on the panel as a CSV file (goal <= 1.5 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.benchmarks.common import median, runs_text, stamp, verdict
from tests.benchmarks.placebo import compare_loop, time_ours

NAME = "staggered_placebo"
TITLE = "Placebo on a staggered panel"
GOAL, CLI_GOAL_S = 200, 1.5
CASES = {"no controls": ("y ~ did | state + year", None), "one control": ("y ~ did + x | state + year", None),
         "one control, strata": ("y ~ did + x | state + year", "region")}


def add_arguments(parser) -> None:
    parser.add_argument("--staggered-placebo-draws", type=int, default=1000)
    parser.add_argument("--staggered-placebo-repeats", type=int, default=3, help="timed runs of each side")


def staggered_panel(n_states: int = 50, seed: int = 3):
    """n_states x 11 years, five adoption cohorts 2003-2007 and never-treated states, one control,
    five regions (strata).  50 states: 550 rows."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cohort = rng.choice([0, 2003, 2004, 2005, 2006, 2007], size=n_states, p=[0.3, 0.14, 0.14, 0.14, 0.14, 0.14])
    rows = []
    for s in range(n_states):
        a = rng.normal()
        for t in range(2000, 2011):
            d = int(cohort[s] > 0 and t >= cohort[s])
            x = rng.normal()
            rows.append((s, s % 5, t, int(cohort[s]), d, x, a + 0.1 * (t - 2000) + 0.5 * d + 0.3 * x + rng.normal()))
    return pd.DataFrame(rows, columns=["state", "region", "year", "g", "did", "x", "y"])


def measure_case(df, fml: str, strata: str | None, draws: int, repeats: int) -> dict:
    import duckdb

    con = duckdb.connect()
    con.register("panel", df)
    runs, res = time_ours(con, "panel", fml, "did", "state", "year", draws, repeats, strata=strata)
    con.close()
    peer = compare_loop(res, df, fml, "did", "state", "year", draws, repeats)
    ours = median(runs)
    return {"method": res.method, "ours_s": ours, "ours_runs_s": runs, **peer,
            "speedup": peer["peer_s"] / ours if peer["agrees"] else None}


def cli_walls(workdir: Path, df, draws: int, repeats: int) -> list[float]:
    """Wall times of the whole command (process start, imports, CSV, batch, JSON out)."""
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
    return walls[1:]


def run(workdir: Path, args) -> dict:
    draws, repeats = args.staggered_placebo_draws, args.staggered_placebo_repeats
    out = stamp(NAME, args, ("--staggered-placebo-draws", "--staggered-placebo-repeats"))
    df = staggered_panel()
    cases = {name: measure_case(df, fml, strata, draws, repeats) for name, (fml, strata) in CASES.items()}
    walls = cli_walls(workdir, df, draws, repeats)
    return {**out, "rows": len(df), "draws": draws, "cohorts": int(df.loc[df.g > 0, "g"].nunique()),
            "goal": GOAL, "cli_goal_s": CLI_GOAL_S, "cases": cases, "cli_wall_s": median(walls), "cli_runs_s": walls}


def lines(r: dict) -> list[str]:
    out = [(f"{r['rows']} rows (50 states x 11 years, {r['cohorts']} cohorts), {r['draws']} draws: adoption dates "
            "permuted across states (never-treated states included), state and year FE, CRV1 by state; the peer "
            "refits pyfixest `feols` on each of the same assignments. Each side timed "
            f"{len(next(iter(r['cases'].values()))['ours_runs_s'])} times."), "",
           f"| case | cityres `run_placebo` (runs) | path | pyfixest loop (runs) | speed-up | goal >= {r['goal']}x "
           "| agreement (coef, rel. SE) |",
           "|---|---:|---|---:|---:|---|---|"]
    for name, c in r["cases"].items():
        if c["speedup"] is None:
            speed, goal = "not reported: the draws differ", "not measured"
        else:
            speed, goal = f"{c['speedup']:.0f}x", f"{verdict(c['speedup'] >= r['goal'])} ({c['speedup'] / r['goal']:.2f})"
        out.append(f"| {name} | {c['ours_s']:.3f} s ({runs_text(c['ours_runs_s'], '{:.3f}')}) | `{c['method']}` | "
                   f"{c['peer_s']:.1f} s ({runs_text(c['peer_runs_s'], '{:.1f}')}) | {speed} | {goal} | "
                   f"{c['max_abs_coef_diff']:.1e}, {c['max_rel_se_diff']:.1e} |")
    ok = r["cli_wall_s"] <= r["cli_goal_s"]
    out += ["", (f"The whole command `cityres estimate placebo --data staggered_panel.csv ... --draws {r['draws']}` "
                 f"(process start, imports, reading the CSV, the batch, JSON out): median {r['cli_wall_s']:.2f} s wall "
                 f"of {runs_text(r['cli_runs_s'])} (goal <= {r['cli_goal_s']} s: {verdict(ok)}"
                 + ("" if ok else f", {r['cli_wall_s'] / r['cli_goal_s']:.2f}x the goal") + ").")]
    return out
