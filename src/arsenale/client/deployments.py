"""`DeploymentClient`: deployments managed on a remote `arsenale server`, the same methods as
`DeploymentService`. Model servers that run against a remote store poll revisions and post their
statistics through it."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, segment
from arsenale.serving.models import (
    Decision,
    Deployment,
    DeploymentStatus,
    PolicyChange,
    TimelinePoint,
    VersionStats,
    VersionSummary,
    check_deployment_name,
)

__all__ = ["DeploymentClient"]

_PATH = "/api/v1/deployments"
_DEPLOYMENTS = TypeAdapter(builtins.list[Deployment])
_DECISIONS = TypeAdapter(builtins.list[Decision])
_CHANGES = TypeAdapter(builtins.list[PolicyChange])
_SUMMARIES = TypeAdapter(builtins.list[VersionSummary])
_TIMELINE = TypeAdapter(builtins.list[TimelinePoint])


def _one(name: str) -> str:
    return f"{_PATH}/{segment(check_deployment_name(name))}"


class DeploymentClient:
    """What `Client("http://…").deployments` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"DeploymentClient({self.transport.base_url!r})"

    def _deployment(self, method: str, path: str, body: object = None) -> Deployment:
        return Deployment.model_validate_json(self.transport.request(method, path, json=body).content)

    def create(self, name: str, model: str, description: str | None = None,
               reason: str | None = None, feature_service: str | None = None) -> Deployment:
        check_deployment_name(name)
        body = {"name": name, "model": model, "description": description, "reason": reason,
                "feature_service": feature_service}
        return self._deployment("POST", _PATH, body)

    def get(self, name: str) -> Deployment:
        return self._deployment("GET", _one(name))

    def list(self) -> builtins.list[Deployment]:
        return _DEPLOYMENTS.validate_json(self.transport.request("GET", _PATH).content)

    def revision(self, name: str) -> int:
        return int(self.transport.request("GET", f"{_one(name)}/revision").json()["revision"])

    def delete(self, name: str, reason: str | None = None) -> None:
        self.transport.request("POST", f"{_one(name)}/delete", json={"reason": reason})

    def split(self, name: str, weights: Mapping[str, float], sticky_key: str | None = None,
              reason: str | None = None) -> Deployment:
        body = {"weights": dict(weights), "sticky_key": sticky_key, "reason": reason}
        return self._deployment("POST", f"{_one(name)}/split", body)

    def shadow(self, name: str, models: Sequence[str], reason: str | None = None) -> Deployment:
        return self._deployment("POST", f"{_one(name)}/shadow", {"models": builtins.list(models), "reason": reason})

    def start_canary(self, name: str, model: str, *, steps: Sequence[float] = (5, 25, 50, 100),
                     interval_s: float = 60.0, max_error_rate: float = 0.01, max_p99_ms: float | None = None,
                     min_requests: int = 500, max_metric_drop: float | None = None,
                     reason: str | None = None) -> Deployment:
        body = {"model": model, "steps": builtins.list(steps), "interval_s": interval_s,
                "max_error_rate": max_error_rate, "max_p99_ms": max_p99_ms, "min_requests": min_requests,
                "max_metric_drop": max_metric_drop, "reason": reason}
        return self._deployment("POST", f"{_one(name)}/canary", body)

    def apply_decision(self, name: str, decision: Decision, expected_revision: int) -> Deployment:
        body = {"decision": decision.model_dump(mode="json"), "expected_revision": expected_revision}
        return self._deployment("POST", f"{_one(name)}/decisions", body)

    def rollback(self, name: str, reason: str | None = None) -> Deployment:
        return self._deployment("POST", f"{_one(name)}/rollback", {"reason": reason})

    def record_stats(self, name: str, replica: str, stats: Sequence[VersionStats]) -> None:
        body = {"replica": replica, "stats": [s.model_dump(mode="json") for s in stats]}
        self.transport.request("POST", f"{_one(name)}/stats", json=body)

    def summaries(self, name: str, since: int | None = None) -> builtins.list[VersionSummary]:
        content = self.transport.request("GET", f"{_one(name)}/summaries", params={"since": since}).content
        return _SUMMARIES.validate_json(content)

    def decisions(self, name: str, limit: int = 100) -> builtins.list[Decision]:
        content = self.transport.request("GET", f"{_one(name)}/decisions", params={"limit": limit}).content
        return _DECISIONS.validate_json(content)

    def history(self, name: str, limit: int = 100) -> builtins.list[PolicyChange]:
        content = self.transport.request("GET", f"{_one(name)}/history", params={"limit": limit}).content
        return _CHANGES.validate_json(content)

    def status(self, name: str, since: int | None = None) -> DeploymentStatus:
        content = self.transport.request("GET", f"{_one(name)}/status", params={"since": since}).content
        return DeploymentStatus.model_validate_json(content)

    def take_controller_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        response = self.transport.request("POST", f"{_one(name)}/lease", params={"owner": owner, "ttl_s": ttl_s})
        return bool(response.json()["acquired"])

    def timeline(self, name: str, since: int | None = None, bucket_s: float = 60.0) -> builtins.list[TimelinePoint]:
        content = self.transport.request("GET", f"{_one(name)}/timeline",
                                         params={"since": since, "bucket_s": bucket_s}).content
        return _TIMELINE.validate_json(content)
