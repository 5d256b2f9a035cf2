"""The refresh flow: landing files → candidate warehouse → audit → publish → estimates → report.

Orchestration only; each step's logic lives in warehouse/, expectations/ and estimation/.
Every step works on the candidate file; the published warehouse changes only in `publish`,
by one atomic rename, and only when ingest, dbt and every critical expectation passed.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task

from warehouse.paths import Home


@dataclass
class RefreshSummary:
    vintage: str
    status: str  # published | refused | unchanged
    reasons: list[str] = field(default_factory=list)
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: int = 0
    files_failed: list[dict] = field(default_factory=list)
    dbt_failures: list[dict] = field(default_factory=list)
    dbt_warnings: list[dict] = field(default_factory=list)
    expectations_passed: int = 0
    expectations_failed: list[dict] = field(default_factory=list)
    synthetic: bool = False
    warehouse: str = ""
    report: str = ""
    step_seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@task(name="prepare candidate warehouse")
def prepare_task(home: Home) -> Path:
    from warehouse.publish import prepare_candidate

    return prepare_candidate(home.warehouse_db, home.candidate_db)


@task(name="ingest landing files")
def ingest_task(home: Home, vintage: str):
    from warehouse.ingest import ingest_landing
    from warehouse.publish import connect_for_write

    with connect_for_write(home.candidate_db) as con:
        return ingest_landing(con, home.landing, home.archive, load_id=vintage)


@task(name="dbt build", retries=2, retry_delay_seconds=[2, 10])
def dbt_build_task(home: Home, vintage: str):
    from warehouse.dbt_runner import run_dbt

    return run_dbt(["build"], home.candidate_db, home.root / "dbt" / vintage, vars_={"vintage": vintage})


@task(name="validate marts")
def validate_task(home: Home, vintage: str):
    from expectations.marts_suite import validate_marts
    from expectations.results import persist_validation

    outcome = validate_marts(str(home.candidate_db), run_id=vintage)
    persist_validation(home.candidate_db, vintage, outcome)
    return outcome


@task(name="baseline estimation (Table 3)")
def estimate_task(home: Home, vintage: str, synthetic: bool):
    from estimation.baseline import baseline_specs, persist_estimates, run_specs
    from warehouse.publish import connect_for_write

    specs = baseline_specs()
    with connect_for_write(home.candidate_db) as con:
        results = run_specs(con, specs)
        persist_estimates(con, vintage, vintage, synthetic, specs, results)
    return specs, results


@task(name="publish")
def publish_task(home: Home) -> None:
    from warehouse.publish import publish

    publish(home.candidate_db, home.warehouse_db)


@task(name="record provenance")
def provenance_task(home: Home, vintage: str, ground_truth: dict | None) -> None:
    from warehouse.provenance import record_provenance
    from warehouse.publish import connect_for_write

    with connect_for_write(home.candidate_db) as con:
        record_provenance(con, vintage, ground_truth)


@task(name="write report")
def report_task(home: Home, summary: RefreshSummary, estimation, ground_truth: dict | None) -> Path:
    from warehouse.report import write_report

    return write_report(home, summary, estimation, ground_truth)


@flow(name="refresh", log_prints=False)
def refresh(home_dir: str | None = None) -> dict:
    """Load new landing files and publish a new vintage if it passes every critical check."""
    from warehouse.ingest import new_load_id
    from warehouse.provenance import read_ground_truth

    logger = get_run_logger()
    home = Home(Path(home_dir).resolve()) if home_dir else Home.from_env()
    home.ensure()
    vintage = new_load_id()
    summary = RefreshSummary(vintage=vintage, status="refused", warehouse=str(home.warehouse_db))
    ground_truth = read_ground_truth(home.landing)
    summary.synthetic = ground_truth is not None
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        summary.step_seconds[step] = round(now - clock, 2)
        clock = now

    prepare_task(home)
    ingest = ingest_task(home, vintage)
    lap("ingest")
    summary.files_loaded = [f.file_name for f in ingest.loaded]
    summary.files_skipped = len(ingest.skipped)
    summary.files_failed = [{"file": f.file_name, "error": f.error} for f in ingest.failed]
    logger.info("ingest: %d loaded, %d already loaded, %d failed",
                len(ingest.loaded), len(ingest.skipped), len(ingest.failed))
    estimation = None
    if ingest.failed:
        summary.reasons.append(f"{len(ingest.failed)} file(s) could not be loaded")
    elif not ingest.loaded and home.warehouse_db.exists():
        summary.status = "unchanged"
        summary.reasons.append("no new files in the landing folder")
    else:
        dbt = dbt_build_task(home, vintage)
        lap("dbt build")
        summary.dbt_failures, summary.dbt_warnings = dbt.failures, dbt.warnings
        if not dbt.success:
            summary.reasons.append("dbt build failed: " + (
                "; ".join(f["unique_id"] + ": " + str(f["message"]) for f in dbt.failures[:5])
                or dbt.log_tail[-2000:]))
        else:
            outcome = validate_task(home, vintage)
            lap("validate")
            summary.expectations_passed = sum(r.success for r in outcome.results)
            summary.expectations_failed = [asdict(r) for r in outcome.results if not r.success]
            if not outcome.publishable:
                summary.reasons.append(
                    f"{len(outcome.failed_critical)} critical expectation(s) failed")
            else:
                estimation = estimate_task(home, vintage, summary.synthetic)
                provenance_task(home, vintage, ground_truth)
                lap("estimate")
                publish_task(home)
                summary.status = "published"
                lap("publish")
    if summary.status != "unchanged":
        summary.report = str(report_task(home, summary, estimation, ground_truth))
        lap("report")
    logger.info("refresh %s: %s%s", vintage, summary.status,
                "" if not summary.reasons else " (" + "; ".join(summary.reasons) + ")")
    (home.reports / "last_refresh.json").write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
    return summary.to_dict()
