"""The FastAPI app in-process: health, metrics, docs, and every kind of bad request answered
with the right status and one error shape, leaving the store exactly as it was."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arsenale.errors import InvalidInput
from arsenale.platform import Client
from arsenale.server.app import create_app
from arsenale.server.routers import tracking as tracking_routes

API = "/api/v1"
BAD, MISSING, EXISTS = "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"


@pytest.fixture
def client(tmp_path: Path) -> Client:
    return Client(f"sqlite:///{tmp_path}/db.sqlite", artifacts=str(tmp_path / "artifacts"))


@pytest.fixture
def api(client: Client) -> Iterator[TestClient]:
    with TestClient(create_app(client)) as test_client:
        yield test_client


@pytest.fixture
def run_id(client: Client) -> str:
    exp = client.tracking.create_experiment("exp")
    run = client.tracking.create_run(exp.experiment_id, run_name="r1", params={"lr": "0.1"})
    client.tracking.log_batch(run.info.run_id, metrics=[("loss", 0.5, 0, 1)])
    client.tracking.log_artifact_bytes(run.info.run_id, "model/weights.bin", b"w")
    return run.info.run_id


def snapshot(client: Client, tmp_path: Path) -> Any:
    """Everything a bad request could have changed: rows, points, artifact rows and blobs, audit entries."""
    exps = client.tracking.list_experiments("all")
    runs = client.tracking.search_runs([e.experiment_id for e in exps], view="all").runs if exps else []
    histories = {(r.info.run_id, k): client.tracking.get_metric_history(r.info.run_id, k).model_dump_json()
                 for r in runs for k in r.data.metrics}
    artifacts = {r.info.run_id: [a.model_dump() for a in _all_artifacts(client, r.info.run_id, None)]
                 for r in runs}
    blob_root = tmp_path / "artifacts" / "blobs"
    blobs = sorted(str(p) for p in blob_root.rglob("*")) if blob_root.exists() else []
    return ([e.model_dump_json() for e in exps], [r.model_dump_json() for r in runs], histories, artifacts,
            blobs, len(client.audit.entries(limit=None)))


def _all_artifacts(client: Client, run_id: str, path: str | None) -> list[Any]:
    out = []
    for a in client.tracking.list_artifacts(run_id, path):
        out.extend(_all_artifacts(client, run_id, a.path) if a.is_dir else [a])
    return out


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert body.get("field") == field, body
    assert "Traceback" not in response.text
    return body  # type: ignore[no-any-return]


# ---- operations ------------------------------------------------------------------------------------------


def test_health_answers_ok_after_a_query(api: TestClient) -> None:
    r = api.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_metrics_count_requests_per_route_template_and_status(api: TestClient, run_id: str) -> None:
    api.get(f"{API}/runs/{run_id}")
    api.get(f"{API}/runs/{'0' * 32}")
    text = api.get("/metrics").text
    assert f'route="{API}/runs/{{run_id}}",status="200"' in text
    assert f'route="{API}/runs/{{run_id}}",status="404"' in text
    assert "arsenale_http_request_duration_seconds_bucket" in text
    assert run_id not in text  # templates, never raw paths


def test_each_app_has_its_own_metrics_registry(client: Client) -> None:
    with TestClient(create_app(client)) as a, TestClient(create_app(client)) as b:
        a.get("/health")
        assert 'route="/health"' in a.get("/metrics").text
        assert 'route="/health"' not in b.get("/metrics").text


def test_openapi_docs_list_the_api(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for path in (f"{API}/experiments", f"{API}/runs/{{run_id}}/log-batch", f"{API}/runs/search",
                 f"{API}/runs/{{run_id}}/artifacts/{{path}}", f"{API}/audit/verify"):
        assert path in paths


def test_refuses_to_wrap_a_remote_client(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="local store"):
        create_app(Client("http://127.0.0.1:9"))
    monkeypatch.setenv("ARSENALE_URI", "http://127.0.0.1:9")
    with pytest.raises(InvalidInput, match="local store"):
        create_app()


def test_default_client_is_built_from_settings_on_first_use(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_URI", f"sqlite:///{tmp_path}/lazy.db")
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "lazy-artifacts"))
    app = create_app()
    assert not (tmp_path / "lazy.db").exists()
    with TestClient(app) as api:
        assert api.get("/health").status_code == 200
        assert api.post(f"{API}/experiments", json={"name": "lazy"}).status_code == 201
    assert (tmp_path / "lazy.db").exists()


def test_unexpected_errors_are_a_generic_500_without_details(client: Client, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def get_run(self, run_id: str) -> None:
            raise RuntimeError("secret internals")

    class BrokenClient:
        uri = client.uri
        tracking = Broken()
        audit = client.audit

    with TestClient(create_app(BrokenClient())) as api:  # type: ignore[arg-type]
        r = api.get(f"{API}/runs/{'a' * 32}")
    body = assert_error(r, 500, "INTERNAL_ERROR")
    assert "secret" not in r.text
    assert "server log" in body["message"]
    assert "secret internals" in caplog.text


def test_unknown_endpoint_has_the_same_error_shape(api: TestClient) -> None:
    assert_error(api.get(f"{API}/nothing-here"), 404, MISSING)
    assert_error(api.delete(f"{API}/experiments"), 405, "HTTP_405")


# ---- round trips -----------------------------------------------------------------------------------------


def test_experiment_and_run_round_trip(api: TestClient) -> None:
    exp = api.post(f"{API}/experiments", json={"name": "a/b c", "tags": {"team": 7}})
    assert exp.status_code == 201
    exp_id = exp.json()["experiment_id"]
    assert exp.json()["tags"] == {"team": "7"}
    assert api.get(f"{API}/experiments/by-name/a/b c").json()["experiment_id"] == exp_id
    assert_error(api.get(f"{API}/experiments/by-name/missing"), 404, MISSING, "name")
    run = api.post(f"{API}/runs", json={"experiment_id": exp_id, "params": {"lr": 0.1}}).json()
    run_id = run["info"]["run_id"]
    r = api.post(f"{API}/runs/{run_id}/log-batch",
                 json={"metrics": {"key": "loss", "value": [1.5, "NaN", "Infinity", "-Infinity"],
                                   "step": [0, 1, 2, 3], "timestamp": [10, 11, 12, 13]},
                       "tags": {"stage": "dev"}})
    assert r.status_code == 204, r.text
    hist = api.get(f"{API}/runs/{run_id}/metrics/history", params={"key": "loss"}).json()
    assert hist["values"] == [1.5, "NaN", "Infinity", "-Infinity"]
    assert hist["steps"] == [0, 1, 2, 3]
    done = api.patch(f"{API}/runs/{run_id}", json={"status": "finished"}).json()
    assert done["info"]["status"] == "FINISHED" and done["info"]["end_time"] is not None
    assert done["data"] == {"params": {"lr": "0.1"}, "tags": {"stage": "dev"},
                            "metrics": {"loss": "-Infinity"}}
    search = {"experiment_ids": [exp_id], "filter": "params.lr = '0.1'"}
    page = api.post(f"{API}/runs/search", json=search).json()
    assert [r["info"]["run_id"] for r in page["runs"]] == [run_id]


def test_log_batch_columns_default_step_and_timestamp(api: TestClient, client: Client, run_id: str) -> None:
    r = api.post(f"{API}/runs/{run_id}/log-batch", json={"metrics": {"key": ["a", "b"], "value": [1, 2]}})
    assert r.status_code == 204, r.text
    hist = client.tracking.get_metric_history(run_id, "b")
    assert hist.values == [2.0] and hist.steps == [0] and hist.timestamps[0] > 0


def test_artifact_upload_list_and_download(api: TestClient, run_id: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    r = api.put(f"{API}/runs/{run_id}/artifacts/data/small file.txt", content=b"hello")
    assert r.status_code == 201 and r.json()["path"] == "data/small file.txt" and r.json()["size"] == 5
    monkeypatch.setattr(tracking_routes, "SMALL_UPLOAD", 4)  # take the streamed, temp-file path
    big = bytes(range(256)) * 1000
    r = api.put(f"{API}/runs/{run_id}/artifacts/data/big.bin", content=big)
    assert r.status_code == 201 and r.json() == {**r.json(), "path": "data/big.bin", "size": len(big)}
    listing = api.get(f"{API}/runs/{run_id}/artifacts", params={"path": "data"}).json()
    assert [a["path"] for a in listing] == ["data/big.bin", "data/small file.txt"]
    assert api.get(f"{API}/runs/{run_id}/artifacts/content/data/big.bin").content == big
    assert api.get(f"{API}/runs/{run_id}/artifacts/content/data/small%20file.txt").content == b"hello"
    assert_error(api.get(f"{API}/runs/{run_id}/artifacts/content/data"), 400, BAD, "path")
    assert_error(api.get(f"{API}/runs/{run_id}/artifacts/content/nope"), 404, MISSING, "path")


def test_audit_record_list_verify(api: TestClient) -> None:
    r = api.post(f"{API}/audit", json={"action": "model.promote", "entity_type": "model", "entity_id": "m/1",
                                       "details": {"to": "production"}})
    assert r.status_code == 201 and r.json()["seq"] == 1
    listed = api.get(f"{API}/audit", params={"entity_type": "model"}).json()
    assert [e["action"] for e in listed] == ["model.promote"]
    assert api.get(f"{API}/audit/verify").json()["ok"] is True
    assert_error(api.get(f"{API}/audit", params={"limit": 10**6}), 400, BAD, "limit")


# ---- bad input: the right error, and the store unchanged ------------------------------------------------


def bad_requests(run_id: str) -> list[tuple[str, str, dict[str, Any], int, str, str | None]]:
    """(method, url, request kwargs, status, error code, field)."""
    lb = f"{API}/runs/{run_id}/log-batch"
    json_ct = {"Content-Type": "application/json"}
    return [
        ("POST", f"{API}/experiments", {"content": b"{not json", "headers": json_ct}, 400, BAD,
         "body"),
        ("POST", f"{API}/experiments", {"json": {}}, 400, BAD, "name"),
        ("POST", f"{API}/experiments", {"json": {"name": 12}}, 400, BAD, "name"),
        ("POST", f"{API}/experiments", {"json": {"name": "exp"}}, 409, EXISTS, "name"),
        ("POST", f"{API}/experiments", {"json": {"name": "x", "surprise": 1}}, 400, BAD,
         "surprise"),
        ("POST", f"{API}/runs", {"json": {"experiment_id": "999"}}, 404, MISSING, "experiment_id"),
        ("POST", f"{API}/runs", {"json": {"experiment_id": "x1"}}, 400, BAD, "experiment_id"),
        ("GET", f"{API}/runs/{'0' * 32}", {}, 404, MISSING, "run_id"),
        ("GET", f"{API}/runs/not-a-run-id", {}, 400, BAD, "run_id"),
        ("PATCH", f"{API}/runs/{run_id}", {"json": {"status": "DONE"}}, 400, BAD, "status"),
        ("PATCH", f"{API}/runs/{run_id}", {"json": {"end_time": "soon"}}, 400, BAD,
         "end_time"),
        ("POST", lb, {"content": b"[1, 2", "headers": json_ct}, 400, BAD, "body"),
        ("POST", lb, {"json": [1, 2]}, 400, BAD, "body"),
        ("POST", lb, {"json": {"params": {"lr": "0.2"}}}, 409, EXISTS, "params"),
        ("POST", lb, {"json": {"params": {"new": "1", "lr": "0.3"}, "metrics": {"key": "m", "value": [1.0]}}},
         409, EXISTS, "params"),
        ("POST", lb, {"json": {"metrics": {"key": "m", "value": [1.0, 2.0], "step": [1]}}}, 400,
         BAD, "metrics.step"),
        ("POST", lb, {"json": {"metrics": {"key": "m", "value": [1.0, "abc"]}}}, 400, BAD,
         "metrics[1].value"),
        ("POST", lb, {"json": {"metrics": {"key": "m", "value": [1.0], "step": ["1"]}}}, 400,
         BAD, "metrics[0].step"),
        ("POST", lb, {"json": {"metrics": {"key": [["m"]], "value": [1.0]}}}, 400, BAD,
         "metrics.key"),
        ("POST", lb, {"json": {"metrics": {"key": "../m", "value": [1.0]}}}, 400, BAD,
         "metrics.key"),
        ("POST", lb, {"json": {"metrics": {"key": "m", "value": [1.0], "colour": [1]}}}, 400,
         BAD, "metrics"),
        ("POST", lb, {"json": {"metrics": [["m", 1.0]]}}, 400, BAD, "metrics"),
        ("POST", f"{API}/runs/{'0' * 32}/log-batch", {"json": {"tags": {"a": "b"}}}, 404,
         MISSING, "run_id"),
        ("GET", f"{API}/runs/{run_id}/metrics/history", {}, 400, BAD, "key"),
        ("GET", f"{API}/runs/{run_id}/metrics/history", {"params": {"key": "loss", "max_points": "many"}},
         400, BAD, "max_points"),
        ("POST", f"{API}/runs/search", {"json": {"experiment_ids": ["1"], "filter": "metrics.loss >>> 1"}},
         400, "INVALID_FILTER", None),
        ("POST", f"{API}/runs/search", {"json": {"experiment_ids": "1"}}, 400, BAD,
         "experiment_ids"),
        ("POST", f"{API}/experiments/999/delete", {}, 404, MISSING, "experiment_id"),
        ("POST", f"{API}/audit", {"json": {"action": "", "entity_type": "m", "entity_id": "1"}}, 400,
         BAD, "action"),
    ]


def test_bad_requests_get_4xx_naming_the_field_and_change_nothing(api: TestClient, client: Client,
                                                                  run_id: str, tmp_path: Path) -> None:
    for method, url, kwargs, status, code, field in bad_requests(run_id):
        before = snapshot(client, tmp_path)
        r = api.request(method, url, **kwargs)
        assert_error(r, status, code, field)
        assert snapshot(client, tmp_path) == before, (method, url, kwargs)


@pytest.mark.parametrize("path", [
    "%2e%2e/escape.txt", "a/%2E%2E/%2e%2e/escape.txt", "%2Fetc/passwd", "/etc/passwd", "a/..%2F..%2Fescape",
    "..%5Cescape.txt", "a/%00b", "",
])
def test_artifact_path_traversal_is_rejected_and_nothing_stored(api: TestClient, client: Client, run_id: str,
                                                                tmp_path: Path, path: str) -> None:
    before = snapshot(client, tmp_path)
    r = api.put(f"{API}/runs/{run_id}/artifacts/{path}", content=b"evil")
    assert_error(r, 400, BAD, "path")
    r = api.get(f"{API}/runs/{run_id}/artifacts/content/{path}")
    assert r.status_code in (400, 404) and r.json()["error_code"]
    assert snapshot(client, tmp_path) == before
    assert not list(tmp_path.parent.rglob("escape*")) and not (tmp_path / "escape.txt").exists()


def test_literal_dot_dot_in_a_url_never_stores_anything(api: TestClient, client: Client, run_id: str,
                                                        tmp_path: Path) -> None:
    before = snapshot(client, tmp_path)
    r = api.put(f"{API}/runs/{run_id}/artifacts/../../escape.txt", content=b"evil")
    assert 400 <= r.status_code < 500 and r.json()["error_code"]
    assert snapshot(client, tmp_path) == before


def test_oversized_bodies_get_413_and_change_nothing(client: Client, run_id: str, tmp_path: Path) -> None:
    app = create_app(client, max_json_bytes=1024, max_artifact_bytes=2048)
    before = snapshot(client, tmp_path)
    with TestClient(app) as api:
        big_batch = {"metrics": {"key": "m", "value": [1.0] * 1000}}
        assert_error(api.post(f"{API}/runs/{run_id}/log-batch", json=big_batch), 413, BAD,
                     "body")
        assert_error(api.put(f"{API}/runs/{run_id}/artifacts/big.bin", content=b"x" * 4096), 413,
                     BAD, "body")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies as the body streams in
            for _ in range(8):
                yield b"x" * 1024

        assert_error(api.put(f"{API}/runs/{run_id}/artifacts/streamed.bin", content=chunks()), 413,
                     BAD, "body")
        assert api.put(f"{API}/runs/{run_id}/artifacts/ok.bin", content=b"x" * 2000).status_code == 201
    after = snapshot(client, tmp_path)
    assert after[:3] == before[:3] and after[5] == before[5]
    assert [a["path"] for a in after[3][run_id]] == ["model/weights.bin", "ok.bin"]


def test_default_json_limit_is_64_mib(api: TestClient, run_id: str) -> None:
    r = api.post(f"{API}/runs/{run_id}/log-batch", content=b"{}",
                 headers={"Content-Type": "application/json", "Content-Length": str(64 * 2**20 + 1)})
    assert_error(r, 413, BAD, "body")
    assert "64 MiB" in r.json()["message"]


def test_nan_in_latest_metric_is_sent_as_a_string(api: TestClient, client: Client, run_id: str) -> None:
    client.tracking.log_batch(run_id, metrics=[("loss", math.nan, 5, 2)])
    assert api.get(f"{API}/runs/{run_id}").json()["data"]["metrics"]["loss"] == "NaN"
