"""PSM-DID matching against an independent computation on the same data: the logit by direct
maximisation of the likelihood (scipy), the neighbours and kernel weights by brute force (numpy)."""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from estimation.engine.psm import balance, match, propensity_scores

COVARIATES = ["x1", "x2"]


@pytest.fixture(scope="module")
def panel():
    rng = np.random.default_rng(5)
    units, years = 150, 4
    df = pd.DataFrame({"unit": np.repeat(np.arange(units), years), "year": np.tile(2015 + np.arange(years), units)})
    level = rng.normal(size=units)
    df["treat"] = (level + rng.normal(size=units) > 0.8).astype(int)[df.unit]
    df["x1"] = level[df.unit] + rng.normal(scale=0.5, size=len(df))
    df["x2"] = rng.normal(size=len(df)) + 0.3 * df["treat"]
    con = duckdb.connect()
    con.register("panel", df)
    return con, df


def logit_scores(g: pd.DataFrame) -> np.ndarray:
    x = np.column_stack([np.ones(len(g)), g[COVARIATES].to_numpy()])
    y = g["treat"].to_numpy()

    def nll(b):
        eta = x @ b
        return np.sum(np.logaddexp(0, eta) - y * eta)

    b = optimize.minimize(nll, np.zeros(x.shape[1]), method="BFGS", options={"gtol": 1e-10}).x
    return 1 / (1 + np.exp(-x @ b))


def test_propensity_scores_are_the_per_year_logit(panel):
    con, df = panel
    ours = propensity_scores(con, "panel", "unit", "year", "treat", COVARIATES)
    for year, g in df.groupby("year"):
        mine = ours[ours.time == year].set_index("unit")["pscore"]
        assert np.allclose(mine.loc[g["unit"]].to_numpy(), logit_scores(g), atol=1e-6)


def test_nearest_neighbour_matching_with_replacement_and_caliper(panel):
    con, df = panel
    ours = match(con, "panel", "unit", "year", "treat", COVARIATES, method="nearest", caliper=0.02)
    scores = ours.scores
    expected = set()
    for year, g in scores.groupby("time"):
        t, c = g[g.treated], g[~g.treated]
        for _, row in t.iterrows():
            if not (c.pscore.min() <= row.pscore <= c.pscore.max()):
                continue  # off common support
            d = np.abs(c.pscore.to_numpy() - row.pscore)
            best = np.lexsort((c.unit.to_numpy(), d))[0]
            if d[best] <= 0.02:
                expected |= {(row.unit, year, True), (c.unit.iloc[best], year, False)}
    got = {(r.unit, r.time, bool(r.treated)) for r in ours.rows.itertuples()}
    assert got == expected and (ours.rows.weight == 1.0).all()
    assert 0 < ours.n_treated < df.treat.sum()  # the caliper drops some treated rows


def test_kernel_weights_are_normalised_epanechnikov(panel):
    con, _ = panel
    ours = match(con, "panel", "unit", "year", "treat", COVARIATES, method="kernel", bandwidth=0.06)
    expected: dict = {}
    for year, g in ours.scores.groupby("time"):
        t, c = g[g.treated & g.on_support], g[~g.treated]
        for _, row in t.iterrows():
            u = (c.pscore.to_numpy() - row.pscore) / 0.06
            k = np.where(np.abs(u) < 1, 0.75 * (1 - u ** 2), 0.0)
            if k.sum() == 0:
                continue
            expected[(row.unit, year)] = 1.0
            for unit, w in zip(c.unit, k / k.sum()):
                if w > 0:
                    expected[(unit, year)] = expected.get((unit, year), 0.0) + w
    got = {(r.unit, r.time): r.weight for r in ours.rows.itertuples()}
    assert got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in got) < 1e-12


def test_balance_table_standardised_bias(panel):
    con, df = panel
    m = match(con, "panel", "unit", "year", "treat", COVARIATES, method="nearest")
    table = balance(con, "panel", "unit", "year", "treat", m).set_index("variable")
    after = df.merge(m.rows[["unit", "time"]], left_on=["unit", "year"], right_on=["unit", "time"])
    for c in COVARIATES:
        t, k = df.loc[df.treat == 1, c], df.loc[df.treat == 0, c]
        scale = np.sqrt((t.var() + k.var()) / 2)
        assert table.loc[c, "bias_before"] == pytest.approx(100 * (t.mean() - k.mean()) / scale, rel=1e-10)
        diff = after.loc[after.treat == 1, c].mean() - after.loc[after.treat == 0, c].mean()
        assert table.loc[c, "bias_after"] == pytest.approx(100 * diff / scale, rel=1e-10)
    assert (table["bias_after"].abs() < table["bias_before"].abs()).all()
