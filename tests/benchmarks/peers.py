"""Peers beside cityres on the two-way case: unit + year FE, 5 controls + a staggered DID, CRV1 by
unit, an unbalanced panel (units x 10 years, 10% of rows deleted) from a Parquet file.

Peers: pyfixest (default and ``LsmrDemeaner(backend="within")``), linearmodels ``PanelOLS``
(entity and time effects, clustered by entity) and ``AbsorbingLS``, duckreg's ``DuckMundlak``
(its only estimator for a panel with controls) and statsmodels OLS with dummies (small sizes only:
its design is dense).  Each side in its own subprocess; each is run once untimed and checked
against cityres (coefficients and SEs within a relative 1e-6), and only agreeing sides are timed.
SEs are compared in each peer's convention (see ``common.agreement``): linearmodels and statsmodels
are asked for the raw cluster sandwich and cityres's small-sample factor is divided out of its SEs.
"""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks.common import CHECK_RTOL, compare_sides, gib, int_list, panel_file, runs_text, stamp
from tests.benchmarks.sides import CASES, TWFE_X

NAME = "peers"
TITLE = "Peers on the two-way case (unit + year FE, CRV1 by unit)"
SIDES = ["ours", "pyfixest", "pyfixest-within", "linearmodels-panelols", "linearmodels-absorbing",
         "duckreg-mundlak", "statsmodels-dummies"]
LABELS = {
    "ours": "cityres `feols` (DuckDB defaults)",
    "pyfixest": "pyfixest `feols` default (MAP, rust, tol 1e-6)",
    "pyfixest-within": "pyfixest, `LsmrDemeaner(backend=\"within\")`",
    "linearmodels-panelols": "linearmodels `PanelOLS(entity_effects, time_effects)`, clustered by entity",
    "linearmodels-absorbing": "linearmodels `AbsorbingLS(absorb=unit, year)`, clustered by unit",
    "duckreg-mundlak": "duckreg `DuckMundlak(unit_col, time_col)` (coefficients only)",
    "statsmodels-dummies": "statsmodels `OLS` with unit and year dummies, clustered by unit",
}
DUCKREG_NOTE = (
    "duckreg {version} can fit this design only through `DuckMundlak`: a pooled regression of y on X, the unit "
    "means and the year means of X, grouped (\"compressed\") in DuckDB by every regressor and mean. "
    "What it cannot do here: two-way FE are equivalent to that Mundlak regression only on a balanced panel "
    "(on the unbalanced panel its coefficients differ, see the table); it has no analytic CRV1 (its SEs are "
    "a cluster bootstrap, or HC1 for `DuckRegression`, which refuses fixed effects), so only its coefficients "
    "are compared; and with continuous controls the compression keeps one group per row "
    "({compressed} groups for {rows:,} rows), so it saves nothing. `DuckDoubleDemeaning` takes a treatment and "
    "no controls. duckreg 0.4.x queries through ibis-framework (12.0.0, the newest release), which calls "
    "DuckDB's `fetch_arrow_table`, removed in duckdb 2.0.0: its first query fails here; 0.3, which queries "
    "DuckDB directly and has the same `DuckMundlak`, is the version used."
)


def add_arguments(parser) -> None:
    parser.add_argument("--peers-rows", type=int_list, default=[10_000, 1_000_000],
                        help="panel rows before 10%% are deleted")
    parser.add_argument("--peers-repeats", type=int, default=3)
    parser.add_argument("--peers-statsmodels-max-rows", type=int, default=30_000,
                        help="statsmodels' dense dummy design is built only up to this many rows")
    parser.add_argument("--peers-timeout", type=float, default=1800, help="seconds a side may take")


