"""The staggered adoption design of the sample generator, its truth, and the warehouse's cohorts.

Oracles: the truth's aggregations are recomputed here from the latent index arrays by plain
numpy loops; the truth's two-way FE coefficient on the latent panel is compared with pyfixest
on the same latent panel; the published warehouse's cohorts with the reference seed.
"""
from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from warehouse.sample import generate
from warehouse.sample.policy import COHORT_SCALE

SEED = generate.DEFAULT_SEED
SEED_CSV = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "reference" / "ref_policies.csv"


@pytest.fixture(scope="module")
def staggered():
    return generate.simulate(SEED, adoption="staggered")


@pytest.fixture(scope="module")
def single():
    return generate.simulate(SEED)


def _latent(s):
    rows = s.panel.city_index
    years = s.panel.years
    adoption = s.design.adoption[rows]
    treated = s.design.treated[rows]
    return rows, years, adoption, treated, s.panel.index_factual - s.panel.index_counterfactual


def test_cohorts_come_from_the_seed(staggered):
    rows = [r for r in csv.DictReader(SEED_CSV.open(encoding="utf-8"))
            if r["policy"] == "big_data_pilot_zone" and r["coding"] == "core"]
    by_city = {r["city_code"]: int(r["year_staggered"]) for r in rows}
    got = {c: int(a) for c, a, t in zip(staggered.cities.code, staggered.design.adoption, staggered.design.treated) if t}
    assert got == by_city
    assert sorted(set(by_city.values())) == [2015, 2016, 2017] == sorted(COHORT_SCALE)
    assert staggered.truth["staggered"]["cohorts"] == {"2015": 6, "2016": 22, "2017": 29}


def test_no_effect_before_each_city_adopts(staggered):
    _, years, adoption, treated, diff = _latent(staggered)
    before = treated[:, None] & (years[None, :] < adoption[:, None])
    assert np.abs(diff[before]).max() == 0.0
    after = treated[:, None] & (years[None, :] >= adoption[:, None])
    assert (diff[after] > 0).mean() > 0.95


def test_effects_differ_by_cohort_at_the_same_event_time(staggered):
    """Cohort scale and ramp differ: at event time 2 the cohorts' mean effect per unit of the
    city-level multiplier differs (the DGP's COHORT_SCALE x ramp)."""
    rows, years, adoption, treated, _ = _latent(staggered)
    tau = staggered.latent.tau[rows]
    h = staggered.latent.heterogeneity[rows]
    ratios = {}
    for g in (2015, 2016, 2017):
        members = treated & (adoption == g)
        ratios[g] = float(np.mean(tau[members, list(staggered.years).index(g + 2)] / h[members]))
    assert ratios[2015] > ratios[2016] > ratios[2017]


def test_aggregations_equal_loops_over_the_latent_panel(staggered):
    _, years, adoption, treated, diff = _latent(staggered)
    st = staggered.truth["staggered"]
    cells = treated[:, None] & (years[None, :] >= adoption[:, None])
    assert st["aggregates"]["simple"] == pytest.approx(diff[cells].mean(), abs=1e-15)
    assert staggered.truth["att"]["resilience_index"] == pytest.approx(diff[cells].mean(), abs=1e-15)
    # dynamic: cohort-size-weighted mean of ATT(g, g+e) = plain mean over treated cities observed at e
    for row in st["aggregates"]["dynamic"]["rows"]:
        e = row["event_time"]
        vals = [diff[i, list(years).index(adoption[i] + e)] for i in np.flatnonzero(treated)
                if adoption[i] + e in years]
        assert row["att"] == pytest.approx(np.mean(vals), abs=1e-15)
    for row in st["aggregates"]["group"]["rows"]:
        g = row["group"]
        members = treated & (adoption == g)
        assert row["att"] == pytest.approx(diff[members][:, years >= g].mean(axis=0).mean(), abs=1e-15)
    for row in st["aggregates"]["calendar"]["rows"]:
        t = row["time"]
        members = treated & (adoption <= t)
        assert row["att"] == pytest.approx(diff[members, list(years).index(t)].mean(), abs=1e-15)


