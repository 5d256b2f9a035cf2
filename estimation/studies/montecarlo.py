"""Monte Carlo of the resilience study's estimators over draws of the sample generator's DGP.

Each draw r simulates the generator's latent data with seed ``seed + r``
(:func:`warehouse.sample.generate.simulate`, so any change to the DGP is picked up here), builds
the analysis panel directly from the complete, unrounded latent data (no files, no dbt: see
:func:`panel_frame`), loads it into an in-memory DuckDB as ``main.analysis_panel`` (with
``intermediate.int_national_by_year`` for the instrument) and runs the study's own estimators:

* ``baseline``: Table 3 column (4), DID + controls, city and year FE, CRV1 by city;
* ``psm_nearest`` / ``psm_kernel``: PSM-DID (:func:`~estimation.studies.resilience.run_table4_psm`);
* ``2sls``: Table 4's 2SLS with the 1984-telephones x internet instrument
  (:func:`~estimation.studies.resilience.run_table4_iv` on :func:`~estimation.studies.resilience.iv_relation`).

The target of every estimator is the generator's true ATT: the mean of (factual - counterfactual
index) over treated panel cities in years >= adoption (``ground_truth.json`` ``att.resilience_index``).

Decomposition of each estimate. All four estimators are linear in the outcome for a given design
(the matching uses the controls only, the instrument does not involve the outcome), and the
factual index is the counterfactual index plus the true effect. So each estimate splits exactly
into the same estimator applied to

* the treated cities' true effects (zero elsewhere): ``part_att``, what the estimator makes of
  the heterogeneous effects it is meant to average; ``part_att - truth`` is the weighting bias;
* the untreated cities' true effects (the spillover on neighbours of pilot cities, zero
  elsewhere): ``part_spillover``, contamination of the control group;
* the counterfactual index (no policy anywhere): ``part_confounding``, what the estimator
  finds where there is nothing to find (non-parallel trends, an invalid instrument).

CLI: ``python -m estimation.studies.montecarlo --draws 200 --workers 2 --out MONTECARLO.md``.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from estimation.engine.model import feols
from estimation.engine.psm import matched_relation
from estimation.engine.sqlutil import temp_scope
from warehouse.connections import duckdb_config
from warehouse.sample import generate, national

from . import resilience as study
from .common import GROUP, PANEL, TIME, TREATMENT, UNIT

ESTIMATORS = ("baseline", "psm_nearest", "psm_kernel", "2sls")
LABELS = {
    "baseline": "Baseline DID (Table 3 col. 4)",
    "psm_nearest": "PSM-DID, nearest neighbour",
    "psm_kernel": "PSM-DID, kernel",
    "2sls": "2SLS (1984 phones x internet)",
}
# What an estimator estimates when it is not the ATT (column truth_own of the per-draw rows).
OWN_ESTIMAND = {
    "psm_nearest": "the ATT over the matched (on-support) treated post city-years",
    "psm_kernel": "the ATT over the matched (on-support) treated post city-years",
    "2sls": "the policy effect as the instrument weights city-years (ground truth iv.estimand)",
}
DEFAULT_SEED = generate.DEFAULT_SEED
COVERAGE_BAND = (0.93, 0.97)
NATIONAL_TABLE = study.NATIONAL  # intermediate.int_national_by_year, which iv_relation joins
# Outcome columns of the decomposition (see the module docstring), swapped in for ``res``; the
# third part, on the treated cities' effects (column res_effect_treated), is the estimate minus
# these two (linearity; tests/test_montecarlo.py checks it against the direct fit).
PARTS = {"part_spillover": "res_effect_untreated", "part_confounding": "res_counterfactual"}


# ------------------------------------------------------------ the panel of one draw, in numpy

@dataclass(frozen=True)
class DrawData:
    seed: int
    panel: pd.DataFrame  # one row per panel city-year, the columns of main.analysis_panel used here
    national: pd.DataFrame  # year, internet_users (万人), as intermediate.int_national_by_year
    truth: float  # true ATT on the index: treated panel cities, years >= adoption
    truth_spillover: float  # the same mean over the untreated neighbours (spillover)
    truth_iv: float  # the generator's 2SLS estimand (ground truth "iv"), NaN if it has none
    n_treated: int
    n_neighbours: int


def panel_frame(sample: generate.Sample) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The analysis panel of a simulated sample, from the complete latent data.

    Rows: balanced panel cities x ``latent.years[1:]`` (as the ground truth and dbt). ``res`` is
    the ground truth's factual index (``truth.panel``); the controls follow
    dbt_project/models/intermediate/panel/int_study_controls.sql on the factual data; ``treat``
    is the pilot-city indicator, ``did`` = treat x (year >= adoption);
    ``telephones_per_100_1984`` is the generator's ``phones1984``. The second frame is the
    national series by year (internet users in 万人, as the warehouse keeps them), so that
    :func:`~estimation.studies.resilience.iv_relation` builds the instrument as it does in the
    warehouse. Extra columns: the counterfactual index and the true effect split by group
    (the decomposition's outcomes).
    """
    lat, pt, design = sample.latent, sample.panel, sample.design
    rows = pt.city_index
    years = pt.years
    first = list(lat.years).index(int(years[0]))
    cols = slice(first, first + len(years))
    f = {v: lat.factual[v][rows, cols] for v in ("gdp", "land_area", "road_area", "fiscal_expenditure", "fdi",
                                                 "avg_wage")}
    n, T = len(rows), len(years)
    treat = design.treated[rows]
    did = treat[:, None] & (years >= design.adoption_year)[None, :]
    effect = pt.index_factual - pt.index_counterfactual
    zero = np.zeros_like(effect)
    frame = pd.DataFrame({
        UNIT: np.repeat(sample.cities.code[rows], T),
        TIME: np.tile(years.astype(np.int32), n),
        "res": pt.index_factual.ravel(),
        TREATMENT: did.astype(np.int32).ravel(),
        GROUP: np.repeat(treat, T),
        "eocden": np.log(f["gdp"] / f["land_area"]).ravel(),
        "traff": (f["road_area"] / f["land_area"]).ravel(),
        "gove": (f["fiscal_expenditure"] / f["gdp"]).ravel(),
        "inv": np.log(1.0 + f["fdi"]).ravel(),
        "salary": np.log(f["avg_wage"]).ravel(),
        "telephones_per_100_1984": np.repeat(lat.phones1984[rows], T),
        "res_counterfactual": pt.index_counterfactual.ravel(),
        "res_effect_treated": np.where(treat[:, None], effect, zero).ravel(),
        "res_effect_untreated": np.where(treat[:, None], zero, effect).ravel(),
    })
    nat = pd.DataFrame({TIME: lat.years.astype(np.int32),
                        "internet_users": national.series(lat.years)["internet_users"]})
    return frame, nat


