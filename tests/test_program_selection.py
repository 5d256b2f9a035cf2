"""cityres.toml [refresh] studies: a refresh runs the program's core studies and the optional ones
named ("all" by default); names are checked before anything runs."""
from __future__ import annotations

import duckdb
import pytest
from wap_fixtures import YEARBOOK_2022, CsvFile, copy_home

from estimation.studies.program import CORE, STUDIES, selected_studies
from warehouse.paths import Home
from warehouse.settings import OPTIONAL_STUDIES, check_config, load_refresh_settings


def test_the_settings_know_every_optional_study_of_the_program():
    assert list(CORE) + list(OPTIONAL_STUDIES) == list(STUDIES)
    assert selected_studies(None) == list(STUDIES)
    assert selected_studies(()) == list(CORE)
    assert selected_studies(("modern_did", "table2")) == [*CORE, "table2", "modern_did"]


def test_an_unknown_study_is_refused_in_words(tmp_path):
    home = Home(tmp_path).ensure()
    (home.root / "cityres.toml").write_text('[refresh]\nstudies = ["table3", "modern_did"]\n', encoding="utf-8")
    (problem,) = check_config(home)
    assert problem.startswith("cityres.toml: [refresh] studies: unknown 'table3'; known: table2, ")
    (home.root / "cityres.toml").write_text('[refresh]\nstudies = "some"\n', encoding="utf-8")
    assert check_config(home) == ['cityres.toml: [refresh] studies must be "all" or a list of study names, got \'some\'']
    (home.root / "cityres.toml").write_text('[refresh]\nstudies = "all"\n', encoding="utf-8")
    assert check_config(home) == [] and load_refresh_settings(home).studies is None


@pytest.mark.slow
def test_a_refresh_runs_only_the_studies_named(published_sample, tmp_path, prefect_harness):
    # prefect_harness: the flow's API, stopped with this module (without it Prefect would start a
    # server of its own and stop it at exit, logging to a stream pytest has closed by then)
    from flows.refresh import refresh

    home = copy_home(published_sample, tmp_path / "home", config='[refresh]\nstudies = ["wild_bootstrap"]\n')
    f = CsvFile.open(home.landing, YEARBOOK_2022)  # a corrected delivery: a new load
    row = f.rows[f.header_index + 1]
    column = next(j for j, v in enumerate(row) if j > 0 and v.replace(".", "").isdigit())
    row[column] = str(float(row[column]) * 1.001)
    f.save()
    result = refresh(home_dir=str(home.root))
    assert result["status"] == "published", result["reasons"]
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        models = {m for (m,) in con.execute("select distinct model_id from main.estimates where run_id = ?",
                                            [result["vintage"]]).fetchall()}
        tests = {t for (t,) in con.execute("select distinct test from main.model_tests where run_id = ?",
                                           [result["vintage"]]).fetchall()}
    assert models == {*(f"table3_col{i}" for i in range(1, 5)), *(f"nqp_table3_col{i}" for i in range(1, 5)),
                      "event_study", "placebo"}
    assert "wild_bootstrap_p" in tests
    report = open(result["report"], encoding="utf-8").read()
    assert "Baseline DID" in report and "wild cluster bootstrap (restricted" in report
    assert "Heterogeneity-robust DID" not in report and "Specification curve over" not in report
