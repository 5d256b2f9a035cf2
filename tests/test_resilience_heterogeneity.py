"""The resilience study's Tables 5-7 (mechanisms, city size, institutions): each model against
pyfixest on data prepared in pandas, each group's effect (a sum of coefficients) against the
reparametrised model, and every estimate whose estimand the generator defines against the
synthetic ground truth."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from oracles import COEF_TOL, SE_RTOL, pf_crv1

from estimation.studies import resilience_heterogeneity as het
from estimation.studies.common import PANEL


_pf = pf_crv1


@pytest.fixture(scope="module")
def published(published_sample):
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    tables = het.run_tables(con)
    panel = con.execute(f"select * from {PANEL}").df()
    yield published_sample, con, tables, panel
    con.close()


def _prepared(panel):
    df = panel.copy()
    for t in het.TIERS:
        df[f"did_{t}"] = df["did"] * (df["size_tier_group"] == t)
    df["did_dig"] = df["did"] * df["egov_pilot"].fillna(False).astype(int)
    df["did_ipp"] = df["did"] * df["ip_city_post"].fillna(0).astype(int)
    return df


def test_every_model_of_tables_5_to_7_equals_pyfixest(published):
    _, _, tables, panel = published
    df = _prepared(panel)
    assert [m.model_id for m in tables.models] == [
        "resilience.table5.tech_talent_share", "resilience.table5.log_new_digital_firms",
        *[f"resilience.table6.{t}" for t in het.TIERS], "resilience.table6.all",
        "resilience.table7.dig", "resilience.table7.dig_with_did", "resilience.table7.ipp",
        "resilience.table7.ipp_with_did"]
    for m in tables.models:
        theirs = _pf(m.formula, df)
        for term in theirs.coef().index:
            assert m.result.coef[term] == pytest.approx(theirs.coef()[term], abs=COEF_TOL), (m.model_id, term)
            assert m.result.se[term] == pytest.approx(theirs.se()[term], rel=SE_RTOL), (m.model_id, term)


def test_group_effects_equal_the_reparametrised_model(published):
    """DID + DID x DIG (a sum with its covariance) equals the coefficient of DID x DIG in a model
    with DID x (1 - DIG) and DID x DIG as the two treatment terms; same for IPP."""
    _, _, tables, panel = published
    df = _prepared(panel)
    effects = het.group_effects(tables.models).set_index(["table", "group"])
    controls = " + ".join(het.CONTROLS)
    for key in ("dig", "ipp"):
        df[f"did_not_{key}"] = df["did"] - df[f"did_{key}"]
        theirs = _pf(f"res ~ did_{key} + did_not_{key} + {controls} | city_code + year", df)
        inside = effects.loc[(f"table7.{key}", key.upper())]
        outside = effects.loc[(f"table7.{key}", f"not {key.upper()}")]
        assert inside.coef == pytest.approx(theirs.coef()[f"did_{key}"], abs=COEF_TOL)
        assert inside.se == pytest.approx(theirs.se()[f"did_{key}"], rel=SE_RTOL)
        assert outside.coef == pytest.approx(theirs.coef()[f"did_not_{key}"], abs=COEF_TOL)
        assert outside.se == pytest.approx(theirs.se()[f"did_not_{key}"], rel=SE_RTOL)


def test_estimates_cover_the_generators_truth_where_inference_is_reliable(published):
    home, _, tables, panel = published
    truth = json.loads((home.landing / "ground_truth.json").read_text(encoding="utf-8"))
    for m in tables.table(5):
        low, high = m.result.conf_int.loc["did"]
        assert low <= truth["att"]["mechanisms"][m.result.depvar] <= high, m.model_id
    rows = het.truth_rows(tables, truth)
    # the true group effects, recomputed by hand from ground_truth.json and the panel's flags
    by = truth["index"]["by_city_year"]
    effect = {(c, y): f - cf for c, fs, cfs in zip(by["city_codes"], by["factual"], by["counterfactual"])
              for y, f, cf in zip(by["years"], fs, cfs)}
    pilots = panel[panel.did == 1]
    for row in rows:
        if row["table"] == "table6":
            members = pilots[pilots.size_tier_group == next(t for t in het.TIERS
                                                              if het.TIER_LABELS[t] == row["group"])]
        else:
            flag = {"dig": pilots.egov_pilot.fillna(False).astype(int),
                    "ipp": pilots.ip_city_post.fillna(0).astype(int)}[row["table"].split(".")[1]]
            members = pilots[flag == int(not row["group"].startswith("not "))]
        by_hand = np.mean([effect[(c, int(y))] for c, y in zip(members.city_code, members.year)])
        assert row["true_effect"] == pytest.approx(by_hand, abs=5e-6)
        assert row["pilot_cities"] == members.city_code.nunique()
        if row["inference"] == "reliable":
            assert row["covered"], row
    # the study's one-term columns are biased by construction: other tiers' pilots are controls
    assert {r["group"] for r in rows if r["inference"] != "reliable"} == {"Extra-large"}


def test_tables_5_to_7_are_published_and_reported(published):
    home, con, tables, _ = published
    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    ids = {r[0] for r in con.execute("select distinct model_id from main.estimates where vintage = ? "
                                     "and model_id like 'resilience.table%'", [vintage]).fetchall()}
    assert ids == {m.model_id for m in tables.models}
    (coef,) = con.execute("select coef from main.estimates where model_id = 'resilience.table6.all' "
                          "and term = 'did_megacity' and vintage = ?", [vintage]).fetchone()
    assert coef == pytest.approx(float(tables.table(6)[-1].result.coef["did_megacity"]), rel=1e-9)
    folder = next(home.reports.glob("*/report.md")).parent
    text = (folder / "report.md").read_text(encoding="utf-8")
    for title in ("Mechanisms (the resilience study's Table 5)", "City size (the resilience study's Table 6)",
                  "Institutions: DIG and IPP (the resilience study's Table 7)"):
        assert title in text
    assert "table6_city_size.png" in text and (folder / "table7_institutions.png").exists()
