"""Deployments over HTTP: create, change the traffic policy (split, shadow, canary), roll back, read status.

Replicas of the model server post their request statistics here when they run against a remote store;
the canary controller's decisions come back through the same `apply_decision` the embedded store uses.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.server.routers import API_PREFIX, Deployments, no_content, render
from arsenale.serving.models import (
    Decision,
    Deployment,
    DeploymentStatus,
    PolicyChange,
    TimelinePoint,
    VersionStats,
    VersionSummary,
)

router = APIRouter(prefix=API_PREFIX, tags=["deployments"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateDeployment(_Body):
    name: str
    model: str
    description: str | None = None
    reason: str | None = None
    feature_service: str | None = None


class Reason(_Body):
    reason: str | None = None


class Split(_Body):
    weights: dict[str, float]
    sticky_key: str | None = None
    reason: str | None = None


class Shadow(_Body):
    models: list[str] = Field(max_length=8)
    reason: str | None = None


class Canary(_Body):
    model: str
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0], max_length=100)
    interval_s: float = 60.0
    max_error_rate: float = 0.01
    max_p99_ms: float | None = None
    min_requests: int = 500
    max_metric_drop: float | None = None
    reason: str | None = None


class ApplyDecision(_Body):
    decision: Decision
    expected_revision: int


class Stats(_Body):
    replica: str
    stats: list[VersionStats] = Field(max_length=1000)


@router.get("/deployments", response_model=list[Deployment])
def list_deployments(deployments: Deployments) -> Response:
    return render(deployments.list())


@router.post("/deployments", status_code=201, response_model=Deployment)
def create(body: CreateDeployment, deployments: Deployments) -> Response:
    return render(deployments.create(body.name, body.model, body.description, body.reason,
                                     feature_service=body.feature_service), 201)


@router.get("/deployments/{name}", response_model=Deployment)
def get(name: str, deployments: Deployments) -> Response:
    return render(deployments.get(name))


@router.get("/deployments/{name}/revision")
def revision(name: str, deployments: Deployments) -> Response:
    return render({"revision": deployments.revision(name)})


@router.post("/deployments/{name}/delete", status_code=204)
def delete(name: str, body: Reason, deployments: Deployments) -> Response:
    deployments.delete(name, body.reason)
    return no_content()


@router.post("/deployments/{name}/split", response_model=Deployment)
def split(name: str, body: Split, deployments: Deployments) -> Response:
    return render(deployments.split(name, body.weights, body.sticky_key, body.reason))


@router.post("/deployments/{name}/shadow", response_model=Deployment)
def shadow(name: str, body: Shadow, deployments: Deployments) -> Response:
    return render(deployments.shadow(name, body.models, body.reason))


@router.post("/deployments/{name}/canary", response_model=Deployment)
def canary(name: str, body: Canary, deployments: Deployments) -> Response:
    return render(deployments.start_canary(
        name, body.model, steps=body.steps, interval_s=body.interval_s, max_error_rate=body.max_error_rate,
        max_p99_ms=body.max_p99_ms, min_requests=body.min_requests, max_metric_drop=body.max_metric_drop,
        reason=body.reason))


@router.post("/deployments/{name}/decisions", response_model=Deployment)
def apply_decision(name: str, body: ApplyDecision, deployments: Deployments) -> Response:
    return render(deployments.apply_decision(name, body.decision, body.expected_revision))


@router.get("/deployments/{name}/decisions", response_model=list[Decision])
def decisions(name: str, deployments: Deployments, limit: int = Query(100, ge=1, le=10_000)) -> Response:
    return render(deployments.decisions(name, limit))


@router.post("/deployments/{name}/rollback", response_model=Deployment)
def rollback(name: str, body: Reason, deployments: Deployments) -> Response:
    return render(deployments.rollback(name, body.reason))


@router.get("/deployments/{name}/history", response_model=list[PolicyChange])
def history(name: str, deployments: Deployments, limit: int = Query(100, ge=1, le=10_000)) -> Response:
    return render(deployments.history(name, limit))


@router.post("/deployments/{name}/stats", status_code=204)
def record_stats(name: str, body: Stats, deployments: Deployments) -> Response:
    deployments.record_stats(name, body.replica, body.stats)
    return no_content()


@router.get("/deployments/{name}/summaries", response_model=list[VersionSummary])
def summaries(name: str, deployments: Deployments, since: int | None = Query(None, ge=0)) -> Response:
    return render(deployments.summaries(name, since))


@router.get("/deployments/{name}/status", response_model=DeploymentStatus)
def status(name: str, deployments: Deployments, since: int | None = Query(None, ge=0)) -> Response:
    return render(deployments.status(name, since))


@router.post("/deployments/{name}/lease")
def take_lease(name: str, deployments: Deployments, owner: str = Query(..., min_length=1, max_length=256),
               ttl_s: float = Query(30.0, gt=0, le=3600)) -> Response:
    return render({"acquired": deployments.take_controller_lease(name, owner, ttl_s)})


@router.get("/deployments/{name}/timeline", response_model=list[TimelinePoint])
def timeline(name: str, deployments: Deployments, since: int | None = Query(None, ge=0),
             bucket_s: float = Query(60.0, ge=1, le=86_400)) -> Response:
    return render(deployments.timeline(name, since, bucket_s))
