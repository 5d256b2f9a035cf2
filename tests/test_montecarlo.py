"""The Monte Carlo of the resilience study's estimators (estimation/studies/montecarlo.py), on 2
draws only: its numpy panel against the written ground_truth.json (and, slow, against the built
sample warehouse), the exact decomposition of each estimate, the summary's arithmetic, and rows
that do not depend on the number of worker processes. The second section (Tables 5-7 and the NQP
study): the panel's new columns against hand computations from the latent data, the per-draw
truths against the study's own truth_rows and the ground truth, the estimates against the study
functions, and the summary and verdicts by hand."""
from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from estimation.engine.model import feols
from estimation.studies import montecarlo as mc
from estimation.studies import nqp, resilience
from estimation.studies import resilience_heterogeneity as het
from warehouse.sample import generate, national, nqp_truth, write_sample
from warehouse.sample.cities import read_seed

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
    r0 = rows[(rows["draw"] == 0) & rows["estimator"].isin(mc.ESTIMATORS)].set_index("estimator")
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
        assert r["ci_low"] < r["ci_high"] and r["se"] > 0
        if r["estimator"] in mc.ESTIMATORS:
            assert r["ci_low"] < r["estimate"] < r["ci_high"]


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
    assert list(s.index) == list(mc.ALL_ESTIMATORS)
    for name, g in rows.groupby("estimator"):
        err = g["estimate"] - g["truth"]
        assert s.loc[name, "draws"] == 2
        assert s.loc[name, "bias"] == pytest.approx(err.mean(), rel=1e-12)
        assert s.loc[name, "rmse"] == pytest.approx(math.sqrt((err**2).mean()), rel=1e-12)
        p = g["covered"].astype(float).mean()
        assert s.loc[name, "coverage"] == p
        assert s.loc[name, "coverage_mcse"] == pytest.approx(math.sqrt(p * (1 - p) / 2))
        assert s.loc[name, "relative_bias_pct"] == pytest.approx(100 * err.mean() / g["truth"].mean(), rel=1e-12)
    for name in ("tier_small", "dig"):
        g = rows[rows["estimator"] == name]
        assert s.loc[name, "pilot_cities_mean"] == pytest.approx(g["n_pilot_cities"].mean())
        assert s.loc[name, "pilot_cities_min"] == g["n_pilot_cities"].min()
    g = rows[rows["estimator"] == "med_gip_a"]
    assert s.loc["med_gip_a", "bias_no_controls"] == pytest.approx((g["estimate_no_controls"] - g["truth"]).mean())
    text = mc.render(rows)
    assert "| Estimator | Draws |" in text and text.count("\n- ") == len(mc.ALL_ESTIMATORS)
    first, second = text.split("## Tables 5-7 and the NQP study")
    assert first.count("\n- ") == len(mc.ESTIMATORS) and second.count("\n- ") == len(mc.EXTENDED)
    assert f"{mc.MEDIATION_DRAWS} cluster-bootstrap draws" in second and "| Estimate | Target |" in second
    assert "of which Tables 5-7 and the NQP study" in second


def test_rows_do_not_depend_on_the_workers_and_the_cli_writes_markdown(rows, tmp_path):
    out, csv = tmp_path / "mc.md", tmp_path / "mc.csv"
    assert mc.main(["--draws", "2", "--seed", str(SEED), "--workers", "2", "--out", str(out), "--csv", str(csv)]) == 0
    two = pd.read_csv(csv, dtype={"estimator": str})
    keep = ["draw", "seed", "estimator", "truth", "estimate", "se", "ci_low", "ci_high", "part_att",
            "part_spillover", "part_confounding", "truth_own", "nobs", "n_pilot_cities", "bootstrap_draws",
            "estimate_no_controls"]
    assert set(two["estimator"]) == set(mc.ALL_ESTIMATORS)  # the second section's rows are compared too
    pd.testing.assert_frame_equal(two[keep], rows[keep], check_dtype=False, check_exact=True)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Monte Carlo") and "Coverage 95%" in text and "Time per draw" in text


# ------------------------------------------------------------ Tables 5-7 and the NQP study


@pytest.fixture(scope="module")
def sample0() -> generate.Sample:
    return generate.simulate(SEED)


