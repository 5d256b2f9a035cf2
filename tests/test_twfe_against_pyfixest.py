"""estimation.feols (DuckDB SQL) against pyfixest 0.60 and linearmodels 7.1.

Tolerances: coefficients to 1e-8 (absolute, relative to max(1, |coef|)),
standard errors / t statistics to 1e-6 relative.  pyfixest runs with a
demeaning tolerance of 1e-12 (its default 1e-6 would be the limiting error).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import (
    COEF_TOL,
    EPS,
    SE_RTOL,
    assert_matches,
    condition_number,
    drop_singletons_pandas,
    exact_ols,
    pf_fit,
)
from panels import make_panel, singleton_panel, unbalance

from estimation import SSC, DemeanNotConverged, feols, parse_formula

VCOVS = ["iid", "hetero", {"CRV1": "unit"}]


# ------------------------------------------------- (a) balanced two-way FE
def test_balanced_twoway_crv1_by_unit(con):
    df = make_panel(1)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    res = feols(con, "panel", fml, vcov={"CRV1": "unit"})
    assert res.demean_method == "balanced"
    assert res.n_clusters == 60 and res.nobs == len(df) and res.df_t == 59
    # unit FE nested in the cluster: df_k = k + T (pyfixest k_fixef="nonnested")
    assert res.df_k == 3 + 12
    assert res.ssc_factor == pytest.approx(60 / 59 * (len(df) - 1) / (len(df) - 15), rel=1e-14)
    assert_matches(res, pf_fit(fml, df, {"CRV1": "unit"}), has_fe=True)


@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "year"}, {"CRV1": "region"}])
def test_balanced_twoway_other_vcov(con, vcov):
    df = make_panel(2)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    res = feols(con, "panel", fml, vcov=vcov)
    assert_matches(res, pf_fit(fml, df, vcov), has_fe=True)


def test_alternating_equals_closed_form_on_balanced(con):
    df = make_panel(3)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    a = feols(con, "panel", fml, vcov={"CRV1": "unit"})
    b = feols(con, "panel", fml, vcov={"CRV1": "unit"}, demean_method="alternating")
    assert (a.demean_method, b.demean_method) == ("balanced", "alternating")
    assert b.demean_iterations >= 1
    np.testing.assert_allclose(a.coef, b.coef, rtol=0, atol=1e-11)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-9)


# ----------------------------------------------- (b) unbalanced + NULLs
@pytest.mark.parametrize("method", ["auto", "alternating"])
@pytest.mark.parametrize("vcov", VCOVS)
def test_unbalanced_twoway_with_nulls(con, vcov, method):
    df = unbalance(make_panel(4), seed=4)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    res = feols(con, "panel", fml, vcov=vcov, demean_method=method)
    # few periods: exact within-unit demeaning plus demeaned year dummies
    assert res.demean_method == ("within_dummies" if method == "auto" else "alternating")
    n_null = int(df[["res", "x1", "x2"]].isna().any(axis=1).sum())
    assert n_null > 0 and res.n_missing == n_null
    assert res.extra["n_source_rows"] == len(df)
    assert_matches(res, pf_fit(fml, df, vcov), has_fe=True)


def test_closed_form_refused_on_unbalanced(con):
    df = unbalance(make_panel(5), seed=5)
    con.register("panel", df)
    with pytest.raises(ValueError, match="complete grid"):
        feols(con, "panel", "res ~ did + x1 | unit + year", demean_method="balanced")


def test_duplicated_cells_are_not_balanced(con):
    # every unit x year cell twice: equal counts, but not the one-obs-per-cell grid
    df = make_panel(6, n_units=20, n_periods=6)
    df2 = pd.concat([df, df.assign(res=df["res"] + 1.0, x1=df["x1"] * 0.5)], ignore_index=True)
    con.register("panel", df2)
    fml = "res ~ x1 + x2 | unit + year"
    res = feols(con, "panel", fml, vcov={"CRV1": "unit"})
    assert res.demean_method == "within_dummies"
    assert_matches(res, pf_fit(fml, df2, {"CRV1": "unit"}), has_fe=True)


def test_alternating_projections_raise_when_not_converged(con):
    df = unbalance(make_panel(7), seed=7)
    con.register("panel", df)
    with pytest.raises(DemeanNotConverged):
        feols(con, "panel", "res ~ did + x1 | unit + year", fixef_maxiter=1, demean_method="alternating")


# ------------------------------------------------ (c) OLS with intercept
def _ill_conditioned_panel():
    """Large means (x1 + 1e4) beside a year trend: X'X is badly conditioned."""
    df = unbalance(make_panel(8), seed=8)
    df["x1"] = df["x1"] + 1e4
    df["year_num"] = df["year"].astype(float)
    return df


