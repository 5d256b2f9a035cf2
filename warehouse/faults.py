"""Named crash points for the reliability tests: ``CITYRES_FAULT_KILL_AT=<point>`` kills the
process with SIGKILL when it reaches that point (no clean-up, like a power cut or the OOM
killer). Unset, a crash point costs one environment lookup. The points are listed in
docs/operations.md with what a crash there leaves behind and how the next refresh recovers.
"""
from __future__ import annotations

import os
import signal

ENV = "CITYRES_FAULT_KILL_AT"
POINTS = ("ingest", "archive_copy", "dbt", "validate", "estimate", "before_publish", "after_publish",
          "report")


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
