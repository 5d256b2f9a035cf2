"""Wild cluster bootstrap (estimation/engine/wildboot.py): exact against brute-force refits,
against the wildboottest package, test inversion, reproducibility."""
from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pandas as pd
import pytest

from estimation.engine.wildboot import WEBB, wild_bootstrap

CONTROLS = ["x1", "x2"]


def _panel(units=10, periods=8, seed=0, drop=0.0, k=2):
    r = np.random.default_rng(seed)
    u = np.repeat(np.arange(units), periods)
    t = np.tile(np.arange(periods), units)
    X = r.normal(size=(units * periods, k))
    d = (r.random(units * periods) < 0.4).astype(float) + 0.3 * X[:, 0]
    y = (0.2 * d + X @ np.linspace(0.5, -0.5, k) + r.normal(size=units)[u] + r.normal(size=periods)[t]
         + r.normal(size=units * periods) * (1 + 0.5 * r.normal(size=units)[u] ** 2))
    df = pd.DataFrame(X, columns=[f"x{j + 1}" for j in range(k)])
    df["d"], df["y"], df["unit"], df["year"] = d, y, u, t
    df["prov"] = u % 15
    df["cross"] = (u + t) % 7  # clusters cutting across units and years
    if drop:
        df = df[r.random(len(df)) >= drop].reset_index(drop=True)
    return df


def _brute_t_star(df, fe, cluster, V, b0, ssc_factor, controls=CONTROLS):
    """Literally: restricted fit, y* = fitted + v_g u~, OLS with dummies, CRV1 t of d."""
    dummies = [pd.get_dummies(df[f], prefix=f, drop_first=(j > 0), dtype=float) for j, f in enumerate(fe)]
    F = pd.concat(dummies, axis=1).to_numpy() if fe else np.ones((len(df), 1))
    Xr = np.column_stack([df[controls].to_numpy(), F])
    X = np.column_stack([df["d"].to_numpy(), Xr])
    y = df["y"].to_numpy()
    yr = y - b0 * df["d"].to_numpy()
    gam = np.linalg.lstsq(Xr, yr, rcond=None)[0]
    u = yr - Xr @ gam
    fitted = y - u
    g_codes = np.unique(df[cluster].to_numpy(), return_inverse=True)[1]
    XtX_inv = np.linalg.pinv(X.T @ X)
    out = []
    for v in V:
        ys = fitted + v[g_codes] * u
        beta = XtX_inv @ (X.T @ ys)
        e = ys - X @ beta
        row = XtX_inv[0] @ X.T  # d-row of (X'X)^-1 X'
        s = np.bincount(g_codes, weights=row * e)
        out.append((beta[0] - b0) / np.sqrt(ssc_factor * np.sum(s**2)))
    return np.array(out)


def _con(df, threads=None):
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    con.register("panel", df)
    return con


CASES = [
    # (panel kwargs, fe, cluster)
    (dict(units=10, periods=8), ["unit", "year"], "unit"),  # balanced, FE nested in clusters
    (dict(units=40, periods=6, drop=0.15, seed=1), ["unit", "year"], "prov"),  # unbalanced, units in provinces
    (dict(units=20, periods=6, seed=2), ["unit", "year"], "cross"),  # no FE nested: the CF term
    (dict(units=30, periods=5, seed=3), ["unit"], "prov"),
    (dict(units=30, periods=5, seed=4), [], "prov"),
]


@pytest.mark.parametrize("kw,fe,cluster", CASES)
def test_full_enumeration_matches_brute_force_refits(kw, fe, cluster):
    df = _panel(**kw)
    fml = "y ~ d + x1 + x2" + (" | " + " + ".join(fe) if fe else "")
    con = _con(df)
    G = df[cluster].nunique()
    V = np.array(list(itertools.product([-1.0, 1.0], repeat=G)))
    if len(V) > 1024:
        V = V[np.random.default_rng(0).choice(len(V), 1024, replace=False)]
    res = wild_bootstrap(con, "panel", fml, "d", cluster, weights=V, ci=False)
    # the data's coefficient, CRV1 se and t are the engine's feols'
    assert res.coef == pytest.approx(float(res.model.coef["d"]), rel=1e-10, abs=1e-12)
    assert res.se == pytest.approx(float(res.model.se["d"]), rel=1e-10)
    brute = _brute_t_star(df, fe, cluster, V, 0.0, res.ssc_factor)
    np.testing.assert_allclose(res.t_draws, brute, atol=1e-8, rtol=0)
    # another null value b0 and Webb weights (same algebra, other inputs)
    W = WEBB[np.random.default_rng(5).integers(0, 6, size=(50, G))]
    res_w = wild_bootstrap(con, "panel", fml, "d", cluster, weights=W, ci=False)
    np.testing.assert_allclose(res_w.t_draws, _brute_t_star(df, fe, cluster, W, 0.0, res.ssc_factor),
                               atol=1e-8, rtol=0)
    b0 = res.coef + 1.5 * res.se
    np.testing.assert_allclose(res_w.t_draws_at(b0), _brute_t_star(df, fe, cluster, W, b0, res.ssc_factor),
                               atol=1e-8, rtol=0)


