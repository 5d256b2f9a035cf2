"""User configuration: $CITYRES_HOME/cityres.toml (optional; every key has a default).

    [schedule]
    cron = "0 6 * * *"          # scheduled refresh (server time zone), "" for none
    [watch]
    poll_seconds = 5            # how often the landing folder is scanned
    settle_seconds = 10         # a file must be unchanged this long before it is loaded
    [server]
    host = "127.0.0.1"          # a local Prefect server on loopback only
    port = 4200
    [refresh]
    lock_wait_seconds = 600     # how long a refresh waits for a running one before giving up
    studies = "all"             # the program's optional studies a refresh runs: "all", or a list
                                # such as ["table4_iv", "modern_did"] ([] = only Table 3, the event
                                # study, the placebo and the NQP study's Table 3, which always run)
    [query]
    memory_limit = "4GB"        # DuckDB memory limit of `cityres query` and `cityres estimate`
    timeout_seconds = 300       # a user's statement is interrupted after this long
    max_rows = 10000            # rows shown by `cityres query --format table`
    [dbt_vars]                  # the warehouse's options (dbt_project/dbt_project.yml vars)
    extrapolation = "nearest"   # e.g. carry the last value into a gap at the end of a series
    [[deliveries]]              # a delivery profile: how to read the landing files it matches
    files = "city_yearbook/中国城市统计年鉴20*.csv"   # a pattern of landing paths (* and ?)
    year_offset = -1            # data year = the year in the file name + year_offset
    scope = "全市"              # which block of a two-level header: 全市 (default) or 市辖区

:func:`check_config` validates the whole file before anything else runs and returns one line
per problem; the loaders below raise :class:`ConfigError` carrying those lines.
"""
from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import asdict, dataclass

from warehouse.paths import Home

CONFIG_FILE = "cityres.toml"


