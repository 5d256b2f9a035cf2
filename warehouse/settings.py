"""User configuration: $CITYRES_HOME/cityres.toml (optional; every key has a default).

    [schedule]
    cron = "0 6 * * *"          # scheduled refresh (server time zone), "" for none
    [watch]
    poll_seconds = 5            # how often the landing folder is scanned
    settle_seconds = 10         # a file must be unchanged this long before it is loaded
    [server]
    host = "127.0.0.1"          # a local Prefect server on loopback only
    port = 4200
    [dbt_vars]                  # the warehouse's options (dbt_project/dbt_project.yml vars)
    extrapolation = "nearest"   # e.g. carry the last value into a gap at the end of a series
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass

from warehouse.paths import Home

CONFIG_FILE = "cityres.toml"


@dataclass(frozen=True)
class ServeSettings:
    cron: str = "0 6 * * *"
    poll_seconds: float = 5.0
    settle_seconds: float = 10.0
    host: str = "127.0.0.1"
    port: int = 4200


def _read_config(home: Home) -> dict:
    path = home.root / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None


# Vars a user may set; `vintage` belongs to the refresh and is never taken from the file.
DBT_VARS = frozenset({
    "panel_universe", "data_first_year", "data_last_year", "panel_first_year", "panel_last_year",
    "boundary_policy", "extrapolation", "entropy_scope", "event_time_min", "event_time_max",
    "policy", "policy_coding",
})


def load_dbt_vars(home: Home) -> dict:
    """The [dbt_vars] table of cityres.toml: options of the dbt project for every refresh."""
    given = _read_config(home).get("dbt_vars", {})
    unknown = sorted(set(given) - DBT_VARS)
    if unknown:
        raise ValueError(f"{home.root / CONFIG_FILE}: unknown [dbt_vars] {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(DBT_VARS))})")
    return dict(given)


def load_serve_settings(home: Home) -> ServeSettings:
    path = home.root / CONFIG_FILE
    data = _read_config(home)
    defaults = ServeSettings()
    schedule, watch, server = data.get("schedule", {}), data.get("watch", {}), data.get("server", {})
    settings = ServeSettings(
        cron=str(schedule.get("cron", defaults.cron)),
        poll_seconds=float(watch.get("poll_seconds", defaults.poll_seconds)),
        settle_seconds=float(watch.get("settle_seconds", defaults.settle_seconds)),
        host=str(server.get("host", defaults.host)),
        port=int(server.get("port", defaults.port)),
    )
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{path}: [server] host must be a loopback address, got {settings.host!r}")
    return settings
