"""Units of the data-quality machinery on small hand-made inputs: the gate, GX batches, the
publish guard, the validation_results migration, Data Docs pruning, the report, and that every
check and threshold is documented."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from expectations import config
from expectations.gate import CheckResult, ValidationOutcome
from expectations.runner import Batch, Expect, prune_docs, run_batches
from warehouse.paths import PROJECT_ROOT, Home
from warehouse.publish import PublishRefused, connect_for_write, publish

DOC = (PROJECT_ROOT / "docs" / "data-quality.md").read_text(encoding="utf-8")


def _result(check: str, severity: str, success: bool) -> CheckResult:
    return CheckResult("marts", "t", "expect_x", "c", severity, success, 0 if success else 1, "",
                       check=check)


@pytest.fixture(scope="module")
def small_outcome(tmp_path_factory) -> ValidationOutcome:
    frame = pd.DataFrame({
        "file_name": ["a.csv", "a.csv", "b.csv"], "source_row": [4, 5, 4],
        "variable": ["gdp", "gdp", "pop_total"], "value": [1.5e6, 3.0, 12.0],
    })
    batch = Batch("raw", "toy.cells", frame, [
        Expect("ExpectColumnValuesToBeBetween", "raw.plausible_range", config.CRITICAL, "gdp in range",
               {"column": "value", "min_value": 1e5, "max_value": 2e9}, where=("variable", "==", "gdp")),
        Expect("ExpectColumnValuesToBeBetween", "marts.yoy_jumps", config.WARNING, "small values",
               {"column": "value", "max_value": 10}, where=("variable", "not in", ("gdp",))),
        Expect("ExpectColumnValuesToNotBeNull", "raw.numeric_cells", config.CRITICAL, "values present",
               {"column": "value"}),
    ], ("file_name", "source_row"))
    return run_batches([batch], run_id="Ltest", docs_dir=tmp_path_factory.mktemp("docs") / "gx")


def test_gx_results_carry_severity_rows_and_row_conditions(small_outcome):
    by_check = {r.check: r for r in small_outcome.results}
    assert [r.check for r in small_outcome.results] == ["raw.plausible_range", "marts.yoy_jumps",
                                                        "raw.numeric_cells"]
    gdp = by_check["raw.plausible_range"]
    assert (gdp.success, gdp.severity, gdp.element_count, gdp.unexpected_count) == (False, "critical", 2, 1)
    assert gdp.example_rows == ({"value": 3.0, "file_name": "a.csv", "source_row": 5},)
    assert gdp.examples == "value=3.0, file_name=a.csv, source_row=5"
    jump = by_check["marts.yoy_jumps"]  # only the pop_total row is looked at: 12 > 10
    assert (jump.success, jump.severity, jump.element_count) == (False, "warning", 1)
    assert by_check["raw.numeric_cells"].success and by_check["raw.numeric_cells"].example_rows == ()


def test_gate_blocks_on_critical_failures_only(small_outcome):
    assert not small_outcome.publishable
    assert [r.check for r in small_outcome.failed_critical] == ["raw.plausible_range"]
    assert [r.check for r in small_outcome.failed_warnings] == ["marts.yoy_jumps"]
    warnings_only = ValidationOutcome([_result("marts.drift", "warning", False), _result("x", "critical", True)])
    assert warnings_only.publishable and len(warnings_only.failed_warnings) == 1


def test_data_docs_are_written_for_the_validation(small_outcome):
    index = Path(small_outcome.docs_index)
    assert index.name == "index.html" and index.exists()
    pages = list((index.parent / "validations").rglob("*.html"))
    assert len(pages) == 1 and "Ltest" in str(pages[0])


def test_publish_refuses_a_candidate_that_failed_a_critical_check(tmp_path):
    candidate, published = tmp_path / "candidate.duckdb", tmp_path / "warehouse.duckdb"
    for path, value in ((candidate, 2), (published, 1)):
        with connect_for_write(path) as con:
            con.execute("create table t as select ? as v", [value])
    before = published.read_bytes()
    with pytest.raises(PublishRefused):
        publish(candidate, published, gate=ValidationOutcome([_result("marts.coverage", "critical", False)]))
    assert published.read_bytes() == before and candidate.exists()
    publish(candidate, published, gate=ValidationOutcome([_result("marts.drift", "warning", False)]))
    assert not candidate.exists()
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("select v from t").fetchone() == (2,)


def test_validation_results_of_an_older_warehouse_gain_the_new_columns(tmp_path):
    from expectations.results import VALIDATION_DDL, persist_validation

    database = tmp_path / "w.duckdb"
    with connect_for_write(database) as con:
        con.execute(VALIDATION_DDL)
        con.execute("insert into main.validation_results values ('L0', 'marts', 'r', 'e', 'c', 'critical', "
                    "true, 0, '', now())")
    outcome = ValidationOutcome([CheckResult(
        "raw", "city_yearbook.cells", "expect_column_values_to_be_between", "value", "critical", False, 1,
        "value=12.0", check="raw.plausible_range", description="gdp in range", threshold="[1e5, 2e9]",
        element_count=296, example_rows=({"file_name": "f.csv", "source_row": 6, "source_col": 5},))])
    persist_validation(database, "L1", outcome)
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("select vintage, check_name, element_count, example_rows, threshold "
                           "from main.validation_results order by vintage").fetchall()
    assert rows[0] == ("L0", None, None, None, None)
    assert rows[1][:3] == ("L1", "raw.plausible_range", 296) and rows[1][4] == "[1e5, 2e9]"
    assert json.loads(rows[1][3]) == [{"file_name": "f.csv", "source_row": 6, "source_col": 5}]


def test_prune_docs_keeps_the_newest_loads_and_their_reports(tmp_path):
    for i, name in enumerate(["L1", "L2", "dry-L3", "L4"]):
        gx = tmp_path / name / "gx"
        gx.mkdir(parents=True)
        (tmp_path / name / "report.md").write_text(name)
        os.utime(gx, (1_000 + i, 1_000 + i))
    removed = prune_docs(tmp_path, keep=2)
    assert sorted(p.parent.name for p in removed) == ["L1", "L2"]
    assert sorted(p.parent.name for p in tmp_path.glob("*/gx")) == ["L4", "dry-L3"]
    assert len(list(tmp_path.glob("*/report.md"))) == 4


def test_report_lists_failures_with_their_rows_and_escapes_html(tmp_path):
    from flows.refresh import RefreshSummary
    from flows.report import write_report

    home = Home(tmp_path).ensure()
    summary = RefreshSummary(vintage="L9", status="refused", reasons=["1 critical expectation(s) failed"],
                             synthetic=True, gx_docs="gx/index.html")
    summary.expectations_failed = [{
        "suite": "raw", "relation": "city_yearbook.cells", "expectation": "expect_column_values_to_be_in_set",
        "column": "is_unparsed", "severity": "critical", "success": False, "unexpected_count": 1,
        "element_count": 296, "examples": "", "check": "raw.numeric_cells", "description": "cells are numbers",
        "threshold": "", "observed": "",
        "example_rows": [{"file_name": "y.csv", "source_row": 6, "source_col": 5, "value_text": "<b>12a4</b>"}],
    }]
    summary.facts = {"files": [{"source": "city_yearbook", "file_name": "y.csv", "sha256": "ab" * 32, "rows": 3,
                                "status": "loaded", "replaces_earlier": True}],
                     "first_load": False, "changes": None, "imputed": None, "revisions": None, "errors": []}
    markdown = write_report(home, summary, None, None).read_text(encoding="utf-8")
    html = Path(summary.report_html).read_text(encoding="utf-8")
    assert "SYNTHETIC" in markdown and "SYNTHETIC" in html
    assert "### [critical] raw.numeric_cells — city_yearbook.cells.is_unparsed" in markdown
    assert "| y.csv | 6 | 5 | <b>12a4</b> |" in markdown
    assert "<td>&lt;b&gt;12a4&lt;/b&gt;</td>" in html and "<b>12a4</b>" not in html
    assert "| city_yearbook | y.csv | abababababababab | 3 | loaded | True |" in markdown
    assert '<a href="gx/index.html">GX Data Docs</a>' in html


# ---------------------------------------------------------------- configuration and its documentation

def test_every_check_of_the_suites_is_documented_with_its_severity():
    source = "".join(p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "expectations").glob("*.py"))
    checks = set(re.findall(r'Expect\(\s*"\w+",\s*"([a-z_.]+)"', source)) | {"raw.suite_runs", "marts.suite_runs"}
    assert len(checks) >= 18
    for check in checks:
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{check}`")), None)
        assert row is not None, f"{check} is not in docs/data-quality.md"
        assert "critical" in row or "warning" in row, row


def _doc_row(name: str, interval: bool = False) -> list[str]:
    """The cells of the docs table row that starts with `name` (with `interval`, the row whose
    first value is an interval: a source and a variable can share a name)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")][1:]
            for line in DOC.splitlines() if line.startswith(f"| `{name}` |")]
    rows = [r for r in rows if not interval or r[0].startswith("[")]
    assert rows, f"{name} is not in docs/data-quality.md"
    return rows[0]


