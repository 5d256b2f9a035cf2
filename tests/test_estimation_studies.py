"""The studies' checks on the sample panel (from the sample generator, no dbt run):
Table 3 of both studies against pyfixest, publication tables, persistence, and the
`cityres estimate` commands' JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from oracles import assert_matches, pf_fit
from typer.testing import CliRunner

from estimation.studies.common import persist_estimates
from estimation.studies import nqp, resilience
from estimation.studies.common import table3
from flows.cli import app
from warehouse.sample.generate import simulate

CONTROLS = ["eocden", "traff", "gove", "inv", "salary"]


@pytest.fixture(scope="module")
def sample_panel() -> pd.DataFrame:
    """287 cities x 2012-2023 with the generator's index as `res` and controls built
    from its latent yearbook values (the same kind of ratios as the marts)."""
    s = simulate()
    rows = s.panel.city_index
    t = np.searchsorted(s.years, s.panel.years)
    f = {k: v[np.ix_(rows, t)] for k, v in s.latent.factual.items()}
    n_c, n_t = len(rows), len(t)
    treated = s.design.treated[rows]
    year = np.tile(s.panel.years, n_c)
    frame = pd.DataFrame({
        "city_code": np.repeat(s.cities.code[rows], n_t),
        "province_code": np.repeat(s.cities.province_code[rows], n_t),
        "year": year,
        "res": s.panel.index_factual.ravel(),
        "did": (np.repeat(treated, n_t) & (year >= s.design.adoption_year)).astype(int),
        "eocden": np.log(f["gdp"] / f["land_area"]).ravel(),
        "traff": (f["road_area"] / f["pop_total"]).ravel(),
        "gove": (f["fiscal_expenditure"] / f["gdp"]).ravel(),
        "inv": np.log1p(f["fdi"]).ravel(),
        "salary": (f["avg_wage"] / 1e4).ravel(),
    })
    assert len(frame) == 287 * 12 and frame["did"].sum() > 0
    return frame


@pytest.fixture
def con(con, sample_panel):
    con.execute("create schema if not exists main")
    con.execute("create table main.analysis_panel as select * from sample_panel")
    return con


def test_table3_both_studies_match_pyfixest(con, sample_panel):
    specs, results = resilience.run_table3(con)
    assert [s.model_id for s in specs] == [f"table3_col{i}" for i in range(1, 5)]
    for spec, res in zip(specs, results):
        assert_matches(res, pf_fit(spec.formula, sample_panel, {"CRV1": "city_code"}), has_fe=bool(spec.fixed_effects))
    # the NQP study's Table 3 is the same layout on another outcome: tested on `res`
    nspecs, nres = nqp.run_table3(con, outcome="res", controls=CONTROLS)
    assert [s.model_id for s in nspecs] == [f"nqp_table3_col{i}" for i in range(1, 5)]
    for a, b in zip(results, nres):  # DuckDB's parallel sums may differ in the last bit
        np.testing.assert_allclose(a.coef.to_numpy(), b.coef.to_numpy(), rtol=1e-12, atol=1e-15)
    assert nqp.specs()[3].formula == (
        "nqp ~ did + ln_gdp_per_capita + industrial_structure + consumption_ratio + loans_to_gdp + gove"
        " | city_code + year")


def test_table3_renders_like_the_studies(con):
    specs, results = resilience.run_table3(con)
    md = table3(specs, results, "markdown")
    for row in ("DID", "EOCDEN", "Constant", "City FE", "Year FE", "Observations", "R-squared"):
        assert f"| {row} |" in md
    assert "| City FE | NO | YES | NO | YES |" in md
    assert "3,444" in md and "clustered by city\\_code" in md
    nqp_tex = table3(*nqp.run_table3(con, outcome="res", controls=CONTROLS), "latex", adj_r2=True)
    assert "Adj. R-squared" in nqp_tex and r"\toprule" in nqp_tex
    html = table3(specs, results, "html")
    # header rows, coef + se rows, FE rows, N and R2, the note
    assert html.count("<tr") == 2 + 2 * 7 + 2 + 2 + 1


def test_persisted_estimates(con):
    specs, results = resilience.run_table3(con)
    n = persist_estimates(con, "run-x", "v-x", True, specs, results)
    assert n == sum(len(r.coef) for r in results)
    got = con.execute(
        "select term, coef, se, nobs, n_clusters, vcov from main.estimates where model_id = 'table3_col4' order by term"
    ).df().set_index("term")
    np.testing.assert_array_equal(got.loc["did", "coef"], results[3].coef["did"])
    assert got.loc["did", "vcov"] == "CRV1:city_code" and got.loc["did", "n_clusters"] == 287


def test_cli_json_on_a_user_file(sample_panel, tmp_path):
    path = tmp_path / "panel.parquet"
    sample_panel.to_parquet(path)
    runner = CliRunner()
    out = runner.invoke(app, ["estimate", "twfe", "--data", str(path), "--formula",
                              "res ~ did + eocden | city_code + year", "--vcov", "CRV1:city_code",
                              "--format", "json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    assert [r["term"] for r in payload["terms"]] == ["did", "eocden"]
    assert set(payload["terms"][0]) == {"term", "coef", "se", "t", "p", "ci_low", "ci_high"}
    ref = pf_fit("res ~ did + eocden | city_code + year", sample_panel, {"CRV1": "city_code"})
    assert payload["terms"][0]["coef"] == pytest.approx(ref.coef()["did"], abs=1e-10)
    m = payload["model"]
    assert m["nobs"] == 3444 and m["n_clusters"] == 287 and m["vcov"] == "CRV1:city_code"
    assert {"r2", "r2_within", "elapsed_s"} <= set(m)

    out = runner.invoke(app, ["estimate", "placebo", "--data", str(path), "--formula",
                              "res ~ did + eocden | city_code + year", "--treatment", "did",
                              "--unit", "city_code", "--time", "year", "--draws", "25", "--seed", "3",
                              "--format", "json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    assert len(payload["draws"]) == 25 and 0 <= payload["ri_p_value"] <= 1
    assert set(payload["draws"][0]) == {"draw", "coef", "se", "t", "p"}
