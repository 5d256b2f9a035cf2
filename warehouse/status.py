"""Cheap answers about a home, read without Prefect, dbt or Great Expectations.

* :func:`landing_has_news` - is there anything a refresh would load?
* :func:`vintage_without_report` - the published vintage, if its report is missing (a refresh
  killed right after publishing); the next refresh writes it.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.connections import connect_read_only
from warehouse.deliveries import plan_for_home
from warehouse.landing import landing_rejects, manifest_hashes
from warehouse.paths import Home


def landing_has_news(home: Home, retry_failed: bool = False, landing: Path | None = None) -> bool:
    """Whether a refresh has anything to do: a file to load or one to withdraw
    (warehouse/deliveries.py).

    Not news: a file in force unchanged, or content refused before under the same configuration
    (a file refused for a fault of its own stays refused until it or its mappings change, and a
    refused refresh is not repeated until something changes; ``retry_failed`` tries both again).
    Without a published warehouse everything is new.
    """
    landing = landing or home.landing
    if not home.warehouse_db.exists():
        return True
    seen_statuses = () if retry_failed else ("failed", "refused")
    with connect_read_only(home.warehouse_db) as con:
        if plan_for_home(home, con, landing, seen_statuses=seen_statuses).has_work:
            return True
        seen = manifest_hashes(con, "loaded", *seen_statuses)
    return any(r.fingerprint not in seen for r in landing_rejects(landing))


def published_vintage(home: Home) -> str | None:
    """The vintage of the published warehouse (None when nothing is published)."""
    if not home.warehouse_db.exists():
        return None
    with connect_read_only(home.warehouse_db) as con:
        try:
            row = con.execute("select vintage from main.data_provenance order by recorded_at desc limit 1").fetchone()
        except duckdb.CatalogException:
            return None
    return row[0] if row else None


def vintage_without_report(home: Home) -> str | None:
    """The published vintage when its report was never written, else None."""
    vintage = published_vintage(home)
    if vintage is None or (home.reports / vintage / "report.md").exists():
        return None
    return vintage