def simulate_draw(seed: int) -> DrawData:
    """Simulate the generator's latent data with ``seed`` (no files) and build the panel."""
    s = generate.simulate(seed)
    frame, nat = panel_frame(s)
    att = s.truth["att"]
    spill = att["spillover"]["resilience_index"]  # None without neighbours in the panel
    iv = s.truth.get("iv") or {}  # the generator's 2SLS decomposition, where it has one
    return DrawData(int(seed), frame, nat, float(att["resilience_index"]),
                    np.nan if spill is None else float(spill),
                    float(iv.get("estimand", np.nan)),
                    int(s.truth["policy"]["n_treated_in_panel"]), int(att["spillover"]["n_cities"]))


# ------------------------------------------------------------ estimation of one draw

def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory connection with one thread: sums in one order, whatever the workers."""
    return duckdb.connect(config=duckdb_config(threads=1))


def load(con: duckdb.DuckDBPyConnection, data: DrawData) -> None:
    """The draw's panel as main.analysis_panel and its national series as the warehouse's table."""
    schema, table = NATIONAL_TABLE.rsplit(".", 1)
    con.execute(f"create schema if not exists {schema}")
    con.register("__mc_panel", data.panel)
    con.register("__mc_national", data.national)
    try:
        con.execute(f"create or replace table {PANEL} as select * from __mc_panel")
        con.execute(f"create or replace table {schema}.{table} as select * from __mc_national")
    finally:
        con.unregister("__mc_panel")
        con.unregister("__mc_national")


def with_outcome(column: str, relation: str = PANEL) -> str:
    """The panel with ``column`` in place of the outcome ``res`` (the decomposition's fits)."""
    return f"(select * replace ({column} as res) from {relation})"


def _row(name: str, result, **extra) -> dict:
    low, high = (float(v) for v in result.conf_int.loc[TREATMENT])
    return {"estimator": name, "estimate": float(result.coef[TREATMENT]), "se": float(result.se[TREATMENT]),
            "ci_low": low, "ci_high": high, "nobs": int(result.nobs), **extra}


def _finish(row: dict) -> dict:
    row["part_att"] = row["estimate"] - row["part_spillover"] - row["part_confounding"]
    return row


def _baseline(con, data: DrawData) -> dict:
    formula = study.specs()[3].formula  # Table 3, column (4)
    row = _row("baseline", feols(con, PANEL, formula, vcov={"CRV1": UNIT}))
    for part, column in PARTS.items():
        row[part] = float(feols(con, with_outcome(column), formula, vcov={"CRV1": UNIT}).coef[TREATMENT])
    return _finish(row)


def _psm(con, data: DrawData, method: str) -> dict:
    est = study.run_table4_psm(con, PANEL, method=method)
    # PSM's own estimand: the true effect averaged over the matched (on-support) treated post city-years.
    with temp_scope(con) as scope:
        rows = scope.register(est.matching.rows, "matched")
        treated_post = con.execute(
            f"select avg(p.res_effect_treated) from {PANEL} as p join {rows} as m "
            f"on p.{UNIT} = m.unit and p.{TIME} = m.time where m.treated and p.{TREATMENT} = 1").fetchall()[0][0]
    row = _row(f"psm_{method}", est.result, n_matched_treated=est.matching.n_treated,
               n_matched_controls=est.matching.n_controls,
               truth_own=np.nan if treated_post is None else float(treated_post))
    # The same matching and the same weighted DID (run_table4_psm's), on the decomposition's outcomes.
    for part, column in PARTS.items():
        with temp_scope(con) as scope:
            matched = matched_relation(con, scope, with_outcome(column), UNIT, TIME, est.matching)
            fit = feols(con, matched, study.placebo_formula(), vcov={"CRV1": UNIT},
                        weights="match_weight" if method == "kernel" else None)
        row[part] = float(fit.coef[TREATMENT])
    return _finish(row)


def _iv(con, data: DrawData) -> dict:
    est = study.run_table4_iv(con, study.iv_relation(PANEL))
    iv = est.second_stage
    fs = iv.first_stages[0]
    row = _row("2sls", iv, truth_own=data.truth_iv, first_stage_coef=float(est.first_stage.coef[study.INSTRUMENT]),
               first_stage_f=float(fs.f), effective_f=float(fs.effective_f),
               kp_wald_f=float(iv.diagnostics.get("kp_rk_wald_f", np.nan)))
    for part, column in PARTS.items():
        fit = feols(con, study.iv_relation(with_outcome(column)), study.iv_formula(), vcov={"CRV1": UNIT})
        row[part] = float(fit.coef[TREATMENT])
    return _finish(row)


_RUNNERS = {
    "baseline": _baseline,
    "psm_nearest": lambda con, data: _psm(con, data, "nearest"),
    "psm_kernel": lambda con, data: _psm(con, data, "kernel"),
    "2sls": _iv,
}


def run_draw(con: duckdb.DuckDBPyConnection, draw: int, seed: int) -> list[dict]:
    """One draw: simulate, load, estimate; one row per estimator (an error is a row with NaN)."""
    t0 = time.perf_counter()
    data = simulate_draw(seed)
    load(con, data)
    t1 = time.perf_counter()
    out = []
    for name in ESTIMATORS:
        base = {"draw": draw, "seed": seed, "estimator": name}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                row = {**base, **_RUNNERS[name](con, data), "error": None}
            except Exception as exc:  # a failed fit is a result of the Monte Carlo, not a crash
                row = {**base, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                       "error": f"{type(exc).__name__}: {exc}"}
        row["n_warnings"] = len(caught)
        out.append(row)
    t2 = time.perf_counter()
    for row in out:
        row.update(truth=data.truth, truth_spillover=data.truth_spillover, n_treated=data.n_treated,
                   n_neighbours=data.n_neighbours, seconds_simulate=t1 - t0, seconds_estimate=t2 - t1)
        ok = np.isfinite(row["estimate"])
        row["covered"] = bool(row["ci_low"] <= data.truth <= row["ci_high"]) if ok else np.nan
        own = row.get("truth_own", np.nan)
        row["truth_own"] = own
        row["covered_own"] = bool(row["ci_low"] <= own <= row["ci_high"]) if ok and np.isfinite(own) else np.nan
    return out


# ------------------------------------------------------------ the draws, in one or more processes

_WORKER_CON: duckdb.DuckDBPyConnection | None = None


def _worker_init() -> None:
    global _WORKER_CON
    _WORKER_CON = connect()


def _worker_draw(task: tuple[int, int]) -> list[dict]:
    draw, seed = task
    return run_draw(_WORKER_CON, draw, seed)


COLUMNS = ("draw", "seed", "estimator", "truth", "estimate", "se", "ci_low", "ci_high", "covered",
           "truth_own", "covered_own", "part_att", "part_spillover", "part_confounding", "truth_spillover",
           "nobs", "n_treated", "n_neighbours", "n_matched_treated", "n_matched_controls", "first_stage_coef",
           "first_stage_f", "effective_f", "kp_wald_f", "n_warnings", "error", "seconds_simulate", "seconds_estimate")


def run(draws: int = 200, seed: int = DEFAULT_SEED, workers: int = 1, progress: bool = False) -> pd.DataFrame:
    """Per-draw rows (one per draw and estimator), draw r with the generator's seed ``seed + r``.

    Every draw depends on its seed only and each DuckDB connection runs one thread, so the
    rows are the same whatever ``workers`` is. ``progress`` reports to stderr.
    """
    if draws < 1:
        raise ValueError("draws must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    tasks = [(r, seed + r) for r in range(draws)]
    rows: list[dict] = []
    t0 = time.perf_counter()

    def report(done: int) -> None:
        if progress and (done == draws or done % max(1, draws // 20) == 0 or done <= 2):
            wall = time.perf_counter() - t0
            eta = wall / done * (draws - done)
            print(f"montecarlo: {done}/{draws} draws, {wall:.0f} s, ~{eta:.0f} s to go", file=sys.stderr, flush=True)

    if workers == 1:
        con = connect()
        try:
            for i, task in enumerate(tasks, start=1):
                rows += run_draw(con, *task)
                report(i)
        finally:
            con.close()
    else:
        # spawn: no DuckDB or thread state inherited from the parent; each worker opens its own connection.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            for i, part in enumerate(pool.imap_unordered(_worker_draw, tasks), start=1):
                rows += part
                report(i)
    df = pd.DataFrame.from_records(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = np.nan
    order = {name: i for i, name in enumerate(ESTIMATORS)}
    df = df.sort_values(["draw", "estimator"], key=lambda s: s.map(order) if s.name == "estimator" else s)
    return df[list(COLUMNS)].reset_index(drop=True)


# ------------------------------------------------------------ summary

def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per estimator, over the draws with an estimate: R, mean truth, mean estimate, bias = mean
    (estimate - truth), relative bias % = 100 bias / mean truth, RMSE of (estimate - truth), 95%
    coverage of the per-draw truth and its Monte Carlo standard error sqrt(p(1-p)/R), mean SE,
    SD of the estimates and of the errors (ddof 1), and the mean decomposition of the bias."""
    out = []
    for name in [e for e in ESTIMATORS if e in set(df["estimator"])] + \
            sorted(set(df["estimator"]) - set(ESTIMATORS)):
        g = df[(df["estimator"] == name) & np.isfinite(df["estimate"].astype(float))]
        R = len(g)
        err = (g["estimate"] - g["truth"]).astype(float)
        p = float(g["covered"].astype(float).mean()) if R else np.nan
        truth = float(g["truth"].mean()) if R else np.nan
        bias = float(err.mean()) if R else np.nan
        out.append({
            "estimator": name,
            "draws": R,
            "failed": int((df["estimator"] == name).sum() - R),
            "mean_truth": truth,
            "mean_estimate": float(g["estimate"].mean()) if R else np.nan,
            "bias": bias,
            "bias_mcse": float(err.std(ddof=1) / math.sqrt(R)) if R > 1 else np.nan,
            "relative_bias_pct": 100.0 * bias / truth if R and truth else np.nan,
            "rmse": float(np.sqrt((err**2).mean())) if R else np.nan,
            "coverage": p,
            "coverage_mcse": math.sqrt(p * (1.0 - p) / R) if R else np.nan,
            "mean_se": float(g["se"].mean()) if R else np.nan,
            "sd_estimate": float(g["estimate"].std(ddof=1)) if R > 1 else np.nan,
            "sd_error": float(err.std(ddof=1)) if R > 1 else np.nan,
            "weighting": float((g["part_att"] - g["truth"]).mean()) if R else np.nan,
            "spillover": float(g["part_spillover"].mean()) if R else np.nan,
            "confounding": float(g["part_confounding"].mean()) if R else np.nan,
            **_own(g),
        })
    return pd.DataFrame.from_records(out)


def _own(g: pd.DataFrame) -> dict:
    """Bias and coverage of the estimator's own estimand where it has one (``truth_own``): PSM, the
    ATT over the matched treated post city-years; 2SLS, the generator's ``iv.estimand``."""
    h = g[g["truth_own"].astype(float).notna()]
    if not len(h):
        return {"mean_truth_own": np.nan, "bias_own": np.nan, "coverage_own": np.nan,
                "coverage_own_mcse": np.nan}
    p = float(h["covered_own"].astype(float).mean())
    return {"mean_truth_own": float(h["truth_own"].mean()),
            "bias_own": float((h["estimate"] - h["truth_own"]).mean()),
            "coverage_own": p, "coverage_own_mcse": math.sqrt(p * (1.0 - p) / len(h))}


def verdict(row) -> str:
    """A plain sentence on one summary row."""
    lo, hi = COVERAGE_BAND
    p, label = row["coverage"], LABELS.get(row["estimator"], row["estimator"])
    size = f"{row['bias']:+.5f} ({row['relative_bias_pct']:+.0f}% of the mean true ATT {row['mean_truth']:.5f})"
    parts = (f"weighting of the treated cities' effects {row['weighting']:+.5f}, spillover onto the controls "
             f"{row['spillover']:+.5f}, confounding (the estimator on the no-policy index) {row['confounding']:+.5f}")
    se = f"mean SE {row['mean_se']:.5f} vs SD of the errors {row['sd_error']:.5f}"
    if not np.isfinite(p):
        return f"{label}: no draw gave an estimate."
    if lo <= p <= hi:
        text = (f"{label}: coverage {100 * p:.1f}% within 93–97%: consistent with an unbiased estimator with "
                f"correct SEs (bias {size}; {se}).")
    elif p < lo:
        text = (f"{label}: coverage {100 * p:.1f}% below 93%: the estimator is biased for the generator's ATT by "
                f"{size}, ±{row['bias_mcse']:.5f} Monte Carlo s.e.; of which {parts}; {se}.")
    else:
        text = (f"{label}: coverage {100 * p:.1f}% above 97%: the intervals are too wide for the per-draw ATT "
                f"({se}); bias {size}, ±{row['bias_mcse']:.5f} Monte Carlo s.e.; of which {parts}.")
    q = row.get("coverage_own", np.nan)
    if q is not None and np.isfinite(q):
        text += (f" Against its own estimand, {OWN_ESTIMAND.get(row['estimator'], 'its own estimand')} "
                 f"(mean {row['mean_truth_own']:.5f}), the bias is {row['bias_own']:+.5f} and the "
                 f"coverage {100 * q:.1f}% (MC s.e. {100 * row['coverage_own_mcse']:.1f}).")
    return text


def _fmt(x, spec: str) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def render(df: pd.DataFrame, summary: pd.DataFrame | None = None, wall_seconds: float | None = None,
           workers: int | None = None) -> str:
    """Markdown: the summary table, the decomposition of the bias, one sentence per estimator, timing."""
    s = summarise(df) if summary is None else summary
    R = int(df["draw"].nunique())
    seeds = (int(df["seed"].min()), int(df["seed"].max()))
    lines = [
        "# Monte Carlo: the resilience study's estimators on the sample generator's DGP",
        "",
        f"{R} draws of `warehouse.sample.generate.simulate` (seeds {seeds[0]}–{seeds[1]}); panel from the complete "
        "latent data (balanced cities, years after the first); estimand: the true ATT on the index of the treated "
        "cities in post years (ground truth `att.resilience_index`, drawn anew each time). CRV1 by city, 95% "
        "t-intervals as the study reports them.",
        "",
        "| Estimator | Draws | Mean truth | Mean estimate | Bias | Rel. bias % | RMSE | Coverage 95% (MC s.e.) "
        "| Mean SE | SD of estimates |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s.to_dict("records"):
        lines.append(
            f"| {LABELS.get(r['estimator'], r['estimator'])} | {r['draws']} | {_fmt(r['mean_truth'], '.5f')} | "
            f"{_fmt(r['mean_estimate'], '.5f')} | {_fmt(r['bias'], '+.5f')} | {_fmt(r['relative_bias_pct'], '+.1f')} | "
            f"{_fmt(r['rmse'], '.5f')} | {_fmt(100 * r['coverage'], '.1f')}% "
            f"({_fmt(100 * r['coverage_mcse'], '.1f')}) | {_fmt(r['mean_se'], '.5f')} | "
            f"{_fmt(r['sd_estimate'], '.5f')} |")
    lines += [
        "",
        "Where the bias comes from (means over draws; the three parts add up to the bias): each estimator "
        "is linear in the outcome, so its estimate is the sum of the same estimator applied to the treated "
        "cities' true effects (minus the truth: *weighting*), to the untreated neighbours' true effects "
        "(*spillover*) and to the counterfactual no-policy index (*confounding*).",
        "",
        "| Estimator | Weighting | Spillover | Confounding | Bias | SD of errors | Failed draws |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s.to_dict("records"):
        lines.append(
            f"| {LABELS.get(r['estimator'], r['estimator'])} | {_fmt(r['weighting'], '+.5f')} | "
            f"{_fmt(r['spillover'], '+.5f')} | {_fmt(r['confounding'], '+.5f')} | {_fmt(r['bias'], '+.5f')} | "
            f"{_fmt(r['sd_error'], '.5f')} | {r['failed']} |")
    own = [r for r in s.to_dict("records") if np.isfinite(r.get("coverage_own", np.nan))]
    if own:
        lines += [
            "",
            "Against each estimator's own estimand, where it is not the ATT:",
            "",
            "| Estimator | Own estimand | Mean own estimand | Bias | Coverage 95% (MC s.e.) |",
            "|:---|:---|---:|---:|---:|",
            *[f"| {LABELS.get(r['estimator'], r['estimator'])} | {OWN_ESTIMAND.get(r['estimator'], '')} | "
              f"{_fmt(r['mean_truth_own'], '.5f')} | {_fmt(r['bias_own'], '+.5f')} | "
              f"{_fmt(100 * r['coverage_own'], '.1f')}% ({_fmt(100 * r['coverage_own_mcse'], '.1f')}) |" for r in own],
        ]
    lines += ["", *[f"- {verdict(r)}" for r in s.to_dict("records")], ""]
    iv = df[df["estimator"] == "2sls"]
    if len(iv) and iv["kp_wald_f"].notna().any():
        lines.append(f"2SLS first stage: median Kleibergen-Paap Wald F {iv['kp_wald_f'].median():.1f}, median "
                     f"effective F {iv['effective_f'].median():.1f}.")
    for name in ("psm_nearest", "psm_kernel"):
        g = df[df["estimator"] == name]
        if len(g) and g["n_matched_treated"].notna().any():
            lines.append(f"{LABELS[name]}: on average {g['n_matched_treated'].mean():.0f} treated and "
                         f"{g['n_matched_controls'].mean():.0f} control city-years matched "
                         f"({g['n_treated'].mean():.0f} treated panel cities).")
    per_draw = df.drop_duplicates("draw")
    t = per_draw["seconds_simulate"] + per_draw["seconds_estimate"]
    timing = (f"Time per draw (one process): mean {t.mean():.2f} s (simulation and panel "
              f"{per_draw['seconds_simulate'].mean():.2f} s, estimation {per_draw['seconds_estimate'].mean():.2f} s), "
              f"max {t.max():.2f} s")
    if wall_seconds is not None:
        timing += f"; wall clock {wall_seconds:.0f} s" + (f" with {workers} worker(s)" if workers else "")
    lines += ["", timing + ".", ""]
    warned = int(df["n_warnings"].fillna(0).sum())
    if warned:
        lines.append(f"Warnings raised during the fits (e.g. logit convergence): {warned} in all.")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m estimation.studies.montecarlo", description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of draw 0 (draw r uses seed + r)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the Markdown here too")
    ap.add_argument("--csv", type=Path, help="write the per-draw rows here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    df = run(args.draws, args.seed, args.workers, progress=True)
    wall = time.perf_counter() - t0
    text = render(df, wall_seconds=wall, workers=args.workers)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"montecarlo: wrote {args.out}", file=sys.stderr)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"montecarlo: wrote {args.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
