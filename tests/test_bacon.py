"""Goodman-Bacon decomposition: the identity sum s b = b_TWFE (pyfixest and the engine's
feols), each 2x2 estimate against a two-group TWFE regression on its subsample and window
(numpy least squares), weights summing to 1; panels with and without never-treated units,
with always-treated units, and the refusals of unbalanced or inconsistent panels."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import pf_fit

from estimation.engine.bacon import (
    EARLIER_VS_LATER,
    LATER_VS_EARLIER,
    TREATED_VS_NEVER,
    bacon_decomposition,
)
from estimation.engine.model import feols

# identities of exact arithmetic evaluated in floating point on O(100)-row panels: the
# residual error is a few ulps of the outcome's scale, far below 1e-10
TOL = 1e-10


def staggered_panel(seed: int, cohorts: dict, periods=range(2010, 2020)) -> pd.DataFrame:
    """Balanced panel; ``cohorts`` maps a first treated period (0 = never) to its unit count.

    Effects grow with time since adoption and differ by cohort, so the 2x2 estimates differ
    and the "forbidden" comparisons carry a bias: the decomposition is not trivial.
    """
    rng = np.random.default_rng(seed)
    periods = np.asarray(list(periods))
    g = np.concatenate([np.full(n, c, dtype=float) for c, n in cohorts.items()])
    n_units = g.size
    unit = np.repeat(np.arange(n_units), periods.size)
    year = np.tile(periods, n_units)
    gu = g[unit]
    treated = (gu > 0) & (year >= gu)
    effect = np.where(treated, 0.5 + 0.2 * (year - gu) + 0.01 * gu / 100, 0.0)
    y = rng.normal(size=n_units)[unit] + rng.normal(size=periods.size)[np.searchsorted(periods, year)] + effect
    y = y + rng.normal(scale=0.3, size=y.size)
    return pd.DataFrame({"unit": unit, "year": year, "g": gu, "y": y, "d": treated.astype(float)})


def decompose(df: pd.DataFrame, **kw):
    con = duckdb.connect()
    con.register("panel", df)
    res = bacon_decomposition(con, "panel", outcome="y", unit="unit", time="year", cohort="g", **kw)
    leftovers = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__cr_%'").fetchone()[0]
    assert leftovers == 0  # the temp tables are dropped
    return con, res


def two_group_twfe(df: pd.DataFrame, treated, control, window) -> float:
    """OLS of y on D, unit dummies and period dummies on the 2x2 subsample, by numpy."""
    lo, hi = window
    sub = df[df["g"].isin([treated, control]) & df["year"].between(lo, hi)]
    units = pd.get_dummies(sub["unit"], dtype=float).to_numpy()
    years = pd.get_dummies(sub["year"], dtype=float).to_numpy()[:, 1:]
    X = np.column_stack([sub["d"].to_numpy(), units, years])
    beta, *_ = np.linalg.lstsq(X, sub["y"].to_numpy(), rcond=None)
    return float(beta[0])


PANELS = {
    "with never treated": {0: 12, 2013: 7, 2015: 9, 2017: 6},
    "without never treated": {2012: 8, 2014: 5, 2016: 10, 2019: 7},
    "with always treated": {0: 9, 2008: 4, 2010: 5, 2013: 8, 2016: 6},
    "always treated, no never treated": {2010: 6, 2013: 8, 2016: 6},
}


@pytest.mark.parametrize("name", list(PANELS))
def test_weighted_sum_equals_twfe_and_each_2x2_its_regression(name):
    df = staggered_panel(7, PANELS[name])
    con, res = decompose(df)
    b_pf = pf_fit("y ~ d | unit + year", df, "iid").coef()["d"]
    b_engine = float(feols(con, "panel", "y ~ d | unit + year", vcov="iid").coef["d"])
    assert res.weighted_sum == pytest.approx(b_pf, abs=TOL)
    assert res.weighted_sum == pytest.approx(b_engine, abs=TOL)
    assert res.twfe == pytest.approx(b_pf, abs=TOL)
    assert abs(res.weight_total - 1.0) < 1e-12
    assert all(c.weight > 0 for c in res.comparisons)
    for c in res.comparisons:
        control = c.control if c.type != TREATED_VS_NEVER else 0.0
        assert c.estimate == pytest.approx(two_group_twfe(df, c.treated, control, c.window), abs=TOL), c
    frame = res.to_frame()
    assert (frame["weight"] * frame["estimate"]).sum() == pytest.approx(res.weighted_sum, abs=1e-14)
    payload = res.to_dict()
    assert payload["method"] == "bacon" and len(payload["comparisons"]) == len(res.comparisons)
    assert json.loads(json.dumps(payload)) == payload
    assert sum(t["weight"] for t in payload["by_type"]) == pytest.approx(1.0, abs=1e-12)
    by_type = {t["type"]: t for t in payload["by_type"]}
    for t in by_type.values():
        members = [c for c in res.comparisons if c.type == t["type"]]
        assert t["avg_estimate"] == pytest.approx(
            sum(c.weight * c.estimate for c in members) / sum(c.weight for c in members), abs=1e-12)
    assert (TREATED_VS_NEVER in by_type) == (0 in PANELS[name])


def test_comparisons_and_windows_of_a_small_design():
    # never (0), cohorts 2013 and 2016, always treated 2008 in 2010-2019
    df = staggered_panel(3, {0: 4, 2008: 2, 2013: 3, 2016: 5})
    _, res = decompose(df)
    got = {(c.type, c.treated, c.control): c.window for c in res.comparisons}
    assert got == {
        (TREATED_VS_NEVER, 2013, 0): (2010, 2019),
        (TREATED_VS_NEVER, 2016, 0): (2010, 2019),
        (EARLIER_VS_LATER, 2013, 2016): (2010, 2015),
        (LATER_VS_EARLIER, 2016, 2013): (2013, 2019),
        (LATER_VS_EARLIER, 2013, 2008): (2010, 2019),  # always treated as control: the whole panel
        (LATER_VS_EARLIER, 2016, 2008): (2010, 2019),
    }
    assert res.always_treated == [2008.0]
    # the paper's simplified weights, n_k n_l (Dbar_k - Dbar_l)(1 - Dbar_k) / V^D and friends
    n = {0: 4 / 14, 2008: 2 / 14, 2013: 3 / 14, 2016: 5 / 14}
    dbar = {0: 0.0, 2008: 1.0, 2013: 0.7, 2016: 0.4}
    w = {(c.type, c.treated, c.control): c.weight * res.variance_d for c in res.comparisons}
    assert w[(TREATED_VS_NEVER, 2013, 0)] == pytest.approx(n[2013] * n[0] * 0.7 * 0.3, abs=1e-14)
    assert w[(EARLIER_VS_LATER, 2013, 2016)] == pytest.approx(n[2013] * n[2016] * 0.3 * 0.3, abs=1e-14)
    assert w[(LATER_VS_EARLIER, 2016, 2013)] == pytest.approx(n[2013] * n[2016] * 0.4 * 0.3, abs=1e-14)
    assert w[(LATER_VS_EARLIER, 2016, 2008)] == pytest.approx(n[2008] * n[2016] * dbar[2016] * 0.6, abs=1e-14)


def test_null_cohorts_and_cohorts_after_the_panel_are_never_treated():
    df = staggered_panel(11, {0: 6, 2014: 5, 2017: 5, 2025: 4})
    df["g"] = df["g"].astype(object).where(df["g"] != 0, None)  # NULL = never treated
    _, res = decompose(df)
    assert res.cohorts == {0.0: 10, 2014.0: 5, 2017.0: 5}  # 2025 lies after 2019: never treated in sample
    df["g0"] = df["g"].fillna(0).replace(2025, 0).astype(float)
    b = pf_fit("y ~ d | unit + year", df, "iid").coef()["d"]
    assert res.weighted_sum == pytest.approx(b, abs=TOL)


def test_string_units_and_gapped_periods():
    df = staggered_panel(5, {0: 5, 2012: 4, 2016: 6}, periods=range(2008, 2020, 2))
    df["unit"] = "city_" + df["unit"].astype(str)
    _, res = decompose(df)
    assert res.n_periods == 6
    assert res.weighted_sum == pytest.approx(pf_fit("y ~ d | unit + year", df, "iid").coef()["d"], abs=TOL)
    for c in res.comparisons:
        control = c.control if c.type != TREATED_VS_NEVER else 0.0
        assert c.estimate == pytest.approx(two_group_twfe(df, c.treated, control, c.window), abs=TOL)


def test_refusals_name_what_is_wrong():
    df = staggered_panel(2, {0: 4, 2014: 4, 2016: 4})
    with pytest.raises(ValueError, match=r"unbalanced panel: unit 3 is observed in 9 of 10 periods \(missing 2012\)"):
        decompose(df.drop(index=df.index[(df["unit"] == 3) & (df["year"] == 2012)]))
    with pytest.raises(ValueError, match="unit 5 appears 2 times in period 2010"):
        decompose(pd.concat([df, df[(df["unit"] == 5) & (df["year"] == 2010)]]))
    bad = df.copy()
    bad.loc[(bad["unit"] == 2) & (bad["year"] == 2015), "y"] = np.nan
    with pytest.raises(ValueError, match="outcome 'y' is missing .* unit 2 in period 2015"):
        decompose(bad)
    bad = df.copy()
    bad.loc[(bad["unit"] == 6) & (bad["year"] == 2011), "g"] = 2015
    with pytest.raises(ValueError, match="cohort column 'g' varies within unit 6"):
        decompose(bad)
    with pytest.raises(ValueError, match="column 'nosuch' is not in the data"):
        con = duckdb.connect()
        con.register("panel", df)
        bacon_decomposition(con, "panel", outcome="nosuch", unit="unit", time="year", cohort="g")
    with pytest.raises(ValueError, match="same treatment path"):
        decompose(df.assign(g=2014.0))
