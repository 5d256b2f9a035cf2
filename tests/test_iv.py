"""2SLS with absorbed fixed effects: against pyfixest and linearmodels, and the identification
statistics against independent hand computations (numpy) of their defining identities."""
from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL

from estimation.engine import feols
from estimation.engine.iv import absorbed_dof, feiv, parse_iv_formula

VCOVS = ["iid", "hetero", {"CRV1": "unit"}]


def synthetic_panel(seed: int = 3, units: int = 60, years: int = 8) -> pd.DataFrame:
    """A panel with unit and year effects, an endogenous d (its error correlated with y's) and
    two instruments, one correlated with the unit effect; heteroskedastic errors."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"unit": np.repeat(np.arange(units), years), "year": np.tile(np.arange(years), units)})
    n = len(df)
    a, b = rng.normal(size=units)[df.unit], rng.normal(size=years)[df.year]
    z, z2, x = rng.normal(size=n) + 0.3 * a, rng.normal(size=n), rng.normal(size=n)
    e = rng.normal(size=n)
    d = 0.7 * z + 0.4 * z2 + 0.5 * x + a + 0.6 * e + rng.normal(size=n)
    y = 1.5 * d + 0.3 * x + a + b + e * (1 + 0.5 * np.abs(z))
    return df.assign(z=z, z2=z2, x=x, d=d, y=y)


@pytest.fixture(scope="module")
def panel():
    df = synthetic_panel()
    con = duckdb.connect()
    con.register("panel", df)
    return con, df


def pf_iv(fml, df, vcov):
    import pyfixest as pf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.feols(fml, data=df, vcov=vcov, demeaner=pf.MapDemeaner(fixef_tol=1e-12, fixef_maxiter=100_000))
        fit.first_stage()
        fit.IV_Diag()
    return fit


@pytest.mark.parametrize("vcov", VCOVS, ids=["iid", "hetero", "crv1"])
@pytest.mark.parametrize("fml", ["y ~ x | unit + year | d ~ z + z2", "y ~ x | unit + year | d ~ z",
                                 "y ~ 1 | unit | d ~ z", "y ~ x | d ~ z + z2"])
def test_second_and_first_stage_equal_pyfixest(panel, fml, vcov):
    con, df = panel
    ours, theirs = feols(con, "panel", fml, vcov=vcov), pf_iv(fml, df, vcov)
    for term in theirs.coef().index:
        assert ours.coef[term] == pytest.approx(theirs.coef()[term], abs=COEF_TOL)
        assert ours.se[term] == pytest.approx(theirs.se()[term], rel=SE_RTOL)
    (first,) = ours.first_stages
    assert first.f == pytest.approx(float(theirs._f_stat_1st_stage), rel=1e-8)
    if fml.startswith("y ~ 1") or fml.endswith("d ~ z"):
        # one instrument, or no exogenous regressor: pyfixest's effective F (instruments not
        # partialled on X) and Montiel Olea-Pflueger's coincide
        assert first.effective_f == pytest.approx(float(theirs._eff_F), rel=1e-8)


@pytest.mark.parametrize("cov_type, vcov", [("unadjusted", "iid"), ("robust", "hetero"),
                                            ("clustered", {"CRV1": "city"})])
def test_mroz_without_fixed_effects_equals_linearmodels(cov_type, vcov):
    """Mroz (1987) wages, the textbook IV example shipped by linearmodels: returns to education
    instrumented by the parents' education; clusters by city (0/1) only exercise the code."""
    from linearmodels.datasets import mroz
    from linearmodels.iv import IV2SLS

    df = mroz.load().dropna(subset=["lwage"]).reset_index(drop=True)
    df["city"] = df["city"].astype(int)
    con = duckdb.connect()
    con.register("mroz", df)
    ours = feols(con, "mroz", "lwage ~ exper + expersq | educ ~ fatheduc + motheduc", vcov=vcov)
    kw = {"clusters": df["city"]} if cov_type == "clustered" else {}
    theirs = IV2SLS.from_formula("lwage ~ 1 + exper + expersq + [educ ~ fatheduc + motheduc]", df).fit(
        cov_type=cov_type, debiased=True, **kw)
    for term, name in [("Intercept", "Intercept"), ("exper", "exper"), ("expersq", "expersq"), ("educ", "educ")]:
        assert ours.coef[term] == pytest.approx(theirs.params[name], abs=COEF_TOL)
        if cov_type != "clustered":  # two clusters: linearmodels' df correction differs (G/(G-1) only)
            assert ours.se[term] == pytest.approx(theirs.std_errors[name], rel=SE_RTOL)
    if cov_type == "unadjusted":
        sargan = theirs.sargan  # n R2 of the 2SLS residuals on the instruments
        assert ours.diagnostics["sargan"]["statistic"] == pytest.approx(sargan.stat, rel=1e-8)
        assert ours.diagnostics["sargan"]["df"] == sargan.df