def test_new_panel_columns_follow_the_latent_data(draw0, sample0):
    s, p = sample0, draw0.panel
    rows_, codes = s.panel.city_index, s.cities.code[s.panel.city_index].tolist()
    years = [int(y) for y in s.panel.years]
    f = s.latent.factual

    def sel(v, source=f):
        return source[v][rows_][:, 1:]

    expected = {  # int_mechanism_variables.sql, int_study_controls.sql, int_resilience_indicators.sql
        "tech_talent_share": (sel("emp_it") + sel("emp_research")) / sel("emp_total"),
        "log_new_digital_firms": np.log(1 + s.firms.digital[rows_][:, 1:]),
        "digital_finance": sel("digital_finance"),
        "log_green_patent_applications": np.log(1 + sel("green_patent_applications")),
        "ln_gdp_per_capita": np.log(sel("gdp") / sel("pop_total")),
        "industrial_structure": sel("va_tertiary") / sel("va_secondary"),
        "consumption_ratio": sel("retail_sales") / sel("gdp"),
        "loans_to_gdp": sel("loans") / sel("gdp"),
    }  # fmt: skip
    for c, want in expected.items():
        np.testing.assert_allclose(_wide(p, c, codes, years), want, rtol=1e-14, atol=0, err_msg=c)
    assert s.firm_scale == 1.0  # the digital-firm counts are simulate's default scale
    # NQP: the numpy replica of the warehouse's index on the panel's factual data.
    (nqp_index,) = nqp_truth.scores(nqp_truth.indicators({v: a[rows_][:, 1:] for v, a in f.items()}))
    np.testing.assert_array_equal(_wide(p, "nqp", codes, years), nqp_index)
    # its counterfactual and effects: they average to the ground truth's nqp.att and add up
    post = p["did"] == 1
    assert p.loc[post, "nqp_effect_treated"].mean() == pytest.approx(s.truth["nqp"]["att"], rel=1e-12)
    np.testing.assert_allclose(p["nqp_counterfactual"] + p["nqp_effect_treated"] + p["nqp_effect_untreated"],
                               p["nqp"], rtol=0, atol=1e-15)
    assert (p.loc[~p["treat"], "nqp_effect_treated"] == 0).all() and (p.loc[p["treat"], "nqp_effect_untreated"] == 0).all()
    # Size tiers: the ground truth's city_size_tiers with large_I / large_II grouped as the seed does.
    by_city = p.groupby("city_code").first()
    group = {"large_I": "large", "large_II": "large"}
    for tier, members in s.truth["city_size_tiers"].items():
        assert (by_city.loc[members, "size_tier_group"] == group.get(tier, tier)).all(), tier
    assert by_city["size_tier_group"].notna().all()
    assert set(by_city["size_tier_group"]) <= set(het.TIERS)
    # DIG: the core e-government pilots; IPP: from the first core designation year, per the seed.
    egov = {r["city_code"] for r in read_seed("ref_policies.csv")
            if r["policy"] == "egov_comprehensive_pilot" and r["coding"] == "core"}
    assert (by_city["egov_pilot"] == by_city.index.isin(egov)).all()
    first: dict[str, int] = {}
    for r in read_seed("ref_policies.csv"):
        if r["policy"] == "ip_demonstration_city" and r["coding"] == "core":
            first[r["city_code"]] = min(first.get(r["city_code"], 9999), int(r["year_effective"]))
    want = [int(y >= first.get(c, 9999)) for c, y in zip(p["city_code"], p["year"])]
    assert p["ip_city_post"].tolist() == want
    xiamen = p[p["city_code"] == "350200"].set_index("year")["ip_city_post"]  # second cohort, 2013
    assert xiamen.loc[2012] == 0 and xiamen.loc[2013] == 1
    assert p.loc[p["city_code"] == "420100", "ip_city_post"].eq(1).all()  # Wuhan, 2012
    assert p.loc[p["city_code"].isin(first), "ip_city_post"].any() and not p.loc[
        ~p["city_code"].isin(first), "ip_city_post"].any()


