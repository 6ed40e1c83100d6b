"""Deployments: who answers a deployment's traffic, every change to that, and what it served.

Every change writes a new policy revision, its history row and an audit entry in one transaction,
so replicas (which poll the revision) and auditors see the same sequence. Model specs given by people
(`fraud@champion`, `fraud/7`, `models:/fraud/Production`) are resolved to a version once, when the
policy is written: moving an alias later does not silently change what production serves.

A rollback restores the policy that came before the current one; a second rollback goes one step
further back (the history is an undo stack, and every undo is itself a revision).

A deployment belongs to the project it was created in. Under a confined scope another project's deployment
is absent on every path (the store's reads by name check it), and model specs resolve through the registry,
which only finds the scope's models: a deployment never answers with another project's version.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.registry.service import RegistryAPI
from arsenale.security.projects import home
from arsenale.serving.models import (
    LATENCY_BUCKETS_MS,
    CanaryPlan,
    Decision,
    Deployment,
    DeploymentStatus,
    ModelRef,
    PolicyChange,
    Route,
    TimelinePoint,
    TrafficPolicy,
    VersionStats,
    VersionSummary,
    check_deployment_name,
    quantile_ms,
)
from arsenale.store import deployments as sql
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.store.db import read, write
from arsenale.tracking.models import now_ms

STATUS_WINDOW_MS = 15 * 60 * 1000
MAX_STATS_ROWS = 1000


class DeploymentAPI(Protocol):
    def create(self, name: str, model: str, description: str | None = None,
               reason: str | None = None, feature_service: str | None = None) -> Deployment: ...
    def get(self, name: str) -> Deployment: ...
    def list(self) -> builtins.list[Deployment]: ...
    def revision(self, name: str) -> int: ...
    def delete(self, name: str, reason: str | None = None) -> None: ...
    def split(self, name: str, weights: Mapping[str, float], sticky_key: str | None = None,
              reason: str | None = None) -> Deployment: ...
    def shadow(self, name: str, models: Sequence[str], reason: str | None = None) -> Deployment: ...
    def start_canary(self, name: str, model: str, *, steps: Sequence[float] = (5, 25, 50, 100),
                     interval_s: float = 60.0, max_error_rate: float = 0.01, max_p99_ms: float | None = None,
                     min_requests: int = 500, max_metric_drop: float | None = None,
                     reason: str | None = None) -> Deployment: ...
    def apply_decision(self, name: str, decision: Decision, expected_revision: int) -> Deployment: ...
    def rollback(self, name: str, reason: str | None = None) -> Deployment: ...
    def record_stats(self, name: str, replica: str, stats: Sequence[VersionStats]) -> None: ...
    def summaries(self, name: str, since: int | None = None) -> builtins.list[VersionSummary]: ...
    def decisions(self, name: str, limit: int = 100) -> builtins.list[Decision]: ...
    def history(self, name: str, limit: int = 100) -> builtins.list[PolicyChange]: ...
    def status(self, name: str, since: int | None = None) -> DeploymentStatus: ...
    def take_controller_lease(self, name: str, owner: str, ttl_s: float) -> bool: ...
    def timeline(self, name: str, since: int | None = None, bucket_s: float = 60.0) -> builtins.list[TimelinePoint]: ...


def _reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidInput("reason must be a string", field="reason")
    if len(reason) > 2000:
        raise InvalidInput("reason is longer than 2000 characters", field="reason")
    return reason


def _policy_json(policy: TrafficPolicy) -> str:
    return policy.model_dump_json(exclude_none=True)


def _deployment(row: Any) -> Deployment:
    return Deployment(name=row.name, description=row.description,
                      policy=TrafficPolicy.model_validate_json(row.policy), revision=row.revision,
                      creation_time=row.creation_time, last_update_time=row.last_update_time,
                      project=row.project)


def _decision(row: Any) -> Decision:
    return Decision(deployment=row.deployment, timestamp=row.timestamp, action=row.action, step=row.step,
                    reason=row.reason, evidence=json.loads(row.evidence))


def _change(row: Any) -> PolicyChange:
    return PolicyChange(deployment=row.deployment, revision=row.revision, action=row.action,
                        policy=TrafficPolicy.model_validate_json(row.policy), actor=row.actor, reason=row.reason,
                        timestamp=row.timestamp)


class DeploymentService:
    def __init__(self, engine: Engine, registry: RegistryAPI, actor: str) -> None:
        self.engine = engine
        self.registry = registry
        self.actor = actor

    # ---- resolving what people type ---------------------------------------------------

    def resolve_model(self, spec: str) -> ModelRef:
        """`fraud@champion`, `fraud/7`, `fraud/Production` or a full `models:/` URI → a concrete version."""
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidInput(f"a model is given as name@alias, name/version or models:/…; got {spec!r}",
                               field="model")
        uri = spec if spec.startswith("models:/") else f"models:/{spec}"
        mv = self.registry.resolve(uri)
        return ModelRef(model=mv.name, version=mv.version)

    # ---- reading ---------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        check_deployment_name(name)
        with read(self.engine) as conn:
            row = sql.get_deployment(conn, name)
        if row is None:
            raise NotFound(f"no deployment named {name!r}", field="name")
        return _deployment(row)

    def list(self) -> builtins.list[Deployment]:
        with read(self.engine) as conn:
            return [_deployment(r) for r in sql.list_deployments(conn)]

    def revision(self, name: str) -> int:
        with read(self.engine) as conn:
            rev = sql.get_revision(conn, name)
        if rev is None:
            raise NotFound(f"no deployment named {name!r}", field="name")
        return int(rev)

    def decisions(self, name: str, limit: int = 100) -> builtins.list[Decision]:
        check_deployment_name(name)
        with read(self.engine) as conn:
            return [_decision(r) for r in sql.list_decisions(conn, name, _limit(limit))]

    def history(self, name: str, limit: int = 100) -> builtins.list[PolicyChange]:
        check_deployment_name(name)
        with read(self.engine) as conn:
            return [_change(r) for r in sql.list_revisions(conn, name, _limit(limit))]

    # ---- writing ---------------------------------------------------------------------

    def _audit(self, conn: Any, action: str, name: str, details: dict[str, Any], now: int) -> None:
        audit_append(conn, AuditRecord(self.actor, action, "deployment", name, details), now)

    def create(self, name: str, model: str, description: str | None = None,
               reason: str | None = None, feature_service: str | None = None) -> Deployment:
        """A deployment answering with `model`; with `feature_service`, requests name entities and the
        server adds that service's online features before predicting."""
        check_deployment_name(name)
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        why = _reason(reason)
        ref = self.resolve_model(model)
        if feature_service is not None:
            if not isinstance(feature_service, str):
                raise InvalidInput("feature_service must be a feature service's name", field="feature_service")
            from arsenale.features.registry import FeatureRegistry

            FeatureRegistry(self.engine, self.actor).get("service", feature_service)  # NotFound if unknown
        policy = TrafficPolicy(routes=[Route(model=ref.model, version=ref.version, weight=100)],
                               feature_service=feature_service)
        now = now_ms()
        try:
            with write(self.engine) as conn:
                if sql.name_taken(conn, name):
                    raise Conflict(f"deployment {name!r} already exists", field="name")
                sql.insert_deployment(conn, name=name, description=description, policy=_policy_json(policy), now=now,
                                      project=home())
                sql.insert_revision(conn, deployment=name, revision=1, action="create", policy=_policy_json(policy),
                                    actor=self.actor, reason=why, now=now)
                self._audit(conn, "deployment.create", name,
                            {"model": ref.key, "revision": 1, "reason": why, "feature_service": feature_service}, now)
        except SqlIntegrityError as exc:  # a concurrent create won the race
            raise Conflict(f"deployment {name!r} already exists", field="name") from exc
        return self.get(name)

    def delete(self, name: str, reason: str | None = None) -> None:
        check_deployment_name(name)
        why = _reason(reason)
        now = now_ms()
        with write(self.engine) as conn:
            if not sql.delete_deployment(conn, name):
                raise NotFound(f"no deployment named {name!r}", field="name")
            self._audit(conn, "deployment.delete", name, {"reason": why}, now)

    def _change(self, name: str, action: str, make: Any, reason: str | None,
                details: dict[str, Any] | None = None, expected_revision: int | None = None) -> Deployment:
        """Read the current policy, build the next one with `make(current)`, write it as a new revision."""
        check_deployment_name(name)
        now = now_ms()
        with write(self.engine) as conn:
            row = sql.get_deployment(conn, name, for_update=True)
            if row is None:
                raise NotFound(f"no deployment named {name!r}", field="name")
            if expected_revision is not None and row.revision != expected_revision:
                raise Conflict(f"deployment {name!r} changed (revision {row.revision}, expected "
                               f"{expected_revision})", field="revision")
            current = TrafficPolicy.model_validate_json(row.policy)
            with _as_invalid_input("policy"):
                policy, action = make(conn, current, row.revision, action)
                policy = TrafficPolicy.model_validate(policy.model_dump())  # model_copy does not validate
            revision = row.revision + 1
            text = _policy_json(policy)
            sql.set_policy(conn, name, policy=text, revision=revision, now=now)
            sql.insert_revision(conn, deployment=name, revision=revision, action=action, policy=text,
                                actor=self.actor, reason=reason, now=now)
            self._audit(conn, f"deployment.{action.split(':')[0]}", name,
                        {"revision": revision, "routes": {r.key: r.weight for r in policy.routes},
                         "shadows": [s.key for s in policy.shadows], "reason": reason, **(details or {})}, now)
        return self.get(name)

    def split(self, name: str, weights: Mapping[str, float], sticky_key: str | None = None,
              reason: str | None = None) -> Deployment:
        """Answer with several versions at fixed shares (an A/B test); weights are percentages adding to 100."""
        if not isinstance(weights, Mapping) or not weights:
            raise InvalidInput("weights maps model specs to percentages, e.g. {'fraud/5': 50, 'fraud/6': 50}",
                               field="weights")
        if sticky_key is not None and (not isinstance(sticky_key, str) or not sticky_key.strip()):
            raise InvalidInput("sticky_key must be a non-empty field name", field="sticky_key")
        routes = []
        for spec, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise InvalidInput(f"the weight of {spec!r} must be a number, got {weight!r}", field="weights")
            ref = self.resolve_model(spec)
            with _as_invalid_input("weights"):
                routes.append(Route(model=ref.model, version=ref.version, weight=float(weight)))
        why = _reason(reason)

        def make(conn: Any, current: TrafficPolicy, revision: int, action: str) -> tuple[TrafficPolicy, str]:
            _no_running_canary(current, name)
            keys = {r.key for r in routes}
            shadows = [s for s in current.shadows if s.key not in keys]
            return TrafficPolicy(routes=routes, shadows=shadows, sticky_key=sticky_key,
                                 feature_service=current.feature_service), action

        return self._change(name, "split", make, why)

    def shadow(self, name: str, models: Sequence[str], reason: str | None = None) -> Deployment:
        """Mirror traffic to these versions (never answering with them); an empty list stops mirroring."""
        if isinstance(models, str) or not isinstance(models, Sequence):
            raise InvalidInput("models is a list of model specs", field="models")
        refs = [self.resolve_model(m) for m in models]
        why = _reason(reason)

        def make(conn: Any, current: TrafficPolicy, revision: int, action: str) -> tuple[TrafficPolicy, str]:
            return current.model_copy(update={"shadows": refs}), action

        return self._change(name, "shadow", make, why)

    def start_canary(self, name: str, model: str, *, steps: Sequence[float] = (5, 25, 50, 100),
                     interval_s: float = 60.0, max_error_rate: float = 0.01, max_p99_ms: float | None = None,
                     min_requests: int = 500, max_metric_drop: float | None = None,
                     reason: str | None = None) -> Deployment:
        """Send `steps[0]`% of traffic to `model`; the controller advances, promotes or rolls back from there."""
        ref = self.resolve_model(model)
        why = _reason(reason)
        with _as_invalid_input("canary"):
            draft = CanaryPlan(canary=ref, baseline=ref, steps=[float(s) for s in steps], interval_s=interval_s,
                               max_error_rate=max_error_rate, max_p99_ms=max_p99_ms, min_requests=min_requests,
                               max_metric_drop=max_metric_drop)

        def make(conn: Any, current: TrafficPolicy, revision: int, action: str) -> tuple[TrafficPolicy, str]:
            _no_running_canary(current, name)
            if len(current.routes) != 1:
                raise Conflict(f"deployment {name!r} splits traffic between {len(current.routes)} versions; "
                               "a canary starts from a single answering version", field="name")
            baseline = ModelRef(model=current.routes[0].model, version=current.routes[0].version)
            if baseline.key == ref.key:
                raise InvalidInput(f"{ref.key} already answers all of {name!r}'s traffic", field="model")
            plan = draft.model_copy(update={"baseline": baseline, "step_started": now_ms()})
            shadows = [s for s in current.shadows if s.key != ref.key]
            return _canary_policy(plan, current, shadows), action

        return self._change(name, "canary", make, why, {"canary": ref.key, "steps": list(draft.steps)})

    def apply_decision(self, name: str, decision: Decision, expected_revision: int) -> Deployment:
        """Record a controller decision; advance, promote and rollback also change the policy.

        `expected_revision` is the revision the decision was computed from: if a person changed the
        deployment meanwhile, the decision is stale and refused (Conflict)."""
        if decision.action in ("wait", "hold"):
            with write(self.engine) as conn:
                row = sql.get_deployment(conn, name)
                if row is None:
                    raise NotFound(f"no deployment named {name!r}", field="name")
                sql.insert_decision(conn, deployment=name, timestamp=decision.timestamp, action=decision.action,
                                    step=decision.step, reason=decision.reason,
                                    evidence=json.dumps(decision.evidence, default=str))
            return _deployment(row)

        def make(conn: Any, current: TrafficPolicy, revision: int, action: str) -> tuple[TrafficPolicy, str]:
            plan = current.canary
            if plan is None or plan.state != "running":
                raise Conflict(f"deployment {name!r} has no running canary", field="name")
            sql.insert_decision(conn, deployment=name, timestamp=decision.timestamp, action=decision.action,
                                step=decision.step, reason=decision.reason,
                                evidence=json.dumps(decision.evidence, default=str))
            if decision.action == "advance":
                nxt = plan.model_copy(update={"step_index": plan.step_index + 1, "step_started": now_ms()})
                return _canary_policy(nxt, current, current.shadows), "advance"
            if decision.action == "promote":
                done = plan.model_copy(update={"state": "promoted"})
                routes = [Route(model=plan.canary.model, version=plan.canary.version, weight=100)]
                return TrafficPolicy(routes=routes, shadows=current.shadows, canary=done,
                                     feature_service=current.feature_service), "promote"
            done = plan.model_copy(update={"state": "rolled_back"})
            routes = [Route(model=plan.baseline.model, version=plan.baseline.version, weight=100)]
            return TrafficPolicy(routes=routes, shadows=current.shadows, canary=done,
                                 feature_service=current.feature_service), "canary_rollback"

        return self._change(name, decision.action, make, decision.reason,
                            {"decision": decision.action, "step": decision.step, "evidence": decision.evidence},
                            expected_revision=expected_revision)

    def rollback(self, name: str, reason: str | None = None) -> Deployment:
        """Go back to the policy before the current one; a canary is undone as a whole. Repeatable."""
        why = _reason(reason)

        def make(conn: Any, current: TrafficPolicy, revision: int, action: str) -> tuple[TrafficPolicy, str]:
            history = {r.revision: r for r in sql.list_revisions(conn, name, 100_000)}
            head = history[revision]
            # After "rollback:k" (which restored revision k), the next rollback restores k - 1.
            target = (int(head.action.split(":")[1]) if head.action.startswith("rollback:") else revision) - 1
            # Never land inside a rollout: rolling back a canary (running or just promoted) restores the
            # policy from before it started.
            while target in history and _rolling_out(history[target].policy):
                target -= 1
            if target < 1 or target not in history:
                raise Conflict(f"deployment {name!r} has no earlier policy to roll back to", field="name")
            restored = TrafficPolicy.model_validate_json(history[target].policy)
            return restored, f"rollback:{target}"

        return self._change(name, "rollback", make, why)

    # ---- statistics ------------------------------------------------------------------

    def record_stats(self, name: str, replica: str, stats: Sequence[VersionStats]) -> None:
        check_deployment_name(name)
        if not isinstance(replica, str) or not replica or len(replica) > 256:
            raise InvalidInput("replica is a non-empty string of at most 256 characters", field="replica")
        if len(stats) > MAX_STATS_ROWS:
            raise InvalidInput(f"at most {MAX_STATS_ROWS} statistics rows per call", field="stats")
        rows = [{"deployment": name, "replica": replica, "model": s.model, "version": s.version, "role": s.role,
                 "window_start": s.window_start, "requests": s.requests, "errors": s.errors,
                 "latency_counts": json.dumps(s.latency_counts), "latency_sum_ms": s.latency_sum_ms}
                for s in stats if s.requests]
        if not rows:
            return
        with write(self.engine) as conn:
            if sql.get_revision(conn, name) is None:
                raise NotFound(f"no deployment named {name!r}", field="name")
            sql.insert_stats(conn, rows)

    def summaries(self, name: str, since: int | None = None) -> builtins.list[VersionSummary]:
        """Traffic per version since `since` (default: the last 15 minutes), summed over replicas."""
        check_deployment_name(name)
        start = now_ms() - STATUS_WINDOW_MS if since is None else int(since)
        with read(self.engine) as conn:
            rows = sql.stats_since(conn, name, start)
        return summarize(rows)

    def timeline(self, name: str, since: int | None = None, bucket_s: float = 60.0) -> builtins.list[TimelinePoint]:
        """Traffic per version per time bucket since `since` (default: the last 15 minutes)."""
        check_deployment_name(name)
        if isinstance(bucket_s, bool) or not isinstance(bucket_s, (int, float)) or not 1 <= bucket_s <= 86_400:
            raise InvalidInput(f"bucket_s must be a number of seconds in 1..86400, got {bucket_s!r}",
                               field="bucket_s")
        start = now_ms() - STATUS_WINDOW_MS if since is None else int(since)
        width = int(bucket_s * 1000)
        with read(self.engine) as conn:
            rows = sql.stats_since(conn, name, start)
        buckets: dict[int, list[Any]] = {}
        for r in rows:
            buckets.setdefault(r.window_start - (r.window_start - start) % width, []).append(r)
        points = []
        for t in sorted(buckets):
            for v in summarize(buckets[t]):
                points.append(TimelinePoint(model=v.model, version=v.version, role=v.role, t=t, requests=v.requests,
                                            errors=v.errors, p99_ms=v.p99_ms, mean_ms=v.mean_ms))
        return points

    def status(self, name: str, since: int | None = None) -> DeploymentStatus:
        dep = self.get(name)
        if since is None:
            plan = dep.policy.canary
            since = plan.step_started if plan is not None and plan.state == "running" else now_ms() - STATUS_WINDOW_MS
        return DeploymentStatus(deployment=dep, since=since, versions=self.summaries(name, since),
                                decisions=self.decisions(name, 50), history=self.history(name, 50))

    def take_controller_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        now = now_ms()
        with write(self.engine) as conn:
            return sql.take_controller_lease(conn, name, owner, now, now + int(ttl_s * 1000))


