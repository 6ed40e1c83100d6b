"""Audit trail schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AuditEntry(BaseModel):
    seq: int
    timestamp: int
    actor: str
    action: str
    entity_type: str
    entity_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyReport(BaseModel):
    """The chain is intact when every entry's hash matches its content and links to the one before."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


# ---- delivery metrics (computed from the trail by `arsenale.audit.delivery`) -----------------------------
# Times are epoch milliseconds, durations seconds. A value that cannot be computed is None, and the
# metric's `reason` says why: no metric reads 0 for lack of data.


class VersionLeadTime(BaseModel):
    """One model version's way from its run's start to serving production traffic."""

    model: str
    version: int
    run_id: str | None
    run_start: int | None = Field(description="when the version's run started (ms)")
    serving_since: int = Field(description="the deployment change that first made it a primary route (ms)")
    deployment: str
    action: str = Field(description="that change: create, split, advance, promote, ...")
    lead_time_s: float | None
    reason: str | None = Field(None, description="why lead_time_s is None")


class LeadTime(BaseModel):
    median_s: float | None
    p90_s: float | None
    count: int = Field(description="versions with a lead time")
    reason: str | None = None
    versions: list[VersionLeadTime]


class DeploymentFrequency(BaseModel):
    changes: int = Field(description="production changes in the window: deployment create, split, canary")
    days: float = Field(description="the window's length in days")
    per_day: float | None
    per_week: float | None
    by_action: dict[str, int]
    reason: str | None = None


class RollbackEvent(BaseModel):
    timestamp: int
    deployment: str
    action: str = Field(description="rollback (by a person) or canary_rollback (by the canary controller)")
    actor: str
    from_version: str | None = Field(description="model/version primary before the rollback")
    to_version: str | None = Field(description="model/version primary after it")
    why: str | None = Field(None, description="the reason recorded with the rollback")


class RollbackRate(BaseModel):
    rollbacks: int
    changes: int
    rate: float | None
    reason: str | None = None
    events: list[RollbackEvent]


class ModelCoverage(BaseModel):
    model: str
    deployments: list[str] = Field(description="deployments the model answers on at the end of the window")
    monitors: list[str] = Field(description="monitors on those deployments")
    monitored: bool


class MonitoringCoverage(BaseModel):
    production_models: int
    monitored: int
    share: float | None
    unmonitored: list[str]
    models: list[ModelCoverage]
    reason: str | None = None


class AlertPromotion(BaseModel):
    """A drift alert and the first new version of its model to serve production after it."""

    alert_id: str
    fired_at: int
    monitor: str | None
    condition: str
    deployment: str | None
    model: str | None = Field(description="the primary model of the monitor's deployment when it fired")
    promoted_version: int | None
    promoted_at: int | None
    time_to_promotion_s: float | None
    reason: str | None = Field(None, description="why time_to_promotion_s is None")


class AlertToPromotion(BaseModel):
    alerts: int = Field(description="drift alerts fired in the window")
    promoted: int = Field(description="of which a new version of the model served production afterwards")
    median_s: float | None
    reason: str | None = None
    items: list[AlertPromotion]


class DeliveryReport(BaseModel):
    """How fast and how safely models reach production, read from the audit trail."""

    since: int = Field(description="the window's start (ms)")
    until: int = Field(description="the window's end (ms); coverage is measured at this instant")
    model: str | None = Field(description="the one model reported on, or None for all")
    entries_read: int = Field(description="audit entries replayed (deployments, monitors, alerts)")
    ignored_entries: int = Field(description="entries whose details could not be read (recorded by hand)")
    lead_time: LeadTime
    deployment_frequency: DeploymentFrequency
    rollback_rate: RollbackRate
    monitoring: MonitoringCoverage
    alert_to_promotion: AlertToPromotion
