"""A server with auth: every route is protected, roles are enforced, bad tokens get 401, a burst gets 429,
the audit trail names the token, and refused requests change nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from arsenale.errors import InvalidInput, NotFound, Unauthenticated
from arsenale.platform import Client
from arsenale.security.tokens import TokenService
from arsenale.server.app import create_app
from arsenale.server.auth import SESSION_COOKIE
from arsenale.store import tables as t

PUBLIC_ROUTES = {("GET", "/health"), ("GET", "/login"), ("POST", "/login")}


@pytest.fixture
def local(store_uri: str, tmp_path: Path) -> Client:
    return Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="admin-on-the-box")


@pytest.fixture
def api(local: Client) -> Iterator[TestClient]:
    with TestClient(create_app(local, auth=True, rate_limit_per_minute=100_000)) as test_client:
        yield test_client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def experiments(local: Client) -> list[str]:
    return sorted(e.name for e in local.tracking.list_experiments())


def test_every_route_in_the_schema_needs_credentials(api: TestClient) -> None:
    """Walks the OpenAPI schema: without a token each route answers 401 (pages: a redirect to the login),
    before any validation or lookup, so nothing about the store leaks."""
    schema = api.get("/openapi.json").json()
    checked = 0
    for path, methods in schema["paths"].items():
        for method in methods:
            if (method.upper(), path) in PUBLIC_ROUTES:
                continue
            concrete = path.replace("{name:path}", "x").replace("{", "").replace("}", "")
            r = api.request(method.upper(), concrete, follow_redirects=False)
            assert r.status_code in (401, 303), (method, path, r.status_code, r.text[:200])
            if r.status_code == 401:
                assert r.json()["error_code"] == "UNAUTHENTICATED"
                assert r.headers["www-authenticate"] == "Bearer"
            else:
                assert r.headers["location"].startswith("/login?next=")
            checked += 1
    assert checked > 100
    assert api.get("/health").status_code == 200
    assert api.get("/metrics").status_code == 401


def test_roles(api: TestClient, local: Client) -> None:
    _, viewer = local.tokens.create("reader", role="viewer")
    _, editor = local.tokens.create("writer", role="editor")
    _, admin = local.tokens.create("boss", role="admin")
    body = {"name": "fraud"}
    refused = api.post("/api/v1/experiments", json=body, headers=bearer(viewer))
    assert refused.status_code == 403 and "viewer role" in refused.json()["message"]
    assert "fraud" not in experiments(local)
    # A POST that only reads is open to viewers.
    assert api.post("/api/v1/runs/search", json={"experiment_ids": []}, headers=bearer(viewer)).status_code != 403
    assert api.post("/api/v1/experiments", json=body, headers=bearer(editor)).status_code == 201
    assert "fraud" in experiments(local)
    assert api.get("/api/v1/experiments", headers=bearer(viewer)).status_code != 401
    # Tokens: admins only, and the secret is never listed.
    assert api.get("/api/v1/tokens", headers=bearer(editor)).status_code == 403
    made = api.post("/api/v1/tokens", json={"name": "ci", "role": "editor", "expires": "90d"}, headers=bearer(admin))
    assert made.status_code == 201 and made.json()["token"].startswith("ars_")
    listed = api.get("/api/v1/tokens", headers=bearer(admin)).json()
    assert {x["name"] for x in listed} == {"reader", "writer", "boss", "ci"}
    assert all("token" not in x and "digest" not in x and "salt" not in x for x in listed)
    who = api.get("/api/v1/auth/whoami", headers=bearer(made.json()["token"])).json()
    assert who["name"] == "ci" and who["role"] == "editor"


def test_bad_tokens_get_401_and_change_nothing(api: TestClient, local: Client) -> None:
    info, secret = local.tokens.create("short", role="admin", expires="1s")
    _, revoked = local.tokens.create("gone", role="admin")
    local.tokens.revoke(_id(revoked))
    before = experiments(local)
    token_id = _id(secret)
    cases = {
        "malformed": "not-a-token",
        "wrong secret": f"ars_{token_id}_{'A' * 43}",
        "unknown id": f"ars_{'0' * 12}_{secret[-43:]}",
        "revoked": revoked,
        "huge": "ars_" + "a" * 100_000,
    }
    for why, token in cases.items():
        r = api.post("/api/v1/experiments", json={"name": f"x-{why}"}, headers=bearer(token))
        assert r.status_code in (401, 431), (why, r.status_code)
        if r.status_code == 401:
            assert r.json()["error_code"] == "UNAUTHENTICATED", why
            assert secret[-43:] not in r.text
    assert "revoked" in api.get("/api/v1/experiments", headers=bearer(revoked)).json()["message"]
    for header in ("Basic abc", "Bearer", "Bearer   "):
        assert api.get("/api/v1/experiments", headers={"Authorization": header}).status_code == 401
    while time.time() * 1000 <= (info.expires_at or 0):
        time.sleep(0.05)
    expired = api.get("/api/v1/experiments", headers=bearer(secret))
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    assert experiments(local) == before


def _id(secret: str) -> str:
    return secret.split("_")[1]


def test_the_audit_trail_names_the_token(api: TestClient, local: Client) -> None:
    _, editor = local.tokens.create("deployer", role="editor")
    assert api.post("/api/v1/experiments", json={"name": "audited"}, headers=bearer(editor)).status_code == 201
    api.post("/api/v1/experiments", json={"name": "audited-2"}, headers=bearer(editor))
    actors = [e.actor for e in local.audit.entries()]
    assert actors[0] == "admin-on-the-box"  # token.create, made next to the store
    assert "token:deployer" in actors
    assert local.audit.verify().ok


def test_rate_limit_per_token(local: Client) -> None:
    _, a = local.tokens.create("a", role="viewer")
    _, b = local.tokens.create("b", role="viewer")
    with TestClient(create_app(local, auth=True, rate_limit_per_minute=5)) as api:
        codes = [api.get("/api/v1/experiments", headers=bearer(a)).status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
        limited = api.get("/api/v1/experiments", headers=bearer(a))
        assert limited.json()["error_code"] == "RATE_LIMITED" and int(limited.headers["retry-after"]) >= 1
        assert api.get("/api/v1/experiments", headers=bearer(b)).status_code == 200  # its own bucket


def test_dashboard_login_cookie_and_csrf(api: TestClient, local: Client) -> None:
    _, editor = local.tokens.create("browser", role="editor")
    page = api.get("/models", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/models"
    form = api.get("/login?next=/models")
    assert form.status_code == 200 and 'name="token"' in form.text
    bad = api.post("/login", data={"token": "ars_nope", "next": "/models"}, follow_redirects=False)
    assert bad.status_code == 401 and SESSION_COOKIE not in bad.cookies
    away = api.post("/login", data={"token": editor, "next": "//evil.example/x"}, follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/"
    cookie = away.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert api.get("/models").status_code == 200  # the cookie is kept by the test client
    # A form posted with the cookie but without the CSRF value is refused; with it, it goes through.
    r = api.post("/api/v1/experiments", json={"name": "from-browser"})
    assert r.status_code == 403 and "CSRF" in r.json()["message"]
    assert "from-browser" not in experiments(local)
    csrf = api.app.state.auth.csrf_for(api.cookies[SESSION_COOKIE])
    assert api.post("/api/v1/experiments", json={"name": "from-browser"},
                    headers={"X-CSRF-Token": csrf}).status_code == 201
    page = api.get("/models")
    assert "browser" in page.text and 'action="/logout"' in page.text  # who is logged in, and a way out
    # A url-encoded form (the dashboard's) carries the CSRF value as a field.
    refused = api.post("/logout", data={"csrf": "wrong"}, follow_redirects=False)
    assert refused.status_code == 403
    value = api.cookies[SESSION_COOKIE]
    out = api.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and SESSION_COOKIE in out.headers["set-cookie"]  # cleared
    forged = value[:-1] + ("0" if value[-1] != "0" else "1")  # a signature that does not match
    api.cookies.clear()
    api.cookies.set(SESSION_COOKIE, forged)
    assert api.get("/models", follow_redirects=False).status_code == 303


def test_token_service_bad_input(local: Client) -> None:
    tokens: TokenService = local.tokens
    for kwargs, field in [({"role": "root"}, "role"), ({"project": "../etc"}, "project"),
                          ({"expires": "-1d"}, "expires"), ({"expires": "100000d"}, "expires"),
                          ({"project": 3}, "project")]:
        with pytest.raises(InvalidInput) as err:
            tokens.create("x", **kwargs)
        assert err.value.field == field
    with pytest.raises(InvalidInput):
        tokens.create("")
    with pytest.raises(NotFound):
        tokens.revoke("nope")
    for bad in (None, 42, "", "ars_", "Bearer x"):
        with pytest.raises(Unauthenticated):
            tokens.verify(bad)
    assert tokens.list() == []
    info, secret = tokens.create("svc", role="editor", project="fraud")
    with local.audit.engine.connect() as conn:
        row = conn.execute(sa.select(t.api_tokens)).one()
    assert secret[-43:] not in str(tuple(row))  # only the salted hash is stored
    assert tokens.verify(secret).project == "fraud"
    assert tokens.revoke(info.id).revoked_at is not None
    assert tokens.revoke(info.id).revoked_at is not None  # twice: unchanged
    assert tokens.list() == [] and len(tokens.list(include_inactive=True)) == 1


def test_http_client_with_a_token(api: TestClient, local: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends ARSENALE_TOKEN; errors come back as the same exception classes."""
    from arsenale.client.http import HttpTransport

    _, admin = local.tokens.create("sdk", role="admin")
    transport: Any = HttpTransport("http://testserver", token=admin)
    transport._http = api  # the TestClient speaks httpx
    api.headers.update({"Authorization": f"Bearer {admin}"})
    from arsenale.client.tokens import TokenClient

    remote = TokenClient(transport)
    info, secret = remote.create("made-remotely", role="viewer")
    assert remote.whoami().name == "sdk"
    assert {x.name for x in remote.list()} == {"sdk", "made-remotely"}
    assert remote.revoke(info.id).revoked_at is not None
    api.headers.update({"Authorization": f"Bearer {secret}"})
    with pytest.raises(Unauthenticated):
        remote.list()