def test_new_truths_and_estimates_are_the_studies(draw0, sample0, rows):
    """Each per-draw truth as the study's truth_rows / the ground truth give it, each estimate as the
    study functions give it on the loaded panel."""
    gt = sample0.truth
    con = mc.connect()
    mc.load(con, draw0)
    tables = het.run_tables(con)
    by_group = {(r["table"], r["group"]): r for r in het.truth_rows(tables, gt)}
    r0 = rows[rows["draw"] == 0].set_index("estimator")
    assert list(r0.index) == list(mc.ALL_ESTIMATORS) and r0["error"].isna().all()
    for t in het.TIERS:
        want = by_group[("table6", het.TIER_LABELS[t])]
        name = f"tier_{t}"
        assert draw0.truths[name] == pytest.approx(want["true_effect"], abs=5e-6)  # truth_rows rounds to 1e-5
        assert draw0.pilot_cities[name] == want["pilot_cities"] == r0.loc[name, "n_pilot_cities"]
        assert r0.loc[name, "estimate"] == pytest.approx(want["estimate"], abs=5e-6)
    for name, (_, _, table, group) in mc.INSTITUTION_GROUPS.items():
        want = by_group[(table, group)]
        assert draw0.truths[name] == pytest.approx(want["true_effect"], abs=5e-6)
        assert draw0.pilot_cities[name] == want["pilot_cities"]
        assert (r0.loc[name, "ci_low"], r0.loc[name, "ci_high"]) == pytest.approx(
            (want["ci_low"], want["ci_high"]), abs=5e-6)
    assert draw0.pilot_cities["dig"] + draw0.pilot_cities["not_dig"] == draw0.n_treated
    # unrounded: the same means straight from the ground truth's effects
    effects = het.true_effects(gt)
    pilots = tables.pilots
    small = pilots[pilots["size_tier_group"] == "small"]
    assert draw0.truths["tier_small"] == pytest.approx(
        np.mean([effects[(c, y)] for c, y in zip(small["city_code"], small["year"])]), rel=1e-12)
    # Table 5 and the NQP truths
    for m in het.MECHANISMS:
        assert r0.loc[f"mech_{m}", "truth"] == gt["att"]["mechanisms"][m]
        fit = next(x for x in tables.table(5) if x.model_id.endswith(m)).result
        assert r0.loc[f"mech_{m}", "estimate"] == fit.coef["did"] and r0.loc[f"mech_{m}", "se"] == fit.se["did"]
    _, results = nqp.run_table3(con)
    for name, result in zip(("nqp_col2", "nqp_col3", "nqp_col4"), results[1:]):
        assert r0.loc[name, "truth"] == gt["nqp"]["att"]
        assert r0.loc[name, "estimate"] == result.coef["did"]
    assert r0.loc["nqp_col4", "estimate_no_controls"] == results[1].coef["did"]
    # The decomposition of the tier, institution and Table 3 estimates: numpy's least squares on the
    # parts equals feols refits of the same models, and the parts add up to the estimate.
    parts = {"part_spillover": "res_effect_untreated", "part_confounding": "res_counterfactual"}
    models = {m.model_id: m for m in tables.models}
    for model_id, relation, checks in (
            ("resilience.table6.all", het.tier_relation, {f"tier_{t}": [f"did_{t}"] for t in het.TIERS}),
            ("resilience.table7.dig_with_did", het.institution_relation, {"not_dig": ["did"], "dig": ["did", "did_dig"]}),
            ("resilience.table7.ipp_with_did", het.institution_relation, {"not_ipp": ["did"], "ipp": ["did", "did_ipp"]})):
        for part, column in parts.items():
            fit = feols(con, relation(mc.with_outcome(column)), models[model_id].formula, vcov="iid")
            for name, terms in checks.items():
                assert r0.loc[name, part] == pytest.approx(fit.coef[terms].sum(), rel=1e-8, abs=1e-12), (name, part)
    for i, name in ((1, "nqp_col2"), (2, "nqp_col3"), (3, "nqp_col4")):
        for part, column in (("part_spillover", "nqp_effect_untreated"), ("part_confounding", "nqp_counterfactual")):
            fit = feols(con, f"(select * replace ({column} as nqp) from {resilience.PANEL})", nqp.specs()[i].formula)
            assert r0.loc[name, part] == pytest.approx(fit.coef["did"], rel=1e-8, abs=1e-12), (name, part)
    decomposed = [n for n in mc.EXTENDED if n.startswith(("tier_", "nqp_")) or n in mc.INSTITUTION_GROUPS]
    total = r0.loc[decomposed, ["part_att", "part_spillover", "part_confounding"]].sum(axis=1)
    np.testing.assert_allclose(total, r0.loc[decomposed, "estimate"], rtol=0, atol=1e-14)
    assert r0.loc["nqp_col2", "part_att"] == pytest.approx(gt["nqp"]["att"], rel=1e-9)  # FE DID, one cohort
    with pytest.raises(ValueError, match="balanced"):
        mc.part_coefficients(draw0.panel.iloc[1:], ["did"], ["res"])
    assert r0.loc["nqp_col3", "estimate_no_controls"] == results[0].coef["did"]
    # Mediation: the study's Table 5 (999 draws, its seed) has the same a, se_a and a*b; the bootstrap differs.
    study = nqp.run_table5(con)
    for key, mediator in mc.MEDIATORS.items():
        path = gt["nqp"][nqp.MEDIATOR_TRUTH[mediator]]
        med, a, ab = study.results[mediator], r0.loc[f"med_{key}_a"], r0.loc[f"med_{key}_ab"]
        assert (a["truth"], ab["truth"]) == (path["a"], path["nie"])
        assert a["estimate"] == pytest.approx(med.a, rel=1e-12) and a["se"] == pytest.approx(med.se_a, rel=1e-12)
        assert (a["ci_low"], a["ci_high"]) == pytest.approx((med.a - 1.96 * med.se_a, med.a + 1.96 * med.se_a))
        assert ab["estimate"] == pytest.approx(med.indirect, rel=1e-12)
        assert ab["bootstrap_draws"] == mc.MEDIATION_DRAWS
        assert (ab["path_a"], ab["path_b"]) == pytest.approx((med.a, med.b), rel=1e-12)
        assert (ab["truth_a"], ab["truth_b"]) == pytest.approx((path["a"], path["implied_b"]), rel=1e-9)
        plain = feols(con, resilience.PANEL, f"{mediator} ~ did | city_code + year")
        assert a["estimate_no_controls"] == pytest.approx(plain.coef["did"], rel=1e-12)
        assert ab["ci_low"] < ab["ci_high"] and ab["se"] > 0
    con.close()


