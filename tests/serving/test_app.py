"""The inference server end to end: real registered models, Starlette's TestClient and a live uvicorn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from arsenale.config import get_settings
from arsenale.errors import WorkerCrashed
from arsenale.platform import Client
from arsenale.serving.app import SHADOW_LINGER_MS, ServingApp, create_serving_app
from arsenale.serving.inference_log import read_log
from arsenale.serving.runtime import InProcessExecutor
from tests.conftest import LiveServer

from .conftest import Fitted, register, row


def _records(fitted: Fitted, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [row(fitted, i) for i in range(start, start + n)]


@pytest.fixture
def cancer_app(local_store: Client, cancer: Fitted) -> Iterator[tuple[TestClient, ServingApp]]:
    register("cancer", cancer)
    app = create_serving_app(local_store, model="cancer/1")
    with TestClient(app) as tc:
        yield tc, app


def _until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_every_body_shape_answers_like_the_model(cancer_app: tuple[TestClient, ServingApp],
                                                 cancer: Fitted) -> None:
    tc, _ = cancer_app
    X = cancer.X.iloc[:4]
    want = cancer.model.predict(X).tolist()
    proba = cancer.model.predict_proba(X)[:, 1]
    r = tc.post("/predict", json={"records": _records(cancer, 4)}, headers={"X-Request-Id": "req-1"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "req-1" and r.headers["x-model-version"] == "cancer/1"
    body = r.json()
    assert body["predictions"] == want and body["model"] == "cancer" and body["version"] == 1
    assert body["request_id"] == "req-1"
    np.testing.assert_allclose(body["probabilities"], proba)
    assert tc.post("/predict", json={"columns": X.to_dict("list")}).json()["predictions"] == want
    assert tc.post("/predict", json=row(cancer, 2)).json()["predictions"] == [want[2]]
    v2 = {"id": "v2-call", "inputs": [{"name": "input-0", "shape": [4, 30], "datatype": "FP64",
                                       "data": X.to_numpy().ravel().tolist()}]}
    for path in ("/v2/models/cancer/infer", "/v2/models/cancer/versions/1/infer"):
        r = tc.post(path, json=v2)
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert r.json()["id"] == "v2-call" and r.json()["model_version"] == "1"
        assert out["predictions"]["data"] == want and out["predictions"]["shape"] == [4]
        assert out["predictions"]["datatype"] == "INT64" and out["probabilities"]["datatype"] == "FP64"
    generated = tc.post("/predict", json=row(cancer)).headers["x-request-id"]
    assert len(generated) >= 16


def test_health_and_metadata(cancer_app: tuple[TestClient, ServingApp]) -> None:
    tc, _ = cancer_app
    assert tc.get("/v2/health/live").json() == {"live": True}
    _until(lambda: tc.get("/v2/health/ready").status_code == 200, what="ready")
    meta = tc.get("/v2/models/cancer").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "arsenale-sklearn"
    assert meta["inputs"][0] == {"name": "mean radius", "datatype": "FP64", "shape": [-1]}
    assert len(meta["inputs"]) == 30
    assert tc.get("/v2/models/cancer/versions/1").json()["version"] == "1"
    r = tc.get("/v2/models/cancer/versions/7")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "x-request-id" in r.headers


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(
        local_store: Client, pets: Fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_SERVE_MAX_BODY_BYTES", "4096")
    register("pets", pets)
    good = row(pets)
    with TestClient(create_serving_app(local_store, model="models:/pets/1")) as tc:
        for body, field in [({"records": [{**good, "color": "purple"}]}, "color"),
                            ({**good, "size": "big"}, "size"), ({**good, "legs": 2.5}, "legs"),
                            ({k: v for k, v in good.items() if k != "legs"}, "legs"),
                            ({**good, "tail": 1}, "tail"), ({**good, "size": None}, "size")]:
            r = tc.post("/predict", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error_code"] == "INVALID_INPUT_DATA" and r.json()["field"] == field
            assert r.headers["x-model-version"] == "pets/1"
        r = tc.post("/predict", content=b'{"records": [', headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["field"] == "body"
        big = json.dumps({"records": [good] * 100}).encode()
        assert tc.post("/predict", content=big).status_code == 413
        streamed = tc.post("/predict", content=iter([big[:3000], big[3000:6000], big[6000:]]))
        assert streamed.status_code == 413 and streamed.json()["field"] == "body"
        assert tc.post("/v2/models/nobody/infer", json=good).status_code == 404
        assert tc.post("/v2/models/pets/versions/3/infer", json=good).status_code == 404
        assert tc.get("/predict").status_code == 405
        assert tc.get("/nowhere").status_code == 404
        r = tc.post("/predict", json=good, headers={"X-Padding": "p" * 40_000})
        assert r.status_code == 431 and r.json()["field"] == "headers"
        assert tc.post("/predict", json=good, headers={f"X-H{i}": "v" for i in range(150)}).status_code == 431
        bad_v2 = {"inputs": [{"name": "size", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}
        assert tc.post("/v2/models/pets/infer", json=bad_v2).json()["field"] == "size"
        r = tc.post("/predict", json={"records": [good, row(pets, 1)]})
        assert r.status_code == 200
        assert r.json()["predictions"] == pets.model.predict(pets.X.iloc[:2]).tolist()


def test_a_model_that_raises_gives_500_then_serves_again(cancer_app: tuple[TestClient, ServingApp],
                                                         cancer: Fitted) -> None:
    tc, _ = cancer_app
    poisoned = json.dumps(row(cancer)).replace('"mean radius": 17.99', '"mean radius": Infinity')
    assert "Infinity" in poisoned
    r = tc.post("/predict", content=poisoned.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 500 and r.json()["error_code"] == "MODEL_FAILED"
    assert "infinity" in r.json()["message"]
    assert tc.post("/predict", json=row(cancer)).status_code == 200


def test_metrics_and_feedback(cancer_app: tuple[TestClient, ServingApp], cancer: Fitted) -> None:
    tc, app = cancer_app
    for i in range(5):
        r = tc.post("/predict", json=row(cancer, i), headers={"X-Request-Id": f"fb-{i}"})
        assert r.status_code == 200
    tc.post("/predict", json={"oops": 1})
    r = tc.post("/feedback", json={"request_id": "fb-1", "label": 0})
    assert r.status_code == 200, r.text
    assert tc.post("/feedback", json={"label": 0}).json()["field"] == "request_id"
    text = tc.get("/metrics").text
    for name in ("arsenale_inference_request_duration_seconds_bucket", "arsenale_inference_requests_total",
                 "arsenale_inference_in_progress", "arsenale_inference_batch_size_bucket",
                 "arsenale_shadow_disagreements_total"):
        assert name in text, name
    assert _sample(text, "arsenale_inference_requests_total", 'code="200"', 'model="cancer"') == 5
    assert 'code="422"' in text
    app.flush()
    logged = read_log(get_settings().resolved_inference_log(), "cancer")
    assert set(logged["request_id"]) >= {f"fb-{i}" for i in range(5)}
    labelled = logged[logged["request_id"] == "fb-1"]
    assert labelled["label"].tolist() == [0] and labelled["version"].tolist() == [1]
    assert labelled["mean radius"].tolist() == [row(cancer, 1)["mean radius"]]


def test_ready_is_503_while_the_model_cannot_load(local_store: Client) -> None:
    app = create_serving_app(local_store, model="ghost/1")
    app.ready_timeout_s = 0.5
    with TestClient(app) as tc:
        r = tc.get("/v2/health/ready")
        assert r.status_code == 503 and r.json()["error_code"] == "BACKEND_UNAVAILABLE"
        r = tc.post("/predict", json={"a": 1.0})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert tc.get("/v2/health/live").status_code == 200


def _hammer(url: str, stop: threading.Event, seen: list[tuple[int, str, int]], body: dict[str, Any]) -> None:
    me = threading.get_ident()
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            r = http.post("/predict", json=body)
            seen.append((r.status_code, r.headers.get("x-model-version", ""), me))


def test_policy_changes_apply_without_restart_or_failures(store: Client, cancer: Fitted,
                                                         cancer_v2: Fitted) -> None:
    register("cancer", cancer)
    register("cancer", cancer_v2)
    store.deployments.create("web", "cancer/1")
    app = create_serving_app(store, deployment="web", poll_interval_s=0.1, replica="r1")
    seen: list[tuple[int, str, int]] = []
    stop = threading.Event()
    with LiveServer(app) as server:
        threads = [threading.Thread(target=_hammer, args=(server.url, stop, seen, row(cancer, i)))
                   for i in range(4)]
        for t in threads:
            t.start()
        try:
            _until(lambda: len(seen) > 20, what="first answers")
            dep = store.deployments.split("web", {"cancer/1": 50, "cancer/2": 50}, reason="A/B")
            _until(lambda: app._state is not None and app._state.revision == dep.revision, what="the split")
            mark = len(seen)
            _until(lambda: {v for _, v, _ in seen[mark:]} == {"cancer/1", "cancer/2"}, what="both versions")
            dep = store.deployments.rollback("web", reason="enough")
            _until(lambda: app._state.revision == dep.revision, what="the rollback")
            mark = len(seen)
            _until(lambda: len(seen) > mark + 40, what="answers after the rollback")
            # Each client's first answer after the swap may come from a request routed before it.
            after: dict[int, list[str]] = {}
            for _, version, who in seen[mark:]:
                after.setdefault(who, []).append(version)
            assert {v for versions in after.values() for v in versions[1:]} == {"cancer/1"}, after
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        app.flush()
        app.shutdown()
    assert {code for code, _, _ in seen} == {200}, [s for s in seen if s[0] != 200][:5]
    summaries = {(s.model, s.version, s.role): s for s in store.deployments.summaries("web")}
    assert summaries[("cancer", 1, "route")].requests > 0 and summaries[("cancer", 2, "route")].requests > 0
    assert summaries[("cancer", 1, "route")].errors == 0
    loaded = app.executor._predictors  # type: ignore[attr-defined]
    _until(lambda: "cancer/2" not in loaded, what="the unused version to be unloaded")


def test_sticky_keys_keep_their_version(store: Client, cancer: Fitted, cancer_v2: Fitted) -> None:
    register("cancer", cancer)
    register("cancer", cancer_v2)
    store.deployments.create("web", "cancer/1")
    store.deployments.split("web", {"cancer/1": 50, "cancer/2": 50}, sticky_key="user")
    app = create_serving_app(store, deployment="web")
    with TestClient(app) as tc:
        versions: dict[str, set[str]] = {}
        for user in [f"u{i}" for i in range(12)]:
            for _ in range(3):
                r = tc.post("/predict", json={"records": [{**row(cancer), "user": user}]})
                assert r.status_code == 200, r.text
                versions.setdefault(user, set()).add(r.headers["x-model-version"])
    assert all(len(v) == 1 for v in versions.values())
    assert set().union(*versions.values()) == {"cancer/1", "cancer/2"}


def test_shadow_is_logged_and_never_changes_the_answer(store: Client, cancer: Fitted,
                                                       cancer_v2: Fitted) -> None:
    register("cancer", cancer)
    register("cancer", cancer_v2)
    store.deployments.create("web", "cancer/1")
    store.deployments.shadow("web", ["cancer/2"])
    app = create_serving_app(store, deployment="web")
    n = 40
    X = cancer.X.iloc[::10].iloc[:n]
    with TestClient(app) as tc:
        for i in range(n):
            record = {k: float(v) for k, v in X.iloc[i].items()}
            r = tc.post("/predict", json=record, headers={"X-Request-Id": f"s{i}"})
            assert r.status_code == 200 and r.headers["x-model-version"] == "cancer/1"
            assert r.json()["predictions"] == cancer.model.predict(X.iloc[[i]]).tolist()
        root = get_settings().resolved_inference_log()

        def shadows_logged() -> bool:
            app.flush()
            frame = read_log(root, "web", role=None)
            return int((frame["role"] == "shadow").sum()) == n if len(frame) else False

        _until(shadows_logged, what="the shadow rows")
        metrics = tc.get("/metrics").text
    frame = read_log(root, "web", role=None)
    shadow = frame[frame["role"] == "shadow"].sort_values("request_id")
    route = frame[frame["role"] == "route"].sort_values("request_id")
    assert shadow["request_id"].tolist() == route["request_id"].tolist()
    assert set(shadow["version"]) == {2} and set(route["version"]) == {1}
    differ = int((cancer.model.predict(X) != cancer_v2.model.predict(X)).sum())
    assert differ > 0
    line = next(line for line in metrics.splitlines()
                if line.startswith("arsenale_shadow_disagreements_total{") and 'version="2"' in line)
    assert float(line.rsplit(" ", 1)[1]) == differ
    app.flush()
    roles = {(s.version, s.role) for s in store.deployments.summaries("web")}
    assert roles == {(1, "route"), (2, "shadow")}


def _count_calls(app: Any, fail_key: str | None = None) -> dict[str, int]:
    """Wrap the app's executor: model calls per version, and (optionally) one version that always fails."""
    calls: dict[str, int] = {}
    predict = app.executor.predict

    async def counted(key: str, frame: Any) -> dict[str, Any]:
        calls[key] = calls.get(key, 0) + 1
        if key == fail_key:
            raise RuntimeError("the shadow model is broken")
        return await predict(key, frame)

    app.executor.predict = counted
    return calls


