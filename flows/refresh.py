"""The refresh flow: landing files → candidate warehouse → audit → publish → estimates → report.

Write-audit-publish. Every step works on a candidate file; the published warehouse changes only
in `publish`, by one atomic rename, and only when ingest, dbt and every critical expectation
passed. The same pipeline runs without Prefect and without publishing as the dry run of
`cityres validate --landing DIR` (a scratch candidate, thrown away afterwards).

Orchestration only; each step's logic lives in warehouse/, expectations/ and estimation/.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from warehouse.paths import Home


@dataclass
class RefreshSummary:
    vintage: str
    status: str  # published | refused | unchanged; dry run: would publish | would refuse; validate: passed | failed
    reasons: list[str] = field(default_factory=list)
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: int = 0
    files_withdrawn: list[str] = field(default_factory=list)
    files_failed: list[dict] = field(default_factory=list)
    dbt_failures: list[dict] = field(default_factory=list)
    dbt_warnings: list[dict] = field(default_factory=list)
    expectations_passed: int = 0
    expectations_failed: list[dict] = field(default_factory=list)
    synthetic: bool = False
    warehouse: str = ""
    report: str = ""
    step_seconds: dict = field(default_factory=dict)
    mode: str = "refresh"  # refresh | dry-run | validate
    report_html: str = ""
    gx_docs: str = ""  # GX Data Docs index, relative to the report folder
    validation_notes: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # files, changes, imputed cells, revisions (report)

    def to_dict(self) -> dict:
        return asdict(self)

    def record_validation(self, outcome) -> None:
        self.expectations_passed = sum(r.success for r in outcome.results)
        self.expectations_failed = [asdict(r) for r in outcome.results if not r.success]
        self.validation_notes = list(outcome.notes)
        if outcome.docs_index:
            self.gx_docs = "gx/index.html"
        if not outcome.publishable:
            names = sorted({f"{r.check} ({r.relation})" for r in outcome.failed_critical})
            self.reasons.append(f"{len(outcome.failed_critical)} critical expectation(s) failed: "
                                + ", ".join(names))


@dataclass(frozen=True)
class Workspace:
    """Where a refresh reads and builds. A dry run builds in a scratch folder, never in the home."""

    home: Home  # the published warehouse and the reports
    landing: Path
    candidate: Path
    archive: Path
    work: Path  # dbt target and logs
    # A refresh withdraws the files in force that left the landing folder; a dry run of a
    # delivery folder asks what adding its files would do, so it withdraws nothing.
    withdraw_missing: bool = True

    @classmethod
    def for_refresh(cls, home: Home) -> "Workspace":
        return cls(home, home.landing, home.candidate_db, home.archive, home.root / "dbt")

    @classmethod
    def for_dry_run(cls, home: Home, landing: Path, scratch: Path) -> "Workspace":
        return cls(home, landing, scratch / "candidate.duckdb", scratch / "archive", scratch / "dbt",
                   withdraw_missing=landing == home.landing)


# ---------------------------------------------------------------- steps (plain functions)

def nothing_new(ws: Workspace, retry_failed: bool = False) -> bool:
    """Every landing file's content is already loaded, or was refused before and is unchanged."""
    from warehouse.status import landing_has_news

    return not landing_has_news(ws.home, retry_failed, ws.landing)


def prepare(ws: Workspace) -> Path:
    from warehouse.publish import prepare_candidate

    return prepare_candidate(ws.home.warehouse_db, ws.candidate)


def ingest(ws: Workspace, vintage: str, retry_failed: bool = False):
    from warehouse.deliveries import DeliveryConfig
    from warehouse.ingest import ingest_landing
    from warehouse.landing import CACHE_FILE
    from warehouse.publish import connect_for_write

    config = DeliveryConfig.for_home(ws.home)
    with connect_for_write(ws.candidate) as con:
        return ingest_landing(con, ws.landing, ws.archive, load_id=vintage, retry_failed=retry_failed,
                              home_root=ws.archive.parent, config=config, withdraw_missing=ws.withdraw_missing,
                              cache_path=ws.home.root / CACHE_FILE if ws.landing == ws.home.landing else None)


# dbt's unit tests check the models' SQL on fixed fixtures, not the delivered data: the test
# suite runs them (tests/test_dbt_models.py); a refresh runs the models and the data tests.
DBT_BUILD = ["build", "--exclude-resource-type", "unit_test"]


