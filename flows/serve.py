"""`cityres serve`: a local Prefect server, the refresh flow on a cron schedule, and a landing watcher.

Prefect refuses schedules on its temporary (ephemeral) server, so serve starts a real one on
loopback (or uses PREFECT_API_URL when the user already runs one). The watcher runs in a thread
of the same process and starts a refresh of the served deployment when new landing files have
settled. Ctrl-C stops the runner, the watcher and the server we started.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from flows.temporary_server import api_healthy
from flows.watch import LandingWatcher
from warehouse.deliveries import in_force_hashes
from warehouse.landing import CACHE_FILE
from warehouse.paths import Home
from warehouse.settings import ServeSettings

DEPLOYMENT = "landing-refresh"
log = logging.getLogger("cityres.serve")


@contextmanager
def prefect_server(home: Home, settings: ServeSettings, startup_timeout: float = 120.0):
    """Yield the API URL of a Prefect server: the user's (PREFECT_API_URL) or one we start."""
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        if not api_healthy(existing):
            raise RuntimeError(f"PREFECT_API_URL={existing} does not answer")
        yield existing
        return
    api_url = f"http://{settings.host}:{settings.port}/api"
    if api_healthy(api_url):
        raise RuntimeError(f"something already answers on {api_url}; set PREFECT_API_URL to use it")
    env = dict(os.environ, PREFECT_HOME=str(home.root / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false")
    log_file = open(home.root / "prefect-server.log", "ab")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", settings.host,
         "--port", str(settings.port)],
        env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while not api_healthy(api_url):
            if server.poll() is not None:
                raise RuntimeError(f"the Prefect server exited (see {home.root / 'prefect-server.log'})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not answer within {startup_timeout:.0f} s")
            time.sleep(0.5)
        yield api_url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log_file.close()


def watch_landing(home: Home, settings: ServeSettings, flow_name: str, stop: threading.Event) -> None:
    """Start a run of the served deployment whenever new landing files have settled."""
    from prefect.deployments import run_deployment

    watcher = LandingWatcher(home.landing, settings.settle_seconds, home.root / CACHE_FILE)
    refused: set[frozenset[str]] = set()
    while not stop.wait(settings.poll_seconds):
        try:
            current = in_force_hashes(home.warehouse_db)
            pending = watcher.pending(current)
            withdrawn = watcher.withdrawn(current)
            if not pending and not withdrawn:
                continue
            fingerprint = watcher.fingerprint(pending, withdrawn)
            if fingerprint in refused:
                continue  # the same delivery was refused before: wait until it changes
            log.info("%d new landing file(s) settled, %d withdrawn; starting a refresh", len(pending), len(withdrawn))
            run = run_deployment(f"{flow_name}/{DEPLOYMENT}", parameters={"home_dir": str(home.root)},
                                 timeout=None, poll_interval=2, as_subflow=False)
            after = in_force_hashes(home.warehouse_db)
            applied = all(after.get(path) == sha if sha != "withdrawn" else path not in after
                          for path, sha in fingerprint)
            if run.state is None or not run.state.is_completed() or not applied:
                refused.add(fingerprint)
        except Exception:  # the watcher must outlive one failed refresh
            log.exception("landing watcher: refresh attempt failed")


def serve(home: Home, settings: ServeSettings) -> None:
    """Serve the refresh flow on the configured cron schedule and on new landing files."""
    home.ensure()
    with prefect_server(home, settings) as api_url:
        os.environ["PREFECT_API_URL"] = api_url
        from prefect import serve as prefect_serve

        from flows.refresh import refresh

        deployment = refresh.to_deployment(
            name=DEPLOYMENT,
            cron=settings.cron or None,
            parameters={"home_dir": str(home.root)},
            description="Refresh the cityres warehouse from its landing folder.",
            concurrency_limit=1,
        )
        stop = threading.Event()
        watcher = threading.Thread(target=watch_landing, args=(home, settings, refresh.name, stop),
                                   name="landing-watcher", daemon=True)
        watcher.start()
        try:
            prefect_serve(deployment, pause_on_shutdown=False, print_starting_message=True, limit=1)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            watcher.join(timeout=10)