def test_shadow_requests_become_a_few_model_calls(store: Client, cancer: Fitted, cancer_v2: Fitted) -> None:
    register("cancer", cancer)
    register("cancer", cancer_v2)
    store.deployments.create("web", "cancer/1")
    store.deployments.shadow("web", ["cancer/2"])
    app = create_serving_app(store, deployment="web")
    n = 60
    with TestClient(app) as tc:
        calls = _count_calls(app)
        start = time.perf_counter()
        for i in range(n):
            assert tc.post("/predict", json=row(cancer), headers={"X-Request-Id": f"b{i}"}).status_code == 200
        elapsed = time.perf_counter() - start
        _until(lambda: sum(s.requests for s in _shadow_stats(app, store)) == n, what="every shadow scored")
    assert calls["cancer/1"] == n  # one at a time: each answer is its own call
    # The shadow's rows are gathered: at most one call per linger (plus the last, partial one), however slow
    # the machine makes each request.
    assert calls["cancer/2"] <= elapsed / (SHADOW_LINGER_MS / 1000) + 2, (calls, elapsed)
    if elapsed < n * SHADOW_LINGER_MS / 1000 / 4:  # requests faster than a quarter linger: batches are visible
        assert calls["cancer/2"] < n / 2, calls


def test_a_failing_shadow_never_touches_the_answers(store: Client, cancer: Fitted, cancer_v2: Fitted) -> None:
    register("cancer", cancer)
    register("cancer", cancer_v2)
    store.deployments.create("web", "cancer/1")
    store.deployments.shadow("web", ["cancer/2"])
    app = create_serving_app(store, deployment="web")
    n = 20
    with TestClient(app) as tc:
        _count_calls(app, fail_key="cancer/2")
        for i in range(n):
            r = tc.post("/predict", json=row(cancer))
            assert r.status_code == 200 and r.headers["x-model-version"] == "cancer/1"
        _until(lambda: sum(s.errors for s in _shadow_stats(app, store)) == n, what="the shadow's errors")
    roles = {(s.version, s.role): s for s in store.deployments.summaries("web")}
    assert roles[(1, "route")].errors == 0 and roles[(2, "shadow")].errors == n