def test_twfe_decomposition_equals_pyfixest_on_the_latent_panel(staggered):
    pf = pytest.importorskip("pyfixest")
    rows, years, adoption, treated, _ = _latent(staggered)
    n, T = len(rows), len(years)
    frame = pd.DataFrame({
        "city": np.repeat(np.arange(n), T), "year": np.tile(years, n),
        "y": staggered.panel.index_factual.ravel(),
        "d": (treated[:, None] & (years[None, :] >= adoption[:, None])).astype(float).ravel(),
    })
    coef = float(pf.feols("y ~ d | city + year", data=frame).coef()["d"])
    tw = staggered.truth["staggered"]["twfe"]
    assert tw["coefficient_on_latent"] == pytest.approx(coef, abs=1e-10)
    assert tw["effect_part"] + tw["counterfactual_part"] == pytest.approx(coef, abs=1e-12)
    # the weighting bias is real in this design: TWFE's weighting of the effects is not the ATT
    assert abs(tw["weighting_bias"]) > 0.05 * staggered.truth["staggered"]["aggregates"]["simple"]


def test_the_single_design_is_unchanged_by_the_staggered_code(single):
    assert single.truth["policy"]["adoption_design"] == "single"
    assert "staggered" not in single.truth
    assert set(single.design.adoption[single.design.treated]) == {2016}


def test_sample_readme_tells_how_to_load_staggered(tmp_path):
    out = generate.write_sample(tmp_path / "s", firm_scale=0.01, adoption="staggered", end_year=2018)
    text = (Path(out["out_dir"]) / "README.txt").read_text(encoding="utf-8")
    assert 'adoption_dates = "staggered"' in text and "2015: 6 cities" in text


def test_unknown_design_is_refused():
    with pytest.raises(ValueError, match="adoption design must be one of single, staggered"):
        generate.simulate(SEED, adoption="rolling")


@pytest.mark.slow
def test_warehouse_carries_the_staggered_cohorts(published_staggered):
    import json

    truth = json.loads((published_staggered.landing / "ground_truth.json").read_text(encoding="utf-8"))
    con = duckdb.connect(str(published_staggered.warehouse_db), read_only=True)
    try:
        got = dict(con.execute("select adoption_year, count(distinct city_code) from main.analysis_panel "
                               "where adoption_year is not null group by 1").fetchall())
        wrong = con.execute("select count(*) from main.analysis_panel where did <> "
                            "case when adoption_year is not null and year >= adoption_year then 1 else 0 end"
                            ).fetchone()[0]
    finally:
        con.close()
    assert {str(k): v for k, v in got.items()} == truth["staggered"]["cohorts"]
    assert wrong == 0


def test_cs_truth_equals_the_engine_on_the_latent_panel(staggered, con):
    """The truth's CS (never-treated) split, from numpy loops, equals the engine's cs_att_gt run on
    the latent factual, effect and counterfactual panels."""
    from estimation.engine.did_cs import cs_att_gt

    rows, years, adoption, treated, diff = _latent(staggered)
    n, T = len(rows), len(years)
    panels = {"coefficient_on_latent": staggered.panel.index_factual, "effect_part": diff,
              "counterfactual_part": staggered.panel.index_counterfactual}
    truth = staggered.truth["staggered"]["cs_never"]
    for part, Y in panels.items():
        frame = pd.DataFrame({"city": np.repeat(np.arange(n), T), "year": np.tile(years, n), "y": Y.ravel(),
                              "g": np.repeat(np.where(treated, adoption, 0), T)})
        res = cs_att_gt(con, frame, outcome="y", unit="city", time="year", cohort="g", control="never",
                        bootstrap_draws=0)
        assert truth[part] == pytest.approx(res.aggregate("simple").coef, abs=1e-12), part
