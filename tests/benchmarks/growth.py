"""Growth: how time grows with the data, for cityres and pyfixest, at three sizes at least, with
the exponent of time in size fitted by least squares on logs (time ~ size^b) and a log-log figure.

* TWFE (unit + year FE, 5 controls + DID, CRV1 by unit) in rows, each side in its own subprocess;
* placebo in draws on the sample panel (one SQL batch vs a pyfixest refit loop);
* placebo in rows: the staggered panel at several numbers of states (one control);
* ingest and aggregation in rows, taken from the firm_scale section's stored result when it exists
  (``growth: {"ingest": [[rows, s], ...], "aggregation": [[rows, s], ...]}``; cityres only).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.common import (RESULTS, ROOT, compare_sides, exponent, int_list, median, panel_file,
                                     runs_text, stamp)

NAME = "growth"
TITLE = "Growth of time with rows and draws"
FIGURE = "docs/benchmarks-growth.png"


def add_arguments(parser) -> None:
    parser.add_argument("--growth-twfe-rows", type=int_list, default=[1_000_000, 3_000_000, 10_000_000],
                        help="TWFE panel rows before 10%% are deleted")
    parser.add_argument("--growth-placebo-draws", type=int_list, default=[250, 1000, 4000])
    parser.add_argument("--growth-staggered-states", type=int_list, default=[50, 200, 800],
                        help="states of the staggered panel (x 11 years)")
    parser.add_argument("--growth-staggered-draws", type=int, default=250)
    parser.add_argument("--growth-repeats", type=int, default=3)
    parser.add_argument("--growth-reuse", action="store_true",
                        help="keep the stored TWFE and placebo series (their own dates stay in the result); "
                             "take the firm_scale series again and refit")


def twfe_series(workdir: Path, sizes: list[int], repeats: int) -> dict:
    points = []
    for rows in sizes:
        sides = compare_sides(panel_file(workdir, "twfe", rows), "twfe", ["ours", "pyfixest"], repeats)
        points.append({"size": sides["ours"]["nobs"], **{name: series_point(s) for name, s in sides.items()}})
    return {"unit": "rows", "points": points}


def series_point(side: dict) -> dict:
    if not side.get("agrees"):
        return {"error": side.get("reason")}
    return {"s": side["wall_s"], "runs_s": side["runs_s"], "peak_bytes": side["peak_bytes"]}


def placebo_series(workdir: Path, draws_list: list[int], repeats: int) -> dict:
    import duckdb

    from tests.benchmarks.placebo import FORMULA, compare_loop, sample_warehouse, time_ours

    con = duckdb.connect(str(sample_warehouse(workdir)), read_only=True)
    df = con.execute("SELECT * FROM main.analysis_panel").df()
    points = []
    for draws in draws_list:
        runs, res = time_ours(con, "main.analysis_panel", FORMULA, "did", "city_code", "year", draws, repeats)
        peer = compare_loop(res, df, FORMULA, "did", "city_code", "year", draws, repeats)
        points.append({"size": draws, "ours": {"s": median(runs), "runs_s": runs}, "pyfixest": loop_point(peer)})
    con.close()
    return {"unit": "draws", "rows": len(df), "points": points}


def loop_point(peer: dict) -> dict:
    if not peer["agrees"]:
        return {"error": f"draws differ: coef {peer['max_abs_coef_diff']:.1e}, SE {peer['max_rel_se_diff']:.1e}"}
    return {"s": peer["peer_s"], "runs_s": peer["peer_runs_s"]}


def staggered_series(states_list: list[int], draws: int, repeats: int) -> dict:
    from tests.benchmarks.staggered_placebo import CASES, measure_case, staggered_panel

    fml, strata = CASES["one control"]
    points = []
    for states in states_list:
        df = staggered_panel(states)
        c = measure_case(df, fml, strata, draws, repeats)
        points.append({"size": len(df), "ours": {"s": c["ours_s"], "runs_s": c["ours_runs_s"]},
                       "pyfixest": loop_point(c)})
    return {"unit": "rows", "draws": draws, "formula": fml, "points": points}


def firm_scale_series() -> dict | None:
    path = RESULTS / "firm_scale.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    growth = stored.get("growth") or {}
    out = {name: {"unit": "rows", "points": [{"size": rows, "ours": {"s": s}} for rows, s in pts]}
           for name, pts in growth.items() if pts}
    return {"date": stored.get("date"), "series": out} if out else None


def fit_exponents(series: dict) -> None:
    for s in series.values():
        s["exponents"] = {side: exponent([[p["size"], p[side].get("s")] for p in s["points"] if side in p])
                          for side in ("ours", "pyfixest") if any(side in p for p in s["points"])}


def draw(series: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.8), squeeze=False)
    for ax, (name, s) in zip(axes[0], series.items()):
        for side, style in (("ours", "o-"), ("pyfixest", "s--")):
            pts = [(p["size"], p[side]["s"]) for p in s["points"] if p.get(side, {}).get("s")]
            if pts:
                b = s["exponents"].get(side)
                label = ("cityres" if side == "ours" else "pyfixest") + (f" (b = {b:.2f})" if b is not None else "")
                ax.loglog(*zip(*pts), style, label=label)
        ax.set_title(SERIES_TITLES.get(name, name), fontsize=10)
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor ones overlap
        ax.set_xlabel(s["unit"])
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


SERIES_TITLES = {"twfe": "TWFE, CRV1 (rows)", "placebo_draws": "Placebo, sample panel (draws)",
                 "placebo_rows": "Placebo, staggered panel (rows)", "ingest": "Ingest (firm_scale)",
                 "aggregation": "Aggregation (firm_scale)"}


def run(workdir: Path, args) -> dict:
    out = stamp(NAME, args, ("--growth-twfe-rows", "--growth-placebo-draws", "--growth-staggered-states",
                             "--growth-staggered-draws", "--growth-repeats"))
    stored = RESULTS / f"{NAME}.json"
    if args.growth_reuse and stored.exists():
        before = json.loads(stored.read_text(encoding="utf-8"))
        series = {k: v for k, v in before["series"].items() if k in ("twfe", "placebo_draws", "placebo_rows")}
        out = {**out, "date": before["date"], "commit": before.get("commit"), "command": before["command"],
               "reused_on": out["date"]}
    else:
        series = {"twfe": twfe_series(workdir, args.growth_twfe_rows, args.growth_repeats),
                  "placebo_draws": placebo_series(workdir, args.growth_placebo_draws, args.growth_repeats),
                  "placebo_rows": staggered_series(args.growth_staggered_states, args.growth_staggered_draws,
                                                   args.growth_repeats)}
    firm = firm_scale_series()
    if firm:
        series.update(firm["series"])
    fit_exponents(series)
    draw(series, ROOT / FIGURE)
    return {**out, "series": series, "firm_scale_date": firm and firm["date"], "figure": FIGURE}


def cell(p: dict | None) -> str:
    if p is None:
        return ""
    if "error" in p:
        return f"failed or differs: {p['error'][:60]}"
    return f"{p['s']:.2f} s" + (f" ({runs_text(p['runs_s'])})" if p.get("runs_s") else "")


def lines(r: dict) -> list[str]:
    out = [("Time ~ size^b, b fitted by least squares on the logs of the medians (b = 1: linear). TWFE: each "
            "side in its own subprocess, wall time includes reading the Parquet file (unit + year FE, 5 controls + "
            "DID, CRV1 by unit, 10% of rows deleted). Placebo: the same assignments on both sides, cityres's one "
            "SQL batch against a pyfixest refit loop. Medians of the runs, each run in parentheses."), "",
           f"![time against size, log-log]({r['figure']})", ""]
    notes = {"placebo_draws": f" ({r['series'].get('placebo_draws', {}).get('rows', 0):,} rows)",
             "placebo_rows": f" ({r['series'].get('placebo_rows', {}).get('draws', '?')} draws, one control)"}
    for name, s in r["series"].items():
        src = f", stored {r['firm_scale_date']}" if name in ("ingest", "aggregation") else ""
        out += [f"**{SERIES_TITLES.get(name, name)}**{notes.get(name, '')}{src}", "",
                f"| {s['unit']} | cityres | pyfixest | pyfixest / cityres |", "|---:|---:|---:|---:|"]
        for p in s["points"]:
            o, q = p.get("ours"), p.get("pyfixest")
            ratio = f"{q['s'] / o['s']:.1f}" if o and q and o.get("s") and q.get("s") else ""
            out.append(f"| {p['size']:,} | {cell(o)} | {cell(q)} | {ratio} |")
        ex = s.get("exponents", {})
        fmt = {k: ("" if v is None else f"**{v:.2f}**") for k, v in ex.items()}
        out += [f"| exponent b | {fmt.get('ours', '')} | {fmt.get('pyfixest', '')} | |", ""]
    if r.get("firm_scale_date") is None:
        out.append("Ingest and aggregation: no stored firm_scale result with a `growth` field when this ran.")
    else:
        out.append(f"Ingest and aggregation from the firm_scale section's result of {r['firm_scale_date']} "
                   "(cityres only).")
    return out