class ConfigError(ValueError):
    """cityres.toml has problems; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ServeSettings:
    cron: str = "0 6 * * *"
    poll_seconds: float = 5.0
    settle_seconds: float = 10.0
    host: str = "127.0.0.1"
    port: int = 4200


# The refresh program's optional studies (estimation/studies/program.py STUDIES less the four it
# always runs); tests/test_refresh_flow.py checks that the two lists agree.
OPTIONAL_STUDIES = ("table2", "table4_iv", "table4_psm", "robustness", "nqp_robustness", "nqp_resilience_iv",
                    "spec_curve", "heterogeneity", "nqp_table5", "nqp_table6", "nqp_resilience_tables",
                    "wild_bootstrap", "modern_did")


@dataclass(frozen=True)
class RefreshSettings:
    lock_wait_seconds: float = 600.0
    studies: tuple[str, ...] | None = None  # None: every optional study


@dataclass(frozen=True)
class QuerySettings:
    memory_limit: str = "4GB"
    timeout_seconds: float = 300.0
    max_rows: int = 10_000


SCOPES = ("全市", "市辖区")


@dataclass(frozen=True)
class DeliveryProfile:
    """How the landing files a pattern matches are read (the first matching profile applies)."""

    files: str = "*"
    year_offset: int = 0
    scope: str = "全市"
    origin: str = "default"  # "[[deliveries]] #2" for a user's profile

    def matches(self, file_name: str) -> bool:
        return fnmatch.fnmatchcase(file_name, self.files)

    def fingerprint(self) -> str:
        """What changes the reading of a file (not where the profile was written)."""
        return repr({k: v for k, v in asdict(self).items() if k in ("year_offset", "scope")})


# Vars a user may set; `vintage` belongs to the refresh and is never taken from the file.
DBT_VARS = frozenset({
    "panel_universe", "data_first_year", "data_last_year", "panel_first_year", "panel_last_year",
    "boundary_policy", "extrapolation", "entropy_scope", "event_time_min", "event_time_max",
    "policy", "policy_coding", "adoption_dates", "spatial_cutoff_km", "spatial_idw_power", "spatial_knn",
})

_POSITIVE = "a positive number"
_KEYS = {
    "schedule": {"cron": "text"},
    "watch": {"poll_seconds": _POSITIVE, "settle_seconds": "a number >= 0"},
    "server": {"host": "text", "port": "an integer port (1-65535)"},
    "refresh": {"lock_wait_seconds": "a number >= 0", "studies": "\"all\" or a list of study names"},
    "query": {"memory_limit": "a size such as \"4GB\"", "timeout_seconds": _POSITIVE,
              "max_rows": "a positive integer"},
    "dbt_vars": None,  # checked against DBT_VARS
    "deliveries": None,  # an array of tables, checked by _delivery_problems
}
_DELIVERY_KEYS = {"files": "a pattern of landing paths such as \"city_yearbook/*.csv\"",
                  "year_offset": "an integer between -5 and 5",
                  "scope": f"one of {' or '.join(SCOPES)}"}
_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.I)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _value_problem(table: str, key: str, value) -> str | None:
    expected = _KEYS[table][key]
    ok = {
        "text": isinstance(value, str),
        _POSITIVE: _is_number(value) and value > 0,
        "a number >= 0": _is_number(value) and value >= 0,
        "an integer port (1-65535)": isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535,
        "a positive integer": isinstance(value, int) and not isinstance(value, bool) and value > 0,
        "a size such as \"4GB\"": isinstance(value, str) and bool(_SIZE.match(value)),
        "\"all\" or a list of study names": value == "all" or (isinstance(value, list)
                                                             and all(isinstance(v, str) for v in value)),
    }[expected]
    if not ok:
        return f"[{table}] {key} must be {expected}, got {value!r}"
    if table == "server" and key == "host" and value not in _LOOPBACK:
        return f"[server] host must be a loopback address ({', '.join(_LOOPBACK)}), got {value!r}"
    if table == "refresh" and key == "studies" and isinstance(value, list):
        unknown = [v for v in value if v not in OPTIONAL_STUDIES]
        if unknown:
            return (f"[refresh] studies: unknown {', '.join(map(repr, unknown))}; known: {', '.join(OPTIONAL_STUDIES)} "
                    "(Table 3, the event study, the placebo and the NQP study's Table 3 always run)")
    if table == "schedule" and key == "cron" and value and len(value.split()) != 5:
        return f"[schedule] cron must have five fields like \"0 6 * * *\" (or be \"\"), got {value!r}"
    return None


def check_config(home: Home) -> list[str]:
    """Every problem of cityres.toml and of the mapping files, one line each (file, table or
    line, key, value, what is expected)."""
    from warehouse.mappings import check_mappings

    return _toml_problems(home) + check_mappings(home.root)


def _toml_problems(home: Home) -> list[str]:
    path = home.root / CONFIG_FILE
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return [f"{path}: not UTF-8 text"]
    except tomllib.TOMLDecodeError as exc:
        return [f"{path}: not valid TOML ({exc})"]
    problems = []
    for table, content in data.items():
        if table not in _KEYS:
            hint = ("; header, unit and city mappings are CSV files in $CITYRES_HOME/mappings/ "
                    "(docs/deliveries.md)") if "map" in table.lower() or "header" in table.lower() else ""
            problems.append(f"unknown table [{table}] (known: {', '.join('[' + t + ']' for t in _KEYS)}){hint}")
            continue
        if table == "deliveries":
            problems += _delivery_problems(content)
            continue
        if not isinstance(content, dict):
            problems.append(f"{table} must be a table ([{table}]), got {content!r}")
            continue
        if table == "dbt_vars":
            unknown = sorted(set(content) - DBT_VARS)
            if unknown:
                problems.append(f"unknown [dbt_vars] {', '.join(unknown)} (known: {', '.join(sorted(DBT_VARS))})")
            continue
        for key, value in content.items():
            if key not in _KEYS[table]:
                problems.append(f"unknown key {key!r} in [{table}] (known: {', '.join(_KEYS[table])})")
                continue
            problem = _value_problem(table, key, value)
            if problem:
                problems.append(problem)
    return [f"{path.name}: {p}" if not p.startswith(str(path)) else p for p in problems]


def _delivery_problems(content) -> list[str]:
    if not isinstance(content, list):
        return ["deliveries must be written [[deliveries]] (one table per profile)"]
    problems = []
    for n, profile in enumerate(content, start=1):
        where = f"[[deliveries]] #{n}"
        if not isinstance(profile, dict):
            problems.append(f"{where} must be a table")
            continue
        for key, value in profile.items():
            if key not in _DELIVERY_KEYS:
                problems.append(f"{where}: unknown key {key!r} (known: {', '.join(_DELIVERY_KEYS)})")
                continue
            ok = {"files": isinstance(value, str) and bool(value.strip()),
                  "year_offset": isinstance(value, int) and not isinstance(value, bool) and -5 <= value <= 5,
                  "scope": value in SCOPES}[key]
            if not ok:
                problems.append(f"{where}: {key} must be {_DELIVERY_KEYS[key]}, got {value!r}")
        if "files" not in profile:
            problems.append(f"{where}: files is required ({_DELIVERY_KEYS['files']})")
    return problems


def _read_config(home: Home) -> dict:
    problems = _toml_problems(home)  # the mapping files concern loads only, not queries
    if problems:
        raise ConfigError(problems)
    path = home.root / CONFIG_FILE
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def load_dbt_vars(home: Home) -> dict:
    """The [dbt_vars] table of cityres.toml: options of the dbt project for every refresh."""
    return dict(_read_config(home).get("dbt_vars", {}))


def load_serve_settings(home: Home) -> ServeSettings:
    data, d = _read_config(home), ServeSettings()
    schedule, watch, server = data.get("schedule", {}), data.get("watch", {}), data.get("server", {})
    return ServeSettings(
        cron=str(schedule.get("cron", d.cron)),
        poll_seconds=float(watch.get("poll_seconds", d.poll_seconds)),
        settle_seconds=float(watch.get("settle_seconds", d.settle_seconds)),
        host=str(server.get("host", d.host)),
        port=int(server.get("port", d.port)),
    )


def load_refresh_settings(home: Home) -> RefreshSettings:
    section = _read_config(home).get("refresh", {})
    studies = section.get("studies", "all")
    return RefreshSettings(lock_wait_seconds=float(section.get("lock_wait_seconds", RefreshSettings.lock_wait_seconds)),
                           studies=None if studies == "all" else tuple(studies))


def load_query_settings(home: Home) -> QuerySettings:
    section, d = _read_config(home).get("query", {}), QuerySettings()
    return QuerySettings(memory_limit=str(section.get("memory_limit", d.memory_limit)),
                         timeout_seconds=float(section.get("timeout_seconds", d.timeout_seconds)),
                         max_rows=int(section.get("max_rows", d.max_rows)))


def load_delivery_profiles(home: Home) -> list[DeliveryProfile]:
    """The [[deliveries]] profiles of cityres.toml, in file order."""
    return [DeliveryProfile(files=p["files"], year_offset=int(p.get("year_offset", 0)),
                            scope=str(p.get("scope", SCOPES[0])), origin=f"[[deliveries]] #{n}")
            for n, p in enumerate(_read_config(home).get("deliveries", []), start=1)]


def profile_for(profiles: list[DeliveryProfile], file_name: str) -> DeliveryProfile:
    """The first profile whose pattern matches the landing path, else the default profile."""
    return next((p for p in profiles if p.matches(file_name)), DeliveryProfile())
