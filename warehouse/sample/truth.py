"""The ground truth: entropy weights, index, and the true policy effects, from the complete latent data."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from warehouse.sample import iv_truth, nqp_truth, staggered_truth
from warehouse.sample import policy as pol
from warehouse.sample.cities import TIER_NAMES, CityTable
from warehouse.sample.dgp import PHONES_PILOT_SHIFT, POLICY_EFFECTS, Latent
from warehouse.sample.firms import FirmCounts
from warehouse.sample.index import (
    DIMENSIONS,
    INDICATOR_NAMES,
    INDICATORS,
    EntropyModel,
    fit_entropy,
    indicators,
)

NOTES = (
    "SYNTHETIC data. All truth values are computed from the complete, unrounded latent data of the "
    "generator, not from the files (which are rounded and have a few gaps). Analysis panel: cities with "
    "balanced_2011_2023 = 1 and years start_year+1..end_year (the first file year only feeds GDP growth). "
    "Index: 14 positive indicators, min-max normalised over all panel city-years, entropy weights "
    "(e = -(1/ln n) sum p ln p, 0 ln 0 = 0, d = 1 - e, w = d / sum d), index = sum w x', dimension score = "
    "sum of w x' over its indicators; weights, mins and maxes come from the factual data. Counterfactual = "
    "the same random draws without any policy exposure (treated and spillover cities alike), scored with "
    "the factual min/max and weights. att.resilience_index = mean of (factual - counterfactual index) over "
    "treated panel cities and years >= adoption year. by_event_time: the same mean per year (event time = "
    "year - adoption year); before adoption the factual and counterfactual data are identical, so the "
    "pre-period values are exactly 0 (the first file year lies outside the index panel and is 0 for that "
    "reason). by_tier uses the 2014 urban-core population in historical/urban_population_2014.csv. "
    "indicators: ATT in each indicator's own units. mechanisms: tech_talent_share = (emp_it + emp_research) "
    "/ emp_total; log_new_digital_firms = ln(1 + newly registered firms in GB/T 4754-2017 divisions 63-65), "
    "counted from the written registration records (factual) and from the same draws without the policy "
    "(counterfactual); it depends on firm_scale. spillover: untreated panel cities within the spillover "
    "radius of a treated city, post years. Jinan includes Laiwu from 2019 in the latent data as in the files. "
    "iv: the resilience study's 2SLS (Table 4) on the complete latent panel, split into the policy effect as "
    "the instrument weights it (estimand) and what it picks up from the untreated path (counterfactual_term); "
    "see warehouse/sample/iv_truth.py. nqp: the NQP index (index_spec nqp, 11 available indicators, panel "
    "min-max by direction, entropy weights from the factual data) - att over treated panel cities and post years, "
    "and the mediator path through green patent applications (a on ln(1 + applications), natural indirect "
    "and direct effects on NQP); see warehouse/sample/nqp_truth.py. Adoption: policy.adoption_design is single "
    "(every pilot city from policy.adoption_year) or staggered (each pilot city from its cohort's year; "
    "treated city-years are then those at or after the city's own adoption year, and event time is relative "
    "to it). staggered (staggered design only): ATT(g,t) per cohort and year, its simple / dynamic / group / "
    "calendar aggregations, and the two-way FE DID coefficient on the latent panel split into the effects as it "
    "weights them and the untreated paths; see warehouse/sample/staggered_truth.py."
)


@dataclass(frozen=True)
class PanelTruth:
    """Arrays behind the JSON, for tests and for callers that want more than the summary."""

    city_index: np.ndarray  # reference-city rows of the panel cities
    years: np.ndarray  # panel years
    X_factual: np.ndarray  # (city, year, indicator)
    X_counterfactual: np.ndarray
    model: EntropyModel
    index_factual: np.ndarray  # (city, year)
    index_counterfactual: np.ndarray


def _clean(obj):
    """Sorted, reproducible JSON values: 10 significant digits, no NaN, no -0.0."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        if not math.isfinite(x):
            return None
        x = float(f"{x:.10g}")
        return 0.0 if x == 0 else x
    return obj


