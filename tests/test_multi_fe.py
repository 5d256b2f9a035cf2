"""feols with three and more absorbed fixed effects, against pyfixest 0.60.

The reference is pyfixest with a tight demeaning tolerance: its MAP demeaner at 1e-12
(:func:`oracles.pf_fit`) on the well-connected designs, and its ``within`` LSMR
demeaner at 1e-12 on the AKM-like worker-firm-year panel, where pyfixest's MAP needs
~37 s at 1e-12 and does not converge at its default 1e-6 within 10,000 iterations.
Tolerances: coefficients 1e-8 (relative to max(1, |b|)), SEs/t/p/CI/V 1e-6, R2 1e-10 - the
maths is identical, only the demeaning's convergence differs (both sides at <= 1e-12).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL, assert_matches, drop_singletons_pandas, pf_fit
from panels import akm_panel, multi_fe_panel

from estimation import DemeanNotConverged, feols

FML3 = "y ~ x1 + x2 | unit + year + sector"
FML4 = "y ~ x1 + x2 | unit + year + sector + source"
AKM = "y ~ x1 + x2 | worker + firm + year"


def pf_within(fml: str, df: pd.DataFrame, vcov, **kw):
    """pyfixest with its ``within`` (preconditioned LSMR) demeaner at tolerance 1e-12."""
    import pyfixest as pf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.feols(fml, df, vcov=vcov, demeaner=pf.LsmrDemeaner(backend="within", fixef_atol=1e-12,
                                                                         fixef_btol=1e-12), **kw)


def check(res, m):
    """Everything :func:`oracles.assert_matches` checks, plus the small-sample K and the method."""
    assert_matches(res, m, has_fe=True)
    assert res.df_k == int(m._df_k)
    assert res.demean_method == "cg"


@pytest.fixture(scope="module")
def akm():
    return akm_panel(seed=0)


# ------------------------------------------------------------ well-connected designs
@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "unit"}])
def test_three_fixed_effects_match_pyfixest(con, vcov):
    df = multi_fe_panel(1)
    con.register("panel", df)
    check(feols(con, "panel", FML3, vcov=vcov), pf_fit(FML3, df, vcov))


@pytest.mark.parametrize("vcov", ["iid", {"CRV1": "sector"}, {"CRV1": "unit+year"}])
def test_four_fixed_effects_match_pyfixest(con, vcov):
    df = multi_fe_panel(2)
    con.register("panel", df)
    res = feols(con, "panel", FML4, vcov=vcov)
    check(res, pf_fit(FML4, df, vcov))
    assert res.fixef == ("unit", "year", "sector", "source")


@pytest.mark.parametrize("vcov", ["hetero", {"CRV1": "unit"}, {"CRV1": "region+sector"}])
def test_unbalanced_weighted_three_and_four_fe(con, vcov):
    df = multi_fe_panel(3, drop=0.3)
    df.loc[df.sample(frac=0.02, random_state=3).index, "x2"] = np.nan  # listwise deletion too
    con.register("panel", df)
    for fml in (FML3, FML4):
        check(feols(con, "panel", fml, vcov=vcov, weights="w"), pf_fit(fml, df, vcov, weights="w"))


def test_singletons_are_removed_over_all_fixed_effects_until_none_is_left(con):
    """A chain across unit, sector and source: each round's removal creates the next singleton."""
    df = multi_fe_panel(4)
    chain = pd.DataFrame({"unit": [900, 900, 901, 901], "year": [2010, 2011, 2011, 2012],
                          "sector": [900, 0, 1, 2], "source": [0, 901, 901, 3]})
    rng = np.random.default_rng(4)
    for col in ("x1", "x2", "y", "w"):
        chain[col] = rng.normal(size=len(chain))
    chain["region"] = 999
    df = pd.concat([df, chain], ignore_index=True)
    con.register("panel", df)
    fml = "y ~ x1 + x2 | unit + year + sector + source"
    res = feols(con, "panel", fml, vcov={"CRV1": "unit"})
    kept = drop_singletons_pandas(df, ["unit", "year", "sector", "source"])
    assert res.nobs == len(kept) == len(df) - 4 and res.n_singletons == 4
    assert res.extra["singleton_rounds"] == 4
    check(res, pf_fit(fml, df, {"CRV1": "unit"}))


