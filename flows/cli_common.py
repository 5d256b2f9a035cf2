"""What every `cityres` command shares: the home option and the process environment."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from warehouse.paths import Home

OFFLINE_ENV = {
    # No telemetry anywhere: the machine is offline and users' data stay theirs.
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # cityres stores no Prefect blocks; registering Prefect's block types in a new database costs
    # seconds of the first refresh of every home.
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
}

HomeOption = typer.Option(None, "--home", help="CITYRES_HOME (default: $CITYRES_HOME or ./.cityres)")


def configure_environment(home: Home) -> None:
    """Telemetry off, the home exported to subprocesses, Prefect's database under the home."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["CITYRES_HOME"] = str(home.root)
    # Prefect keeps its local database under the cityres home, not in the user's ~/.prefect.
    os.environ.setdefault("PREFECT_HOME", str(home.root / "prefect"))


def resolve_home(home: Optional[Path]) -> Home:
    """The home a command works on (--home, else $CITYRES_HOME, else ./.cityres), configured."""
    h = Home(home.resolve()) if home else Home.from_env()
    configure_environment(h)
    return h


def check_config_or_exit(home: Home) -> None:
    """cityres.toml and the mapping files are checked before anything runs: one line per problem, exit 2."""
    from warehouse.settings import check_config

    problems = check_config(home)
    if problems:
        console = Console(soft_wrap=True)
        for line in problems:
            console.print(f"[red]✗[/red] {escape(line)}", highlight=False)
        raise typer.Exit(2)
