"""What a refresh built from: cell coverage of the panel and how delivered names were resolved."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from warehouse.connections import connect_read_only

COVERAGE_SQL = """
select coverage, count(*) as cells
from intermediate.int_city_year_values_long
where year between (select min(year) from main.analysis_panel) and (select max(year) from main.analysis_panel)
group by coverage
"""

NAMES_SQL = """
select source, match_type, count(*) as names, count(*) filter (where needed_province) as needed_province
from intermediate.int_city_names_resolved
group by source, match_type
order by source, names desc
"""


@dataclass
class CoverageSummary:
    cells: dict[str, int] = field(default_factory=dict)  # reported / imputed / extrapolated / missing
    resolved_names: list[dict] = field(default_factory=list)  # source, match_type, names, needed_province

    @property
    def imputed_share(self) -> float:
        total = sum(self.cells.values())
        return self.cells.get("imputed", 0) / total if total else 0.0

    def to_dict(self) -> dict:
        return {"cells": self.cells, "imputed_share": self.imputed_share, "resolved_names": self.resolved_names}


def coverage_summary(database: Path) -> CoverageSummary:
    """Panel-year cell coverage and name-resolution counts of a built warehouse."""
    with connect_read_only(database) as con:
        cells = dict(con.execute(COVERAGE_SQL).fetchall())
        names = [dict(zip(("source", "match_type", "names", "needed_province"), row))
                 for row in con.execute(NAMES_SQL).fetchall()]
    return CoverageSummary(cells={k: int(v) for k, v in cells.items()}, resolved_names=names)