ILL_FML = "res ~ did + x1 + x2 + year_num"
ILL_COLS = ["did", "x1", "x2", "year_num"]


@pytest.mark.parametrize("vcov", ["iid", "hetero", "HC1", {"CRV1": "unit"}])
def test_ols_with_intercept_against_exact_arithmetic(con, vcov):
    """The oracle is exact: the normal equations solved in rational arithmetic.

    The intercept is recovered from centred moments; cityres's coefficients and
    standard errors must equal the exact ones to far better than 1e-8, whatever
    the machine's BLAS kernel or DuckDB's thread count.
    """
    df = _ill_conditioned_panel()
    con.register("panel", df)
    res = feols(con, "panel", ILL_FML, vcov=vcov)
    assert res.terms[0] == "Intercept" and res.demean_method == "center"
    d = df.dropna(subset=["res", *ILL_COLS])
    X = np.column_stack([np.ones(len(d)), d[ILL_COLS].to_numpy()])
    kind = {"iid": "iid", "hetero": "hetero", "HC1": "hetero"}.get(vcov, "CRV1") if isinstance(vcov, str) else "CRV1"
    ex = exact_ols(X, d["res"].to_numpy(), kind, d["unit"].to_numpy() if kind == "CRV1" else None)
    np.testing.assert_allclose(res.coef.to_numpy(), ex.coef, rtol=1e-10, atol=0)
    np.testing.assert_allclose(res.se.to_numpy(), ex.se, rtol=1e-8, atol=0)
    assert res.nobs == len(d)


@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "unit"}])
def test_ols_with_intercept_against_pyfixest_within_its_accuracy(con, vcov):
    """pyfixest solves the raw normal equations in floating point: its error grows
    with cond(X)^2 and depends on the machine, so it is held to a tolerance derived
    from the design's condition number, not to 1e-8."""
    df = _ill_conditioned_panel()
    con.register("panel", df)
    res = feols(con, "panel", ILL_FML, vcov=vcov)
    d = df.dropna(subset=["res", *ILL_COLS])
    kappa = condition_number(np.column_stack([np.ones(len(d)), d[ILL_COLS].to_numpy()]))
    assert kappa > 1e3  # the design really is ill-conditioned
    tol = 100 * kappa**2 * EPS  # accuracy of the normal equations in floating point, with a margin
    assert tol < 1e-4  # still a real check
    assert_matches(res, pf_fit(ILL_FML, df, vcov), has_fe=False, coef_tol=tol, se_rtol=tol)


def test_intercept_only_model(con):
    df = make_panel(9)
    con.register("panel", df)
    res = feols(con, "panel", "res ~ 1", vcov="hetero")
    assert res.terms == ["Intercept"]
    assert res.coef["Intercept"] == pytest.approx(df["res"].mean(), abs=1e-12)
    assert_matches(res, pf_fit("res ~ 1", df, "hetero"), has_fe=False)


# ------------------------------------------------------ (d) one-way FE
@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "unit"}, {"CRV1": "region"}, {"CRV1": "year"}])
def test_oneway_fe(con, vcov):
    df = unbalance(make_panel(10), seed=10)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit"
    res = feols(con, "panel", fml, vcov=vcov)
    assert res.demean_method == "oneway"
    assert_matches(res, pf_fit(fml, df, vcov), has_fe=True)


def test_fe_nested_in_cluster_counts(con):
    df = make_panel(11)
    con.register("panel", df)
    res = feols(con, "panel", "res ~ did + x1 | unit + year", vcov={"CRV1": "region"})
    assert res.extra["fe_nested_in_cluster"] == {"unit": True, "year": False}
    assert res.df_k == 2 + 12  # k + unit levels + year levels - 1 - unit levels + 1
    res_full = feols(
        con, "panel", "res ~ did + x1 | unit + year", vcov={"CRV1": "region"}, ssc=SSC(k_fixef="full")
    )
    assert res_full.df_k == 2 + 60 + 12 - 1
    m = pf_fit("res ~ did + x1 | unit + year", df, {"CRV1": "region"}, ssc=pf.ssc(k_fixef="full"))
    np.testing.assert_allclose(res_full.se, m.se(), rtol=SE_RTOL)


