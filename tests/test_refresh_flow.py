"""A whole refresh on the sample, through the Prefect flow: what gets published and what does not.

One Prefect test harness for the module; the sample uses the default seed with few firms so the
module stays quick. Values are checked against independent computations (numpy, pyfixest) and
against the sample generator's ground truth.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from wap_fixtures import published_data_digest

from estimation.studies.resilience import robustness_checks
from warehouse.paths import Home
from warehouse.sample import write_sample

pytestmark = pytest.mark.slow
FIRM_SCALE = 0.02


@pytest.fixture(scope="module")
def published(tmp_path_factory, prefect_harness):
    from flows.refresh import refresh

    home = Home(tmp_path_factory.mktemp("home")).ensure()
    write_sample(home.landing, firm_scale=FIRM_SCALE)
    result = refresh(home_dir=str(home.root))
    assert result["status"] == "published", result
    truth = json.loads((home.landing / "ground_truth.json").read_text(encoding="utf-8"))
    return home, result, truth


def query(home: Home, sql: str, params=None) -> pd.DataFrame:
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        return con.execute(sql, params or []).df()


def test_every_panel_city_year_appears_once(published):
    home, _, truth = published
    index = query(home, "select city_code, year, res from resilience_index")
    assert not index.duplicated(["city_code", "year"]).any()
    assert index["res"].notna().all() and index["res"].between(0, 1).all()
    first, last = truth["years"]["panel"] if "panel" in truth.get("years", {}) else (2012, 2023)
    assert set(index["year"]) == set(range(first, last + 1))
    assert index["city_code"].nunique() == 287
    assert len(index) == 287 * (last - first + 1)


def test_entropy_weights_and_index_match_numpy(published):
    home, _, _ = published
    inputs = query(home, """
        select indicator, dimension, direction, city_code, year, value
        from intermediate.int_index_inputs where index_name = 'resilience'""")
    wide = inputs.pivot(index=["city_code", "year"], columns="indicator", values="value").sort_index()
    x = wide.to_numpy()
    lo, hi = x.min(axis=0), x.max(axis=0)
    normalised = (x - lo) / (hi - lo)
    p = normalised / normalised.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -plogp.sum(axis=0) / np.log(x.shape[0])
    weights = (1 - entropy) / (1 - entropy).sum()
    score = normalised @ weights

    stored = query(home, "select indicator, weight, entropy from index_weights where index_name = 'resilience' and scope = 'panel'")
    stored = stored.set_index("indicator").loc[wide.columns]
    np.testing.assert_allclose(stored["weight"].to_numpy(), weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stored["entropy"].to_numpy(), entropy, rtol=0, atol=1e-12)
    index = query(home, "select city_code, year, res from resilience_index").set_index(["city_code", "year"])
    np.testing.assert_allclose(index.loc[wide.index, "res"].to_numpy(), score, rtol=0, atol=1e-12)
    assert abs(stored["weight"].sum() - 1) < 1e-12


def test_index_is_right_skewed_like_the_study(published):
    home, _, _ = published
    res = query(home, "select res from resilience_index")["res"]
    assert 0.04 <= res.mean() <= 0.12
    assert res.max() >= 5 * res.mean()


def test_baseline_matches_pyfixest_and_covers_the_true_att(published):
    import pyfixest as pf

    from estimation.studies import resilience

    home, _, truth = published
    panel = query(home, "select * from analysis_panel")
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        specs, results = resilience.run_table3(con)
    for spec, ours in zip(specs, results):
        ref = pf.feols(spec.formula, data=panel, vcov={"CRV1": "city_code"}, fixef_tol=1e-12)
        ref_coef, ref_se = ref.coef(), ref.se()
        for term in ref_coef.index:
            assert ours.coef[term] == pytest.approx(ref_coef[term], rel=1e-8, abs=1e-10), (spec.model_id, term)
            assert ours.se[term] == pytest.approx(ref_se[term], rel=1e-6), (spec.model_id, term)
    low, high = results[3].conf_int.loc["did"]
    att = truth["att"]["resilience_index"]
    assert low <= att <= high, (att, low, high)
    assert results[3].coef["did"] > 0


def test_estimates_validation_and_provenance_are_published(published):
    home, result, _ = published
    estimates = query(home, "select model_id, term, coef, se, vintage, synthetic from estimates")
    named = ({f"table3_col{i}" for i in range(1, 5)} | {f"nqp_table3_col{i}" for i in range(1, 5)}
             | {"event_study", "placebo", "table4_first_stage", "table4_2sls", "table4_psm_nearest",
                "nqp_res_table4_first_stage", "nqp_res_table4_2sls"}
             | {model_id for model_id, *_ in robustness_checks()})
    # the tables of the studies' further analyses: study.table.<model>
    tables = ("nqp_robust_", "resilience.table5.", "resilience.table6.", "resilience.table7.", "nqp.table5.",
              "nqp.table6.", "nqp_resilience.table3.", "nqp_resilience.table5.", "nqp_resilience.table6.",
              "nqp_resilience.table7.", "modern_did.")
    ids = set(estimates["model_id"])
    assert named <= ids
    assert {m for m in ids - named if not m.startswith(tables)} == set()
    assert all(any(m.startswith(t) for m in ids) for t in tables)
    draws = query(home, "select count(*) as n, count(distinct draw) as d from placebo_draws")
    assert draws["n"].iloc[0] == draws["d"].iloc[0] == 500
    assert (estimates["vintage"] == result["vintage"]).all() and estimates["synthetic"].all()
    checks = query(home, "select severity, success from validation_results")
    assert len(checks) >= 8 and checks["success"].all()
    provenance = query(home, "select synthetic, ground_truth_json from data_provenance")
    assert provenance["synthetic"].all()
    manifest = query(home, "select source, status, count(*) n from raw.load_manifest group by all")
    assert set(manifest["status"]) == {"loaded"}
    assert set(manifest["source"]) == {"city_yearbook", "national", "patents", "enterprises", "historical",
                                       "digital_finance"}


def test_report_says_synthetic_and_shows_tables_and_figures(published):
    _, result, _ = published
    path = Path(result["report"])
    report = path.read_text(encoding="utf-8")
    assert "SYNTHETIC" in report
    assert "Ten most resilient cities" in report and "Table 3" in report
    assert "covers the truth" in report
    assert "## Event study" in report and "Joint pre-trend test" in report
    assert "## Placebo test (500 random adoption assignments)" in report
    for figure in ("event_study.png", "placebo.png"):
        assert f"]({figure})" in report and (path.parent / figure).read_bytes()[:4] == b"\x89PNG"
    assert "## City names resolved" in report and "imputed share" in report


def test_refresh_without_new_files_changes_nothing(published):
    from flows.refresh import refresh

    home, _, _ = published
    before = hashlib.sha256(home.warehouse_db.read_bytes()).hexdigest()
    result = refresh(home_dir=str(home.root))
    assert result["status"] == "unchanged"
    assert hashlib.sha256(home.warehouse_db.read_bytes()).hexdigest() == before


def test_a_file_with_an_unknown_city_is_refused_and_nothing_is_published(published, tmp_path):
    from flows.refresh import refresh

    home, _, _ = published
    before = published_data_digest(home.warehouse_db)
    bad = home.landing / "historical" / "telephones_1984_extra.csv"
    bad.write_text("城市,每百人固定电话数(部)\n石家庄市,1.2\n乌托邦市,0.5\n", encoding="utf-8")
    try:
        result = refresh(home_dir=str(home.root))
    finally:
        bad.unlink()
    assert result["status"] == "refused"
    (failed,) = result["files_failed"]
    assert "historical/telephones_1984_extra.csv row 3" in failed["error"] and "乌托邦市" in failed["error"]
    assert published_data_digest(home.warehouse_db) == before  # the manifest alone records the refusal
    report = Path(result["report"]).read_text(encoding="utf-8")
    assert "乌托邦市" in report


def test_cli_query_answers_from_the_published_warehouse(published):
    from typer.testing import CliRunner

    from flows.cli import app

    home, _, _ = published
    sql = "select city_name, year, res from resilience_index order by res desc limit 5"
    result = CliRunner().invoke(app, ["query", sql, "--home", str(home.root), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    expected = query(home, sql)
    assert [r["city_name"] for r in rows] == expected["city_name"].tolist()
    assert [r["res"] for r in rows] == pytest.approx(expected["res"].tolist(), abs=1e-12)


def test_the_studies_ran_as_concurrent_tasks_of_an_estimation_subflow(published, prefect_harness):
    import asyncio

    from prefect.client.orchestration import get_client

    async def study_runs():
        async with get_client() as client:
            flows = await client.read_flows()
            estimation = next(f for f in flows if f.name == "estimation")
            runs = await client.read_flow_runs()
            sub = [r for r in runs if r.flow_id == estimation.id]
            tasks = await client.read_task_runs()
            return sub, [t for t in tasks if t.flow_run_id in {r.id for r in sub}]

    subflows, tasks = asyncio.run(study_runs())
    assert subflows and all(r.state.is_completed() for r in subflows)
    names = {t.name for t in tasks}
    assert {"estimate: baseline", "estimate: event_study", "estimate: placebo",
            "estimate: nqp_baseline"} <= names
    starts = sorted(t.start_time for t in tasks if t.name.startswith("estimate: ") and t.start_time)
    ends = sorted(t.end_time for t in tasks if t.name.startswith("estimate: ") and t.end_time)
    assert starts[1] < ends[0]  # at least two studies overlapped in time
