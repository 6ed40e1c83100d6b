"""The inference server with auth: predictions need a token (any role), feedback needs an editor, the
health probes stay open; a revoked token stops working within the verifier's cache time. SQLite and
PostgreSQL stores, and a server-backed client that asks the API server whom a token stands for."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from arsenale.platform import Client
from arsenale.security.tokens import CachedVerifier
from arsenale.server.app import create_app
from arsenale.serving.app import create_serving_app
from tests.conftest import LiveServer
from tests.serving.conftest import Fitted, cancer, register, row, shared_artifacts, store  # noqa: F401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _check(tc: TestClient, fitted: Fitted, viewer: str, editor: str) -> None:
    body = {"records": [row(fitted, 0)]}
    assert tc.get("/v2/health/live").status_code == 200
    for headers in ({}, {"Authorization": "Basic x"}, bearer("ars_bad"), bearer(f"ars_{'0' * 12}_{'A' * 43}")):
        r = tc.post("/predict", json=body, headers=headers)
        assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED", headers
    assert tc.get("/metrics").status_code == 401
    ok = tc.post("/predict", json=body, headers=bearer(viewer))
    assert ok.status_code == 200, ok.text
    rid = ok.headers["x-request-id"]
    refused = tc.post("/feedback", json={"request_id": rid, "label": 1}, headers=bearer(viewer))
    assert refused.status_code == 403 and "viewer role" in refused.json()["message"]
    assert tc.post("/feedback", json={"request_id": rid, "label": 1}, headers=bearer(editor)).status_code != 401


def test_predictions_need_a_token(store: Client, cancer: Fitted) -> None:  # noqa: F811
    register("cancer", cancer)
    _, viewer = store.tokens.create("app", role="viewer")
    info, editor = store.tokens.create("labeller", role="editor")
    app = create_serving_app(store, model="cancer/1", auth=True)
    with TestClient(app) as tc:
        _check(tc, cancer, viewer, editor)
        store.tokens.revoke(info.id)
        assert app.verifier is not None
        app.verifier = CachedVerifier(store.tokens.verify, ttl=0.0)  # what ttl seconds later looks like
        r = tc.post("/predict", json={"records": [row(cancer, 0)]}, headers=bearer(editor))
        assert r.status_code == 401 and "revoked" in r.json()["message"]


def test_a_server_backed_replica_asks_the_api_server(store: Client, cancer: Fitted) -> None:  # noqa: F811
    register("cancer", cancer)
    _, viewer = store.tokens.create("app", role="viewer")
    _, editor = store.tokens.create("labeller", role="editor")
    _, reader = store.tokens.create("replica", role="viewer")
    with LiveServer(create_app(store, auth=True)) as server:
        remote: Any = Client(server.url, token=reader)
        app = create_serving_app(remote, model="cancer/1", auth=True)
        with TestClient(app) as tc:
            _check(tc, cancer, viewer, editor)


def test_a_token_of_another_project_cannot_use_the_server(store: Client, cancer: Fitted) -> None:  # noqa: F811
    from arsenale.security.projects import project

    with project("alpha"):
        register("cancer", cancer)
    _, alpha = store.tokens.create("alpha-app", role="viewer", project="alpha")
    _, beta = store.tokens.create("beta-app", role="viewer", project="beta")
    _, everyone = store.tokens.create("ops", role="viewer")
    body = {"records": [row(cancer, 0)]}
    with TestClient(create_serving_app(store, model="cancer/1", auth=True)) as tc:
        assert tc.post("/predict", json=body, headers=bearer(alpha)).status_code == 200
        assert tc.post("/predict", json=body, headers=bearer(everyone)).status_code == 200
        refused = tc.post("/predict", json=body, headers=bearer(beta))
        assert refused.status_code == 403 and "project 'beta'" in refused.json()["message"]
        assert tc.get("/v2/models/cancer", headers=bearer(beta)).status_code == 403