# --------------------------------------------------------- weights
@pytest.mark.parametrize("fml", ["res ~ did + x1 + x2 | unit + year", "res ~ did + x1 | unit", "res ~ did + x1"])
@pytest.mark.parametrize("vcov", VCOVS)
def test_weighted(con, fml, vcov):
    df = unbalance(make_panel(12), seed=12)
    con.register("panel", df)
    res = feols(con, "panel", fml, vcov=vcov, weights="w")
    assert_matches(res, pf_fit(fml, df, vcov, weights="w"), has_fe="|" in fml)


# ----------------------------------------------- (f) collinear regressors
@pytest.mark.parametrize("fml", ["res ~ x1 + x2 + x3 + z + did | unit + year", "res ~ x1 + x2 + x3 + did"])
def test_collinear_regressor_dropped_and_reported(con, fml):
    df = unbalance(make_panel(13), seed=13)
    df["x3"] = df["x1"] + 2.0 * df["x2"]  # exactly collinear with x1, x2
    df["z"] = 3.0 + df["unit"] * 0.1  # time-invariant: absorbed by the unit FE
    con.register("panel", df)
    res = feols(con, "panel", fml, vcov={"CRV1": "unit"})
    m = pf_fit(fml, df, {"CRV1": "unit"})
    expected = ["x3", "z"] if "|" in fml else ["x3"]
    assert res.dropped == expected == list(m._collin_vars)
    assert "x3" not in res.coef.index and "did" in res.coef.index
    assert_matches(res, m, has_fe="|" in fml)


def test_constant_regressor_dropped_without_fe(con):
    df = make_panel(14)
    df["const5"] = 5.0
    con.register("panel", df)
    res = feols(con, "panel", "res ~ x1 + const5", vcov="iid")
    assert res.dropped == ["const5"]
    assert res.terms == ["Intercept", "x1"]


# --------------------------------------------------------- (g) singletons
@pytest.mark.parametrize("vcov", ["iid", {"CRV1": "unit"}])
def test_singletons_removed_like_pyfixest(con, vcov):
    df = singleton_panel(15)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    res = feols(con, "panel", fml, vcov=vcov)
    m = pf_fit(fml, df, vcov)
    assert res.n_singletons == len(df) - m._N > 0
    assert res.nobs == len(drop_singletons_pandas(df, ["unit", "year"]))
    # the chain needs more than one pass: 900@2030 and 901@2031 first, then 900, 901 ...
    assert res.n_singletons >= 5 and res.extra["singleton_rounds"] >= 2
    assert_matches(res, m, has_fe=True)


def test_singletons_kept_with_fixef_rm_none(con):
    df = singleton_panel(16)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    res = feols(con, "panel", fml, vcov="hetero", fixef_rm="none")
    m = pf_fit(fml, df, "hetero", fixef_rm="none")
    assert res.n_singletons == 0 and res.nobs == len(df)
    assert_matches(res, m, has_fe=True)


# ---------------------------------------------- property-based agreement
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,  # reproducible draws, no example database
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10_000),
    n_units=st.integers(15, 40),
    n_periods=st.integers(4, 10),
    frac_drop=st.floats(0.0, 0.35),
    vcov=st.sampled_from(["iid", "hetero", {"CRV1": "unit"}, {"CRV1": "year"}]),
)
def test_random_panels_match_pyfixest(con, seed, n_units, n_periods, frac_drop, vcov):
    df = unbalance(make_panel(seed, n_units, n_periods), seed=seed, frac_drop=frac_drop, n_null=3)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    m = pf_fit(fml, df, vcov)
    res = feols(con, "panel", fml, vcov=vcov)
    if res.dropped or list(m._collin_vars):  # e.g. did constant in a tiny draw
        assert res.dropped == list(m._collin_vars)
    assert_matches(res, m, has_fe=True)


