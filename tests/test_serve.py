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


def start_serve(tmp_path: Path, env: dict, attempts: int = 5):
    """Start `cityres serve` on a free loopback port; retry on another port if the one picked
    was taken in the meantime (another process may bind it between our probe and the server)."""
    for _ in range(attempts):
        port = free_port()
        log = open(tmp_path / "serve.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--port", str(port), "--poll-seconds", "1",
             "--settle-seconds", "2", "--cron", "0 3 * * *"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and not answers(f"http://127.0.0.1:{port}/api/health"):
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(1)
        if proc.poll() is None:
            return proc, port, log
        log.close()
        output = (tmp_path / "serve.log").read_text()
        if "already" not in output and "address" not in output.lower():
            raise AssertionError(output[-4000:])
    raise AssertionError(f"no free port after {attempts} attempts")


def test_serve_publishes_a_dropped_delivery_and_stops_on_ctrl_c(tmp_path):
    home, stage = tmp_path / "home", tmp_path / "stage"
    write_sample(stage, firm_scale=0.01)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(CITYRES_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    proc, port, log = start_serve(tmp_path, env)
    health = f"http://127.0.0.1:{port}/api/health"
    try:
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
