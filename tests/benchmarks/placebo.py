"""Placebo / randomisation inference on the sample panel: one batched SQL query (`run_placebo`)
against a loop of pyfixest refits on the same assignments (pyfixest defaults).  Goal: >= 100x.

The sample panel is the published analysis_panel of the sample yearbooks, built once into a
temporary home when $CITYRES_HOME has none.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from tests.benchmarks.common import median, runs_text, stamp, verdict

NAME = "placebo"
TITLE = "Placebo / randomisation inference on the sample panel"
FORMULA = "res ~ did + eocden + traff + gove + inv + salary | city_code + year"
GOAL = 200  # the performance issue: >= 200x a pyfixest refit loop, on the sample panel too


def add_arguments(parser) -> None:
    parser.add_argument("--placebo-draws", type=int, default=1000)
    parser.add_argument("--placebo-repeats", type=int, default=3, help="timed runs of each side")


def sample_warehouse(workdir: Path) -> Path:
    home = os.environ.get("CITYRES_HOME")
    if home and (Path(home) / "warehouse.duckdb").exists():
        return Path(home) / "warehouse.duckdb"
    root = workdir / "home"
    if not (root / "warehouse.duckdb").exists():
        from flows.refresh import refresh
        from warehouse.sample import write_sample

        write_sample(root / "landing")
        os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
        refresh(home_dir=str(root))
    return root / "warehouse.duckdb"


def time_ours(con, relation: str, fml: str, treatment: str, unit: str, time_col: str, draws: int, repeats: int,
              strata: str | None = None):
    """The batch's wall times (after one small warm-up batch: imports, caches) and its last result."""
    from estimation.engine.placebo import run_placebo

    run_placebo(con, relation, fml, treatment, unit, time_col, draws=20, seed=1, strata=strata)
    runs, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run_placebo(con, relation, fml, treatment, unit, time_col, draws=draws, seed=20240601, strata=strata)
        runs.append(time.perf_counter() - t0)
    return runs, res


def pyfixest_loop(df, fml: str, treatment: str, unit: str, time_col: str, assignments, draws: int):
    """One pyfixest refit per draw on the same pseudo-treatment: (wall time, coefficients, SEs)."""
    import pyfixest as pf

    groups = dict(tuple(assignments.groupby("draw")))
    peer_fml = fml.replace(treatment, "pdid")
    coefs, ses = [], []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in range(1, draws + 1):
            a = df[unit].map(groups[d].set_index("unit")["adoption"])
            pdid = ((df[time_col] >= a) & a.notna() & (a > 0)).astype(float)
            m = pf.feols(peer_fml, df.assign(pdid=pdid), vcov={"CRV1": unit})
            coefs.append(m.coef()["pdid"])
            ses.append(m.se()["pdid"])
    return time.perf_counter() - t0, np.array(coefs), np.array(ses)


def compare_loop(res, df, fml, treatment, unit, time_col, draws: int, repeats: int) -> dict:
    """The pyfixest loop ``repeats`` times, checked against cityres's draws before its time counts."""
    got = res.draws.set_index("draw").loc[range(1, draws + 1)]
    runs, coef_diff, se_diff = [], 0.0, 0.0
    for _ in range(repeats):
        wall, coefs, ses = pyfixest_loop(df, fml, treatment, unit, time_col, res.assignments, draws)
        coef_diff = max(coef_diff, float(np.max(np.abs(got["coef"].to_numpy() - coefs))))
        se_diff = max(se_diff, float(np.max(np.abs(got["se"].to_numpy() / ses - 1))))
        runs.append(wall)
    return {"peer_s": median(runs), "peer_runs_s": runs, "max_abs_coef_diff": coef_diff, "max_rel_se_diff": se_diff,
            "agrees": coef_diff <= 1e-6 and se_diff <= 1e-6}


def measure(workdir: Path, draws: int, repeats: int) -> dict:
    import duckdb

    con = duckdb.connect(str(sample_warehouse(workdir)), read_only=True)
    runs, res = time_ours(con, "main.analysis_panel", FORMULA, "did", "city_code", "year", draws, repeats)
    df = con.execute("SELECT * FROM main.analysis_panel").df()
    con.close()
    peer = compare_loop(res, df, FORMULA, "did", "city_code", "year", draws, repeats)
    ours = median(runs)
    return {"rows": len(df), "draws": draws, "ours_s": ours, "ours_runs_s": runs, "method": res.method,
            "ri_p_value": res.ri_p_value, **peer, "speedup": peer["peer_s"] / ours if peer["agrees"] else None}


def run(workdir: Path, args) -> dict:
    out = stamp(NAME, args, ("--placebo-draws", "--placebo-repeats"))
    return {**out, **measure(workdir, args.placebo_draws, args.placebo_repeats), "goal": GOAL}


def lines(r: dict) -> list[str]:
    out = [f"Sample panel: `main.analysis_panel` of the sample yearbooks ({r['rows']:,} rows, 5 controls, city and "
           f"year FE, CRV1 by city). Same {r['draws']} assignments on both sides; each side timed "
           f"{len(r['ours_runs_s'])} times (median, then each run).", "",
           "| | median | runs |", "|---|---:|---|",
           f"| cityres `run_placebo` (one SQL batch, path `{r['method']}`) | {r['ours_s']:.3f} s | "
           f"{runs_text(r['ours_runs_s'], '{:.3f}')} |",
           f"| pyfixest `feols` loop (defaults) | {r['peer_s']:.1f} s | {runs_text(r['peer_runs_s'], '{:.1f}')} |"]
    if r["speedup"] is None:
        out.append(f"| **speed-up** | not reported: the draws differ | goal >= {r['goal']}x: not measured |")
    else:
        out.append(f"| **speed-up** | **{r['speedup']:.0f}x** | goal >= {r['goal']}x: {verdict(r['speedup'] >= r['goal'])}"
                   f" ({r['speedup'] / r['goal']:.2f} of the goal) |")
    out += ["", (f"Agreement (pyfixest at its default demeaning tolerance 1e-6): max |coef diff| = "
                 f"{r['max_abs_coef_diff']:.1e}, max relative SE diff = {r['max_rel_se_diff']:.1e}. The unit tests "
                 "check 1e-8 / 1e-6 against pyfixest at tolerance 1e-12.")]
    return out
