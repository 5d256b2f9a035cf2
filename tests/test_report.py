"""The per-load report on small hand-made inputs: templates ship with the package, Markdown and
HTML show the same sections, index.html is self-contained, headings come from what was run,
the figures draw Chinese names (or say why not), GX Data Docs are rewritten for offline reading,
and `cityres report` finds a vintage's page. (The browser test is tests/test_report_browser.py.)
"""
from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import duckdb

from flows.refresh import RefreshSummary
from flows.report import context, figures, gx_offline
from flows.report.facts import index_data
from flows.report.render import write_report
from warehouse.paths import PROJECT_ROOT, Home

CITIES = [  # code, name, English name, province, lat, lon
    ("110000", "北京市", "Beijing", "北京市", 39.90, 116.41), ("310000", "上海市", "Shanghai", "上海市", 31.23, 121.47),
    ("440300", "深圳市", "Shenzhen", "广东省", 22.54, 114.06), ("510100", "成都市", "Chengdu", "四川省", 30.57, 104.07),
    ("650100", "乌鲁木齐市", "Urumqi", "新疆维吾尔自治区", 43.83, 87.62), ("230100", "哈尔滨市", "Harbin", "黑龙江省", 45.80, 126.53),
    ("530100", "昆明市", "Kunming", "云南省", 25.04, 102.71), ("420100", "武汉市", "Wuhan", "湖北省", 30.59, 114.31),
    ("610100", "西安市", "Xi'an", "陕西省", 34.34, 108.94), ("350200", "厦门市", "Xiamen", "福建省", 24.48, 118.09),
    ("130100", "石家庄市", "Shijiazhuang", "河北省", 38.04, 114.51), ("620100", "兰州市", "Lanzhou", "甘肃省", 36.06, 103.83),
]
TREATED = {"110000": 2019, "310000": 2019, "510100": 2020}