def test_rademacher_full_enumeration_p_value_is_symmetric():
    df = _panel(units=8, periods=6, seed=7)
    con = _con(df)
    V = np.array(list(itertools.product([-1.0, 1.0], repeat=8)))
    res = wild_bootstrap(con, "panel", "y ~ d + x1 + x2 | unit + year", "d", "unit", weights=V, ci=False)
    # v and -v give t* of opposite sign
    np.testing.assert_allclose(res.t_draws, -res.t_draws[::-1], atol=1e-10)
    assert res.p_value == pytest.approx(np.mean(np.abs(res.t_draws) >= abs(res.t_stat)))


def _wildboottest_p(df, fe, cluster, B, seed):
    sm = pytest.importorskip("statsmodels.api")
    wb = pytest.importorskip("wildboottest.wildboottest")
    X = pd.concat([df[["d", *CONTROLS]]]
                  + [pd.get_dummies(df[f], prefix=f, drop_first=(j > 0), dtype=float) for j, f in enumerate(fe)],
                  axis=1)
    model = sm.OLS(df["y"].to_numpy(), X)
    out = wb.wildboottest(model, B=B, cluster=df[cluster].to_numpy(), param="d", weights_type="rademacher",
                          impose_null=True, seed=seed, show=False)
    return float(out["p-value"].iloc[0]), float(out["statistic"].iloc[0])


@pytest.mark.parametrize("fe,cluster,seed", [(["unit", "year"], "unit", 11), (["unit", "year"], "prov", 12)])
def test_against_wildboottest_within_monte_carlo_error(fe, cluster, seed):
    df = _panel(units=60, periods=6, seed=seed)
    df["y"] = df["y"] - 0.2 * df["d"] + 0.12 * df["d"]  # p-value away from 0 and 1
    B = 9999
    p_ref, _ = _wildboottest_p(df, fe, cluster, B, seed)
    res = wild_bootstrap(_con(df), "panel", "y ~ d + x1 + x2 | unit + year", "d", cluster, draws=B, seed=seed,
                         ci=False)
    p = 0.5 * (res.p_value + p_ref)
    # both are Monte Carlo estimates with B draws: sd of the difference sqrt(2 p(1-p)/B)
    assert abs(res.p_value - p_ref) < 4 * np.sqrt(2 * p * (1 - p) / B) + 2e-3, (res.p_value, p_ref)


@pytest.mark.parametrize("weights", ["rademacher", "webb"])
def test_ci_by_test_inversion(weights):
    df = _panel(units=40, periods=6, seed=21)
    res = wild_bootstrap(_con(df), "panel", "y ~ d + x1 + x2 | unit + year", "d", "unit", draws=999,
                         weights=weights, seed=3, alpha=0.1)
    lo, hi = res.ci
    assert lo < res.coef < hi
    tol = 1e-6 * res.se  # the bisection bracket
    assert res.p_value_at(lo + 2 * tol) > 0.1 >= res.p_value_at(lo - 2 * tol)
    assert res.p_value_at(hi - 2 * tol) > 0.1 >= res.p_value_at(hi + 2 * tol)
    # the p-value curve at b0 = 0 is the reported p-value
    assert res.p_value_at(0.0) == res.p_value


def test_wcu_interval_and_p_value():
    df = _panel(units=40, periods=6, seed=22)
    res = wild_bootstrap(_con(df), "panel", "y ~ d + x1 + x2 | unit + year", "d", "prov", draws=999, seed=3,
                         impose_null=False)
    assert res.ci[0] < res.coef < res.ci[1]
    assert 0.0 <= res.p_value <= 1.0


def test_reproducible_and_thread_count_invariant():
    df = _panel(units=200, periods=10, seed=31, drop=0.05)
    fml = "y ~ d + x1 + x2 | unit + year"
    r1 = wild_bootstrap(_con(df, threads=1), "panel", fml, "d", "cross", draws=999, seed=42, ci=True)
    r4 = wild_bootstrap(_con(df, threads=4), "panel", fml, "d", "cross", draws=999, seed=42, ci=True)
    r1b = wild_bootstrap(_con(df, threads=1), "panel", fml, "d", "cross", draws=999, seed=42, ci=True)
    np.testing.assert_array_equal(r1.t_draws, r1b.t_draws)
    np.testing.assert_allclose(r1.t_draws, r4.t_draws, atol=1e-10, rtol=0)
    assert r1.p_value == r4.p_value
    np.testing.assert_allclose(r1.ci, r4.ci, atol=1e-10)
    r_other = wild_bootstrap(_con(df), "panel", fml, "d", "cross", draws=999, seed=43, ci=False)
    assert not np.array_equal(r1.t_draws, r_other.t_draws)
    s = r1.summary()
    assert s["draws"] == 999 and s["weights"] == "rademacher" and s["seed"] == 42


def test_bad_arguments():
    df = _panel()
    con = _con(df)
    with pytest.raises(ValueError):
        wild_bootstrap(con, "panel", "y ~ d + x1 | unit + year", "x9", "unit")
    with pytest.raises(ValueError):
        wild_bootstrap(con, "panel", "y ~ d + x1 | unit + year", "d", "unit", weights=np.ones((5, 3)))
    with pytest.raises(ValueError):
        wild_bootstrap(con, "panel", "y ~ d + x1 | unit + year", "d", "unit", weights="mammen")
