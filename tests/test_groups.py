"""Group differences (estimation.engine.groups): split samples and the interacted pooled model
against pyfixest, the Chow identities, and the permutation batch against loops of refits."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL, pf_fit
from panels import did_panel

from estimation.engine.figures import group_coefficient_figure
from estimation.engine.groups import interaction_test, permutation_test, split_sample
from estimation.engine.model import feols
from estimation.engine.vcov import SSC

FML = "y ~ did + x1 + x2 | unit + year"
CRV = {"CRV1": "unit"}


def synthetic(seed: int = 3, n_units: int = 60, n_periods: int = 8, treated_share: float = 0.4) -> pd.DataFrame:
    """Balanced DID panel with two controls; the effect is 2 larger in the 'key' units."""
    df = did_panel(n_units, n_periods, seed, n_controls=2, treated_share=treated_share, n_strata=6)
    key_units = np.random.default_rng(seed + 1).permutation(n_units)[: n_units // 3]
    df["key"] = df["unit"].isin(key_units).astype(np.int64)
    df["y"] += 2.0 * df["did"] * df["key"]
    return df


def grunfeld() -> pd.DataFrame:
    from statsmodels.datasets import grunfeld as gf

    df = gf.load_pandas().data
    firms = sorted(df["firm"].unique())
    df["big"] = df["firm"].isin(firms[::2]).astype(np.int64)  # an arbitrary split: 6 vs 5 firms
    return df


CASES = {
    "synthetic": (synthetic, FML, "key", "did", "unit"),
    "grunfeld": (grunfeld, "invest ~ value + capital | firm + year", "big", "value", "firm"),
}


def connect(df: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("panel", df)
    return con


def interacted_frame(df: pd.DataFrame, fml_x: list[str], fes: list[str], group: str) -> pd.DataFrame:
    """The fully interacted design built in pandas: x*D and group x FE keys."""
    out = df.copy()
    for x in fml_x:
        out[f"{x}_x_{group}"] = out[x] * out[group]
    for f in fes:
        out[f"{f}_x_{group}"] = out[group].astype(str) + "|" + out[f].astype(str)
    return out


# ------------------------------------------------------------------ split samples and Chow

@pytest.mark.parametrize("case", CASES)
def test_split_sample_matches_pyfixest(case):
    make, fml, group, _, unit = CASES[case]
    df = make()
    fits = split_sample(connect(df), "panel", fml, group, vcov={"CRV1": unit})
    assert list(fits) == [0, 1]
    for g, res in fits.items():
        m = pf_fit(fml, df[df[group] == g], {"CRV1": unit})
        np.testing.assert_allclose(res.coef.to_numpy(), m.coef().to_numpy(), rtol=0, atol=COEF_TOL)
        np.testing.assert_allclose(res.se.to_numpy(), m.se().to_numpy(), rtol=SE_RTOL)
        assert res.nobs == m._N


@pytest.mark.parametrize("case", CASES)
def test_interaction_equals_split_and_pyfixest(case):
    make, fml, group, term, unit = CASES[case]
    df = make()
    con = connect(df)
    res = interaction_test(con, "panel", fml, group, term, vcov={"CRV1": unit})
    split = split_sample(con, "panel", fml, group, vcov={"CRV1": unit})
    # block-diagonal design: the pooled coefficients are the split ones
    assert res.identity_gap <= 1e-10
    assert res.difference == pytest.approx(split[1].coef[term] - split[0].coef[term], abs=1e-10)
    # (a refit may differ in the last bits: DuckDB's parallel sums are not ordered)
    assert res.coef == {g: pytest.approx(float(split[g].coef[term]), abs=1e-12) for g in (0, 1)}
    # clusters (units) nested in groups: the meat is block-diagonal, only the corrections differ
    assert res.clusters_nested is True
    assert res.se_from_split == pytest.approx(res.se_difference, rel=1e-10)
    assert res.se_difference != pytest.approx(res.se_naive, rel=1e-6)
    # the same model built in pandas and fitted by pyfixest
    xs = [t.strip() for t in fml.split("~")[1].split("|")[0].split("+")]
    fes = [t.strip() for t in fml.split("|")[1].split("+")]
    inter = interacted_frame(df, xs, fes, group)
    pooled_fml = (f"{fml.split('~')[0].strip()} ~ {' + '.join(xs + [f'{x}_x_{group}' for x in xs])}"
                  f" | {' + '.join(f'{f}_x_{group}' for f in fes)}")
    m = pf_fit(pooled_fml, inter, {"CRV1": unit})
    assert res.pooled_term == f"{term}_x_{group}"
    assert res.difference == pytest.approx(m.coef()[res.pooled_term], abs=COEF_TOL)
    assert res.se_difference == pytest.approx(m.se()[res.pooled_term], rel=SE_RTOL)
    assert res.p == pytest.approx(m.pvalue()[res.pooled_term], rel=1e-6, abs=1e-12)
    assert res.df_t == df[unit].nunique() - 1


def test_without_small_sample_corrections_the_se_is_the_root_sum_of_squares():
    df = synthetic()
    res = interaction_test(connect(df), "panel", FML, "key", "did", ssc=SSC(k_adj=False, G_adj=False))
    assert res.se_difference == pytest.approx(np.hypot(res.se[0], res.se[1]), rel=1e-10)
    assert res.se_naive == pytest.approx(res.se_difference, rel=1e-10)


def test_weights_and_hc1_keep_the_identities():
    df = synthetic()
    df["w"] = np.random.default_rng(0).uniform(0.5, 2.0, len(df))
    res = interaction_test(connect(df), "panel", FML, "key", "did", vcov="hetero", weights="w")
    assert res.identity_gap <= 1e-10
    assert res.clusters_nested is True  # HC1: each row is its own cluster
    assert res.se_from_split == pytest.approx(res.se_difference, rel=1e-10)
    inter = interacted_frame(df, ["did", "x1", "x2"], ["unit", "year"], "key")
    m = pf_fit("y ~ did + x1 + x2 + did_x_key + x1_x_key + x2_x_key | unit_x_key + year_x_key", inter, "hetero",
               weights="w")
    assert res.difference == pytest.approx(m.coef()["did_x_key"], abs=COEF_TOL)
    assert res.se_difference == pytest.approx(m.se()["did_x_key"], rel=SE_RTOL)


def test_clusters_across_groups_and_models_without_fixed_effects():
    df = synthetic()
    con = connect(df)
    # strata (unit % 6) hold key and ordinary units: the pooled test carries the covariance
    res = interaction_test(con, "panel", FML, "key", "did", vcov={"CRV1": "stratum"})
    assert res.clusters_nested is False and res.se_from_split is None
    inter = interacted_frame(df, ["did", "x1", "x2"], ["unit", "year"], "key")
    m = pf_fit("y ~ did + x1 + x2 + did_x_key + x1_x_key + x2_x_key | unit_x_key + year_x_key", inter,
               {"CRV1": "stratum"})
    assert res.se_difference == pytest.approx(m.se()["did_x_key"], rel=SE_RTOL)
    # no fixed effects: the pooled model gets the group indicator as its own intercept shift
    res = interaction_test(con, "panel", "y ~ did + x1", "key", "did", vcov="hetero")
    assert res.identity_gap <= 1e-10
    assert res.se_from_split == pytest.approx(res.se_difference, rel=1e-10)
    m = pf_fit("y ~ key + did + x1 + did_x_key + x1_x_key", inter, "hetero")
    assert res.difference == pytest.approx(m.coef()["did_x_key"], abs=COEF_TOL)
    assert res.se_difference == pytest.approx(m.se()["did_x_key"], rel=SE_RTOL)


def test_levels_pick_two_values_of_a_categorical_group():
    df = synthetic()
    df["tier"] = np.where(df["key"] == 1, "key", np.where(df["unit"] % 2 == 0, "even", "odd"))
    con = connect(df)
    with pytest.raises(ValueError, match="levels"):
        interaction_test(con, "panel", FML, "tier", "did")
    res = interaction_test(con, "panel", FML, "tier", "did", levels=("odd", "key"))
    sub = df[df["tier"].isin(["odd", "key"])]
    fits = split_sample(con, sub, FML, "tier")
    assert res.labels == ("odd", "key")
    assert res.difference == pytest.approx(fits["key"].coef["did"] - fits["odd"].coef["did"], abs=1e-10)


# ------------------------------------------------------------------ permutations

def loop_refits(df: pd.DataFrame, fml: str, unit: str, term: str, res, oracle: str = "feols") -> np.ndarray:
    """Both split-sample coefficients per draw, refitted on the draw's labels."""
    con = duckdb.connect()
    out = np.full((len(res.assignments), 2), np.nan)
    for d, row in enumerate(res.assignments):
        lab = df[unit].map(pd.Series(row, index=res.units))
        for k in (0, 1):
            part = df[lab == k]
            if oracle == "pyfixest":
                b = pf_fit(fml, part, "iid").coef()
            else:
                b = feols(con, part, fml).coef
            out[d, k] = b.get(term, np.nan)
    return out


