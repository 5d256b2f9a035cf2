"""TWFE with CRV1 on a 10-million-row unbalanced panel (1.11M units x 10 periods, 10% of rows
missing, 5 controls + a staggered DID), from a Parquet file.  Each side in its own subprocess;
wall time includes reading the file (DuckDB reads the Parquet file itself, pyfixest needs
pandas.read_parquet first); memory = the subprocess's peak RSS.  Goal: time and memory <= 0.25x
pyfixest's; the same model with DuckDB's memory_limit at 1 GB must complete (larger-than-memory
ready), its time reported."""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks.common import compare_sides, gib, int_list, panel_file, runs_text, stamp, verdict
from tests.benchmarks.sides import CASES

NAME = "twfe_large"
TITLE = "TWFE with CRV1 on a 10-million-row unbalanced panel"
GOAL = 0.25
SIDES = ["ours", "ours-1gb", "pyfixest"]
LABELS = {"ours": "cityres `feols` (DuckDB defaults)", "ours-1gb": "cityres `feols`, DuckDB `SET memory_limit = '1GB'`",
          "pyfixest": "pyfixest `feols` (defaults)"}


def add_arguments(parser) -> None:
    parser.add_argument("--twfe-large-rows", type=int_list, default=[11_111_120],
                        help="panel rows before 10%% are deleted (11.1M: 1.11M units x 10 years, ~10M rows kept)")
    parser.add_argument("--twfe-large-repeats", type=int, default=3)


def run(workdir: Path, args) -> dict:
    out = stamp(NAME, args, ("--twfe-large-rows", "--twfe-large-repeats"))
    rows = args.twfe_large_rows[0]
    sides = compare_sides(panel_file(workdir, "twfe", rows), "twfe", SIDES, args.twfe_large_repeats)
    peer = sides["pyfixest"]
    ratios = {}
    if peer.get("agrees"):
        for s in ("ours", "ours-1gb"):
            ratios[s] = {"time": sides[s]["wall_s"] / peer["wall_s"], "memory": sides[s]["peak_bytes"] / peer["peak_bytes"]}
    return {**out, "rows": sides["ours"]["nobs"], "formula": CASES["twfe"][0], "goal": GOAL,
            "sides": sides, "ratios": ratios}


def lines(r: dict) -> list[str]:
    ours = r["sides"]["ours"]
    out = [(f"{r['rows']:,} rows ({r['rows'] / 0.9 / 10:,.0f} units x 10 years, 10% of rows deleted at random), "
            f"`{r['formula']}`, CRV1 by unit, read from one Parquet file; cityres path `{ours.get('method')}`. "
            "Each side in its own subprocess, checked against cityres once untimed, then timed "
            f"{len(ours['runs_s'])} times; wall time includes reading the file; memory = the subprocess's peak RSS "
            "(the largest of the timed runs)."), "",
           "| | median wall time | runs | peak memory | max coef diff | max rel. SE diff |", "|---|---:|---|---:|---:|---:|"]
    for side, s in r["sides"].items():
        if not s.get("agrees"):
            out.append(f"| {LABELS[side]} | not timed: {s['reason']} | | | | |")
            continue
        load = f" (of which `read_parquet` {s['load_s']:.1f} s)" if "load_s" in s else ""
        diffs = ("", "") if side.startswith("ours") else (f"{s['coef_diff']:.1e}", f"{s['se_diff']:.1e}")
        out.append(f"| {LABELS[side]}{load} | {s['wall_s']:.1f} s | {runs_text(s['runs_s'], '{:.1f}')} | "
                   f"{gib(s['peak_bytes'])} | {diffs[0]} | {diffs[1]} |")
    for side, q in r["ratios"].items():
        out.append(f"| **ratio {LABELS[side]} / pyfixest** | **{q['time']:.2f}** (goal <= {r['goal']}: "
                   f"{verdict(q['time'] <= r['goal'])}) | | **{q['memory']:.2f}** (goal <= {r['goal']}: "
                   f"{verdict(q['memory'] <= r['goal'])}) | | |")
    if not r["ratios"]:
        out.append("| **ratios** | not reported: pyfixest did not agree | | | | |")
    out += ["", ("DuckDB's default lets its buffer pool grow to 80% of RAM before spilling, so its peak RSS depends "
                 "on the setting; with a 1 GB limit it spills temporary tables to disk instead (the goal for that "
                 "run is to complete; its time is reported beside the ratios).")]
    return out
