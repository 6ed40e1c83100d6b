"""A real `arsenale server` (uvicorn, in a background thread, on a free port) for the HTTP client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.conftest import LiveServer


@pytest.fixture(scope="session")
def server_store(tmp_path_factory: pytest.TempPathFactory) -> Client:
    """The local client the live server wraps: tests use it to look behind the API."""
    root = tmp_path_factory.mktemp("live-server")
    return Client(f"sqlite:///{root}/db.sqlite", artifacts=str(root / "artifacts"), actor="server")


@pytest.fixture(scope="session")
def live_server_url(server_store: Client) -> Iterator[str]:
    with LiveServer(create_app(server_store)) as server:
        yield server.url