@pytest.mark.parametrize("vcov", [{"CRV1": "region"}, {"CRV1": "unit"}, {"CRV1": "unit+sector"}])
def test_fixed_effects_nested_in_clusters_and_in_each_other(con, vcov):
    """region nests unit: a redundant FE (pyfixest counts its levels all the same) and, under
    CRV1 by region or unit, FE nested in the cluster (K drops their levels, adds one each)."""
    df = multi_fe_panel(5)
    con.register("panel", df)
    fml = "y ~ x1 + x2 | unit + year + region"
    res = feols(con, "panel", fml, vcov=vcov)
    m = pf_fit(fml, df, vcov)
    check(res, m)
    nested = res.extra["fe_nested_in_cluster"]
    assert nested["unit"] and nested["region"] == ("region" in vcov["CRV1"])


def test_regressor_absorbed_by_a_fixed_effect_is_dropped(con):
    df = multi_fe_panel(6)
    df["ux"] = df["unit"] * 0.37 + 1.0  # constant within unit
    con.register("panel", df)
    fml = "y ~ x1 + ux + x2 | unit + year + sector"
    res = feols(con, "panel", fml, vcov="iid")
    m = pf_fit(fml, df, "iid")
    assert res.dropped == list(m._collin_vars) == ["ux"]
    check(res, m)


# ------------------------------------------------------------ the hard design
@pytest.mark.parametrize("vcov,weights", [("iid", None), ({"CRV1": "worker"}, None),
                                          ({"CRV1": "worker+firm"}, "w")])
def test_akm_worker_firm_year_matches_pyfixest(con, akm, vcov, weights):
    con.register("panel", akm)
    res = feols(con, "panel", AKM, vcov=vcov, weights=weights)
    check(res, pf_within(AKM, akm, vcov, weights=weights))
    assert res.demean_iterations < 300  # ~95 here; plain MAP needs ~57,000 sweeps (next test)
    assert res.extra["demean_max_change"] <= 1e-13


def test_plain_alternating_projections_stall_on_the_akm_design(con, akm):
    con.register("panel", akm)
    with pytest.raises(DemeanNotConverged, match=r"did not converge in 40 sweeps"):
        feols(con, "panel", AKM, demean_method="alternating", fixef_maxiter=40)


def test_unbalanced_akm_with_singletons(con):
    df = akm_panel(600, 60, 8, seed=7, drop=0.45)  # leaves singleton workers and firm-years
    con.register("panel", df)
    res = feols(con, "panel", AKM, vcov={"CRV1": "firm"})
    assert res.n_singletons > 0
    check(res, pf_within(AKM, df, {"CRV1": "firm"}))


def test_levels_explained_by_the_largest_fixed_effect(con):
    """Two years, so that hundreds of firms have only stayers: null directions of the
    Schur complement that the demeaner must leave out (with the diagonal floor alone the
    coefficients here were 2e-7 off)."""
    df = akm_panel(20_000, 2_000, 2, seed=1)
    df["y"] += 10.0 * (df["year"] - 2000) ** 2
    con.register("panel", df)
    res = feols(con, "panel", AKM, vcov={"CRV1": "firm"})
    check(res, pf_within(AKM, df, {"CRV1": "firm"}))


def test_the_explicit_operators_diagonal_finds_the_same_explained_levels(con):
    """The preconditioner that comes with the explicit S equals the SQL pass's, zeros included
    (firms with only stayers), on the two-year panel above."""
    from estimation.engine import fe_cg
    from estimation.engine.sample import build_sample
    from estimation.engine.sqlutil import temp_scope

    con.register("panel", akm_panel(20_000, 2_000, 2, seed=1))
    with temp_scope(con) as scope:
        sample = build_sample(con, scope, "panel", "y", ["x1"], ["worker", "firm", "year"], None, None)
        index = fe_cg.fe_index(con, scope, sample.table, sample.fe, sample.weights)
        _, diag = fe_cg.schur_matrix(con, index)
        in_sql = fe_cg.schur_diagonal(con, index)
    explained = np.flatnonzero((in_sql == 0) & (index.level_weight > 0))
    assert len(explained) > 100
    np.testing.assert_array_equal(diag == 0, in_sql == 0)
    np.testing.assert_allclose(diag, in_sql, rtol=1e-12, atol=0)


