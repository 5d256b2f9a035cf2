"""Callaway-Sant'Anna staggered DID (estimation/engine/did_cs.py) against moderndid 0.2.0
(the Python port of R ``did``) on its shipped ``mpdta`` data and on a synthetic staggered
panel, plus a by-hand numpy check, the multiplier bootstrap and the input checks."""
from __future__ import annotations

import json
import math
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from estimation.engine.did_cs import cs_att_gt, draw_multipliers

ATT_TOL = 1e-8
SE_RTOL = 1e-6
KINDS = ("simple", "dynamic", "group", "calendar")
MD_CONTROL = {"never": "nevertreated", "notyet": "notyettreated"}


def _synthetic(n=300, seed=7, never=True):
    """~300 units x 10 years, cohorts 2004/2006/2008 (+ never treated), selection on x1, a
    time-varying x2, effects differing by cohort and event time; 4 units treated in 2001."""
    r = np.random.default_rng(seed)
    years = np.arange(2001, 2011)
    cohorts = np.array([2004, 2006, 2008, 0] if never else [2004, 2006, 2008])
    x1 = r.normal(size=n)
    score = np.column_stack([0.5 * x1 * k for k in range(len(cohorts))]) + r.gumbel(size=(n, len(cohorts)))
    g = cohorts[np.argmax(score, axis=1)]
    g[:4] = 2001
    u = np.repeat(np.arange(n), len(years))
    t = np.tile(years, n)
    gi = g[u]
    x2 = r.normal(size=n)[u] + 0.1 * (t - 2001) * r.normal(size=len(u))
    e = t - gi
    effect = np.where((gi > 0) & (e >= 0), 0.5 + 0.1 * (gi - 2004) + 0.2 * e, 0.0)
    y = (r.normal(size=n)[u] + 0.3 * (t - 2001) + 0.2 * x1[u] * (t - 2001) + 0.3 * x2 + effect
         + r.normal(size=len(u)))
    return pd.DataFrame({"id": 1000 + u, "year": t, "g": gi, "y": y, "x1": x1[u], "x2": x2, "prov": u % 17})


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


@pytest.fixture(scope="module")
def mpdta():
    import moderndid

    return moderndid.load_mpdta().to_pandas()


DATASETS = {
    # name: (outcome, unit, time, cohort)
    "mpdta": ("lemp", "countyreal", "year", "first.treat"),
    "synthetic": ("y", "id", "year", "g"),
}


def _ours(df, cols, **kw):
    y, u, t, g = cols
    con = duckdb.connect()
    con.register("panel", df)
    kw.setdefault("bootstrap_draws", 0)
    res = cs_att_gt(con, "panel", outcome=y, unit=u, time=t, cohort=g, **kw)
    # every temp table / view of the estimation is gone
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0
    assert [r[0] for r in con.execute("SHOW TABLES").fetchall()] == ["panel"]
    return res


def _moderndid(df, cols, control="never", base_period="varying", covariates=None, method="dr", anticipation=0):
    import moderndid

    y, u, t, g = cols
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return moderndid.att_gt(df, yname=y, tname=t, idname=u, gname=g,
                                xformla=("~" + "+".join(covariates)) if covariates else None, est_method=method,
                                control_group=MD_CONTROL[control], base_period=base_period, anticipation=anticipation)


def _md_aggte(m, kind, na_rm=False):
    import moderndid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return moderndid.aggte(m, type=kind, cband=False, na_rm=na_rm)


def _assert_se(ours, theirs):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ~np.isnan(ours)
    np.testing.assert_allclose(ours[ok], theirs[ok], rtol=SE_RTOL, atol=0)


def _assert_att_gt(res, m):
    a = res.att_gt_frame()
    np.testing.assert_array_equal(a["group"].to_numpy(float), m.groups)
    np.testing.assert_array_equal(a["time"].to_numpy(float), m.times)
    np.testing.assert_allclose(a["att"].to_numpy(), m.att_gt, rtol=0, atol=ATT_TOL)
    _assert_se(a["se"], m.se_gt)
    np.testing.assert_array_equal(a["post"].to_numpy(), m.groups <= m.times)
    np.testing.assert_array_equal(a["event_time"].to_numpy(float), m.times - m.groups)


