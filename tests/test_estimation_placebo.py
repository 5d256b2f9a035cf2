"""Placebo batch (one SQL query for all draws) against a loop of pyfixest refits
on the same assignments, both computation paths, both permutation schemes."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL, pf_fit

from estimation.engine.assign import draw_assignments
from estimation.engine.placebo import run_placebo
from panels import did_panel
from estimation.studies.common import persist_study

FML = "y ~ did + x1 + x2 | unit + year"


def refit_loop(df: pd.DataFrame, res, vcov) -> pd.DataFrame:
    """One pyfixest regression per draw on the draw's pseudo-treatment."""
    rows = []
    for d, grp in res.assignments.groupby("draw"):
        adopt = df["unit"].map(grp.set_index("unit")["adoption"])
        pdid = ((df["year"] >= adopt) & adopt.notna()).astype(float)
        m = pf_fit(FML.replace("did", "pdid"), df.assign(pdid=pdid), vcov)
        rows.append((d, m.coef()["pdid"], m.se()["pdid"], m.pvalue()["pdid"]))
    return pd.DataFrame(rows, columns=["draw", "coef", "se", "p"])


def assert_batch_equals_loop(res, loop: pd.DataFrame) -> None:
    got = res.draws.set_index("draw").loc[loop["draw"]]
    np.testing.assert_allclose(got["coef"].to_numpy(), loop["coef"].to_numpy(), rtol=0, atol=COEF_TOL)
    np.testing.assert_allclose(got["se"].to_numpy(), loop["se"].to_numpy(), rtol=SE_RTOL)
    np.testing.assert_allclose(got["p"].to_numpy(), loop["p"].to_numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got["t"].to_numpy(), got["coef"].to_numpy() / got["se"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "drop,permute,vcov,cohorts,method",
    [
        (0.0, "adoption", {"CRV1": "unit"}, (2016,), "balanced_invariant"),
        (0.12, "adoption", {"CRV1": "unit"}, (2015, 2017), "within_dummies"),
        (0.0, "units", {"CRV1": "stratum"}, (2014, 2016, 2018), "within_dummies"),
        (0.1, "adoption", "iid", (2016,), "within_dummies"),
    ],
)
def test_batch_equals_loop_of_pyfixest_refits(drop, permute, vcov, cohorts, method):
    df = did_panel(50, 9, 11, n_controls=2, cohorts=cohorts, drop=drop, treated_share=0.3, n_strata=8)
    con = duckdb.connect()
    con.register("panel", df)
    res = run_placebo(con, "panel", FML, "did", "unit", "year", draws=20, seed=5, permute=permute, vcov=vcov)
    assert res.method == method and res.n_draws == 20 and len(res.draws) == 20
    assert_batch_equals_loop(res, refit_loop(df, res, vcov))
    # the batch's own draw 0 (the real assignment) is the real model's estimate
    assert res.batch_real["coef"] == pytest.approx(res.estimate, abs=COEF_TOL)
    assert res.batch_real["se"] == pytest.approx(float(res.real.se["did"]), rel=SE_RTOL)


def test_ri_p_value_and_outputs(tmp_path):
    df = did_panel(80, 10, 12, n_controls=2, tau=0.6, drop=0.05)
    con = duckdb.connect()
    con.register("panel", df)
    res = run_placebo(con, "panel", FML, "did", "unit", "year", draws=200, seed=1)
    b = abs(res.estimate)
    assert res.ri_p_value == pytest.approx(np.mean(np.abs(res.draws["coef"]) >= b))
    hits = int(np.sum(np.abs(res.draws["coef"]) >= b))
    assert res.ri_p_value_plus1 == pytest.approx((1 + hits) / 201)
    assert res.ri_p_value < 0.05  # a strong real effect
    assert abs(res.draws["coef"].mean()) < 3 * res.draws["coef"].std() / np.sqrt(200) + 0.02
    # the same seed gives the same draws
    again = run_placebo(con, "panel", FML, "did", "unit", "year", draws=200, seed=1)
    pd.testing.assert_frame_equal(res.draws, again.draws)
    png = res.plot(tmp_path / "placebo.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    con.execute("create schema if not exists main")
    persist_study(con, "r1", "v1", True, "placebo", res)
    n, lo, hi = con.execute("select count(*), min(draw), max(draw) from main.placebo_draws").fetchone()
    assert (n, lo, hi) == (200, 1, 200)
    ri = con.execute("select p_value from main.model_tests where test = 'ri_two_sided'").fetchone()[0]
    assert ri == pytest.approx(res.ri_p_value)
    assert con.execute("select count(*) from main.estimates where model_id = 'placebo'").fetchone()[0] == 3


def test_assignment_schemes():
    rng = np.random.default_rng(0)
    adopt = np.array([2016.0] * 5 + [2018.0] * 3 + [np.nan] * 12)
    strata = np.array(list("aaaabbbbbbccccccdddd"))
    A = draw_assignments(adopt, 50, rng, strata=strata)
    for s in np.unique(strata):  # within strata, the dates are permuted, never moved across
        idx = strata == s
        expect = np.sort(np.nan_to_num(adopt[idx], nan=0))
        assert all((np.sort(np.nan_to_num(row[idx], nan=0)) == expect).all() for row in A)
    assert len({tuple(np.isnan(r)) for r in A}) > 10  # the draws differ
    U = draw_assignments(adopt, 50, rng, n_pseudo_treated=12, permute="units")
    assert (np.sum(~np.isnan(U), axis=1) == 12).all()
    assert set(np.unique(U[~np.isnan(U)])) <= {2016.0, 2018.0}
    P = draw_assignments(adopt, 50, rng, n_pseudo_treated=4)
    assert (np.sum(~np.isnan(P), axis=1) == 4).all()
    with pytest.raises(ValueError):
        draw_assignments(adopt, 5, rng, strata=strata, n_pseudo_treated=3)
    with pytest.raises(ValueError):
        draw_assignments(np.full(5, np.nan), 5, rng)


def test_placebo_rejects_what_it_cannot_batch():
    df = did_panel(30, 6, 2, n_controls=1)
    con = duckdb.connect()
    con.register("panel", df)
    with pytest.raises(NotImplementedError):
        run_placebo(con, "panel", "y ~ did + x1 | unit + year", "did", "unit", "year", draws=3, vcov="hetero")
    with pytest.raises(ValueError, match="whole units"):
        run_placebo(con, "panel", "y ~ did + x1 | unit + year", "did", "unit", "year", draws=3,
                    vcov={"CRV1": "year"})
    with pytest.raises(ValueError, match="regressor"):
        run_placebo(con, "panel", "y ~ x1 | unit + year", "did", "unit", "year", draws=3)
