"""The publish gate: which expectation results block publishing.

GX marks a suite failed when any expectation fails, whatever its meta; cityres tags every
expectation with meta severity critical|warning and decides here.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckResult:
    suite: str
    relation: str
    expectation: str
    column: str | None
    severity: str  # critical | warning
    success: bool
    unexpected_count: int | None
    examples: str  # a few unexpected values or rows, as text
    check: str = ""  # the cityres check this expectation implements (docs/data-quality.md)
    description: str = ""  # what is expected, in words
    threshold: str = ""  # the configured bound(s), as text
    element_count: int | None = None  # rows the expectation looked at
    observed: str = ""  # observed value of aggregate expectations (e.g. a row count)
    example_rows: tuple[dict, ...] = ()  # unexpected rows: file/row/column or key columns


@dataclass
class ValidationOutcome:
    results: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. a suite part skipped, and why
    docs_index: str | None = None  # GX Data Docs of this validation (index.html)

    @property
    def failed_critical(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "critical"]

    @property
    def failed_warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def publishable(self) -> bool:
        return not self.failed_critical

    def extend(self, other: "ValidationOutcome") -> "ValidationOutcome":
        self.results.extend(other.results)
        self.notes.extend(other.notes)
        return self