def _shadow_stats(app: Any, store: Client) -> list[Any]:
    app.flush()
    return [s for s in store.deployments.summaries("web") if s.role == "shadow"]


def test_live_server_batches_under_concurrency(local_store: Client, cancer: Fitted) -> None:
    register("cancer", cancer)
    app = create_serving_app(local_store, model="cancer/1")
    body = row(cancer)
    with LiveServer(app) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(20):  # one at a time: every batch is one row
                assert http.post("/predict", json=body).status_code == 200
        batcher = app._state.primary.batcher  # type: ignore[union-attr]
        assert batcher.batches == 20 and batcher.linger_s == 0.0
        codes: list[int] = []

        def client() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for _ in range(25):
                    codes.append(http.post("/predict", json=body).status_code)

        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            metrics = http.get("/metrics").text
        app.shutdown()
    assert codes == [200] * 400
    assert batcher.batches < 20 + 400
    count = _sample(metrics, "arsenale_inference_batch_size_count", 'model="cancer"')
    single = _sample(metrics, "arsenale_inference_batch_size_bucket", 'model="cancer"', 'le="1.0"')
    assert count > single  # some batches held more than one row


def _sample(metrics: str, name: str, *must: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name) and all(m in line for m in must):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {must} not in the metrics")


class _CrashOnce(InProcessExecutor):
    """An in-process executor whose first batch is lost the way a dying worker process loses it."""

    crashed = False

    async def predict(self, key: str, frame: Any) -> dict[str, Any]:
        if not self.crashed:
            self.crashed = True
            raise WorkerCrashed("the model worker died while it held the batch")
        return await super().predict(key, frame)


