"""Three fixed effects: a well-connected unit x year x sector panel and the AKM-like
worker-firm-year panel (sparsely connected; plain alternating projections crawl), CRV1 by unit /
worker, from Parquet files, each side in its own subprocess.  Peers: pyfixest's default (MAP,
rust backend, tolerance 1e-6), its numba MAP backend and its ``within`` (preconditioned LSMR)
backend.  Every side is first run once untimed and checked against cityres (relative 1e-6,
pyfixest's default demeaning tolerance); only sides that agree are then timed."""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks.common import CHECK_RTOL, compare_sides, gib, int_list, panel_file, runs_text, stamp
from tests.benchmarks.sides import CASES

NAME = "multi_fe"
TITLE = "Three fixed effects"
SIDES = ["ours", "pyfixest", "pyfixest-numba", "pyfixest-within"]
LABELS = {
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


def add_arguments(parser) -> None:
    parser.add_argument("--multi-fe-rows", type=int_list, default=[1_000_000, 10_000_000],
                        help="panel sizes, e.g. 1000000,10000000 (10M: pyfixest's MAP would run ~40 min before "
                             "failing on the AKM design; --multi-fe-timeout stops it)")
    parser.add_argument("--multi-fe-repeats", type=int, default=3)
    parser.add_argument("--multi-fe-timeout", type=float, default=900,
                        help="seconds a side may take before it is stopped and reported as not finished")


def run(workdir: Path, args) -> dict:
    out = stamp(NAME, args, ("--multi-fe-rows", "--multi-fe-repeats", "--multi-fe-timeout"))
    sizes = {}
    for rows in args.multi_fe_rows:
        designs = {}
        for case in DESIGNS:
            sides = compare_sides(panel_file(workdir, case, rows), case, SIDES, args.multi_fe_repeats,
                                  args.multi_fe_timeout)
            for s in sides.values():
                s.pop("coef", None), s.pop("se", None)
            designs[case] = {"rows": sides["ours"]["nobs"], "formula": CASES[case][0], "cluster": CASES[case][1],
                             "sides": sides}
        sizes[str(rows)] = designs
    return {**out, "rtol": CHECK_RTOL, "sizes": sizes}


def lines(r: dict) -> list[str]:
    out = [("Each side in its own subprocess (wall time includes reading the Parquet file; memory = peak RSS). "
            "Each side was first run untimed and checked against cityres (coefficients and SEs within a relative "
            f"{r['rtol']:g}, pyfixest's default demeaning tolerance); only agreeing sides were timed "
            "(median of the timed runs, then each run)."), ""]
    for designs in r["sizes"].values():
        for case, res in designs.items():
            ours = res["sides"]["ours"]
            out += [(f"**{DESIGNS[case]}**: {res['rows']:,} rows, `{res['formula']}`, CRV1 by {res['cluster']}; "
                     f"cityres path `{ours.get('method')}`, {ours.get('iterations')} iterations."), "",
                    "| | median wall time | runs | peak memory | max coef diff | max rel. SE diff | time / cityres |",
                    "|---|---:|---|---:|---:|---:|---:|"]
            for side, s in res["sides"].items():
                if not s.get("agrees"):
                    after = f" after {s['check_wall_s']:.1f} s" if s.get("check_wall_s") else ""
                    out.append(f"| {LABELS[side]} | failed or differs{after}: {s['reason'][:90]} | | | | | |")
                    continue
                diffs = ("", "") if side == "ours" else (f"{s['coef_diff']:.1e}", f"{s['se_diff']:.1e}")
                out.append(f"| {LABELS[side]} | {s['wall_s']:.1f} s | {runs_text(s['runs_s'], '{:.1f}')} | "
                           f"{gib(s['peak_bytes'])} | {diffs[0]} | {diffs[1]} | {s['wall_s'] / ours['wall_s']:.2f} |")
            out.append("")
    return out[:-1]
