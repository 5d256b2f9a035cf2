"""The Prefect API of one `cityres refresh`, started before Prefect itself is imported.

Without a server Prefect starts a temporary one when the flow begins and waits for it: seconds
(more with a new database, which is migrated first) during which nothing else happens. Started
here instead, the server comes up while the command imports Prefect and the flow, and the flow
finds it ready. It is the same server Prefect would start (uvicorn running Prefect's own app,
database under PREFECT_HOME, no UI, the services of a temporary server), on loopback, stopped
when the command ends. A PREFECT_API_URL set by the user is used as it is.
"""
from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
ATTEMPTS = 3  # a port taken between choosing it and binding it: start again on another


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_healthy(api_url: str) -> bool:
    """Does a Prefect API answer its health check at ``api_url``?"""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class TemporaryServer:
    """A Prefect server process on a free loopback port."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.api_url = ""
        self.attempts = 0

    def start(self) -> None:
        self.attempts += 1
        port = _free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        # What Prefect's own temporary server sets: no UI, the reduced services of an ephemeral server.
        env = dict(os.environ, PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1", PREFECT__SERVER_FINAL="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL)

    def wait_ready(self) -> str:
        """The API URL once the server answers; a clear error if it never does."""
        timeout = float(os.environ.get(STARTUP_TIMEOUT_ENV) or 90)
        deadline = time.monotonic() + timeout
        while not api_healthy(self.api_url):
            assert self.process is not None
            if self.process.poll() is not None:
                if self.attempts < ATTEMPTS:
                    self.start()
                    continue
                raise RuntimeError(f"the temporary Prefect server exited with status {self.process.returncode} "
                                   f"(PREFECT_HOME={os.environ.get('PREFECT_HOME', '~/.prefect')})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the temporary Prefect server did not answer within {timeout:.0f} s "
                                   f"({STARTUP_TIMEOUT_ENV})")
            time.sleep(0.05)
        return self.api_url

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_temporary_server() -> TemporaryServer | None:
    """A temporary server starting in the background (None when PREFECT_API_URL is set).

    Stopped when the process exits: Prefect sends its last logs and events at interpreter
    shutdown, before the atexit handlers run, so the server is still there to receive them.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    server = TemporaryServer()
    server.start()
    atexit.register(server.stop)
    return server