def dumps(truth: dict) -> str:
    return json.dumps(_clean(truth), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def panel(cities: CityTable, latent: Latent, usd_cny: np.ndarray) -> PanelTruth:
    rows = np.flatnonzero(cities.balanced)
    Xf = indicators(latent.factual, usd_cny)[rows][:, 1:]
    Xc = indicators(latent.counterfactual, usd_cny)[rows][:, 1:]
    n, T, K = Xf.shape
    model = fit_entropy(Xf.reshape(-1, K))
    i_f, _ = model.score(Xf.reshape(-1, K))
    i_c, _ = model.score(Xc.reshape(-1, K))
    return PanelTruth(rows, latent.years[1:], Xf, Xc, model, i_f.reshape(n, T), i_c.reshape(n, T))


def _mean(a: np.ndarray) -> float | None:
    return float(a.mean()) if a.size else None


def _by_event_time(v: np.ndarray, adoption: np.ndarray, treated: np.ndarray, cols_years: np.ndarray,
                   years: np.ndarray, fill: bool = True) -> dict[str, float | None]:
    """Mean of v (city x cols_years) over treated cities at each event time year - adoption.

    Event times run over every file year relative to the first adoption (the single design's
    whole range); with fill, an event time before the panel starts is 0 (no effect before
    adoption) and one after it ends is None."""
    out: dict[str, float | None] = {}
    first = int(adoption[treated].min())
    for y in years:
        e = int(y - first)
        yrs = adoption[treated] + e  # each treated city's calendar year at event time e
        vals = [v[treated][i, list(cols_years).index(yy)] for i, yy in enumerate(yrs) if yy in cols_years]
        if vals:
            out[str(e)] = float(np.mean(vals))
        elif fill:
            out[str(e)] = 0.0 if e < 0 else None
    return out


def build(
    cities: CityTable,
    design: pol.PolicyDesign,
    latent: Latent,
    firms: FirmCounts,
    usd_cny: np.ndarray,
    seed: int,
    firm_scale: float,
) -> tuple[dict, PanelTruth]:
    years = latent.years
    pt = panel(cities, latent, usd_cny)
    rows, pyears = pt.city_index, pt.years
    n, T, _ = pt.X_factual.shape
    adoption = design.adoption[rows]  # first treated year per panel city (0 = never)
    treated = design.treated[rows]
    neighbour = design.neighbour[rows]
    cell = design.post(pyears)[rows]  # treated city-years of the index panel
    diff = pt.index_factual - pt.index_counterfactual

    f, c = latent.factual, latent.counterfactual
    # The truth's zero pre-period rests on this: no variable differs before a city's exposure.
    start = np.where(design.treated, design.adoption, design.neighbour_start)
    before = (years[None, :] < start[:, None]) | (start[:, None] == 0)
    for v in f:
        if not np.array_equal(np.where(before, f[v], 0), np.where(before, c[v], 0), equal_nan=True):
            raise AssertionError(f"{v} differs between factual and counterfactual before adoption")
    contrib_f = pt.model.normalise(pt.X_factual) * pt.model.weights
    contrib_c = pt.model.normalise(pt.X_counterfactual) * pt.model.weights
    dim_att = {}
    for dim in DIMENSIONS:
        cols = [j for j, (_, d) in enumerate(INDICATORS) if d == dim]
        dd = (contrib_f[..., cols] - contrib_c[..., cols]).sum(axis=-1)
        dim_att[dim] = _mean(dd[cell])

    by_event_index = _by_event_time(diff, adoption, treated, pyears, years)

    tier = latent.tier[rows]
    by_tier = {
        name: {
            "att": _mean(diff[cell & (tier == name)[:, None]]),
            "n_treated_cities": int((treated & (tier == name)).sum()),
            "n_panel_cities": int((tier == name).sum()),
        }
        for name in TIER_NAMES
    }

    ind_diff = pt.X_factual - pt.X_counterfactual
    by_indicator = {name: _mean(ind_diff[..., j][cell]) for j, name in enumerate(INDICATOR_NAMES)}

    tech_f = (f["emp_it"] + f["emp_research"]) / f["emp_total"]
    tech_c = (c["emp_it"] + c["emp_research"]) / c["emp_total"]
    dig_f = np.log1p(firms.digital.astype(float))
    dig_c = np.log1p(firms.digital_counterfactual.astype(float))
    mech = {"tech_talent_share": (tech_f - tech_c)[rows], "log_new_digital_firms": (dig_f - dig_c)[rows]}
    cell_all = design.post(years)[rows]
    nstart = design.neighbour_start[rows]
    spill_cell = neighbour[:, None] & (pyears[None, :] >= nstart[:, None])
    spill_cell_all = neighbour[:, None] & (years[None, :] >= nstart[:, None])
    mechanisms = {k: _mean(v[cell_all]) for k, v in mech.items()}
    by_event_mech = {k: _by_event_time(v, adoption, treated, years, years, fill=False) for k, v in mech.items()}
    spill = {
        "resilience_index": _mean(diff[spill_cell]),
        "tech_talent_share": _mean(mech["tech_talent_share"][spill_cell_all]),
        "log_new_digital_firms": _mean(mech["log_new_digital_firms"][spill_cell_all]),
        "n_cities": int(neighbour.sum()),
        "city_codes": sorted(cities.code[rows][neighbour].tolist()),
        "radius_km": pol.SPILLOVER_RADIUS_KM,
        "share_of_own_effect": pol.SPILLOVER_SHARE,
    }

    cols = slice(len(years) - T, None)
    iv = iv_truth.decompose(
        iv_truth.instrument(latent.phones1984[rows], pyears),
        cell.astype(float),
        pt.index_factual, pt.index_counterfactual,
        iv_truth.study_controls({v: f[v][rows][:, cols] for v in f}),
    )

    nqp = nqp_truth.build(rows, cols, f, c, cell, latent.mediator_held)

    I = pt.index_factual
    truth = {
        "synthetic": True,
        "generator": "warehouse.sample.write_sample",
        "seed": seed,
        "firm_scale": firm_scale,
        "years": {
            "files": [int(years[0]), int(years[-1])],
            "panel": [int(pyears[0]), int(pyears[-1])],
            "post": [int(design.adoption_year), int(years[-1])],
        },
        "panel": {
            "description": "cities with balanced_2011_2023 = 1 in ref_cities (exist at every year-end "
            "2011-2023), years start_year+1..end_year",
            "n_cities": int(n),
            "n_years": int(T),
            "n_city_years": int(n * T),
            "city_codes": cities.code[rows].tolist(),
        },
        "policy": {
            "name": pol.POLICY,
            "coding": "core",
            "adoption_year": int(design.adoption_year),
            "adoption_design": design.design,
            "treated_city_codes": sorted(cities.code[design.treated].tolist()),
            "n_treated": int(design.treated.sum()),
            "n_treated_in_panel": int(treated.sum()),
            "effects_at_full_exposure": POLICY_EFFECTS,
            "ramp": f"1 - {pol.RAMP}**(event_time + 1) for event_time >= 0, else 0",
            "tier_multiplier": pol.TIER_MULTIPLIER,
            "ip_city_multiplier": pol.IP_CITY_MULTIPLIER,
            "egov_city_multiplier": pol.EGOV_CITY_MULTIPLIER,
            "heterogeneity_sd": pol.HETEROGENEITY_SD,
        },
        "index": {
            "indicators": list(INDICATOR_NAMES),
            "dimensions": {dim: [nm for nm, d in INDICATORS if d == dim] for dim in DIMENSIONS},
            "weights": dict(zip(INDICATOR_NAMES, pt.model.weights)),
            "mins": dict(zip(INDICATOR_NAMES, pt.model.mins)),
            "maxes": dict(zip(INDICATOR_NAMES, pt.model.maxes)),
            "entropy": dict(zip(INDICATOR_NAMES, pt.model.entropy)),
            "usd_cny": {str(int(y)): float(r) for y, r in zip(years, usd_cny)},
            "summary": {
                "mean": float(I.mean()),
                "sd": float(I.std(ddof=1)),
                "min": float(I.min()),
                "p50": float(np.median(I)),
                "max": float(I.max()),
            },
            "by_city_year": {
                "city_codes": cities.code[rows].tolist(),
                "years": [int(y) for y in pyears],
                "factual": I.tolist(),
                "counterfactual": pt.index_counterfactual.tolist(),
            },
        },
        "city_size_tiers": {
            name: sorted(cities.code[rows][tier == name].tolist()) for name in TIER_NAMES
        },
        "att": {
            "resilience_index": _mean(diff[cell]),
            "dimensions": dim_att,
            "by_event_time": {"resilience_index": by_event_index, **by_event_mech},
            "by_tier": by_tier,
            "indicators": by_indicator,
            "mechanisms": mechanisms,
            "spillover": spill,
        },
        "nqp": nqp,
        **({"staggered": staggered_truth.build(diff, pt.index_counterfactual, adoption, treated, pyears)} if design.design == "staggered" else {}),
        "iv": {
            "instrument": "telephones_per_100_1984 x previous year's national internet users (millions)",
            "telephones": f"exp(ln 0.35 + {PHONES_PILOT_SHIFT} x pilot + 0.35 z), z ~ N(0, 1) per city",
            **iv,
        },
        "notes": NOTES,
    }
    return truth, pt
