"""Sun-Abraham, Gardner's did2s and the Borusyak-Jaravel-Spiess imputation estimator.

References: pyfixest 0.60 (``event_study(estimator="saturated")`` + ``aggregate()``,
``feols``, ``did2s``, ``compute_period_weights``) and, for the BJS conservative variance, which
no installed package implements, a dense numpy transcription of BJS (2024) Theorem 3 / eqs. 7-8
written here (explicit dummies, pseudo-inverse projection).  Panels: 200 units x 10 periods,
cohorts 2004/2006/2008 + never treated, effects varying by cohort and event time, one
covariate; the unbalanced variant drops 5% of the rows.
"""

from __future__ import annotations

import functools
import re
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from estimation.engine.did_imputation import (
    did2s,
    did_imputation,
    lead_term,
    pretrend_test,
)
from estimation.engine.did_sa import sa_term, sun_abraham
from tests.oracles import COEF_TOL, SE_RTOL, pf_fit

FIRST_YEAR = 2001


def staggered_panel(seed: int = 11, n_units: int = 200, n_periods: int = 10, cohorts=(0, 4, 6, 8),
                    drop: float = 0.0) -> pd.DataFrame:
    """y = a_i + b_t + 0.7 x1 + tau_it + e; tau_it = 1 + 0.25 (cohort - 2004) + 0.3 k for k >= 0.

    ``cohorts`` are period numbers (1 = the first year; 0 = never treated).  ``drop`` removes that
    share of rows, only from the third period on, so every treated unit keeps two untreated rows
    (pyfixest's stage 1 would otherwise drop it as a fixed-effect singleton).
    """
    rng = np.random.default_rng(seed)
    gmap = np.array([0 if c == 0 else FIRST_YEAR - 1 + c for c in cohorts])
    g = np.repeat(gmap[rng.integers(0, len(cohorts), n_units)], n_periods)
    unit = np.repeat(np.arange(1, n_units + 1), n_periods)
    year = np.tile(np.arange(FIRST_YEAR, FIRST_YEAR + n_periods), n_units)
    a = np.repeat(rng.normal(size=n_units), n_periods)
    b = 0.3 * (year - FIRST_YEAR) + rng.normal(size=n_periods)[year - FIRST_YEAR]
    x1 = rng.normal(size=unit.size) + 0.3 * a
    treated = (g > 0) & (year >= g)
    k = year - g
    tau = np.where(treated, 1.0 + 0.25 * (g - 2004) + 0.3 * k, 0.0)
    y = a + b + 0.7 * x1 + tau + rng.normal(size=unit.size)
    df = pd.DataFrame({"unit": unit, "year": year, "cohort": g, "y": y, "x1": x1, "treat": treated.astype(int)})
    if drop:
        candidates = df.index[df["year"] >= FIRST_YEAR + 2]
        df = df.drop(rng.choice(candidates, int(drop * len(df)), replace=False)).reset_index(drop=True)
    return df


@pytest.fixture(scope="module")
def panels():
    return {"balanced": staggered_panel(), "unbalanced": staggered_panel(drop=0.05)}


@pytest.fixture
def dcon(panels):
    c = duckdb.connect()
    for name, df in panels.items():
        c.register(name, df)
    yield c
    c.close()


@pytest.fixture
def exact_pf_fixef(monkeypatch):
    """pyfixest's did2s recovers the stage-1 fixed effects by LSQR with atol = btol = 1e-6, which
    limits its predictions (hence every did2s estimate) to about 1e-6; tighten the reference."""
    import pyfixest as pf
    from pyfixest.estimation.models.feols_ import Feols

    original = Feols.fixef

    @functools.wraps(original)
    def fixef(self, atol=1e-14, btol=1e-14):
        return original(self, atol=atol, btol=btol)

    monkeypatch.setattr(Feols, "fixef", fixef)
    return pf


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _rows(res, aggregation: str) -> pd.DataFrame:
    e = res.estimates
    return e[(e["aggregation"] == aggregation) & e["key"].notna()].reset_index(drop=True)


