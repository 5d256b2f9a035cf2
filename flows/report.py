"""The per-load data-quality report: reports/<vintage>/report.md and report.html.

`collect_facts` reads what a load changed — files (hash, rows), new and changed city-years,
imputed cells, revisions to published index values — from the candidate and the published
warehouse before the candidate replaces it; `write_report` renders the facts, the expectation
results (with example rows), the link to the GX Data Docs, and, when the load is (or would be)
published, the top cities and the baseline table. Markdown and HTML come from the same context
through two Jinja2 templates.
"""
from __future__ import annotations

import html
import json
from contextlib import closing
from pathlib import Path

import duckdb

from expectations.config import EXAMPLES_IN_REPORT, REVISION_TOLERANCE
from warehouse.connections import connect_memory, connect_read_only
from warehouse.paths import Home
from warehouse.provenance import SYNTHETIC_BANNER

TOP_CITIES_SQL = """
select rank_in_year as rank, city_name, city_name_en, province_name, year,
       round(res, 4) as res,
       round(resistance_recovery, 4) as resistance_recovery,
       round(adaptability_adjustment, 4) as adaptability_adjustment,
       round(innovation_transformation, 4) as innovation_transformation
from main.resilience_index
where year = (select max(year) from main.resilience_index)
order by rank_in_year, city_code
limit ?
"""

EXAMPLE_LIMIT = 10  # rows listed per fact table (new/changed city-years, imputed cells, revisions)


def top_cities(con: duckdb.DuckDBPyConnection, n: int = 10):
    return con.execute(TOP_CITIES_SQL, [n]).df()


# ---------------------------------------------------------------- facts of a load

FILES_SQL = """
select m.source, m.file_name, m.sha256, m.rows, m.status, m.error, m.encoding, m.year,
       exists (select 1 from cand.raw.load_manifest as p
               where p.file_name = m.file_name and p.status = 'loaded' and p.load_id <> m.load_id
                 and p.sha256 <> m.sha256) as replaces_earlier
from cand.raw.load_manifest as m
where m.load_id = ?
order by m.source, m.file_name
"""

NAMES_SQL = "select distinct city_code, city_name from {db}.main.resilience_index"

CITY_YEARS_SQL = """
with new as (select city_code, year, variable, value from cand.intermediate.int_city_year_values_long),
old as (select city_code, year, variable, value from pub.intermediate.int_city_year_values_long),
compared as (
    select coalesce(new.city_code, old.city_code) as city_code, coalesce(new.year, old.year) as year,
           coalesce(new.variable, old.variable) as variable,
           old.city_code is null as is_new, new.city_code is null as is_removed,
           new.value is distinct from old.value
               and not coalesce(abs(new.value - old.value) <= 1e-9 * greatest(1, abs(old.value)), false)
               as is_changed
    from new full outer join old using (city_code, year, variable)
)
select city_code, year, bool_and(is_new) as is_new, bool_and(is_removed) as is_removed,
       list(variable order by variable) filter (where is_changed and not is_new and not is_removed)
           as changed_variables
from compared
group by city_code, year
"""

IMPUTED_SQL = """
select variable, count(*) filter (where is_imputed) as imputed,
       count(*) filter (where is_missing) as still_missing
from cand.intermediate.int_city_year_values_long
group by variable
having count(*) filter (where is_imputed or is_missing) > 0
order by imputed desc, variable
"""

IMPUTED_EXAMPLES_SQL = """
select v.city_code, n.city_name, v.year, v.variable, round(v.value, 4) as value
from cand.intermediate.int_city_year_values_long as v
left join names as n using (city_code)
where v.is_imputed
order by v.year desc, v.city_code, v.variable
limit ?
"""

REVISIONS_SQL = """
select new.city_code, names.city_name, new.year, old.res as published_res, new.res as new_res,
       new.res - old.res as revision, old.rank_in_year as published_rank, new.rank_in_year as new_rank
from cand.main.resilience_index as new
inner join pub.main.resilience_index as old using (city_code, year)
left join names using (city_code)
"""