def summarize(rows: Sequence[Any]) -> list[VersionSummary]:
    """Sum statistics rows (from several replicas and windows) per (model, version, role)."""
    acc: dict[tuple[str, int, Literal["route", "shadow"]], list[Any]] = {}
    nbuckets = len(LATENCY_BUCKETS_MS) + 1
    for r in rows:
        key = (r.model, int(r.version), r.role)
        a = acc.setdefault(key, [0, 0, [0] * nbuckets, 0.0])
        a[0] += int(r.requests)
        a[1] += int(r.errors)
        counts = r.latency_counts if isinstance(r.latency_counts, list) else json.loads(r.latency_counts)
        a[2] = [x + int(y) for x, y in zip(a[2], counts)]
        a[3] += float(r.latency_sum_ms)
    out = []
    for (model, version, role), (requests, errors, counts, total_ms) in sorted(acc.items()):
        out.append(VersionSummary(model=model, version=version, role=role, requests=requests, errors=errors,
                                  error_rate=errors / requests if requests else 0.0, latency_counts=counts,
                                  mean_ms=total_ms / requests if requests else None,
                                  p50_ms=quantile_ms(counts, 0.5), p99_ms=quantile_ms(counts, 0.99)))
    return out


@contextmanager
def _as_invalid_input(field: str) -> Iterator[None]:
    """Schema violations (a weight of 150, a negative interval) as the platform's InvalidInput."""
    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or field
        raise InvalidInput(f"{where}: {first['msg']}", field=field) from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid {field}: {exc}", field=field) from None


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidInput(f"limit must be an integer in 1..10000, got {limit!r}", field="limit")
    return limit


def _no_running_canary(policy: TrafficPolicy, name: str) -> None:
    if policy.canary is not None and policy.canary.state == "running":
        raise Conflict(f"deployment {name!r} has a canary rollout running; roll back or let it finish first",
                       field="name")


def _rolling_out(policy_json: str) -> bool:
    canary = TrafficPolicy.model_validate_json(policy_json).canary
    return canary is not None and canary.state == "running"


def _canary_policy(plan: CanaryPlan, current: TrafficPolicy, shadows: list[ModelRef]) -> TrafficPolicy:
    share = plan.steps[plan.step_index]
    routes = [Route(model=plan.baseline.model, version=plan.baseline.version, weight=100 - share),
              Route(model=plan.canary.model, version=plan.canary.version, weight=share)]
    routes = [r for r in routes if r.weight > 0]
    return TrafficPolicy(routes=routes, shadows=shadows, sticky_key=current.sticky_key, canary=plan,
                         feature_service=current.feature_service)
