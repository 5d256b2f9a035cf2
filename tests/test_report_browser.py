"""The report of a refreshed sample, opened in headless Chromium (tests/browser.py: DevTools
protocol on a pipe). Every figure loads, the tables are there, no request leaves the machine,
and the GX Data Docs work offline. Full-page screenshots are kept as test artifacts: under the
test's tmp folder and, when CITYRES_TEST_ARTIFACTS is set, copied there.

Needs the Debian packages chromium and fonts-noto-cjk (`make browser`, a step of `make test`);
skipped without chromium.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.browser import Chromium, chromium_executable
from tests.test_report import html_headings, md_headings
from warehouse.paths import Home
from warehouse.sample import write_sample

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(chromium_executable() is None,
                                 reason="no chromium (install it with `make browser`: Debian chromium, fonts-noto-cjk)")]
FIRM_SCALE = 0.02
LOCAL = ("file:", "data:", "about:")

PAGE_CHECKS = """(() => {
  const images = Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                                        src: i.src.slice(0, 30)}));
  const tables = Array.from(document.querySelectorAll('table')).map(t => t.querySelectorAll('tbody tr').length);
  return {title: document.title, images, tables,
          sections: Array.from(document.querySelectorAll('section[id], details[id]')).map(e => e.id),
          banner: (document.querySelector('#synthetic-banner') || {}).textContent || '',
          resources: performance.getEntriesByType('resource').map(e => e.name)};
})()"""


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory):
    """A sample home refreshed without Prefect (the plain steps), the studies' results kept."""
    from flows.refresh import PLAIN_STEPS, Workspace, run_pipeline
    from warehouse.ingest import new_load_id

    home = Home(tmp_path_factory.mktemp("browser-home")).ensure()
    write_sample(home.landing, firm_scale=FIRM_SCALE)
    kept = {}

    def report(ws, summary, estimation, ground_truth, index_db=None, workers=None):
        kept.update(estimation=estimation, ground_truth=ground_truth)
        return PLAIN_STEPS.report(ws, summary, estimation, ground_truth, index_db, workers)

    summary = run_pipeline(Workspace.for_refresh(home), new_load_id(), dataclasses.replace(PLAIN_STEPS, report=report))
    assert summary.status == "published", summary.reasons
    return home, summary, kept


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report-screenshots")
    yield folder
    target = os.environ.get("CITYRES_TEST_ARTIFACTS")
    if target:
        shutil.copytree(folder, Path(target) / "report-screenshots", dirs_exist_ok=True)


def _leaving(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(LOCAL)]


def test_index_html_renders_every_figure_and_table_offline(refreshed, artifacts):
    _, summary, _ = refreshed
    page_path = Path(summary.report).parent / "index.html"
    with Chromium() as browser:
        page = browser.open(page_path)
        checks = page.evaluate(PAGE_CHECKS)
        page.screenshot(artifacts / "index.png")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        page.screenshot(artifacts / "index-expanded.png")
        page.navigate(page_path.as_uri() + "#expectations")  # a summary link opens its collapsed section
        opened = page.evaluate("document.getElementById('expectations').open")
        requests, errors = page.requests, page.console_errors()
    (artifacts / "index-checks.json").write_text(json.dumps(checks, indent=2, ensure_ascii=False))
    assert _leaving(requests) == [] and _leaving(checks["resources"]) == []
    assert errors == []
    names = [i["alt"] for i in checks["images"]]
    # top/bottom, map, by year, treated vs control, event study, placebo, propensity scores, Table 6 and
    # Table 7 coefficient plots, specification curve, the two split-sample tables' plots, and the modern DID
    # program's four (event studies side by side, Goodman-Bacon, HonestDiD, spillover by distance)
    assert len(names) == 16, names
    assert all(i["complete"] and i["width"] > 0 and i["src"].startswith("data:image/png") for i in checks["images"])
    assert len(checks["tables"]) >= 8 and all(rows > 0 for rows in checks["tables"][:4])
    assert checks["sections"][:26] == ["summary", "index", "top-cities", "table2", "baseline", "event-study",
                                       "placebo", "table4", "robustness", "table5", "table6", "table7",
                                       "spec-curve", "nqp", "nqp-robustness", "nqp-table5", "nqp-table6",
                                       "nqp-res-table3", "nqp-res-iv", "nqp-res-table5", "nqp-res-table6",
                                       "nqp-res-table7", "modern-did", "honest-did", "spatial-did", "files"]
    assert "SYNTHETIC SAMPLE DATA" in checks["banner"]
    assert opened is True
    for shot in ("index.png", "index-expanded.png"):
        assert (artifacts / shot).read_bytes()[:4] == b"\x89PNG" and (artifacts / shot).stat().st_size > 100_000