def dense_design_bytes(rows: int) -> int:
    """statsmodels' design: rows x (units + years + regressors), 8-byte floats."""
    units = max(rows // 10, 2)
    return rows * (units + 10 + len(TWFE_X)) * 8


def run(workdir: Path, args) -> dict:
    out = stamp(NAME, args, ("--peers-rows", "--peers-repeats", "--peers-statsmodels-max-rows"))
    sizes = {}
    for rows in args.peers_rows:
        sides = [s for s in SIDES if s != "statsmodels-dummies" or rows <= args.peers_statsmodels_max_rows]
        unbalanced = compare_sides(panel_file(workdir, "twfe", rows), "twfe", sides, args.peers_repeats,
                                   args.peers_timeout)
        if "statsmodels-dummies" not in sides:
            unbalanced["statsmodels-dummies"] = {
                "agrees": False, "skipped": True, "runs_s": [],
                "reason": (f"not run: its dense design would be {gib(dense_design_bytes(rows))} "
                           f"(> {args.peers_statsmodels_max_rows:,} rows)")}
        balanced = compare_sides(panel_file(workdir, "twfe", rows, balanced=True), "twfe",
                                 ["ours", "duckreg-mundlak"], args.peers_repeats, args.peers_timeout)
        for s in (*unbalanced.values(), *balanced.values()):
            s.pop("coef", None), s.pop("se", None)
        sizes[str(rows)] = {"unbalanced": unbalanced, "balanced": balanced,
                            "dense_design_bytes": dense_design_bytes(rows)}
    return {**out, "formula": CASES["twfe"][0], "rtol": CHECK_RTOL, "sizes": sizes}


def side_row(label: str, s: dict, ours: dict) -> str:
    if s.get("skipped"):
        return f"| {label} | {s['reason']} | | | | | |"
    if not s.get("agrees"):
        after = f" (check run {s['check_wall_s']:.1f} s)" if s.get("check_wall_s") else ""
        diffs = (f"{s['coef_diff']:.1e}" if s.get("coef_diff") is not None else "",
                 f"{s['se_diff']:.1e}" if s.get("se_diff") is not None else "")
        return f"| {label} | not timed: {s['reason'][:110]}{after} | | | {diffs[0]} | {diffs[1]} | |"
    cityres = s is ours
    diffs = ("", "") if cityres else (f"{s['coef_diff']:.1e}",
                                       "not computed" if s.get("se_diff") is None else f"{s['se_diff']:.1e}")
    return (f"| {label} | {s['wall_s']:.2f} s | {runs_text(s['runs_s'])} | {gib(s['peak_bytes'])} | {diffs[0]} | "
            f"{diffs[1]} | {s['wall_s'] / ours['wall_s']:.2f} |")


def lines(r: dict) -> list[str]:
    out = [(f"`{r['formula']}`, CRV1 by unit. Each side in its own subprocess (wall time includes reading the "
            "Parquet file and, for pandas-based peers, building their input; memory = the subprocess's peak RSS). "
            f"Each side was first run untimed and checked against cityres (relative {r['rtol']:g}); only agreeing "
            "sides were timed (median, then each run). linearmodels and statsmodels report the raw cluster "
            "sandwich (no small-sample factor), compared with cityres's SEs divided by cityres's "
            "G/(G-1)(N-1)/(N-K); pyfixest uses cityres's factor."), ""]
    header = ["| | median wall time | runs | peak memory | max coef diff | max rel. SE diff | time / cityres |",
              "|---|---:|---|---:|---:|---:|---:|"]
    duck = None
    for size in r["sizes"].values():
        ub, bal = size["unbalanced"], size["balanced"]
        ours = ub["ours"]
        out += [f"**Unbalanced panel, {ours['nobs']:,} rows** (cityres path `{ours.get('method')}`)", "", *header]
        out += [side_row(LABELS[k], s, ours) for k, s in ub.items()]
        bours = bal["ours"]
        out += ["", f"**Balanced panel, {bours['nobs']:,} rows** (duckreg's Mundlak regression is exact only here)", "",
                *header, *[side_row(LABELS[k], s, bours) for k, s in bal.items()], ""]
        duck = bal.get("duckreg-mundlak") if bal.get("duckreg-mundlak", {}).get("compressed_rows") else duck
    version = r["versions"].get("duckreg")
    if duck:
        out.append(DUCKREG_NOTE.format(version=version, compressed=f"{duck['compressed_rows']:,}", rows=duck["nobs"]))
    sm = [(int(k), v["unbalanced"]["statsmodels-dummies"]) for k, v in r["sizes"].items()]
    ran = [(k, s) for k, s in sm if s.get("agrees")]
    skipped = [(k, s) for k, s in sm if s.get("skipped")]
    if ran or skipped:
        text = "statsmodels with dummies builds a dense design of rows x (units + years + regressors)"
        if ran:
            k, s = ran[-1]
            text += f": at {s['nobs']:,} rows ({s['design_columns']:,} columns) it took {s['wall_s']:.1f} s"
        if skipped:
            k, s = skipped[0]
            text += (f"; for the panel of {k:,} rows (before the 10% deletion) the design alone would need {gib(r['sizes'][str(k)]['dense_design_bytes'])} "
                     "(it grows with rows x units, i.e. quadratically in rows at a fixed number of years), so it was "
                     "not run")
        out += ["", text + "."]
    return out