def _dbt_target(ws: Workspace, vintage: str) -> dict:
    """Where this vintage's dbt build runs: database, work folder, vars, the kept parse."""
    from warehouse.dbt_runner import PARSE_STATE
    from warehouse.settings import load_dbt_vars

    return dict(database=ws.candidate, work_dir=ws.work / vintage,
                vars_={**load_dbt_vars(ws.home), "vintage": vintage}, parse_cache=ws.work / PARSE_STATE)


def prepare_dbt(ws: Workspace, vintage: str):
    """A dbt process that imports dbt and parses the project while the files are ingested."""
    from warehouse.dbt_runner import PreparedDbt

    return PreparedDbt(**_dbt_target(ws, vintage))


def dbt_build(ws: Workspace, vintage: str, prepared=None):
    """`dbt build` on the candidate: in ``prepared`` (a PreparedDbt of this vintage) if given."""
    from warehouse.dbt_runner import run_dbt
    from warehouse.faults import crash_point

    crash_point("dbt")
    if prepared is not None:
        return prepared.run(DBT_BUILD)
    return run_dbt(DBT_BUILD, **_dbt_target(ws, vintage))


def start_audit(ws: Workspace, vintage: str, dbt_succeeded: bool, workers=None):
    """Begin the raw suite on this load's rows, the marts suite on what dbt rebuilt and the drift
    against the published vintage, on the candidate opened read-only: in one of ``workers``
    (flows.workers.RefreshWorkers) while the flow goes on, or here and now without them."""
    from expectations.audit import rebuilt_models
    from flows.workers import run_here, timed_audit
    from warehouse.faults import crash_point

    crash_point("validate")
    kwargs = dict(load_id=vintage, rebuilt=None if dbt_succeeded else rebuilt_models(ws.work / vintage / "target"),
                  previous=ws.home.warehouse_db if ws.home.warehouse_db.exists() else None,
                  docs_dir=ws.home.reports / vintage / "gx")
    if workers is None:
        return run_here(timed_audit, ws.candidate, vintage, kwargs)
    return workers.audit(ws.candidate, vintage, **kwargs)


def record_audit(ws: Workspace, vintage: str, pending):
    """The audit's outcome once it is done: into the candidate and beside the report (Data Docs
    under reports/<vintage>/gx); also the seconds the audit itself took."""
    from expectations.config import GX_DOCS_KEEP
    from expectations.results import persist_validation, write_validation_json
    from expectations.runner import prune_docs

    outcome, seconds = pending.result()
    persist_validation(ws.candidate, vintage, outcome)
    write_validation_json(ws.home.reports / vintage / "validation.json", vintage, outcome)
    prune_docs(ws.home.reports, GX_DOCS_KEEP)
    return outcome, seconds


def load_facts(ws: Workspace, vintage: str, marts_built: bool) -> dict:
    from warehouse.coverage import coverage_summary
    from flows.report import collect_facts

    facts = collect_facts(ws.candidate, ws.home.warehouse_db, vintage, marts_built)
    if marts_built:
        facts["coverage"] = coverage_summary(ws.candidate).to_dict()
    return facts


def _studies(ws: Workspace) -> list[str]:
    """The studies to run: the core ones and cityres.toml's [refresh] studies (checked with the
    rest of the file before the refresh), longest first."""
    from estimation.studies.program import selected_studies
    from warehouse.settings import load_refresh_settings

    return order_by_cost(selected_studies(load_refresh_settings(ws.home).studies))


def estimate(ws: Workspace, workers=None) -> dict:
    """The studies' program on the candidate, read-only (it may run while the audit reads it):
    the results by study, written by `persist_estimates` once the vintage may be published."""
    from estimation.studies.program import run_study
    from warehouse.connections import connect_read_only
    from warehouse.faults import crash_point

    crash_point("estimate")
    names = _studies(ws)
    if workers is not None:
        pending = {name: workers.study(ws.candidate, name) for name in names}
        return {name: p.result() for name, p in pending.items()}
    with connect_read_only(ws.candidate) as con:
        return {name: run_study(con, name) for name in names}


def persist_estimates(ws: Workspace, vintage: str, synthetic: bool, results: dict):
    """Write the program's results with the vintage, so it is published with them."""
    from estimation.studies.program import persist_program
    from warehouse.publish import connect_for_write

    with connect_for_write(ws.candidate) as con:
        return persist_program(con, results, vintage, synthetic)


