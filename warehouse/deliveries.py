"""The delivery lifecycle: which landing file is in force, and what the next refresh does with each.

The landing folder says what should be in force. For every file path the next refresh:

* **loads** it when its content, or the configuration it is read under (mappings, delivery
  profile, parser version), differs from its load in force - a corrected file replaces its
  predecessor, and a file equal to an earlier version (v1 → v2 → v1) is a new load that brings
  that version back;
* **skips** it when it is in force unchanged, or when this very content was refused under this
  very configuration before (``retry_failed`` tries it again);
* **withdraws** a path that is in force but no longer in the landing folder (deleted by the user,
  or by `cityres landing withdraw`): a `withdrawn` row in the manifest takes it out of force.

Every decision is recorded in raw.load_manifest, so `cityres landing status` and the report can
say, for each file, what is in force and since when.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from warehouse.landing import CACHE_FILE, Delivered, landing_hashes, landing_rejects
from warehouse.mappings import Mappings, load_mappings
from warehouse.settings import DeliveryProfile, load_delivery_profiles, profile_for


WITHDRAWAL = "withdrawal"  # the config_fingerprint of a withdrawal row: it depends on nothing else


@dataclass
class DeliveryConfig:
    """The user's configuration as ingest applies it: merged mappings and delivery profiles."""

    mappings: Mappings
    profiles: list[DeliveryProfile] = field(default_factory=list)

    @classmethod
    def for_home(cls, home) -> "DeliveryConfig":
        """Raises MappingError / ConfigError with every problem in words."""
        return cls(load_mappings(home.root), load_delivery_profiles(home))

    @classmethod
    def shipped(cls) -> "DeliveryConfig":
        return cls(load_mappings(None), [])

    def profile(self, file_name: str) -> DeliveryProfile:
        return profile_for(self.profiles, file_name)

    def fingerprint(self, source: str, file_name: str) -> str:
        """What the reading of this file depends on, besides its bytes."""
        digest = self.mappings.digest.get(source, "unknown source")
        text = digest + self.profile(file_name).fingerprint()
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ManifestRow:
    source: str
    file_name: str
    sha256: str
    status: str
    config_fingerprint: str | None
    load_id: str


@dataclass
class Plan:
    load: list[tuple[Delivered, str]] = field(default_factory=list)  # (file, why: new | changed | re-read | retried)
    skip: list[Delivered] = field(default_factory=list)
    withdraw: list[ManifestRow] = field(default_factory=list)

    @property
    def has_work(self) -> bool:
        return bool(self.load or self.withdraw)


LATEST_SQL = """
select source, file_name, sha256, status, config_fingerprint, load_id
from raw.load_manifest
where status in ({statuses})
qualify row_number() over (partition by source, file_name order by loaded_at desc, load_id desc) = 1
"""


def latest_rows(con: duckdb.DuckDBPyConnection, *statuses: str) -> dict[str, ManifestRow]:
    """The latest manifest row of each file path among ``statuses``."""
    try:
        rows = con.execute(LATEST_SQL.format(statuses=", ".join(f"'{s}'" for s in statuses))).fetchall()
    except duckdb.CatalogException:
        return {}
    except duckdb.BinderException:  # a warehouse from before config fingerprints: all re-read
        rows = con.execute(LATEST_SQL.replace("config_fingerprint", "null as config_fingerprint")
                           .format(statuses=", ".join(f"'{s}'" for s in statuses))).fetchall()
    return {r[1]: ManifestRow(*r) for r in rows}


def in_force(con: duckdb.DuckDBPyConnection) -> dict[str, ManifestRow]:
    """File path → its load in force (the latest loaded-or-withdrawn row, when it is loaded)."""
    return {path: row for path, row in latest_rows(con, "loaded", "withdrawn").items() if row.status == "loaded"}


def plan_landing(con: duckdb.DuckDBPyConnection, landing: Path, config: DeliveryConfig,
                 retry_failed: bool = False, cache_path: Path | None = None,
                 seen_statuses: tuple[str, ...] = ("failed",)) -> Plan:
    """What the next refresh does with each landing file and each file in force (see module doc).

    ``seen_statuses``: refusals that keep an unchanged file from being tried again (the no-op
    check adds `refused`: a refused refresh is not repeated until something changes).
    """
    plan = Plan()
    current = in_force(con)
    refused = {} if retry_failed else latest_rows(con, "loaded", "withdrawn", *seen_statuses)
    delivered = landing_hashes(landing, cache_path)
    for item in delivered:
        file_name = item.path.relative_to(landing).as_posix()
        fingerprint = config.fingerprint(item.source, file_name)
        force = current.get(file_name)
        if force and force.sha256 == item.sha256 and force.config_fingerprint == fingerprint:
            plan.skip.append(item)
            continue
        last = refused.get(file_name)
        if (last and last.status in seen_statuses and last.sha256 == item.sha256
                and last.config_fingerprint == fingerprint):
            plan.skip.append(item)
            continue
        why = ("new" if force is None else "changed" if force.sha256 != item.sha256 else "re-read")
        plan.load.append((item, why))
    present = {item.path.relative_to(landing).as_posix() for item in delivered}
    # a link in place of a file in force is refused at ingest, and like any refused replacement
    # leaves the version in force
    present |= {r.path.relative_to(landing).as_posix() for r in landing_rejects(landing)}
    for path, row in sorted(current.items()):
        last = refused.get(path)
        if path in present or (last and last.status in seen_statuses and last.config_fingerprint == WITHDRAWAL):
            continue  # delivered, or its withdrawal was refused before and nothing changed
        plan.withdraw.append(row)
    return plan


def plan_for_home(home, con: duckdb.DuckDBPyConnection, landing: Path | None = None,
                  retry_failed: bool = False, seen_statuses: tuple[str, ...] = ("failed",)) -> Plan:
    return plan_landing(con, landing or home.landing, DeliveryConfig.for_home(home), retry_failed,
                        home.root / CACHE_FILE, seen_statuses)


def in_force_hashes(warehouse_db: Path) -> dict[str, str]:
    """Landing path → content hash of the version in force, in a warehouse file (read-only)."""
    from warehouse.connections import connect_read_only

    if not warehouse_db.exists():
        return {}
    with connect_read_only(warehouse_db) as con:
        return {path: row.sha256 for path, row in in_force(con).items()}
