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

Tables 5-7 and the NQP study (section two of the report; each row carries its own per-draw
``truth``):

* ``mech_*``: Table 5, the baseline DID on the tech-talent share and on ln(1 + new digital
  firms) (:func:`~estimation.studies.resilience_heterogeneity.run_table5`), against ground truth
  ``att.mechanisms``. The digital-firm counts are those of ``simulate``'s default
  ``firm_scale`` = 1 (the CLI's ``make sample`` default; the tests' warehouse uses fewer firms);
* ``tier_*``: each size tier's own effect from Table 6's all-tiers model, and ``dig`` / ``not_dig``
  / ``ipp`` / ``not_ipp``: the pilots with and without the status from Table 7's with-DID models
  (:func:`~estimation.studies.resilience_heterogeneity.group_effects` on
  :func:`~estimation.studies.resilience_heterogeneity.run_tables`), against the mean true index
  effect over that group's pilot city-years after adoption (the arithmetic of
  :func:`~estimation.studies.resilience_heterogeneity.truth_rows`, unrounded);
* ``nqp_col2`` / ``nqp_col3`` / ``nqp_col4``: the NQP study's Table 3 (city and year FE without
  controls; controls without FE; both) against ``nqp.att``;
* ``med_dif_*`` / ``med_gip_*``: the NQP study's Table 5 mediation by digital finance and by
  ln(1 + green patent applications) (the study's arguments, with :data:`MEDIATION_DRAWS` cluster
  bootstrap draws seeded by the draw's seed): ``a`` (normal 95% CI from its CRV1 SE) against the
  generator's ``a``, and ``a*b`` (percentile bootstrap CI) against the natural indirect effect.

The tier, institution and NQP Table 3 estimates are split like the first four (their models are
linear in the outcome too; the refits on the parts are least squares in numpy on the balanced
panel, :func:`part_coefficients`). Diagnostics for the verdicts: a and Table 3's columns without the
controls (``estimate_no_controls``), and on the a*b rows both paths beside their truths and b on
the pilot cities alone.

CLI: ``python -m estimation.studies.montecarlo --draws 200 --workers 2 --out MONTECARLO.md``.
"""
from __future__ import annotations

import argparse
import functools
import math
import multiprocessing
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from estimation.engine.mediation import mediation
from estimation.engine.model import feols
from estimation.engine.psm import matched_relation
from estimation.engine.sqlutil import temp_scope
from warehouse.connections import duckdb_config
from warehouse.paths import REFERENCE_SEEDS_DIR, SEEDS_DIR
from warehouse.sample import generate, national, nqp_truth
from warehouse.sample.cities import read_seed

from . import nqp
from . import resilience as study
from . import resilience_heterogeneity as het
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
NQP_PARTS = {"part_spillover": "nqp_effect_untreated", "part_confounding": "nqp_counterfactual"}

# ------------------------------------------------------------ Tables 5-7 and the NQP study
# Estimators of the second section, by block (one block = one set of fits; a failure fails the block).
BLOCKS = {
    "tables5_7": ("mech_tech_talent_share", "mech_log_new_digital_firms",
                  *(f"tier_{t}" for t in het.TIERS), "not_dig", "dig", "not_ipp", "ipp"),
    "nqp_table3": ("nqp_col2", "nqp_col3", "nqp_col4"),
    "nqp_mediation": ("med_dif_a", "med_dif_ab", "med_gip_a", "med_gip_ab"),
}
EXTENDED = tuple(name for names in BLOCKS.values() for name in names)
ALL_ESTIMATORS = (*ESTIMATORS, *EXTENDED)
# Fewer cluster-bootstrap draws than the study's nqp.MEDIATION_DRAWS (999), to keep a draw fast.
MEDIATION_DRAWS = 199
MEDIATORS = {"dif": "digital_finance", "gip": "log_green_patent_applications"}  # estimator key -> column
# Institutions: estimator -> (pilot_rows flag, value, group_effects table and group).
INSTITUTION_GROUPS = {"not_dig": ("dig", 0, "table7.dig", "not DIG"), "dig": ("dig", 1, "table7.dig", "DIG"),
                      "not_ipp": ("ipp", 0, "table7.ipp", "not IPP"), "ipp": ("ipp", 1, "table7.ipp", "IPP")}
LABELS.update({
    "mech_tech_talent_share": "Table 5: tech-talent share",
    "mech_log_new_digital_firms": "Table 5: ln(1 + new digital firms)",
    **{f"tier_{t}": f"Table 6 (all tiers): {het.TIER_LABELS[t].lower()} cities" for t in het.TIERS},
    "tier_megacity": "Table 6 (all tiers): megacities",
    "not_dig": "Table 7: pilots without DIG (DID)",
    "dig": "Table 7: DIG pilots (DID + DID x DIG)",
    "not_ipp": "Table 7: pilots without IPP (DID)",
    "ipp": "Table 7: IPP pilots (DID + DID x IPP)",
    "nqp_col2": "NQP Table 3 col. (2): city + year FE, no controls",
    "nqp_col3": "NQP Table 3 col. (3): controls, no FE",
    "nqp_col4": "NQP Table 3 col. (4): controls + FE",
    "med_dif_a": "NQP Table 5, DIF: a (policy -> digital finance)",
    "med_dif_ab": "NQP Table 5, DIF: a*b vs NIE",
    "med_gip_a": "NQP Table 5, LnGIP: a (policy -> ln green applications)",
    "med_gip_ab": "NQP Table 5, LnGIP: a*b vs NIE",
})
# What each estimate of the second section is compared with.
TARGETS = {
    "mech_tech_talent_share": "att.mechanisms.tech_talent_share",
    "mech_log_new_digital_firms": "att.mechanisms.log_new_digital_firms",
    **{f"tier_{t}": "mean true index effect, the tier's pilot city-years after adoption" for t in het.TIERS},
    **{k: "mean true index effect, the group's pilot city-years after adoption" for k in INSTITUTION_GROUPS},
    **{k: "nqp.att" for k in BLOCKS["nqp_table3"]},
    "med_dif_a": "nqp.mediation_digital_finance.a", "med_dif_ab": "nqp.mediation_digital_finance.nie",
    "med_gip_a": "nqp.mediation_green_patents.a", "med_gip_ab": "nqp.mediation_green_patents.nie",
}
# Estimates whose regressions include the NQP study's controls, two of which (Str, Fin) the policy moves.
WITH_NQP_CONTROLS = frozenset({"nqp_col3", "nqp_col4", "med_dif_a", "med_dif_ab", "med_gip_a", "med_gip_ab"})


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
    truths: dict[str, float] = field(default_factory=dict)  # EXTENDED estimator -> its truth (TARGETS)
    pilot_cities: dict[str, int] = field(default_factory=dict)  # tier / institution estimator -> pilot cities


@functools.cache
def _size_tier_bounds(seeds_dir: Path = SEEDS_DIR) -> tuple[tuple[str, float, float], ...]:
    """(size_tier_group, min, max) rows of the dbt seed city_size_tiers (a blank max is open)."""
    return tuple((r["size_tier_group"], float(r["min_urban_pop"]),
                  float(r["max_urban_pop"]) if r["max_urban_pop"].strip() else math.inf)
                 for r in read_seed("city_size_tiers.csv", seeds_dir))


def size_tier_groups(urban_pop_2014: np.ndarray) -> np.ndarray:
    """size_tier_group per city as int_city_attributes.sql assigns it: the seed city_size_tiers row
    with min_urban_pop <= 2014 urban population < max_urban_pop (None where no row matches)."""
    out = np.full(urban_pop_2014.shape, None, dtype=object)
    for group, low, high in _size_tier_bounds():
        out[(urban_pop_2014 >= low) & (urban_pop_2014 < high)] = group
    return out


@functools.cache
def _designation_years(policy: str, seeds_dir: Path = REFERENCE_SEEDS_DIR) -> dict[str, int]:
    rows = [r for r in read_seed("ref_policies.csv", seeds_dir) if r["policy"] == policy and r["coding"] == "core"]
    years: dict[str, int] = {}
    for r in rows:
        years[r["city_code"]] = min(years.get(r["city_code"], 9999), int(r["year_effective"]))
    return years


def designation_year(policy: str, codes: np.ndarray) -> np.ndarray:
    """First year_effective of ``policy`` (core coding, seed ref_policies) per city code, as
    policy_panel.sql codes adoption; NaN where the city is not designated."""
    years = _designation_years(policy)
    return np.array([years.get(c, np.nan) for c in codes], dtype=float)


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

    Tables 5-7 and the NQP study (dbt definitions in brackets): ``tech_talent_share`` = (emp_it +
    emp_research) / emp_total and ``log_new_digital_firms`` = ln(1 + the city-year's digital
    registrations, ``sample.firms.digital``) [int_mechanism_variables]; ``size_tier_group`` from
    the 2014 urban-core population and the seed city_size_tiers [int_city_attributes];
    ``egov_pilot`` = core e-government pilot city, ``ip_city_post`` = year >= the city's first
    core IP-demonstration year_effective [analysis_panel, policy_panel]; ``nqp`` = the numpy
    replica of the NQP index, :func:`warehouse.sample.nqp_truth.scores` on the factual panel
    data [nqp_index] (with its counterfactual and effects, scored as the ground truth does, for the
    decomposition); its mediators ``digital_finance`` and ``log_green_patent_applications`` =
    ln(1 + green applications); its controls ``ln_gdp_per_capita`` = ln(gdp / pop_total),
    ``industrial_structure`` = va_tertiary / va_secondary, ``consumption_ratio`` = retail_sales /
    gdp, ``loans_to_gdp`` = loans / gdp (and ``gove``) [int_study_controls,
    int_resilience_indicators].
    """
    lat, pt, design = sample.latent, sample.panel, sample.design
    rows = pt.city_index
    years = pt.years
    first = list(lat.years).index(int(years[0]))
    cols = slice(first, first + len(years))
    f = {v: a[rows, cols] for v, a in lat.factual.items()}
    n, T = len(rows), len(years)
    codes = sample.cities.code[rows]
    nqp_index, nqp_cf = nqp_truth.scores(nqp_truth.indicators(f), nqp_truth.indicators(
        {v: a[rows, cols] for v, a in lat.counterfactual.items()}))
    nqp_effect = nqp_index - nqp_cf
    ip_year = designation_year("ip_demonstration_city", codes)
    treat = design.treated[rows]
    did = treat[:, None] & (years >= design.adoption_year)[None, :]
    effect = pt.index_factual - pt.index_counterfactual
    zero = np.zeros_like(effect)
    frame = pd.DataFrame({
        UNIT: np.repeat(codes, T),
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
        # Tables 5-7
        "tech_talent_share": ((f["emp_it"] + f["emp_research"]) / f["emp_total"]).ravel(),
        "log_new_digital_firms": np.log1p(sample.firms.digital[rows][:, cols].astype(float)).ravel(),
        "size_tier_group": np.repeat(size_tier_groups(lat.core2014[rows]), T),
        "egov_pilot": np.repeat(design.egov_city[rows], T),
        "ip_city_post": (years[None, :] >= ip_year[:, None]).astype(np.int32).ravel(),
        # the NQP study
        "nqp": nqp_index.ravel(),
        "nqp_counterfactual": nqp_cf.ravel(),
        "nqp_effect_treated": np.where(treat[:, None], nqp_effect, zero).ravel(),
        "nqp_effect_untreated": np.where(treat[:, None], zero, nqp_effect).ravel(),
        "digital_finance": f["digital_finance"].ravel(),
        "log_green_patent_applications": np.log1p(f["green_patent_applications"]).ravel(),
        "ln_gdp_per_capita": np.log(f["gdp"] / f["pop_total"]).ravel(),
        "industrial_structure": (f["va_tertiary"] / f["va_secondary"]).ravel(),
        "consumption_ratio": (f["retail_sales"] / f["gdp"]).ravel(),
        "loans_to_gdp": (f["loans"] / f["gdp"]).ravel(),
    })
    nat = pd.DataFrame({TIME: lat.years.astype(np.int32),
                        "internet_users": national.series(lat.years)["internet_users"]})
    return frame, nat


def group_truths(panel: pd.DataFrame) -> tuple[dict[str, float], dict[str, int]]:
    """Per tier and institution estimator: the mean true index effect over the group's pilot
    city-years after adoption, and the number of its pilot cities (truth_rows' arithmetic: the
    rows of pilot_rows, did = 1, split by size_tier_group, egov_pilot, ip_city_post)."""
    pilots = panel[panel[TREATMENT] == 1]
    flags = {"dig": pilots["egov_pilot"].astype(int), "ipp": pilots["ip_city_post"].astype(int)}
    members = {f"tier_{t}": pilots["size_tier_group"] == t for t in het.TIERS}
    members.update({k: flags[flag] == value for k, (flag, value, _, _) in INSTITUTION_GROUPS.items()})
    effect = pilots["res_effect_treated"]
    truths = {k: float(effect[m].mean()) if m.any() else np.nan for k, m in members.items()}
    counts = {k: int(pilots.loc[m, UNIT].nunique()) for k, m in members.items()}
    return truths, counts


def simulate_draw(seed: int) -> DrawData:
    """Simulate the generator's latent data with ``seed`` (no files) and build the panel."""
    s = generate.simulate(seed)
    frame, nat = panel_frame(s)
    att = s.truth["att"]
    spill = att["spillover"]["resilience_index"]  # None without neighbours in the panel
    iv = s.truth.get("iv") or {}  # the generator's 2SLS decomposition, where it has one
    truths, pilots = group_truths(frame)
    truths.update({f"mech_{m}": float(att["mechanisms"][m]) for m in het.MECHANISMS})
    q = s.truth["nqp"]
    truths.update({name: float(q["att"]) for name in BLOCKS["nqp_table3"]})
    for key, mediator in MEDIATORS.items():
        path = q[nqp.MEDIATOR_TRUTH[mediator]]
        truths[f"med_{key}_a"], truths[f"med_{key}_ab"] = float(path["a"]), float(path["nie"])
    return DrawData(int(seed), frame, nat, float(att["resilience_index"]),
                    np.nan if spill is None else float(spill),
                    float(iv.get("estimand", np.nan)),
                    int(s.truth["policy"]["n_treated_in_panel"]), int(att["spillover"]["n_cities"]),
                    truths, pilots)


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


# ------------------------------------------------------------ Tables 5-7 and the NQP study of one draw

def part_coefficients(panel: pd.DataFrame, terms: list[str], outcomes: list[str]) -> pd.DataFrame:
    """OLS coefficients of ``terms`` for each outcome column at once, on the draw's balanced panel
    (rows city-major, years within, as :func:`panel_frame` builds it): the decomposition's refits,
    which need coefficients only. With city and year FE unless ``terms`` holds ``Intercept`` (then an
    intercept instead): the two-way within transform x - mean_city - mean_year + mean, exact on a
    balanced panel, then least squares. ``terms`` are the fitted model's (feols's kept terms), so the
    design is the model's own; tests/test_montecarlo.py checks the result against feols."""
    regressors = [t for t in terms if t != "Intercept"]
    X, Y = panel[regressors].to_numpy(float), panel[outcomes].to_numpy(float)
    if "Intercept" in terms:
        X = np.column_stack([np.ones(len(X)), X])
    else:
        n, T = panel[UNIT].nunique(), panel[TIME].nunique()
        if len(panel) != n * T or not (panel[UNIT].to_numpy().reshape(n, T) == panel[UNIT].to_numpy()[::T, None]).all():
            raise ValueError("part_coefficients needs the balanced, city-major panel of panel_frame")

        def within(a: np.ndarray) -> np.ndarray:
            a = a.reshape(n, T, -1)
            return (a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True)
                    + a.mean(axis=(0, 1), keepdims=True)).reshape(n * T, -1)

        X, Y = within(X), within(Y)
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    return pd.DataFrame(coef[-len(regressors):], index=regressors, columns=outcomes)