# ------------------------------------------------------------ the demeaner itself
def test_conjugate_gradient_agrees_with_alternating_projections(con):
    df = multi_fe_panel(8, drop=0.2)
    con.register("panel", df)
    a = feols(con, "panel", FML4, vcov={"CRV1": "unit"}, weights="w")
    b = feols(con, "panel", FML4, vcov={"CRV1": "unit"}, weights="w", demean_method="alternating")
    assert (a.demean_method, b.demean_method) == ("cg", "alternating")
    np.testing.assert_allclose(b.coef, a.coef, rtol=0, atol=COEF_TOL)
    np.testing.assert_allclose(b.se, a.se, rtol=SE_RTOL)
    assert b.r2_within == pytest.approx(a.r2_within, abs=1e-10)


@pytest.mark.parametrize("weights", [None, "w"])
def test_conjugate_gradient_on_two_fe_equals_the_exact_method(con, weights):
    df = multi_fe_panel(9, drop=0.25)  # unbalanced unit x year panel, one row per cell
    con.register("panel", df)
    fml = "y ~ x1 + x2 | unit + year"
    exact = feols(con, "panel", fml, vcov={"CRV1": "unit"}, weights=weights)
    cg = feols(con, "panel", fml, vcov={"CRV1": "unit"}, weights=weights, demean_method="cg")
    assert (exact.demean_method, cg.demean_method) == ("within_dummies", "cg")
    np.testing.assert_allclose(cg.coef, exact.coef, rtol=0, atol=COEF_TOL)
    np.testing.assert_allclose(cg.se, exact.se, rtol=SE_RTOL)


def test_conjugate_gradient_on_two_fe_with_repeated_cells_matches_pyfixest(con):
    """unit + sector: a unit meets the same sector in several rows."""
    df = multi_fe_panel(9, drop=0.25)
    con.register("panel", df)
    fml = "y ~ x1 + x2 | unit + sector"
    check(feols(con, "panel", fml, vcov={"CRV1": "unit"}, demean_method="cg"), pf_fit(fml, df, {"CRV1": "unit"}))


def _dense_schur(df: pd.DataFrame, fe: list[str], weights: str | None) -> tuple[np.ndarray, list]:
    """S = D_K'W M_e D_K from dense dummy matrices (numpy only): the oracle of the sparse S."""
    w = df[weights].to_numpy() if weights else np.ones(len(df))
    dummies = [pd.get_dummies(df[f]).to_numpy(dtype=float) for f in fe]
    e = int(np.argmax([d.shape[1] for d in dummies]))
    E = dummies[e]
    DK = np.hstack([d for q, d in enumerate(dummies) if q != e])
    WE = E * w[:, None]
    Me = np.eye(len(df)) - E @ np.linalg.solve(E.T @ WE, WE.T)
    return DK.T @ (w[:, None] * (Me @ DK)), [q for q in range(len(fe)) if q != e]


@pytest.mark.parametrize("weights", [None, "w"])
def test_explicit_schur_complement_equals_the_dense_product(con, weights):
    """The sparse S that the iteration multiplies by, entry by entry, against dense algebra."""
    from estimation.engine import fe_cg
    from estimation.engine.sample import build_sample
    from estimation.engine.sqlutil import temp_scope

    df = multi_fe_panel(11, n_units=40, n_periods=5, n_sectors=6, n_sources=4, drop=0.2)
    con.register("panel", df)
    fe = ["unit", "year", "sector", "source"]
    with temp_scope(con) as scope:
        sample = build_sample(con, scope, "panel", "y", ["x1"], fe, None, weights, drop_singletons=False)
        index = fe_cg.fe_index(con, scope, sample.table, sample.fe, sample.weights)
        explicit, diag = fe_cg.schur_matrix(con, index)
        in_sql = fe_cg.schur_diagonal(con, index)
        got = explicit.toarray()
    want, kept = _dense_schur(df, fe, weights)
    # the sample codes levels 1..L in sorted order, as get_dummies orders its columns
    slots = np.concatenate([index.offsets[q] + np.arange(1, df[fe[q]].nunique() + 1) for q in kept])
    np.testing.assert_allclose(got[np.ix_(slots, slots)], want, rtol=0, atol=1e-10 * np.abs(want).max())
    others = np.setdiff1d(np.arange(index.size), slots)
    assert not got[others].any() and not got[:, others].any()
    # the preconditioner from the same entries: the SQL pass's diagonal, floors and nested levels alike
    np.testing.assert_allclose(diag, in_sql, rtol=1e-12, atol=0)
    np.testing.assert_allclose(diag[slots], np.diag(want), rtol=1e-9, atol=0)


