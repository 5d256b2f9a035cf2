"""The identification checks beyond Table 4 of the resilience study: the generator's 2SLS ground
truth, the NQP study's robustness table (PSM-DID nearest and kernel, winsorising, 2014-2019),
the NQP -> resilience study's lagged-NQP 2SLS, and the propensity-score figure, each against an
independent computation (numpy, pyfixest) on the same data."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL, pf_crv1

from estimation.engine.model import feols
from estimation.studies import nqp, nqp_resilience, resilience
from estimation.studies.common import PANEL
from warehouse.sample import generate, iv_truth


_pf = pf_crv1


# ------------------------------------------------------------------ the generator's 2SLS truth

@pytest.fixture(scope="module")
def latent_panel():
    """The default sample's complete latent panel as a DuckDB table (no files, no rounding)."""
    s = generate.simulate()
    pt, lat, design = s.panel, s.latent, s.design
    rows, years = pt.city_index, pt.years
    n, T = len(rows), len(years)
    cols = slice(len(lat.years) - T, None)
    controls = iv_truth.study_controls({v: a[rows][:, cols] for v, a in lat.factual.items()})
    treated = design.treated[rows]
    frame = pd.DataFrame({
        "city_code": np.repeat(s.cities.code[rows], T), "year": np.tile(years, n),
        "res": pt.index_factual.ravel(),
        "did": (treated[:, None] & (years >= design.adoption_year)[None, :]).astype(float).ravel(),
        resilience.INSTRUMENT: iv_truth.instrument(lat.phones1984[rows], years).ravel(),
        **{c: controls[..., j].ravel() for j, c in enumerate(iv_truth.CONTROLS)},
    })
    con = duckdb.connect()
    con.register("latent_panel", frame)
    yield s, con, frame
    con.close()


def test_the_iv_truth_is_the_2sls_coefficient_on_the_latent_data(latent_panel):
    """Σ ž·y / Σ ž·d (numpy, one-step two-way demeaning of a balanced panel) equals the SQL
    engine's 2SLS on the same latent panel, and pyfixest's."""
    s, con, frame = latent_panel
    truth = s.truth["iv"]
    ours = feols(con, "latent_panel", resilience.iv_formula(), vcov={"CRV1": "city_code"})
    assert truth["estimand"] + truth["counterfactual_term"] == pytest.approx(
        truth["coefficient_on_latent_data"], rel=1e-12)
    assert float(ours.coef["did"]) == pytest.approx(truth["coefficient_on_latent_data"], rel=1e-8)
    theirs = _pf(resilience.iv_formula(), frame)
    assert float(ours.coef["did"]) == pytest.approx(theirs.coef()["did"], abs=COEF_TOL)
    # the estimand is the policy's effect only: with y = y0 (no policy) the "estimand" part is 0
    rng = np.random.default_rng(1)
    y0 = rng.normal(size=(5, 4))
    zero = iv_truth.decompose(rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), y0, y0, rng.normal(size=(5, 4, 1)))
    assert zero["estimand"] == 0.0 and zero["counterfactual_term"] == zero["coefficient_on_latent_data"]


def test_the_telephones_are_relevant_through_adoption_only(latent_panel):
    """log telephones = ln 0.35 + 0.8 pilot + 0.35 z: an OLS of log telephones on pilot status and
    the prominence factor recovers 0.8 and no prominence effect (z is independent of both)."""
    s, _, _ = latent_panel
    lat, treated = s.latent, s.design.treated
    free = (lat.phones1984 > 0.03) & (lat.phones1984 < 8.0)  # away from the clip
    X = np.column_stack([np.ones(free.sum()), treated[free], lat.prominence[free]])
    beta, *_ = np.linalg.lstsq(X, np.log(lat.phones1984[free]), rcond=None)
    resid = np.log(lat.phones1984[free]) - X @ beta
    se = np.sqrt(np.diag(np.linalg.inv(X.T @ X)) * resid.var(ddof=3))
    assert abs(beta[1] - 0.8) < 3 * se[1]
    assert abs(beta[2]) < 3 * se[2]


