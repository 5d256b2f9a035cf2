"""Spatial DID (estimation/engine/spatial.py) against independent references.

* weights: haversine distances against scikit-learn's ``haversine_distances`` (x the same radius),
  kNN neighbour sets against libpysal ``KNN`` and inverse-distance bands against libpysal
  ``DistanceBand`` (both with arc distances);
* W·DID: the SQL lag against a dense numpy W @ D per period; the DID against pyfixest with that
  column (tests/oracles.py: every reported quantity, 1e-8 / 1e-6);
* distance bands: the exposure indicators built in pandas, the DID against pyfixest;
* the spatial Durbin / lag panel model by ML against spreg 1.9.0 ``Panel_FE_Lag`` with period
  dummies (the same two-way FE estimator: spreg demeans by unit only, and the dummies absorb the
  time effects); LeSage-Pace effects against spreg's multipliers and a dense numpy S matrix.

Synthetic data only, seeded; ~60 units with random coordinates in south-east China, 8 periods,
rho = 0.3, half the units treated from period 5.
"""

from __future__ import annotations

import itertools
import json
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from estimation.engine.spatial import (
    EARTH_RADIUS_KM,
    SpatialWeights,
    band_name,
    spatial_durbin_did,
    spatial_lag,
    spatial_lag_did,
    spatial_weights,
    spillover_by_distance_band,
)
from tests.oracles import assert_matches, pf_fit

N_UNITS, N_PERIODS, RHO = 60, 8, 0.3


def _coords(seed: int, n: int = N_UNITS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"unit": np.arange(1, n + 1) * 10, "lat": rng.uniform(25.0, 35.0, n),
                         "lon": rng.uniform(110.0, 120.0, n)})


def _haversine_km(coords: pd.DataFrame) -> np.ndarray:
    from sklearn.metrics.pairwise import haversine_distances

    return haversine_distances(np.radians(coords[["lat", "lon"]].to_numpy())) * EARTH_RADIUS_KM


def _simulate(W: np.ndarray, seed: int, *, theta_did=0.4, theta_x=0.2, staggered=False,
              time_effect_scale=1.0) -> dict:
    """y_t = (I - rho W)^-1 (D_t + 0.5 x_t + W (theta_did D_t + theta_x x_t) + mu + lambda_t + e_t)."""
    rng = np.random.default_rng(seed)
    n, t = W.shape[0], N_PERIODS
    treated = rng.permutation(n) < n // 2
    start = np.where(rng.random(n) < 0.5, 2, 5) if staggered else np.full(n, 4)
    did = (treated[:, None] & (np.arange(t)[None, :] >= start[:, None])).astype(float)
    x = rng.normal(size=(n, t))
    rhs = (did + 0.5 * x + W @ (theta_did * did + theta_x * x) + rng.normal(size=(n, 1))
           + time_effect_scale * rng.normal(size=(1, t)) + rng.normal(size=(n, t)))
    y = np.linalg.solve(np.eye(n) - RHO * W, rhs)
    return {"y": y, "did": did, "x": x}


def _panel(units, arrays: dict) -> pd.DataFrame:
    n, t = arrays["y"].shape
    out = pd.DataFrame({"unit": np.repeat(np.asarray(units), t), "year": np.tile(np.arange(2001, 2001 + t), n)})
    for name, a in arrays.items():
        out[name] = a.ravel()
    return out


@pytest.fixture(scope="module")
def knn_case():
    """kNN (k = 5) row-standardised W, SDM data with rho = 0.3."""
    coords = _coords(7)
    with duckdb.connect() as c:
        sw = spatial_weights(c, coords, kind="knn", k=5)
    W = sw.dense()
    arrays = _simulate(W, 11)
    return coords, sw, W, arrays, _panel(sw.units, arrays)


# ----------------------------------------------------------------------------- weights


