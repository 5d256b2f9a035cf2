"""Firm registrations at scale: generate, ingest and aggregate 10M, 50M and 100M records.

For each size the sample generator writes the firm-record files (one CSV per year, 2011-2023) at
the firm scale that gives that many records; then, each step in its own subprocess (so that its
peak RSS is its own):

* **ingest**: ``warehouse.ingest.ingest_landing`` of the enterprise files into a new warehouse
  file, as a refresh does it (content hashes, crash-safe archive copy, streaming parse, insert),
  plus the final CHECKPOINT; a new warehouse and archive each run.
* **aggregation**: the model ``int_firm_entry`` alone: its compiled SQL (``dbt compile``, the
  views it reads inlined by DuckDB) run as ``create temp table ... as`` on the loaded warehouse,
  in a fresh process each run (the model inside ``dbt run`` is also reported once, with dbt's
  own overhead). For comparison the row-by-row grouping of ``int_enterprise_registrations``
  (what the model did before) is timed the same way.

Before any time is reported, the rows loaded and the city-year counts of the model (and of the
row-by-row grouping) are checked against the generator's counts (``FirmCounts``: all and digital
registrations per city and year).

Standalone: ``python -m tests.benchmarks.firm_scale [--firm-scale-sizes 1000000,3000000]``
writes tests/benchmarks/results/firm_scale.json and prints the section.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import median

NAME = "firm_scale"
TITLE = "Firm registrations at scale: generate, ingest, aggregate"

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = "10000000,50000000,100000000"
SEED = 20240601
AGGREGATION_GOAL = 20e6  # rows per second, on the 2 cores of the benchmark machine
MODEL = "int_firm_entry"
LIMITED_MEMORY = "1GB"  # one more ingest run with DuckDB's buffer pool capped: memory that is not its cache
ROW_BY_ROW = """
select city_code, registration_year as year, count(*) as new_firms,
       count(*) filter (where is_digital) as new_digital_firms
from intermediate.int_enterprise_registrations
where city_code is not null and registration_year is not null
group by all
"""
ENV = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false",
       "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--firm-scale-sizes", default=DEFAULT_SIZES,
                        help=f"records to generate, comma-separated (default {DEFAULT_SIZES}; "
                             "1000000,3000000 for a quick run)")
    parser.add_argument("--firm-scale-repeats", type=int, default=3, help="timed runs of ingest and aggregation")


# ------------------------------------------------------------------ workers (each in its own process)

def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads): with wall time it shows how much the
    machine's other load held the run back."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_generate(out: Path, firm_scale: float) -> dict:
    """The firm-record files of the sample at ``firm_scale`` and the generator's counts."""
    import numpy as np

    from warehouse.sample import firms
    from warehouse.sample.generate import simulate

    t0 = time.perf_counter()
    s = simulate(SEED, firm_scale=firm_scale)
    folder = out / "landing" / "enterprises"
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for t, year in enumerate(s.years):
        path = folder / f"registrations_{int(year)}.csv"
        rows += firms.write_registrations(path, s.cities, int(year), s.firms.digital[:, t], s.firms.other[:, t],
                                          s.rngs["firm_records"])
    seconds = time.perf_counter() - t0
    every = s.firms.digital + s.firms.other
    expected = [[str(s.cities.code[i]), int(year), int(every[i, t]), int(s.firms.digital[i, t])]
                for i in range(s.cities.n) for t, year in enumerate(s.years) if every[i, t] > 0]
    (out / "expected.json").write_text(json.dumps(expected))
    return {"seconds": seconds, "rows": rows, "peak_rss": _peak_rss_bytes(),
            "csv_bytes": sum(p.stat().st_size for p in folder.iterdir()),
            "largest_file_bytes": max(p.stat().st_size for p in folder.iterdir()),
            "check": int(np.sum(every)) == rows}


def worker_ingest(out: Path, memory_limit: str = "") -> dict:
    import pyarrow as pa

    from warehouse.connections import connect_for_write
    from warehouse.ingest import ingest_landing

    database = out / "warehouse.duckdb"
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), _cpu_seconds()
    con = connect_for_write(database)
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    summary = ingest_landing(con, out / "landing", out / "archive")
    con.execute("checkpoint")
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    rows = con.execute("select count(*) from raw.enterprise_registrations").fetchone()[0]
    threads = con.execute("select current_setting('threads')").fetchone()[0]
    # what DuckDB's buffer pool holds at the end: the loaded table's blocks, cached up to memory_limit
    duckdb_memory = con.execute("select sum(memory_usage_bytes) from duckdb_memory()").fetchone()[0]
    con.close()
    return {"seconds": seconds, "rows": rows, "files": len(summary.files), "failed": [f.error for f in summary.failed],
            "peak_rss": _peak_rss_bytes(), "threads": threads, "cpu_seconds": cpu, "load_before": load,
            "duckdb_memory": int(duckdb_memory), "arrow_pool_peak": pa.default_memory_pool().max_memory()}


