"""`cityres serve` end to end: it starts a local Prefect server, picks up a dropped delivery,
publishes it, and stops cleanly on Ctrl-C (SIGINT). Bounded waits throughout."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from warehouse.sample import write_sample

pytestmark = pytest.mark.slow
PUBLISH_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_serve_publishes_a_dropped_delivery_and_stops_on_ctrl_c(tmp_path):
    home, stage = tmp_path / "home", tmp_path / "stage"
    write_sample(stage, firm_scale=0.01)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(CITYRES_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "warehouse.cli", "serve", "--port", str(port), "--poll-seconds", "1",
         "--settle-seconds", "2", "--cron", "0 3 * * *"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    health = f"http://127.0.0.1:{port}/api/health"
    try:
        deadline = time.monotonic() + 120
        while not answers(health):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(1)
        shutil.copytree(stage, home / "landing", dirs_exist_ok=True)
        last = home / "reports" / "last_refresh.json"
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        while not (last.exists() and json.loads(last.read_text())["status"] == "published"):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-4000:]
            time.sleep(2)
        assert (home / "warehouse.duckdb").exists()
        # The deployment carries the configured schedule.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/deployments/filter", data=b"{}",
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            deployments = json.loads(response.read())
        crons = [s["schedule"].get("cron") for d in deployments for s in d.get("schedules", [])]
        assert "0 3 * * *" in crons
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "stopped" in output
    assert not answers(health), "the Prefect server outlived cityres serve"
