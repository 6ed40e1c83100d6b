"""What every gate check returns, and the strict base of every policy table.

One `CheckResult` per judged quantity: the Markdown, JUnit and HTML reports, the store and the audit entry all
read the same fields, so a new kind of check needs no change to any of them. `details` holds what a report
draws (per-group or per-slice tables, latency samples); it must stay JSON-serialisable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from arsenale.gates.stats import Interval, McNemar

__all__ = ["CheckResult", "Strict", "toml_float"]


class Strict(BaseModel):
    """A policy table: an unknown key or a wrong type is an error, never a silently ignored line."""

    model_config = ConfigDict(extra="forbid", strict=True)


def toml_float(value: Any) -> Any:
    """A policy number as a float: TOML writes 1 and 1.0 differently, and both are numbers here (true is not).
    Used as a `mode="before"` validator by every check table."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str
    candidate: float | None
    champion: float | None = None
    interval: Interval | None = None
    mcnemar: McNemar | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        interval, test = data.get("interval"), data.get("mcnemar")
        return cls(name=data["name"], passed=bool(data["passed"]), message=data["message"],
                   candidate=data.get("candidate"), champion=data.get("champion"),
                   interval=Interval(**interval) if interval else None,
                   mcnemar=McNemar(**test) if test else None, details=data.get("details") or {})
