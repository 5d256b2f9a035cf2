"""The per-load report: reports/<vintage>/report.md, index.html (= report.html) and the
offline GX Data Docs under gx/.

* `facts` — what the report reads from DuckDB (`collect_facts`, `top_cities`, the index data);
* `figures` — the report's own figures (matplotlib, with a CJK font for city names);
* `context` — ONE context dict from the summary, the facts and the studies' results;
* `render` — both templates (templates/report.md.j2, report.html.j2) and the files;
* `gx_offline` — Data Docs without CDN requests; `command` — `cityres report`.

The public names are loaded on first use, so `cityres report` (flows.report.command) does not
pay for pandas, DuckDB or Jinja at start-up.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows.report.facts import collect_facts, top_cities
    from flows.report.render import write_report

__all__ = ["collect_facts", "top_cities", "write_report"]
_HOMES = {"collect_facts": "flows.report.facts", "top_cities": "flows.report.facts",
          "write_report": "flows.report.render"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