@pytest.fixture(scope="module")
def published(published_sample):
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    yield published_sample, con
    con.close()


def _truth(home) -> dict:
    return json.loads((home.landing / "ground_truth.json").read_text(encoding="utf-8"))


def test_the_sample_2sls_ci_covers_what_it_estimates_and_the_report_says_so(published):
    home, con = published
    truth = _truth(home)
    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    coef, low, high = con.execute("select coef, ci_low, ci_high from main.estimates where model_id = 'table4_2sls' "
                                  "and term = 'did' and vintage = ?", [vintage]).fetchone()
    assert low <= truth["iv"]["coefficient_on_latent_data"] <= high
    assert low <= truth["att"]["resilience_index"] <= high
    # the files are rounded, the truth is not: the warehouse's 2SLS is close to the latent one
    assert coef == pytest.approx(truth["iv"]["coefficient_on_latent_data"], rel=0.05)
    text = next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")
    assert "What 2SLS estimates on the complete latent data" in text and "the CI covers it" in text
    assert "pscore.png" in text


def test_psm_did_covers_the_true_effect_on_the_matched_pilot_city_years(published):
    """The matched pilots are the less prominent ones (smaller effects): the PSM-DID CI covers
    the truth on the rows it uses, computed by hand from ground_truth.json; the report says which."""
    home, con = published
    truth = _truth(home)
    psm = resilience.run_table4_psm(con)
    by = truth["index"]["by_city_year"]
    diff = pd.DataFrame(np.array(by["factual"]) - np.array(by["counterfactual"]), index=by["city_codes"],
                        columns=by["years"]).stack().rename("effect")
    rows = psm.matching.rows
    post = rows[rows.treated.astype(bool) & (rows.time >= truth["policy"]["adoption_year"])]
    on_matched = diff.loc[list(zip(post.unit.astype(str), post.time.astype(int)))].mean()
    low, high = psm.result.conf_int.loc["did"]
    assert low <= on_matched <= high
    assert on_matched < truth["att"]["resilience_index"]  # the matched pilots have smaller effects
    lines = resilience.psm_truth_comparison(psm, truth, tuple(truth["years"]["panel"]))
    assert f"**{on_matched:.5f}**" in lines[1] and "the CI covers it" in lines[1]
    text = next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")
    assert "True effect on the" in text and "matched pilot city-years" in text


# ------------------------------------------------------------------ the NQP study's robustness table

def test_nqp_robustness_columns_equal_pyfixest_on_data_prepared_in_pandas(published):
    home, con = published
    rob = nqp.run_robustness(con)
    assert [s.model_id for s in rob.specs] == ["nqp_robust_baseline", "nqp_robust_psm_nearest",
                                              "nqp_robust_psm_kernel", "nqp_robust_winsorised",
                                              "nqp_robust_2014_2019"]
    panel = con.execute(f"select * from {PANEL}").df()
    columns = (nqp.OUTCOME, *nqp.CONTROLS)
    wins = panel.copy()
    for c in columns:
        lo, hi = np.quantile(panel[c].dropna(), [0.01, 0.99])
        wins[c] = panel[c].clip(lo, hi)

    def matched(method: str) -> pd.DataFrame:
        rows = rob.psm[method].matching.rows.rename(columns={"unit": "city_code", "time": "year"})
        return panel.merge(rows[["city_code", "year", "weight"]], on=["city_code", "year"])

    data = {"nqp_robust_baseline": (panel, None), "nqp_robust_psm_nearest": (matched("nearest"), None),
            "nqp_robust_psm_kernel": (matched("kernel"), "weight"), "nqp_robust_winsorised": (wins, None),
            "nqp_robust_2014_2019": (panel[panel.year.between(2014, 2019)], None)}
    for spec, result in zip(rob.specs, rob.results):
        frame, weights = data[spec.model_id]
        theirs = _pf(spec.formula, frame, weights)
        assert result.coef["did"] == pytest.approx(theirs.coef()["did"], abs=COEF_TOL), spec.model_id
        assert result.se["did"] == pytest.approx(theirs.se()["did"], rel=SE_RTOL), spec.model_id
    # the kernel weights sum to one per matched treated city-year: every treated row counts once
    kernel = rob.psm["kernel"].matching.rows
    control_weight = kernel.loc[~kernel.treated.astype(bool), "weight"].sum()
    assert control_weight == pytest.approx(kernel.treated.astype(bool).sum(), rel=1e-12)

    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    persisted = dict(con.execute("select model_id, coef from main.estimates where vintage = ? and term = 'did' "
                                 "and model_id like 'nqp_robust_%'", [vintage]).fetchall())
    assert persisted == pytest.approx({s.model_id: float(r.coef["did"]) for s, r in zip(rob.specs, rob.results)},
                                      rel=1e-9)
    methods = {r[0] for r in con.execute("select distinct model_id from main.balance where vintage = ?",
                                         [vintage]).fetchall()}
    assert {"nqp_robust_psm_nearest", "nqp_robust_psm_kernel", "table4_psm_nearest"} <= methods
    text = next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")
    assert "The NQP study's robustness table" in text and "Covariate balance, kernel matching" in text