def _assert_aggregates(res, m, kinds=KINDS, na_rm=False, row_filter=None):
    """Overall coef/se and every row's coef/se; ``row_filter(kind, keys)`` selects moderndid's rows."""
    for kind in kinds:
        ours, theirs = res.aggregate(kind), _md_aggte(m, kind, na_rm)
        assert ours.coef == pytest.approx(theirs.overall_att, abs=ATT_TOL), kind
        _assert_se([ours.se], [theirs.overall_se])
        if kind == "simple":
            assert ours.rows == []
            continue
        sel = np.ones(len(theirs.event_times), bool) if row_filter is None else row_filter(kind, theirs.event_times)
        keys = [r[ours.key] for r in ours.rows]
        np.testing.assert_array_equal(np.array(keys, dtype=float), theirs.event_times[sel])
        np.testing.assert_allclose([r["coef"] for r in ours.rows], theirs.att_by_event[sel], rtol=0, atol=ATT_TOL)
        _assert_se([r["se"] for r in ours.rows], theirs.se_by_event[sel])


SPECS = {
    # name: (covariates per dataset, method)
    "unconditional": ({"mpdta": None, "synthetic": None}, "dr"),
    "dr1": ({"mpdta": ["lpop"], "synthetic": ["x1"]}, "dr"),
    "dr2": ({"synthetic": ["x1", "x2"]}, "dr"),
    "reg": ({"mpdta": ["lpop"], "synthetic": ["x1", "x2"]}, "reg"),
    "ipw": ({"mpdta": ["lpop"], "synthetic": ["x1", "x2"]}, "ipw"),
}
CASES = [(d, s, c, b) for d in DATASETS for s in SPECS if d in SPECS[s][0]
         for c in ("never", "notyet") for b in ("varying", "universal")]


@pytest.mark.parametrize(("dataset", "spec", "control", "base_period"), CASES)
def test_matches_moderndid(request, dataset, spec, control, base_period):
    """ATT(g,t) to 1e-8, analytic SEs to 1e-6 (relative), the four aggregations likewise.
    Covariates: x2 varies over time, so this also checks that they are read in the earlier
    period of each 2x2, as R did does."""
    df = request.getfixturevalue(dataset)
    covs, method = SPECS[spec]
    covariates = covs[dataset]
    kw = {"control": control, "base_period": base_period, "covariates": covariates, "method": method}
    res = _ours(df, DATASETS[dataset], **kw)
    m = _moderndid(df, DATASETS[dataset], **kw)
    _assert_att_gt(res, m)
    _assert_aggregates(res, m)
    if base_period == "universal":
        ref = res.att_gt_frame().query("time == base")
        assert len(ref) == len(res.cohorts) and (ref["att"] == 0).all() and ref["se"].isna().all()


@pytest.mark.parametrize(("control", "base_period", "anticipation", "covariates"), [
    ("never", "varying", 1, None),
    ("notyet", "universal", 1, None),
    ("notyet", "varying", 2, ["x1"]),
])
def test_anticipation_matches_moderndid(synthetic, control, base_period, anticipation, covariates):
    kw = {"control": control, "base_period": base_period, "anticipation": anticipation, "covariates": covariates}
    res = _ours(synthetic, DATASETS["synthetic"], **kw)
    m = _moderndid(synthetic, DATASETS["synthetic"], **kw)
    _assert_att_gt(res, m)
    _assert_aggregates(res, m)
    assert any("already treated in the first period" in w for w in res.warnings)


def test_first_period_and_late_cohorts(synthetic):
    """Units treated in the first period are dropped, cohorts after the last period are never
    treated - both reported in the warnings, both as moderndid/R."""
    df = synthetic.copy()
    df.loc[df["id"].between(1004, 1019), "g"] = 2015
    res = _ours(df, DATASETS["synthetic"])
    m = _moderndid(df, DATASETS["synthetic"])
    _assert_att_gt(res, m)
    _assert_aggregates(res, m)
    assert res.warnings[0].startswith("16 unit(s) first treated after the last period")
    assert res.warnings[1].startswith("dropped 4 unit(s) already treated in the first period")
    assert res.n_units == df["id"].nunique() - 4
    assert res.cohorts == [2004, 2006, 2008]