@pytest.mark.parametrize("case,oracle", [("synthetic", "feols"), ("grunfeld", "pyfixest")])
def test_sql_batch_equals_loop_of_refits(case, oracle):
    make, fml, group, term, unit = CASES[case]
    df = make()
    res = permutation_test(connect(df), "panel", fml, group, term, unit, draws=50 if oracle == "feols" else 25,
                           seed=7)
    assert res.method == "sql" and res.note == ""
    loop = loop_refits(df, fml, unit, term, res, oracle)
    np.testing.assert_allclose(res.coefs, loop, rtol=0, atol=COEF_TOL)
    np.testing.assert_allclose(res.draws, loop[:, 1] - loop[:, 0], rtol=0, atol=COEF_TOL)
    assert res.observed_batch == pytest.approx(res.observed, abs=COEF_TOL)
    # every draw keeps the number of units per group
    assert (res.assignments.sum(axis=1) == df.groupby(unit)[group].first().sum()).all()


def test_collinear_draws_are_missing_as_in_the_refits():
    # 4 treated units: in many draws the pseudo key group holds none, and did is all zero there
    df = synthetic(seed=5, treated_share=0.07)
    res = permutation_test(connect(df), "panel", FML, "key", "did", "unit", draws=40, seed=2)
    loop = loop_refits(df, FML, "unit", "did", res)
    assert 0 < np.isnan(loop).any(axis=1).sum() < 40
    np.testing.assert_array_equal(np.isnan(res.coefs), np.isnan(loop))
    np.testing.assert_allclose(res.coefs, loop, rtol=0, atol=COEF_TOL)
    assert res.n_valid == int(np.isfinite(res.draws).sum()) < 40


