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


@dataclass
class ValidationOutcome:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed_critical(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "critical"]

    @property
    def failed_warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def publishable(self) -> bool:
        return not self.failed_critical
