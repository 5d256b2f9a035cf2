"""Write reports/<vintage>/: report.md (figures beside it as PNG), index.html (self-contained:
inline CSS, figures as data URIs; report.html is the same page), and make the GX Data Docs
under gx/ work offline.
"""
from __future__ import annotations

import gc
import html
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import duckdb

from expectations.config import EXAMPLES_IN_REPORT
from flows.report.context import build_context
from flows.report.facts import empty_facts, index_data, records, top_cities
from flows.report.figures import figure_record
from warehouse.connections import connect_read_only
from warehouse.paths import Home

TEMPLATES = "templates"
MD_TEMPLATE, HTML_TEMPLATE = "report.md.j2", "report.html.j2"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def md_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return ""
    columns = columns or list(rows[0])

    def esc(v) -> str:
        return _cell(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(esc(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def html_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return ""
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_inline(text: str) -> str:
    """Escaped text with Markdown's **bold** as <strong>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def environment(autoescape: bool):
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.PackageLoader("flows.report", TEMPLATES), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["md_table"] = md_table
    env.filters["html_table"] = lambda rows, columns=None: Markup(html_table(rows, columns))
    env.filters["md_inline"] = lambda text: Markup(md_inline(text))
    return env


def render(context: dict) -> tuple[str, str]:
    """(Markdown, HTML) of one context."""
    markdown = environment(False).get_template(MD_TEMPLATE).render(context)
    markdown = re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"
    page = environment(True).get_template(HTML_TEMPLATE).render(context)
    return markdown, page


def _index_view(index_db: Path | None, folder: Path, synthetic: bool) -> dict:
    """Top cities and the report's own figures from the warehouse whose index is shown."""
    from flows.report.figures import index_figures

    view = {"top_cities": [], "latest_year": None, "index_years": None, "index_figures": [], "figure_notes": []}
    if index_db is None or not Path(index_db).exists():
        return view
    try:
        with connect_read_only(index_db) as con:
            view["top_cities"] = records(top_cities(con))
        data = index_data(Path(index_db))
    except duckdb.Error as exc:  # a warehouse of another shape: say so, do not fail the refresh
        view["figure_notes"].append(f"the index could not be read: {str(exc).splitlines()[0]}")
        return view
    if data is None:
        return view
    view["latest_year"], view["index_years"] = data.latest_year, data.years
    view["index_figures"], view["figure_notes"] = index_figures(data, folder, synthetic)
    return view


def _start_study_figures(estimation, folder: Path, submit: Callable | None) -> Callable[[], dict]:
    """Start drawing the studies' figures (with ``submit(fn, *args)``, elsewhere, e.g. in the
    refresh's worker processes, while this process draws the index figures); the function
    returned waits for them and gives their records."""
    if submit is None:
        files = estimation.figures(folder)
        return lambda: _study_figure_records(files, folder)
    folder.mkdir(parents=True, exist_ok=True)
    pending = {name: submit(draw, *args) for name, (draw, *args) in estimation.figure_jobs(folder).items()}
    return lambda: _study_figure_records({name: job.result().name for name, job in pending.items()}, folder)


def _study_figure_records(files: dict[str, str], folder: Path) -> dict:
    alts = {"event_study": ("Event study", ("Event-time coefficients with 95% confidence intervals; "
                                            "the base period is the open circle.")),
            "placebo": ("Placebo", ("Placebo coefficients (density) and their p-values; the dashed line is "
                                    "the real estimate.")),
            "pscore": ("Propensity scores", ("Densities of the propensity score of pilot and other cities, before "
                                             "matching and after (weighted by the matching weights).")),
            "table6": ("City-size tiers", ("Each tier's own DID estimate with its 95% CI (all tiers in one model); "
                                           "the dashed line is the pooled baseline.")),
            "table7": ("DIG and IPP", ("DID for pilot cities without and with each status, with 95% CIs; the "
                                       "dashed line is the pooled baseline.")),
            "nqp_table6": ("NQP by group", ("DID on NQP in each group with 95% CIs; the dashed line is the whole "
                                            "sample's estimate.")),
            "nqp_res_table6": ("NQP on resilience by group", ("The NQP coefficient in each group with 95% CIs; "
                                                              "the dashed line is the whole sample's estimate.")),
            "spec_curve": ("Specification curve", ("DID estimates with 95% confidence intervals under each way "
                                                   "of building the index, sorted; below, the choices of each.")),
            "modern_did_event": ("Event studies side by side", ("Event-time effects with pointwise 95% CIs: the "
                                 "two-way FE event study (no controls) and the heterogeneity-robust estimators.")),
            "bacon": ("Goodman-Bacon decomposition", ("Each 2x2 DID comparison's estimate against its weight in "
                      "the two-way FE coefficient (dashed line: the coefficient, their weighted sum).")),
            "honest": ("HonestDiD", ("Robust 95% confidence intervals for the average post-adoption effect as the "
                       "allowed violation of parallel trends grows, beside the original CI.")),
            "distance_bands": ("Spillover by distance", ("DID on untreated cities by distance band to the nearest "
                               "treated city, with 95% CIs, against untreated cities beyond 300 km."))}
    return {name: figure_record(name, folder / file, *alts.get(name, (name, ""))) for name, file in files.items()}


@contextmanager
def _collector_paused():
    """matplotlib allocates many short-lived objects per figure, and the cyclic collector's
    passes over them took about a sixth of the figures' time. Paused while they are drawn: the
    closed figures' cycles are freed by the first collection after (the same PNGs)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_report(home: Home, summary, estimation, ground_truth: dict | None,
                 index_db: Path | None = None, submit: Callable | None = None) -> Path:
    """Write reports/<vintage>/report.md, index.html and report.html; return the Markdown path.

    `index_db` is the warehouse whose index the report shows (the published one after a
    publish, the candidate of a dry run that would publish); None shows no index. `submit`
    (fn, *args -> a pending result): where the studies' figures are drawn, else here.
    """
    from flows.report.gx_offline import make_offline

    folder = home.reports / summary.vintage
    folder.mkdir(parents=True, exist_ok=True)
    if index_db is None and summary.status == "published":
        index_db = home.warehouse_db
    facts = summary.facts or empty_facts()
    for key, default in empty_facts().items():
        facts.setdefault(key, default)
    with _collector_paused():
        study_figures = _start_study_figures(estimation, folder, submit) if estimation is not None else None
        view = _index_view(index_db, folder, summary.synthetic)
        study_figures = study_figures() if study_figures is not None else None
    context = build_context(
        summary, facts, folder=folder, estimation=estimation, ground_truth=ground_truth,
        study_figures=study_figures, limit=EXAMPLES_IN_REPORT, **view)
    markdown, page = render(context)
    if summary.gx_docs and (folder / summary.gx_docs).exists():
        make_offline((folder / summary.gx_docs).parent)
    md_path, index_path, html_path = folder / "report.md", folder / "index.html", folder / "report.html"
    index_path.write_text(page, encoding="utf-8")
    shutil.copyfile(index_path, html_path)
    md_path.write_text(markdown, encoding="utf-8")  # last: its presence marks a written report
    summary.report_html = str(html_path)
    return md_path