def program_sections(program, folder: Path, ground_truth: dict | None) -> dict:
    """Tables, figures and facts of the event study, the placebo and the NQP Table 3."""
    from estimation.studies.common import table3
    from estimation.studies.resilience import event_study_truth

    placebo = program.placebo.summary()
    return {
        "figures": program.figures(folder),
        "event_md": program.event_study.table("markdown"),
        "event_html": program.event_study.table("html"),
        "event_truth": event_study_truth(program.event_study, ground_truth)
        if ground_truth and tuple(program.panel_years) == tuple(ground_truth["years"]["panel"]) else [],
        "placebo": {k.replace(".", "_"): (round(v, 5) if isinstance(v, float) else v) for k, v in placebo.items()},
        "nqp_md": table3(*program.nqp_baseline, "markdown", adj_r2=True),
        "nqp_html": table3(*program.nqp_baseline, "html", adj_r2=True),
    }


def _attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    con.execute(f"attach '{str(path).replace(chr(39), chr(39) * 2)}' as {alias} (read_only)")


def _records(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", force_ascii=False, double_precision=10))


def _changes(con: duckdb.DuckDBPyConnection) -> dict:
    con.execute(f"create temp table city_years as {CITY_YEARS_SQL}")
    by_year = con.execute("""
        select year, count(*) filter (where is_new) as new_city_years,
               count(*) filter (where len(changed_variables) > 0) as changed_city_years,
               count(*) filter (where is_removed) as removed_city_years
        from city_years group by year
        having new_city_years + changed_city_years + removed_city_years > 0 order by year""").df()
    changed = con.execute("""
        select c.city_code, n.city_name, c.year, array_to_string(c.changed_variables, ', ') as changed_variables
        from city_years as c left join names as n using (city_code)
        where len(c.changed_variables) > 0 order by c.year desc, c.city_code limit ?""",
                          [EXAMPLE_LIMIT]).df()
    new_cities = con.execute("""
        select c.city_code, any_value(n.city_name) as city_name, min(c.year) as first_year, max(c.year) as last_year
        from city_years as c left join names as n using (city_code)
        group by c.city_code having bool_and(c.is_new) order by c.city_code""").df()
    years = con.execute("""
        select year, bool_and(is_new) as all_new from city_years group by year order by year""").df()
    return {
        "by_year": _records(by_year),
        "changed_examples": _records(changed),
        "new_cities": _records(new_cities),
        "new_years": [int(y) for y, new in zip(years["year"], years["all_new"]) if new],
    }


def _revisions(con: duckdb.DuckDBPyConnection) -> dict:
    con.execute(f"create temp table revisions as {REVISIONS_SQL}")
    n, revised, max_abs, mean_abs = con.execute(
        "select count(*), count(*) filter (where abs(revision) > ?), max(abs(revision)), "
        "avg(abs(revision)) filter (where abs(revision) > ?) from revisions",
        [REVISION_TOLERANCE, REVISION_TOLERANCE]).fetchone()
    largest = con.execute(
        "select city_code, city_name, year, round(published_res, 6) as published_res, "
        "round(new_res, 6) as new_res, round(revision, 6) as revision, published_rank, new_rank "
        "from revisions where abs(revision) > ? order by abs(revision) desc, city_code, year limit ?",
        [REVISION_TOLERANCE, EXAMPLE_LIMIT]).df()
    return {"compared": int(n), "revised": int(revised), "max_abs": max_abs, "mean_abs": mean_abs,
            "largest": _records(largest)}


def collect_facts(candidate: Path, published: Path | None, vintage: str, marts_built: bool) -> dict:
    """What the load brings, read before publishing (the published file is about to be replaced)."""
    facts: dict = {"files": [], "first_load": published is None or not published.exists(),
                   "changes": None, "imputed": None, "revisions": None, "errors": []}
    with closing(connect_memory()) as con:
        _attach(con, candidate, "cand")
        facts["files"] = _records(con.execute(FILES_SQL, [vintage]).df())
        if not marts_built:
            return facts
        try:
            con.execute(f"create temp table names as {NAMES_SQL.format(db='cand')}")
            facts["imputed"] = {
                "by_variable": _records(con.execute(IMPUTED_SQL).df()),
                "examples": _records(con.execute(IMPUTED_EXAMPLES_SQL, [EXAMPLE_LIMIT]).df()),
            }
            facts["imputed"]["total"] = sum(r["imputed"] for r in facts["imputed"]["by_variable"])
            if not facts["first_load"]:
                _attach(con, published, "pub")
                facts["changes"] = _changes(con)
                facts["revisions"] = _revisions(con)
        except duckdb.Error as exc:  # a published vintage of another shape: report, do not fail
            facts["errors"].append(str(exc).splitlines()[0])
    return facts


# ---------------------------------------------------------------- rendering

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


MARKDOWN_TEMPLATE = """\
# {{ title }}
{% if synthetic %}
> **{{ banner }}**
{% endif %}
Status: **{{ status }}**{% if reasons %} — {{ reasons | join('; ') }}{% endif %}

{% if dry_run %}_Dry run: nothing was published; the published warehouse is unchanged._

{% endif -%}
{% if mode != 'validate' %}## Files

- loaded: {{ summary.files_loaded | length }}
- already loaded (skipped): {{ summary.files_skipped }}
- failed: {{ summary.files_failed | length }}
{% for failed in summary.files_failed %}  - `{{ failed.file }}`: {{ failed.error }}
{% endfor %}
{% if files %}
{{ files | md_table(['source', 'file_name', 'sha256', 'rows', 'status', 'replaces_earlier']) }}
{% endif %}
{% if summary.dbt_failures %}
## dbt failures

{% for f in summary.dbt_failures %}- `{{ f.unique_id }}`: {{ f.message }}
{% endfor %}{% endif %}
{% if summary.dbt_warnings %}
## dbt warnings

{% for f in summary.dbt_warnings %}- `{{ f.unique_id }}`: {{ f.message }}
{% endfor %}{% endif %}
## New and changed cities and years

{% if facts.first_load %}First load: every city-year is new.
{% elif facts.changes %}{% if facts.changes.new_years %}- new years: {{ facts.changes.new_years | join(', ') }}
{% endif %}{% if facts.changes.new_cities %}- new cities:
{{ facts.changes.new_cities | md_table }}
{% endif %}{% if facts.changes.by_year %}
{{ facts.changes.by_year | md_table }}
{% else %}No city-year differs from the published vintage.
{% endif %}{% if facts.changes.changed_examples %}
Changed city-years (examples):

{{ facts.changes.changed_examples | md_table }}
{% endif %}{% else %}Not compared (the marts were not rebuilt).
{% endif %}{% endif %}
## Imputed cells

{% if facts.imputed %}{{ facts.imputed.total }} cells filled by interpolation.

{{ facts.imputed.by_variable | md_table }}
{% if facts.imputed.examples %}
Examples:

{{ facts.imputed.examples | md_table }}
{% endif %}{% else %}Not computed (the marts were not rebuilt).
{% endif %}{% if facts.coverage %}
Panel cells: {% for k, v in facts.coverage.cells | dictsort %}{{ k }} {{ v }}{{ ', ' if not loop.last }}{% endfor %} — imputed share {{ '%.3f' | format(100 * facts.coverage.imputed_share) }} %.

## City names resolved

{{ facts.coverage.resolved_names | md_table }}
{% endif %}
## Expectations

- passed: {{ summary.expectations_passed }}
- failed: {{ summary.expectations_failed | length }} ({{ critical | length }} critical, {{ warnings | length }} warning)
{% for note in summary.validation_notes %}- note: {{ note }}
{% endfor %}{% if summary.gx_docs %}- details: [GX Data Docs]({{ summary.gx_docs }})
{% endif %}
{% for failed in critical + warnings %}
### [{{ failed.severity }}] {{ failed.check }} — {{ failed.relation }}{% if failed.column %}.{{ failed.column }}{% endif %}

{{ failed.description }}{% if failed.threshold %} (threshold {{ failed.threshold }}){% endif %}: {% if failed.unexpected_count is not none %}{{ failed.unexpected_count }} of {{ failed.element_count }} rows unexpected{% else %}{{ failed.observed or failed.examples }}{% endif %} (`{{ failed.expectation }}`).
{% if failed.example_rows %}
{{ failed.example_rows[:limit] | list | md_table }}
{% endif %}{% endfor %}
{% if mode != 'validate' %}## Revisions to published index values

{% if facts.revisions %}{{ facts.revisions.revised }} of {{ facts.revisions.compared }} published city-year values revised{% if facts.revisions.revised %} (largest |Δ| {{ '%.3g' | format(facts.revisions.max_abs) }}, mean {{ '%.3g' | format(facts.revisions.mean_abs) }}){% endif %}.
{% if facts.revisions.largest %}
{{ facts.revisions.largest | md_table }}
{% endif %}{% elif facts.first_load %}None: nothing was published before.
{% else %}Not compared (the marts were not rebuilt).
{% endif %}{% endif %}
{% if top_cities %}
## Ten most resilient cities, latest year

{{ top_cities | md_table }}
{% endif %}
{% if baseline_md %}
## Baseline DID (the resilience study's Table 3)

{{ baseline_md }}
{% for line in truth %}- {{ line }}
{% endfor %}{% endif %}
{% if program %}
## Event study (parallel trends; k = −4…7, base −1)

{{ program.event_md }}

![Event study]({{ program.figures.event_study }})
{% if program.event_truth %}
Estimates against the generator's true ATT per event time:

{{ program.event_truth | md_table }}
{% endif %}
## Placebo test ({{ program.placebo.draws }} random adoption assignments)

Real estimate {{ program.placebo.coef }} (p = {{ program.placebo.p }}); placebo coefficients: mean {{ program.placebo.placebo_mean }}, sd {{ program.placebo.placebo_sd }}; share of placebo p-values below 0.1: {{ program.placebo.share_p_below_0_1 }}. Two-sided randomisation p-value: **{{ program.placebo.ri_p_value }}** ({{ program.placebo.ri_p_value_plus1 }} counting the real assignment).

![Placebo]({{ program.figures.placebo }})

## The NQP study's Table 3 (outcome: nqp)

{{ program.nqp_md }}
{% endif %}
## Where things are

- warehouse: `{{ summary.warehouse }}`
- report: `{{ report_md }}` (HTML: `{{ report_html }}`)
{% if summary.gx_docs %}- GX Data Docs: `{{ summary.gx_docs }}`
{% endif %}- step timings (s): {{ timings }}
"""

HTML_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: left; }
th { background: #f3f3f3; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: .6em; font-weight: bold; }
.status-published, .status-would-publish, .status-passed { color: #1a7f37; }
.status-refused, .status-would-refuse, .status-failed { color: #c62828; }
.critical { color: #c62828; } .warning { color: #a66a00; }
code { background: #f5f5f5; padding: 0 .2em; }
</style></head><body>
<h1>{{ title }}</h1>
{% if synthetic %}<p class="banner">{{ banner }}</p>{% endif %}
<p>Status: <strong class="status-{{ status | replace(' ', '-') }}">{{ status }}</strong>{% if reasons %} — {{ reasons | join('; ') }}{% endif %}</p>
{% if dry_run %}<p><em>Dry run: nothing was published; the published warehouse is unchanged.</em></p>{% endif %}
{% if mode != 'validate' %}<h2>Files</h2>
<ul><li>loaded: {{ summary.files_loaded | length }}</li><li>already loaded (skipped): {{ summary.files_skipped }}</li>
<li>failed: {{ summary.files_failed | length }}<ul>{% for failed in summary.files_failed %}<li><code>{{ failed.file }}</code>: {{ failed.error }}</li>{% endfor %}</ul></li></ul>
{{ files | html_table(['source', 'file_name', 'sha256', 'rows', 'status', 'replaces_earlier']) }}
{% if summary.dbt_failures %}<h2>dbt failures</h2><ul>{% for f in summary.dbt_failures %}<li><code>{{ f.unique_id }}</code>: {{ f.message }}</li>{% endfor %}</ul>{% endif %}
{% if summary.dbt_warnings %}<h2>dbt warnings</h2><ul>{% for f in summary.dbt_warnings %}<li><code>{{ f.unique_id }}</code>: {{ f.message }}</li>{% endfor %}</ul>{% endif %}
<h2>New and changed cities and years</h2>
{% if facts.first_load %}<p>First load: every city-year is new.</p>
{% elif facts.changes %}{% if facts.changes.new_years %}<p>New years: {{ facts.changes.new_years | join(', ') }}</p>{% endif %}
{% if facts.changes.new_cities %}<p>New cities:</p>{{ facts.changes.new_cities | html_table }}{% endif %}
{% if facts.changes.by_year %}{{ facts.changes.by_year | html_table }}{% else %}<p>No city-year differs from the published vintage.</p>{% endif %}
{% if facts.changes.changed_examples %}<p>Changed city-years (examples):</p>{{ facts.changes.changed_examples | html_table }}{% endif %}
{% else %}<p>Not compared (the marts were not rebuilt).</p>{% endif %}{% endif %}
<h2>Imputed cells</h2>
{% if facts.imputed %}<p>{{ facts.imputed.total }} cells filled by interpolation.</p>{{ facts.imputed.by_variable | html_table }}
{% if facts.imputed.examples %}<p>Examples:</p>{{ facts.imputed.examples | html_table }}{% endif %}
{% else %}<p>Not computed (the marts were not rebuilt).</p>{% endif %}
{% if facts.coverage %}<p>Panel cells: {% for k, v in facts.coverage.cells | dictsort %}{{ k }} {{ v }}{{ ', ' if not loop.last }}{% endfor %} — imputed share {{ '%.3f' | format(100 * facts.coverage.imputed_share) }} %.</p>
<h2>City names resolved</h2>{{ facts.coverage.resolved_names | html_table }}{% endif %}
<h2>Expectations</h2>
<ul><li>passed: {{ summary.expectations_passed }}</li>
<li>failed: {{ summary.expectations_failed | length }} ({{ critical | length }} critical, {{ warnings | length }} warning)</li>
{% for note in summary.validation_notes %}<li>note: {{ note }}</li>{% endfor %}
{% if summary.gx_docs %}<li>details: <a href="{{ summary.gx_docs }}">GX Data Docs</a></li>{% endif %}</ul>
{% for failed in critical + warnings %}
<h3 class="{{ failed.severity }}">[{{ failed.severity }}] {{ failed.check }} — {{ failed.relation }}{% if failed.column %}.{{ failed.column }}{% endif %}</h3>
<p>{{ failed.description }}{% if failed.threshold %} (threshold {{ failed.threshold }}){% endif %}:
{% if failed.unexpected_count is not none %}{{ failed.unexpected_count }} of {{ failed.element_count }} rows unexpected{% else %}{{ failed.observed or failed.examples }}{% endif %} (<code>{{ failed.expectation }}</code>).</p>
{{ failed.example_rows[:limit] | list | html_table }}
{% endfor %}
{% if mode != 'validate' %}<h2>Revisions to published index values</h2>
{% if facts.revisions %}<p>{{ facts.revisions.revised }} of {{ facts.revisions.compared }} published city-year values revised{% if facts.revisions.revised %} (largest |Δ| {{ '%.3g' | format(facts.revisions.max_abs) }}, mean {{ '%.3g' | format(facts.revisions.mean_abs) }}){% endif %}.</p>
{{ facts.revisions.largest | html_table }}
{% elif facts.first_load %}<p>None: nothing was published before.</p>{% else %}<p>Not compared (the marts were not rebuilt).</p>{% endif %}{% endif %}
{% if top_cities %}<h2>Ten most resilient cities, latest year</h2>{{ top_cities | html_table }}{% endif %}
{% if baseline_html %}<h2>Baseline DID (the resilience study's Table 3)</h2>{{ baseline_html | safe }}
<ul>{% for line in truth %}<li>{{ line | replace('**', '') }}</li>{% endfor %}</ul>{% endif %}
{% if program %}<h2>Event study (parallel trends; k = −4…7, base −1)</h2>{{ program.event_html | safe }}
<p><img src="{{ program.figures.event_study }}" alt="Event study" style="max-width: 100%"></p>
{% if program.event_truth %}<p>Estimates against the generator's true ATT per event time:</p>{{ program.event_truth | html_table }}{% endif %}
<h2>Placebo test ({{ program.placebo.draws }} random adoption assignments)</h2>
<p>Real estimate {{ program.placebo.coef }} (p = {{ program.placebo.p }}); placebo coefficients: mean {{ program.placebo.placebo_mean }}, sd {{ program.placebo.placebo_sd }}; two-sided randomisation p-value <strong>{{ program.placebo.ri_p_value }}</strong>.</p>
<p><img src="{{ program.figures.placebo }}" alt="Placebo" style="max-width: 100%"></p>
<h2>The NQP study's Table 3 (outcome: nqp)</h2>{{ program.nqp_html | safe }}{% endif %}
<h2>Where things are</h2>
<ul><li>warehouse: <code>{{ summary.warehouse }}</code></li><li>report: <a href="report.md">report.md</a></li>
{% if summary.gx_docs %}<li>GX Data Docs: <a href="{{ summary.gx_docs }}">{{ summary.gx_docs }}</a></li>{% endif %}
<li>step timings (s): {{ timings }}</li></ul>
</body></html>
"""


def _environment(autoescape: bool):
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=autoescape, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=False)
    env.filters["md_table"] = md_table
    env.filters["html_table"] = lambda rows, columns=None: Markup(html_table(rows, columns))
    return env


def _title(summary) -> str:
    kind = {"dry-run": "dry run", "validate": "validation of the published warehouse"}.get(
        summary.mode, "refresh")
    return f"cityres {kind} {summary.vintage}"


def write_report(home: Home, summary, estimation, ground_truth: dict | None,
                 index_db: Path | None = None) -> Path:
    """Write reports/<vintage>/report.md and report.html; return the Markdown path.

    `index_db` is the warehouse whose index the report shows (the published one after a
    publish, the candidate of a dry run that would publish); None shows no index.
    """
    folder = home.reports / summary.vintage
    folder.mkdir(parents=True, exist_ok=True)
    if index_db is None and summary.status == "published":
        index_db = home.warehouse_db
    top = []
    if index_db is not None and Path(index_db).exists():
        with connect_read_only(index_db) as con:
            top = _records(top_cities(con))
    baseline_md = baseline_html = ""
    truth: list[str] = []
    program = {}
    if estimation is not None:
        from estimation.studies.common import table3
        from estimation.studies.resilience import truth_comparison

        specs, results = estimation.baseline
        baseline_md = table3(specs, results, "markdown")
        baseline_html = table3(specs, results, "html")
        if ground_truth is not None:
            truth = truth_comparison(results, ground_truth, estimation.panel_years)
        program = program_sections(estimation, folder, ground_truth)
    failed = summary.expectations_failed
    facts = summary.facts or {"files": [], "first_load": False, "changes": None, "imputed": None,
                              "revisions": None, "errors": []}
    facts.setdefault("coverage", None)
    files = [{**f, "sha256": (f.get("sha256") or "")[:16]} for f in facts.get("files", [])]
    context = {
        "title": _title(summary), "synthetic": summary.synthetic, "banner": SYNTHETIC_BANNER,
        "status": summary.status, "reasons": summary.reasons, "dry_run": summary.mode == "dry-run",
        "mode": summary.mode,
        "summary": summary, "facts": facts, "files": files,
        "critical": [f for f in failed if f["severity"] == "critical"],
        "warnings": [f for f in failed if f["severity"] != "critical"],
        "limit": EXAMPLES_IN_REPORT, "top_cities": top, "baseline_md": baseline_md,
        "baseline_html": baseline_html, "truth": truth, "program": program,
        "report_md": str(folder / "report.md"), "report_html": str(folder / "report.html"),
        "timings": json.dumps(summary.step_seconds),
    }
    md_path, html_path = folder / "report.md", folder / "report.html"
    md_path.write_text(_environment(False).from_string(MARKDOWN_TEMPLATE).render(context), encoding="utf-8")
    html_path.write_text(_environment(True).from_string(HTML_TEMPLATE).render(context), encoding="utf-8")
    summary.report_html = str(html_path)
    return md_path