# ---------------------------------------------- interface and data handling
def test_relation_forms_and_formula_vs_lists(con, tmp_path):
    df = unbalance(make_panel(17), seed=17)
    con.execute("CREATE TABLE panel_t AS SELECT * FROM df")
    parquet = tmp_path / "panel.parquet"
    con.execute(f"COPY panel_t TO '{parquet}' (FORMAT parquet)")
    base = feols(con, "panel_t", "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"})
    variants = [
        feols(con, "panel_t", "res", ["did", "x1"], ["unit", "year"], vcov={"CRV1": "unit"}),
        feols(con, "main.panel_t", "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"}),
        feols(con, "SELECT * FROM panel_t", "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"}),
        feols(con, con.sql("SELECT * FROM panel_t"), "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"}),
        feols(con, df, "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"}),
        feols(con, f"read_parquet('{parquet}')", "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"}),
    ]
    for v in variants:
        np.testing.assert_allclose(v.coef, base.coef, rtol=0, atol=1e-12)
        np.testing.assert_allclose(v.se, base.se, rtol=1e-10)
        assert v.nobs == base.nobs
    sub = feols(con, "SELECT * FROM panel_t WHERE year >= 2008", "res ~ did + x1 | unit + year")
    assert sub.nobs == pf_fit("res ~ did + x1 | unit + year", df[df.year >= 2008], "iid")._N


def test_null_cluster_and_fe_rows_are_dropped(con):
    df = make_panel(18).astype({"unit": "float64"})
    df.loc[[3, 50, 99], "unit"] = np.nan
    con.register("panel", df)
    res = feols(con, "panel", "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"})
    assert res.n_missing == 3
    clean = df.dropna(subset=["unit"])
    assert_matches(res, pf_fit("res ~ did + x1 | unit + year", clean, {"CRV1": "unit"}), has_fe=True)
    # NULL only in the cluster column (not a FE): dropped listwise as well
    df2 = make_panel(18).astype({"region": "float64"})
    df2.loc[[0, 1], "region"] = np.nan
    con.register("panel2", df2)
    res2 = feols(con, "panel2", "res ~ did + x1 | unit + year", vcov={"CRV1": "region"})
    assert res2.n_missing == 2 and res2.nobs == len(df2) - 2 - res2.n_singletons


def test_infinite_values_raise(con):
    df = make_panel(19)
    df.loc[5, "x1"] = np.inf
    con.register("panel", df)
    with pytest.raises(ValueError, match="inf"):
        feols(con, "panel", "res ~ x1 | unit")


def test_temp_tables_are_dropped(con):
    df = unbalance(make_panel(20), seed=20)
    con.register("panel", df)
    feols(con, "panel", "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"})
    left = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__cr_%'").fetchone()[0]
    assert left == 0


def test_tidy_columns_and_values(con):
    df = make_panel(21)
    con.register("panel", df)
    res = feols(con, "panel", "res ~ did + x1 | unit + year", vcov={"CRV1": "unit"})
    tidy = res.tidy()
    assert list(tidy.columns) == ["term", "coef", "se", "t", "p", "ci_low", "ci_high"]
    assert list(tidy["term"]) == ["did", "x1"]
    np.testing.assert_allclose(tidy["t"], tidy["coef"] / tidy["se"], rtol=1e-14)
    from scipy import stats

    crit = stats.t.ppf(0.975, res.df_t)
    np.testing.assert_allclose(tidy["ci_high"] - tidy["coef"], crit * tidy["se"], rtol=1e-12)
    wide = res.tidy(alpha=0.10)
    assert np.all(wide["ci_high"] < tidy["ci_high"])
    assert res.elapsed_s > 0 and res.vcov == "CRV1" and res.cluster == "unit"


def test_parse_formula():
    f = parse_formula("res ~ did + x1 + x2 | city_code + year")
    assert (f.y, f.x, f.fe) == ("res", ("did", "x1", "x2"), ("city_code", "year"))
    assert parse_formula("y ~ x").fe == ()
    assert parse_formula("y ~ 1").x == ()
    for bad in ["y ~ x1*x2", "y ~ x | a | b | c", "y x", "y ~ i(x, foo=1)", "y ~ log(x)", "y + z ~ x", "y ~ | f", "y ~ x + x"]:
        with pytest.raises(ValueError):
            parse_formula(bad)


def test_saturated_model_raises(con):
    # 3 units x 2 years, two-way FE + 2 regressors: 6 obs, 2 + 3 + 2 - 1 = 6 parameters
    df = make_panel(24, n_units=3, n_periods=2)
    con.register("tiny", df)
    with pytest.raises(ValueError, match="no residual degrees of freedom"):
        feols(con, "tiny", "res ~ x1 + x2 | unit + year", vcov="iid")