def _interval(estimate: float, se: float, low: float, high: float, nobs: int, **extra) -> dict:
    return {"estimate": float(estimate), "se": float(se), "ci_low": float(low), "ci_high": float(high),
            "nobs": int(nobs), **extra}


def _tables5_7(con, data: DrawData) -> dict[str, dict]:
    """Table 5's two mechanisms and the group effects of Tables 6 (all tiers) and 7 (with DID)."""
    tables = het.run_tables(con, PANEL)
    out = {}
    for model in tables.table(5):
        r = model.result
        low, high = (float(v) for v in r.conf_int.loc[TREATMENT])
        out[f"mech_{model.model_id.rsplit('.', 1)[1]}"] = _interval(r.coef[TREATMENT], r.se[TREATMENT], low, high,
                                                                    r.nobs)
    nobs = {m.model_id: m.result.nobs for m in tables.models}
    effects = het.group_effects(tables.models).set_index(["table", "group"])
    for t in het.TIERS:
        e = effects.loc[("table6", het.TIER_LABELS[t])]
        out[f"tier_{t}"] = _interval(e["coef"], e["se"], e["ci_low"], e["ci_high"], nobs["resilience.table6.all"])
    for key, (_, _, table, group) in INSTITUTION_GROUPS.items():
        e = effects.loc[(table, group)]
        out[key] = _interval(e["coef"], e["se"], e["ci_low"], e["ci_high"],
                             nobs[f"resilience.{table}_with_did"])
    # The decomposition: the same models (their terms, as tier_relation and institution_relation
    # build them) on the untreated neighbours' effects and the no-policy index.
    p = data.panel
    did = p[TREATMENT].to_numpy()
    extra = {**{f"did_{t}": did * (p["size_tier_group"] == t).to_numpy() for t in het.TIERS},
             **{f"did_{key}": did * p[flag].astype(int).to_numpy() for key, (flag, _) in het.INSTITUTIONS.items()}}
    p = p.assign(**extra)
    models = {m.model_id: m.result for m in tables.models}
    parts = list(PARTS.values())
    tiers = part_coefficients(p, list(models["resilience.table6.all"].coef.index), parts)
    for t in het.TIERS:
        out[f"tier_{t}"].update(dict(zip(PARTS, tiers.loc[f"did_{t}"])))
    for key in het.INSTITUTIONS:
        c = part_coefficients(p, list(models[f"resilience.table7.{key}_with_did"].coef.index), parts)
        out[f"not_{key}"].update(dict(zip(PARTS, c.loc[TREATMENT])))
        out[key].update(dict(zip(PARTS, c.loc[TREATMENT] + c.loc[f"did_{key}"])))
    for name in BLOCKS["tables5_7"]:
        if "part_confounding" in out[name]:
            _finish(out[name])
    return out