def test_inverse_distance_weights_match_haversine_and_libpysal(con):
    from libpysal.weights import DistanceBand

    coords = _coords(3)
    con.register("coords", coords)
    raw = spatial_weights(con, "coords", kind="inverse_distance", row_standardise=False)
    D = _haversine_km(coords)
    pos = {u: i for i, u in enumerate(coords["unit"])}
    i, j = raw.table["unit_i"].map(pos).to_numpy(), raw.table["unit_j"].map(pos).to_numpy()
    assert len(raw.table) == N_UNITS * (N_UNITS - 1)
    # the same formula in SQL and in scikit-learn: only libm rounding differs
    np.testing.assert_allclose(raw.table["distance_km"].to_numpy(), D[i, j], rtol=1e-12, atol=0)
    np.testing.assert_allclose(raw.table["w_ij"].to_numpy(), 1.0 / D[i, j], rtol=1e-12, atol=0)

    sw = spatial_weights(None, coords, kind="inverse_distance", cutoff_km=250.0, power=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        band = DistanceBand(coords[["lon", "lat"]].to_numpy(), threshold=250.0, binary=False, alpha=-2.0,
                            distance_metric="arc", radius=EARTH_RADIUS_KM, silence_warnings=True)
    band.transform = "r"
    # libpysal finds arc distances through chord lengths (a KD-tree on the unit sphere): ~1e-13
    np.testing.assert_allclose(sw.dense(), band.full()[0], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(sw.dense().sum(axis=1), 1.0, rtol=1e-14)
    assert sw.params["earth_radius_km"] == 6371.0088 and sw.params["n_links"] == int((sw.dense() > 0).sum())
    assert sw.params["max_nearest_neighbour_km"] == pytest.approx(np.sort(D, axis=1)[:, 1].max(), rel=1e-12)


def test_knn_weights_match_libpysal(knn_case):
    from libpysal.weights import KNN

    coords, sw, W, _, _ = knn_case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = KNN.from_array(coords[["lon", "lat"]].to_numpy(), k=5, distance_metric="arc", radius=EARTH_RADIUS_KM)
    for i in range(N_UNITS):
        assert set(np.flatnonzero(W[i])) == set(ref.neighbors[i])
    np.testing.assert_allclose(W[W > 0], 0.2, rtol=1e-15)
    assert sw.params["neighbours_min"] == sw.params["neighbours_max"] == 5


def test_isolated_units_raise_or_get_a_zero_row(con):
    coords = _coords(5)
    with pytest.raises(ValueError, match="no neighbour within cutoff_km"):
        spatial_weights(con, coords, cutoff_km=60.0)
    kept = spatial_weights(con, coords, cutoff_km=60.0, isolated="keep")
    lonely = kept.params["isolated_units"]
    assert lonely and kept.params["neighbours_min"] == 0
    D = _haversine_km(coords)
    np.fill_diagonal(D, np.inf)
    expect = [int(u) for u, d in zip(coords["unit"], D.min(axis=1)) if d > 60.0]
    assert lonely == expect
    dense = kept.dense()
    rows = [kept.units.index(u) for u in lonely]
    assert np.all(dense[rows] == 0) and np.all(np.diag(dense) == 0)
    assert set(kept.table["unit_i"]) == set(coords["unit"])  # every unit listed (zero self-link)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "knn"}, "needs k"),
    ({"kind": "knn", "k": 3, "cutoff_km": 100.0}, "takes no cutoff_km"),
    ({"kind": "queen"}, "kind must be"),
    ({"cutoff_km": -1.0}, "cutoff_km must be"),
    ({"isolated": "drop"}, "isolated must be"),
])
def test_weight_options_are_checked(con, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spatial_weights(con, _coords(1), **kwargs)


def test_bad_coordinates_are_rejected(con):
    c = _coords(1)
    with pytest.raises(ValueError, match="repeats units"):
        spatial_weights(con, pd.concat([c, c.head(1)]))
    bad = c.copy()
    bad.loc[0, "lat"] = 95.0
    with pytest.raises(ValueError, match=r"\[-90, 90\]"):
        spatial_weights(con, bad)
    same = c.copy()
    same.loc[1, ["lat", "lon"]] = same.loc[0, ["lat", "lon"]].to_numpy()
    with pytest.raises(ValueError, match="same coordinates"):
        spatial_weights(con, same)
    knn = spatial_weights(con, same, kind="knn", k=2)  # kNN needs no finite inverse distance
    assert knn.dense()[0, 1] == 0.5 and knn.dense()[1, 0] == 0.5


# ----------------------------------------------------------------------------- W·DID


def test_spatial_lag_equals_dense_w_times_d(con, knn_case):
    _, sw, W, arrays, _ = knn_case
    units = [f"city_{u:04d}" for u in sw.units]  # string ids, rows shuffled
    panel = _panel(units, arrays).sample(frac=1.0, random_state=1)
    table = sw.table.assign(unit_i=lambda d: d["unit_i"].map(lambda u: f"city_{u:04d}"),
                            unit_j=lambda d: d["unit_j"].map(lambda u: f"city_{u:04d}"))
    out = spatial_lag(con, panel, table, unit="unit", time="year", columns=["did", "x"])
    assert list(out["unit"].iloc[:: N_PERIODS]) == sorted(units)
    for name in ("did", "x"):
        expect = W @ arrays[name]  # column t = period t
        np.testing.assert_allclose(out[f"W_{name}"].to_numpy().reshape(N_UNITS, N_PERIODS), expect,
                                   rtol=0, atol=1e-12)


def test_spatial_lag_did_matches_pyfixest(con, knn_case):
    _, sw, W, arrays, panel = knn_case
    sw.to_duckdb(con, "w_knn")
    res = spatial_lag_did(con, panel, "w_knn", outcome="y", unit="unit", time="year", treatment="did",
                          controls=["x"])
    df = panel.assign(W_did=(W @ arrays["did"]).ravel())
    m = pf_fit("y ~ did + W_did + x | unit + year", df, {"CRV1": "unit"})
    assert_matches(res.model, m, has_fe=True)
    assert res.direct == pytest.approx(float(m.coef()["did"]), abs=1e-8)
    assert res.spillover == pytest.approx(float(m.coef()["W_did"]), abs=1e-8)
    json.dumps(res.to_dict())


def test_lag_needs_every_neighbour_in_every_period(con, knn_case):
    _, sw, W, _, panel = knn_case
    j = int(np.flatnonzero(W[0])[0])
    gap = panel.drop(panel.index[(panel["unit"] == sw.units[j]) & (panel["year"] == 2003)])
    with pytest.raises(ValueError, match="neighbours, but 1 have no row"):
        spatial_lag_did(con, gap, sw, outcome="y", unit="unit", time="year", treatment="did")
    stranger = pd.concat([sw.table, pd.DataFrame({"unit_i": [sw.units[0]], "unit_j": [99999], "w_ij": [0.1],
                                                  "distance_km": [1.0]})])
    with pytest.raises(ValueError, match="not in the panel"):
        spatial_lag(con, panel, stranger, unit="unit", time="year", columns="did")
    with pytest.raises(ValueError, match="no row in the weights table"):
        spatial_lag(con, panel, sw.table[sw.table["unit_i"] != sw.units[3]], unit="unit", time="year",
                    columns="did")
    with pytest.raises(ValueError, match="repeats"):
        spatial_lag(con, panel, pd.concat([sw.table, sw.table.head(1)]), unit="unit", time="year", columns="did")


# ----------------------------------------------------------------------------- distance bands


def test_spillover_by_distance_band_matches_pyfixest(con):
    coords = _coords(21)
    with duckdb.connect() as c:
        W = spatial_weights(c, coords, kind="knn", k=4).dense()
    arrays = _simulate(W, 22, staggered=True)
    panel = _panel(coords["unit"], arrays)
    bands = (0, 50, 100, 150, 200, 300)
    res = spillover_by_distance_band(con, panel, coords, outcome="y", unit="unit", time="year", treatment="did",
                                     bands_km=bands, controls=["x"])
    # the exposure indicators built in pandas/numpy: nearest unit treated in the same period
    D = _haversine_km(coords)
    did = arrays["did"]
    near = np.full(did.shape, np.inf)
    for t in range(N_PERIODS):
        on = did[:, t] == 1
        if on.any():
            near[:, t] = np.where(did[:, t] == 0, D[:, on].min(axis=1), np.inf)
    df = panel.copy()
    names = []
    for lo, hi in itertools.pairwise(bands):
        name = band_name(lo, hi)
        names.append(name)
        df[name] = ((near >= lo) & (near < hi)).astype(float).ravel()
    assert (df[names].sum() > 0).all()  # every band is populated in this design
    m = pf_fit("y ~ did + " + " + ".join(names) + " + x | unit + year", df, {"CRV1": "unit"})
    assert_matches(res.model, m, has_fe=True)
    assert list(res.bands["band"]) == names
    np.testing.assert_allclose(res.bands["coef"], m.coef()[names].to_numpy(), rtol=0, atol=1e-8)
    assert list(res.bands["n_exposed"]) == [int(df[n].sum()) for n in names]
    json.dumps(res.to_dict())


# ----------------------------------------------------------------------------- ML: SDM and SAR


def _spreg_fit(W, arrays, durbin: bool, cls: str = "Panel_FE_Lag"):
    """spreg with period dummies, long layout (rows period-major: y[0:N] is period 1)."""
    import libpysal
    import spreg

    n, t = arrays["y"].shape
    dummies = [np.tile((np.arange(t) == s).astype(float), (n, 1)) for s in range(1, t)]
    cols = [arrays["did"], arrays["x"]] + ([W @ arrays["did"], W @ arrays["x"]] if durbin else []) + dummies
    x = np.column_stack([c.ravel(order="F") for c in cols])
    y = arrays["y"].ravel(order="F")[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = libpysal.weights.full2W(W)
        return getattr(spreg, cls)(y, x, w, epsilon=1e-10), w, x, y


@pytest.mark.parametrize("durbin", [True, False], ids=["SDM", "SAR"])
def test_spatial_panel_ml_matches_spreg(con, knn_case, durbin):
    import spreg

    _, sw, W, arrays, panel = knn_case
    res = spatial_durbin_did(con, panel, sw, outcome="y", unit="unit", time="year", treatment="did",
                             controls=["x"], durbin=durbin)
    m, w, _, _ = _spreg_fit(W, arrays, durbin)
    k = 4 if durbin else 2
    assert list(res.coef.index) == (["did", "x", "W_did", "W_x", "rho"] if durbin else ["did", "x", "rho"])
    ref = np.append(m.betas[:k].ravel(), m.rho)
    # spreg stops its bounded Brent search at |d rho| ~ sqrt(eps)|rho| + epsilon/3 (epsilon = 1e-10 here):
    # ~2e-8 in rho, and b(rho) = b0 - rho b1 moves with it; ours solves the score to machine precision
    np.testing.assert_allclose(res.coef.to_numpy(), ref, rtol=0, atol=1e-6)
    se_ref = np.sqrt(np.diag(m.vm))[list(range(k)) + [-1]]
    np.testing.assert_allclose(res.se.to_numpy(), se_ref, rtol=1e-6)
    # ours is the maximum of spreg's own concentrated log-likelihood (up to rounding)
    n = W.shape[0]
    X, y = m.x, m.y  # spreg's unit-demeaned design (with the dummies) and outcome
    wy = np.kron(np.eye(N_PERIODS), W) @ y
    e0 = y - X @ np.linalg.solve(X.T @ X, X.T @ y)
    e1 = wy - X @ np.linalg.solve(X.T @ X, X.T @ wy)
    args = (n, N_PERIODS, e0, e1, scipy.sparse.identity(n), w.sparse)
    assert spreg.panel_fe.lag_c_loglik_sp(res.rho, *args) <= spreg.panel_fe.lag_c_loglik_sp(m.rho, *args) + 1e-9
    assert abs(res.extra["score_at_rho"]) < 1e-6
    # the log-likelihood with constants and sigma2 = e'e/NT: spreg's current ML_LagFE
    m2, *_ = _spreg_fit(W, arrays, durbin, "ML_LagFE")
    assert res.loglik == pytest.approx(float(m2.logll), rel=1e-10)
    assert res.sigma2 == pytest.approx(float(m.sig2.item()), rel=1e-6)
    assert res.nobs == N_UNITS * N_PERIODS and (res.n_units, res.n_periods) == (N_UNITS, N_PERIODS)
    if not durbin:  # spreg's LeSage-Pace multipliers of the lag model ("full": exact trace)
        mult = spreg.sputils.spmultiplier(w, res.rho, method="full")
        b = res.coef[["did", "x"]].to_numpy()
        np.testing.assert_allclose(res.effects["direct"], mult["adi"] * b, rtol=1e-10)
        np.testing.assert_allclose(res.effects["indirect"], mult["aii"] * b, rtol=1e-10)
        np.testing.assert_allclose(res.effects["total"], mult["ati"] * b, rtol=1e-10)
    json.dumps(res.to_dict())


def test_ml_with_islands_and_strong_time_effects_matches_spreg(con):
    """A zero row of W (isolated unit): W1 != 1, so the time effects enter the information matrix."""
    coords = _coords(3)
    with duckdb.connect() as c:
        sw = spatial_weights(c, coords, kind="inverse_distance", cutoff_km=130.0, isolated="keep")
    assert sw.params["isolated_units"]
    W = sw.dense()
    arrays = _simulate(W, 4, theta_x=0.0, time_effect_scale=3.0)
    res = spatial_durbin_did(con, _panel(sw.units, arrays), sw, outcome="y", unit="unit", time="year",
                             treatment="did", controls=["x"])
    m, *_ = _spreg_fit(W, arrays, True)
    np.testing.assert_allclose(res.coef.to_numpy(), np.append(m.betas[:4].ravel(), m.rho), rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.se.to_numpy(), np.sqrt(np.diag(m.vm))[[0, 1, 2, 3, -1]], rtol=1e-6)


def _dense_effects(W, rho, b, theta):
    """direct = avg diag, total = avg row sum of S = (I - rho W)^-1 (b I + theta W)."""
    n = W.shape[0]
    S = np.linalg.solve(np.eye(n) - rho * W, b * np.eye(n) + theta * W)
    direct, total = np.trace(S) / n, S.sum() / n
    return np.array([direct, total - direct, total])


def test_sdm_effects_match_dense_numpy_and_delta_method(con, knn_case):
    _, sw, W, _, panel = knn_case
    res = spatial_durbin_did(con, panel, sw, outcome="y", unit="unit", time="year", treatment="did",
                             controls=["x"], draws=1000, seed=5)
    c, V = res.coef, res.vcov_matrix
    for _, row in res.effects.iterrows():
        x = row["variable"]
        idx = [x, f"W_{x}", "rho"]
        p0 = c[idx].to_numpy()
        np.testing.assert_allclose(row[["direct", "indirect", "total"]].to_numpy(dtype=float),
                                   _dense_effects(W, p0[2], p0[0], p0[1]), rtol=1e-10)
        # delta method by central differences of the dense formula
        h = 1e-6
        jac = np.column_stack([(_dense_effects(W, *(p0 + h * e)[[2, 0, 1]]) - _dense_effects(W, *(p0 - h * e)[[2, 0, 1]]))
                               / (2 * h) for e in np.eye(3)])
        se = np.sqrt(np.diag(jac @ V.loc[idx, idx].to_numpy() @ jac.T))
        np.testing.assert_allclose(row[["direct_se_delta", "indirect_se_delta", "total_se_delta"]].to_numpy(float),
                                   se, rtol=1e-6)
        # 1,000 draws: the simulated SE has a Monte Carlo error of about 1/sqrt(2 * 1000) = 2.2%;
        # the effects are nearly linear near the estimate, so simulation and delta agree within 10%
        sim = row[["direct_se", "indirect_se", "total_se"]].to_numpy(float)
        np.testing.assert_allclose(sim, se, rtol=0.10)
    again = spatial_durbin_did(con, panel, sw, outcome="y", unit="unit", time="year", treatment="did",
                               controls=["x"], draws=1000, seed=5)
    pd.testing.assert_frame_equal(again.effects, res.effects)
    other = spatial_durbin_did(con, panel, sw, outcome="y", unit="unit", time="year", treatment="did",
                               controls=["x"], draws=1000, seed=6)
    assert not np.allclose(other.effects["direct_se"], res.effects["direct_se"], rtol=1e-12, atol=0)
    assert res.effects_draws == 1000 and res.effects_seed == 5


def test_ml_recovers_rho_on_a_larger_panel(con):
    """Consistency sanity check: 150 units x 8 periods, true rho 0.3, theta_did 0.4."""
    coords = _coords(31, n=150)
    with duckdb.connect() as c:
        sw = spatial_weights(c, coords, kind="knn", k=6)
    arrays = _simulate(sw.dense(), 32)
    res = spatial_durbin_did(con, _panel(sw.units, arrays), sw, outcome="y", unit="unit", time="year",
                             treatment="did", controls=["x"], draws=200)
    # 4 standard errors: a deterministic draw, checked once; the estimator is consistent as N grows
    assert abs(res.rho - RHO) < 4 * res.se["rho"]
    assert abs(res.coef["did"] - 1.0) < 4 * res.se["did"]


def test_ml_needs_a_complete_balanced_panel(con, knn_case):
    _, sw, _, _, panel = knn_case
    with pytest.raises(ValueError, match="balanced panel"):
        spatial_durbin_did(con, panel.iloc[1:], sw, outcome="y", unit="unit", time="year", treatment="did")
    holes = panel.copy()
    holes.loc[3, "y"] = np.nan
    with pytest.raises(ValueError, match="complete panel"):
        spatial_durbin_did(con, holes, sw, outcome="y", unit="unit", time="year", treatment="did")
    with pytest.raises(ValueError, match="not regressors"):
        spatial_durbin_did(con, panel, sw, outcome="y", unit="unit", time="year", treatment="did", durbin=["x"])
    assert isinstance(sw, SpatialWeights)


def test_effects_fall_back_to_exact_inverses_with_the_same_draws(con, knn_case, monkeypatch):
    """When the eigen form of the multipliers is inaccurate, every draw uses (I - rho W)^-1."""
    from estimation.engine import spatial

    _, sw, _, _, panel = knn_case
    kw = {"outcome": "y", "unit": "unit", "time": "year", "treatment": "did", "controls": ["x"], "draws": 200,
          "seed": 9}
    fast = spatial_durbin_did(con, panel, sw, **kw)
    monkeypatch.setattr(spatial._EigenMultipliers, "__call__", lambda self, rho: np.zeros((len(rho), 4)))
    slow = spatial_durbin_did(con, panel, sw, **kw)
    assert (fast.extra["effects_multipliers"], slow.extra["effects_multipliers"]) == ("eigen", "exact")
    np.testing.assert_allclose(slow.effects.drop(columns="variable").to_numpy(float),
                               fast.effects.drop(columns="variable").to_numpy(float), rtol=1e-8)