def test_no_never_treated_units():
    """Without never-treated units R did makes the latest cohort the comparison group and drops
    the periods from it on.  With control="never" moderndid does the same; with "notyet"
    moderndid 0.2.0 still reports (placebo, pre-period) ATT(g,t) of the latest cohort, which R
    drops from its list of groups (``glist <- glist[glist < latest_g]``): we follow R, so the
    cells, the simple/group/calendar aggregates and the post-treatment event times agree."""
    df = _synthetic(never=False)
    cols = DATASETS["synthetic"]
    res = _ours(df, cols)
    _assert_att_gt(res, _moderndid(df, cols))
    _assert_aggregates(res, _moderndid(df, cols))
    assert any("latest cohort (2008)" in w for w in res.warnings)
    assert res.periods == list(range(2001, 2008)) and res.cohorts == [2004, 2006]

    for base in ("varying", "universal"):
        res = _ours(df, cols, control="notyet", base_period=base)
        m = _moderndid(df, cols, control="notyet", base_period=base)
        keep = m.groups < 2008
        a = res.att_gt_frame()
        np.testing.assert_array_equal(a["group"].to_numpy(float), m.groups[keep])
        np.testing.assert_array_equal(a["time"].to_numpy(float), m.times[keep])
        np.testing.assert_allclose(a["att"].to_numpy(), m.att_gt[keep], rtol=0, atol=ATT_TOL)
        _assert_se(a["se"], m.se_gt[keep])
        _assert_aggregates(res, m, kinds=("simple", "group", "calendar"), na_rm=True,
                           row_filter=lambda kind, keys: (keys < 2008) | (kind != "group"))
        ours, theirs = res.aggregate("dynamic"), _md_aggte(m, "dynamic", na_rm=True)
        assert ours.coef == pytest.approx(theirs.overall_att, abs=ATT_TOL)
        _assert_se([ours.se], [theirs.overall_se])
        post = theirs.event_times >= 0
        np.testing.assert_allclose([r["coef"] for r in ours.rows if r["event_time"] >= 0],
                                   theirs.att_by_event[post], rtol=0, atol=ATT_TOL)
        _assert_se([r["se"] for r in ours.rows if r["event_time"] >= 0], theirs.se_by_event[post])


