"""The dashboard's security page: tokens (revocable with a CSRF-carrying form), secret names but never values,
retention policies and legal holds; admin only when the server runs with auth. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.app import create_app
from arsenale.server.auth import SESSION_COOKIE


def test_the_page_lists_and_revokes(store_uri: str, tmp_path: Path) -> None:
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="ops")
    info, admin = client.tokens.create("boss", role="admin")
    gone, _ = client.tokens.create("<b>ci</b>", role="editor", expires="90d")
    _, viewer = client.tokens.create("reader", role="viewer")
    client.secrets.set("SLACK_URL", "https://hooks.example/T0/B0/very-secret")
    client.retention.set_policy("traces", "30d")
    with TestClient(create_app(client, auth=True)) as api:
        assert api.get("/security", follow_redirects=False).status_code == 303  # log in first
        api.post("/login", data={"token": viewer, "next": "/security"})
        assert api.get("/security").status_code == 403  # a viewer may not see who holds which token
        api.cookies.clear()
        api.post("/login", data={"token": admin, "next": "/"})
        page = api.get("/security")
        assert page.status_code == 200
        assert set(re.findall(r'<tr class="token" data-token="([0-9a-f]+)">', page.text)) == \
            {info.id, gone.id, *(t.id for t in client.tokens.list() if t.name == "reader")}
        assert "&lt;b&gt;ci&lt;/b&gt;" in page.text and "<b>ci</b>" not in page.text
        assert "SLACK_URL" in page.text and "very-secret" not in page.text
        assert '<tr class="policy"><td>traces</td><td>30d' in page.text.replace("\n", "")
        assert "No model version is on legal hold" in page.text
        path = f"/security/tokens/{gone.id}/revoke"
        assert api.post(path, data={"csrf": "forged"}).status_code == 403  # without the page's CSRF value
        assert client.tokens.get(gone.id).revoked_at is None
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
        done = api.post(path, data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == f"/security?revoked={gone.id}"
        assert client.tokens.get(gone.id).revoked_at is not None
        assert gone.id not in re.findall(r'data-token="([0-9a-f]+)"', api.get("/security").text)
        assert gone.id in re.findall(r'data-token="([0-9a-f]+)"', api.get("/security?all=1").text)
        assert SESSION_COOKIE in api.cookies
    with TestClient(create_app(client)) as local:  # without auth: the page says so
        assert "runs without auth" in local.get("/security").text
