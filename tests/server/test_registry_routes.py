"""The registry's routes in-process: round trips, every kind of bad request answered with the right
status and the one error shape, file routes that never leave the manifest, and a store left as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arsenale.client.http import HttpTransport
from arsenale.client.registry import RegistryClient
from arsenale.errors import IntegrityError, InvalidInput
from arsenale.platform import Client
from arsenale.server.app import create_app
from arsenale.store.artifacts import hash_bytes
from tests.server.test_app import BAD, EXISTS, MISSING, assert_error

API = "/api/v1"
NAME = "fraud model v2.0 #1"
Q = "fraud%20model%20v2%2E0%20%231"  # NAME as one escaped path segment
WEIGHTS = bytes(range(256)) * 40
LIMIT = 64 << 10


@pytest.fixture
def client(tmp_path: Path) -> Client:
    return Client(f"sqlite:///{tmp_path}/db.sqlite", artifacts=str(tmp_path / "artifacts"))


@pytest.fixture
def api(client: Client) -> Iterator[TestClient]:
    with TestClient(create_app(client, max_json_bytes=LIMIT, max_artifact_bytes=LIMIT)) as test_client:
        yield test_client


def upload(api: TestClient, data: bytes) -> dict[str, Any]:
    r = api.post(f"{API}/blobs", content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def registered(api: TestClient) -> dict[str, Any]:
    """Two versions of NAME, each with weights.bin and conf/params.json; champion on version 1."""
    weights = upload(api, WEIGHTS)
    params = upload(api, b'{"C": 1}')
    files = [{"path": "weights.bin", **weights}, {"path": "conf/params.json", **params}]
    for _ in range(2):
        body = {"files": files, "flavor": "sklearn", "flavor_meta": {}}
        r = api.post(f"{API}/models/{Q}/versions", json=body)
        assert r.status_code == 201, r.text
    assert api.put(f"{API}/models/{Q}/aliases/champion", json={"version": 1}).status_code == 200
    return {"weights": weights, "params": params}


def snapshot(client: Client, tmp_path: Path) -> Any:
    models = client.registry.list_models()
    versions = [v.model_dump() for m in models for v in client.registry.list_versions(m.name)]
    events = [e.model_dump() for m in models for e in client.registry.events(m.name)]
    blob_root = tmp_path / "artifacts" / "blobs"
    blobs = sorted(str(p) for p in blob_root.rglob("*")) if blob_root.exists() else []
    hooks = [h.model_dump() for h in client.webhooks.list()]
    audit = len(client.audit.entries(limit=None))
    return [m.model_dump() for m in models], versions, events, blobs, hooks, audit


# ---- round trips -----------------------------------------------------------------------------------------


def test_openapi_lists_the_registry(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/blobs", "/models", "/models/{name}", "/models/{name}/versions",
                 "/models/{name}/versions/{version}", "/models/{name}/versions/{version}/stage",
                 "/models/{name}/versions/{version}/lineage",
                 "/models/{name}/versions/{version}/files/{path}",
                 "/models/{name}/aliases/{alias}", "/models/{name}/aliases/{alias}/undo",
                 "/models/{name}/events", "/models/{name}/diff", "/resolve", "/webhooks",
                 "/webhooks/{webhook_id}", "/webhooks/{webhook_id}/deliveries"):
        assert f"{API}{path}" in paths, path


def test_blob_upload_is_content_addressed(api: TestClient) -> None:
    first = upload(api, WEIGHTS)
    assert first == {"digest": hash_bytes(WEIGHTS), "size": len(WEIGHTS)}
    assert upload(api, WEIGHTS) == first
    assert upload(api, b"") == {"digest": hash_bytes(b""), "size": 0}


def test_model_and_version_round_trip(api: TestClient, registered: dict[str, Any]) -> None:
    model = api.get(f"{API}/models/{Q}").json()
    assert model["name"] == NAME and model["latest_version"] == 2 and model["aliases"] == {"champion": 1}
    assert [m["name"] for m in api.get(f"{API}/models").json()] == [NAME]
    assert [v["version"] for v in api.get(f"{API}/models/{Q}/versions").json()] == [2, 1]
    r = api.patch(f"{API}/models/{Q}/versions/2", json={"description": "retrained", "tags": {"k": 1}})
    assert r.status_code == 200 and r.json()["description"] == "retrained" and r.json()["tags"] == {"k": "1"}
    staged = api.post(f"{API}/models/{Q}/versions/2/stage", json={"stage": "Production", "reason": "go"})
    assert staged.json()["stage"] == "Production"
    assert [v["version"] for v in api.get(f"{API}/models/{Q}/versions",
                                          params={"stage": ["Production", "Staging"]}).json()] == [2]
    assert api.get(f"{API}/resolve", params={"uri": f"models:/{NAME}@champion"}).json()["version"] == 1
    assert api.get(f"{API}/resolve", params={"uri": f"models:/{NAME}/Production"}).json()["version"] == 2
    assert api.get(f"{API}/models/{Q}/diff", params={"a": 1, "b": 2}).json()["a"] == 1
    assert api.get(f"{API}/models/{Q}/versions/1/lineage").json()["source"] == "upload"
    kinds = [e["kind"] for e in api.get(f"{API}/models/{Q}/events", params={"limit": 2}).json()]
    assert kinds == ["stage", "alias"]


def test_alias_delete_and_undo_answers(api: TestClient, registered: dict[str, Any]) -> None:
    moved = api.put(f"{API}/models/{Q}/aliases/champion", json={"version": 2, "reason": "better"})
    assert moved.status_code == 200 and moved.json()["aliases"] == ["champion"]
    back = api.post(f"{API}/models/{Q}/aliases/champion/undo", json={"reason": "regression"})
    assert back.status_code == 200 and back.json()["version"] == 1
    removed = api.post(f"{API}/models/{Q}/aliases/champion/undo")  # no body: the reason is optional
    assert removed.status_code == 200 and removed.json() is None
    api.put(f"{API}/models/{Q}/aliases/challenger", json={"version": 2})
    r = api.delete(f"{API}/models/{Q}/aliases/challenger", params={"reason": "done"})
    assert r.status_code == 204 and r.content == b""
    assert api.get(f"{API}/models/{Q}").json()["aliases"] == {}


def test_file_route_streams_verified_manifest_files(api: TestClient, registered: dict[str, Any]) -> None:
    r = api.get(f"{API}/models/{Q}/versions/1/files/weights.bin")
    assert r.status_code == 200 and r.content == WEIGHTS
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-arsenale-digest"] == registered["weights"]["digest"]
    assert r.headers["content-length"] == str(len(WEIGHTS))
    assert api.get(f"{API}/models/{Q}/versions/2/files/conf/params.json").content == b'{"C": 1}'
    assert api.get(f"{API}/models/{Q}/versions/2/files/conf%2Fparams.json").content == b'{"C": 1}'


def test_file_route_refuses_a_tampered_blob(api: TestClient, client: Client, registered: dict[str, Any],
                                            tmp_path: Path) -> None:
    digest = registered["weights"]["digest"]
    blob = tmp_path / "artifacts" / "blobs" / digest[:2] / digest[2:]
    os.chmod(blob, 0o644)
    blob.write_bytes(WEIGHTS[:-1] + b"\x00")
    r = api.get(f"{API}/models/{Q}/versions/1/files/weights.bin")
    assert_error(r, 403, "INTEGRITY_ERROR")
    assert WEIGHTS[:100] not in r.content
    assert not list((tmp_path / "artifacts").glob("**/*.part"))


# ---- the file route stays inside the manifest -----------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [
    ("..%2F..%2Fdb.sqlite", 400),
    ("%2E%2E/%2E%2E/db.sqlite", 400),
    ("conf/%2E%2E/%2E%2E/db.sqlite", 400),
    ("%2Fetc%2Fpasswd", 400),
    ("conf%5C..%5Cweights.bin", 400),
    ("C:%2Fwindows", 400),
    ("weights.bin%00.txt", 400),
    ("conf", 404),
    ("conf/", 404),
    ("missing.bin", 404),
    ("arsenale-model.json", 404),
])
def test_file_route_refuses_paths_outside_the_manifest(api: TestClient, registered: dict[str, Any],
                                                       path: str, status: int) -> None:
    r = api.get(f"{API}/models/{Q}/versions/1/files/{path}")
    assert_error(r, status, BAD if status == 400 else MISSING, "path")
    assert WEIGHTS[:100] not in r.content


def test_file_route_of_unknown_versions(api: TestClient, registered: dict[str, Any]) -> None:
    assert_error(api.get(f"{API}/models/{Q}/versions/3/files/weights.bin"), 404, MISSING, "version")
    assert_error(api.get(f"{API}/models/nope/versions/1/files/weights.bin"), 404, MISSING, "name")


def test_http_client_refuses_files_that_escape_or_arrive_altered(api: TestClient, registered: dict[str, Any],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`RegistryClient.download_version` trusts neither the manifest's paths nor the bytes it receives."""
    transport = HttpTransport("http://testserver")
    transport._http = api  # the TestClient is an httpx.Client on the app in this process
    registry = RegistryClient(transport)
    assert (registry.download_version(NAME, 1, tmp_path / "ok") / "weights.bin").read_bytes() == WEIGHTS
    real = registry.get_version(NAME, 1)
    escaping = real.model_copy(update={"files": [real.files[0].model_copy(update={"path": "../evil.bin"})]})
    monkeypatch.setattr(registry, "get_version", lambda name, version: escaping)
    with pytest.raises(InvalidInput):
        registry.download_version(NAME, 1, tmp_path / "dl")
    assert not (tmp_path / "evil.bin").exists()
    lying = real.model_copy(update={"files": [real.files[0].model_copy(update={"digest": "0" * 64})]})
    monkeypatch.setattr(registry, "get_version", lambda name, version: lying)
    with pytest.raises(IntegrityError):
        registry.download_version(NAME, 1, tmp_path / "dl")
    assert not [p for p in (tmp_path / "dl").rglob("*") if p.is_file()]  # nothing, not even a .part file


