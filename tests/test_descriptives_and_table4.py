"""Table 2 (descriptives, VIFs) and Table 4's 2SLS columns: the engine against numpy,
statsmodels and pyfixest, and the program's results as published with the sample."""
from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL

from estimation.engine.descriptives import describe, vif
from estimation.studies import resilience
from estimation.studies.common import PANEL, winsorised


@pytest.fixture()
def frame():
    rng = np.random.default_rng(11)
    n = 500
    a = rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": 0.8 * a + rng.normal(size=n), "c": rng.normal(size=n) * 3 + 1,
                       "d": rng.integers(0, 2, size=n).astype(float)})
    df.loc[[3, 17, 99], "b"] = np.nan
    con = duckdb.connect()
    con.register("frame", df)
    return con, df


def test_describe_equals_pandas(frame):
    con, df = frame
    ours = describe(con, "frame", ["a", "b", "c", "d"]).set_index("variable")
    for c in "abcd":
        col = df[c].dropna()
        assert ours.loc[c, "n"] == len(col)
        assert ours.loc[c, "mean"] == pytest.approx(col.mean(), rel=1e-12)
        assert ours.loc[c, "sd"] == pytest.approx(col.std(ddof=1), rel=1e-10)
        assert (ours.loc[c, "min"], ours.loc[c, "max"]) == (col.min(), col.max())


def test_vif_equals_statsmodels(frame):
    from statsmodels.stats.outliers_influence import variance_inflation_factor
    from statsmodels.tools import add_constant

    con, df = frame
    ours = vif(con, "frame", ["a", "b", "c", "d"])
    x = add_constant(df[["a", "b", "c", "d"]].dropna()).to_numpy()
    for j, c in enumerate("abcd", start=1):
        assert ours[c] == pytest.approx(variance_inflation_factor(x, j), rel=1e-9)


@pytest.fixture(scope="module")
def published(published_sample):
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    yield published_sample, con
    con.close()


def test_table4_2sls_on_the_sample_equals_pyfixest(published):
    import pyfixest as pf

    _, con = published
    est = resilience.run_table4_iv(con)
    df = con.execute(resilience.iv_relation()).df().dropna(subset=[resilience.INSTRUMENT])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pf.feols(resilience.iv_formula(), data=df, vcov={"CRV1": "city_code"},
                          demeaner=pf.MapDemeaner(fixef_tol=1e-12, fixef_maxiter=100_000))
    iv = est.second_stage
    for term in theirs.coef().index:
        assert iv.coef[term] == pytest.approx(theirs.coef()[term], abs=COEF_TOL)
        assert iv.se[term] == pytest.approx(theirs.se()[term], rel=SE_RTOL)
    # the first-stage column is the IV's own first stage
    assert est.first_stage.coef[resilience.INSTRUMENT] == pytest.approx(
        iv.first_stages[0].coef[resilience.INSTRUMENT], rel=1e-9)
    assert iv.nobs == len(df) == est.first_stage.nobs
    assert iv.diagnostics["stock_yogo_10pct"] == 16.38 and iv.diagnostics["kp_rk_lm"]["df"] == 1


