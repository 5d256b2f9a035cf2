"""DML for the two-way FE DID (:mod:`estimation.engine.dml`) against doubleml 0.11.4 and the truth.

* the SQL within transform equals pandas two-way demeaning (balanced, 1e-10) and a dummy-variable
  least-squares oracle (unbalanced), and is bitwise reproducible;
* on the same demeaned data and the same folds, ``DoubleMLPLR`` (partialling out, unit as the
  cluster column, learners built here independently with the same parameters) gives the same
  theta (1e-8), SE (1e-6 relative), t, p, CI and nuisance RMSE, for lasso, random forest,
  gradient boosting and a user-supplied regressor, and with n_rep = 3 the same median aggregation;
* with equal fold sizes theta and SE are the pooled DML2 formulas, checked with numpy;
* truth: a 150 x 10 panel with known theta and nonlinear confounding g.
"""
from __future__ import annotations

import json
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LassoCV, Ridge
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from estimation.engine.dml import assign_folds, dml_did, within_transform

COEF_TOL = 1e-8
SE_RTOL = 1e-6
CONTROLS = ["x1", "x2", "x3"]
SPEC = {"outcome": "y", "treatment": "d", "controls": CONTROLS, "unit": "city", "time": "year"}


def make_panel(n_units: int, n_periods: int, seed: int, theta: float = 0.5, drop: float = 0.0) -> pd.DataFrame:
    """City-year panel, binary treatment confounded by unit/year effects and by nonlinear g(X).

    Each unit's controls are a permutation of the same n_periods normal quantiles, so each
    unit's mean of the additive g(X) and m(X) is the same constant: the two-way within
    transform of g(X) is then a function of the demeaned X (up to O(1/G) year-mean terms), the
    condition under which demean-then-DML identifies theta (docs: limitations).
    """
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_periods)
    t = np.tile(np.arange(n_periods), n_units)
    a, lam = rng.normal(size=n_units)[unit], rng.normal(size=n_periods)[t]
    q = stats.norm.ppf((np.arange(n_periods) + 0.5) / n_periods)
    X = np.stack([np.concatenate([q[rng.permutation(n_periods)] for _ in range(n_units)]) for _ in range(3)], 1)
    m = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    d = (m + a + lam + rng.normal(size=len(unit)) > 1.0).astype(float)
    g = 2 * np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.5 * np.abs(X[:, 2])
    y = theta * d + g + a + lam + rng.normal(size=len(unit))
    df = pd.DataFrame({"city": unit + 1001, "year": t + 2009, "y": y, "d": d,
                       "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2]})
    if drop:
        df = df[rng.random(len(df)) >= drop].reset_index(drop=True)
    return df


def pandas_two_way_demean(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Closed-form two-way demeaning of a balanced panel: x - x_i. - x_.t + x.."""
    out = df[cols] - df.groupby("city")[cols].transform("mean") - df.groupby("year")[cols].transform("mean")
    return out + df[cols].mean()


def dummy_ls_demean(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Residuals of each column on unit and year dummies (least squares): the two-way within transform."""
    D = np.hstack([pd.get_dummies(df["city"]).to_numpy(float), pd.get_dummies(df["year"]).to_numpy(float)[:, 1:]])
    Y = df[cols].to_numpy(float)
    coef, *_ = np.linalg.lstsq(D, Y, rcond=None)
    return Y - D @ coef


def lasso_learner(alphas: int = 100):
    return Pipeline([("scale", StandardScaler()),
                     ("lasso", LassoCV(cv=5, alphas=alphas, max_iter=10_000, n_jobs=1))])


def doubleml_fit(wt: pd.DataFrame, res, learner):
    """DoubleMLPLR on the engine's demeaned data with the engine's folds (units as clusters)."""
    import doubleml as dml

    units = wt["city"].to_numpy()
    all_smpls, all_clusters = [], []
    for r in range(res.n_rep):
        fold_of_unit = dict(zip(res.units.tolist(), res.folds[r].tolist()))
        row_fold = np.array([fold_of_unit[u] for u in units.tolist()])
        all_smpls.append([(np.flatnonzero(row_fold != k), np.flatnonzero(row_fold == k)) for k in range(res.n_folds)])
        all_clusters.append([([res.units[res.folds[r] != k]], [res.units[res.folds[r] == k]])
                             for k in range(res.n_folds)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = dml.DoubleMLData(wt, y_col="y", d_cols="d", x_cols=CONTROLS, cluster_cols="city")
        obj = dml.DoubleMLPLR(data, learner, learner, n_folds=res.n_folds, n_rep=res.n_rep,
                              score="partialling out", draw_sample_splitting=False)
        obj.set_sample_splitting(all_smpls, all_clusters)
        obj.fit(store_predictions=True)
    return obj


def assert_equals_doubleml(res, obj):
    np.testing.assert_allclose(res.coefs, obj.all_coef[0], rtol=0, atol=COEF_TOL)
    np.testing.assert_allclose(res.ses, obj.all_se[0], rtol=SE_RTOL, atol=0)
    assert abs(res.coef - obj.coef[0]) <= COEF_TOL
    assert res.se == pytest.approx(obj.se[0], rel=SE_RTOL, abs=0)
    assert res.tstat == pytest.approx(obj.t_stat[0], rel=SE_RTOL, abs=0)
    assert res.pvalue == pytest.approx(obj.pval[0], rel=1e-5, abs=1e-300)
    ci = obj.confint(level=1 - res.alpha).to_numpy()[0]
    np.testing.assert_allclose(res.ci, ci, rtol=0, atol=1e-7)
    for name in ("ml_l", "ml_m"):
        np.testing.assert_allclose(res.nuisance_rmse[name], obj.nuisance_loss[name][:, 0], rtol=1e-10)


@pytest.fixture(scope="module")
def small():
    """53 units (5 folds of unequal size: 11, 11, 11, 10, 10) x 8 years, balanced."""
    return make_panel(53, 8, seed=11)


@pytest.fixture(scope="module")
def small_unbalanced():
    """The same design with ~10% of the rows missing (alternating projections)."""
    return make_panel(53, 8, seed=12, drop=0.1)


# ----------------------------------------------------------------- the within transform


def test_within_transform_equals_pandas_on_a_balanced_panel(con, small):
    wt = within_transform(con, small, **SPEC)
    ref = pandas_two_way_demean(small, ["y", "d", *CONTROLS])
    assert list(wt.columns) == ["city", "year", "y", "d", *CONTROLS]
    assert wt[["city", "year"]].equals(small[["city", "year"]])  # the panel is built sorted by (city, year)
    np.testing.assert_allclose(wt[["y", "d", *CONTROLS]].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-10)


def test_within_transform_unbalanced_equals_dummy_least_squares(con, small_unbalanced):
    df = small_unbalanced
    wt = within_transform(con, df, **SPEC)
    counts = df.groupby("city").size()
    kept = df[df["city"].map(counts) > 1]  # singleton units are dropped, as feols does
    assert len(wt) == len(kept)
    # alternating projections stop when a sweep changes values by <= 1e-13 (1 + scale)
    np.testing.assert_allclose(wt[["y", "d", *CONTROLS]].to_numpy(), dummy_ls_demean(kept, ["y", "d", *CONTROLS]),
                               rtol=0, atol=1e-9)


def test_within_transform_is_bitwise_reproducible(con, small_unbalanced):
    # parallel float sums would differ in the last bits between runs; tree learners would notice
    first = within_transform(con, small_unbalanced, **SPEC)
    for _ in range(3):
        assert within_transform(con, small_unbalanced, **SPEC).equals(first)


# ----------------------------------------------------------------- equal to doubleml


def test_lasso_equals_doubleml_with_unequal_folds(con, small):
    res = dml_did(con, small, **SPEC, learner="lasso", n_folds=5, seed=3)
    assert sorted(np.bincount(res.folds[0]).tolist()) == [10, 10, 11, 11, 11]
    assert_equals_doubleml(res, doubleml_fit(within_transform(con, small, **SPEC), res, lasso_learner()))


def test_lasso_median_aggregation_over_three_repetitions_equals_doubleml(con, small_unbalanced):
    # a shorter penalty path (30 values, LassoCV's parameter) keeps the three repetitions quick
    res = dml_did(con, small_unbalanced, **SPEC, learner="lasso", learner_params={"alphas": 30}, n_folds=4,
                  n_rep=3, seed=5)
    assert res.demean_method == "alternating" and len(res.coefs) == 3
    obj = doubleml_fit(within_transform(con, small_unbalanced, **SPEC), res, lasso_learner(alphas=30))
    assert_equals_doubleml(res, obj)
    # doubleml's aggregation: median coefficient, SE from the median upper 1.96-bound
    assert res.coef == pytest.approx(np.median(res.coefs), abs=0)
    assert res.se == pytest.approx((np.median(res.coefs + 1.96 * res.ses) - res.coef) / 1.96, rel=1e-12)


def test_random_forest_equals_doubleml(con, small):
    res = dml_did(con, small, **SPEC, learner="random_forest", learner_params={"n_estimators": 50}, seed=7)
    rf = RandomForestRegressor(n_estimators=50, min_samples_leaf=5, random_state=7, n_jobs=1)
    assert_equals_doubleml(res, doubleml_fit(within_transform(con, small, **SPEC), res, rf))


def test_gradient_boosting_equals_doubleml_with_three_repetitions(con, small):
    res = dml_did(con, small, **SPEC, learner="gradient_boosting", learner_params={"n_estimators": 50},
                  n_rep=3, seed=9)
    gb = GradientBoostingRegressor(n_estimators=50, random_state=9)
    assert_equals_doubleml(res, doubleml_fit(within_transform(con, small, **SPEC), res, gb))


def test_a_user_supplied_regressor_equals_doubleml(con, small):
    res = dml_did(con, small, **SPEC, learner=Ridge(alpha=2.0), learner_params={"alpha": 3.0}, seed=1)
    assert res.learner == "Ridge"
    assert_equals_doubleml(res, doubleml_fit(within_transform(con, small, **SPEC), res, Ridge(alpha=3.0)))


def test_equal_folds_give_the_pooled_dml2_estimator_and_cr0_sandwich(con):
    """G = 50 units in 5 folds of 10: theta = sum v u / sum v^2, se = sqrt(sum_g psi_g^2) / sum v^2."""
    df = make_panel(50, 6, seed=4)
    res = dml_did(con, df, **SPEC, learner=Ridge(alpha=1.0), n_folds=5, seed=2)
    wt = within_transform(con, df, **SPEC)
    row_fold = res.folds[0][np.searchsorted(res.units, wt["city"].to_numpy())]
    cv = [(np.flatnonzero(row_fold != k), np.flatnonzero(row_fold == k)) for k in range(5)]
    X = wt[CONTROLS].to_numpy()
    u = wt["y"].to_numpy() - cross_val_predict(Ridge(alpha=1.0), X, wt["y"].to_numpy(), cv=cv)
    v = wt["d"].to_numpy() - cross_val_predict(Ridge(alpha=1.0), X, wt["d"].to_numpy(), cv=cv)
    theta = (v @ u) / (v @ v)
    psi_g = pd.Series(v * (u - theta * v)).groupby(wt["city"].to_numpy()).sum().to_numpy()
    se = np.sqrt(psi_g @ psi_g) / (v @ v)
    assert abs(res.coef - theta) <= COEF_TOL
    assert res.se == pytest.approx(se, rel=SE_RTOL)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(res.ci, (theta - z * se, theta + z * se), rtol=0, atol=1e-8)


# ----------------------------------------------------------------- folds, reproducibility, relations


def test_folds_are_by_unit_balanced_and_reproducible_from_the_seed():
    f = assign_folds(53, 5, 3, seed=8)
    assert f.shape == (3, 53)
    for r in range(3):
        assert sorted(np.bincount(f[r], minlength=5).tolist()) == [10, 10, 11, 11, 11]
    assert np.array_equal(f, assign_folds(53, 5, 3, seed=8))
    assert np.array_equal(f[:1], assign_folds(53, 5, 1, seed=8))  # rep 0 does not depend on n_rep
    assert not np.array_equal(f, assign_folds(53, 5, 3, seed=9))
    assert not np.array_equal(f[0], f[1])


def test_tree_estimates_are_bitwise_reproducible_and_inputs_interchangeable(con, small):
    kw = {**SPEC, "learner": "random_forest", "learner_params": {"n_estimators": 10}, "seed": 4}
    a = dml_did(con, small, **kw)
    con.register("panel_df", small)
    con.execute("CREATE TABLE panel AS SELECT * FROM panel_df")
    b = dml_did(con, "panel", **kw)
    c = dml_did(con, "SELECT * FROM panel WHERE year >= 2009", **kw)
    assert a.coef == b.coef == c.coef and a.se == b.se == c.se
    assert np.array_equal(a.folds, b.folds) and np.array_equal(a.units, np.sort(small["city"].unique()))
    leftovers = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__cr_%'").fetchone()[0]
    assert leftovers == 0
    d = json.loads(json.dumps(a.to_dict()))
    assert d["coef"] == a.coef and d["folds"] == a.folds.tolist() and d["learner_params"] == {"n_estimators": 10}
    assert set(a.fold_table().columns) == {"unit", "rep", "fold"} and len(a.fold_table()) == a.n_units


def test_missing_values_are_dropped_listwise(con, small):
    df = small.copy()
    df.loc[[3, 17, 40], "x2"] = np.nan
    df.loc[[5], "y"] = np.nan
    res = dml_did(con, df, **SPEC, learner=Ridge(), seed=0)
    assert res.n_missing == 4 and res.nobs == len(df) - 4 and res.demean_method == "alternating"


# ----------------------------------------------------------------- truth


def test_truth_ci_covers_theta_with_a_nonlinear_g():
    """150 cities x 10 years, theta = 0.5, confounding through unit/year effects and a nonlinear g(X).

    Forest and boosting cover theta; TWFE without controls and a linear lasso, which cannot
    represent g, are far off (z > 10), so the design has power to reject a wrong estimator.
    """
    df = make_panel(150, 10, seed=2024)
    con = duckdb.connect()
    rf = dml_did(con, df, **SPEC, learner="random_forest", learner_params={"n_estimators": 50}, seed=1)
    gb = dml_did(con, df, **SPEC, learner="gradient_boosting", seed=1)
    for res in (rf, gb):
        assert res.ci[0] < 0.5 < res.ci[1], (res.coef, res.se)
    lasso = dml_did(con, df, **SPEC, learner="lasso", seed=1)
    assert abs(lasso.coef - 0.5) / lasso.se > 10
    from estimation.engine import feols

    naive = feols(con, df, "y ~ d | city + year", vcov={"CRV1": "city"})
    assert abs(naive.coef["d"] - 0.5) / naive.se["d"] > 10


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learner": "xgboost"}, "learner must be one of"),
        ({"n_folds": 1}, "n_folds must be an integer >= 2"),
        ({"n_folds": 60}, "exceeds the 53 units"),
        ({"n_rep": 0}, "n_rep must be an integer >= 1"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"controls": []}, "at least one column"),
        ({"controls": ["x1", "nope"]}, r"\['nope'\] not found"),
        ({"controls": ["x1", "y"]}, "must be distinct"),
        ({"treatment": "east"}, "'east' is collinear with the unit and time effects"),
        ({"learner_params": 3}, "learner_params must be a dict"),
        ({"demean_method": "balanced"}, "demean_method must be 'auto' or 'alternating'"),
    ],
)
def test_bad_input_raises_value_error(con, small, kwargs, message):
    df = small.assign(east=(small["city"] % 2).astype(float))
    with pytest.raises(ValueError, match=message):
        dml_did(con, df, **{**SPEC, "learner": Ridge(), **kwargs})
