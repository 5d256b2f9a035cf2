"""Event study: leads/lags, binning, pre-trend test and outputs, against pyfixest ``i()``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from oracles import COEF_TOL, SE_RTOL, pf_fit

from estimation.engine.event_study import event_term, run_event_study
from panels import did_panel
from estimation.studies import nqp
from estimation.studies.common import persist_study


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    # staggered adoption 2014/2016/2018 over 2010-2021, 15% of rows missing
    df = did_panel(60, 12, 7, n_controls=2, cohorts=(2014, 2016, 2018), first_period=2010,
                   treated_share=0.5, drop=0.15)
    return df.rename(columns={"did": "post"})


@pytest.fixture
def con(con, panel):
    con.register("panel", panel)
    return con


def observed_adoption(df: pd.DataFrame) -> pd.Series:
    """First observed year with post = 1 (rows are missing at random, so it can be later
    than the design's adoption year) - the rule the engine applies to a post indicator."""
    first = df.loc[df["post"] == 1].groupby("unit")["year"].min()
    return df["unit"].map(first).astype("float")


def binned(df: pd.DataFrame, lo: int, hi: int, base: int) -> pd.DataFrame:
    """Independent construction of the binned event time (never-treated -> base)."""
    e = (df["year"] - observed_adoption(df)).clip(lo, hi)
    return df.assign(rel=e.fillna(base).astype(int))


@pytest.mark.parametrize("leads,lags,base", [(4, 7, -1), (2, 6, 0)])
def test_event_study_matches_pyfixest(con, panel, leads, lags, base):
    es = run_event_study(con, "panel", "y", leads, lags, base, ["x1", "x2"], treatment="post",
                         unit="unit", time="year")
    df = binned(panel, -leads, lags, base)
    m = pf_fit(f"y ~ i(rel, ref={base}) + x1 + x2 | unit + year", df, {"CRV1": "unit"})
    names = {f"rel::{k}": event_term(k) for k in range(-leads, lags + 1)}
    b = m.coef().rename(index=names)
    se = m.se().rename(index=names)
    assert list(es.model.coef.index) == list(b.index)
    np.testing.assert_allclose(es.model.coef.to_numpy(), b.to_numpy(), rtol=0, atol=COEF_TOL)
    np.testing.assert_allclose(es.model.se.to_numpy(), se.to_numpy(), rtol=SE_RTOL)

    tidy = es.tidy()
    assert list(tidy["event_time"]) == list(range(-leads, lags + 1))
    row = tidy.set_index("event_time").loc[base]
    assert row.coef == 0.0 and np.isnan(row.p)
    # binned end points: every treated observation falls in one of the bins
    assert tidy["n_treated_obs"].sum() == int(observed_adoption(panel).notna().sum())

    lead_terms = [f"rel::{k}" for k in range(-leads, 0) if k != base]
    R = np.zeros((len(lead_terms), len(m.coef())))
    for i, t in enumerate(lead_terms):
        R[i, list(m.coef().index).index(t)] = 1.0
    w = m.wald_test(R=R, distribution="chi2")
    assert es.pretrend.wald == pytest.approx(w["statistic"], rel=1e-7)
    assert es.pretrend.p_chi2 == pytest.approx(w["pvalue"], rel=1e-6)
    assert es.pretrend.df1 == len(lead_terms) and es.pretrend.df2 == 59


def test_without_binning_out_of_window_times_join_the_base(con, panel):
    es = run_event_study(con, "panel", "y", 2, 3, -1, ["x1"], bin_endpoints=False, treatment="post",
                         unit="unit", time="year")
    e = panel["year"] - observed_adoption(panel)
    rel = e.where(e.between(-2, 3)).fillna(-1).astype(int)
    m = pf_fit("y ~ i(rel, ref=-1) + x1 | unit + year", panel.assign(rel=rel), {"CRV1": "unit"})
    np.testing.assert_allclose(es.model.coef.to_numpy(), m.coef().to_numpy(), rtol=0, atol=COEF_TOL)


def test_nqp_event_study_labels_tables_plot_and_persistence(con, tmp_path):
    es = nqp.run_event_study(con, "panel", outcome="y", controls=["x1"], treatment="post",
                             unit="unit", time="year")
    assert (es.leads, es.lags, es.base) == (2, 6, 0)
    md = es.table("markdown", labels="study")
    assert "pre\\_2" in md and "post\\_6" in md and "current" not in md  # base row omitted
    assert "Joint pre-trend test" in md
    assert es.table("latex").count(r"\\") > 10 and "<table" in es.table("html")
    png = es.plot(tmp_path / "es.png", level=0.90)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    n = persist_study(con, "run1", "v1", True, "nqp_event_study", es)
    assert n == len(es.model.coef)
    tests = con.execute("select test, statistic, df1, df2, p_value from main.model_tests").fetchall()
    assert tests[0] == ("pretrend_F", pytest.approx(es.pretrend.f), 2.0, 59.0, pytest.approx(es.pretrend.p_f))


def test_treatment_must_be_absorbing(con, panel):
    bad = panel.copy()
    first = bad.index[bad["post"] == 1][0]
    unit = bad.loc[first, "unit"]
    bad.loc[(bad["unit"] == unit) & (bad["year"] == bad.loc[bad["unit"] == unit, "year"].max()), "post"] = 0
    con.register("bad", bad)
    with pytest.raises(ValueError, match="switches off"):
        run_event_study(con, "bad", "y", 2, 2, -1, [], treatment="post", unit="unit", time="year")