def test_the_program_publishes_table2_and_table4_with_the_vintage(published):
    home, con = published
    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    rows = con.execute("select variable, n, mean, vif from main.descriptives where table_id = 'table2' "
                       "order by variable").df().set_index("variable")
    assert set(rows.index) == set(resilience.TABLE2_VARIABLES)
    (mean_res,) = con.execute("select avg(res) from main.analysis_panel").fetchone()
    assert rows.loc["res", "mean"] == pytest.approx(mean_res, rel=1e-12) and np.isnan(rows.loc["res", "vif"])
    tests = dict(con.execute("select test, statistic from main.model_tests where model_id = 'table4_2sls' "
                             "and vintage = ?", [vintage]).fetchall())
    assert {"kp_rk_LM", "kp_rk_wald_F", "cragg_donald_F", "first_stage_F", "stock_yogo_10pct_size"} <= set(tests)
    fresh = resilience.run_table4_iv(con).second_stage.diagnostics
    assert tests["kp_rk_wald_F"] == pytest.approx(fresh["kp_rk_wald_f"], rel=1e-9)
    (report,) = home.reports.glob("*/report.md")
    text = report.read_text(encoding="utf-8")
    assert "the resilience study's Table 2" in text and "Kleibergen-Paap rk Wald F" in text
    assert "16.38" in text and "Covariate balance of the PSM-DID matching" in text
    # PSM-DID: the matched DID and the balance table, as a fresh run computes them
    fresh_psm = resilience.run_table4_psm(con)
    (coef,) = con.execute("select coef from main.estimates where model_id = 'table4_psm_nearest' and term = 'did' "
                          "and vintage = ?", [vintage]).fetchone()
    assert coef == pytest.approx(fresh_psm.result.coef["did"], rel=1e-9)
    bias = dict(con.execute("select variable, bias_after from main.balance where vintage = ? "
                            "and model_id = 'table4_psm_nearest'", [vintage]).fetchall())
    assert bias == pytest.approx(dict(zip(fresh_psm.balance.variable, fresh_psm.balance.bias_after)), rel=1e-9)


def test_robustness_columns_equal_pyfixest_on_data_prepared_in_pandas(published):
    import pyfixest as pf

    home, con = published
    rob = resilience.run_robustness(con)
    panel = con.execute("select * from main.analysis_panel").df()
    wins = panel.copy()
    for c in resilience.CONTINUOUS:
        lo, hi = np.quantile(panel[c].dropna(), [0.01, 0.99])  # linear interpolation, as quantile_cont
        wins[c] = panel[c].clip(lo, hi)
    ours_wins = con.execute(winsorised(PANEL, resilience.CONTINUOUS)).df().sort_values(["city_code", "year"]).reset_index(drop=True)
    wins = wins.sort_values(["city_code", "year"]).reset_index(drop=True)
    for c in resilience.CONTINUOUS:
        assert np.allclose(ours_wins[c], wins[c], rtol=1e-12, atol=0)
    data = {"robust_winsorised": wins,
            "robust_excl_municipalities": panel[~panel.city_code.isin(resilience.MUNICIPALITIES)],
            "robust_2014_2019": panel[panel.year.between(2014, 2019)]}
    for spec, result in zip(rob.specs, rob.results):
        if spec.model_id not in data:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = pf.feols(spec.formula, data=data[spec.model_id], vcov={"CRV1": "city_code"},
                              demeaner=pf.MapDemeaner(fixef_tol=1e-12, fixef_maxiter=100_000))
        assert result.coef["did"] == pytest.approx(theirs.coef()["did"], abs=COEF_TOL)
        assert result.se["did"] == pytest.approx(theirs.se()["did"], rel=SE_RTOL)
    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    persisted = {r[0] for r in con.execute("select distinct model_id from main.estimates where vintage = ? "
                                           "and model_id like 'robust_%'", [vintage]).fetchall()}
    assert persisted == {spec.model_id for spec in rob.specs}
    (report,) = home.reports.glob("*/report.md")
    assert "Robustness: Table 3 column (4) under each check" in report.read_text(encoding="utf-8")


def test_cityres_estimate_all_prints_the_whole_program(published_sample):
    from wap_fixtures import cli

    out = cli(published_sample, "estimate", "all", timeout=300)  # its own process: a read-only sandbox
    assert out.returncode == 0, out.stdout + out.stderr
    for title in ("Table 2: descriptive statistics and VIFs", "Table 3: baseline DID", "Table 4: PSM-DID and 2SLS",
                  "Robustness", "The NQP study's Table 3", "randomisation p-value"):
        assert title in out.stdout
    assert "Kleibergen-Paap rk Wald F" in out.stdout
