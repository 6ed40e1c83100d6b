"""One deployments suite, run against SQLite, PostgreSQL and a live HTTP server.

Every refused call leaves the deployment, its history and the audit trail exactly as they were.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.serving.models import LATENCY_BUCKETS_MS, Decision, VersionStats
from arsenale.tracking.models import now_ms
from tests.conformance.test_registry import register, saved  # noqa: F401  (saved is a fixture)

MODEL = "fraud"
BUCKETS = len(LATENCY_BUCKETS_MS) + 1


@pytest.fixture
def versions(client: Client, saved: tuple[Path, str, dict[str, Any]]) -> Client:  # noqa: F811
    for _ in range(3):
        register(client, saved, MODEL)
    client.registry.set_alias(MODEL, "champion", 1)
    client.registry.set_alias(MODEL, "challenger", 2)
    return client


def snapshot(client: Client, name: str) -> Any:
    return (client.deployments.get(name).model_dump(), [h.model_dump() for h in client.deployments.history(name)],
            len(client.audit.entries(limit=None)))


def routes(client: Client, name: str) -> dict[str, float]:
    return {r.key: r.weight for r in client.deployments.get(name).policy.routes}


def stats(version: int, requests: int, errors: int = 0, fast: bool = True) -> VersionStats:
    counts = [0] * BUCKETS
    counts[1 if fast else 15] = requests
    return VersionStats(model=MODEL, version=version, window_start=now_ms(), requests=requests, errors=errors,
                        latency_counts=counts, latency_sum_ms=requests * (1.0 if fast else 300.0))


def test_create_pins_the_version_an_alias_names(versions: Client) -> None:
    d = versions.deployments
    dep = d.create("fraud-api", "fraud@champion", description="card payments", reason="first release")
    assert dep.revision == 1 and dep.description == "card payments"
    assert routes(versions, "fraud-api") == {"fraud/1": 100.0}
    versions.registry.set_alias(MODEL, "champion", 3)  # moving the alias later does not change production
    assert routes(versions, "fraud-api") == {"fraud/1": 100.0}
    assert [x.name for x in d.list()] == ["fraud-api"]
    assert d.revision("fraud-api") == 1
    entry = versions.audit.entries(entity_type="deployment")[-1]
    assert (entry.action, entry.entity_id, entry.details["model"]) == ("deployment.create", "fraud-api", "fraud/1")


def test_refused_calls_change_nothing(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    before = snapshot(versions, "fraud-api")
    with pytest.raises(Conflict):
        d.create("fraud-api", "fraud/2")
    for bad in ["", "../etc", "a b", "x" * 200, "-leading"]:
        with pytest.raises(InvalidInput):
            d.create(bad, "fraud/1")
    with pytest.raises(NotFound):
        d.create("other", "fraud/99")
    with pytest.raises(NotFound):
        d.create("other", "nosuchmodel@champion")
    with pytest.raises(InvalidInput):
        d.split("fraud-api", {"fraud/1": 60, "fraud/2": 30})  # adds up to 90
    with pytest.raises(InvalidInput):
        d.split("fraud-api", {"fraud/1": "half", "fraud/2": 50})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        d.split("fraud-api", {})
    with pytest.raises(InvalidInput):
        d.split("fraud-api", {"fraud/1": 150, "fraud/2": -50})
    with pytest.raises(InvalidInput):
        d.start_canary("fraud-api", "fraud/2", steps=[50, 10, 100])
    with pytest.raises(InvalidInput):
        d.start_canary("fraud-api", "fraud/2", steps=[10, 50])  # never reaches 100
    with pytest.raises(InvalidInput):
        d.start_canary("fraud-api", "fraud/1")  # already answers everything
    with pytest.raises(Conflict):
        d.rollback("fraud-api")  # nothing earlier
    with pytest.raises(NotFound):
        d.get("missing")
    with pytest.raises(NotFound):
        d.rollback("missing")
    with pytest.raises(InvalidInput):
        d.record_stats("fraud-api", "", [stats(1, 10)])
    assert snapshot(versions, "fraud-api") == before


def test_split_shadow_and_rollback_as_an_undo_stack(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    d.split("fraud-api", {"fraud/1": 50, "fraud@challenger": 50}, sticky_key="customer_id", reason="A/B")
    dep = d.shadow("fraud-api", ["fraud/3"])
    assert dep.revision == 3
    assert dep.policy.sticky_key == "customer_id"
    assert [s.key for s in dep.policy.shadows] == ["fraud/3"]
    with pytest.raises(InvalidInput):
        d.shadow("fraud-api", ["fraud/1"])  # answers traffic already
    assert d.rollback("fraud-api", reason="shadow too costly").policy.shadows == []
    assert routes(versions, "fraud-api") == {"fraud/1": 50.0, "fraud/2": 50.0}
    assert d.rollback("fraud-api").revision == 5
    assert routes(versions, "fraud-api") == {"fraud/1": 100.0}
    with pytest.raises(Conflict):
        d.rollback("fraud-api")
    actions = [h.action for h in d.history("fraud-api")]
    assert actions == ["rollback:1", "rollback:2", "shadow", "split", "create"]
    assert [e.action for e in versions.audit.entries(entity_type="deployment")] == [
        "deployment.create", "deployment.split", "deployment.shadow", "deployment.rollback", "deployment.rollback"]


def test_canary_advances_promotes_and_refuses_stale_decisions(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    dep = d.start_canary("fraud-api", "fraud@challenger", steps=[10, 50, 100], interval_s=1, min_requests=10)
    assert routes(versions, "fraud-api") == {"fraud/1": 90.0, "fraud/2": 10.0}
    plan = dep.policy.canary
    assert plan is not None and plan.baseline.key == "fraud/1" and plan.state == "running"
    with pytest.raises(Conflict):
        d.start_canary("fraud-api", "fraud/3")
    with pytest.raises(Conflict):
        d.split("fraud-api", {"fraud/1": 100})

    def decide(action: str, step: float) -> Decision:
        return Decision(deployment="fraud-api", timestamp=now_ms(), action=action, step=step,  # type: ignore[arg-type]
                        reason=f"{action} at {step}", evidence={"requests": 12})

    d.apply_decision("fraud-api", decide("wait", 10), dep.revision)  # recorded, the policy is unchanged
    assert d.revision("fraud-api") == dep.revision
    dep = d.apply_decision("fraud-api", decide("advance", 10), dep.revision)
    assert routes(versions, "fraud-api") == {"fraud/1": 50.0, "fraud/2": 50.0}
    with pytest.raises(Conflict):
        d.apply_decision("fraud-api", decide("advance", 50), dep.revision - 1)  # computed from an old policy
    dep = d.apply_decision("fraud-api", decide("promote", 50), dep.revision)
    assert routes(versions, "fraud-api") == {"fraud/2": 100.0}
    assert dep.policy.canary is not None and dep.policy.canary.state == "promoted"
    assert [x.action for x in d.decisions("fraud-api")] == ["promote", "advance", "wait"]
    assert d.decisions("fraud-api")[0].evidence == {"requests": 12}
    with pytest.raises(Conflict):
        d.apply_decision("fraud-api", decide("advance", 100), dep.revision)  # nothing running any more
    # Rolling back a promoted canary restores the policy from before the rollout, not a half-way step.
    d.rollback("fraud-api")
    assert routes(versions, "fraud-api") == {"fraud/1": 100.0}


def test_rollback_in_the_middle_of_a_canary_restores_the_champion(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    dep = d.start_canary("fraud-api", "fraud/2", steps=[10, 50, 100])
    d.apply_decision("fraud-api", Decision(deployment="fraud-api", timestamp=now_ms(), action="advance", step=10,
                                           reason="healthy"), dep.revision)
    dep = d.rollback("fraud-api", reason="pager went off")
    assert routes(versions, "fraud-api") == {"fraud/1": 100.0}
    assert dep.policy.canary is None
    assert versions.audit.entries(entity_type="deployment")[-1].details["reason"] == "pager went off"


def test_statistics_are_summed_over_replicas(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    since = now_ms() - 1
    d.record_stats("fraud-api", "replica-a", [stats(1, 100, errors=2), stats(2, 10, fast=False)])
    d.record_stats("fraud-api", "replica-b", [stats(1, 50, errors=1)])
    by_version = {s.version: s for s in d.summaries("fraud-api", since)}
    assert (by_version[1].requests, by_version[1].errors) == (150, 3)
    assert by_version[1].error_rate == pytest.approx(0.02)
    assert by_version[1].p99_ms == LATENCY_BUCKETS_MS[1]
    assert by_version[2].p50_ms == LATENCY_BUCKETS_MS[15] and by_version[2].mean_ms == pytest.approx(300.0)
    assert d.summaries("fraud-api", now_ms() + 60_000) == []
    status = d.status("fraud-api", since=since)
    assert status.deployment.name == "fraud-api" and len(status.versions) == 2
    with pytest.raises(NotFound):
        d.record_stats("missing", "replica-a", [stats(1, 1)])
    with pytest.raises((InvalidInput, ValueError)):
        VersionStats(model=MODEL, version=1, window_start=0, requests=1, errors=0, latency_counts=[1],
                     latency_sum_ms=1.0)


def test_one_controller_lease_at_a_time(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    assert d.take_controller_lease("fraud-api", "controller-a", 30)
    assert d.take_controller_lease("fraud-api", "controller-a", 30)  # renewing one's own lease
    assert not d.take_controller_lease("fraud-api", "controller-b", 30)
    assert d.take_controller_lease("fraud-api", "controller-a", 0.001)
    threading.Event().wait(0.01)
    assert d.take_controller_lease("fraud-api", "controller-b", 30)  # the old lease expired


def test_concurrent_policy_changes_lose_nothing(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    errors: list[BaseException] = []

    def change(i: int) -> None:
        try:
            d.split("fraud-api", {"fraud/1": 100 - i, "fraud/2": i}, reason=f"writer {i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=change, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = d.history("fraud-api")
    assert [h.revision for h in history] == list(range(9, 0, -1))
    assert sorted(h.reason for h in history[:-1]) == sorted(f"writer {i}" for i in range(1, 9))
    assert history[0].policy == d.get("fraud-api").policy


def test_timeline_buckets_traffic_per_version(versions: Client) -> None:
    d = versions.deployments
    d.create("fraud-api", "fraud/1")
    start = now_ms() - 180_000
    for minute in range(3):
        for version, n in ((1, 10 * (minute + 1)), (2, 1)):
            row = stats(version, n).model_copy(update={"window_start": start + minute * 60_000 + 5})
            d.record_stats("fraud-api", "replica-a", [row])
    points = d.timeline("fraud-api", since=start, bucket_s=60)
    assert [(p.version, p.requests) for p in points] == [(1, 10), (2, 1), (1, 20), (2, 1), (1, 30), (2, 1)]
    assert [p.t for p in points[::2]] == [start, start + 60_000, start + 120_000]
    with pytest.raises(InvalidInput):
        d.timeline("fraud-api", bucket_s=0)