def worker_aggregate(database: Path, sql: str) -> dict:
    from warehouse.connections import connect_read_only

    con = connect_read_only(database)
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), _cpu_seconds()
    con.execute(f"create temp table firm_entry_bench as {sql}")
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    result = con.execute("select city_code, year, new_firms, new_digital_firms from firm_entry_bench "
                         "order by city_code, year").fetchall()
    con.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "load_before": load, "peak_rss": _peak_rss_bytes(),
            "result": [list(r) for r in result]}


def _worker_main(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "generate":
        result = worker_generate(Path(rest[0]), float(rest[1]))
    elif kind == "ingest":
        result = worker_ingest(Path(rest[0]), *rest[1:])
    else:
        result = worker_aggregate(Path(rest[0]), Path(rest[1]).read_text(encoding="utf-8"))
    print(json.dumps(result))


def _in_subprocess(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.firm_scale", "--worker", *args],
                          cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ one size

def records_at_scale_one() -> int:
    from warehouse.sample.generate import simulate

    s = simulate(SEED, firm_scale=1.0)
    return int(s.firms.digital.sum() + s.firms.other.sum())


def _dbt(args: list[str], database: Path, work: Path):
    from warehouse.dbt_runner import run_dbt

    result = run_dbt(args, database, work)
    if not result.success:
        raise RuntimeError(f"dbt {' '.join(args)} failed: {result.failures or result.log_tail}")
    return result


def _model_sql(work: Path) -> str:
    compiled = next((work / "target" / "compiled").rglob(f"{MODEL}.sql"))
    return compiled.read_text(encoding="utf-8")


def _dbt_model_seconds(work: Path) -> float:
    results = json.loads((work / "target" / "run_results.json").read_text())
    return next(r["execution_time"] for r in results["results"] if r["unique_id"].endswith(f".{MODEL}"))


def _run_figures(runs: list[dict], rows: int, digits: int) -> dict:
    """The figures a step reports from its timed runs: each run, the median, rows/s, memory, CPU, load."""
    seconds = median([r["seconds"] for r in runs])
    return {
        "runs": [round(r["seconds"], digits) for r in runs],
        "median_seconds": round(seconds, digits),
        "rows_per_second": round(rows / seconds),
        "peak_rss_runs": [r["peak_rss"] for r in runs],
        "peak_rss": max(r["peak_rss"] for r in runs),
        "cpu_seconds_runs": [round(r["cpu_seconds"], digits) for r in runs],
        "load_before_runs": [round(r["load_before"], 1) for r in runs],
    }


def bench_size(target_rows: int, per_unit: int, workdir: Path, repeats: int) -> dict:
    out = workdir / f"firm_scale_{target_rows}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        firm_scale = target_rows / per_unit
        gen = _in_subprocess("generate", str(out), repr(firm_scale))
        if not gen["check"]:
            raise AssertionError("the record files do not hold the generator's counts")
        expected = sorted(tuple(r) for r in json.loads((out / "expected.json").read_text()))
        rows = gen["rows"]

        ingests = []
        for limit in [""] * repeats + [LIMITED_MEMORY]:  # the last run: DuckDB's buffer pool capped
            for stale in ("warehouse.duckdb", "warehouse.duckdb.wal", "archive", "landing_hashes.json"):
                target = out / stale
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
            run = _in_subprocess("ingest", str(out), limit)
            if run["failed"] or run["rows"] != rows:
                raise AssertionError(f"ingest loaded {run['rows']} rows of {rows}: {run['failed']}")
            ingests.append(run)
        limited = ingests.pop()
        database = out / "warehouse.duckdb"
        duckdb_bytes_raw = database.stat().st_size
        archive_bytes = sum(p.stat().st_size for p in (out / "archive").rglob("*") if p.is_file())

        work = out / "dbt"
        _dbt(["seed"], database, work)
        _dbt(["run", "--select", f"+{MODEL}", "+int_enterprise_registrations"], database, work)
        dbt_model_seconds = _dbt_model_seconds(work)
        sql_path = out / "model.sql"
        sql_path.write_text(_model_sql(work), encoding="utf-8")
        old_path = out / "row_by_row.sql"
        old_path.write_text(ROW_BY_ROW, encoding="utf-8")

        model_runs, old_runs = [], []
        for _ in range(repeats):
            for runs, path in ((model_runs, sql_path), (old_runs, old_path)):
                run = _in_subprocess("aggregate", str(database), str(path))
                got = sorted(tuple(r) for r in run.pop("result"))
                if got != expected:
                    missing = set(expected) - set(got)
                    raise AssertionError(f"{path.name}: {len(missing)} city-years differ from the generator's "
                                         f"counts, e.g. {sorted(missing)[:3]}")
                runs.append(run)

        old = median([r["seconds"] for r in old_runs])
        return {
            "target_rows": target_rows,
            "firm_scale": round(firm_scale, 4),
            "rows": rows,
            "city_years": len(expected),
            "checked": "raw rows = generator records; model = generator counts (all, digital) per city-year",
            "generate": {"seconds": round(gen["seconds"], 2), "peak_rss": gen["peak_rss"]},
            "ingest": {
                **_run_figures(ingests, rows, 2),
                "duckdb_threads": ingests[0]["threads"],
                "duckdb_buffer_pool_at_end": max(r["duckdb_memory"] for r in ingests),
                "arrow_pool_peak": max(r["arrow_pool_peak"] for r in ingests),
                "memory_limited": {"memory_limit": LIMITED_MEMORY, "seconds": round(limited["seconds"], 2),
                                   "peak_rss": limited["peak_rss"], "duckdb_buffer_pool_at_end": limited["duckdb_memory"]},
            },
            "aggregation": {
                "how": f"compiled SQL of {MODEL} as create temp table, fresh process per run",
                **_run_figures(model_runs, rows, 3),
                "cpu_rows_per_second_per_core": round(rows / median([r["cpu_seconds"] for r in model_runs])),
                "dbt_run_model_seconds": round(dbt_model_seconds, 3),
                "row_by_row_runs": [round(r["seconds"], 3) for r in old_runs],
                "row_by_row_median_seconds": round(old, 3),
                "row_by_row_rows_per_second": round(rows / old),
            },
            "disk": {
                "csv_bytes": gen["csv_bytes"],
                "largest_file_bytes": gen["largest_file_bytes"],
                "archive_bytes": archive_bytes,
                "duckdb_bytes_after_ingest": duckdb_bytes_raw,
                "duckdb_bytes_after_dbt": database.stat().st_size,
            },
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(workdir: Path, args) -> dict:
    sizes = [int(float(s)) for s in str(args.firm_scale_sizes).split(",") if s.strip()]
    repeats = max(int(getattr(args, "firm_scale_repeats", 3)), 1)
    t0 = time.perf_counter()
    per_unit = records_at_scale_one()
    cases = []
    for size in sizes:
        cases.append(bench_size(size, per_unit, Path(workdir), repeats))
        print(f"firm_scale: {size:,} records done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    import duckdb

    return {
        "date": dt.date.today().isoformat(),
        "command": f"python -m tests.benchmarks.run --only {NAME} --firm-scale-sizes {','.join(map(str, sizes))} "
                   f"--firm-scale-repeats {repeats}   (or: python -m tests.benchmarks.firm_scale ...)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"duckdb {duckdb.__version__}",
        "repeats": repeats,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "goal_rows_per_second": AGGREGATION_GOAL,
        "cases": cases,
        "growth": {
            "ingest": [[c["rows"], c["ingest"]["median_seconds"]] for c in cases],
            "aggregation": [[c["rows"], c["aggregation"]["median_seconds"]] for c in cases],
        },
    }


# ------------------------------------------------------------------ the section's text

def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _mrows(n: float) -> str:
    return f"{n / 1e6:.1f}M rows/s"


def lines(result: dict) -> list[str]:
    cases = result["cases"]
    out = [
        f"Measured on {result['date']} ({result['machine']}); `{result['command']}`; "
        f"whole section {result['wall_seconds']:.0f} s.",
        "",
        "The sample generator's firm-record files (one CSV per year 2011-2023, UTF-8) at the firm scale that "
        "gives each size. **Ingest** = `ingest_landing` of those files into a new warehouse as a refresh does it "
        "(content hashes, crash-safe archive copy, streaming parse in 1 MB blocks, inserts of about 16 MB, checkpoint), a new "
        "warehouse and archive each run. **Aggregation** = the model `int_firm_entry` alone: its compiled SQL "
        "(the views it reads inlined) as `create temp table … as` on the loaded warehouse, each run in a fresh "
        "process. Each step in its own subprocess: peak memory = its peak RSS. The rows loaded and the model's "
        "counts (all and digital registrations per city-year) were checked equal to the generator's before "
        f"any time was taken. Times are medians of {result['repeats']} runs (each run in brackets).",
        "",
        "| records | CSV | generate | ingest | ingest rows/s | ingest peak RSS | aggregation | aggregation rows/s "
        f"| goal >= {result['goal_rows_per_second'] / 1e6:.0f}M rows/s | aggregation peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for c in cases:
        ing, agg = c["ingest"], c["aggregation"]
        ratio = agg["rows_per_second"] / result["goal_rows_per_second"]
        verdict = "**met**" if ratio >= 1 else f"**missed** ({ratio:.2f} of the goal)"
        out.append(
            f"| {c['rows']:,} | {_gib(c['disk']['csv_bytes'])} | {c['generate']['seconds']:.0f} s "
            f"| {ing['median_seconds']:.1f} s ({', '.join(f'{s:.1f}' for s in ing['runs'])}) "
            f"| {_mrows(ing['rows_per_second'])} | {_gib(ing['peak_rss'])} "
            f"| {agg['median_seconds']:.2f} s ({', '.join(f'{s:.2f}' for s in agg['runs'])}) "
            f"| {_mrows(agg['rows_per_second'])} | {verdict} | {_gib(agg['peak_rss'])} |")
    out += [
        "",
        "| records | largest CSV file | generate peak RSS | ingest peak RSS / largest file "
        "| of it DuckDB's buffer pool at the end | ingest with DuckDB `memory_limit` 1GB: time, peak RSS "
        "| DuckDB file after ingest "
        "| after dbt | archive | aggregation CPU time | load average before the aggregation runs "
        "| model inside `dbt run` | row-by-row grouping (the model before) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for c in cases:
        d, agg, ing = c["disk"], c["aggregation"], c["ingest"]
        out.append(
            f"| {c['rows']:,} | {_gib(d['largest_file_bytes'])} | {_gib(c['generate']['peak_rss'])} "
            f"| {ing['peak_rss'] / d['largest_file_bytes']:.2f} | {_gib(ing['duckdb_buffer_pool_at_end'])} "
            f"| {ing['memory_limited']['seconds']:.1f} s, {_gib(ing['memory_limited']['peak_rss'])} "
            f"| {_gib(d['duckdb_bytes_after_ingest'])} | {_gib(d['duckdb_bytes_after_dbt'])} "
            f"| {_gib(d['archive_bytes'])} | {', '.join(f'{s:.2f}' for s in agg['cpu_seconds_runs'])} s "
            f"({_mrows(agg['cpu_rows_per_second_per_core'])} per CPU-second) "
            f"| {', '.join(f'{x:.1f}' for x in agg['load_before_runs'])} "
            f"| {agg['dbt_run_model_seconds']:.2f} s "
            f"| {agg['row_by_row_median_seconds']:.2f} s ({', '.join(f'{s:.2f}' for s in agg['row_by_row_runs'])}; "
            f"{_mrows(agg['row_by_row_rows_per_second'])}) |")
    first, last = cases[0], cases[-1]
    out += [
        "",
        f"No file is held whole. From {first['rows']:,} to {last['rows']:,} records (largest file "
        f"{_gib(first['disk']['largest_file_bytes'])} to {_gib(last['disk']['largest_file_bytes'])}) the ingest's "
        f"peak RSS goes from {_gib(first['ingest']['peak_rss'])} to {_gib(last['ingest']['peak_rss'])}; what grows "
        "is DuckDB's buffer pool, which keeps the blocks of the table just written cached up to its "
        f"`memory_limit` (default 80% of RAM; {_gib(last['ingest']['duckdb_buffer_pool_at_end'])} at the end of "
        f"the largest load). With `memory_limit` at {last['ingest']['memory_limited']['memory_limit']} the peak "
        f"RSS is {_gib(first['ingest']['memory_limited']['peak_rss'])} and "
        f"{_gib(last['ingest']['memory_limited']['peak_rss'])}. The generation time is the simulation plus "
        "writing the record files (one process). The machine is shared: CPU time and the load average (1 min, "
        "taken before each run; 2 = both cores busy) show how much other work held a run back; 2 CPU-seconds "
        "per wall second is the most 2 cores give.",
    ]
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker_main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=TITLE)
    add_arguments(parser)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="firm_scale_", dir=args.workdir) as workdir:
        result = run(Path(workdir), args)
    result["command"] = ("python -m tests.benchmarks.firm_scale --firm-scale-sizes "
                         f"{args.firm_scale_sizes} --firm-scale-repeats {args.firm_scale_repeats}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\n".join([f"## {TITLE}", "", *lines(result)]))


if __name__ == "__main__":
    main()