def test_second_section_summary_and_verdicts_by_hand():
    df = pd.DataFrame({
        "draw": [0, 1, 2, 3], "seed": [10, 11, 12, 13], "estimator": ["tier_extra_large"] * 4,
        "truth": [0.02, 0.01, 0.02, 0.03], "estimate": [0.03, 0.01, 0.01, 0.05], "se": [0.01, 0.01, 0.02, 0.01],
        "ci_low": [0.01, -0.01, -0.03, 0.04], "ci_high": [0.05, 0.03, 0.05, 0.06],
        "covered": [True, True, True, False], "truth_own": np.nan, "covered_own": np.nan,
        "part_att": np.nan, "part_spillover": np.nan, "part_confounding": np.nan,
        "n_pilot_cities": [4.0, 4.0, 5.0, 3.0], "estimate_no_controls": np.nan,
    })  # fmt: skip
    s = mc.summarise(df).set_index("estimator").loc["tier_extra_large"]
    err = np.array([0.01, 0.0, -0.01, 0.02])
    assert s["draws"] == 4 and s["bias"] == pytest.approx(0.005)
    assert s["relative_bias_pct"] == pytest.approx(100 * 0.005 / 0.02)
    assert s["rmse"] == pytest.approx(math.sqrt((err**2).mean()))
    assert s["coverage"] == 0.75 and s["coverage_mcse"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert s["mean_se"] == pytest.approx(0.0125) and s["sd_error"] == pytest.approx(np.std(err, ddof=1))
    assert (s["pilot_cities_mean"], s["pilot_cities_min"], s["pilot_cities_max"]) == (4.0, 3.0, 5.0)
    assert np.isnan(s["weighting"]) and np.isnan(s["bias_no_controls"])
    # A draw without a truth is a failed draw.
    s2 = mc.summarise(df.assign(truth=[0.02, np.nan, 0.02, 0.03])).set_index("estimator").iloc[0]
    assert (s2["draws"], s2["failed"]) == (3, 1)
    # Verdicts: few pilot cities; within the band; over-coverage from too wide SEs; bad controls.
    row = {**s, "estimator": "tier_extra_large"}
    low = mc.verdict_extended(row)
    assert "below 93%" in low and "4.0 on average (3–5) pilot cities" in low and "CRV1" in low
    ok = mc.verdict_extended({**row, "coverage": 0.95})
    assert "within 93–97%: consistent" in ok and "Caution" in ok
    wide = {**row, "estimator": "tier_medium", "coverage": 1.0, "pilot_cities_mean": 20.0, "pilot_cities_min": 20.0,
            "pilot_cities_max": 20.0, "mean_se": 5 * s["sd_error"]}
    text = mc.verdict_extended(wide)
    assert "above 97%" in text and "over-covers" in text and "fewer than" not in text
    bad = {**row, "estimator": "nqp_col4", "coverage": 0.0, "pilot_cities_mean": np.nan, "bias": -0.02,
           "bias_mcse": 0.001, "bias_no_controls": 0.005}
    text = mc.verdict_extended(bad)
    assert "bad controls" in text and "without the controls: bias +0.005" in text
    # ... unless dropping the controls does not shrink the bias
    text = mc.verdict_extended({**bad, "bias_no_controls": -0.03})
    assert "bad controls, biased by construction" not in text and "not the bad controls' doing" in text
    assert mc.verdict_extended({**row, "coverage": np.nan}).endswith("no draw gave an estimate.")


def test_verdicts_on_the_decomposition_and_the_mediation_paths():
    base = {"estimator": "tier_small", "coverage": 0.6, "coverage_mcse": 0.03, "bias": -0.001, "bias_mcse": 1e-4,
            "relative_bias_pct": -50.0, "mean_truth": 0.002, "mean_se": 8e-4, "sd_error": 8e-4,
            "pilot_cities_mean": 12.0, "pilot_cities_min": 5.0, "pilot_cities_max": 19.0,
            "weighting": -1e-4, "spillover": -1e-5, "confounding": -8.9e-4}
    text = mc.verdict_extended(base)
    assert "below 93%" in text and "mostly confounding" in text and "no-policy" in text
    assert "mostly weighting" in mc.verdict_extended({**base, "weighting": -9e-4, "confounding": -1e-4})
    ab = {**base, "estimator": "med_gip_ab", "pilot_cities_mean": np.nan, "weighting": np.nan,
          "spillover": np.nan, "confounding": np.nan, "mean_path_a": 0.18, "mean_truth_a": 0.185,
          "mean_path_b": 2.5e-4, "mean_truth_b": 2.2e-3, "mean_b_pilots": 1.9e-3}
    text = mc.verdict_extended(ab)
    assert "the bias sits in b" in text and "closer on the pilot cities" in text and "bad controls" not in text
    # within the band, but a and b both off: offsetting errors
    text = mc.verdict_extended({**ab, "coverage": 0.95, "mean_path_a": 1.4, "mean_truth_a": 14.8,
                                "mean_path_b": 3e-4, "mean_truth_b": 2.6e-5, "mean_b_pilots": 4.9e-4})
    assert "within 93–97%: consistent" in text and "offsetting errors" in text
    # With a decomposition, the bad controls show as the weighting part (a plain FE DID has none).
    col4 = {**base, "estimator": "nqp_col4", "coverage": 0.0, "pilot_cities_mean": np.nan, "bias": -0.02,
            "bias_mcse": 2e-4, "weighting": -0.0146, "spillover": -1e-4, "confounding": -0.0053}
    text = mc.verdict_extended(col4)
    assert "bad controls, biased by construction (they take up -0.0146 of the effect" in text
    text = mc.verdict_extended({**col4, "weighting": -0.001, "confounding": -0.0189})
    assert "bad controls, biased" not in text and "not mainly the bad controls' doing" in text
    assert "mostly confounding" in text