def _close(ours, ref, rtol_se=SE_RTOL):
    np.testing.assert_allclose(np.asarray(ours, float), np.asarray(ref, float), rtol=rtol_se, atol=0)


def _coef_close(ours, ref):
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    assert np.all(np.abs(ours - ref) <= COEF_TOL * np.maximum(1.0, np.abs(ref))), ours - ref


# ================================================================ Sun & Abraham

def _pf_cells(fit) -> dict:
    """pyfixest's saturated coefficients keyed (cohort, event time)."""
    out = {}
    for name in fit.coef().index:
        k, g = re.match(r"rel_time::(-?[\d.]+):first_treated_period::(\d+)", name).groups()
        out[(int(g), int(float(k)))] = (fit.coef()[name], fit.se()[name])
    return out


def test_sun_abraham_matches_pyfixest_saturated_event_study(dcon, panels):
    import pyfixest as pf

    df = panels["balanced"]
    res = sun_abraham(dcon, "balanced", "y", "unit", "year", "cohort")
    fit = _quiet(pf.event_study, df, yname="y", idname="unit", tname="year", gname="cohort",
                 estimator="saturated")
    ref = _pf_cells(fit)
    cells = res.cells
    assert sorted(ref) == sorted(zip(cells["cohort"], cells["event_time"]))
    _coef_close(cells["coef"], [ref[(g, k)][0] for g, k in zip(cells["cohort"], cells["event_time"])])
    _close(cells["se"], [ref[(g, k)][1] for g, k in zip(cells["cohort"], cells["event_time"])])
    # pyfixest's interaction-weighted aggregation by event time (cohort shares, weights fixed)
    agg = _quiet(fit.aggregate)
    dyn = _rows(res, "dynamic")
    assert dyn["key"].tolist() == [int(p) for p in agg.index]
    _coef_close(dyn["coef"], agg["Estimate"].astype(float))
    _close(dyn["se"], agg["Std. Error"].astype(float))
    assert res.control == "never_treated" and res.model.nobs == len(df)


