"""Feature-store fixtures: a real Redis (127.0.0.1:6379; required when CI=true), one database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import unavailable

REDIS_URL = os.environ.get("ARSENALE_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture
def redis_url(worker_id: str) -> Iterator[str]:
    """A Redis logical database of this xdist worker's own, emptied before and after the test."""
    import redis

    index = 1 + (int(worker_id[2:]) if worker_id.startswith("gw") else 0) % 15
    url = f"{REDIS_URL}/{index}"
    conn = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        conn.flushdb()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield url
    conn.flushdb()
    conn.close()


@pytest.fixture(params=["sqlite", "redis"])
def online_uri(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """An empty online store on SQLite and on Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/online.db"
    return str(request.getfixturevalue("redis_url"))
