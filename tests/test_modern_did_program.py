"""The modern DID program on the published warehouse (single-cohort sample and staggered sample):
persisted, equal to the engine run directly, compared with the generator's truth, in the report."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest

from estimation.engine.did_cs import cs_att_gt
from estimation.studies import modern_did as md


def _truth(home) -> dict:
    return json.loads((home.landing / "ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def staggered(published_staggered):
    con = duckdb.connect(str(published_staggered.warehouse_db), read_only=True)
    yield published_staggered, con
    con.close()


@pytest.fixture(scope="module")
def single(published_sample):
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    yield published_sample, con
    con.close()


def _estimate(con, model_id, term):
    row = con.execute("select coef, se, ci_low, ci_high from main.estimates where model_id = ? and term = ? "
                      "order by created_at desc limit 1", [model_id, term]).fetchall()
    assert row, (model_id, term)
    return row[0]


@pytest.mark.slow
def test_staggered_cs_is_persisted_equal_to_the_engine_and_near_its_latent_value(staggered):
    home, con = staggered
    truth = _truth(home)["staggered"]
    coef, se, low, high = _estimate(con, "modern_did.cs_never", "ATT")
    cs = cs_att_gt(con, md.balanced_panel_sql(), outcome="res", unit="city_code", time="year",
                   cohort="adoption_year", control="never", bootstrap_draws=0)
    direct = cs.aggregate("simple")
    assert coef == pytest.approx(direct.coef, abs=1e-12) and se == pytest.approx(direct.se, rel=1e-9)
    latent = truth["cs_never"]["coefficient_on_latent"]
    assert low <= latent <= high
    # the files are rounded and a few cells imputed, the truth is not: close, not equal
    assert coef == pytest.approx(latent, rel=0.03)
    dynamic = con.execute("select count(*) from main.estimates where model_id = 'modern_did.cs_never' "
                          "and term like 'ATT(e=%'").fetchone()[0]
    # every event time of the truth but the earliest: with a varying base, k = -5 would need 2011
    assert dynamic == len(cs.aggregate("dynamic").rows) == len({r["event_time"] for r in truth["att_gt"]}) - 1
    repeated = con.execute("select model_id, term from main.estimates where model_id like 'modern_did.%' "
                           "group by run_id, model_id, term having count(*) > 1").fetchall()
    assert repeated == []


@pytest.mark.slow
def test_staggered_twfe_and_bacon_agree_with_the_truths_split(staggered):
    home, con = staggered
    tw = _truth(home)["staggered"]["twfe"]
    coef, *_ = _estimate(con, "modern_did.twfe", "ATT")
    assert coef == pytest.approx(tw["coefficient_on_latent"], rel=0.03)
    est, w = np.array(con.execute("select estimate, weight from main.did_decomposition "
                                  "where model_id = 'modern_did.bacon'").fetchall()).T
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (est * w).sum() == pytest.approx(coef, abs=1e-10)
    types = {r[0] for r in con.execute("select distinct comparison_type from main.did_decomposition").fetchall()}
    assert types == {"treated vs never", "earlier vs later treated", "later vs earlier treated"}


@pytest.mark.slow
def test_robust_estimators_cover_the_att_and_report_the_decomposition(staggered):
    home, con = staggered
    att = _truth(home)["att"]["resilience_index"]
    for model in ("modern_did.cs_never", "modern_did.cs_notyet", "modern_did.sa", "modern_did.bjs", "modern_did.did2s"):
        _, _, low, high = _estimate(con, model, "ATT")
        assert low <= att <= high, model
    text = next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")
    assert "Heterogeneity-robust DID" in text and "weighting bias" in text
    assert "Callaway-Sant'Anna (never-treated) on the latent panel" in text
    for figure in ("modern_did_event_studies.png", "bacon.png", "honest_did.png", "spillover_distance_bands.png"):
        assert figure in text


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["single", "staggered"])
def test_spillover_within_150_km_covers_the_planted_truth(sample, request):
    home, con = request.getfixturevalue(sample)
    spill = _truth(home)["att"]["spillover"]
    coef, se, low, high = _estimate(con, "modern_did.distance_bands", f"band_0_{md.SPILLOVER_KM:g}")
    assert low <= spill["resilience_index"] <= high


@pytest.mark.slow
def test_honest_did_rows_and_words_in_the_single_sample_report(single):
    home, con = single
    rows = con.execute("select restriction, m, ci_low, ci_high from main.sensitivity "
                       "where model_id = 'modern_did.honest' order by restriction, m").fetchall()
    rm = [r for r in rows if r[0] == "relative_magnitude"]
    assert [r[1] for r in rm] == list(md.HONEST_MBAR)
    widths = [r[3] - r[2] for r in rm]
    assert all(b >= a - 1e-12 for a, b in zip(widths, widths[1:]))  # robust CIs widen with Mbar
    text = next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")
    assert "Sensitivity to parallel trends (HonestDiD" in text
    assert "Relative magnitudes: the robust CI" in text and "What this implies for the headline DID" in text


@pytest.mark.slow
def test_dml_is_persisted_and_reproducible(single):
    from estimation.engine.dml import dml_did

    home, con = single
    coef, se, *_ = _estimate(con, "modern_did.dml", "did")
    again = dml_did(con, md.balanced_panel_sql(), outcome="res", treatment="did", controls=list(md.CONTROLS),
                    unit="city_code", time="year", learner="lasso", n_folds=md.DML_FOLDS, seed=md.DML_SEED)
    assert coef == pytest.approx(again.coef, abs=1e-12) and se == pytest.approx(again.se, rel=1e-9)


def _panel_frame(con):
    df = con.execute(md.balanced_panel_sql()).df()
    df["city"] = df["city_code"].astype(int)  # moderndid wants a numeric id
    return df


@pytest.mark.slow
@pytest.mark.parametrize("control", ["never", "notyet"])
def test_staggered_sample_cs_equals_moderndid(staggered, control):
    """On the staggered sample's warehouse panel, as on mpdta (tests/test_did_cs.py)."""
    import warnings

    moderndid = pytest.importorskip("moderndid")
    _, con = staggered
    df = _panel_frame(con)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = moderndid.att_gt(df, yname="res", tname="year", idname="city", gname="adoption_year",
                               control_group={"never": "nevertreated", "notyet": "notyettreated"}[control],
                               base_period="varying")
        dyn = moderndid.aggte(ref, type="dynamic", cband=False)
        simple = moderndid.aggte(ref, type="simple", cband=False)
    ours = cs_att_gt(con, md.balanced_panel_sql(), outcome="res", unit="city_code", time="year",
                     cohort="adoption_year", control=control, bootstrap_draws=0)
    a = ours.att_gt_frame()
    np.testing.assert_allclose(a["att"].to_numpy(), ref.att_gt, rtol=0, atol=1e-8)
    np.testing.assert_allclose(a["se"].to_numpy(), ref.se_gt, rtol=1e-6)
    assert ours.aggregate("simple").coef == pytest.approx(simple.overall_att, abs=1e-8)
    assert ours.aggregate("simple").se == pytest.approx(simple.overall_se, rel=1e-6)
    np.testing.assert_allclose([r["coef"] for r in ours.aggregate("dynamic").rows], dyn.att_by_event, atol=1e-8)
    np.testing.assert_allclose([r["se"] for r in ours.aggregate("dynamic").rows], dyn.se_by_event, rtol=1e-6)


@pytest.mark.slow
def test_staggered_sample_did2s_and_sun_abraham_equal_pyfixest(staggered):
    import warnings

    pf = pytest.importorskip("pyfixest")
    _, con = staggered
    df = _panel_frame(con)
    coef, se, *_ = _estimate(con, "modern_did.did2s", "ATT")
    ref = pf.did2s(df, yname="res", first_stage="~ 0 | city_code + year", second_stage="~ did", treatment="did",
                   cluster="city_code")
    # pyfixest recovers the first-stage fixed effects to ~1e-6 (see tests/test_did_sa_bjs_did2s.py)
    assert coef == pytest.approx(float(ref.coef()["did"]), rel=1e-5)
    assert se == pytest.approx(float(ref.se()["did"]), rel=1e-4)
    df["g"] = df["adoption_year"].astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.event_study(data=df, yname="res", idname="city_code", tname="year", gname="g",
                             estimator="saturated")
        agg = fit.aggregate()
    got = dict(con.execute("select term, coef from main.estimates where model_id = 'modern_did.sa' "
                           "and term like 'ATT(e=%'").fetchall())
    for k, row in agg.iterrows():
        assert got[f"ATT(e={int(k)})"] == pytest.approx(float(row["Estimate"]), abs=1e-8), k
