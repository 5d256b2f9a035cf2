"""`cityres estimate did --method cs|sa|bjs|did2s|bacon` on a user's staggered panel (a CSV file):
the JSON shape the docs promise, values equal to pyfixest / the engine, refusals in one line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from oracles import pf_fit
from typer.testing import CliRunner

from flows.cli import app


def staggered_panel(n_units=90, periods=range(2010, 2020), seed=7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cohorts = rng.choice([0, 2013, 2015, 2017], size=n_units, p=[0.4, 0.2, 0.2, 0.2])
    rows = []
    a = rng.normal(size=n_units)
    for i in range(n_units):
        for t in periods:
            g = cohorts[i]
            e = t - g if g else -99
            effect = (0.5 + 0.1 * (g - 2013) / 2 + 0.2 * e) if g and e >= 0 else 0.0
            x = rng.normal()
            rows.append((f"u{i:03d}", t, int(g), a[i] + 0.1 * (t - 2010) + 0.3 * x + effect + rng.normal(scale=0.5), x))
    return pd.DataFrame(rows, columns=["unit", "year", "g", "y", "x"])


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory):
    df = staggered_panel()
    path = tmp_path_factory.mktemp("did") / "staggered.csv"
    df.to_csv(path, index=False)
    return path, df


def run(*args):
    out = CliRunner().invoke(app, ["estimate", "did", *map(str, args)])
    return out


def did(path, method, *extra):
    out = run("--method", method, "--data", path, "--outcome", "y", "--unit", "unit", "--time", "year",
              "--cohort", "g", "--format", "json", *extra)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


@pytest.mark.parametrize("method", ["cs", "sa", "bjs", "did2s"])
def test_json_has_the_promised_aggregates(panel_file, method):
    path, _ = panel_file
    payload = did(path, method, *(["--bootstrap", "0"] if method == "cs" else []))
    assert payload["method"] == method
    agg = payload["aggregates"]
    assert set(agg) >= {"simple", "dynamic"}
    assert {"coef", "se"} <= set(agg["simple"])
    for row in agg["dynamic"]["rows"]:
        assert {"event_time", "coef", "se"} <= set(row)
    if method == "cs":
        assert set(agg) == {"simple", "dynamic", "group", "calendar"}
        assert {"group", "time", "coef", "se"} <= set(payload["att_gt"][0])


def test_did2s_equals_pyfixest(panel_file):
    pf = pytest.importorskip("pyfixest")
    path, df = panel_file
    payload = did(path, "did2s")
    d = df.assign(treat=((df["g"] > 0) & (df["year"] >= df["g"])).astype(int))
    ref = pf.did2s(d, yname="y", first_stage="~ 0 | unit + year", second_stage="~ treat", treatment="treat",
                   cluster="unit")
    assert payload["aggregates"]["simple"]["coef"] == pytest.approx(float(ref.coef()["treat"]), abs=1e-6)
    assert payload["aggregates"]["simple"]["se"] == pytest.approx(float(ref.se()["treat"]), rel=1e-4)


def test_cs_with_not_yet_treated_controls_equals_the_engine(panel_file, con):
    from estimation.engine.did_cs import cs_att_gt

    path, df = panel_file
    payload = did(path, "cs", "--control", "notyet", "--bootstrap", "0")
    ref = cs_att_gt(con, df, outcome="y", unit="unit", time="year", cohort="g", control="notyet", bootstrap_draws=0)
    assert payload["control"] == "notyet"
    assert payload["aggregates"]["simple"]["coef"] == pytest.approx(ref.aggregate("simple").coef, abs=1e-12)
    dyn = {r["event_time"]: r["coef"] for r in payload["aggregates"]["dynamic"]["rows"]}
    for row in ref.aggregate("dynamic").rows:
        assert dyn[row["event_time"]] == pytest.approx(row["coef"], abs=1e-12)


def test_bacon_weighted_sum_is_the_twfe_coefficient(panel_file):
    path, df = panel_file
    payload = did(path, "bacon")
    d = df.assign(treat=((df["g"] > 0) & (df["year"] >= df["g"])).astype(int))
    twfe = float(pf_fit("y ~ treat | unit + year", d, "iid").coef()["treat"])
    assert payload["weighted_sum"] == pytest.approx(twfe, abs=1e-10)
    assert sum(c["weight"] for c in payload["comparisons"]) == pytest.approx(1.0, abs=1e-12)


def test_table_format_prints_the_overall_att(panel_file):
    path, _ = panel_file
    out = run("--method", "sa", "--data", path, "--outcome", "y", "--unit", "unit", "--time", "year", "--cohort", "g")
    assert out.exit_code == 0, out.output
    assert out.output.startswith("Sun-Abraham") and "ATT (simple)" in out.output and "event_time" in out.output


@pytest.mark.parametrize("args, words", [
    (["--method", "xx"], "--method must be one of cs, sa, bjs, did2s, bacon"),
    (["--method", "cs", "--control", "later"], "--control must be never or notyet"),
    (["--method", "cs", "--vcov", "hetero"], "give CRV1:<column>"),
    (["--method", "sa", "--covariates", "nosuch"], "'nosuch' not in"),
])
def test_refusals_are_one_line(panel_file, args, words):
    path, _ = panel_file
    out = run(*args, "--data", path, "--outcome", "y", "--unit", "unit", "--time", "year", "--cohort", "g")
    assert out.exit_code == 2, out.output
    assert words in out.output and "Traceback" not in out.output
    assert len([line for line in out.output.splitlines() if line.strip()]) == 1


def test_an_unbalanced_panel_is_refused_in_words(panel_file, tmp_path):
    _, df = panel_file
    path = tmp_path / "unbalanced.csv"
    df.drop(index=[5]).to_csv(path, index=False)
    out = run("--method", "cs", "--data", path, "--outcome", "y", "--unit", "unit", "--time", "year", "--cohort", "g")
    assert out.exit_code == 2 and "u000" in out.output and "Traceback" not in out.output


def test_dml_command_equals_the_engine_and_refuses_an_unknown_learner(panel_file, con):
    from estimation.engine.dml import dml_did

    path, df = panel_file
    d = df.assign(treat=((df["g"] > 0) & (df["year"] >= df["g"])).astype(int))
    csv = path.with_name("with_treat.csv")
    d.to_csv(csv, index=False)
    out = CliRunner().invoke(app, ["estimate", "dml", "--data", str(csv), "--outcome", "y", "--treatment", "treat",
                                   "--controls", "x", "--unit", "unit", "--time", "year", "--format", "json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    ref = dml_did(con, d, outcome="y", treatment="treat", controls=["x"], unit="unit", time="year",
                  learner="lasso", n_folds=5, seed=20240601)
    assert payload["coef"] == pytest.approx(ref.coef, abs=1e-12) and payload["se"] == pytest.approx(ref.se, rel=1e-12)
    bad = CliRunner().invoke(app, ["estimate", "dml", "--data", str(csv), "--outcome", "y", "--treatment", "treat",
                                   "--controls", "x", "--unit", "unit", "--time", "year", "--learner", "svm"])
    assert bad.exit_code == 2 and "learner must be one of" in bad.output and "Traceback" not in bad.output
