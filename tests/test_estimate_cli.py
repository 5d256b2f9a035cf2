"""`cityres estimate` works on any panel: no study defaults unless --study, weights, adoption
cohorts, files or SELECTs as data, and one-line refusals naming what is wrong."""
from __future__ import annotations

import json

import numpy as np
import pytest
from oracles import pf_fit
from panels import did_panel
from typer.testing import CliRunner

from flows.cli import app


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory):
    df = did_panel(60, 10, seed=4, n_controls=2, cohorts=(2014, 2016, 2018), first_period=2010)
    df["w"] = np.random.default_rng(1).uniform(0.5, 2.0, len(df))
    df["g"] = df["adoption_year"].fillna(0).astype(int)
    path = tmp_path_factory.mktemp("cli") / "panel.csv"
    df.drop(columns=["adoption_year"]).to_csv(path, index=False)
    return path, df


def invoke(*args):
    return CliRunner().invoke(app, ["estimate", *map(str, args)])


def test_twfe_on_a_user_panel_with_weights_equals_pyfixest(panel_file):
    path, df = panel_file
    out = invoke("twfe", "--data", path, "--formula", "y ~ did + x1 | unit + year", "--weights", "w",
                 "--format", "json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    ref = pf_fit("y ~ did + x1 | unit + year", df, {"CRV1": "unit"}, weights="w")
    assert payload["model"]["vcov"] == "CRV1:unit"  # default: clustered by the first fixed effect
    assert payload["model"]["weights"] == "w"
    got = {r["term"]: r for r in payload["terms"]}
    for term in ("did", "x1"):
        assert got[term]["coef"] == pytest.approx(ref.coef()[term], abs=1e-10)
        assert got[term]["se"] == pytest.approx(ref.se()[term], rel=1e-6)


def test_unknown_column_is_one_line_listing_the_available_ones(panel_file):
    path, _ = panel_file
    out = invoke("twfe", "--data", path, "--formula", "y ~ did + nosuch | unit + year")
    assert out.exit_code == 2
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1, out.output
    assert "'nosuch'" in lines[0] and "available: unit, year" in lines[0]
    assert "Traceback" not in out.output


def test_event_study_without_a_study_needs_its_columns_named(panel_file):
    path, _ = panel_file
    out = invoke("event-study", "--data", path, "--outcome", "y")
    assert out.exit_code == 2 and "--unit is required" in out.output and "Traceback" not in out.output


def test_event_study_by_cohort_equals_event_study_by_post_indicator(panel_file):
    path, _ = panel_file
    common = ["--data", path, "--outcome", "y", "--unit", "unit", "--time", "year", "--controls", "x1",
              "--leads", 3, "--lags", 3, "--format", "json"]
    by_cohort = invoke("event-study", "--cohort", "g", *common)
    by_post = invoke("event-study", "--treatment", "did", *common)
    assert by_cohort.exit_code == 0, by_cohort.output
    assert by_post.exit_code == 0, by_post.output
    a, b = json.loads(by_cohort.stdout), json.loads(by_post.stdout)
    assert a["window"] == {"leads": 3, "lags": 3, "base": -1, "binned": True}
    np.testing.assert_allclose([r["coef"] for r in a["terms"]], [r["coef"] for r in b["terms"]], rtol=0, atol=1e-12)


def test_event_study_window_defaults_to_what_is_observed(panel_file):
    path, _ = panel_file
    out = invoke("event-study", "--data", path, "--outcome", "y", "--unit", "unit", "--time", "year",
                 "--cohort", "g", "--format", "json")
    assert out.exit_code == 0, out.output
    # adoption 2014-2018 in 2010-2019: event times -8 ... 5
    assert json.loads(out.stdout)["window"] == {"leads": 8, "lags": 5, "base": -1, "binned": True}


def test_placebo_with_a_cohort_column(panel_file):
    path, _ = panel_file
    out = invoke("placebo", "--data", path, "--formula", "y ~ treated + x1 | unit + year", "--treatment", "treated",
                 "--cohort", "g", "--unit", "unit", "--time", "year", "--draws", 20, "--seed", 2, "--format", "json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    did = invoke("twfe", "--data", path, "--formula", "y ~ did + x1 | unit + year", "--format", "json")
    assert payload["terms"][0]["coef"] == pytest.approx(json.loads(did.stdout)["terms"][0]["coef"], abs=1e-12)
    assert len(payload["draws"]) == 20


def test_a_select_as_data(panel_file, tmp_path):
    import duckdb

    path, df = panel_file
    db = tmp_path / "home" / "warehouse.duckdb"
    db.parent.mkdir()
    with duckdb.connect(str(db)) as con:
        con.execute(f"create table panel as select * from read_csv_auto('{path}')")
    out = invoke("twfe", "--home", db.parent, "--data", "select * from panel where year >= 2012",
                 "--formula", "y ~ did | unit + year", "--format", "json")
    assert out.exit_code == 0, out.output
    ref = pf_fit("y ~ did | unit + year", df[df.year >= 2012], {"CRV1": "unit"})
    assert json.loads(out.stdout)["terms"][0]["coef"] == pytest.approx(ref.coef()["did"], abs=1e-10)