def record_provenance(ws: Workspace, vintage: str, ground_truth: dict | None) -> None:
    from warehouse.provenance import record_provenance as record
    from warehouse.publish import connect_for_write

    with connect_for_write(ws.candidate) as con:
        record(con, vintage, ground_truth)


def publish(ws: Workspace, outcome) -> None:
    from warehouse.faults import crash_point
    from warehouse.publish import publish as publish_candidate

    crash_point("before_publish")
    publish_candidate(ws.candidate, ws.home.warehouse_db, gate=outcome)
    crash_point("after_publish")


def record_refusal(ws: Workspace, vintage: str, reasons: list[str]) -> int:
    """Put this refused load's attempts into the published manifest; no published data changes."""
    from warehouse.publish import publish_refused_attempts

    return publish_refused_attempts(ws.candidate, ws.home.warehouse_db, vintage, reasons)


def report(ws: Workspace, summary: RefreshSummary, estimation, ground_truth: dict | None,
           index_db: Path | None = None, workers=None) -> Path:
    """The load's report; the studies' figures drawn in ``workers`` (RefreshWorkers) if given."""
    from flows.report import write_report
    from warehouse.faults import crash_point

    crash_point("report")
    return write_report(ws.home, summary, estimation, ground_truth, index_db=index_db,
                        submit=None if workers is None else workers.submit)


@dataclass(frozen=True)
class Steps:
    """The pipeline's steps: Prefect tasks in the flow, the plain functions in a dry run."""

    nothing_new: Callable
    prepare: Callable
    ingest: Callable
    dbt_build: Callable
    start_audit: Callable
    record_audit: Callable
    load_facts: Callable
    estimate: Callable
    persist_estimates: Callable
    record_provenance: Callable
    publish: Callable
    report: Callable
    record_refusal: Callable


PLAIN_STEPS = Steps(nothing_new, prepare, ingest, dbt_build, start_audit, record_audit, load_facts, estimate,
                    persist_estimates, record_provenance, publish, report, record_refusal)


def estimate_one(candidate: Path, name: str, workers=None):
    from flows.workers import study_on

    # In one of the refresh's worker processes when there are any; else in this thread (DuckDB
    # shares one read-only database instance between the threads).
    return study_on(candidate, name) if workers is None else workers.study(candidate, name).result()


# Worker processes are handles: nothing Prefect could hash into a cache key.
study_task = task(name="estimate", task_run_name="estimate: {name}", cache_policy=NO_CACHE)(estimate_one)


# The studies that take longest on the sample, longest first (seconds on one core: 3.1, 2.8, 2.7,
# 1.1, 0.9, 0.8, 0.6, 0.5, 0.4; the others 0.3 or less): handed out first, so that the last ones
# to start are short and the workers finish together (longest-processing-time first).
SLOWEST_STUDIES = ("nqp_resilience_tables", "modern_did", "spec_curve", "nqp_table5", "nqp_table6",
                   "heterogeneity", "nqp_robustness", "table4_psm", "wild_bootstrap")


def order_by_cost(names: list[str]) -> list[str]:
    slow = [n for n in SLOWEST_STUDIES if n in names]
    return slow + [n for n in names if n not in slow]


@flow(name="estimation", task_runner=ThreadPoolTaskRunner(max_workers=4))
def estimation_subflow(ws: Workspace, workers: object = None) -> dict:
    """The studies' program, each study a task, four at a time: in the refresh's worker
    processes when there are any (longest first), else in this process's threads."""
    from warehouse.faults import crash_point

    crash_point("estimate")
    futures = {name: study_task.submit(ws.candidate, name, workers) for name in _studies(ws)}
    return {name: future.result() for name, future in futures.items()}


TASK_STEPS = Steps(
    nothing_new=task(name="check landing for new files")(nothing_new),
    prepare=task(name="prepare candidate warehouse")(prepare),
    ingest=task(name="ingest landing files")(ingest),
    dbt_build=task(name="dbt build", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)(dbt_build),
    start_audit=task(name="validate: start the raw and marts suites", cache_policy=NO_CACHE)(start_audit),
    record_audit=task(name="validate: record the suites' outcome", cache_policy=NO_CACHE)(record_audit),
    load_facts=task(name="collect load facts")(load_facts),
    estimate=estimation_subflow,
    persist_estimates=task(name="persist estimates", cache_policy=NO_CACHE)(persist_estimates),
    record_provenance=task(name="record provenance")(record_provenance),
    publish=task(name="publish")(publish),
    report=task(name="write report", cache_policy=NO_CACHE)(report),
    record_refusal=task(name="record the refused attempt")(record_refusal),
)