def test_gx_data_docs_work_offline(refreshed, artifacts):
    from flows.report.gx_offline import external_references

    _, summary, _ = refreshed
    docs = Path(summary.report).parent / "gx"
    pages = sorted(docs.rglob("*.html"))
    assert len(pages) > 10
    assert {str(p.relative_to(docs)): external_references(p.read_text("utf-8")) for p in pages
            if external_references(p.read_text("utf-8"))} == {}
    validation = next(p for p in pages if p.parts[len(docs.parts)] == "validations")
    with Chromium() as browser:
        index = browser.open(docs / "index.html")
        rows = index.evaluate("document.querySelectorAll('#section-1-content-block-2-1-body-table tbody tr').length")
        styled = index.evaluate("getComputedStyle(document.querySelector('.nav-tabs')).display")
        logo = index.evaluate("document.images[0].naturalWidth")
        index.screenshot(artifacts / "gx-index.png")
        page = browser.open(validation)
        page.screenshot(artifacts / "gx-validation.png")
        requests = index.requests + page.requests
        errors = index.console_errors() + page.console_errors()
    assert _leaving(requests) == [] and errors == []
    assert rows == len(list((docs / "validations").rglob("*.html")))  # bootstrap-table's rows, drawn offline
    assert styled == "flex" and logo > 0


def test_markdown_and_html_show_the_same_sections_and_numbers(refreshed):
    _, summary, kept = refreshed
    markdown = Path(summary.report).read_text(encoding="utf-8")
    page = (Path(summary.report).parent / "index.html").read_text(encoding="utf-8")
    assert md_headings(markdown) == html_headings(page)
    placebo = kept["estimation"].placebo.summary()
    for number in (f"{placebo['share_p_below_0.1']:.3f}", f"{placebo['ri_p_value_plus1']:.4f}",
                   f"{placebo['ri_p_value']:.3f}", f"{placebo['placebo_sd']:.3g}"):
        assert number in markdown and number in page, number
    assert "share of placebo p-values below 0.1" in page and "(1 + #)/(1 + draws)" in page
    headline = re.search(r"DID, Table 3 column \(4\) on res: [^\n]*?\(p = [0-9.]+\)\.", markdown).group(0)
    assert headline in page
    pretrend = re.search(r"Pre-trend test [^\n]*?p = [0-9.]+\.", markdown).group(0)
    assert pretrend in page


def test_headings_follow_the_results_not_the_defaults(refreshed, tmp_path):
    from flows.report.context import build_context

    _, summary, kept = refreshed
    estimation = kept["estimation"]
    es, placebo = estimation.event_study, estimation.placebo
    assert f"## Event study (parallel trends; k = −{es.leads}…{es.lags}, base −{-es.base})" in Path(summary.report).read_text("utf-8")
    changed = dataclasses.replace(estimation, event_study=dataclasses.replace(es, leads=3, lags=5, base=-2),
                                  placebo=dataclasses.replace(placebo, n_draws=99))
    titles = [s.title for s in build_context(summary, summary.facts, folder=tmp_path, estimation=changed)["sections"]]
    assert "Event study (parallel trends; k = −3…5, base −2)" in titles
    assert "Placebo test (99 random adoption assignments)" in titles