def test_bad_arguments(con):
    df = make_panel(22)
    con.register("panel", df)
    with pytest.raises(ValueError):
        feols(con, "panel", "res ~ x1", vcov="HC3")
    with pytest.raises(ValueError):
        feols(con, "panel", "res ~ x1", vcov={"CRV1": "unit + year + region"})
    with pytest.raises(ValueError):
        feols(con, "panel", "res ~ x1 | unit", x=["x2"])
    with pytest.raises(ValueError, match="does not apply"):
        feols(con, "panel", "res ~ x1 | unit", demean_method="center")


# --------------------------------------------- real panel: linearmodels
@pytest.fixture(scope="module")
def wage():
    from linearmodels.datasets import wage_panel

    return wage_panel.load()


WAGE_FML = "lwage ~ expersq + union + married + hours | nr + year"


def test_wage_panel_against_linearmodels_and_pyfixest(con, wage):
    from linearmodels import PanelOLS

    con.register("wage", wage)
    res = feols(con, "wage", WAGE_FML, vcov={"CRV1": "nr"})
    assert res.demean_method == "balanced" and res.nobs == 4360 and res.n_clusters == 545

    mod = PanelOLS.from_formula(
        "lwage ~ expersq + union + married + hours + EntityEffects + TimeEffects",
        wage.set_index(["nr", "year"]),
    )
    fit = mod.fit(cov_type="clustered", cluster_entity=True)  # debiased=True default
    np.testing.assert_allclose(fit.params.to_numpy(), res.coef.to_numpy(), rtol=0, atol=COEF_TOL)

    # linearmodels scales B M B by n/(n - k - d) with d = N_units + (T - 1)
    # (no constant in the model: all entity effects plus T-1 time effects are
    # counted, also with two-way FE) and applies no G/(G-1); pyfixest uses
    # G/(G-1) (n-1)/(n-k-T) (unit FE nested in the cluster).
    n, k, n_u, t, g = 4360, 4, 545, 8, 545
    ratio = (n / (n - k - n_u - (t - 1))) / (g / (g - 1) * (n - 1) / (n - k - t))
    np.testing.assert_allclose(fit.std_errors.to_numpy() ** 2, ratio * res.se.to_numpy() ** 2, rtol=1e-9)

    # group_debias=True adds G/(G-1)(n-1)/n: equals our SSC(k_fixef="full")
    fit_gd = mod.fit(cov_type="clustered", cluster_entity=True, group_debias=True)
    full = feols(con, "wage", WAGE_FML, vcov={"CRV1": "nr"}, ssc=SSC(k_fixef="full"))
    np.testing.assert_allclose(fit_gd.std_errors.to_numpy(), full.se.to_numpy(), rtol=SE_RTOL)

    assert_matches(res, pf_fit(WAGE_FML, wage, {"CRV1": "nr"}), has_fe=True)


def test_unbalanced_wage_panel_against_linearmodels_and_pyfixest(con, wage):
    from linearmodels import PanelOLS

    rng = np.random.default_rng(23)
    w = wage.loc[rng.random(len(wage)) >= 0.15].copy()
    con.register("wage_u", w)
    res = feols(con, "wage_u", WAGE_FML, vcov={"CRV1": "nr"})
    assert res.demean_method == "within_dummies"
    m = pf_fit(WAGE_FML, w, {"CRV1": "nr"})
    assert_matches(res, m, has_fe=True)

    # linearmodels does not drop singletons: compare on the singleton-free sample
    kept = drop_singletons_pandas(w, ["nr", "year"])
    assert len(kept) == m._N == res.nobs
    fit = PanelOLS.from_formula(
        "lwage ~ expersq + union + married + hours + EntityEffects + TimeEffects",
        kept.set_index(["nr", "year"]),
    ).fit(cov_type="clustered", cluster_entity=True, group_debias=True)
    np.testing.assert_allclose(fit.params.to_numpy(), res.coef.to_numpy(), rtol=0, atol=COEF_TOL)
    full = feols(con, "wage_u", WAGE_FML, vcov={"CRV1": "nr"}, ssc=SSC(k_fixef="full"))
    np.testing.assert_allclose(fit.std_errors.to_numpy(), full.se.to_numpy(), rtol=SE_RTOL)
