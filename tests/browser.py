"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
no websocket library, no Playwright. Used by the report's browser test.

    with Chromium() as browser:
        page = browser.open(Path("index.html"))   # waits for the load event
        page.evaluate("document.title")
        page.screenshot(Path("shot.png"), full_page=True)
        page.requests                               # every URL the page asked for

Chromium reads commands on fd 3 and writes replies and events on fd 4, each message a JSON
object followed by a NUL byte.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         "--force-device-scale-factor=1", "--lang=en-US")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_executable() -> str | None:
    explicit = os.environ.get("CITYRES_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


class DevToolsError(RuntimeError):
    pass


class Chromium:
    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60):
        self.executable = executable or chromium_executable()
        if self.executable is None:
            raise FileNotFoundError("no chromium executable (install the Debian package chromium)")
        self.size = (width, height)
        self.timeout = timeout
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._cond = threading.Condition()
        self._closed = False

    # ------------------------------------------------------------ process and pipe

    def __enter__(self) -> "Chromium":
        self.profile = tempfile.mkdtemp(prefix="cityres-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # The child's ends, moved to fds >= 10 so that putting them on 3 and 4 cannot clobber one
        # with the other; dup2 makes 3 and 4 inheritable, every other fd is closed on exec.
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)

        def wire_pipes():  # in the child, before exec: fd 3 reads commands, fd 4 writes replies
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--window-size={self.size[0]},{self.size[1]}",
             f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes, close_fds=False)
        os.close(child_r)
        os.close(child_w)
        self._writer = os.fdopen(to_browser_w, "wb", buffering=0)
        self._reader = os.fdopen(from_browser_r, "rb", buffering=0)
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self._writer, self._reader):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_loop(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._reader.read(1 << 16)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self._events.append(message)
                    self._cond.notify_all()

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._writer.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while ident not in self._replies:
                if self._closed:
                    raise DevToolsError(f"{method}: chromium closed the pipe")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DevToolsError(f"{method}: no reply in {timeout or self.timeout} s")
                self._cond.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, session: str | None = None, since: int = 0,
                   timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for event in self._events[since:]:
                    if event.get("method") == method and (session is None or event.get("sessionId") == session):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise DevToolsError(f"no {method} event in {timeout or self.timeout} s")
                self._cond.wait(left)

    def events(self, method: str, session: str | None = None) -> list[dict]:
        with self._cond:
            return [e for e in self._events if e.get("method") == method
                    and (session is None or e.get("sessionId") == session)]

    def event_count(self) -> int:
        with self._cond:
            return len(self._events)

    # ------------------------------------------------------------ pages

    def open(self, path: Path | str) -> "Page":
        url = path if isinstance(path, str) else Path(path).resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, target, session)
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                         "deviceScaleFactor": 1, "mobile": False}, session=session)
        page.navigate(url)
        return page


class Page:
    def __init__(self, browser: Chromium, target: str, session: str):
        self.browser, self.target, self.session = browser, target, session

    def navigate(self, url: str) -> None:
        mark = self.browser.event_count()
        reply = self.browser.call("Page.navigate", {"url": url}, session=self.session)
        if reply.get("errorText"):
            raise DevToolsError(f"navigate {url}: {reply['errorText']}")
        if "loaderId" not in reply:  # same document (a #fragment): no load event
            self.evaluate("new Promise(r => setTimeout(r, 50))")
            return
        self.browser.wait_event("Page.loadEventFired", self.session, since=mark)

    @property
    def requests(self) -> list[str]:
        """Every URL this page requested (documents, images, scripts, styles, fetches)."""
        return [e["params"]["request"]["url"] for e in self.browser.events("Network.requestWillBeSent", self.session)]

    @property
    def failed_requests(self) -> list[dict]:
        return [e["params"] for e in self.browser.events("Network.loadingFailed", self.session)]

    def evaluate(self, expression: str, timeout: float | None = None):
        reply = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                       "awaitPromise": True}, session=self.session,
                                  timeout=timeout)
        if "exceptionDetails" in reply:
            raise DevToolsError(f"evaluate: {reply['exceptionDetails'].get('text')} "
                                f"{reply['exceptionDetails'].get('exception', {}).get('description', '')}")
        return reply["result"].get("value")

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.browser.events("Runtime.exceptionThrown", self.session):
            details = event["params"]["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        for event in self.browser.events("Runtime.consoleAPICalled", self.session):
            if event["params"]["type"] == "error":
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in event["params"]["args"]))
        return errors

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params = {"format": "png"}
        if full_page:
            metrics = self.browser.call("Page.getLayoutMetrics", session=self.session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.browser.call("Page.captureScreenshot", params, session=self.session, timeout=120)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