def _nqp_table3(con, data: DrawData) -> dict[str, dict]:
    """The NQP study's Table 3 columns (2)-(4) (table3_specs order), CRV1 by city."""
    _, results = nqp.run_table3(con, PANEL)
    out = {}
    for name, result in zip(("nqp_col1", "nqp_col2", "nqp_col3", "nqp_col4"), results):
        if name in BLOCKS["nqp_table3"]:
            low, high = (float(v) for v in result.conf_int.loc[TREATMENT])
            out[name] = _interval(result.coef[TREATMENT], result.se[TREATMENT], low, high, result.nobs)
    # Without their controls, column (4) is column (2) and column (3) is column (1): is the bias the controls'?
    out["nqp_col4"]["estimate_no_controls"] = out["nqp_col2"]["estimate"]
    out["nqp_col3"]["estimate_no_controls"] = float(results[0].coef[TREATMENT])
    # The decomposition (linear in the outcome, whatever the controls): the same designs on the parts.
    for name, result in zip(("nqp_col1", "nqp_col2", "nqp_col3", "nqp_col4"), results):
        if name in out:
            c = part_coefficients(data.panel, list(result.coef.index), list(NQP_PARTS.values()))
            out[name].update(dict(zip(NQP_PARTS, c.loc[TREATMENT])))
            _finish(out[name])
    return out