def test_wage_panel_with_unit_and_year_effects_equals_pyfixest():
    """A public panel (NLSY men 1980-87, linearmodels' wage_panel) with both fixed effects."""
    from linearmodels.datasets import wage_panel

    df = wage_panel.load()
    con = duckdb.connect()
    con.register("wages", df)
    fml = "lwage ~ expersq | nr + year | hours ~ married + union"
    for vcov in ["hetero", {"CRV1": "nr"}]:
        ours, theirs = feols(con, "wages", fml, vcov=vcov), pf_iv(fml, df, vcov)
        for term in theirs.coef().index:
            assert ours.coef[term] == pytest.approx(theirs.coef()[term], abs=COEF_TOL)
            assert ours.se[term] == pytest.approx(theirs.se()[term], rel=SE_RTOL)


# ---------------------------------------------------------------- identification: hand computations

def partialled(df: pd.DataFrame, cols: list[str], fe: list[str], exog: list[str]) -> pd.DataFrame:
    """The columns with the fixed effects and the exogenous regressors projected out (numpy lstsq
    on dummies: an independent route to what the engine does by demeaning)."""
    parts = [pd.get_dummies(df[f], prefix=f, drop_first=i > 0, dtype=float) for i, f in enumerate(fe)]
    design = np.column_stack([*(p.to_numpy() for p in parts), df[exog].to_numpy()]) if (parts or exog) else None
    if design is None:
        return df[cols] - df[cols].mean()
    if not fe:
        design = np.column_stack([np.ones(len(df)), design])
    coef = np.linalg.lstsq(design, df[cols].to_numpy(), rcond=None)[0]
    return pd.DataFrame(df[cols].to_numpy() - design @ coef, columns=cols)


def robust_wald(z: np.ndarray, d: np.ndarray, v: np.ndarray, groups=None) -> float:
    """pi' [(Z'Z)^-1 S (Z'Z)^-1]^-1 pi with pi = (Z'Z)^-1 Z'd and S the (cluster) sum of the
    scores z_i v_i - no small-sample factor."""
    zz_inv = np.linalg.inv(z.T @ z)
    pi = zz_inv @ z.T @ d
    scores = z * v[:, None]
    if groups is not None:
        scores = pd.DataFrame(scores).groupby(np.asarray(groups)).sum().to_numpy()
    var = zz_inv @ (scores.T @ scores) @ zz_inv
    return float(pi @ np.linalg.solve(var, pi))


@pytest.mark.parametrize("vcov, groups", [("hetero", None), ({"CRV1": "unit"}, "unit")], ids=["hetero", "crv1"])
def test_kp_rk_statistics_equal_the_robust_wald_and_lm_tests_of_the_partialled_first_stage(panel, vcov, groups):
    """One endogenous regressor: the rk Wald chi2 is the robust Wald test of the excluded
    instruments in the first stage partialled on X and the fixed effects, with the first-stage
    residual as score; the rk LM is the same form with the partialled d (the residual under
    H0) as score."""
    con, df = panel
    ours = feols(con, "panel", "y ~ x | unit + year | d ~ z + z2", vcov=vcov)
    p = partialled(df, ["d", "z", "z2"], ["unit", "year"], ["x"])
    z, d = p[["z", "z2"]].to_numpy(), p["d"].to_numpy()
    resid = d - z @ np.linalg.lstsq(z, d, rcond=None)[0]
    g = df[groups] if groups else None
    assert ours.diagnostics["kp_rk_wald_chi2"] == pytest.approx(robust_wald(z, d, resid, g), rel=1e-9)
    assert ours.diagnostics["kp_rk_lm"]["statistic"] == pytest.approx(robust_wald(z, d, d, g), rel=1e-9)
    assert ours.diagnostics["kp_rk_lm"]["df"] == 2


def test_cragg_donald_f_equals_the_classical_first_stage_f_under_iid(panel):
    """One endogenous regressor: CD F = R2p/(1 - R2p) (N - L - sdofminus)/L1 is the classical F
    of the excluded instruments (pyfixest's iid first-stage F)."""
    con, df = panel
    for fml in ["y ~ x | unit + year | d ~ z + z2", "y ~ x | d ~ z + z2"]:
        ours = feols(con, "panel", fml, vcov="iid")
        assert ours.diagnostics["cragg_donald_f"] == pytest.approx(float(pf_iv(fml, df, "iid")._f_stat_1st_stage),
                                                                   rel=1e-9)
    p = partialled(df, ["d", "z", "z2"], ["unit", "year"], ["x"])
    z, d = p[["z", "z2"]].to_numpy(), p["d"].to_numpy()
    fitted = z @ np.linalg.lstsq(z, d, rcond=None)[0]
    r2 = fitted @ fitted / (d @ d)  # the squared canonical correlation (one endogenous regressor)
    ours = feols(con, "panel", "y ~ x | unit + year | d ~ z + z2", vcov="iid")
    assert ours.diagnostics["anderson_lm"]["statistic"] == pytest.approx(len(df) * r2, rel=1e-9)


