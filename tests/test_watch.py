"""The landing watcher: only new, settled files trigger a refresh."""
from __future__ import annotations

import hashlib
from pathlib import Path

from flows.watch import LandingWatcher
from warehouse.settings import ServeSettings, load_serve_settings
from warehouse.paths import Home

import pytest


def drop(landing: Path, rel: str, text: str) -> Path:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_new_file_is_pending_only_once_it_has_settled(tmp_path):
    landing = tmp_path / "landing"
    path = drop(landing, "national/national_2024.csv", "指标,数值\n")
    watcher = LandingWatcher(landing, settle_seconds=10)
    assert watcher.pending({}, now=0.0) == []  # first sight
    assert watcher.pending({}, now=5.0) == []  # not settled yet
    assert watcher.pending({}, now=10.5) == [path]
    # still being written: a change of size restarts the clock
    path.write_text("指标,数值\n人均国内生产总值(元),1\n", encoding="utf-8")
    assert watcher.pending({}, now=11.0) == []
    assert watcher.pending({}, now=21.5) == [path]


def test_loaded_content_is_not_pending_and_root_files_are_ignored(tmp_path):
    landing = tmp_path / "landing"
    loaded = drop(landing, "patents/patents_2024.csv", "year,province,city,patents_granted\n")
    new = drop(landing, "patents/patents_2025.csv", "year,province,city,patents_granted\n2025,x,y,1\n")
    drop(landing, "ground_truth.json", "{}")
    known = {"patents/patents_2024.csv": hashlib.sha256(loaded.read_bytes()).hexdigest()}
    watcher = LandingWatcher(landing, settle_seconds=0)
    watcher.pending(known, now=0.0)
    assert watcher.pending(known, now=1.0) == [new]
    assert watcher.fingerprint([new]) == frozenset({("patents/patents_2025.csv",
                                                     hashlib.sha256(new.read_bytes()).hexdigest())})


def test_a_replaced_or_removed_file_in_force_is_pending(tmp_path):
    """v1 → v2 → v1: content loaded once before is new again when it is not the version in
    force of its path; a file in force that left the landing folder is a withdrawal."""
    landing = tmp_path / "landing"
    v1 = "year,province,city,patents_granted\n2024,x,y,1\n"
    path = drop(landing, "patents/patents_2024.csv", v1)
    watcher = LandingWatcher(landing, settle_seconds=0)
    in_force = {"patents/patents_2024.csv": hashlib.sha256(b"v2 content").hexdigest(),
                "patents/patents_2023.csv": hashlib.sha256(b"gone").hexdigest()}
    watcher.pending(in_force, now=0.0)
    assert watcher.pending(in_force, now=1.0) == [path]
    assert watcher.withdrawn(in_force) == ["patents/patents_2023.csv"]
    in_force = {"patents/patents_2024.csv": hashlib.sha256(v1.encode()).hexdigest()}
    assert watcher.pending(in_force, now=2.0) == [] and watcher.withdrawn(in_force) == []


def test_settings_default_and_reject_non_loopback_hosts(tmp_path):
    home = Home(tmp_path)
    assert load_serve_settings(home) == ServeSettings()
    (tmp_path / "cityres.toml").write_text('[schedule]\ncron = "*/5 * * * *"\n[watch]\nsettle_seconds = 2\n')
    settings = load_serve_settings(home)
    assert settings.cron == "*/5 * * * *" and settings.settle_seconds == 2.0 and settings.port == 4200
    (tmp_path / "cityres.toml").write_text('[server]\nhost = "0.0.0.0"\n')
    with pytest.raises(ValueError, match="loopback"):
        load_serve_settings(home)


def test_dbt_vars_come_from_the_config_file_and_unknown_ones_are_refused(tmp_path):
    from warehouse.settings import load_dbt_vars

    home = Home(tmp_path)
    assert load_dbt_vars(home) == {}
    (tmp_path / "cityres.toml").write_text('[dbt_vars]\nextrapolation = "nearest"\nentropy_scope = "year"\n')
    assert load_dbt_vars(home) == {"extrapolation": "nearest", "entropy_scope": "year"}
    (tmp_path / "cityres.toml").write_text('[dbt_vars]\nvintage = "mine"\n')
    with pytest.raises(ValueError, match="unknown"):
        load_dbt_vars(home)