def _nqp_mediation(con, data: DrawData, draws: int | None = None) -> dict[str, dict]:
    """The NQP study's Table 5 (nqp.run_table5's arguments) with ``draws`` (default
    :data:`MEDIATION_DRAWS`) bootstrap draws seeded by the draw's seed: a with the normal 95% CI
    of nqp.mediation_truth_lines (a +- 1.96 se_a), a*b with its percentile bootstrap CI and SE.
    Diagnostics: a from the same step 1 without the controls (``estimate_no_controls``); on the a*b
    rows, the paths a and b beside the true a and the b that recovers the NIE from it (NIE / a),
    and b from step 2 on the pilot cities alone (``b_pilots``)."""
    out = {}
    controls = " + ".join(nqp.CONTROLS)
    for key, mediator in MEDIATORS.items():
        med = mediation(con, PANEL, nqp.OUTCOME, TREATMENT, mediator, controls=nqp.CONTROLS, fe=(UNIT, TIME),
                        cluster=UNIT, draws=MEDIATION_DRAWS if draws is None else draws, seed=data.seed)
        plain = feols(con, PANEL, f"{mediator} ~ {TREATMENT} | {UNIT} + {TIME}", vcov="iid")
        pilots = feols(con, f"(select * from {PANEL} where {GROUP})",
                       f"{nqp.OUTCOME} ~ {mediator} + {controls} | {UNIT} + {TIME}", vcov="iid")
        out[f"med_{key}_a"] = _interval(med.a, med.se_a, med.a - 1.96 * med.se_a, med.a + 1.96 * med.se_a,
                                        med.nobs, estimate_no_controls=float(plain.coef[TREATMENT]))
        low, high = med.boot_ci
        a_true, nie = data.truths.get(f"med_{key}_a", np.nan), data.truths.get(f"med_{key}_ab", np.nan)
        out[f"med_{key}_ab"] = _interval(med.indirect, med.boot_se, low, high, med.nobs,
                                         bootstrap_draws=med.n_valid, path_a=med.a, truth_a=a_true, path_b=med.b,
                                         truth_b=nie / a_true if a_true else np.nan,
                                         b_pilots=float(pilots.coef[mediator]))
    return out