def _sa_dummies(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Cohort x event-time indicators (k != -1) of the treated cohorts, as pandas columns."""
    d = df.copy()
    k = d["year"] - d["cohort"]
    names = {}
    for g in sorted(c for c in d["cohort"].unique() if c > 0):
        for e in sorted(k[d["cohort"] == g].unique()):
            if e == -1:
                continue
            col = f"c{g}_e{'m' if e < 0 else ''}{abs(e)}"
            d[col] = ((d["cohort"] == g) & (k == e)).astype(float)
            names[(int(g), int(e))] = col
    return d, names


def test_sun_abraham_unbalanced_with_covariate_matches_pyfixest(dcon, panels):
    from pyfixest.did.saturated_twfe import compute_period_weights

    df = panels["unbalanced"]
    res = sun_abraham(dcon, "unbalanced", "y", "unit", "year", "cohort", ["x1"])
    d, names = _sa_dummies(df)
    cols = list(names.values())
    m = pf_fit("y ~ " + " + ".join(cols) + " + x1 | unit + year", d, {"CRV1": "unit"})
    cells = res.cells
    terms = [names[(g, k)] for g, k in zip(cells["cohort"], cells["event_time"])]
    assert sorted(terms) == sorted(cols)
    _coef_close(cells["coef"], m.coef()[terms])
    _close(cells["se"], m.se()[terms])
    assert res.model.coef["x1"] == pytest.approx(m.coef()["x1"], abs=COEF_TOL)
    # aggregation by event time with pyfixest's Sun-Abraham weights and pyfixest's vcov
    d["rel_time"] = np.where(d["cohort"] > 0, d["year"] - d["cohort"], np.inf)
    W = compute_period_weights(d, cohort="cohort", period="rel_time", treatment="treat").set_index(
        ["cohort", "rel_time"])["weight"]
    V = pd.DataFrame(m._vcov, index=m.coef().index, columns=m.coef().index)
    for row in _rows(res, "dynamic").itertuples():
        w = pd.Series({names[(g, row.key)]: W[(g, float(row.key))] for (g, e) in names if e == row.key})
        assert row.coef == pytest.approx(float(w @ m.coef()[w.index]), abs=COEF_TOL)
        assert row.se == pytest.approx(float(np.sqrt(w @ V.loc[w.index, w.index] @ w)), rel=SE_RTOL)
    # simple: every post cell by its share of the treated observations
    post = {key: col for key, col in names.items() if key[1] >= 0}
    n = pd.Series({col: d[col].sum() for col in post.values()})
    w = n / n.sum()
    assert res.coef("simple") == pytest.approx(float(w @ m.coef()[w.index]), abs=COEF_TOL)
    assert res.se("simple") == pytest.approx(float(np.sqrt(w @ V.loc[w.index, w.index] @ w)), rel=SE_RTOL)
    # one cohort's ATT: its post cells by their observation counts
    g0 = 2006
    ng = pd.Series({col: d[col].sum() for (g, _), col in post.items() if g == g0})
    wg = ng / ng.sum()
    assert res.coef("group", g0) == pytest.approx(float(wg @ m.coef()[wg.index]), abs=COEF_TOL)
    assert res.se("group", g0) == pytest.approx(float(np.sqrt(wg @ V.loc[wg.index, wg.index] @ wg)), rel=SE_RTOL)


def test_sun_abraham_last_treated_cohort_is_the_control_without_never_treated(dcon):
    df = staggered_panel(seed=5, cohorts=(4, 6, 8))
    dcon.register("nonever", df)
    res = sun_abraham(dcon, "nonever", "y", "unit", "year", "cohort", ["x1"])
    assert res.control == "last_treated" and res.control_cohort == 2008
    trimmed = df[df["year"] < 2008].copy()
    trimmed.loc[trimmed["cohort"] == 2008, "cohort"] = 0  # the control cohort: no indicators
    d, names = _sa_dummies(trimmed)
    m = pf_fit("y ~ " + " + ".join(names.values()) + " + x1 | unit + year", d, {"CRV1": "unit"})
    terms = [names[(g, k)] for g, k in zip(res.cells["cohort"], res.cells["event_time"])]
    assert sorted(terms) == sorted(names.values()) and set(res.cells["cohort"]) == {2004, 2006}
    _coef_close(res.cells["coef"], m.coef()[terms])
    _close(res.cells["se"], m.se()[terms])
    assert res.model.nobs == len(trimmed)


# ================================================================ did2s (Gardner / Butts GMM)

def _with_event_time(df: pd.DataFrame, leads: int = 0) -> pd.DataFrame:
    d = df.copy()
    k = d["year"] - d["cohort"]
    keep = (d["cohort"] > 0) & ((d["treat"] == 1) | (k >= -leads))
    d["evt"] = np.where(keep, k, -999)
    d["gtr"] = np.where(d["treat"] == 1, d["cohort"], 0)
    return d


@pytest.mark.parametrize("which", ["balanced", "unbalanced"])
@pytest.mark.parametrize("covariates", [[], ["x1"]])
def test_did2s_matches_pyfixest_static_and_event_study(dcon, panels, exact_pf_fixef, which, covariates):
    pf = exact_pf_fixef
    df = _with_event_time(panels[which])
    first = "~ " + (" + ".join(covariates) if covariates else "0") + " | unit + year"
    res = did2s(dcon, which, "y", "unit", "year", "cohort", covariates)
    static = _quiet(pf.did2s, df, yname="y", first_stage=first, second_stage="~ treat", treatment="treat",
                    cluster="unit")
    _coef_close([res.coef("simple")], static.coef().to_numpy())
    _close([res.se("simple")], static.se().to_numpy())
    dyn = _quiet(pf.did2s, df, yname="y", first_stage=first, second_stage="~ i(evt, ref=-999)", treatment="treat",
                 cluster="unit")
    rows = _rows(res, "dynamic")
    assert [f"evt::{k}" for k in rows["key"]] == list(dyn.coef().index)
    _coef_close(rows["coef"], dyn.coef())
    _close(rows["se"], dyn.se())
    # the overall dynamic value is c'beta with the GMM covariance of the event-time betas
    c = np.full(len(rows), 1.0 / len(rows))
    assert res.coef("dynamic") == pytest.approx(float(c @ dyn.coef().to_numpy()), abs=COEF_TOL)
    assert res.se("dynamic") == pytest.approx(float(np.sqrt(c @ dyn._vcov @ c)), rel=SE_RTOL)
    if covariates:
        assert res.first_stage["x1"] == pytest.approx(pf_fit("y ~ x1 | unit + year", df[df.treat == 0],
                                                             "iid").coef()["x1"], abs=COEF_TOL)


def test_did2s_leads_and_cohort_second_stage_match_pyfixest(dcon, panels, exact_pf_fixef):
    pf = exact_pf_fixef
    df = _with_event_time(panels["unbalanced"], leads=3)
    res = did2s(dcon, "unbalanced", "y", "unit", "year", "cohort", ["x1"], leads=3, horizons=4)
    m = _quiet(pf.did2s, df.assign(evt=np.where(df["evt"] > 4, -999, df["evt"])), yname="y",
               first_stage="~ x1 | unit + year", second_stage="~ i(evt, ref=-999)", treatment="treat", cluster="unit")
    rows = _rows(res, "dynamic")
    assert rows["key"].tolist() == [-3, -2, -1, 0, 1, 2, 3, 4]
    _coef_close(rows["coef"], m.coef())
    _close(rows["se"], m.se())
    g = _quiet(pf.did2s, df, yname="y", first_stage="~ x1 | unit + year", second_stage="~ i(gtr, ref=0)",
               treatment="treat", cluster="unit")
    rows = _rows(res, "group")
    assert [f"gtr::{k}" for k in rows["key"]] == list(g.coef().index)
    _coef_close(rows["coef"], g.coef())
    _close(rows["se"], g.se())


# ================================================================ BJS imputation

def bjs_numpy(df: pd.DataFrame, weights: dict, covariates=(), avg_effects_by=("g", "t"), leave_out=False,
              cluster: str = "unit"):
    """Dense transcription of BJS (2024) Theorem 3 / eqs. 7-8.

    ``weights``: name -> function(frame) giving w over the rows (zero on untreated rows).
    Returns (estimates, vcov) over the names.  X = [all unit dummies, period dummies, covariates]
    on the untreated rows Omega_0; v_0 = -X_0 (X_0'X_0)^+ X'w; e~ = the stage-1 residual on
    Omega_0; on Omega_1 unit i's contribution to group G is b_iG - a_iG tau~_G with
    a_iG = sum_{t in G} v_it, b_iG = sum_{t in G} v_it tau^_it, tau~_G = sum a b / sum a^2
    (leave-out: divided by 1 - a_iG^2 / sum_j a_jG^2 when G has more than one unit);
    sigma^2 = sum_c (sum_{it in c} v_it e~_it)^2.
    """
    d = df.assign(g=df["cohort"].where(df["cohort"] > 0), t=df["year"])
    d["e"] = d["t"] - d["g"]
    D = (d["e"] >= 0).to_numpy()
    U = ~D
    X = np.column_stack([pd.get_dummies(d["unit"], dtype=float).to_numpy(),
                         pd.get_dummies(d["year"], dtype=float).to_numpy()[:, 1:]]
                        + [d[c].to_numpy(float) for c in covariates])
    y = d["y"].to_numpy(float)
    X0 = X[U]
    b1 = np.linalg.lstsq(X0, y[U], rcond=None)[0]
    y_til = y - X @ b1
    P = np.linalg.pinv(X0.T @ X0)
    names = list(weights)
    est, psis = [], []
    for name in names:
        w = weights[name](d)
        v = w.copy()
        v[U] = -(X0 @ (P @ (X.T @ w)))
        est.append(float(w @ y_til))
        assert float(v @ y) == pytest.approx(est[-1], abs=1e-9)  # tau^_w = sum v_it Y_it
        psi = pd.Series(np.where(U, v * y_til, 0.0)).groupby(d[cluster].to_numpy()).sum()
        tr = d[D].assign(a=v[D], b=v[D] * y_til[D])
        tr = tr[tr["a"] != 0]
        keys = list(avg_effects_by)
        by_unit = tr.groupby(keys + ["unit"], dropna=False)[["a", "b"]].sum().reset_index()
        grp = by_unit.groupby(keys, dropna=False) if keys else by_unit.assign(_k=0).groupby("_k")
        aa = grp["a"].transform(lambda s: (s ** 2).sum())
        ab = (by_unit["a"] * by_unit["b"]).groupby(
            [by_unit[k] for k in keys] if keys else np.zeros(len(by_unit))).transform("sum")
        m = grp["a"].transform("count")
        contrib = by_unit["b"] - by_unit["a"] * ab / aa
        if leave_out:
            contrib = np.where(m > 1, contrib / (1.0 - by_unit["a"] ** 2 / aa), contrib)
        unit_cluster = d.groupby("unit")[cluster].first()
        psi = psi.add(pd.Series(np.asarray(contrib)).groupby(by_unit["unit"].map(unit_cluster).to_numpy()).sum(),
                      fill_value=0.0)
        psis.append(psi)
    Psi = pd.concat(psis, axis=1).fillna(0.0).to_numpy()
    return dict(zip(names, est)), pd.DataFrame(Psi.T @ Psi, index=names, columns=names)


def _bjs_weights(d_units: pd.DataFrame) -> dict:
    """The estimands of did_imputation, as row-weight functions."""
    def cellw(sel):
        sel = np.asarray(sel, bool)
        return np.where(sel, 1.0 / sel.sum(), 0.0)

    tr = d_units[d_units["treat"] == 1]
    horizons = sorted((tr["year"] - tr["cohort"]).unique())
    cohorts = sorted(tr["cohort"].unique())
    periods = sorted(tr["year"].unique())
    units = tr.groupby("cohort")["unit"].nunique()
    out = {("simple", None): lambda d: cellw(d["e"] >= 0)}
    for h in horizons:
        out[("dynamic", h)] = lambda d, h=h: cellw(d["e"] == h)
    out[("dynamic", None)] = lambda d: sum(cellw(d["e"] == h) for h in horizons) / len(horizons)
    for g in cohorts:
        out[("group", g)] = lambda d, g=g: cellw((d["e"] >= 0) & (d["g"] == g))
    out[("group", None)] = lambda d: sum(units[g] / units.sum() * cellw((d["e"] >= 0) & (d["g"] == g))
                                         for g in cohorts)
    for t in periods:
        out[("calendar", t)] = lambda d, t=t: cellw((d["e"] >= 0) & (d["t"] == t))
    out[("calendar", None)] = lambda d: sum(cellw((d["e"] >= 0) & (d["t"] == t)) for t in periods) / len(periods)
    return out


def _labels(res) -> list:
    return [(a, None if pd.isna(k) else int(k)) for a, k in zip(res.estimates["aggregation"], res.estimates["key"])]


@pytest.mark.parametrize("avg_effects_by, keys, leave_out", [
    ("cohort_period", ("g", "t"), False),
    ("cohort_period", ("g", "t"), True),
    ("event_time", ("e",), False),
    ("cohort", ("g",), True),
    ("all", (), False),
])
def test_bjs_conservative_variance_matches_numpy_transcription(avg_effects_by, keys, leave_out):
    df = staggered_panel(seed=3, n_units=60, n_periods=8, cohorts=(0, 3, 5, 7), drop=0.05)
    con = duckdb.connect()
    con.register("small", df)
    res = did_imputation(con, "small", "y", "unit", "year", "cohort", ["x1"], avg_effects_by=avg_effects_by,
                         leave_out=leave_out)
    est, V = bjs_numpy(df, _bjs_weights(df), ["x1"], keys, leave_out)
    labels = _labels(res)
    assert set(labels) == set(est)
    np.testing.assert_allclose(res.estimates["coef"], [est[lb] for lb in labels], rtol=0, atol=1e-10)
    # same formula, different arithmetic (SQL group sums vs dense pseudo-inverse): 1e-8 relative
    np.testing.assert_allclose(res.vcov, V.loc[labels, labels].to_numpy(), rtol=1e-8,
                               atol=1e-8 * np.max(np.diag(res.vcov)))
    np.testing.assert_allclose(res.estimates["se"], np.sqrt(np.diag(V.loc[labels, labels])), rtol=1e-8)


def test_bjs_point_estimates_equal_did2s_and_cohort_clusters(dcon, panels):
    """The imputation identity (BJS Theorem 2 = Gardner's second stage), and clusters of units."""
    for which in panels:
        bjs = did_imputation(dcon, which, "y", "unit", "year", "cohort", ["x1"])
        two = did2s(dcon, which, "y", "unit", "year", "cohort", ["x1"])
        assert _labels(bjs) == _labels(two)
        np.testing.assert_allclose(bjs.estimates["coef"], two.estimates["coef"], rtol=0, atol=1e-10)
        assert bjs.n_treated == int(panels[which]["treat"].sum()) and bjs.n_not_imputable == 0
    df = panels["unbalanced"].assign(region=lambda d: d["unit"] % 23)
    dcon.register("regions", df)
    res = did_imputation(dcon, "regions", "y", "unit", "year", "cohort", ["x1"], cluster="region")
    _, V = bjs_numpy(df, _bjs_weights(df), ["x1"], cluster="region")
    labels = _labels(res)
    assert res.n_clusters == 23
    np.testing.assert_allclose(res.estimates["se"], np.sqrt(np.diag(V.loc[labels, labels])), rtol=1e-8)


def test_rows_that_cannot_be_imputed_are_dropped(dcon):
    """No never-treated units: periods from the last cohort's date have no untreated row; an
    always-treated unit has no untreated period.  Both are dropped and counted."""
    df = staggered_panel(seed=8, n_units=80, cohorts=(1, 4, 6, 8))
    dcon.register("edge", df)
    res = did_imputation(dcon, "edge", "y", "unit", "year", "cohort", ["x1"])
    always = df["cohort"] == FIRST_YEAR
    late = (df["treat"] == 1) & (df["year"] >= 2008)
    assert res.n_not_imputable == int((always | late).sum())
    kept = df[~(always | late)]
    est, V = bjs_numpy(kept, _bjs_weights(kept), ["x1"])
    labels = _labels(res)
    np.testing.assert_allclose(res.estimates["coef"], [est[lb] for lb in labels], rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.estimates["se"], np.sqrt(np.diag(V.loc[labels, labels])), rtol=1e-8)


def test_bjs_pretrend_test_matches_pyfixest_on_untreated_rows(dcon, panels):
    df = panels["unbalanced"]
    pt = pretrend_test(dcon, "unbalanced", "y", "unit", "year", "cohort", ["x1"], leads=3)
    u = df[df["treat"] == 0].copy()
    k = u["year"] - u["cohort"]
    for lead in (1, 2, 3):
        u[f"lead{lead}"] = ((u["cohort"] > 0) & (k == -lead)).astype(float)
    m = pf_fit("y ~ lead1 + lead2 + lead3 + x1 | unit + year", u, {"CRV1": "unit"})
    assert pt.leads == [-1, -2, -3]
    _coef_close([pt.model.coef[lead_term(-j)] for j in (1, 2, 3)], m.coef()[["lead1", "lead2", "lead3"]])
    _close([pt.model.se[lead_term(-j)] for j in (1, 2, 3)], m.se()[["lead1", "lead2", "lead3"]])
    R = np.zeros((3, 4))
    R[0, 0] = R[1, 1] = R[2, 2] = 1.0
    # pyfixest tests a non-identity R against chi2 only; F = W / 3 on (3, G - 1) from its W
    w = _quiet(m.wald_test, R=R, distribution="chi2")
    assert pt.wald.wald == pytest.approx(w["statistic"], rel=1e-7)
    assert pt.wald.p_chi2 == pytest.approx(w["pvalue"], rel=1e-6)
    assert (pt.wald.df1, pt.wald.df2) == (3, u["unit"].nunique() - 1)
    assert pt.wald.p_f == pytest.approx(stats.f.sf(w["statistic"] / 3, 3, u["unit"].nunique() - 1), rel=1e-6)
    assert pt.to_dict()["p_f"] == pt.wald.p_f


# ================================================================ output and input checks

def test_to_dict_shape(dcon):
    sa = sun_abraham(dcon, "balanced", "y", "unit", "year", "cohort")
    assert sa_term(2004, -2) in sa.model.coef.index and sa.to_dict()["cells"][0]["cohort"] == 2004
    for res in (sa,
                did2s(dcon, "balanced", "y", "unit", "year", "cohort"),
                did_imputation(dcon, "balanced", "y", "unit", "year", "cohort")):
        d = res.to_dict()
        assert d["method"] in ("sun_abraham", "did2s", "imputation")
        agg = d["aggregates"]
        assert set(agg) == {"simple", "dynamic", "group", "calendar"}
        assert set(agg["simple"]) == {"coef", "se"}
        assert {"event_time", "coef", "se"} <= set(agg["dynamic"]["rows"][0])
        assert {"cohort", "coef", "se"} <= set(agg["group"]["rows"][0])
        assert {"time", "coef", "se"} <= set(agg["calendar"]["rows"][0])
        assert np.isfinite(agg["dynamic"]["coef"]) and agg["dynamic"]["se"] > 0


def test_bad_input_raises_value_error(dcon, panels):
    df = panels["balanced"].copy()
    bad = df.assign(cohort=np.where(df["year"] == 2005, 2004, df["cohort"]))
    dcon.register("bad_cohort", bad)
    with pytest.raises(ValueError, match="constant within each unit"):
        did_imputation(dcon, "bad_cohort", "y", "unit", "year", "cohort")
    dcon.register("bad_time", df.assign(year=df["year"] + 0.5))
    with pytest.raises(ValueError, match="integer periods"):
        sun_abraham(dcon, "bad_time", "y", "unit", "year", "cohort")
    dcon.register("split", df.assign(region=df["year"] % 2))
    with pytest.raises(ValueError, match="whole units"):
        did2s(dcon, "split", "y", "unit", "year", "cohort", cluster="region")
    dcon.register("nonever2", df[df["cohort"] > 0])
    with pytest.raises(ValueError, match="never-treated"):
        sun_abraham(dcon, "nonever2", "y", "unit", "year", "cohort", control="never")
    with pytest.raises(ValueError, match="avg_effects_by"):
        did_imputation(dcon, "balanced", "y", "unit", "year", "cohort", avg_effects_by="unit")
    with pytest.raises(ValueError, match="distinct"):
        did2s(dcon, "balanced", "y", "unit", "year", "year")
