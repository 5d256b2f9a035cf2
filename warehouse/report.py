"""The Markdown report each refresh leaves under reports/<vintage>/report.md."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

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


def top_cities(con: duckdb.DuckDBPyConnection, n: int = 10):
    return con.execute(TOP_CITIES_SQL, [n]).df()


def baseline_table(specs, results, fmt: str = "markdown") -> str:
    from estimation.baseline import CONTROLS, TERM_LABELS
    from estimation.tables import regression_table

    table = regression_table(
        results,
        terms=["did", *CONTROLS, "Intercept"],
        labels=TERM_LABELS,
        controls=False,
        fe_labels={"city_code": "City FE", "year": "Year FE"},
        stats=("nobs", "r2"),
    )
    return {"markdown": table.to_markdown, "text": table.to_text, "latex": table.to_latex}[fmt]()


def truth_comparison(results, ground_truth: dict) -> list[str]:
    """How the FE-with-controls estimate (column 4) compares with the generator's true ATT."""
    truth = ground_truth["att"]["resilience_index"]
    result = results[3]
    low, high = (float(v) for v in result.conf_int.loc["did"])
    covered = low <= truth <= high
    return [
        f"- True ATT of the policy on the index (generator ground truth): **{truth:.5f}**",
        f"- Column (4) estimate: **{result.coef['did']:.5f}**, 95% CI [{low:.5f}, {high:.5f}] — "
        + ("covers the truth." if covered else "does NOT cover the truth."),
    ]


def _markdown_frame(frame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_report(home: Home, summary, estimation, ground_truth: dict | None) -> Path:
    folder = home.reports / summary.vintage
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# cityres refresh {summary.vintage}", ""]
    if summary.synthetic:
        lines += [f"> **{SYNTHETIC_BANNER}**", ""]
    lines += [f"Status: **{summary.status}**" + (f" — {'; '.join(summary.reasons)}" if summary.reasons else ""), ""]
    lines += ["## Files", "", f"- loaded: {len(summary.files_loaded)}",
              f"- already loaded (skipped): {summary.files_skipped}",
              f"- failed: {len(summary.files_failed)}", ""]
    for failed in summary.files_failed:
        lines.append(f"  - `{failed['file']}`: {failed['error']}")
    if summary.dbt_failures:
        lines += ["", "## dbt failures", ""]
        lines += [f"- `{f['unique_id']}`: {f['message']}" for f in summary.dbt_failures]
    if summary.dbt_warnings:
        lines += ["", "## dbt warnings", ""]
        lines += [f"- `{f['unique_id']}`: {f['message']}" for f in summary.dbt_warnings]
    lines += ["", "## Expectations", "", f"- passed: {summary.expectations_passed}",
              f"- failed: {len(summary.expectations_failed)}"]
    for failed in summary.expectations_failed:
        lines.append(f"  - [{failed['severity']}] {failed['relation']}.{failed['column']}: "
                     f"{failed['expectation']} ({failed['unexpected_count']} unexpected; e.g. {failed['examples']})")
    if summary.status == "published":
        with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
            lines += ["", "## Ten most resilient cities, latest year", "", _markdown_frame(top_cities(con)), ""]
    if estimation is not None:
        specs, results = estimation
        lines += ["## Baseline DID (the resilience study's Table 3)", "",
                  baseline_table(specs, results, "markdown"), ""]
        if ground_truth is not None:
            lines += truth_comparison(results, ground_truth) + [""]
    lines += ["## Where things are", "", f"- warehouse: `{home.warehouse_db}`",
              f"- report: `{folder / 'report.md'}`",
              f"- step timings (s): {json.dumps(summary.step_seconds)}", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
