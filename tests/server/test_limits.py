"""Oversized headers and bodies against a real uvicorn server with auth: a clear 4xx, the server keeps
answering, the store is unchanged."""

from __future__ import annotations

from pathlib import Path

import httpx

from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.conftest import LiveServer


def test_oversized_headers_and_bodies_are_refused_without_harm(tmp_path: Path) -> None:
    local = Client(str(tmp_path / "meta.db"), artifacts=str(tmp_path / "artifacts"))
    _, secret = local.tokens.create("ci", role="editor")
    auth = {"Authorization": f"Bearer {secret}"}
    with LiveServer(create_app(local, auth=True, rate_limit_per_minute=100_000)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        huge_header = http.post("/api/v1/experiments", json={"name": "never"},
                                headers={**auth, "X-Padding": "p" * 200_000})
        assert huge_header.status_code == 431, huge_header.status_code
        assert "headers are larger than the limit" in huge_header.json()["message"]
        many_headers = http.post("/api/v1/experiments", json={"name": "never"},
                                 headers={**auth, **{f"X-H{i}": "v" * 100 for i in range(2000)}})
        assert many_headers.status_code == 431, many_headers.status_code
        huge_body = http.post("/api/v1/experiments", content=b'{"name": "' + b"n" * (65 << 20) + b'"}',
                              headers={**auth, "Content-Type": "application/json"})
        assert huge_body.status_code == 413, huge_body.status_code
        assert "limit" in huge_body.json()["message"]
        assert http.get("/health").status_code == 200
        assert http.post("/api/v1/experiments", json={"name": "fine"}, headers=auth).status_code == 201
    assert "never" not in {e.name for e in local.tracking.list_experiments()}
    assert "fine" in {e.name for e in local.tracking.list_experiments()}
