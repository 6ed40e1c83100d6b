"""Monitor schemas: what a monitor watches, and what each evaluation found."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput
from arsenale.units import parse_duration

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def check_monitor_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput("a monitor name is 1-128 letters, digits, '_', '.', '-', starting with a letter or "
                           f"digit; got {value!r}", field="name")
    return value


def window_seconds(value: Any) -> int:
    """'1h', '10m', '30s', '1d' or a number of seconds → whole seconds (at least 1, at most 30 days)."""
    seconds = int(parse_duration(value, field="window"))
    if not 1 <= seconds <= 30 * 86400:
        raise InvalidInput(f"window must be between 1 s and 30 days; got {seconds} s", field="window")
    return seconds


class Schema(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class Monitor(Schema):
    name: str
    deployment: str
    reference: str = Field(description="model-contract: the training profile stored with the answering version")
    window_s: int
    schedule: str | None = None
    drift_share: float = 0.5
    creation_time: int


class MonitorRun(Schema):
    id: int
    monitor: str
    window_start: int
    window_end: int
    rows: int
    model: str | None = None
    version: int | None = None
    values: dict[str, float | None] = Field(description="every monitored value, the names alert rules use")
    timestamp: int
    report: dict[str, Any] | None = Field(default=None, description="the drift and quality reports in full")