# ---------------------------------------------------------------- the pipeline

def run_pipeline(ws: Workspace, vintage: str, steps: Steps, *, dry_run: bool = False, retry_failed: bool = False,
                 logger: logging.Logger | logging.LoggerAdapter | None = None, workers=None,
                 prepared_dbt=None) -> RefreshSummary:
    """Build a candidate from the landing files, audit it, and publish it unless `dry_run`.

    ``workers`` (flows.workers.RefreshWorkers): the audit and the studies run there side by side
    on the read-only candidate; the studies' results are written only if the audit lets the
    vintage be published. Without them the audit runs first, the studies only after it passed.
    ``prepared_dbt`` (warehouse.dbt_runner.PreparedDbt of this vintage): runs the dbt build.
    """
    from warehouse.provenance import read_ground_truth

    logger = logger or logging.getLogger("cityres.refresh")
    summary = RefreshSummary(vintage=vintage, status="refused", warehouse=str(ws.home.warehouse_db),
                             mode="dry-run" if dry_run else "refresh")
    ground_truth = read_ground_truth(ws.landing)
    summary.synthetic = ground_truth is not None
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        summary.step_seconds[step] = round(summary.step_seconds.get(step, 0.0) + now - clock, 2)
        clock = now

    if not dry_run and steps.nothing_new(ws, retry_failed):
        # Checked before the candidate is copied, so a refresh with no new files costs a
        # directory scan and a read of the manifest (hashes cached on size and mtime).
        summary.status = "unchanged"
        summary.reasons.append("no new files in the landing folder")
        logger.info("refresh %s: unchanged (no new files in the landing folder)", vintage)
        return summary
    if workers is not None:
        # They import GX and the studies' stack on the core the ingest (one core) leaves free.
        workers.start()
    steps.prepare(ws)
    loaded = steps.ingest(ws, vintage, retry_failed)
    lap("ingest")
    summary.files_loaded = [f.file_name for f in loaded.loaded]
    summary.files_skipped = len(loaded.skipped)
    summary.files_failed = [{"file": f.file_name, "error": f.error} for f in loaded.failed]
    logger.info("ingest: %d loaded, %d already loaded, %d failed",
                len(loaded.loaded), len(loaded.skipped), len(loaded.failed))
    if loaded.failed:
        summary.reasons.append(f"{len(loaded.failed)} file(s) could not be loaded")
    estimation, index_db = None, None
    if loaded.withdrawn:
        summary.files_withdrawn = [f.file_name for f in loaded.withdrawn]
    if not loaded.loaded and not loaded.withdrawn and (loaded.failed or ws.home.warehouse_db.exists()):
        if loaded.failed:
            summary.facts = steps.load_facts(ws, vintage, False)
        else:
            summary.status = "unchanged"
            summary.reasons.append("no new files in the landing folder")
    else:
        dbt = steps.dbt_build(ws, vintage, prepared_dbt)
        lap("dbt build")
        summary.dbt_failures, summary.dbt_warnings = dbt.failures, dbt.warnings
        if not dbt.success:
            from warehouse.dbt_words import explain_failures

            words = explain_failures(dbt.failures, ws.work / vintage / "target", ws.candidate)
            for failure, line in zip(dbt.failures, words):
                failure["explanation"] = line
            summary.reasons.append("dbt build failed: " + ("; ".join(words[:5]) or dbt.log_tail[-2000:]))
        # The raw suite runs even when dbt failed (the staging views exist): the report then
        # names the offending file, row and column, not only the failed dbt test.
        pending = steps.start_audit(ws, vintage, dbt.success, workers)
        lap("validate")
        summary.facts = steps.load_facts(ws, vintage, dbt.success)
        lap("facts")
        results = None
        if workers is not None and not summary.reasons and not dry_run:
            results = steps.estimate(ws, workers)
            lap("estimate")
        outcome, audit_seconds = steps.record_audit(ws, vintage, pending)
        summary.record_validation(outcome)
        lap("validate")
        summary.step_seconds["audit, beside the studies (not on the path)"] = round(audit_seconds, 2)
        if not summary.reasons:
            if dry_run:
                summary.status, index_db = "would publish", ws.candidate
            else:
                if results is None:
                    results = steps.estimate(ws)
                    lap("estimate")
                estimation = steps.persist_estimates(ws, vintage, summary.synthetic, results)
                steps.record_provenance(ws, vintage, ground_truth)
                lap("persist estimates")
                steps.publish(ws, outcome)
                summary.status = "published"
                lap("publish")
    if dry_run and summary.status == "refused":
        summary.status = "would refuse"
    elif summary.status == "refused" and ws.home.warehouse_db.exists():
        recorded = steps.record_refusal(ws, vintage, summary.reasons)
        summary.facts.setdefault("notes", []).append(
            f"{recorded} file attempt(s) of this refused load are recorded in the published raw.load_manifest "
            "(status failed or refused); the published data are unchanged")
    notes = [f.note for f in loaded.files if getattr(f, "note", None)]
    if notes:
        summary.facts.setdefault("notes", []).extend(notes)
    if summary.status != "unchanged":
        summary.report = str(steps.report(ws, summary, estimation, ground_truth, index_db, workers))
        lap("report")
    logger.info("refresh %s: %s%s", vintage, summary.status,
                "" if not summary.reasons else " (" + "; ".join(summary.reasons) + ")")
    return summary


