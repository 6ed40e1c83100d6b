"""/api/v1/secrets: set, list, get, delete, rotate; no answer ever holds a value; admins only when auth is
on; bad input is a 400 that changes nothing. SQLite and PostgreSQL, and the HTTP `SecretClient`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from arsenale.errors import Forbidden, InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.security.secrets import MAX_VALUE_BYTES, new_key
from arsenale.server.app import create_app
from arsenale.store import tables as t
from tests.conftest import LiveServer
from tests.server.test_app import BAD, MISSING, assert_error

API = "/api/v1/secrets"
VALUE = "xoxb-VERY-SECRET-VALUE-0123456789"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", new_key())


@pytest.fixture
def local(store_uri: str, tmp_path: Path) -> Client:
    return Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="admin-on-the-box")


@pytest.fixture
def api(local: Client) -> Iterator[TestClient]:
    with TestClient(create_app(local)) as test_client:
        yield test_client


@pytest.fixture
def auth_api(local: Client) -> Iterator[TestClient]:
    with TestClient(create_app(local, auth=True, rate_limit_per_minute=100_000)) as test_client:
        yield test_client


def stored(local: Client) -> list[Any]:
    with local.secrets.engine.connect() as conn:
        return list(conn.execute(sa.select(t.secrets.c.project, t.secrets.c.name, t.secrets.c.ciphertext)).all())


def test_set_list_get_delete_never_return_values(api: TestClient, local: Client,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = []
    r = api.put(f"{API}/SLACK_WEBHOOK", json={"value": VALUE})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "SLACK_WEBHOOK" and r.json()["project"] == "*"
    answers.append(r)
    answers.append(api.put(f"{API}/SLACK_WEBHOOK", json={"value": VALUE + "-fraud", "project": "fraud"}))
    answers.append(r := api.get(API))
    assert [(x["project"], x["name"]) for x in r.json()] == [("*", "SLACK_WEBHOOK"), ("fraud", "SLACK_WEBHOOK")]
    answers.append(r := api.get(API, params={"project": "churn"}))
    assert [x["project"] for x in r.json()] == ["*"]
    answers.append(r := api.get(f"{API}/SLACK_WEBHOOK", params={"project": "fraud"}))
    assert r.status_code == 200 and r.json()["project"] == "fraud"
    answers.append(r := api.post(f"{API}/rotate"))
    assert r.status_code == 200 and r.json()["unchanged"]["secrets.ciphertext"] == 2
    answers.append(r := api.get("/api/v1/audit"))
    assert r.status_code == 200 and "secret.set" in r.text
    for a in answers:
        assert VALUE not in a.text
    assert local.secrets.resolve("SLACK_WEBHOOK", project="fraud") == VALUE + "-fraud"
    assert api.delete(f"{API}/SLACK_WEBHOOK", params={"project": "fraud"}).status_code == 204
    assert [(p, n) for p, n, _ in stored(local)] == [("*", "SLACK_WEBHOOK")]
    assert VALUE not in caplog.text
    trail = [e.model_dump_json() for e in local.audit.entries(limit=None)]
    assert any("secret.set" in e for e in trail) and not any(VALUE in e for e in trail)


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code", "field"), [
    ("PUT", f"{API}/bad%2Fname", {"json": {"value": VALUE}}, 400, BAD, "name"),
    ("PUT", f"{API}/-dash", {"json": {"value": VALUE}}, 400, BAD, "name"),
    ("PUT", f"{API}/{'x' * 129}", {"json": {"value": VALUE}}, 400, BAD, "name"),
    ("PUT", f"{API}/OK", {"json": {"value": 12345678}}, 400, BAD, "value"),
    ("PUT", f"{API}/OK", {"json": {"value": ""}}, 400, BAD, "value"),
    ("PUT", f"{API}/OK", {"json": {"value": None}}, 400, BAD, "value"),
    ("PUT", f"{API}/OK", {"json": {"project": "*"}}, 400, BAD, "value"),
    ("PUT", f"{API}/OK", {"json": {"value": VALUE, "extra": VALUE}}, 400, BAD, "extra"),
    ("PUT", f"{API}/OK", {"json": {"value": VALUE, "project": "a/b"}}, 400, BAD, "project"),
    ("PUT", f"{API}/OK", {"json": [VALUE]}, 400, BAD, "body"),
    ("PUT", f"{API}/OK", {"content": b"{not json " + VALUE.encode()}, 400, BAD, "body"),
    ("PUT", f"{API}/OK", {"content": b""}, 400, BAD, "body"),
    ("PUT", f"{API}/OK", {"json": {"value": "v" * (MAX_VALUE_BYTES + 1)}}, 400, BAD, "value"),
    ("PUT", f"{API}/OK", {"json": {"value": "v" * (5 * MAX_VALUE_BYTES)}}, 400, BAD, "value"),
    ("GET", f"{API}/NOPE", {}, 404, MISSING, "name"),
    ("DELETE", f"{API}/NOPE", {}, 404, MISSING, "name"),
    ("DELETE", f"{API}/NOPE", {"params": {"project": "a b"}}, 400, BAD, "project"),
    ("GET", API, {"params": {"project": "../x"}}, 400, BAD, "project"),
])
def test_bad_input_is_a_4xx_that_changes_nothing(api: TestClient, local: Client, method: str, path: str,
                                                 kwargs: dict[str, Any], status: int, code: str,
                                                 field: str) -> None:
    r = api.request(method, path, **kwargs)
    assert_error(r, status, code, field)
    assert VALUE not in r.text and "12345678" not in r.text
    assert stored(local) == []


def test_admin_only_when_auth_is_on(auth_api: TestClient, local: Client) -> None:
    _, viewer = local.tokens.create("reader", role="viewer")
    _, editor = local.tokens.create("writer", role="editor")
    _, admin = local.tokens.create("boss", role="admin")
    local.secrets.set("EXISTING", VALUE)
    calls = [("PUT", f"{API}/NEW", {"json": {"value": VALUE}}), ("GET", API, {}), ("GET", f"{API}/EXISTING", {}),
             ("DELETE", f"{API}/EXISTING", {}), ("POST", f"{API}/rotate", {})]
    before = stored(local)
    for method, path, kwargs in calls:
        assert auth_api.request(method, path, **kwargs).status_code == 401
        for token in (viewer, editor):
            r = auth_api.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            assert r.status_code == 403, (method, path, r.text)
            assert "needs admin" in r.json()["message"]
    assert stored(local) == before
    boss = {"Authorization": f"Bearer {admin}"}
    assert auth_api.put(f"{API}/NEW", json={"value": VALUE}, headers=boss).status_code == 200
    assert [x["name"] for x in auth_api.get(API, headers=boss).json()] == ["EXISTING", "NEW"]
    assert auth_api.delete(f"{API}/EXISTING", headers=boss).status_code == 204
    entry = local.audit.entries(limit=None)[-1]
    assert entry.action == "secret.delete" and entry.actor == "token:boss"


def test_http_client_has_the_same_methods(local: Client, store_uri: str) -> None:
    with LiveServer(create_app(local)) as server:
        remote = Client(server.url).secrets
        info = remote.set("S3_SECRET_KEY", VALUE, project="fraud")
        assert (info.name, info.project, info.created_by) == ("S3_SECRET_KEY", "fraud", "admin-on-the-box")
        assert [s.name for s in remote.list()] == ["S3_SECRET_KEY"]
        assert remote.get("S3_SECRET_KEY", project="fraud").project == "fraud"
        assert remote.rotate().reencrypted == {"secrets.ciphertext": 0, "webhooks.url": 0, "webhooks.secret": 0,
                                               "alert_rules.notify": 0}
        with pytest.raises(Forbidden, match="no API returns"):
            remote.resolve("S3_SECRET_KEY")
        with pytest.raises(NotFound):
            remote.get("S3_SECRET_KEY")
        with pytest.raises(InvalidInput):
            remote.set("bad/name", VALUE)
        assert local.secrets.resolve("S3_SECRET_KEY", project="fraud") == VALUE
        remote.delete("S3_SECRET_KEY", project="fraud")
        assert remote.list() == []
