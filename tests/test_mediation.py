"""Mediation (estimation.engine.mediation): the two steps against pyfixest, c = c' + ab, the
Sobel SE by hand, the bootstrap draws (SQL batch and loop fallback) against refits on the
same cluster multiplicities, the percentile CI by hand and its coverage of a known ab."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL, pf_fit

from estimation.engine.mediation import mediation

A, B, C_DIRECT = 0.5, 0.8, 0.2
CONTROLS = ["x0", "x1"]
STEP1 = "M ~ D + x0 + x1 | unit + period"
STEP2 = "Y ~ D + M + x0 + x1 | unit + period"
TOTAL = "Y ~ D + x0 + x1 | unit + period"


def mediation_panel(n: int = 80, T: int = 10, seed: int = 1, drop: int = 0) -> pd.DataFrame:
    """D = treated x post; M = A D + controls + effects + noise; Y = C_DIRECT D + B M + ... ."""
    rng = np.random.default_rng(seed)
    unit, t = np.repeat(np.arange(n), T), np.tile(np.arange(T), n)
    D = ((unit < n // 2) & (t >= T // 2)).astype(float)
    X = rng.normal(size=(n * T, 2))
    mu, gamma = rng.normal(size=n)[unit], rng.normal(size=T)[t]
    M = A * D + X @ [0.3, -0.2] + mu + 0.5 * gamma + rng.normal(size=n * T)
    Y = C_DIRECT * D + B * M + X @ [-0.1, 0.4] + 2 * mu - gamma + rng.normal(size=n * T)
    df = pd.DataFrame({"unit": unit + 100, "period": t + 2005, "region": (unit % 13) + 1,
                       "D": D, "M": M, "Y": Y, "x0": X[:, 0], "x1": X[:, 1]})
    if drop:
        df = df.drop(index=rng.choice(len(df), drop, replace=False)).reset_index(drop=True)
    return df


def run(df: pd.DataFrame, **kw):
    con = duckdb.connect()
    con.register("panel", df)
    kw = {"fe": ("unit", "period"), "cluster": "unit", "seed": 7, **kw}
    return mediation(con, "panel", "Y", "D", "M", CONTROLS, **kw)


def duplicated_units(df: pd.DataFrame, m: pd.Series) -> pd.DataFrame:
    """The resampled panel itself: unit i appears m_i times, each copy with its own id."""
    copies = [df[df["unit"].map(m) >= k].assign(unit=lambda f, k=k: f["unit"] * 1000 + k)
              for k in range(1, int(m.max()) + 1)]
    return pd.concat(copies, ignore_index=True)


def test_steps_equal_pyfixest_and_effects_add_up():
    df = mediation_panel()
    r = run(df, draws=99)
    vc = {"CRV1": "unit"}
    for fml, key, terms in ((STEP1, "mediator", ["D"]), (STEP2, "outcome", ["D", "M"]), (TOTAL, "total", ["D"])):
        m, res = pf_fit(fml, df, vc), r.steps[key]
        for term in terms:
            assert res.coef[term] == pytest.approx(m.coef()[term], abs=COEF_TOL)
            assert res.se[term] == pytest.approx(m.se()[term], rel=SE_RTOL)
        assert res.nobs == len(df)
    m1, m2 = pf_fit(STEP1, df, vc), pf_fit(STEP2, df, vc)
    a, b, se_a, se_b = m1.coef()["D"], m2.coef()["M"], m1.se()["D"], m2.se()["M"]
    assert (r.a, r.b, r.c_prime) == pytest.approx((a, b, m2.coef()["D"]), abs=COEF_TOL)
    # same rows, same controls: the total effect is the direct plus the indirect effect, exactly
    assert abs(r.c - (r.c_prime + r.a * r.b)) < 1e-10
    assert r.indirect == r.a * r.b
    sobel = np.sqrt(b**2 * se_a**2 + a**2 * se_b**2)
    assert r.sobel_se == pytest.approx(sobel, rel=SE_RTOL)
    assert r.sobel_z == pytest.approx(a * b / sobel, rel=SE_RTOL)
    assert r.share_mediated == pytest.approx(r.indirect / r.c, rel=1e-12)
    assert r.bootstrap_method == "sql" and r.batch_check < 1e-10


def test_sql_batch_equals_refits_on_duplicated_units():
    df = mediation_panel()
    r = run(df, draws=40)
    mult = r.multiplicities
    assert mult.shape == (40, 80) and np.all(mult.sum(axis=1) == 80)
    assert np.array_equal(mult, run(df, draws=40).multiplicities)  # seeded: reproducible
    units = np.sort(df["unit"].unique())  # multiplicity column g = g-th cluster in sorted order
    draws = r.bootstrap_draws.set_index("draw")
    for d in range(1, 13):
        dup = duplicated_units(df, pd.Series(mult[d - 1], index=units))
        m1, m2 = pf_fit(STEP1, dup, "iid"), pf_fit(STEP2, dup, "iid")
        got = draws.loc[d]
        assert got["a"] == pytest.approx(m1.coef()["D"], abs=COEF_TOL)
        assert got["b"] == pytest.approx(m2.coef()["M"], abs=COEF_TOL)
        assert got["c_prime"] == pytest.approx(m2.coef()["D"], abs=COEF_TOL)
    # the loop fallback forced on the same data and seed gives the same draws
    loop = run(df, draws=12, method="loop")
    assert loop.bootstrap_method == "loop"
    np.testing.assert_array_equal(loop.multiplicities, mult[:12])  # draws are a prefix of the stream
    np.testing.assert_allclose(loop.bootstrap_draws[["a", "b", "c_prime"]].to_numpy(),
                               draws.loc[1:12, ["a", "b", "c_prime"]].to_numpy(), rtol=0, atol=COEF_TOL)


@pytest.mark.parametrize("drop,cluster", [(9, "unit"), (0, "region")])
def test_loop_fallback_equals_weighted_refits(drop, cluster):
    """Unbalanced panel, or clusters holding several units: weighted feols per draw."""
    df = mediation_panel(drop=drop)
    r = run(df, draws=10, cluster=cluster)
    assert r.bootstrap_method == "loop" and r.n_valid == 10 and np.isnan(r.batch_check)
    clusters = np.sort(df[cluster].unique())
    for d in range(1, 11):
        w = df[cluster].map(pd.Series(r.multiplicities[d - 1], index=clusters)).astype(float)
        sub = df.assign(w=w)[w > 0]
        m1, m2 = pf_fit(STEP1, sub, "iid", weights="w"), pf_fit(STEP2, sub, "iid", weights="w")
        got = r.bootstrap_draws.set_index("draw").loc[d]
        assert got["a"] == pytest.approx(m1.coef()["D"], abs=COEF_TOL)
        assert got["b"] == pytest.approx(m2.coef()["M"], abs=COEF_TOL)
    if drop:
        with pytest.raises(ValueError, match="balanced"):
            run(df, draws=10, method="sql")


def test_percentile_ci_and_bootstrap_se_by_hand():
    r = run(mediation_panel(), draws=999, alpha=0.1)
    ab = r.bootstrap_draws["a"].to_numpy() * r.bootstrap_draws["b"].to_numpy()
    np.testing.assert_array_equal(ab, r.bootstrap_draws["ab"].to_numpy())
    assert r.n_valid == 999 == len(ab)
    # type 7 (numpy "linear"): h = (n - 1) p, interpolate between the sorted draws floor(h) and floor(h) + 1
    srt = np.sort(ab)
    for p, got in zip((0.05, 0.95), r.boot_ci):
        h = (len(srt) - 1) * p
        lo = int(np.floor(h))
        assert got == pytest.approx(srt[lo] + (h - lo) * (srt[lo + 1] - srt[lo]), rel=1e-13)
    assert r.boot_ci == pytest.approx(tuple(np.quantile(ab, [0.05, 0.95])), rel=1e-13)
    assert r.boot_se == pytest.approx(np.sqrt(np.sum((ab - ab.mean()) ** 2) / 998), rel=1e-12)
    assert r.boot_share_nonpositive == np.mean(ab <= 0)


def test_bootstrap_ci_covers_the_true_indirect_effect():
    r = run(mediation_panel(n=600, seed=3), draws=999)
    lo, hi = r.boot_ci
    assert lo < A * B < hi
    assert r.boot_share_nonpositive == 0.0
    # the cluster bootstrap and the Sobel delta method agree on the scale of the uncertainty
    assert 0.7 < r.boot_se / r.sobel_se < 1.4
    assert r.bootstrap_method == "sql" and r.batch_check < 1e-10


def test_summary_and_render():
    r = run(mediation_panel(), draws=50)
    s = r.summary()
    assert s["boot_ci_low"] == r.boot_ci[0] and s["bootstrap_method"] == "sql" and s["draws"] == 50
    md = r.render()
    assert md.startswith("|  | Estimate | SE | p |") and "a·b: indirect effect (Sobel)" in md
    assert "Bootstrap 95% CI of a·b" in md and "Share mediated" in md
    h = r.render("html")
    assert h.startswith('<table class="regression-table">') and "c′: direct effect of D" in h
    with pytest.raises(ValueError):
        r.render("latex")
    none = run(mediation_panel(), draws=0)
    assert none.bootstrap_method == "none" and none.n_valid == 0 and "Estimate" in none.render()