def test_a_crashed_worker_gives_503_with_retry_after(local_store: Client, cancer: Fitted) -> None:
    register("cancer", cancer)
    app = create_serving_app(local_store, model="cancer/1", executor=_CrashOnce(local_store))
    with TestClient(app) as tc:
        r = tc.post("/predict", json=row(cancer))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error_code"] == "WORKER_CRASHED"
        assert tc.post("/predict", json=row(cancer)).status_code == 200


@pytest.mark.slow
def test_serving_through_model_worker_processes(local_store: Client, cancer: Fitted) -> None:
    from arsenale.serving.workers import WorkerPool

    register("cancer", cancer)
    settings = get_settings()
    where = {"uri": settings.resolved_uri(), "artifacts": settings.resolved_artifacts(), "trusted": False}
    pool = WorkerPool("arsenale.serving.runtime:load_predictor", where, min_workers=1, max_workers=2)
    app = create_serving_app(local_store, model="cancer/1", executor=pool)
    try:
        with TestClient(app) as tc:
            r = tc.post("/predict", json={"records": [row(cancer, i) for i in range(3)]})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == cancer.model.predict(cancer.X.iloc[:3]).tolist()
            tc.portal.call(pool.close)  # type: ignore[union-attr]
    finally:
        app.shutdown()