# ------------------------------------------------------------------ the NQP -> resilience study's 2SLS

def test_lagged_nqp_2sls_equals_pyfixest_with_the_lag_built_in_pandas(published):
    home, con = published
    est = nqp_resilience.run_table4_iv(con)
    panel = con.execute(f"select * from {PANEL}").df().sort_values(["city_code", "year"])
    prev = panel.groupby("city_code")[["year", nqp_resilience.NQP]].shift(1)
    panel[nqp_resilience.INSTRUMENT] = prev[nqp_resilience.NQP].where(prev["year"] == panel["year"] - 1)
    needed = [nqp_resilience.OUTCOME, nqp_resilience.NQP, nqp_resilience.INSTRUMENT, *nqp_resilience.CONTROLS]
    data = panel.dropna(subset=needed)
    theirs = _pf(nqp_resilience.iv_formula(), data)
    iv = est.second_stage
    for term in theirs.coef().index:
        assert iv.coef[term] == pytest.approx(theirs.coef()[term], abs=COEF_TOL)
        assert iv.se[term] == pytest.approx(theirs.se()[term], rel=SE_RTOL)
    assert iv.nobs == len(data) == len(panel) - panel.city_code.nunique()  # the first year has no lag
    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    (f,) = con.execute("select statistic from main.model_tests where model_id = 'nqp_res_table4_2sls' "
                       "and test = 'kp_rk_wald_F' and vintage = ?", [vintage]).fetchone()
    assert f == pytest.approx(iv.diagnostics["kp_rk_wald_f"], rel=1e-9)
    assert "last year's NQP as the instrument" in next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")


def test_the_baseline_carries_the_wild_bootstrap_beside_crv1(published):
    from estimation.engine.wildboot import wild_bootstrap

    home, con = published
    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    tests = dict(con.execute("select test, statistic from main.model_tests where model_id = 'table3_col4' "
                             "and vintage = ?", [vintage]).fetchall())
    fresh = resilience.run_wild_bootstrap(con)
    assert tests["wild_bootstrap_p"] == fresh.p_value
    assert (tests["wild_bootstrap_ci_low"], tests["wild_bootstrap_ci_high"]) == pytest.approx(fresh.ci, rel=1e-9)
    # the same test by the engine with Rademacher weights agrees on the verdict at 5%
    other = wild_bootstrap(con, PANEL, resilience.placebo_formula(), "did", "city_code", draws=999, seed=1, ci=False)
    assert (other.p_value < 0.05) == (fresh.p_value < 0.05)
    assert "wild cluster bootstrap (restricted, Webb weights, 9,999 draws" in next(
        home.reports.glob("*/report.md")).read_text(encoding="utf-8")
