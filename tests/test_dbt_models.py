"""The dbt project on the sample: indices, weights and harmonisation options,
each checked against an independent computation (numpy, pandas, pyfixest) or the generator's truth.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from warehouse.dbt_runner import PARSE_STATE, dbt_env, run_dbt
from warehouse.ingest import ingest_landing
from warehouse.paths import DBT_PROJECT_DIR
from warehouse.publish import connect_for_write
from warehouse.sample import write_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt")
    write_sample(root / "landing", firm_scale=0.02)
    database = root / "warehouse.duckdb"
    with connect_for_write(database) as con:
        summary = ingest_landing(con, root / "landing", root / "archive")
    assert not summary.failed
    result = run_dbt(["build"], database, root / "dbt", vars_={"vintage": "test"})
    assert result.success, result.failures or result.log_tail
    truth = json.loads((root / "landing" / "ground_truth.json").read_text(encoding="utf-8"))
    return root, database, truth


def frame(database: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).df()


def dbt_show(database: Path, work: Path, sql: str) -> pd.DataFrame:
    """Run inline SQL (macros allowed) through `dbt show` and return all rows."""
    import subprocess
    import sys

    env = dbt_env(database, work)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "show", "--inline", sql, "--limit", "-1",
         "--output", "json", "--log-format", "json"],
        env=env, cwd=DBT_PROJECT_DIR, capture_output=True, text=True,
    )
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        if "preview" in event.get("data", {}):
            return pd.DataFrame(json.loads(event["data"]["preview"]))
    raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])


def numpy_entropy(wide: pd.DataFrame, directions: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Weights and scores of the entropy method, written independently of the SQL."""
    x = wide.to_numpy(dtype=float)
    lo, hi = x.min(axis=0), x.max(axis=0)
    negative = np.array([directions[c] == "negative" for c in wide.columns])
    normalised = np.where(negative, (hi - x) / (hi - lo), (x - lo) / (hi - lo))
    p = normalised / normalised.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -plogp.sum(axis=0) / np.log(x.shape[0])
    weights = (1 - entropy) / (1 - entropy).sum()
    return weights, normalised @ weights


