"""The canary: decisions from significance tests, applied by one controller per deployment on a real store."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import arsenale as ars
from arsenale.errors import NotFound
from arsenale.platform import Client
from arsenale.serving.canary import CanaryController, evaluate, slow_requests
from arsenale.serving.inference_log import InferenceLog
from arsenale.serving.models import LATENCY_BUCKETS_MS, CanaryPlan, ModelRef, VersionStats, VersionSummary
from arsenale.tracking import fluent
from arsenale.tracking.models import now_ms

NOW = 1_767_225_600_000
NB = len(LATENCY_BUCKETS_MS) + 1
FAST = LATENCY_BUCKETS_MS.index(10)  # the (7.5, 10] ms bucket


def counts(**by_bound: int) -> list[int]:
    """Latency counts from {"b10": n, ...}: n requests in the bucket whose upper bound is 10 ms."""
    out = [0] * NB
    for key, n in by_bound.items():
        bound = key[1:]
        out[NB - 1 if bound == "inf" else LATENCY_BUCKETS_MS.index(float(bound))] += n
    return out


def summary(version: int, requests: int, errors: int, latency: list[int] | None = None) -> VersionSummary:
    latency = latency or counts(b10=requests)
    return VersionSummary(model="fraud", version=version, role="route", requests=requests, errors=errors,
                          error_rate=errors / requests if requests else 0.0, latency_counts=latency,
                          mean_ms=8.0, p50_ms=10.0, p99_ms=10.0)


def plan(**changes: Any) -> CanaryPlan:
    base = {"canary": ModelRef(model="fraud", version=2), "baseline": ModelRef(model="fraud", version=1),
            "steps": [10.0, 50.0, 100.0], "interval_s": 60.0, "min_requests": 500, "max_error_rate": 0.01,
            "step_started": NOW - 61_000}
    return CanaryPlan(**{**base, **changes})


# ---- evaluate -------------------------------------------------------------------------


def test_a_healthy_canary_advances_with_the_p_values_of_scipy() -> None:
    d = evaluate(plan(), summary(2, 812, 3), summary(1, 7300, 30), NOW, deployment="fraud-api")
    assert d.action == "advance" and d.step == 10 and d.deployment == "fraud-api" and d.timestamp == NOW
    tests = d.evidence["tests"]
    assert tests["error_rate"]["p_value"] == pytest.approx(
        stats.binomtest(3, 812, 0.01, alternative="greater").pvalue, rel=1e-12)
    assert tests["error_vs_baseline"]["p_value"] == pytest.approx(
        stats.fisher_exact([[3, 809], [30, 7270]], alternative="greater").pvalue, rel=1e-12)
    assert d.evidence["next_step"] == 50 and d.evidence["look"] == "final"
    assert "error rate 0.37% ≤ 1%" in d.reason and "812 requests" in d.reason and "10% → 50%" in d.reason


def test_the_step_before_last_promotes() -> None:
    d = evaluate(plan(step_index=1), summary(2, 600, 0), summary(1, 600, 0), NOW)
    assert d.action == "promote" and d.step == 50 and "promote to 100%" in d.reason
    only = evaluate(plan(steps=[100.0]), summary(2, 600, 0), None, NOW)
    assert only.action == "promote"


def test_a_canary_failing_half_of_40_requests_rolls_back_at_once() -> None:
    d = evaluate(plan(step_started=NOW), summary(2, 40, 20), summary(1, 360, 0), NOW)
    assert d.action == "rollback" and d.evidence["look"] == "interim"
    p = stats.binomtest(20, 40, 0.01, alternative="greater").pvalue
    assert d.evidence["tests"]["error_rate"]["p_value"] == pytest.approx(p, rel=1e-9)
    assert d.evidence["tests"]["error_vs_baseline"]["significant"]
    assert d.reason.startswith("error rate 50% > 1%") and "40 requests" in d.reason


def test_early_looks_need_stronger_evidence_than_the_final_one() -> None:
    # 3 errors in 60 requests against a 1% limit: p ~ 0.023, significant at 5% but not at 0.1%.
    p = stats.binomtest(3, 60, 0.01, alternative="greater").pvalue
    assert 0.001 < p < 0.05
    early = evaluate(plan(min_requests=500), summary(2, 60, 3), None, NOW)
    assert early.action == "wait" and early.evidence["alpha_used"] == pytest.approx(0.001)
    final = evaluate(plan(min_requests=50), summary(2, 60, 3), None, NOW)
    assert final.action == "rollback" and final.evidence["alpha_used"] == 0.05


def test_a_slow_canary_rolls_back_on_p99() -> None:
    latency = counts(b10=900, b100=100)  # 10% of requests in (75, 100] ms
    d = evaluate(plan(max_p99_ms=50), summary(2, 1000, 0, latency), summary(1, 9000, 0), NOW)
    assert d.action == "rollback"
    t = d.evidence["tests"]["latency"]
    assert t["slow"] == 100 and t["p99_ms"] == 100
    assert t["p_value"] == pytest.approx(stats.binomtest(100, 1000, 0.01, alternative="greater").pvalue)
    assert "p99 100 ms > 50 ms" in d.reason


def test_only_buckets_entirely_above_the_bound_count_as_slow() -> None:
    straddling = counts(b50=1000)  # (30, 50] ms: can't be told apart from fast requests at a 40 ms bound
    assert slow_requests(straddling, 50) == 0 and slow_requests(straddling, 40) == 0
    assert slow_requests(straddling, 30) == 1000
    assert slow_requests(counts(b75=7, binf=3), 50) == 10
    d = evaluate(plan(max_p99_ms=40), summary(2, 1000, 0, straddling), None, NOW)
    assert d.action == "advance" and d.evidence["tests"]["latency"]["slow"] == 0


def test_noise_at_the_baselines_error_rate_does_not_roll_back() -> None:
    p = plan(max_error_rate=0.02)
    same = evaluate(p, summary(2, 500, 5), summary(1, 4500, 45), NOW)
    assert same.action == "advance"
    assert 0.3 < same.evidence["tests"]["error_vs_baseline"]["p_value"] < 0.8
    slightly_worse = evaluate(p, summary(2, 500, 7), summary(1, 4500, 45), NOW)
    assert slightly_worse.action == "advance"
    for early in range(1, 500, 37):  # every interim look on noise stays put
        assert evaluate(p, summary(2, early, round(early * 0.01)), summary(1, 9 * early, round(early * 0.09)),
                        NOW).action in ("wait", "advance")


def test_an_error_rate_over_the_limit_but_not_significantly_holds() -> None:
    d = evaluate(plan(), summary(2, 500, 7), summary(1, 4500, 63), NOW)  # 1.4%: p ~ 0.19
    assert d.action == "hold" and "error rate over the limit" in d.reason


def test_waits_for_requests_and_for_the_interval_with_a_stable_reason() -> None:
    few = [evaluate(plan(), summary(2, n, 0), summary(1, 9 * n, 0), NOW) for n in (10, 20, 499)]
    assert {d.action for d in few} == {"wait"} and len({d.reason for d in few}) == 1
    assert "500 canary requests" in few[0].reason and few[0].evidence["requests"] == 10
    assert evaluate(plan(), None, None, NOW).action == "wait"
    young = evaluate(plan(step_started=NOW - 10_000), summary(2, 900, 0), summary(1, 8100, 0), NOW)
    assert young.action == "wait" and "60 s" in young.reason


def test_an_online_accuracy_drop_rolls_back() -> None:
    online = {"fraud/2": {"labelled": 400, "correct": 340, "accuracy": 0.85},
              "fraud/1": {"labelled": 400, "correct": 376, "accuracy": 0.94}}
    d = evaluate(plan(max_metric_drop=0.02), summary(2, 600, 0), summary(1, 5400, 0), NOW, online)
    assert d.action == "rollback" and "accuracy 85%" in d.reason
    pc, pb = 341 / 402, 377 / 402
    z = (pc - pb + 0.02) / math.sqrt(pc * (1 - pc) / 402 + pb * (1 - pb) / 402)
    assert d.evidence["tests"]["accuracy"]["p_value"] == pytest.approx(stats.norm.cdf(z))
    within = {"fraud/2": {"labelled": 400, "correct": 372, "accuracy": 0.93}, "fraud/1": online["fraud/1"]}
    assert evaluate(plan(max_metric_drop=0.02), summary(2, 600, 0), summary(1, 5400, 0), NOW,
                    within).action == "advance"
    no_limit = evaluate(plan(), summary(2, 600, 0), summary(1, 5400, 0), NOW, online)
    assert no_limit.action == "advance" and "accuracy" not in no_limit.evidence["tests"]


# ---- the controller on a real store ----------------------------------------------------


@pytest.fixture(scope="module")
def models() -> tuple[np.ndarray, list[LogisticRegression]]:
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)  # standardized: lbfgs converges in a few iterations
    return X, [LogisticRegression(C=c, max_iter=1000).fit(X, y) for c in (1.0, 0.1)]


@pytest.fixture
def client(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           models: tuple[np.ndarray, list[LogisticRegression]]) -> Client:
    """Two registered versions of a breast-cancer classifier; `bc` answers with v1 and canaries v2."""
    artifacts = str(tmp_path / "artifacts")
    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", artifacts)
    monkeypatch.setattr(fluent, "_clients", {})  # this test's store, not a cached one
    X, fitted = models
    for model in fitted:
        ars.register_model("bc", model, signature_from=X)
    client = Client(store_uri, artifacts=artifacts, actor="release-bot")
    client.deployments.create("bc", "bc/1")
    client.deployments.start_canary("bc", "bc/2", steps=[10, 50, 100], interval_s=0.05, min_requests=50)
    return client


def feed(client: Client, canary: tuple[int, int], baseline: tuple[int, int], slow: bool = False) -> None:
    """Record (requests, errors) for v2 and v1, in a window starting now."""
    rows = []
    for version, (n, errors) in ((2, canary), (1, baseline)):
        latency = counts(b200=n) if slow and version == 2 else counts(b10=n)
        rows.append(VersionStats(model="bc", version=version, window_start=now_ms(), requests=n,
                                 errors=errors, latency_counts=latency, latency_sum_ms=8.0 * n))
    client.deployments.record_stats("bc", "replica-1", rows)


def test_a_healthy_canary_walks_to_promotion(client: Client) -> None:
    ctl = CanaryController(client.deployments, "ctl-a")
    first = ctl.tick("bc")
    assert first is not None and first.action == "wait"
    assert ctl.tick("bc").action == "wait"  # type: ignore[union-attr]
    assert [d.action for d in client.deployments.decisions("bc")] == ["wait"]  # recorded once

    feed(client, (200, 0), (1800, 1))
    time.sleep(0.06)
    advanced = ctl.tick("bc")
    assert advanced is not None and advanced.action == "advance", advanced
    dep = client.deployments.get("bc")
    assert {r.key: r.weight for r in dep.policy.routes} == {"bc/1": 50, "bc/2": 50}
    assert dep.policy.canary is not None and dep.policy.canary.step_index == 1

    assert ctl.tick("bc").action == "wait"  # type: ignore[union-attr]  # the new step starts from zero
    feed(client, (1000, 1), (1000, 2))
    time.sleep(0.06)
    promoted = ctl.tick("bc")
    assert promoted is not None and promoted.action == "promote", promoted
    dep = client.deployments.get("bc")
    assert [(r.key, r.weight) for r in dep.policy.routes] == [("bc/2", 100)]
    assert dep.policy.canary is not None and dep.policy.canary.state == "promoted"
    assert ctl.tick("bc") is None

    assert [d.action for d in client.deployments.decisions("bc")] == ["promote", "wait", "advance", "wait"]
    assert "1000 requests" in client.deployments.decisions("bc")[0].reason
    actions = [e.action for e in client.audit.entries(entity_type="deployment")]
    assert {"deployment.create", "deployment.canary", "deployment.advance",
            "deployment.promote"} <= set(actions)
    assert client.audit.verify().ok


def test_a_failing_canary_is_rolled_back_to_the_baseline(client: Client) -> None:
    feed(client, (40, 20), (360, 0))
    decision = CanaryController(client.deployments, "ctl-a").tick("bc")
    assert decision is not None and decision.action == "rollback"
    assert "error rate 50% > 1%" in decision.reason
    dep = client.deployments.get("bc")
    assert [(r.key, r.weight) for r in dep.policy.routes] == [("bc/1", 100)]
    assert dep.policy.canary is not None and dep.policy.canary.state == "rolled_back"
    entries = client.audit.entries(entity_type="deployment", action="deployment.canary_rollback")
    assert len(entries) == 1 and entries[0].details["evidence"]["tests"]["error_rate"]["significant"]


def test_a_slow_canary_is_rolled_back(client: Client) -> None:
    d = client.deployments.get("bc")
    assert d.policy.canary is not None
    client.deployments.rollback("bc")
    client.deployments.start_canary("bc", "bc/2", steps=[10, 100], interval_s=0.05, min_requests=50,
                                    max_p99_ms=50)
    feed(client, (200, 0), (1800, 0), slow=True)
    decision = CanaryController(client.deployments, "ctl-a").tick("bc")
    assert decision is not None and decision.action == "rollback" and "p99 200 ms > 50 ms" in decision.reason


def test_only_the_lease_holder_acts(client: Client) -> None:
    a = CanaryController(client.deployments, "ctl-a", lease_s=60)
    b = CanaryController(client.deployments, "ctl-b", lease_s=60)
    assert a.tick("bc") is not None
    assert b.tick("bc") is None
    feed(client, (200, 0), (1800, 0))
    time.sleep(0.06)
    assert b.tick("bc") is None
    assert client.deployments.get("bc").policy.canary.step_index == 0  # type: ignore[union-attr]
    decision = a.tick("bc")
    assert decision is not None and decision.action == "advance"
    assert CanaryController(client.deployments, "ctl-a", lease_s=0.2).tick("bc") is not None  # renewed, short
    time.sleep(0.25)  # a's lease lapses: b takes over
    assert b.tick("bc") is not None
    assert a.tick("bc") is None


class _MovingDeployments:
    """The store, with a person changing the deployment while the controller is reading its statistics."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def summaries(self, name: str, since: int | None = None) -> Any:
        self.inner.shadow(name, [], reason="someone else")
        return self.inner.summaries(name, since)