def _interval(text: str) -> tuple[float, float]:
    low, high = text.strip("[]").split(",")
    return float(low), float(high)


def test_every_threshold_is_documented():
    for variable, bounds in config.PLAUSIBLE_RANGES.items():
        low, high = _doc_row(variable)[:2]
        assert (float(low), float(high)) == bounds, variable
    for indicator, (low, high, severity) in config.RATIO_BOUNDS.items():
        cells = _doc_row(indicator)
        assert _interval(cells[0]) == (low, high) and cells[1] == severity, indicator
    for source, band in config.ROW_COUNT_BANDS.items():
        assert _interval(_doc_row(source, interval=True)[0]) == band, source
    for name in ("COVERAGE_MIN", "JUMP_THRESHOLD", "KS_THRESHOLD", "WEIGHT_TOLERANCE", "GX_DOCS_KEEP",
                 "EXAMPLES_STORED", "EXAMPLES_IN_REPORT", "REVISION_TOLERANCE"):
        assert float(_doc_row(name)[0]) == getattr(config, name), name
    for variable, limit in config.JUMP_THRESHOLD_BY_VARIABLE.items():
        assert float(_doc_row(f"JUMP_THRESHOLD_BY_VARIABLE[{variable}]")[0]) == limit


def test_required_variables_have_plausible_ranges():
    for source, (mode, variables) in config.REQUIRED_VARIABLES.items():
        assert mode in ("all", "any")
        assert set(variables) <= set(config.PLAUSIBLE_RANGES), source
    assert all(low < high for low, high in config.PLAUSIBLE_RANGES.values())