@pytest.mark.parametrize("fml,method", [(FML, "loop"), ("y ~ did + x1 + x2 | unit", "sql")])
def test_unbalanced_panel(fml, method):
    df = synthetic()
    df = df.drop(df.sample(frac=0.08, random_state=1).index).reset_index(drop=True)
    res = permutation_test(connect(df), "panel", fml, "key", "did", "unit", draws=15, seed=4)
    assert res.method == method
    assert (res.note == "unbalanced panel") == (method == "loop")
    np.testing.assert_allclose(res.coefs, loop_refits(df, fml, "unit", "did", res), rtol=0, atol=COEF_TOL)


def test_p_values_seed_and_strata():
    df = synthetic()
    con = connect(df)
    res = permutation_test(con, "panel", FML, "key", "did", "unit", draws=300, seed=11)
    hits = int(np.sum(np.abs(res.draws) >= abs(res.observed)))
    assert res.p_value == pytest.approx(hits / 300)
    assert res.p_value_plus1 == pytest.approx((1 + hits) / 301)
    assert res.p_value < 0.05  # the effect really is larger in key units
    s = res.summary()
    assert s["draws"] == 300 and s["method"] == "sql" and s["observed"] == res.observed
    again = permutation_test(con, "panel", FML, "key", "did", "unit", draws=300, seed=11)
    np.testing.assert_array_equal(res.assignments, again.assignments)
    np.testing.assert_allclose(res.draws, again.draws, rtol=0, atol=1e-12)
    # within strata every stratum keeps its number of key units
    st = permutation_test(con, "panel", FML, "key", "did", "unit", draws=30, seed=3, strata="stratum")
    stratum = df.groupby("unit")["stratum"].first().loc[st.units].to_numpy()
    observed = df.groupby("unit")["key"].first().loc[st.units].to_numpy()
    for s_ in np.unique(stratum):
        assert (st.assignments[:, stratum == s_].sum(axis=1) == observed[stratum == s_].sum()).all()