def tiny_warehouse(path: Path) -> Path:
    """The relations the report's index figures read, for 12 cities and 2018-2021."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema reference")
        con.execute("create table reference.ref_cities (city_code varchar, city_name_zh varchar, lat double, lon double)")
        con.executemany("insert into reference.ref_cities values (?, ?, ?, ?)",
                        [(c, n, lat, lon) for c, n, _, _, lat, lon in CITIES])
        rows = []
        for year in range(2018, 2022):
            for i, (code, name, en, province, _, _) in enumerate(CITIES):
                rows.append((code, name, en, province, year, 0.05 + 0.04 * ((i * 7) % 12) / 11 + 0.01 * (year - 2018)))
        con.execute("create table main.raw_index (city_code varchar, city_name varchar, city_name_en varchar, "
                    "province_name varchar, year integer, res double)")
        con.executemany("insert into main.raw_index values (?, ?, ?, ?, ?, ?)", rows)
        con.execute("""create table main.resilience_index as
            select *, res / 3 as resistance_recovery, res / 3 as adaptability_adjustment,
                   res / 3 as innovation_transformation,
                   rank() over (partition by year order by res desc, city_code) as rank_in_year
            from main.raw_index""")
        con.execute("create table main.adoption (city_code varchar, adoption_year integer)")
        con.executemany("insert into main.adoption values (?, ?)", list(TREATED.items()))
        con.execute("""create table main.analysis_panel as
            select i.city_code, i.year, i.res, a.city_code is not null as treat, a.adoption_year
            from main.resilience_index as i left join main.adoption as a using (city_code)""")
    return path


def refused_summary(**kw) -> RefreshSummary:
    summary = RefreshSummary(vintage="L20260101T000000000000Z", status="refused", synthetic=True,
                             reasons=["1 critical expectation(s) failed"], gx_docs="gx/index.html", **kw)
    summary.files_loaded = ["city_yearbook/y.csv"]
    summary.expectations_passed = 3
    summary.expectations_failed = [{
        "suite": "raw", "relation": "city_yearbook.cells", "expectation": "expect_column_values_to_be_in_set",
        "column": "is_unparsed", "severity": "critical", "success": False, "unexpected_count": 1,
        "element_count": 296, "examples": "", "check": "raw.numeric_cells", "description": "cells are numbers",
        "threshold": "", "observed": "", "example_rows": [{"file_name": "y.csv", "source_row": 6, "value_text": "12a4"}],
    }]
    summary.facts = {"files": [{"source": "city_yearbook", "file_name": "y.csv", "sha256": "ab" * 32, "rows": 3,
                                "status": "loaded", "replaces_earlier": True}],
                     "first_load": False, "changes": None, "imputed": None, "revisions": None, "errors": [],
                     "notes": ["a note from the refresh"]}
    return summary


class _Headings(HTMLParser):
    """The h2 texts of a page (section headings), in order."""

    def __init__(self):
        super().__init__()
        self.headings, self._in = [], False

    def handle_starttag(self, tag, attrs):
        self._in = self._in or tag == "h2"
        if tag == "h2":
            self.headings.append("")

    def handle_endtag(self, tag):
        self._in = self._in and tag != "h2"

    def handle_data(self, data):
        if self._in:
            self.headings[-1] += data


def md_headings(markdown: str) -> list[str]:
    return [line[3:].strip() for line in markdown.splitlines() if line.startswith("## ")]


def html_headings(page: str) -> list[str]:
    parser = _Headings()
    parser.feed(page)
    return [h.strip() for h in parser.headings]


# ---------------------------------------------------------------- packaging

def test_templates_and_the_offline_kit_ship_with_the_package():
    package = resources.files("flows.report")
    for name in ("templates/report.md.j2", "templates/report.html.j2", "static/gx-offline.css", "static/gx-offline.js"):
        assert (package / name).is_file(), name
    data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["flows.report"]
    assert any(p.startswith("templates/") and p.endswith(".j2") for p in patterns)
    assert {"static/*.css", "static/*.js"} <= set(patterns)


# ---------------------------------------------------------------- rendering

def test_markdown_and_html_have_the_same_sections_and_a_summary_first(tmp_path):
    home = Home(tmp_path / "home").ensure()
    summary = refused_summary()
    markdown = write_report(home, summary, None, None).read_text(encoding="utf-8")
    folder = home.reports / summary.vintage
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert (folder / "report.html").read_text(encoding="utf-8") == page
    assert summary.report_html == str(folder / "report.html")
    assert md_headings(markdown) == html_headings(page)
    assert md_headings(markdown)[0] == "Summary"
    assert "SYNTHETIC" in markdown and 'class="banner"' in page
    # the summary's one-liners link to their sections, in both formats
    for text, anchor in (("Files: 1 loaded, 0 already loaded, 0 failed.", "files"),
                         ("Expectations: 3 passed, 1 failed (1 critical, 0 warning).", "expectations"),
                         ("Corrected files (replacing an earlier delivery): y.csv.", "files")):
        assert text in markdown and text in page, text
        assert f"](#{anchor})" in markdown and f'href="#{anchor}"' in page
    assert "No estimates: the load was not published." in markdown and "No estimates" in page
    assert "a note from the refresh" in markdown and "a note from the refresh" in page
    # details are collapsed in HTML, except those whose check failed; the summary is not
    assert '<details id="files">' in page and '<details id="expectations" open>' in page
    assert '<section id="summary">' in page
    assert page.index('id="summary"') < page.index('id="files"')


def test_index_html_is_self_contained_with_the_index_figures(tmp_path):
    home = Home(tmp_path / "home").ensure()
    tiny_warehouse(home.warehouse_db)
    summary = refused_summary(mode="dry-run")
    summary.status = "would publish"
    summary.reasons = []
    markdown = write_report(home, summary, None, None, index_db=home.warehouse_db).read_text(encoding="utf-8")
    folder = home.reports / summary.vintage
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert gx_offline.external_references(page) == []
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    for name in ("index_top_bottom.png", "index_map.png", "index_by_year.png", "index_treated_control.png"):
        assert f"]({name})" in markdown and (folder / name).read_bytes()[:4] == b"\x89PNG"
    assert "reference.ref_cities" in markdown  # where the map's coordinates came from
    assert "Twelve most resilient cities" not in markdown and "Ten most resilient cities" in markdown
    assert "上海市" in page and md_headings(markdown) == html_headings(page)


def test_headings_are_built_from_what_was_run():
    assert context.event_study_title(4, 7, -1) == "Event study (parallel trends; k = −4…7, base −1)"
    assert context.event_study_title(2, 5, -2) == "Event study (parallel trends; k = −2…5, base −2)"
    assert context.placebo_title(500, "adoption") == "Placebo test (500 random adoption assignments)"
    assert context.placebo_title(50, "units") == "Placebo test (50 random assignments of the treated units)"
    assert context.top_title(10, 2023) == "Ten most resilient cities, latest year (2023)"
    source = "".join((PROJECT_ROOT / "flows" / "report" / "templates" / n).read_text(encoding="utf-8")
                     for n in ("report.md.j2", "report.html.j2"))
    assert "−4" not in source and "500" not in source and "k = -4" not in source


def test_figures_name_cities_in_chinese_or_say_why_not(tmp_path, monkeypatch):
    data = index_data(tiny_warehouse(tmp_path / "w.duckdb"))
    assert data.coordinates == "reference.ref_cities" and len(data.located) == len(CITIES)
    assert list(data.adoption["adoption_year"]) == [2019, 2020]
    font = figures.find_cjk_font()
    drawn, notes = figures.index_figures(data, tmp_path / "with", synthetic=True)
    assert [f.name for f in drawn] == ["top_bottom", "map", "by_year", "treated_control"]
    if font is None:
        assert figures.MISSING_FONT_NOTE in notes
    else:
        assert figures.MISSING_FONT_NOTE not in notes and Path(font.path).is_file()
    monkeypatch.setenv(figures.CJK_FONT_ENV, str(tmp_path / "no-such-font.ttc"))
    drawn, notes = figures.index_figures(data, tmp_path / "without", synthetic=False)
    assert figures.MISSING_FONT_NOTE in notes and len(drawn) == 4  # still drawn, English labels


# ---------------------------------------------------------------- GX Data Docs offline

GX_PAGE = """<!DOCTYPE html>
<html>
  <head>
    <link rel="stylesheet" href="https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css">
    <link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
    <style>.navbar-brand a { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') 0 0 no-repeat; }</style>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-x" crossorigin="anonymous"></script>
<link rel="shortcut icon" href="../../../../static/images/favicon.ico" type="image/x-icon"/>
  </head>
  <body>
    <img class="NO-CACHE" src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1" alt="Great Expectations"/>
    <a href="https://greatexpectations.io">a link is not a request</a>
  </body>
</html>
"""


def test_gx_pages_are_rewritten_to_load_nothing_from_the_network(tmp_path):
    docs = tmp_path / "gx"
    page = docs / "validations" / "raw" / "x" / "run" / "time" / "p.html"
    page.parent.mkdir(parents=True)
    page.write_text(GX_PAGE, encoding="utf-8")
    (docs / "index.html").write_text(GX_PAGE.replace("../../../../static", "./static"), encoding="utf-8")
    assert len(gx_offline.external_references(GX_PAGE)) == 7
    assert len(gx_offline.make_offline(docs)) == 2
    assert gx_offline.make_offline(docs) == []  # idempotent
    for path, prefix in ((page, "../../../../../"), (docs / "index.html", "")):
        text = path.read_text(encoding="utf-8")
        assert gx_offline.external_references(text) == []
        assert f'href="{prefix}static/cityres/gx-offline.css"' in text
        assert f'src="{prefix}static/cityres/gx-offline.js"' in text
        assert f'src="{prefix}static/images/logo-long.png"' in text
        assert f'href="{prefix}static/images/favicon.ico"' in text  # GX's own link, depth corrected
        assert 'href="https://greatexpectations.io"' in text
        assert text.index("gx-offline.css") < text.index("<style>")  # GX's own styles keep the last word
    for name in gx_offline.KIT:
        assert (docs / gx_offline.KIT_FOLDER / name).stat().st_size > 1000
    if gx_offline.gx_static_source() is not None:  # GX's fonts and images, copied from the package
        assert (docs / gx_offline.LOGO).is_file()


# ---------------------------------------------------------------- cityres report

def test_cli_report_prints_the_latest_or_a_given_vintage(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    home = Home(tmp_path / "home").ensure()
    for name in ("L20260101T000000000000Z", "dry-L20260301T000000000000Z", "L20260201T000000000000Z"):
        (home.reports / name).mkdir()
        (home.reports / name / "index.html").write_text("<html></html>")
    (home.reports / "L20260401T000000000000Z").mkdir()  # no index.html: an older report
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(home.reports / "dry-L20260301T000000000000Z" / "index.html")
    result = runner.invoke(app, ["report", "--home", str(home.root), "--vintage", "L20260101T000000000000Z"])
    assert result.output.strip() == str(home.reports / "L20260101T000000000000Z" / "index.html")
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    result = runner.invoke(app, ["report", "--home", str(home.root), "--vintage", "L20260201T000000000000Z", "--open"])
    assert result.exit_code == 0 and opened == [(home.reports / "L20260201T000000000000Z" / "index.html").as_uri()]
    result = runner.invoke(app, ["report", "--home", str(home.root), "--vintage", "L20260401T000000000000Z"])
    assert result.exit_code == 2 and "no report for vintage" in result.output
    result = runner.invoke(app, ["report", "--home", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no report yet" in result.output
