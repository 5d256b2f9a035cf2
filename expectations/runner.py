"""Great Expectations plumbing shared by every suite: DataFrame batches in, CheckResults out.

Suites are code: each suite module builds `Batch`es (a DataFrame read from DuckDB and the
`Expect`ations to run on it) without importing great_expectations; `run_batches` turns them
into GX suites (add_or_update), validates them with the load id as run_id, and, when asked,
builds GX Data Docs for this validation only. GX's SQL datasource fails on DuckDB, hence
pandas batches; GX marks a run failed on any failed expectation, hence the severity in meta
and the gate in expectations/gate.py.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from expectations.config import EXAMPLES_STORED
from expectations.gate import CheckResult, ValidationOutcome

DOCS_SITE = "cityres_load"


@dataclass(frozen=True)
class Expect:
    """One expectation: the GX class name, its arguments, and what cityres makes of it."""

    kind: str  # GX expectation class, e.g. "ExpectColumnValuesToBeBetween"
    check: str  # stable cityres check name, e.g. "raw.plausible_range" (docs/data-quality.md)
    severity: str  # critical | warning
    description: str
    kwargs: dict = field(default_factory=dict)
    threshold: str = ""
    where: tuple | None = None  # row condition: (column, "==", value) or (column, "not in", values)


@dataclass
class Batch:
    """A DataFrame and the expectations to validate on it (one GX suite)."""

    suite: str  # e.g. "raw.city_yearbook" or "marts"
    name: str  # relation shown in reports, e.g. "city_yearbook.cells"
    frame: pd.DataFrame
    expectations: list[Expect]
    example_columns: tuple[str, ...] = ()  # columns that locate an unexpected row

    @property
    def suite_name(self) -> str:
        return f"{self.suite}.{self.name}"


def _plain(value):
    """JSON-friendly scalars (numpy, pandas NA, timestamps)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def example_text(rows: tuple[dict, ...], limit: int = 5) -> str:
    """'file=…, row=…; …' — the rows as one line of text."""
    return "; ".join(", ".join(f"{k}={v}" for k, v in row.items() if v is not None) for row in rows[:limit])


def _example_rows(result: dict) -> tuple[dict, ...]:
    rows = result.get("partial_unexpected_index_list")
    if rows:
        return tuple({k: _plain(v) for k, v in row.items()} for row in rows[:EXAMPLES_STORED])
    values = result.get("partial_unexpected_list") or []
    return tuple({"value": _plain(v)} for v in values[:EXAMPLES_STORED])


def _column_of(kwargs: dict) -> str | None:
    return kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or None


def _to_check_result(batch: Batch, result) -> CheckResult:
    config = result.expectation_config
    meta = config.meta or {}
    payload = result.result or {}
    rows = _example_rows(payload)
    observed = payload.get("observed_value")
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed = "error: " + str(result.exception_info.get("exception_message"))
    return CheckResult(
        suite=batch.suite,
        relation=batch.name,
        expectation=config.type,
        column=_column_of(config.kwargs),
        severity=meta.get("severity", "critical"),
        success=bool(result.success),
        unexpected_count=payload.get("unexpected_count"),
        examples=example_text(rows) if not result.success else "",
        check=meta.get("check", ""),
        description=meta.get("description", ""),
        threshold=meta.get("threshold", ""),
        element_count=payload.get("element_count"),
        observed="" if observed is None else json.dumps(_plain(observed), ensure_ascii=False, default=str),
        example_rows=rows if not result.success else (),
    )


def _row_condition(where: tuple):
    from great_expectations.expectations.row_conditions import Column

    column, operator, value = where
    if operator == "==":
        return Column(column) == value
    if operator == "not in":
        return Column(column).is_not_in(list(value))
    raise ValueError(f"unsupported row condition operator {operator!r}")


def _gx_expectation(gx, expect: Expect):
    cls = getattr(gx.expectations, expect.kind)
    meta = {"severity": expect.severity, "check": expect.check, "description": expect.description,
            "threshold": expect.threshold}
    kwargs = dict(expect.kwargs)
    if expect.where is not None:
        kwargs["row_condition"] = _row_condition(expect.where)
    return cls(**kwargs, meta=meta, description=f"[{expect.severity}] {expect.description}")


def run_batches(batches: list[Batch], run_id: str, docs_dir: Path | None = None) -> ValidationOutcome:
    """Validate every batch with GX; with docs_dir, write this validation's Data Docs there."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx  # slow import (~3 s): kept off the CLI's import path

    outcome = ValidationOutcome()
    if not batches:
        return outcome
    # An in-memory context: it keeps this validation's results for the Data Docs and is thrown
    # away (suites are code, not stored JSON). A file context would rewrite its whole YAML
    # configuration at every asset added - seconds for the three dozen batches of a refresh.
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_or_update_pandas("cityres")
    run = gx.RunIdentifier(run_name=run_id)
    for batch in batches:
        asset = datasource.add_dataframe_asset(batch.name)
        definition = asset.add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add_or_update(gx.ExpectationSuite(
            name=batch.suite_name, expectations=[_gx_expectation(gx, e) for e in batch.expectations]))
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=batch.suite_name, data=definition, suite=suite))
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES_STORED}
        if batch.example_columns:
            result_format["unexpected_index_column_names"] = list(batch.example_columns)
        validated = validation.run(batch_parameters={"dataframe": batch.frame}, run_id=run,
                                   result_format=result_format)
        # GX returns results in its own order; keep the suite's order (descriptions are unique)
        order = {e.description: i for i, e in enumerate(batch.expectations)}
        results = [_to_check_result(batch, r) for r in validated.results]
        outcome.results.extend(sorted(results, key=lambda r: order.get(r.description, 0)))
    if docs_dir:
        outcome.docs_index = str(_build_docs(context, Path(docs_dir)))
    return outcome


def _build_docs(context, docs_dir: Path) -> Path:
    shutil.rmtree(docs_dir, ignore_errors=True)
    docs_dir.mkdir(parents=True)
    context.add_data_docs_site(site_name=DOCS_SITE, site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    context.build_data_docs(site_names=[DOCS_SITE])
    return docs_dir / "index.html"


def prune_docs(reports_dir: Path, keep: int) -> list[Path]:
    """Delete the GX Data Docs of all but the `keep` newest loads (their reports stay)."""
    folders = sorted((p for p in reports_dir.glob("*/gx") if p.is_dir()),
                     key=lambda p: (p.stat().st_mtime, p.parent.name))
    removed = folders[:-keep] if keep > 0 else folders
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed
