"""The Monte Carlo of the resilience study's estimators (estimation/studies/montecarlo.py), on 2
draws only: its numpy panel against the written ground_truth.json (and, slow, against the built
sample warehouse), the exact decomposition of each estimate, the summary's arithmetic, and rows
that do not depend on the number of worker processes."""
from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from estimation.engine.model import feols
from estimation.studies import montecarlo as mc
from estimation.studies import resilience
from warehouse.sample import generate, national, write_sample

SEED = mc.DEFAULT_SEED  # draw 0 of mc.run() is the sample the warehouse is built from
CONTROLS = list(resilience.CONTROLS)


@pytest.fixture(scope="module")
def draw0() -> mc.DrawData:
    return mc.simulate_draw(SEED)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return mc.run(draws=2, seed=SEED, workers=1)


def _wide(panel: pd.DataFrame, column: str, codes, years) -> np.ndarray:
    return panel.pivot(index="city_code", columns="year", values=column).loc[codes, years].to_numpy()


def test_panel_index_equals_the_written_ground_truth(draw0, tmp_path):
    write_sample(tmp_path, seed=SEED, firm_scale=0.01)  # the index does not depend on firm_scale
    gt = json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8"))
    by = gt["index"]["by_city_year"]
    p = draw0.panel
    assert sorted(p["city_code"].unique()) == sorted(gt["panel"]["city_codes"]) == sorted(by["city_codes"])
    first, last = gt["years"]["panel"]
    assert sorted(p["year"].unique()) == by["years"] == list(range(first, last + 1))
    assert len(p) == gt["panel"]["n_city_years"]
    # The JSON keeps 10 significant digits; the index is below 1, so 1e-9 absolute is exact.
    np.testing.assert_allclose(_wide(p, "res", by["city_codes"], by["years"]), np.array(by["factual"]),
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(_wide(p, "res_counterfactual", by["city_codes"], by["years"]),
                               np.array(by["counterfactual"]), rtol=0, atol=1e-9)
    # Treatment: the pilot cities of the truth, from its adoption year.
    adoption = gt["policy"]["adoption_year"]
    pilots = set(gt["policy"]["treated_city_codes"])
    assert (p["treat"] == p["city_code"].isin(pilots)).all()
    assert (p["did"] == (p["treat"] & (p["year"] >= adoption)).astype(int)).all()
    assert p["treat"].groupby(p["city_code"]).first().sum() == gt["policy"]["n_treated_in_panel"]
    # The truth of the draw is the ATT of the JSON; the effect columns average to it and to the spillover.
    post = p["year"] >= adoption
    assert draw0.truth == pytest.approx(gt["att"]["resilience_index"], rel=1e-9)
    assert p.loc[p["did"] == 1, "res_effect_treated"].mean() == pytest.approx(draw0.truth, rel=1e-12)
    neighbours = p["city_code"].isin(gt["att"]["spillover"]["city_codes"])
    assert p.loc[neighbours & post, "res_effect_untreated"].mean() == pytest.approx(
        gt["att"]["spillover"]["resilience_index"], rel=1e-9)
    assert (p.loc[~neighbours, "res_effect_untreated"] == 0).all()
    assert (p.loc[p["did"] == 0, "res_effect_treated"] == 0).all()


def test_controls_and_instrument_follow_the_warehouse_definitions(draw0):
    s = generate.simulate(SEED)
    f, rows_ = s.latent.factual, np.flatnonzero(s.cities.balanced)
    codes, years = s.cities.code[rows_].tolist(), [int(y) for y in s.latent.years[1:]]

    def sel(v):
        return f[v][rows_][:, 1:]

    expected = {  # dbt_project/models/intermediate/panel/int_study_controls.sql
        "eocden": np.log(sel("gdp") / sel("land_area")), "traff": sel("road_area") / sel("land_area"),
        "gove": sel("fiscal_expenditure") / sel("gdp"), "inv": np.log(1 + sel("fdi")),
        "salary": np.log(sel("avg_wage")),
    }  # fmt: skip
    for c, want in expected.items():
        np.testing.assert_array_equal(_wide(draw0.panel, c, codes, years), want, err_msg=c)
    # The instrument as resilience.iv_relation builds it from the loaded tables: telephones x the
    # previous year's internet users in 万人 / 100 (= millions).
    con = mc.connect()
    mc.load(con, draw0)
    iv = con.execute(f"select city_code, year, {resilience.INSTRUMENT} from ({resilience.iv_relation()})").df()
    internet_previous = national.series(np.array(years) - 1)["internet_users"]
    want = s.latent.phones1984[rows_][:, None] * internet_previous[None, :] / 100
    np.testing.assert_allclose(_wide(iv, resilience.INSTRUMENT, codes, years), want, rtol=1e-15)
    con.close()


@pytest.mark.slow
def test_panel_matches_the_built_sample_warehouse(draw0, published_sample):
    """The warehouse builds the same panel from the rounded, gappy files.

    Documented tolerances: did and treat exactly; the telephones to their 2 printed decimals
    (so the instrument to 0.005 x internet users / 100); the controls to 0.5% on city-years
    without an imputed input (the files round each value; gaps are interpolated); the index,
    whose entropy weights and min/max are fitted on all city-years, to 0.005 absolute (it lies
    in [0, 1]; typical differences are 5e-5); and the baseline DID to 2% of its SE.
    """
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    cols = ["city_code", "year", "res", "did", "treat", *CONTROLS, "telephones_per_100_1984", "n_imputed_values"]
    w = con.execute(f"select {', '.join(cols)} from main.analysis_panel").df()
    m = draw0.panel.merge(w, on=["city_code", "year"], suffixes=("", "_w"), validate="1:1")
    assert len(m) == len(draw0.panel) == len(w)
    assert (m["did"] == m["did_w"]).all() and (m["treat"] == m["treat_w"].astype(bool)).all()
    assert (m["telephones_per_100_1984"] - m["telephones_per_100_1984_w"]).abs().max() <= 0.005 + 1e-9
    clean = m["n_imputed_values"] == 0
    assert clean.mean() > 0.8
    for c in CONTROLS:
        rel = ((m[c] - m[f"{c}_w"]).abs() / m[c].abs())[clean]
        assert rel.max() < 5e-3, (c, rel.max())
    assert (m["res"] - m["res_w"]).abs().max() < 5e-3
    formula = resilience.specs()[3].formula
    mem = mc.connect()
    mc.load(mem, draw0)
    ours = feols(mem, resilience.PANEL, formula, vcov={"CRV1": "city_code"})
    theirs = feols(con, resilience.PANEL, formula, vcov={"CRV1": "city_code"})
    assert abs(ours.coef["did"] - theirs.coef["did"]) < 0.02 * theirs.se["did"]
    mem.close()
    con.close()


def test_each_estimate_is_the_sum_of_its_parts(rows, draw0):
    r0 = rows[rows["draw"] == 0].set_index("estimator")
    assert list(r0.index) == list(mc.ESTIMATORS)
    assert r0["error"].isna().all()
    parts = r0["part_att"] + r0["part_spillover"] + r0["part_confounding"]
    np.testing.assert_allclose(parts, r0["estimate"], rtol=0, atol=1e-14)
    # part_att (estimate minus the two fitted parts) equals the direct fit on the treated cities' effects.
    con = mc.connect()
    mc.load(con, draw0)
    direct = feols(con, mc.with_outcome("res_effect_treated"), resilience.specs()[3].formula,
                   vcov={"CRV1": "city_code"})
    assert direct.coef["did"] == pytest.approx(r0.loc["baseline", "part_att"], abs=1e-10)
    iv = feols(con, resilience.iv_relation(mc.with_outcome("res_effect_treated")), resilience.iv_formula(),
               vcov={"CRV1": "city_code"})
    assert iv.coef["did"] == pytest.approx(r0.loc["2sls", "part_att"], abs=1e-10)
    con.close()
    # The generator's own 2SLS decomposition (ground truth "iv", when it has one) agrees.
    gt_iv = generate.simulate(SEED).truth.get("iv")
    if gt_iv:
        assert r0.loc["2sls", "estimate"] == pytest.approx(gt_iv["coefficient_on_latent_data"], abs=1e-9)
        assert r0.loc["2sls", "part_confounding"] == pytest.approx(gt_iv["counterfactual_term"], abs=1e-9)
        assert r0.loc["2sls", "truth_own"] == pytest.approx(gt_iv["estimand"], rel=1e-12)
    # Every row carries the draw's truth and the coverage indicator of its own interval.
    for _, r in rows.iterrows():
        assert r["covered"] == (r["ci_low"] <= r["truth"] <= r["ci_high"])
        assert r["ci_low"] < r["estimate"] < r["ci_high"] and r["se"] > 0


def test_summary_arithmetic_by_hand():
    df = pd.DataFrame({
        "draw": [0, 1, 2, 3], "seed": [10, 11, 12, 13], "estimator": ["baseline"] * 4,
        "truth": [1.0, 2.0, 1.0, 2.0], "estimate": [1.5, 1.0, 1.0, 3.0], "se": [0.5, 0.5, 0.1, 0.2],
        "ci_low": [0.5, 0.0, 0.8, 2.6], "ci_high": [2.5, 2.0, 1.2, 3.4], "covered": [True, True, True, False],
        "truth_own": np.nan, "covered_own": np.nan,
        "part_att": [1.0, 2.0, 1.0, 2.0], "part_spillover": [0.0, -1.0, 0.0, 0.0],
        "part_confounding": [0.5, 0.0, 0.0, 1.0],
    })  # fmt: skip
    s = mc.summarise(df).set_index("estimator").loc["baseline"]
    err = np.array([0.5, -1.0, 0.0, 1.0])
    assert s["draws"] == 4 and s["failed"] == 0
    assert s["mean_truth"] == pytest.approx(1.5)
    assert s["mean_estimate"] == pytest.approx(1.625)
    assert s["bias"] == pytest.approx(0.125)
    assert s["relative_bias_pct"] == pytest.approx(100 * 0.125 / 1.5)
    assert s["rmse"] == pytest.approx(math.sqrt((err**2).mean()))
    assert s["coverage"] == pytest.approx(0.75)
    assert s["coverage_mcse"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert s["mean_se"] == pytest.approx(0.325)
    assert s["sd_estimate"] == pytest.approx(np.std([1.5, 1.0, 1.0, 3.0], ddof=1))
    assert s["sd_error"] == pytest.approx(np.std(err, ddof=1))
    assert s["bias_mcse"] == pytest.approx(np.std(err, ddof=1) / 2)
    assert (s["weighting"], s["spillover"], s["confounding"]) == pytest.approx((0.0, -0.25, 0.375))
    assert s["weighting"] + s["spillover"] + s["confounding"] == pytest.approx(s["bias"])
    # A failed draw (NaN estimate) is counted as failed, not in the statistics.
    failed = pd.concat([df, df.iloc[[0]].assign(draw=4, estimate=np.nan, covered=np.nan)], ignore_index=True)
    s2 = mc.summarise(failed).set_index("estimator").loc["baseline"]
    assert (s2["draws"], s2["failed"], s2["bias"]) == (4, 1, pytest.approx(0.125))
    # The verdicts: within the band, below it (with the size of the bias), above it.
    assert "within 93–97%: consistent with an unbiased estimator with correct SEs" in mc.verdict(
        {**s, "estimator": "baseline", "coverage": 0.95})
    low = mc.verdict({**s, "estimator": "baseline"})
    assert "coverage 75.0% below 93%: the estimator is biased for the generator's ATT by +0.12500" in low
    assert "above 97%" in mc.verdict({**s, "estimator": "baseline", "coverage": 1.0})


def test_summary_of_real_draws_by_hand(rows):
    s = mc.summarise(rows).set_index("estimator")
    assert list(s.index) == list(mc.ESTIMATORS)
    for name, g in rows.groupby("estimator"):
        err = g["estimate"] - g["truth"]
        assert s.loc[name, "draws"] == 2
        assert s.loc[name, "bias"] == pytest.approx(err.mean(), rel=1e-12)
        assert s.loc[name, "rmse"] == pytest.approx(math.sqrt((err**2).mean()), rel=1e-12)
        p = g["covered"].astype(float).mean()
        assert s.loc[name, "coverage"] == p
        assert s.loc[name, "coverage_mcse"] == pytest.approx(math.sqrt(p * (1 - p) / 2))
        assert s.loc[name, "relative_bias_pct"] == pytest.approx(100 * err.mean() / g["truth"].mean(), rel=1e-12)
    text = mc.render(rows)
    assert "| Estimator | Draws |" in text and text.count("\n- ") == len(mc.ESTIMATORS)


def test_rows_do_not_depend_on_the_workers_and_the_cli_writes_markdown(rows, tmp_path):
    out, csv = tmp_path / "mc.md", tmp_path / "mc.csv"
    assert mc.main(["--draws", "2", "--seed", str(SEED), "--workers", "2", "--out", str(out), "--csv", str(csv)]) == 0
    two = pd.read_csv(csv, dtype={"estimator": str})
    keep = ["draw", "seed", "estimator", "truth", "estimate", "se", "ci_low", "ci_high", "part_att",
            "part_spillover", "part_confounding", "truth_own", "nobs"]
    pd.testing.assert_frame_equal(two[keep], rows[keep], check_dtype=False, check_exact=True)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Monte Carlo") and "Coverage 95%" in text and "Time per draw" in text
