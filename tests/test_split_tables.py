"""The split-sample tables (the NQP study's Table 6, the NQP -> resilience study's Table 6) with
their difference tests, against pyfixest and pandas on the published sample; and the NQP ->
resilience study's Tables 3, 5, 7 and the mediation tables as published."""
from __future__ import annotations


import duckdb
import numpy as np
import pytest
from oracles import COEF_TOL, SE_RTOL, pf_crv1

from estimation.studies import nqp, nqp_resilience
from estimation.studies.common import PANEL


_pf = pf_crv1


@pytest.fixture(scope="module")
def published(published_sample):
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    panel = con.execute(f"select * from {PANEL}").df()
    yield published_sample, con, panel
    con.close()


def test_nqp_table6_columns_and_differences(published):
    _, con, panel = published
    table = nqp.run_table6(con)
    groups = {"key_city": "is_key_city", "resource": "is_resource_based"}
    for split in table.splits:
        coefs = []
        for level, result in zip(split.spec.levels, split.results):
            theirs = _pf(table.formula, panel[panel[groups[split.spec.key]] == level])
            assert result.coef["did"] == pytest.approx(theirs.coef()["did"], abs=COEF_TOL)
            assert result.se["did"] == pytest.approx(theirs.se()["did"], rel=SE_RTOL)
            coefs.append(theirs.coef()["did"])
        assert split.difference.difference == pytest.approx(coefs[1] - coefs[0], abs=COEF_TOL)
        perm = split.permutation
        assert perm.method == "sql" and perm.n_draws == 1000
        hits = int(np.sum(np.abs(perm.draws[np.isfinite(perm.draws)]) >= abs(perm.observed) * (1 - 1e-9)))
        assert perm.p_value_plus1 == pytest.approx((1 + hits) / (1 + perm.n_valid), rel=1e-12)
    text = table.render("markdown")
    assert "p, permutation (1,000 draws)" in text and "Difference (second - first)" in text


def test_nqp_resilience_st_split_is_the_median_of_city_means(published):
    _, con, panel = published
    means = panel.groupby("city_code")["sci_expenditure_share"].mean()
    high = set(means[means > means.median()].index)
    got = dict(con.execute(f"select distinct city_code, st_spending from ({nqp_resilience.split_relation()})")
               .fetchall())
    assert {c for c, v in got.items() if v == "high"} == high
    assert len(got) == panel.city_code.nunique()


def test_nqp_resilience_tables_are_published_and_reported(published):
    home, con, panel = published
    (vintage,) = con.execute("select distinct vintage from main.descriptives").fetchone()
    ids = {r[0] for r in con.execute("select distinct model_id from main.estimates where vintage = ?",
                                     [vintage]).fetchall()}
    expected = {f"nqp_resilience.table3.col{i}" for i in range(1, 6)} | {
        "nqp_resilience.table5.to_2019", "nqp_resilience.table5.excl_municipalities", "nqp_resilience.table5.winsorised",
        "nqp_resilience.table7.di", "nqp_resilience.table7.ia", "nqp_resilience.table7.hum",
        "nqp_resilience.table6.st_spending.low_s_t", "nqp_resilience.table6.hu_line.eastern",
        "nqp.table6.key_city.key_cities", "nqp.table6.resource.resource_based",
        "nqp.table5.log_green_patent_applications.step1", "nqp.table5.log_green_patent_applications.step2",
        "nqp_resilience.table7.di.mediation.total"}
    assert expected <= ids, expected - ids
    tests = dict(con.execute("select test, statistic from main.model_tests where vintage = ? "
                             "and model_id = 'nqp.table6.resource'", [vintage]).fetchall())
    assert set(tests) == {"difference", "difference_se", "permutation_p"}
    # Table 3, column (5) equals pyfixest on the panel
    (coef,) = con.execute("select coef from main.estimates where vintage = ? and model_id = "
                          "'nqp_resilience.table3.col5' and term = 'nqp_h'", [vintage]).fetchone()
    theirs = _pf(nqp_resilience.run_table3(con).formulas[-1], panel)
    assert coef == pytest.approx(theirs.coef()["nqp_h"], abs=COEF_TOL)
    text = next(home.reports.glob("*/report.md")).read_text(encoding="utf-8")
    for title in ("The NQP study's Table 5: two-step mediation", "The NQP study's Table 6",
                  "The NQP → resilience study's Table 3", "The NQP → resilience study's Table 6",
                  "The NQP → resilience study's Table 7"):
        assert title in text
    assert "nqp_table6.png" in text and "nqp_resilience_table6.png" in text
