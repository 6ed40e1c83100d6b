"""Monitor schemas: what a monitor watches, and what each evaluation found."""

from __future__ import annotations

import re
from typing import Any, Literal

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


LLM_REFERENCE = "llm-traces"  # the `reference` of an LLM monitor: it watches stored traces, not a deployment


class TraceFilter(Schema):
    """Which traces an LLM monitor watches; every field given must match (none given: every trace)."""

    trace_name: str | None = Field(default=None, description="the trace's name (its root span's)")
    prompt: str | None = Field(default=None, description="a prompt name (any version) or name/version")
    tags: dict[str, str | int | float | bool] = Field(default_factory=dict,
                                                      description="attributes the trace's root span must hold")
    feedback: str = Field(default="thumbs", description="the score name of human feedback; a trace whose "
                          "latest such score is <= 0 counts as negative")


class Monitor(Schema):
    name: str
    deployment: str = Field(description="the deployment watched; empty for an LLM monitor")
    reference: str = Field(description="model-contract: the training profile stored with the answering version; "
                           "llm-traces: an LLM monitor over stored traces")
    kind: Literal["model", "llm"] = "model"
    traces: TraceFilter | None = Field(default=None, description="an LLM monitor's trace filter")
    window_s: int
    schedule: str | None = None
    drift_share: float = 0.5
    creation_time: int
    next_run_time: int | None = Field(default=None, description="when the scheduler next evaluates it "
                                      "(scheduled monitors only)")
    project: str = Field(default="default", description="the project it belongs to")


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
    alerts: list[Alert] = Field(default_factory=list, description="the alerts this evaluation fired or "
                                "resolved (on the run just made; for history see `alerts.list_alerts`)")
    alert_error: str | None = Field(default=None, description="why alert rules could not be evaluated for "
                                    "this window (the window itself is stored)")


class AlertRuleInfo(Schema):
    """An alert rule as stored: `when` is the canonical rule text, `state` the evaluator's state."""

    id: int
    name: str
    monitor: str
    when: str = Field(description="metric op threshold [for N windows]")
    notify: list[str] = Field(default_factory=list, description="webhook:URL, slack:URL or log")
    trigger_pipeline: str | None = Field(default=None, description="module:function run when the rule fires")
    severity: Literal["warning", "critical"] = "warning"
    enabled: bool = True
    state: dict[str, Any] | None = Field(default=None,
                                         description="consecutive breaches, status, last window")
    creation_time: int
    created_by: str


class Alert(Schema):
    """One episode of a rule: fired by one window, resolved by a later one."""

    id: int
    rule_id: int
    rule: str
    monitor: str
    severity: str
    status: Literal["firing", "resolved"]
    value: float | None = Field(default=None, description="the value that fired it")
    threshold: str = Field(description="the rule's condition when it fired")
    started_at: int
    resolved_at: int | None = None
    run_id: int = Field(description="the monitor run (window) that fired it")
    resolved_run_id: int | None = None
    evidence: dict[str, Any] = Field(default_factory=dict, description="the firing window's values and "
                                     "drifted columns; what a triggered pipeline receives")
    pipeline_run_id: str | None = None
    pipeline_error: str | None = None
    deliveries: list[dict[str, Any]] = Field(default_factory=list,
                                             description="each notification and its outcome")


MonitorRun.model_rebuild()