_BLOCK_RUNNERS = {"tables5_7": _tables5_7, "nqp_table3": _nqp_table3, "nqp_mediation": _nqp_mediation}


def run_draw(con: duckdb.DuckDBPyConnection, draw: int, seed: int) -> list[dict]:
    """One draw: simulate, load, estimate; one row per estimator of :data:`ALL_ESTIMATORS` (an error
    is a row with NaN), each with its own per-draw ``truth`` (the ATT for :data:`ESTIMATORS`)."""
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
    for row in out:
        row["truth"] = data.truth
    t2 = time.perf_counter()
    for block, names in BLOCKS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fits, error = _BLOCK_RUNNERS[block](con, data), None
            except Exception as exc:  # the whole block fails together (one set of fits)
                fits, error = {}, f"{type(exc).__name__}: {exc}"
        for i, name in enumerate(names):
            fit = fits.get(name) or {"estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan}
            out.append({"draw": draw, "seed": seed, "estimator": name, **fit, "error": error,
                        "truth": data.truths.get(name, np.nan), "n_pilot_cities": data.pilot_cities.get(name),
                        "n_warnings": len(caught) if i == 0 else 0})  # a block's warnings on its first row
    t3 = time.perf_counter()
    for row in out:
        row.update(truth_spillover=data.truth_spillover, n_treated=data.n_treated,
                   n_neighbours=data.n_neighbours, seconds_simulate=t1 - t0, seconds_estimate=t3 - t1,
                   seconds_extended=t3 - t2)
        truth = row["truth"]
        ok = np.isfinite(row["estimate"]) and np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"])
        row["covered"] = bool(row["ci_low"] <= truth <= row["ci_high"]) if ok and np.isfinite(truth) else np.nan
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
           "first_stage_f", "effective_f", "kp_wald_f", "n_pilot_cities", "bootstrap_draws", "estimate_no_controls",
           "path_a", "truth_a", "path_b", "truth_b", "b_pilots", "n_warnings", "error",
           "seconds_simulate", "seconds_estimate", "seconds_extended")


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
    order = {name: i for i, name in enumerate(ALL_ESTIMATORS)}
    df = df.sort_values(["draw", "estimator"], key=lambda s: s.map(order) if s.name == "estimator" else s)
    return df[list(COLUMNS)].reset_index(drop=True)


# ------------------------------------------------------------ summary