def _write_last_refresh(home: Home, summary: RefreshSummary) -> None:
    """reports/last_refresh.json, replaced in one rename (never half-written)."""
    home.reports.mkdir(parents=True, exist_ok=True)
    path = home.reports / "last_refresh.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False, default=str))
    tmp.replace(path)


def config_refusal(home: Home, vintage: str, mode: str = "refresh") -> RefreshSummary | None:
    """A refused summary naming every problem of cityres.toml, or None when it is valid."""
    from warehouse.settings import check_config

    problems = check_config(home)
    if not problems:
        return None
    return RefreshSummary(vintage=vintage, status="refused", reasons=problems, warehouse=str(home.warehouse_db),
                          mode=mode)


def recover_report(home: Home, logger=None) -> str | None:
    """Write the report of a published vintage whose refresh was killed before writing it.

    The studies' program is run again, read-only, on the published warehouse (the numbers are
    those persisted with the vintage); what the load changed relative to its predecessor is no
    longer known and the report says so.
    """
    from warehouse.status import vintage_without_report

    vintage = vintage_without_report(home)
    if vintage is None:
        return None
    from estimation.studies.program import program_results, run_study, selected_studies
    from warehouse.connections import connect_read_only
    from warehouse.provenance import is_synthetic, stored_ground_truth
    from warehouse.settings import load_refresh_settings

    with connect_read_only(home.warehouse_db) as con:
        chosen = selected_studies(load_refresh_settings(home).studies)
        program = program_results(con, {name: run_study(con, name) for name in chosen})
        synthetic = is_synthetic(con)
        ground_truth = stored_ground_truth(con)
    summary = RefreshSummary(vintage=vintage, status="published", warehouse=str(home.warehouse_db),
                             synthetic=synthetic)
    summary.reasons.append("report written by a later refresh: the refresh that published this vintage "
                           "stopped before writing it")
    summary.facts = load_facts_published(home, vintage)
    path = report(Workspace.for_refresh(home), summary, program, ground_truth, home.warehouse_db)
    if logger is not None:
        logger.warning("wrote the missing report of published vintage %s: %s", vintage, path)
    return str(path)


def load_facts_published(home: Home, vintage: str) -> dict:
    from flows.report import collect_facts

    facts = collect_facts(home.warehouse_db, None, vintage, marts_built=True)
    facts["first_load"] = False
    facts.setdefault("notes", []).append("what this load changed relative to the vintage before it is not known "
                                         "(its report was written after an interrupted refresh)")
    return facts