@pytest.mark.parametrize(("control", "base_period"), [("never", "varying"), ("notyet", "universal")])
def test_gapped_periods_and_event_windows(synthetic, control, base_period):
    """Biennial periods with cohorts between them (R recodes periods to 1, 2, ... for max_e),
    string unit ids, a DuckDBPyRelation as input; min_e / max_e / balance_e as aggte."""
    df = synthetic[synthetic["year"] % 2 == 1].copy()
    labelled = df.assign(id="u" + df["id"].astype(str))
    con = duckdb.connect()
    con.register("panel", labelled)
    res = cs_att_gt(con, con.sql("SELECT * FROM panel"), outcome="y", unit="id", time="year", cohort="g",
                    control=control, base_period=base_period, bootstrap_draws=0)
    assert res.unit_ids[0] == "u1004"
    m = _moderndid(df, DATASETS["synthetic"], control=control, base_period=base_period)
    _assert_att_gt(res, m)
    import moderndid

    for kind, kw in [("simple", {"max_e": 2}), ("group", {"max_e": 2}), ("dynamic", {"min_e": -2, "max_e": 3}),
                     ("dynamic", {"balance_e": 2})]:
        ours = res.aggregate(kind, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = moderndid.aggte(m, type=kind, cband=False, **kw)
        assert ours.coef == pytest.approx(theirs.overall_att, abs=ATT_TOL)
        _assert_se([ours.se], [theirs.overall_se])
        if kind != "simple":
            np.testing.assert_array_equal([r[ours.key] for r in ours.rows], theirs.event_times)
            np.testing.assert_allclose([r["coef"] for r in ours.rows], theirs.att_by_event, rtol=0, atol=ATT_TOL)
            _assert_se([r["se"] for r in ours.rows], theirs.se_by_event)


def test_one_att_by_hand(synthetic):
    """ATT(g,t) = difference of mean long differences, se^2 = SS_T/n_T^2 + SS_C/n_C^2, in numpy."""
    df = synthetic[synthetic["g"] != 2001]
    wide = df.pivot(index="id", columns="year", values="y")
    g = df.groupby("id")["g"].first().reindex(wide.index).to_numpy()

    def by_hand(g0, t, b, control):
        dy = (wide[t] - wide[b]).to_numpy()
        treated = g == g0
        comp = (g == 0) | ((g > max(t, b)) & (g != g0)) if control == "notyet" else g == 0
        yt, yc = dy[treated], dy[comp]
        att = yt.mean() - yc.mean()
        se = math.sqrt(np.sum((yt - yt.mean()) ** 2) / len(yt) ** 2 + np.sum((yc - yc.mean()) ** 2) / len(yc) ** 2)
        return att, se

    for control, base_period, (g0, t, b) in [
        ("never", "varying", (2006, 2008, 2005)),  # post period: base g - 1
        ("notyet", "varying", (2006, 2004, 2003)),  # pre period, varying base t - 1; 2008 is not yet treated
        ("notyet", "universal", (2008, 2003, 2007)),  # pre period, universal base g - 1
    ]:
        res = _ours(synthetic, DATASETS["synthetic"], control=control, base_period=base_period)
        rec = next(r for r in res.att_gt if r["group"] == g0 and r["time"] == t)
        att, se = by_hand(g0, t, b, control)
        assert rec["base"] == b
        assert rec["att"] == pytest.approx(att, abs=1e-12)
        assert rec["se"] == pytest.approx(se, rel=1e-10)
        assert rec["n_treated"] == int(np.sum(g == g0))


def test_simple_aggregate_by_hand(synthetic):
    """The simple ATT is the cohort-size weighted mean of the post-period ATT(g,t)."""
    res = _ours(synthetic, DATASETS["synthetic"])
    a = res.att_gt_frame().query("post")
    size = synthetic.groupby("g")["id"].nunique()
    w = a["group"].map(size).to_numpy(float)
    assert res.aggregate("simple").coef == pytest.approx(float(a["att"] @ w / w.sum()), abs=1e-12)
    dyn = res.aggregate("dynamic", min_e=-2, max_e=3)
    assert [r["event_time"] for r in dyn.rows] == [-2, -1, 0, 1, 2, 3]
    assert dyn.coef == pytest.approx(np.mean([r["coef"] for r in dyn.rows[2:]]), abs=1e-12)


def test_multiplier_bootstrap(synthetic):
    """Reproducible with a seed; the bootstrap SEs are close to the analytic ones (loosely: the
    IQR-based SE of 999 draws has a few per cent of noise); the uniform band's critical value is
    at least the pointwise one and the band covers the pointwise interval."""
    cols = DATASETS["synthetic"]
    a = _ours(synthetic, cols, bootstrap_draws=999, seed=11)
    b = _ours(synthetic, cols, bootstrap_draws=999, seed=11)
    c = _ours(synthetic, cols, bootstrap_draws=999, seed=12)
    fa, fb, fc = a.att_gt_frame(), b.att_gt_frame(), c.att_gt_frame()
    assert fa["se_boot"].tolist() == fb["se_boot"].tolist() and a.crit_val == b.crit_val
    assert fa["se_boot"].tolist() != fc["se_boot"].tolist()
    ratio = fa["se_boot"] / fa["se"]
    assert 0.93 < ratio.median() < 1.07 and ratio.between(0.8, 1.25).all()
    z = stats.norm.ppf(0.975)
    assert a.crit_val_raw >= z and a.crit_val >= z
    assert (fa["lo"] <= fa["att"] - z * fa["se_boot"]).all() and (fa["hi"] >= fa["att"] + z * fa["se_boot"]).all()
    for kind in KINDS:
        agg = a.aggregate(kind)
        assert agg.se_boot == pytest.approx(agg.se, rel=0.15)
        if kind != "simple":
            assert agg.crit_val >= z
            for r in agg.rows:
                if not math.isnan(r["se"]):
                    assert r["se_boot"] == pytest.approx(r["se"], rel=0.25)
                    assert r["lo"] == pytest.approx(r["coef"] - agg.crit_val * r["se_boot"])


def test_cluster_bootstrap(synthetic):
    """Clustered by province (17 clusters): the multipliers act on cluster sums S_c of the
    influence function, whose variance is sum_c S_c^2 / N^2 (R did's cluster-robust SE).  The
    band's crit value is scale-free and reproducible."""
    res = _ours(synthetic, DATASETS["synthetic"], bootstrap_draws=2000, seed=5, cluster="prov")
    assert res.n_clusters == 17 and res.multipliers.shape == (2000, 17)
    S = np.zeros((17, res.influence.shape[1]))
    np.add.at(S, res.unit_cluster, res.influence)
    target = np.sqrt(np.sum(S**2, axis=0)) / res.n_units
    f = res.att_gt_frame()
    ok = f["se"].notna().to_numpy()
    ratio = f["se_boot"].to_numpy()[ok] / target[ok]
    # 17 clusters: the IQR of a Rademacher sum of 17 terms is a rough scale estimate
    assert 0.8 < np.median(ratio) < 1.2


def test_multiplier_weights():
    for kind in ("rademacher", "mammen"):
        V = draw_multipliers(kind, 20000, 50, seed=1)
        assert abs(V.mean()) < 0.01 and abs(V.var() - 1) < 0.01
    assert abs(np.mean(draw_multipliers("mammen", 20000, 50, seed=1) ** 3) - 1) < 0.03  # Mammen: E v^3 = 1
    with pytest.raises(ValueError, match="rademacher"):
        draw_multipliers("webb", 10, 5, seed=1)


def test_to_dict_and_relations(synthetic):
    """The JSON shape (no NaN), and a SQL query as relation gives the same numbers as a table."""
    con = duckdb.connect()
    con.register("raw", synthetic)
    con.execute("CREATE TABLE panel AS SELECT * FROM raw")
    res = cs_att_gt(con, "panel", outcome="y", unit="id", time="year", cohort="g", bootstrap_draws=99, seed=1,
                    base_period="universal")
    res_q = cs_att_gt(con, "SELECT * FROM panel WHERE year >= 2001", outcome="y", unit="id", time="year",
                      cohort="g", bootstrap_draws=99, seed=1, base_period="universal")
    d = res.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == json.loads(json.dumps(res_q.to_dict(), allow_nan=False))
    assert d["method"] == "cs" and d["control"] == "never" and d["estimation"] == "unconditional"
    assert set(d["aggregates"]) == set(KINDS)
    assert set(d["aggregates"]["simple"]) == {"coef", "se", "se_boot"}
    assert {"event_time", "coef", "se", "se_boot", "lo", "hi"} <= set(d["aggregates"]["dynamic"]["rows"][0])
    assert "group" in d["aggregates"]["group"]["rows"][0] and "time" in d["aggregates"]["calendar"]["rows"][0]
    cell = d["att_gt"][0]
    assert {"group", "time", "coef", "se", "event_time", "post"} <= set(cell)
    ref = [c for c in d["att_gt"] if c["time"] == c["base"]]
    assert ref and all(c["se"] is None and c["coef"] == 0 for c in ref)
    assert res.influence.shape == (res.n_units, len(res.att_gt))


def test_overlap_violation_gives_nan_cell(synthetic):
    """A covariate that predicts the cohort perfectly: R did reports NA and a warning for the
    cell; the aggregations leave it out (na.rm)."""
    df = synthetic[synthetic["g"] != 2001].copy()
    df["sep"] = np.where(df["g"] == 2008, 5.0, -5.0) + 0.01 * df["x1"]
    res = _ours(df, DATASETS["synthetic"], covariates=["sep"])
    f = res.att_gt_frame()
    assert f.loc[f["group"] == 2008, "att"].isna().all() and f.loc[f["group"] != 2008, "att"].notna().all()
    assert any("ATT(2008," in w for w in res.warnings)
    assert [r["group"] for r in res.aggregate("group").rows] == [2004, 2006]


def _bad(df, match, **kw):
    con = duckdb.connect()
    con.register("panel", df)
    args = {"outcome": "y", "unit": "id", "time": "year", "cohort": "g", "bootstrap_draws": 0}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        cs_att_gt(con, "panel", **args)


def test_input_errors(synthetic):
    df = synthetic
    _bad(df.drop(index=df.index[df["id"] == 1010][:1]), r"unbalanced: unit 1010 is observed in 9 of the 10")
    _bad(pd.concat([df, df.iloc[[5]]]), r"unit 1000 has more than one row")
    varying = df.copy()
    varying.loc[(varying["id"] == 1007) & (varying["year"] == 2005), "g"] = 2009
    _bad(varying, r"cohort column 'g' varies within unit 1007")
    missing = df.copy()
    missing.loc[3, "y"] = np.nan
    _bad(missing, r"outcome column 'y' has 1 NULL/NaN value\(s\) \(e.g. unit 1000\)")
    _bad(df, r"covariate column 'nope' is not in the relation", covariates=["nope"])
    _bad(df.assign(year=df["year"].astype(str) + "a"), r"column 'year' must be numeric")
    _bad(df, r"control must be 'never'.*'notyet'", control="nevertreated")
    _bad(df, r"method must be", covariates=["x1"], method="ols")
    _bad(df, r"base_period must be", base_period="fixed")
    moving = df.copy()
    moving.loc[moving["year"] == 2005, "prov"] = 99
    _bad(moving, r"cluster column 'prov' varies within unit", cluster="prov")
    _bad(df.assign(g=0), r"no treated cohort")
