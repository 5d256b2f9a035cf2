"""Crashes and concurrency: a refresh killed (SIGKILL) at every step loses nothing and the next
refresh recovers; two refreshes at once never mix or lose a vintage. (Split from
test_reliability.py so the two long modules run on different test workers.)"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import duckdb
import pytest
from wap_fixtures import ROOT, archive_is_intact, cli, copy_home, manifest_rows, sha256

from warehouse.paths import Home
from warehouse.sample import write_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def baseline(published_sample) -> Home:
    return published_sample


# ---------------------------------------------------------------- crashes (SIGKILL) at every step

def test_sigkill_at_every_step_loses_nothing_and_the_next_refresh_recovers(baseline, tmp_path):
    home = copy_home(baseline, tmp_path / "home")
    stage = tmp_path / "stage"
    write_sample(stage, firm_scale=0.3)  # a corrected enterprise file of ~2 MB: archived in several chunks
    delivery = "enterprises/registrations_2023.csv"
    assert (stage / delivery).stat().st_size > 2 * (1 << 20) * 0.5
    shutil.copy2(stage / delivery, home.landing / delivery)
    published = sha256(home.warehouse_db)
    manifest = manifest_rows(home.warehouse_db)
    new_sha = hashlib.sha256((home.landing / delivery).read_bytes()).hexdigest()
    target = home.archive / "enterprises" / new_sha[:16] / "registrations_2023.csv"

    for point in ("archive_copy", "ingest", "dbt", "before_publish"):
        out = cli(home, "refresh", fault=point)
        assert out.returncode == -9, (point, out.stdout[-2000:], out.stderr[-2000:])
        assert sha256(home.warehouse_db) == published, f"killed at {point}: the published file changed"
        archive_is_intact(home)
        if point == "archive_copy":
            assert not target.exists()  # never renamed into place
            (partial,) = target.parent.glob(".registrations_2023.csv.*.partial")
            assert 0 < partial.stat().st_size < (home.landing / delivery).stat().st_size  # really mid-copy

    out = cli(home, "refresh")
    assert out.returncode == 0 and "published" in out.stdout, out.stdout[-3000:]
    assert target.exists() and not list(target.parent.glob("*.partial"))
    archive_is_intact(home)
    after = manifest_rows(home.warehouse_db)
    assert after[: len(manifest)] == manifest  # every earlier load kept
    assert any(r[2] == new_sha and r[3] == "loaded" for r in after)

    # killed right after publishing: the vintage is published, its report is written next time
    write_sample(stage, firm_scale=0.31)
    shutil.copy2(stage / delivery, home.landing / delivery)
    before = sha256(home.warehouse_db)
    out = cli(home, "refresh", fault="after_publish")
    assert out.returncode == -9
    assert sha256(home.warehouse_db) != before
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        (vintage,) = con.execute("select vintage from data_provenance order by recorded_at desc limit 1").fetchone()
    assert not (home.reports / vintage / "report.md").exists()
    out = cli(home, "refresh")
    assert out.returncode == 0, out.stdout[-3000:]
    assert "report of the published vintage was missing" in out.stdout
    report = (home.reports / vintage / "report.md").read_text(encoding="utf-8")
    assert "stopped before writing it" in report


# ---------------------------------------------------------------- one refresh at a time

def test_two_refreshes_at_once_one_waits_or_steps_aside_and_nothing_is_lost(baseline, tmp_path):
    home = copy_home(baseline, tmp_path / "home")
    stage = tmp_path / "stage"
    write_sample(stage, firm_scale=0.02)
    shutil.copy2(stage / "enterprises/registrations_2022.csv", home.landing / "enterprises/registrations_2022.csv")
    manifest = manifest_rows(home.warehouse_db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(CITYRES_HOME=str(home.root), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    first_log = open(tmp_path / "first.log", "w+")
    first = subprocess.Popen([sys.executable, "-m", "flows.cli", "refresh"], env=env, cwd=ROOT,
                             stdout=first_log, stderr=subprocess.STDOUT, start_new_session=True)
    lock = home.root / "refresh.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text()):
        assert first.poll() is None and time.monotonic() < deadline, "the first refresh never took the lock"
        time.sleep(0.2)
    holder = json.loads(lock.read_text())
    # a second refresh that may not wait steps aside cleanly, naming the one running
    (home.root / "cityres.toml").write_text("[refresh]\nlock_wait_seconds = 0\nstudies = []\n", encoding="utf-8")
    second = cli(home, "refresh")
    assert second.returncode == 3, second.stdout
    assert "busy" in second.stdout and f"pid {holder['pid']}" in second.stdout
    # a third one waits for it, then finds nothing new
    (home.root / "cityres.toml").write_text("[refresh]\nlock_wait_seconds = 300\nstudies = []\n", encoding="utf-8")
    third = cli(home, "refresh")
    first.wait(timeout=600)
    first_log.seek(0)
    first_out = first_log.read()
    assert first.returncode == 0, first_out
    assert third.returncode == 0, third.stdout
    assert "published" in first_out
    assert "unchanged" in third.stdout
    after = manifest_rows(home.warehouse_db)
    assert after[: len(manifest)] == manifest and len(after) == len(manifest) + 1
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        vintages = con.execute("select count(distinct vintage) from index_history").fetchone()[0]
    assert vintages == 2  # the baseline's and the new one: no vintage lost, none duplicated