def index_inputs(database: Path, index_name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    inputs = frame(database, f"""
        select indicator, direction, city_code, year, value
        from intermediate.int_index_inputs where index_name = '{index_name}'""")
    wide = inputs.pivot(index=["city_code", "year"], columns="indicator", values="value").sort_index()
    return wide, dict(zip(inputs["indicator"], inputs["direction"]))


def test_every_truth_city_year_appears_exactly_once(built):
    _, database, truth = built
    first, last = truth["years"]["panel"]
    expected = {(c, y) for c in truth["panel"]["city_codes"] for y in range(first, last + 1)}
    panel = frame(database, "select city_code, year from analysis_panel")
    assert len(panel) == len(expected) == truth["panel"]["n_city_years"]
    assert set(zip(panel["city_code"], panel["year"])) == expected


def test_firm_entry_is_the_generators_counts_and_the_row_by_row_grouping(built):
    from warehouse.sample.generate import DEFAULT_SEED, simulate

    _, database, _ = built
    entry = frame(database, """
        select city_code, year, new_firms, new_digital_firms from intermediate.int_firm_entry
        order by city_code, year""")
    row_by_row = frame(database, """
        select city_code, registration_year as year, count(*) as new_firms,
               count(*) filter (where is_digital) as new_digital_firms
        from intermediate.int_enterprise_registrations
        where city_code is not null and registration_year is not null
        group by all order by city_code, year""")
    pd.testing.assert_frame_equal(entry, row_by_row)

    s = simulate(DEFAULT_SEED, firm_scale=0.02)
    every = s.firms.digital + s.firms.other
    expected = sorted((s.cities.code[i], int(year), int(every[i, t]), int(s.firms.digital[i, t]))
                      for i in range(s.cities.n) for t, year in enumerate(s.years) if every[i, t] > 0)
    assert list(entry.itertuples(index=False, name=None)) == expected


@pytest.mark.parametrize("index_name, mart, score", [
    ("resilience", "resilience_index", "res"),
    ("nqp", "nqp_index", "nqp"),
    ("nqp_hierarchical", "nqp_hierarchical_index", "nqp_h"),
])
def test_panel_scope_weights_and_scores_match_numpy(built, index_name, mart, score):
    _, database, _ = built
    wide, directions = index_inputs(database, index_name)
    weights, scores = numpy_entropy(wide, directions)
    stored = frame(database, f"""select indicator, weight from index_weights
        where index_name = '{index_name}' and scope = 'panel'""").set_index("indicator").loc[wide.columns]
    np.testing.assert_allclose(stored["weight"].to_numpy(), weights, rtol=0, atol=1e-12)
    index = frame(database, f"select city_code, year, {score} from {mart}").set_index(["city_code", "year"])
    np.testing.assert_allclose(index.loc[wide.index, score].to_numpy(), scores, rtol=0, atol=1e-12)


def test_nqp_negative_indicators_lower_the_score(built):
    _, database, _ = built
    stored = frame(database, """select indicator, direction from index_weights
        where index_name = 'nqp' and scope = 'panel'""")
    assert set(stored.loc[stored["direction"] == "negative", "indicator"]) == {"energy_intensity", "so2_intensity"}
    # A city-year at the panel maximum of a negative indicator has normalised value 0.
    top = frame(database, """select normalised from intermediate.int_index_normalised
        where scope = 'panel' and index_name = 'nqp' and indicator = 'so2_intensity'
        and value = max_value""")
    assert (top["normalised"] == 0).all()


def test_year_scope_weights_match_numpy_year_by_year(built):
    _, database, _ = built
    for index_name in ("resilience", "nqp"):
        wide, directions = index_inputs(database, index_name)
        stored = frame(database, f"""select weight_year, indicator, weight from index_weights
            where index_name = '{index_name}' and scope = 'year'""")
        for year, rows in wide.groupby(level="year"):
            weights, _ = numpy_entropy(rows, directions)
            got = stored[stored["weight_year"] == year].set_index("indicator").loc[wide.columns, "weight"]
            np.testing.assert_allclose(got.to_numpy(), weights, rtol=0, atol=1e-12)


def test_every_level_of_a_hierarchical_index_adds_up_to_the_index(built):
    _, database, _ = built
    scores = frame(database, "select index_name, level, city_code, year, score from index_scores")
    totals = scores[scores["level"] == "index"].set_index(["index_name", "city_code", "year"])["score"]
    sums = scores[scores["level"] != "index"].groupby(["index_name", "level", "city_code", "year"])["score"].sum()
    for (index_name, level), part in sums.groupby(level=["index_name", "level"]):
        part = part.droplevel("level")
        np.testing.assert_allclose(part.to_numpy(), totals.loc[part.index].to_numpy(), rtol=0, atol=1e-12)
    levels = set(scores.loc[scores["index_name"] == "nqp_hierarchical", "level"])
    assert levels == {"index", "criterion", "dimension", "sub_dimension"}


def test_sensitivity_index_follows_martin_sunley(built):
    _, database, _ = built
    panel = frame(database, """select city_code, year, gdp, pop_total, national_gdp_per_capita
        from intermediate.int_city_year_panel order by city_code, year""")
    panel["gdppc"] = panel["gdp"] / panel["pop_total"]
    panel["g"] = panel.groupby("city_code")["gdppc"].pct_change()
    national = panel.drop_duplicates("year").set_index("year")["national_gdp_per_capita"].sort_index()
    panel["g_n"] = panel["year"].map(national.pct_change())
    panel["r"] = (panel["g"] - panel["g_n"]) / panel["g_n"].abs()
    got = frame(database, "select city_code, year, sensitivity from economic_resilience_sensitivity")
    merged = got.merge(panel, on=["city_code", "year"])
    assert len(merged) == len(got) == 287 * 12
    np.testing.assert_allclose(merged["sensitivity"], merged["r"], rtol=1e-10, atol=1e-12)


def test_winsorize_macro_clips_at_the_quantiles(built):
    root, database, _ = built
    got = dbt_show(database, root / "dbt_show_w", """
        select city_code, year, eocden, {{ winsorize('eocden') }} as w from analysis_panel
    """)
    lo, hi = np.quantile(got["eocden"], [0.01, 0.99])
    np.testing.assert_allclose(got["w"], np.clip(got["eocden"], lo, hi), rtol=0, atol=1e-12)
    assert (got["w"] != got["eocden"]).sum() >= 2 * int(0.01 * len(got)) - 2


def test_current_boundaries_adds_laiwu_to_jinan_before_the_merger(built):
    root, database, _ = built
    copy = root / "boundaries.duckdb"
    shutil.copy(database, copy)
    result = run_dbt(["run", "--select", "int_city_year_spine", "int_city_year_values_reported"], copy,
                     root / "dbt_boundaries",
                     vars_={"boundary_policy": "current_boundaries", "panel_universe": "all"})
    assert result.success, result.failures or result.log_tail
    reported = frame(copy, """select city_code, year, variable, value from intermediate.int_city_yearbook_values
        where city_code in ('370100', '371200') and year = 2015 and variable in ('gdp', 'avg_wage', 'emp_total')""")
    r = reported.pivot(index="variable", columns="city_code", values="value")
    harmonised = frame(copy, """select variable, value, is_aggregated from intermediate.int_city_year_values_reported
        where year = 2015 and city_code in ('370100', '371200')""").set_index("variable")
    assert harmonised.loc["gdp", "value"] == pytest.approx(r.loc["gdp"].sum(), rel=1e-12)
    expected_wage = (r.loc["avg_wage"] * r.loc["emp_total"]).sum() / r.loc["emp_total"].sum()
    assert harmonised.loc["avg_wage", "value"] == pytest.approx(expected_wage, rel=1e-12)
    assert harmonised["is_aggregated"].all() and len(harmonised) == len(harmonised.index.unique())
    after = frame(copy, """select count(*) as n from intermediate.int_city_year_values_reported
        where city_code = '371200'""")["n"].iloc[0]
    assert after == 0  # Laiwu no longer appears on its own


def test_policy_panel_event_time_binned_at_the_window(built):
    _, database, _ = built
    panel = frame(database, """select event_time, event_time_binned from policy_panel
        where policy = 'big_data_pilot_zone' and treat""")
    expected = panel["event_time"].clip(-4, 7)
    assert (panel["event_time_binned"] == expected).all()
    assert panel["event_time"].min() == 2012 - 2016 and panel["event_time"].max() == 2023 - 2016


def test_coverage_summary_counts_imputed_cells_and_name_matches(built):
    from warehouse.coverage import coverage_summary

    root, database, _ = built
    summary = coverage_summary(database)
    long = frame(database, """select coverage from intermediate.int_city_year_values_long
        where year between 2012 and 2023""")
    assert summary.cells == long["coverage"].value_counts().to_dict()
    assert 0 < summary.imputed_share < 0.02
    by_type = {(r["source"], r["match_type"]): r["names"] for r in summary.resolved_names}
    # The 2016 and 2020 yearbooks print names without 市; 2014 has traditional characters.
    assert by_type[("city_yearbook", "short_name_no_suffix")] > 0
    assert by_type[("city_yearbook", "traditional_chars")] > 0
    assert sum(r["needed_province"] for r in summary.resolved_names if r["source"] == "patents") > 0


def test_dbt_docs_generate_describes_every_mart_column(built):
    root, database, _ = built
    result = run_dbt(["docs", "generate"], database, root / "dbt_docs")
    assert result.success, result.log_tail
    catalog = json.loads((root / "dbt_docs" / "target" / "catalog.json").read_text())
    manifest = json.loads((root / "dbt_docs" / "target" / "manifest.json").read_text())
    marts = [n for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["fqn"][1] == "marts"]
    assert len(marts) >= 9
    for node in marts:
        assert node["config"]["contract"]["enforced"], node["name"]
        built_columns = set(catalog["nodes"][node["unique_id"]]["columns"])
        described = {c for c, spec in node["columns"].items() if spec.get("description")}
        assert built_columns == described, node["name"]


def test_every_models_descriptions_are_duckdb_comments(built):
    """The on-run-end hook (macros/persist_descriptions.sql) writes each model's YAML description
    on its relation and on each of its columns that exists, as dbt's persist_docs would."""
    root, database, _ = built
    manifest = json.loads((root / "dbt" / "target" / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    with duckdb.connect(str(database), read_only=True) as con:
        relation_comment = {(s, t): c for s, t, c in con.execute(
            "select schema_name, table_name, comment from duckdb_tables() "
            "union all select schema_name, view_name, comment from duckdb_views()").fetchall()}
        column_comment = {(s, t, n): c for s, t, n, c in con.execute(
            "select schema_name, table_name, column_name, comment from duckdb_columns()").fetchall()}
    described = 0
    for node in models:
        key = (node["schema"], node["alias"])
        assert key in relation_comment, key
        assert relation_comment[key] == (node["description"] or None), key
        for name, spec in node["columns"].items():
            if spec.get("description") and (*key, name) in column_comment:
                assert column_comment[(*key, name)] == spec["description"], (key, name)
                described += 1
        undocumented = {c for (s, t, c), v in column_comment.items() if (s, t) == key and v is not None}
        assert undocumented <= {c for c, spec in node["columns"].items() if spec.get("description")}, key
    assert len(models) >= 50 and described >= 200


def test_city_size_tiers_follow_the_2014_standard_as_the_generator_assigned_them(built):
    _, database, truth = built
    tiers = frame(database, "select distinct city_code, size_tier, size_tier_group from analysis_panel")
    # The generator's names for the warehouse's tiers (it does not split small cities).
    generator_name = {"megacity": "megacity", "extra_large": "extra_large", "large_i": "large_I",
                      "large_ii": "large_II", "medium": "medium", "small_i": "small", "small_ii": "small"}
    expected = {code: tier for tier, codes in truth["city_size_tiers"].items() for code in codes}
    got = {row.city_code: generator_name[row.size_tier] for row in tiers.itertuples()}
    assert len(got) == 287 and got == {c: expected[c] for c in got}


def test_node_weights_are_the_sums_of_their_indicator_weights(built):
    _, database, _ = built
    weights = frame(database, """select index_name, scope, weight_year, criterion, dimension, sub_dimension, weight
        from index_weights where index_name = 'nqp_hierarchical' and scope = 'panel'""")
    nodes = frame(database, """select level, node, weight from index_node_weights
        where index_name = 'nqp_hierarchical' and scope = 'panel'""").set_index(["level", "node"])["weight"]
    for level in ("criterion", "dimension", "sub_dimension"):
        expected = weights.groupby(level)["weight"].sum()
        got = nodes.loc[level].loc[expected.index]
        assert got.to_numpy() == pytest.approx(expected.to_numpy(), abs=1e-12)
        assert got.sum() == pytest.approx(1.0, abs=1e-12)


def test_a_build_from_the_saved_parse_writes_its_own_vintage(built):
    """The parse kept from one refresh to the next (PARSE_STATE) must not keep the old vintage:
    it reaches the models through the environment, so each run writes its own."""
    root, database, _ = built
    copy = root / "vintages.duckdb"
    shutil.copy(database, copy)
    cache = root / "dbt_vintages" / PARSE_STATE
    for vintage in ("first", "second"):
        result = run_dbt(["run", "--select", "policy_panel"], copy, root / "dbt_vintages" / vintage,
                         vars_={"vintage": vintage}, parse_cache=cache)
        assert result.success, result.failures or result.log_tail
        assert cache.is_file()
        got = frame(copy, "select distinct vintage from policy_panel")["vintage"].tolist()
        assert got == [vintage]
    log = (root / "dbt_vintages" / "second" / "logs" / "dbt.log").read_text(encoding="utf-8")
    assert "Unable to do partial parsing" not in log  # the second run started from the first's parse


def test_a_prepared_dbt_process_builds_what_run_dbt_builds_and_reports_failures_alike(built):
    """PreparedDbt (imported and parsed ahead of time, as a refresh starts it during ingest)
    gives what a `dbt` subprocess gives: the same models, the same failures, the file freed."""
    from warehouse.dbt_runner import PreparedDbt

    root, database, _ = built
    select = ["run", "--select", "int_city_year_spine", "policy_panel"]
    a, b = root / "prepared_a.duckdb", root / "prepared_b.duckdb"
    shutil.copy(database, a)
    shutil.copy(database, b)
    prepared = PreparedDbt(a, root / "dbt_prepared", vars_={"vintage": "test"})
    process = prepared._process
    ours = prepared.run(select)
    # it closed the warehouse before leaving (without the interpreter's teardown): all in the file
    assert process.exitcode == 0 and not a.with_name(a.name + ".wal").exists()
    theirs = run_dbt(select, b, root / "dbt_subprocess", vars_={"vintage": "test"})
    assert ours.success and theirs.success, ours.log_tail
    assert "Completed successfully" in ours.log_tail
    sql = "select * from policy_panel order by all"
    pd.testing.assert_frame_equal(frame(a, sql), frame(b, sql))
    with connect_for_write(a):  # the prepared process has exited: the file is free for writing
        pass
    # used once: a second command runs as a plain subprocess
    assert prepared.run(["run", "--select", "int_city_year_spine"]).success

    # a failing model: the same failure in words either way
    with connect_for_write(a) as con, connect_for_write(b) as con_b:
        for c in (con, con_b):
            c.execute("drop view if exists staging.stg_raw__city_cells")
            c.execute("create schema if not exists raw; drop table if exists raw.city_cells")
    failing = ["run", "--select", "stg_raw__city_cells+", "--exclude", "resource_type:test"]
    ours = PreparedDbt(a, root / "dbt_prepared_fail", vars_={"vintage": "test"}).run(failing)
    theirs = run_dbt(failing, b, root / "dbt_subprocess_fail", vars_={"vintage": "test"})
    assert not ours.success and not theirs.success
    assert [f["unique_id"] for f in ours.failures] == [f["unique_id"] for f in theirs.failures]
    assert ours.failures


def test_a_prepared_dbt_process_that_is_never_used_stops(tmp_path):
    from warehouse.dbt_runner import PreparedDbt

    prepared = PreparedDbt(tmp_path / "unused.duckdb", tmp_path / "dbt", vars_={"vintage": "test"})
    process = prepared._process
    prepared.close()
    assert not process.is_alive()
