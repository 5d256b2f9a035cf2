"""The NQP study against the generator's ground truth: the numpy NQP index equals the warehouse's,
the mediator path through green patent applications adds up, and on the sample the estimates the
design supports cover the truth (the study's column 4 carries a bad control and is said to)."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from estimation.studies import nqp
from estimation.studies.common import PANEL
from warehouse.sample import generate, nqp_truth


@pytest.fixture(scope="module")
def sample():
    return generate.simulate()


def test_the_mediator_path_adds_up_and_is_the_green_channel(sample):
    t = sample.truth["nqp"]
    path = t["mediation_green_patents"]
    assert path["nie"] + path["nde"] == pytest.approx(path["total"], rel=1e-12)
    assert path["total"] == t["att"]
    assert path["a"] > 0 and path["nie"] > 0
    # by hand: the NIE is NQP(factual) - NQP(factual with invention grants minus the green path)
    rows, T = sample.panel.city_index, len(sample.panel.years)
    cols = slice(len(sample.years) - T, None)
    f = {v: a[rows][:, cols] for v, a in sample.latent.factual.items()}
    c = {v: a[rows][:, cols] for v, a in sample.latent.counterfactual.items()}
    from warehouse.sample.dgp import GREEN_TO_INVENTION

    held = dict(f, invention_patents_granted=f["invention_patents_granted"]
                - GREEN_TO_INVENTION * (f["green_patent_applications"] - c["green_patent_applications"]))
    y1, yh = nqp_truth.scores(nqp_truth.indicators(f), nqp_truth.indicators(held))
    treated = sample.design.treated[rows][:, None] & (sample.panel.years >= sample.design.adoption_year)[None, :]
    assert (y1 - yh)[treated].mean() == pytest.approx(path["nie"], rel=1e-12)
    # the resilience index does not use invention grants: its truth is untouched by the path
    assert "invention_patents_granted" not in sample.truth["index"]["indicators"]


@pytest.fixture(scope="module")
def published(published_sample):
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    truth = json.loads((published_sample.landing / "ground_truth.json").read_text(encoding="utf-8"))
    yield published_sample, con, truth
    con.close()


def test_the_numpy_nqp_index_is_the_warehouses(published, sample):
    """Same definition, the files' rounding apart."""
    _, con, _ = published
    rows, T = sample.panel.city_index, len(sample.panel.years)
    cols = slice(len(sample.years) - T, None)
    (y1,) = nqp_truth.scores(nqp_truth.indicators({v: a[rows][:, cols] for v, a in sample.latent.factual.items()}))
    ours = pd.DataFrame(y1, index=sample.cities.code[rows], columns=sample.panel.years).stack().rename("truth")
    theirs = con.execute("select city_code, year, nqp from main.nqp_index").df().set_index(["city_code", "year"])
    both = pd.concat([ours, theirs["nqp"]], axis=1, join="inner")
    assert len(both) == len(ours)
    gap = (both["truth"] - both["nqp"]).abs()
    assert gap.mean() < 1e-4 and gap.max() < 5e-3 and np.corrcoef(both["truth"], both["nqp"])[0, 1] > 0.99999


def test_nqp_estimates_against_the_truth(published):
    home, con, truth = published
    specs, results = nqp.run_table3(con)
    att = truth["nqp"]["att"]
    assert [s.model_id for s in specs][1] == "nqp_table3_col2" and specs[1].fixed_effects and not specs[1].has_controls
    low, high = results[1].conf_int.loc["did"]
    assert low <= att <= high  # column (2): city and year FE, no controls
    # the study's controls include Str and Fin, which the policy moves: column (4) lies below the truth
    assert results[3].coef["did"] < att
    table5 = nqp.run_table5(con)
    assert table5.missing == []
    for mediator, key in nqp.MEDIATOR_TRUTH.items():
        med, path = table5.results[mediator], truth["nqp"][key]
        assert med.boot_ci[0] <= path["nie"] <= med.boot_ci[1], mediator
    green = table5.results["log_green_patent_applications"]
    assert abs(green.a - truth["nqp"]["mediation_green_patents"]["a"]) <= 1.96 * green.se_a
    # digital finance: the policy's effect on it is recovered without the study's bad controls
    from estimation.engine.model import feols

    plain = feols(con, PANEL, "digital_finance ~ did | city_code + year", vcov={"CRV1": "city_code"})
    low, high = plain.conf_int.loc["did"]
    assert low <= truth["nqp"]["mediation_digital_finance"]["a"] <= high
    text = next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")
    assert "True ATT of the policy on NQP" in text and "bad controls" in text
    assert "true natural indirect effect" in text