def test_a_decision_made_stale_by_a_change_is_dropped_not_raised(client: Client) -> None:
    feed(client, (40, 20), (360, 0))
    ctl = CanaryController(_MovingDeployments(client.deployments), "ctl-a")  # type: ignore[arg-type]
    assert ctl.tick("bc") is None
    assert client.deployments.get("bc").policy.canary.state == "running"  # type: ignore[union-attr]
    again = CanaryController(client.deployments, "ctl-a").tick("bc")  # the next tick re-reads and acts
    assert again is not None and again.action == "rollback"


def test_the_thread_survives_errors_and_keeps_acting(client: Client) -> None:
    def names() -> list[str]:
        return ["missing", "bc"]  # the first raises NotFound on every tick

    with pytest.raises(NotFound):
        CanaryController(client.deployments, "x").tick("missing")
    ctl = CanaryController(client.deployments, "ctl-a")
    ctl.start(names, every_s=0.02)
    try:
        feed(client, (40, 20), (360, 0))
        deadline = time.monotonic() + 30
        while client.deployments.get("bc").policy.canary.state == "running":  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        ctl.stop()
    assert client.deployments.decisions("bc")[0].action == "rollback"


def test_online_accuracy_from_the_inference_log_rolls_back(client: Client, tmp_path: Path) -> None:
    client.deployments.rollback("bc")
    client.deployments.start_canary("bc", "bc/2", steps=[10, 100], interval_s=0.05, min_requests=50,
                                    max_metric_drop=0.02)
    root = str(tmp_path / "inference")
    log = InferenceLog(root, "bc", replica="r1")
    rng = np.random.default_rng(0)
    t = now_ms()
    for i in range(600):
        version = 2 if i % 5 == 0 else 1
        truth = int(rng.integers(0, 2))
        wrong = version == 2 and rng.random() < 0.3  # the canary is wrong 30% of the time
        log.log(request_id=f"q{i}", model="bc", version=version, role="route", inputs=[{"x": 1.0}],
                outputs=[1 - truth if wrong else truth], latency_ms=3, timestamp_ms=t)
        log.feedback(f"q{i}", truth, t + 1)
    log.close()
    feed(client, (120, 0), (480, 0))
    time.sleep(0.06)
    decision = CanaryController(client.deployments, "ctl-a", inference_log_root=root).tick("bc")
    assert decision is not None and decision.action == "rollback", decision
    acc = decision.evidence["tests"]["accuracy"]
    assert acc["labelled"] == 120 and acc["baseline_accuracy"] == 1.0 and acc["p_value"] < 0.05