@pytest.mark.parametrize("weights", [None, "w"])
def test_explicit_and_sql_schur_operators_agree(con, akm, weights, monkeypatch):
    """The same CG with S formed once (auto on these panels) or applied by one SQL pass an iteration
    (the fallback beyond the pairing budget): the same coefficients and SEs, both equal to pyfixest."""
    from estimation.engine import fe_cg

    con.register("panel", akm)
    vcov = {"CRV1": "worker"}
    kw = {"weights": weights} if weights else {}
    explicit = feols(con, "panel", AKM, vcov=vcov, **kw)
    monkeypatch.setattr(fe_cg, "EXPLICIT_PAIRS_PER_CELL", 0)
    in_sql = feols(con, "panel", AKM, vcov=vcov, **kw)
    assert (explicit.extra["demean_operator"], in_sql.extra["demean_operator"]) == ("explicit", "sql")
    np.testing.assert_allclose(explicit.coef, in_sql.coef, rtol=0, atol=COEF_TOL)
    np.testing.assert_allclose(explicit.se, in_sql.se, rtol=SE_RTOL)
    check(explicit, pf_within(AKM, akm, vcov, **kw))


def test_maxiter_raises_demean_not_converged(con, akm):
    con.register("panel", akm)
    with pytest.raises(DemeanNotConverged, match=r"conjugate-gradient demeaning did not converge in 5 iter"):
        feols(con, "panel", AKM, fixef_maxiter=5)


def test_methods_that_need_two_fixed_effects_are_refused(con):
    con.register("panel", multi_fe_panel(10))
    with pytest.raises(ValueError, match="does not apply to 3 fixed effect"):
        feols(con, "panel", FML3, demean_method="within_dummies")


@pytest.mark.parametrize("weights", [None, "w"])
def test_two_fe_whose_pairs_repeat_equal_pyfixest(con, weights):
    """unit + sector where a unit meets the same sector in several rows: the demeaned dummies of the
    smaller FE must use the counts of each (unit, sector) pair, not only which sectors a unit has
    (the unweighted shortcut is exact only when every pair is one row, as unit x year)."""
    df = multi_fe_panel(9, drop=0.25)
    assert df.groupby(["unit", "sector"]).size().max() > 1
    con.register("panel", df)
    fml = "y ~ x1 + x2 | unit + sector"
    res = feols(con, "panel", fml, vcov={"CRV1": "unit"}, weights=weights)
    ref = pf_fit(fml, df, {"CRV1": "unit"}, **({"weights": weights} if weights else {}))
    assert_matches(res, ref, has_fe=True)


# ------------------------------------------------------------ 2SLS with three and four FE
@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "unit"}])
@pytest.mark.parametrize("weights", [None, "w"])
def test_iv_with_three_and_four_fixed_effects_matches_pyfixest(con, vcov, weights):
    """feiv partials every FE out of y, x, d and z by conjugate gradient; 2SLS then as with two."""
    from estimation.engine.iv import feiv

    df = multi_fe_panel(6, drop=0.2)
    rng = np.random.default_rng(6)
    u = rng.normal(size=len(df))
    df["z1"], df["z2"] = rng.normal(size=len(df)), rng.normal(size=len(df))
    df["d"] = 0.7 * df["z1"] - 0.4 * df["z2"] + 0.3 * df["x1"] + u + 0.2 * df["sector"] % 3
    df["y"] = df["y"] + 0.8 * df["d"] + 0.6 * u  # d is endogenous through u
    con.register("panel", df)
    for fe in ("unit + year + sector", "unit + year + sector + source"):
        fml = f"y ~ x1 | {fe} | d ~ z1 + z2"
        res = feiv(con, "panel", fml, vcov=vcov, weights=weights)
        assert res.demean_method == "cg"
        m = pf_fit(fml, df, vcov, **({"weights": weights} if weights else {}))
        assert res.nobs == m._N
        b_pf = m.coef().reindex(res.coef.index)
        assert np.all(np.abs(res.coef - b_pf) <= COEF_TOL * np.maximum(1.0, np.abs(b_pf)))
        np.testing.assert_allclose(res.se, m.se().reindex(res.se.index), rtol=SE_RTOL, atol=0)