def test_group_must_be_constant_within_units():
    df = synthetic()
    df["half"] = df["year"] % 2
    with pytest.raises(ValueError, match="varies within a unit"):
        permutation_test(connect(df), "panel", FML, "half", "did", "unit", draws=5, seed=1)


def test_group_coefficient_figure(tmp_path):
    df = synthetic()
    con = connect(df)
    res = interaction_test(con, "panel", FML, "key", "did")
    pooled = feols(con, "panel", FML, vcov=CRV).coef["did"]
    png = res.plot(tmp_path / "groups.png", float(pooled))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frame = pd.DataFrame({"group": ["a", "b"], "coef": [0.1, 0.3], "ci_low": [0.0, 0.1], "ci_high": [0.2, 0.5]})
    out = group_coefficient_figure(frame, 0.2, tmp_path / "sub" / "g.png", "title")
    assert out.exists() and out.stat().st_size > 1000


def test_given_split_fits_are_used_as_the_refits_would_be():
    """interaction_test and permutation_test with split_sample's fits (fits=) give what they give
    when they fit the groups themselves; fits of another model or variance are refused."""
    con = connect(synthetic())
    fits = split_sample(con, "panel", FML, "key", vcov=CRV)
    own = interaction_test(con, "panel", FML, "key", "did", vcov=CRV)
    given = interaction_test(con, "panel", FML, "key", "did", vcov=CRV, fits=fits)
    assert given.difference == pytest.approx(own.difference, abs=1e-12)
    assert given.se_difference == pytest.approx(own.se_difference, rel=1e-12)
    assert given.se_from_split == pytest.approx(own.se_from_split, rel=1e-12)
    assert given.coef == pytest.approx(own.coef, abs=1e-12) and given.se == pytest.approx(own.se, rel=1e-12)
    own_p = permutation_test(con, "panel", FML, "key", "did", "unit", draws=50, seed=1)
    given_p = permutation_test(con, "panel", FML, "key", "did", "unit", draws=50, seed=1, fits=fits)
    assert given_p.observed == pytest.approx(own_p.observed, abs=1e-12)
    assert np.allclose(given_p.draws, own_p.draws, rtol=0, atol=1e-12) and given_p.p_value == own_p.p_value
    with pytest.raises(ValueError, match="variance"):
        interaction_test(con, "panel", FML, "key", "did", vcov="hetero", fits=fits)
    other = split_sample(con, "panel", "y ~ did + x1 | unit + year", "key", vcov=CRV)
    with pytest.raises(ValueError, match="is not of"):
        permutation_test(con, "panel", FML, "key", "did", "unit", draws=5, seed=1, fits=other)
