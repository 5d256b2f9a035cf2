"""Engine features against pyfixest 0.60 (tight demeaning tolerance) and statsmodels:
i() factor expansion, two-way clustering, the model F and Wald tests, exact
within-plus-dummies demeaning of unbalanced panels, and the MAP stopping rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import COEF_TOL, SE_RTOL, assert_matches, pf_fit
from panels import make_panel, unbalance

from estimation import IFactor, feols, parse_formula
from panels import did_panel


def event_panel(seed: int, drop: float = 0.0) -> pd.DataFrame:
    df = did_panel(40, 9, seed, n_controls=2, cohorts=(2015, 2016, 2017), treated_share=0.5, drop=drop)
    df["rel"] = (df["year"] - df["adoption_year"].astype("float")).fillna(-1).astype(int)
    df["treat_f"] = df["treat"].astype(float)
    return df


def test_parse_i_terms():
    f = parse_formula("y ~ i(rel, ref=-1) + x1 + i(k, tr, ref=c(-1, -5)) | u + t")
    assert f.x == ("x1",) and f.fe == ("u", "t")
    assert f.rhs == (IFactor("rel", None, (-1,)), "x1", IFactor("k", "tr", (-1, -5)))
    assert str(f) == "y ~ i(rel, ref=-1) + x1 + i(k, tr, ref=c(-1, -5)) | u + t"
    assert parse_formula("y ~ i(g, ref='a')").rhs == (IFactor("g", None, ("a",)),)
    for bad in ["y ~ i(rel, foo=1)", "y ~ i()", "y ~ i(a, b, c)", "y ~ i(rel, ref=x)", "y ~ i(rel"]:
        with pytest.raises(ValueError):
            parse_formula(bad)


@pytest.mark.parametrize("fml", [
    "y ~ i(rel, ref=-1) + x1 | unit + year",
    "y ~ i(rel, treat_f, ref=-1) + x1 + x2 | unit + year",
])
@pytest.mark.parametrize("drop", [0.0, 0.15])
def test_factor_terms_match_pyfixest(con, fml, drop):
    df = event_panel(1, drop)
    con.register("panel", df)
    res = feols(con, "panel", fml, vcov={"CRV1": "unit"})
    m = pf_fit(fml, df, {"CRV1": "unit"})
    # pyfixest drops the level that only never-treated units carry (-1 is the ref; none here)
    assert res.dropped == list(m._collin_vars)
    assert_matches(res, m, has_fe=True)
    assert any(t.startswith("rel::") for t in res.terms)


def test_factor_reference_must_be_a_level(con):
    con.register("panel", event_panel(2))
    with pytest.raises(ValueError, match="reference level"):
        feols(con, "panel", "y ~ i(rel, ref=99) | unit + year")


def test_factor_rows_with_null_level_are_dropped(con):
    df = event_panel(3)
    df["rel_na"] = df["rel"].astype("float").where(df["treat"] == 1)  # NULL for never-treated
    con.register("panel", df)
    res = feols(con, "panel", "y ~ i(rel_na, ref=-1) + x1 | unit + year", vcov="hetero")
    assert res.n_missing == int(df["rel_na"].isna().sum())
    assert_matches(res, pf_fit("y ~ i(rel_na, ref=-1) + x1 | unit + year", df, "hetero"), has_fe=True)


# ----------------------------------------------------------- two-way clustering
@pytest.mark.parametrize("fml", ["res ~ did + x1 + x2 | unit + year", "res ~ did + x1 + x2"])
@pytest.mark.parametrize("clusters", ["unit+year", "region+year"])
def test_twoway_clustering_matches_pyfixest(con, fml, clusters):
    df = unbalance(make_panel(31), seed=31)
    con.register("panel", df)
    res = feols(con, "panel", fml, vcov={"CRV1": clusters})
    m = pf_fit(fml, df, {"CRV1": clusters})
    assert res.cluster == clusters and res.n_clusters == int(np.min(m._G))
    assert res.df_t == int(m._df_t)
    assert_matches(res, m, has_fe="|" in fml)


def test_twoway_clustering_by_hand(con):
    """V = c (B M_A B + B M_B B - B M_AB B), c = G/(G-1) (N-1)/(N-K), G = min(G_A, G_B), numpy."""
    df = make_panel(32, n_units=30, n_periods=6)
    con.register("panel", df)
    res = feols(con, "panel", "res ~ did + x1 + x2", vcov={"CRV1": "unit+year"})
    X = np.column_stack([np.ones(len(df)), df[["did", "x1", "x2"]].to_numpy()])
    y = df["res"].to_numpy()
    B = np.linalg.inv(X.T @ X)
    u = y - X @ (B @ X.T @ y)

    def meat(groups):
        s = pd.DataFrame(X * u[:, None]).groupby(groups).sum().to_numpy()
        return s.T @ s

    inter = df["unit"].astype(str) + "-" + df["year"].astype(str)
    M = meat(df["unit"].to_numpy()) + meat(df["year"].to_numpy()) - meat(inter.to_numpy())
    n, k, g = len(df), 4, min(30, 6)
    V = g / (g - 1) * (n - 1) / (n - k) * B @ M @ B
    np.testing.assert_allclose(res.se.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-10)
    assert res.df_t == g - 1


# ------------------------------------------------------------------ F and Wald
@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "unit"}])
def test_wald_test_matches_pyfixest(con, vcov):
    df = unbalance(make_panel(33), seed=33)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    res = feols(con, "panel", fml, vcov=vcov)
    m = pf_fit(fml, df, vcov)
    R = np.eye(3)[[0, 2]]
    w = m.wald_test(R=R, distribution="chi2")  # a subset: pyfixest reports the chi2 Wald statistic
    wt = res.wald_test(["did", "x2"])
    assert wt.wald == pytest.approx(w["statistic"], rel=1e-7)
    assert wt.p_chi2 == pytest.approx(w["pvalue"], rel=1e-6)
    assert wt.f == pytest.approx(wt.wald / 2, rel=1e-14) and (wt.df1, wt.df2) == (2, res.df_t)
    if isinstance(vcov, dict):  # all coefficients: pyfixest's F(k, G-1), the model F here
        full = m.wald_test()
        assert res.fstat == pytest.approx(full["statistic"], rel=1e-7)
        assert res.f_pvalue == pytest.approx(full["pvalue"], rel=1e-6, abs=1e-14)
        assert res.f_df == (3, res.df_t)


def test_model_f_equals_statsmodels_without_fe(con):
    df = make_panel(34)
    con.register("panel", df)
    res = feols(con, "panel", "res ~ did + x1 + x2", vcov="iid")
    sm = smf.ols("res ~ did + x1 + x2", df).fit()
    assert res.fstat == pytest.approx(sm.fvalue, rel=1e-9)
    assert res.f_pvalue == pytest.approx(sm.f_pvalue, rel=1e-7)
    assert res.f_df == (3, int(sm.df_resid))
    np.testing.assert_allclose(res.se.to_numpy(), sm.bse.to_numpy(), rtol=1e-9)


# ----------------------------------------------- exact two-way on unbalanced panels
@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n_units=st.integers(12, 45), n_periods=st.integers(3, 9),
       drop=st.floats(0.05, 0.4), weighted=st.booleans(),
       vcov=st.sampled_from(["iid", "hetero", {"CRV1": "unit"}, {"CRV1": "unit+year"}]))
def test_within_dummies_random_unbalanced_panels(con, seed, n_units, n_periods, drop, weighted, vcov):
    df = unbalance(make_panel(seed, n_units, n_periods), seed=seed, frac_drop=drop, n_null=3)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    kw = {"weights": "w"} if weighted else {}
    m = pf_fit(fml, df, vcov, **kw)
    res = feols(con, "panel", fml, vcov=vcov, **kw)
    assert res.demean_method in ("within_dummies", "balanced")
    if res.dropped or list(m._collin_vars):
        assert res.dropped == list(m._collin_vars)
    assert_matches(res, m, has_fe=True)


def test_all_demeaning_methods_agree_on_unbalanced(con):
    df = unbalance(make_panel(35, n_units=50, n_periods=10), seed=35)
    con.register("panel", df)
    fml = "res ~ did + x1 + x2 | unit + year"
    a = feols(con, "panel", fml, vcov={"CRV1": "unit"})
    b = feols(con, "panel", fml, vcov={"CRV1": "unit"}, demean_method="alternating")
    c = feols(con, "panel", fml, vcov={"CRV1": "unit"}, max_dummies=0)  # auto falls back to MAP
    assert (a.demean_method, b.demean_method, c.demean_method) == ("within_dummies", "alternating", "alternating")
    for other in (b, c):
        np.testing.assert_allclose(other.coef, a.coef, rtol=0, atol=COEF_TOL)
        np.testing.assert_allclose(other.se, a.se, rtol=SE_RTOL)
        assert other.r2_within == pytest.approx(a.r2_within, abs=1e-10)


def test_map_stops_on_absolute_plus_relative_change(con):
    df = unbalance(make_panel(36), seed=36)
    # a regressor on a tiny scale: a purely relative rule would need changes of ~1e-23
    df["tiny"] = df["x1"] * 1e-10
    con.register("panel", df)
    res = feols(con, "panel", "res ~ did + tiny | unit + year", demean_method="alternating", fixef_tol=1e-12)
    assert res.extra["demean_max_change"] <= 1e-12
    ref = feols(con, "panel", "res ~ did + tiny | unit + year")  # exact within_dummies
    assert res.coef["did"] == pytest.approx(ref.coef["did"], abs=1e-9)


# ----------------------------------------------- integer codes of FE and cluster columns
def _codes_and_raw(con, source: str, fe: list[str], cluster: str | None):
    from estimation.engine.sample import build_sample
    from estimation.engine.sqlutil import temp_scope

    with temp_scope(con) as scope:
        s = build_sample(con, scope, source, "res", ["did", "x1"], fe, cluster, None,
                         carry={f"__raw{j}": c for j, c in enumerate(fe)})
        codes = con.execute(f"SELECT {', '.join(s.fe)}, {', '.join(f'__raw{j}' for j in range(len(fe)))} "
                            f"FROM {s.table}").df()
        return s, codes


def test_integer_ids_with_gaps_get_dense_codes_in_sorted_order(con, monkeypatch):
    """Offset codes (integer ids) and ranked codes (text ids) are the same 1..L: gaps from
    absent ids, from rows deleted for a NULL and from emptied singleton levels are closed."""
    df = make_panel(41, n_units=30, n_periods=8)
    df["unit"] = df["unit"] * 7 + 3  # ids 3, 10, 17, ...: span 204 <= 240 rows, so coded by offset
    df.loc[df["year"] == 2008, "res"] = np.nan  # a whole year deleted listwise: a gap in the year codes
    df.loc[df["unit"] == 10, "x1"] = np.nan  # and a whole unit
    lone = pd.DataFrame({"unit": [210, 211], "year": [2010, 2010], "did": 0.0, "x1": 1.0, "res": 1.0})
    df = pd.concat([df, lone], ignore_index=True)  # singleton units: removed, a gap at the top
    text = df.assign(unit=df["unit"].map("u{:04d}".format), year=df["year"].map("y{}".format))
    con.register("ints", df)
    con.register("texts", text)
    from estimation.engine import sample

    decisions = []
    offset_codable = sample._offset_codable
    monkeypatch.setattr(sample, "_offset_codable", lambda *a: decisions.append(offset_codable(*a)) or decisions[-1])
    s_int, c_int = _codes_and_raw(con, "ints", ["unit", "year"], "unit")
    s_txt, c_txt = _codes_and_raw(con, "texts", ["unit", "year"], "unit")
    assert decisions == [True, True, False, False]  # integers by offset, text by rank
    assert s_int.n_singletons == s_txt.n_singletons == 2 and s_int.nobs == s_txt.nobs
    assert s_int.fe_levels == s_txt.fe_levels == [29, 7]
    for codes, levels in ((c_int, s_int.fe_levels), (c_txt, s_txt.fe_levels)):
        for j, f in enumerate(s_int.fe):
            assert sorted(codes[f].unique()) == list(range(1, levels[j] + 1))
            by_raw = codes.groupby(f"__raw{j}")[f].agg(["min", "max"]).sort_index()
            assert (by_raw["min"] == by_raw["max"]).all() and by_raw["min"].is_monotonic_increasing
    both = c_int.assign(key=c_int["__raw0"].map("u{:04d}".format) + c_int["__raw1"].map("y{}".format))
    other = c_txt.assign(key=c_txt["__raw0"] + c_txt["__raw1"])
    merged = both.merge(other, on="key", suffixes=("_i", "_t"))
    assert len(merged) == s_int.nobs
    assert (merged["__f0_i"] == merged["__f0_t"]).all() and (merged["__f1_i"] == merged["__f1_t"]).all()


def test_a_year_emptied_by_singleton_removal_keeps_the_year_dummies_right(con):
    """Year 2007 holds only singleton units: removing them empties a year in the middle of the
    codes. The small FE's dummies (within_dummies) must still be one per remaining year: the
    coefficients equal a least-squares fit with every dummy, by numpy on the same rows."""
    df = make_panel(42, n_units=25, n_periods=6)
    df = df[df["year"] != 2007].drop(index=[0, 13, 40])  # unbalanced: the dummies' method
    lone = pd.DataFrame({"unit": [900, 901, 902], "year": 2007, "did": [0.0, 1.0, 0.0],
                         "x1": [0.3, -1.2, 2.0], "x2": [1.0, 0.5, -0.7], "res": [5.0, -3.0, 8.0]})
    df = pd.concat([df, lone], ignore_index=True)
    con.register("panel", df)
    res = feols(con, "panel", "res ~ did + x1 + x2 | unit + year", vcov="iid")
    assert res.demean_method == "within_dummies" and res.nobs == 25 * 5 - 3
    kept = df[df["unit"] < 900]
    dummies = pd.get_dummies(kept[["unit", "year"]].astype(str), drop_first=True).to_numpy(float)
    design = np.column_stack([kept[["did", "x1", "x2"]].to_numpy(), np.ones(len(kept)), dummies])
    beta = np.linalg.lstsq(design, kept["res"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(res.coef, beta[:3], rtol=0, atol=1e-10)


def test_insert_rows_writes_every_row_in_chunks_with_nulls_and_the_trailing_sql(con, monkeypatch):
    from estimation.engine import sqlutil

    monkeypatch.setattr(sqlutil, "INSERT_CHUNK", 7)  # 30 rows: five statements, the last one short
    con.execute("create table t (i integer, x double, s varchar, b boolean, written timestamp with time zone)")
    rows = [(i, None if i % 5 == 0 else i / 3, f"r{i}" if i % 4 else None, i % 2 == 0) for i in range(30)]
    assert sqlutil.insert_rows(con, "t", rows, trailing="now()") == 30
    back = con.execute("select i, x, s, b from t order by i").fetchall()
    assert back == rows
    assert con.execute("select count(*) from t where written is null").fetchall()[0][0] == 0
    assert sqlutil.insert_rows(con, "t", []) == 0
    with pytest.raises(ValueError, match="unequal length"):
        sqlutil.insert_rows(con, "t", [(1, 1.0, "a", True), (2, 2.0)], trailing="now()")