# ---- bad input: the right error, and the store unchanged ------------------------------------------------


def bad_requests(digest: str) -> list[tuple[str, str, dict[str, Any], int, str, str | None]]:
    """(method, url, request kwargs, status, error code, field)."""
    json_ct = {"Content-Type": "application/json"}
    versions = f"{API}/models/{Q}/versions"
    ok_file = {"path": "w.bin", "digest": digest, "size": 1}
    return [
        ("POST", f"{API}/models", {"content": b"{not json", "headers": json_ct}, 400, BAD, "body"),
        ("POST", f"{API}/models", {"json": {}}, 400, BAD, "name"),
        ("POST", f"{API}/models", {"json": {"name": "a/b"}}, 400, BAD, "name"),
        ("POST", f"{API}/models", {"json": {"name": "x", "surprise": 1}}, 400, BAD, "surprise"),
        ("POST", f"{API}/models", {"json": {"name": NAME}}, 409, EXISTS, "name"),
        ("GET", f"{API}/models/nope", {}, 404, MISSING, "name"),
        ("GET", f"{API}/models", {"params": {"limit": 0}}, 400, BAD, "limit"),
        ("GET", f"{API}/models/{Q}/versions/9", {}, 404, MISSING, "version"),
        ("GET", f"{API}/models/{Q}/versions/abc", {}, 400, BAD, "version"),
        ("GET", f"{API}/models/{Q}/versions/0", {}, 400, BAD, "version"),
        ("GET", f"{API}/models/{Q}/versions", {"params": {"stage": "Live"}}, 400, BAD, "stage"),
        ("POST", versions, {"json": {"files": [{"path": "w.bin", "digest": "0" * 64, "size": 1}],
                                     "flavor": "sklearn", "flavor_meta": {}}}, 400, BAD, "files"),
        ("POST", versions, {"json": {"files": [{"path": "w.bin"}], "flavor": "sklearn"}}, 400, BAD,
         "files.0.digest"),
        ("POST", versions, {"json": {"files": "w.bin", "flavor": "sklearn"}}, 400, BAD, "files"),
        ("POST", versions, {"json": {"files": [{**ok_file, "path": "../up"}], "flavor": "sklearn",
                                     "flavor_meta": {}}}, 400, BAD, "files.path"),
        ("POST", versions, {"json": {"files": [ok_file], "flavor": "sklearn", "flavor_meta": {},
                                     "run_id": "a" * 32}}, 404, MISSING, "run_id"),
        ("POST", versions, {"json": {"source": "runs:/not-a-run/model"}}, 400, BAD, "run_id"),
        ("POST", versions, {"json": {"files": [ok_file], "flavor": 7}}, 400, BAD, "flavor"),
        ("PATCH", f"{versions}/1", {"json": {"description": 5}}, 400, BAD, "description"),
        ("PATCH", f"{versions}/1", {"json": {"stage": "Production"}}, 400, BAD, "stage"),
        ("PUT", f"{API}/models/{Q}/aliases/latest", {"json": {"version": 1}}, 400, BAD, "alias"),
        ("PUT", f"{API}/models/{Q}/aliases/v2", {"json": {"version": 1}}, 400, BAD, "alias"),
        ("PUT", f"{API}/models/{Q}/aliases/UPPER", {"json": {"version": 1}}, 400, BAD, "alias"),
        ("PUT", f"{API}/models/{Q}/aliases/a%20b", {"json": {"version": 1}}, 400, BAD, "alias"),
        ("PUT", f"{API}/models/{Q}/aliases/champion", {"json": {"version": 9}}, 404, MISSING, "version"),
        ("PUT", f"{API}/models/{Q}/aliases/champion", {"json": {"version": "one"}}, 400, BAD, "version"),
        ("PUT", f"{API}/models/{Q}/aliases/champion", {"json": {}}, 400, BAD, "version"),
        ("PUT", f"{API}/models/nope/aliases/champion", {"json": {"version": 1}}, 404, MISSING, "name"),
        ("DELETE", f"{API}/models/{Q}/aliases/challenger", {}, 404, MISSING, "alias"),
        ("POST", f"{API}/models/{Q}/aliases/challenger/undo", {}, 404, MISSING, "alias"),
        ("POST", f"{API}/models/{Q}/aliases/champion/undo", {"json": {"reason": 1}}, 400, BAD, "reason"),
        ("POST", f"{versions}/1/stage", {"json": {"stage": "Live"}}, 400, BAD, "stage"),
        ("POST", f"{versions}/1/stage", {"json": {"stage": "Staging", "archive_existing": "maybe"}}, 400, BAD,
         "archive_existing"),
        ("POST", f"{versions}/9/stage", {"json": {"stage": "Staging"}}, 404, MISSING, "version"),
        ("GET", f"{API}/models/{Q}/events", {"params": {"limit": 0}}, 400, BAD, "limit"),
        ("GET", f"{API}/models/{Q}/diff", {"params": {"a": 1}}, 400, BAD, "b"),
        ("GET", f"{API}/models/{Q}/diff", {"params": {"a": 1, "b": 9}}, 404, MISSING, "version"),
        ("GET", f"{API}/resolve", {"params": {"uri": "runs:/x"}}, 400, BAD, "uri"),
        ("GET", f"{API}/resolve", {"params": {"uri": f"models:/{NAME}@latest"}}, 400, BAD, "alias"),
        ("GET", f"{API}/resolve", {"params": {"uri": f"models:/{NAME}@nope"}}, 404, MISSING, "alias"),
        ("GET", f"{API}/resolve", {}, 400, BAD, "uri"),
        ("POST", f"{API}/webhooks", {"json": {"url": "ftp://x", "events": ["*"]}}, 400, BAD, "url"),
        ("POST", f"{API}/webhooks", {"json": {"url": "http://x", "events": ["model.eaten"]}}, 400, BAD,
         "events"),
        ("POST", f"{API}/webhooks", {"json": {"url": "http://x"}}, 400, BAD, "events"),
        ("DELETE", f"{API}/webhooks/nope", {}, 404, MISSING, "webhook_id"),
        ("GET", f"{API}/webhooks/nope/deliveries", {}, 404, MISSING, "webhook_id"),
        ("POST", f"{API}/blobs", {"content": b"x" * (LIMIT + 1)}, 413, BAD, "body"),
        ("POST", f"{API}/models/{Q}/versions", {"content": b"[" * (LIMIT + 1), "headers": json_ct}, 413, BAD,
         "body"),
    ]


