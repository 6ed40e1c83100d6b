"""Serving schemas: deployments, their traffic policy, canary plans, decisions and live statistics.

A deployment's `TrafficPolicy` is the whole truth about who answers: the routes (model versions with
their share of traffic), the shadows (mirrored, never answering), the sticky key and the running canary.
It lives in the metadata store with a revision number; every replica polls that number and swaps its
router when it changes, so a new policy (or a rollback to an old one) applies without a restart.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arsenale.errors import InvalidInput

# Latency histogram bucket upper bounds in milliseconds (the last bucket is +inf). Replicas count requests
# into these buckets; the canary controller reads p99 and tail fractions from summed counts.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def check_deployment_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput("a deployment name is 1-128 letters, digits, '_', '.', '-', starting with a letter "
                           f"or digit; got {value!r}", field="name")
    return value


class Schema(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")


class ModelRef(Schema):
    """One registered model version."""

    model: str = Field(min_length=1, max_length=256)
    version: int = Field(ge=1)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


class Route(ModelRef):
    """A version that answers a share of the traffic (percent, 0-100)."""

    weight: float = Field(ge=0, le=100)


class CanaryPlan(Schema):
    """A progressive rollout of `canary` against `baseline` (the version that answered before)."""

    canary: ModelRef
    baseline: ModelRef
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    interval_s: float = Field(default=60.0, gt=0, description="minimum time at each step")
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    min_requests: int = Field(default=500, ge=1, description="canary requests needed before a step is judged")
    max_metric_drop: float | None = Field(
        default=None, ge=0, description="largest allowed drop of the online metric (accuracy from feedback)")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the statistical tests")
    step_index: int = Field(default=0, ge=0)
    step_started: int = Field(default=0, description="ms since the epoch when the current step began")
    state: Literal["running", "promoted", "rolled_back", "aborted"] = "running"

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
            raise InvalidInput(f"steps must be increasing percentages in (0, 100] ending at 100; got {steps}",
                               field="steps")
        return steps


class TrafficPolicy(Schema):
    routes: list[Route] = Field(min_length=1, max_length=16)
    shadows: list[ModelRef] = Field(default_factory=list, max_length=8)
    sticky_key: str | None = Field(default=None, max_length=256,
                                   description="a request field whose value always picks the same route")
    canary: CanaryPlan | None = None
    feature_service: str | None = Field(
        default=None, max_length=256,
        description="a feature service: requests carry entity keys and the server adds the online features")

    @model_validator(mode="after")
    def _consistent(self) -> TrafficPolicy:
        total = sum(r.weight for r in self.routes)
        if abs(total - 100.0) > 1e-6:
            raise InvalidInput(f"route weights must add up to 100; they add up to {total:g}", field="routes")
        keys = [r.key for r in self.routes]
        if len(set(keys)) != len(keys):
            raise InvalidInput("a model version appears twice in the routes", field="routes")
        if any(s.key in keys for s in self.shadows):
            raise InvalidInput("a shadow must not also answer traffic", field="shadows")
        return self

    def versions(self) -> list[ModelRef]:
        """Every version a replica must load: answering ones first, then shadows."""
        seen: dict[str, ModelRef] = {}
        for ref in [*self.routes, *self.shadows]:
            seen.setdefault(ref.key, ModelRef(model=ref.model, version=ref.version))
        return list(seen.values())


class Deployment(Schema):
    name: str
    description: str | None = None
    policy: TrafficPolicy
    revision: int = Field(description="increases by one with every policy change, rollbacks included")
    creation_time: int
    last_update_time: int
    project: str = Field(default="default", description="the project it belongs to")


class PolicyChange(Schema):
    """One revision of a deployment's policy: what changed it, who, and why."""

    deployment: str
    revision: int
    action: str = Field(description="create, split, shadow, canary, advance, promote, rollback, ...")
    policy: TrafficPolicy
    actor: str
    reason: str | None = None
    timestamp: int


class Decision(Schema):
    """What the canary controller concluded at one evaluation, with the evidence it used."""

    deployment: str
    timestamp: int
    action: Literal["wait", "hold", "advance", "promote", "rollback"]
    step: float = Field(description="the canary's traffic share (percent) when the decision was taken")
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class VersionStats(Schema):
    """Requests one replica served for one version during one window (replicas flush these periodically)."""

    model: str
    version: int
    role: Literal["route", "shadow"] = "route"
    window_start: int = Field(description="ms since the epoch, the start of the flush window")
    requests: int = Field(ge=0)
    errors: int = Field(ge=0, description="requests that failed inside the model (5xx), not bad input (4xx)")
    latency_counts: list[int] = Field(description="counts per LATENCY_BUCKETS_MS bucket, plus one for +inf")
    latency_sum_ms: float = Field(ge=0)

    @field_validator("latency_counts")
    @classmethod
    def _buckets(cls, counts: list[int]) -> list[int]:
        if len(counts) != len(LATENCY_BUCKETS_MS) + 1 or any(c < 0 for c in counts):
            raise InvalidInput(f"latency_counts needs {len(LATENCY_BUCKETS_MS) + 1} non-negative counts",
                               field="latency_counts")
        return counts


class VersionSummary(Schema):
    """A version's traffic over a period, summed over replicas and windows."""

    model: str
    version: int
    role: Literal["route", "shadow"]
    requests: int
    errors: int
    error_rate: float
    latency_counts: list[int]
    mean_ms: float | None
    p50_ms: float | None
    p99_ms: float | None


class TimelinePoint(Schema):
    """One version's traffic in one time bucket: what the dashboard charts."""

    model: str
    version: int
    role: Literal["route", "shadow"]
    t: int = Field(description="bucket start, ms since the epoch")
    requests: int
    errors: int
    p99_ms: float | None
    mean_ms: float | None


class DeploymentStatus(Schema):
    deployment: Deployment
    since: int = Field(description="start of the period the summaries cover, ms since the epoch")
    versions: list[VersionSummary]
    decisions: list[Decision]
    history: list[PolicyChange]


def quantile_ms(counts: list[int], q: float) -> float | None:
    """The q-quantile of a bucketed latency distribution: the upper bound of the bucket holding it
    (the last finite bound for the +inf bucket); None without requests."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank and c:
            return LATENCY_BUCKETS_MS[min(i, len(LATENCY_BUCKETS_MS) - 1)]
    return LATENCY_BUCKETS_MS[-1]