def test_kp_wald_f_small_sample_scaling_follows_ivreghdfe(panel):
    con, df = panel
    n, units, years = len(df), df.unit.nunique(), df.year.nunique()
    robust = feols(con, "panel", "y ~ x | unit + year | d ~ z", vcov="hetero").diagnostics
    # N - L - sdofminus with L = 1 exogenous + 1 excluded, sdofminus = units + years - 1
    assert robust["sdofminus"] == units + years - 1
    assert robust["kp_rk_wald_f"] == pytest.approx(robust["kp_rk_wald_chi2"] / n * (n - 2 - (units + years - 1)),
                                                   rel=1e-12)
    clustered = feols(con, "panel", "y ~ x | unit + year | d ~ z", vcov={"CRV1": "unit"}).diagnostics
    assert clustered["sdofminus"] == years - 1  # the unit effects are nested in the clusters
    assert clustered["kp_rk_wald_f"] == pytest.approx(
        clustered["kp_rk_wald_chi2"] / (n - 1) * (n - 2 - (years - 1)) * (units - 1) / units, rel=1e-12)
    assert absorbed_dof([60, 8], [True, False]) == 7 and absorbed_dof([60, 8], []) == 67
    assert absorbed_dof([60], [True]) == 0  # then max(1, 0) = 1


def test_hansen_j_is_the_two_step_gmm_criterion(panel):
    con, df = panel
    ours = feols(con, "panel", "y ~ x | unit + year | d ~ z + z2", vcov="hetero")
    p = partialled(df, ["y", "d", "x", "z", "z2"], ["unit", "year"], [])
    w, q, y = p[["x", "d"]].to_numpy(), p[["x", "z", "z2"]].to_numpy(), p["y"].to_numpy()
    b2 = np.linalg.solve(w.T @ q @ np.linalg.solve(q.T @ q, q.T @ w), w.T @ q @ np.linalg.solve(q.T @ q, q.T @ y))
    u = y - w @ b2
    s = (q * u[:, None]).T @ (q * u[:, None])
    bg = np.linalg.solve(w.T @ q @ np.linalg.solve(s, q.T @ w), w.T @ q @ np.linalg.solve(s, q.T @ y))
    g = q.T @ (y - w @ bg)
    assert ours.diagnostics["hansen_j"]["statistic"] == pytest.approx(float(g @ np.linalg.solve(s, g)), rel=1e-8)
    assert ours.diagnostics["hansen_j"]["df"] == 1
    assert "hansen_j" not in feols(con, "panel", "y ~ x | unit + year | d ~ z", vcov="hetero").diagnostics


def test_the_formula_and_its_refusals():
    spec = parse_iv_formula("y ~ x1 + x2 | fe1 + fe2 | d ~ z1 + z2")
    assert spec.main.x == ("x1", "x2") and spec.main.fe == ("fe1", "fe2")
    assert spec.endogenous == ("d",) and spec.instruments == ("z1", "z2")
    assert parse_iv_formula("y ~ 1 | d ~ z").main.fe == ()
    with pytest.raises(ValueError, match="under-identified"):
        parse_iv_formula("y ~ x | fe | d1 + d2 ~ z")
    with pytest.raises(ValueError, match="appear once"):
        parse_iv_formula("y ~ x | fe | x ~ z")


def test_stock_yogo_and_the_weak_instrument_values_are_reported(panel):
    con, _ = panel
    diag = feiv(con, "panel", "y ~ x | unit + year | d ~ z", vcov={"CRV1": "unit"}).diagnostics
    assert diag["stock_yogo_10pct"] == 16.38
    assert diag["kp_rk_lm"]["p"] < 1e-6 and diag["kp_rk_wald_f"] > 16.38


def test_cityres_estimate_iv_prints_json_and_refuses_in_words(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    path = tmp_path / "panel.parquet"
    synthetic_panel().to_parquet(path)
    out = CliRunner().invoke(app, ["estimate", "iv", "--data", str(path), "--formula",
                                   "y ~ x | unit + year | d ~ z + z2", "--vcov", "CRV1:unit", "--format", "json"])
    assert out.exit_code == 0, out.output
    payload = __import__("json").loads(out.output)
    con = duckdb.connect()
    con.register("panel", synthetic_panel())
    direct = feiv(con, "panel", "y ~ x | unit + year | d ~ z + z2", vcov={"CRV1": "unit"})
    (did,) = [t for t in payload["terms"] if t["term"] == "d"]
    assert did["coef"] == pytest.approx(direct.coef["d"], abs=1e-12)
    assert payload["diagnostics"]["kp_rk_wald_f"] == pytest.approx(direct.diagnostics["kp_rk_wald_f"], rel=1e-12)
    assert payload["first_stages"][0]["endogenous"] == "d"
    bad = CliRunner().invoke(app, ["estimate", "iv", "--data", str(path), "--formula", "y ~ x | unit | d1 + d2 ~ z"])
    assert bad.exit_code == 2 and "under-identified" in bad.output and "Traceback" not in bad.output