def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per estimator, over the draws with an estimate: R, mean truth, mean estimate, bias = mean
    (estimate - truth), relative bias % = 100 bias / mean truth, RMSE of (estimate - truth), 95%
    coverage of the per-draw truth and its Monte Carlo standard error sqrt(p(1-p)/R), mean SE,
    SD of the estimates and of the errors (ddof 1), and the mean decomposition of the bias (NaN for
    the second section's estimators, which have none); for the tiers and institutions, the mean,
    minimum and maximum number of pilot cities over the draws. A draw without a finite estimate
    or truth counts as failed."""
    out = []
    present = set(df["estimator"])
    pilots = df["n_pilot_cities"] if "n_pilot_cities" in df else pd.Series(np.nan, index=df.index)
    for name in [e for e in ALL_ESTIMATORS if e in present] + sorted(present - set(ALL_ESTIMATORS)):
        g = df[(df["estimator"] == name) & np.isfinite(df["estimate"].astype(float))
               & np.isfinite(df["truth"].astype(float))]
        n_pilots = pilots[g.index].astype(float).dropna()
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
            "pilot_cities_mean": float(n_pilots.mean()) if len(n_pilots) else np.nan,
            "pilot_cities_min": float(n_pilots.min()) if len(n_pilots) else np.nan,
            "pilot_cities_max": float(n_pilots.max()) if len(n_pilots) else np.nan,
            "bias_no_controls": _mean_gap(g, "estimate_no_controls"),
            **{f"mean_{c}": _mean(g, c) for c in PATH_COLUMNS},
            **_own(g),
        })
    return pd.DataFrame.from_records(out)


PATH_COLUMNS = ("path_a", "truth_a", "path_b", "truth_b", "b_pilots")  # the a*b rows' diagnostics


def _mean(g: pd.DataFrame, column: str) -> float:
    values = g[column].astype(float).dropna() if column in g else pd.Series(dtype=float)
    return float(values.mean()) if len(values) else np.nan


def _mean_gap(g: pd.DataFrame, column: str) -> float:
    """Mean of (column - truth) over the rows where ``column`` is known; NaN if none (or no column)."""
    if column not in g:
        return np.nan
    gap = (g[column] - g["truth"]).astype(float).dropna()
    return float(gap.mean()) if len(gap) else np.nan


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


SE_RATIO_BAND = (0.9, 1.1)  # mean SE / SD of the errors outside this: the SEs are off, not just noisy
PATH_OFF = {"a": 0.25, "b": 0.5}  # a mediation path this far (relative) from its truth is "off"


def _finite(x) -> bool:
    return x is not None and not isinstance(x, str) and bool(np.isfinite(x))


def _parts_text(row) -> str | None:
    """The decomposition of a biased estimate, where it has one: its largest part and what it means."""
    parts = {k: row.get(k, np.nan) for k in ("weighting", "spillover", "confounding")}
    if not all(_finite(v) for v in parts.values()):
        return None
    main = max(parts, key=lambda k: abs(parts[k]))
    meaning = {
        "confounding": "the same regression on the no-policy outcome finds it, so the pilots' no-policy path "
                       "differs from that of the cities they are compared with"
                       + (" (one set of year effects for all city sizes: this tier's no-policy index trends "
                          "differently from the average comparison city)" if row["estimator"].startswith("tier_")
                          else ""),
        "weighting": "the regression weights the pilots' own effects differently from their plain mean"
                     + (", and the controls the policy moves take up part of them" if row["estimator"]
                        in WITH_NQP_CONTROLS else ""),
        "spillover": "the comparison cities near pilot cities gain too",
    }[main]
    listed = ", ".join(f"{k} {v:+.3g}" for k, v in parts.items())
    return f"mostly {main} ({listed}): {meaning}"


def _paths(row) -> dict | None:
    """The a*b rows' diagnostics: the two paths against the true a and the b that recovers the NIE."""
    a, ta, b, tb = (row.get(f"mean_{c}", np.nan) for c in ("path_a", "truth_a", "path_b", "truth_b"))
    if not all(_finite(v) for v in (a, ta, b, tb)) or ta == 0 or tb == 0:
        return None
    text = (f"a averages {a:.3g} (true {ta:.3g}) and b {b:.3g}, against the {tb:.3g} that recovers the NIE from the "
            "true a (NIE / a)")
    bp = row.get("mean_b_pilots", np.nan)
    if _finite(bp):
        text += f"; on the pilot cities alone b averages {bp:.3g}"
    return {"text": text, "a_off": abs(a / ta - 1) > PATH_OFF["a"], "b_off": abs(b / tb - 1) > PATH_OFF["b"],
            "pilots_closer": _finite(bp) and abs(bp - tb) < abs(b - tb)}


def verdict_extended(row) -> str:
    """A plain sentence on one summary row of the second section (Tables 5-7, the NQP study): within
    93-97% consistent (unless by offsetting errors); otherwise why, from the row's own numbers: few
    pilot cities (CRV1 unreliable), the NQP study's bad controls, a bias beyond twice its Monte
    Carlo s.e. with its largest part (decomposition), a mediation path off its truth, SEs too small
    or too large."""
    lo, hi = COVERAGE_BAND
    name, p = row["estimator"], row["coverage"]
    label = LABELS.get(name, name)
    if not _finite(p):
        return f"{label}: no draw gave an estimate."
    g = lambda x: _fmt(x, ".3g")
    bias = (f"bias {_fmt(row['bias'], '+.3g')} ± {g(row['bias_mcse'])} MC s.e. "
            f"({_fmt(row['relative_bias_pct'], '+.0f')}% of the mean truth {g(row['mean_truth'])})")
    ratio = row["mean_se"] / row["sd_error"] if _finite(row["sd_error"]) and row["sd_error"] > 0 else np.nan
    se = f"mean SE {g(row['mean_se'])} vs SD of the errors {g(row['sd_error'])}"
    biased = _finite(row["bias_mcse"]) and abs(row["bias"]) > 2 * row["bias_mcse"]
    pilots = row.get("pilot_cities_mean", np.nan)
    few = _finite(pilots) and pilots < het.FEW_TREATED
    if few:
        span = (f"{pilots:.0f}" if row["pilot_cities_min"] == row["pilot_cities_max"] else
                f"{pilots:.1f} on average ({row['pilot_cities_min']:.0f}–{row['pilot_cities_max']:.0f})")
        few_text = (f"only {span} pilot cities in this group, fewer than {het.FEW_TREATED}: CRV1 with so few "
                    "treated clusters is unreliable (MacKinnon and Webb 2017)")
    paths = _paths(row)
    # The bad controls: with the decomposition, they show as weighting (a single-cohort FE DID on the
    # pilots' own effects returns their mean exactly; a controls row's weighting is the part of the
    # effect the controls take up); without it (the a paths), a bias that shrinks without the controls.
    # For a*b the paths say where the bias sits instead.
    plain = row.get("bias_no_controls", np.nan)
    controls = name in WITH_NQP_CONTROLS and paths is None and biased
    weighting = row.get("weighting", np.nan)
    if _finite(weighting):
        bad = controls and abs(weighting) >= 0.25 * abs(row["bias"])
        evidence = f" (they take up {weighting:+.3g} of the effect, the weighting part)"
        not_bad_text = ("not mainly the bad controls' doing: their share (the weighting part) is small"
                        if controls and not bad else None)
    else:
        bad = controls and not (_finite(plain) and abs(plain) >= abs(row["bias"]))
        evidence = f" (the same regression without the controls: bias {plain:+.3g})" if _finite(plain) else ""
        not_bad_text = (f"not the bad controls' doing: the same regression without the controls is biased at least "
                        f"as much ({plain:+.3g})" if controls and not bad else None)
    bad_text = ("the regression includes the NQP study's controls, of which Str (tertiary / secondary value added) "
                "and Fin (loans / GDP) are moved by the pilot zones: bad controls, biased by construction" + evidence)
    parts = _parts_text(row) if biased else None
    bias_text = bias + (f"; {parts}" if parts else "")
    coverage = f"{label}: coverage {100 * p:.1f}% (MC s.e. {100 * row['coverage_mcse']:.1f})"
    if lo <= p <= hi:
        text = f"{coverage} within 93–97%: consistent ({bias}; {se})."
        if paths and paths["a_off"] and paths["b_off"]:
            text += f" But only by offsetting errors in the two paths: {paths['text']}."
        if few:
            text += f" Caution: {few_text}; the coverage here is no guarantee elsewhere."
        if bad:
            text += f" Yet {bad_text}."
        return text
    reasons = [few_text] if few else []
    too_wide = _finite(ratio) and ratio > SE_RATIO_BAND[1]
    if p > hi and too_wide:
        reasons.insert(0, f"the intervals are too wide ({se}): CRV1 over-covers, counting the heterogeneous "
                          "effects of a fixed set of pilot cities as noise (see above)")
    if bad:
        reasons.append(bad_text)
    if biased:
        reasons.append(bias_text if bad or p > hi else f"the estimator is biased for its target: {bias_text}")
    if not_bad_text:
        reasons.append(not_bad_text)
    if paths:
        where = ("the bias sits in b, " if paths["b_off"] and not paths["a_off"] else
                 "both paths are off, " if paths["b_off"] else "")
        reasons.append(where + paths["text"] + (
            " (closer on the pilot cities: the mediator's slope differs between cities, and the regression's b "
            "averages it over all of them)" if paths["b_off"] and paths["pilots_closer"] else ""))
    if p < lo and _finite(ratio) and ratio < SE_RATIO_BAND[0]:
        reasons.append(f"the SEs are too small ({se})")
    elif p < lo and not biased:
        reasons.append(f"no bias beyond Monte Carlo error ({bias}) and {se}")
    elif p > hi and not too_wide:
        reasons.append(f"the SEs are about right ({se}); {bias}")
    return f"{coverage} {'below 93%' if p < lo else 'above 97%'}: " + "; ".join(reasons) + "."


def _fmt(x, spec: str) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def render(df: pd.DataFrame, summary: pd.DataFrame | None = None, wall_seconds: float | None = None,
           workers: int | None = None) -> str:
    """Markdown: the summary table, the decomposition of the bias, one sentence per estimator; then
    the second section (Tables 5-7 and the NQP study: summary table and one sentence per estimate);
    timing."""
    s_all = summarise(df) if summary is None else summary
    extended = s_all["estimator"].isin(EXTENDED)
    s, s2 = s_all[~extended], s_all[extended]
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
    if len(s2):
        lines += ["", *render_extended(df, s2)]
    per_draw = df.drop_duplicates("draw")
    t = per_draw["seconds_simulate"] + per_draw["seconds_estimate"]
    timing = (f"Time per draw (one process): mean {t.mean():.2f} s (simulation and panel "
              f"{per_draw['seconds_simulate'].mean():.2f} s, estimation {per_draw['seconds_estimate'].mean():.2f} s")
    if "seconds_extended" in per_draw and per_draw["seconds_extended"].notna().any():
        timing += f", of which Tables 5-7 and the NQP study {per_draw['seconds_extended'].mean():.2f} s"
    timing += f"), max {t.max():.2f} s"
    if wall_seconds is not None:
        timing += f"; wall clock {wall_seconds:.0f} s" + (f" with {workers} worker(s)" if workers else "")
    lines += ["", timing + ".", ""]
    warned = int(df["n_warnings"].fillna(0).sum())
    if warned:
        lines.append(f"Warnings raised during the fits (e.g. logit convergence): {warned} in all.")
        lines.append("")
    return "\n".join(lines)


def render_extended(df: pd.DataFrame, s2: pd.DataFrame) -> list[str]:
    """The second section's Markdown lines: what is compared with what, the table, the sentences."""
    boot = df.loc[df["estimator"].isin(["med_dif_ab", "med_gip_ab"]), "bootstrap_draws"].astype(float).dropna()
    boot_text = (f"{boot.max():.0f} cluster-bootstrap draws per mediation (the study uses "
                 f"{nqp.MEDIATION_DRAWS}; fewer here to keep a draw fast)" if len(boot) else "no bootstrap")
    lines = [
        "## Tables 5-7 and the NQP study",
        "",
        ("Each estimate against its own per-draw truth from the generator's ground truth. Table 5: the baseline "
         "DID with the mechanism as outcome vs `att.mechanisms` (digital-firm counts at `firm_scale` = 1, the "
         "default of `simulate` and of `make sample`). Tables 6 and 7: each group's own effect (Table 6's "
         "all-tiers model; Table 7's DID and DID + DID x group) vs the mean true index effect over that group's "
         "pilot city-years after adoption, as `truth_rows` computes it; 95% t-intervals from CRV1 by city. NQP "
         "Table 3 (columns in `table3_specs` order) vs `nqp.att`. NQP Table 5 (the study's controls, city and "
         f"year FE): a with a ± 1.96 SE vs the generator's `a`; a·b with the percentile interval of {boot_text} "
         "vs the natural indirect effect `nie`."),
        "",
        ("| Estimate | Target | Draws | Pilot cities | Mean truth | Mean estimate | Bias | Rel. bias % | RMSE "
         "| Coverage 95% (MC s.e.) | Mean SE | SD of estimates |"),
        "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s2.to_dict("records"):
        pilots = r.get("pilot_cities_mean", np.nan)
        if pilots is None or not np.isfinite(pilots):
            pilots_text = ""
        elif r["pilot_cities_min"] == r["pilot_cities_max"]:
            pilots_text = f"{pilots:.0f}"
        else:
            pilots_text = f"{pilots:.1f} ({r['pilot_cities_min']:.0f}–{r['pilot_cities_max']:.0f})"
        lines.append(
            f"| {LABELS.get(r['estimator'], r['estimator'])} | {TARGETS.get(r['estimator'], '')} | {r['draws']} | "
            f"{pilots_text} | {_fmt(r['mean_truth'], '.4g')} | {_fmt(r['mean_estimate'], '.4g')} | "
            f"{_fmt(r['bias'], '+.3g')} | {_fmt(r['relative_bias_pct'], '+.1f')} | {_fmt(r['rmse'], '.3g')} | "
            f"{_fmt(100 * r['coverage'], '.1f')}% ({_fmt(100 * r['coverage_mcse'], '.1f')}) | "
            f"{_fmt(r['mean_se'], '.3g')} | {_fmt(r['sd_estimate'], '.3g')} |")
    failed = int(s2["failed"].sum())
    records = s2.to_dict("records")
    decomposed = [r for r in records if _finite(r.get("confounding", np.nan))]
    if decomposed:
        lines += [
            "",
            ("The bias of the tiers', institutions' and NQP Table 3's estimates, split as in the first section "
             "(these models are linear in the outcome too, controls and all): *weighting* (the model on the "
             "pilots' own true effects, minus the truth), *spillover* (on the untreated neighbours' effects), "
             "*confounding* (on the no-policy outcome)."),
            "",
            "| Estimate | Weighting | Spillover | Confounding | Bias | SD of errors |",
            "|:---|---:|---:|---:|---:|---:|",
            *[f"| {LABELS.get(r['estimator'], r['estimator'])} | {_fmt(r['weighting'], '+.3g')} | "
              f"{_fmt(r['spillover'], '+.3g')} | {_fmt(r['confounding'], '+.3g')} | {_fmt(r['bias'], '+.3g')} | "
              f"{_fmt(r['sd_error'], '.3g')} |" for r in decomposed],
        ]
    mediated = [r for r in records if _finite(r.get("mean_path_b", np.nan))]
    if mediated:
        lines += [
            "",
            ("The mediation's two paths (means over draws): a·b recovers the NIE only if b is near NIE / a, "
             "the slope of NQP on the mediator that the generator's path implies."),
            "",
            "| Mediation | a | true a | b | NIE / true a | b on the pilot cities alone | a·b | NIE |",
            "|:---|---:|---:|---:|---:|---:|---:|---:|",
            *[f"| {LABELS.get(r['estimator'], r['estimator'])} | {_fmt(r['mean_path_a'], '.4g')} | "
              f"{_fmt(r['mean_truth_a'], '.4g')} | {_fmt(r['mean_path_b'], '.3g')} | {_fmt(r['mean_truth_b'], '.3g')} | "
              f"{_fmt(r['mean_b_pilots'], '.3g')} | {_fmt(r['mean_estimate'], '.3g')} | {_fmt(r['mean_truth'], '.3g')} |"
              for r in mediated],
        ]
    lines += [
        "",
        ("Coverage above 97% with a mean SE well above the SD of the errors means CRV1 over-covers here: the "
         "clustered SE treats as sampling noise what the target conditions on, above all the spread of the "
         "pilot cities' own effects (across cities by tier, DIG, IPP and their own draw, and over event time as "
         "the effect ramps up); the target is the mean effect of this set of pilots in this draw (a sample ATT), "
         "so that spread is no error of the estimate. With fewer than "
         f"{het.FEW_TREATED} pilot cities in a group CRV1 is unreliable either way (MacKinnon and Webb 2017)."),
        "",
        *[f"- {verdict_extended(r)}" for r in records],
    ]
    if failed:
        errors = df.loc[df["estimator"].isin(EXTENDED), "error"].dropna()
        lines += ["", f"Failed estimates in this section: {failed} (first error: {errors.iloc[0] if len(errors) else '?'})."]
    return lines


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