def test_bad_requests_fail_cleanly_and_leave_the_store_unchanged(api: TestClient, client: Client,
                                                                 registered: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    before = snapshot(client, tmp_path)
    for method, url, kwargs, status, code, field in bad_requests(registered["weights"]["digest"]):
        r = api.request(method, url, **kwargs)
        assert r.status_code == status, (method, url, r.text)
        assert_error(r, status, code, field)
        assert snapshot(client, tmp_path) == before, (method, url)


def test_streamed_blob_over_the_limit_is_413_and_stores_nothing(api: TestClient, client: Client,
                                                               tmp_path: Path) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: the limit is enforced as the body streams in
        for _ in range(LIMIT // 1024 + 4):
            yield b"y" * 1024

    before = snapshot(client, tmp_path)
    r = api.post(f"{API}/blobs", content=body())
    assert_error(r, 413, BAD, "body")
    assert snapshot(client, tmp_path) == before


# ---- webhooks --------------------------------------------------------------------------------------------


def test_webhook_create_list_deliveries_delete(api: TestClient) -> None:
    r = api.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["model.alias_set"],
                                          "model_name": NAME, "secret": "s3cret"})
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["secret"] == "s3cret" and hook["events"] == ["model.alias_set"] and hook["active"] is True
    listed = api.get(f"{API}/webhooks").json()
    assert [h["webhook_id"] for h in listed] == [hook["webhook_id"]]
    assert "secret" not in listed[0] and "s3cret" not in api.get(f"{API}/webhooks").text
    assert api.get(f"{API}/webhooks/{hook['webhook_id']}/deliveries").json() == []
    assert_error(api.get(f"{API}/webhooks/{hook['webhook_id']}/deliveries", params={"limit": 0}), 400, BAD,
                 "limit")
    assert api.delete(f"{API}/webhooks/{hook['webhook_id']}").status_code == 204
    assert api.get(f"{API}/webhooks").json() == []


# ---- the server's default client ------------------------------------------------------------------------


def test_registry_routes_work_with_the_lazily_built_default_client(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_URI", f"sqlite:///{tmp_path}/lazy.db")
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "lazy-artifacts"))
    with TestClient(create_app()) as api:
        assert api.post(f"{API}/models", json={"name": "lazy"}).status_code == 201
        assert [m["name"] for m in api.get(f"{API}/models").json()] == ["lazy"]
        assert api.get(f"{API}/webhooks").json() == []
