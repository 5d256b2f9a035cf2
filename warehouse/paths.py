"""Where cityres keeps things: the project's own files and the user's CITYRES_HOME."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
SEEDS_DIR = DBT_PROJECT_DIR / "seeds"
REFERENCE_SEEDS_DIR = SEEDS_DIR / "reference"


@dataclass(frozen=True)
class Home:
    """The folders under CITYRES_HOME (default ./.cityres)."""

    root: Path

    @classmethod
    def from_env(cls) -> "Home":
        return cls(Path(os.environ.get("CITYRES_HOME", ".cityres")).resolve())

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def warehouse_db(self) -> Path:
        """The published warehouse that users query."""
        return self.root / "warehouse.duckdb"

    @property
    def candidate_db(self) -> Path:
        """Where a refresh builds before the audit decides whether to publish."""
        return self.root / "candidate.duckdb"

    def ensure(self) -> "Home":
        for folder in (self.root, self.landing, self.archive, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
        return self