@flow(name="refresh", log_prints=False)
def refresh(home_dir: str | None = None, retry_failed: bool = False) -> dict:
    """Load new landing files and publish a new vintage if it passes every critical check.

    One refresh at a time per home (a lock, waited for up to [refresh] lock_wait_seconds);
    cityres.toml is checked before anything is touched; a published vintage whose report is
    missing gets it first.
    """
    from flows.workers import RefreshWorkers
    from warehouse.ingest import new_load_id
    from warehouse.lock import RefreshBusy, refresh_lock
    from warehouse.settings import load_refresh_settings

    home = Home(Path(home_dir).resolve()) if home_dir else Home.from_env()
    home.ensure()
    logger = get_run_logger()
    vintage = new_load_id()
    summary = config_refusal(home, vintage)
    if summary is None:
        try:
            with refresh_lock(home.root, load_refresh_settings(home).lock_wait_seconds, "cityres refresh",
                              on_wait=logger.warning), RefreshWorkers() as workers:
                ws = Workspace.for_refresh(home)
                prepared = prepare_dbt(ws, vintage)
                try:
                    recovered = recover_report(home, logger)
                    summary = run_pipeline(ws, vintage, TASK_STEPS, retry_failed=retry_failed, logger=logger,
                                           workers=workers, prepared_dbt=prepared)
                finally:
                    prepared.close()
                if recovered:
                    summary.reasons.append(f"the report of the published vintage was missing and has been written: "
                                           f"{recovered}")
        except RefreshBusy as exc:
            summary = RefreshSummary(vintage=vintage, status="busy", reasons=[str(exc)],
                                     warehouse=str(home.warehouse_db))
    _write_last_refresh(home, summary)
    return summary.to_dict()


def dry_run(home: Home, landing: Path) -> dict:
    """What would happen if the files of `landing` were loaded: the whole pipeline on a scratch
    copy of the published warehouse, without Prefect and without publishing. The report lands
    under reports/dry-<load id>/; the scratch folder is removed."""
    from warehouse.ingest import new_load_id

    from warehouse.lock import RefreshBusy, refresh_lock
    from warehouse.settings import load_refresh_settings

    home.ensure()
    vintage = "dry-" + new_load_id()
    refused = config_refusal(home, vintage, mode="dry-run")
    if refused is not None:
        refused.status = "would refuse"
        return refused.to_dict()
    scratch = home.root / "dry-run" / vintage
    try:
        with refresh_lock(home.root, load_refresh_settings(home).lock_wait_seconds, "cityres validate --landing"):
            scratch.mkdir(parents=True)
            summary = run_pipeline(Workspace.for_dry_run(home, Path(landing).resolve(), scratch), vintage,
                                   PLAIN_STEPS, dry_run=True)
    except RefreshBusy as exc:
        summary = RefreshSummary(vintage=vintage, status="busy", reasons=[str(exc)], mode="dry-run",
                                 warehouse=str(home.warehouse_db))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if scratch.parent.exists() and not any(scratch.parent.iterdir()):
            scratch.parent.rmdir()
    return summary.to_dict()


def validate_published(home: Home) -> dict:
    """Run the suites on the published warehouse (every load in force; no drift: nothing to
    compare with). Writes reports/validate-<timestamp>/ (report + Data Docs); changes nothing."""
    from expectations.audit import audit
    from expectations.config import GX_DOCS_KEEP
    from expectations.results import write_validation_json
    from expectations.runner import prune_docs
    from warehouse.connections import connect_read_only
    from warehouse.ingest import new_load_id
    from warehouse.provenance import is_synthetic
    from flows.report import collect_facts

    def load_facts_of(database: Path) -> dict:
        return collect_facts(database, None, vintage, marts_built=True)

    vintage = "validate-" + new_load_id()
    folder = home.reports / vintage
    started = time.perf_counter()
    outcome = audit(home.warehouse_db, vintage, load_id=None, docs_dir=folder / "gx")
    write_validation_json(folder / "validation.json", vintage, outcome)
    prune_docs(home.reports, GX_DOCS_KEEP)
    summary = RefreshSummary(vintage=vintage, status="passed" if outcome.publishable else "failed",
                             warehouse=str(home.warehouse_db), mode="validate")
    summary.record_validation(outcome)
    summary.facts = load_facts_of(home.warehouse_db)
    summary.step_seconds["validate"] = round(time.perf_counter() - started, 2)
    with connect_read_only(home.warehouse_db) as con:
        summary.synthetic = is_synthetic(con)
    summary.report = str(report(Workspace.for_refresh(home), summary, None, None, home.warehouse_db))
    return summary.to_dict()
