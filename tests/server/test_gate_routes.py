"""Gate runs over REST on a real store (SQLite and PostgreSQL): bad requests get a 4xx naming the field and
change nothing; a failed run cannot be promoted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.server.test_app import BAD, MISSING, assert_error
from tests.serving.conftest import Fitted, cancer, register, shared_artifacts, store  # noqa: F401  (fixtures)

PATH = "/api/v1/gates/runs"
LIMIT = 64 << 10
RESULT = {"name": "performance.accuracy", "passed": True, "message": "ok", "candidate": 0.9}
BODY = {"name": "bc", "version": 1, "dataset": "d", "results": [RESULT], "policy": "[[performance]]"}


@pytest.fixture
def api(store: Client, shared_artifacts: Path, cancer: Fitted) -> Iterator[TestClient]:  # noqa: F811
    register("bc", cancer)
    with TestClient(create_app(Client(store.uri, artifacts=str(shared_artifacts)),
                               max_json_bytes=LIMIT)) as test_client:
        yield test_client


def test_record_read_and_promote(api: TestClient) -> None:
    created = api.post(PATH, json=BODY)
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["passed"] and run["results"][0]["name"] == "performance.accuracy"
    assert api.get(f"{PATH}/{run['id']}").json() == run
    assert [r["id"] for r in api.get(PATH, params={"model": "bc", "version": 1}).json()] == [run["id"]]
    promoted = api.post(f"{PATH}/{run['id']}/promote", json={"alias": "challenger"})
    assert promoted.status_code == 200 and promoted.json()["promotion"] == {"alias": "challenger"}


@pytest.mark.parametrize(("body", "status", "field"), [
    ({**BODY, "version": "1"}, 400, None),
    ({**BODY, "extra": 1}, 400, None),
    ({k: v for k, v in BODY.items() if k != "results"}, 400, None),
    ({**BODY, "results": [{**RESULT, "passed": 1}]}, 400, "results"),
    ({**BODY, "results": [{"name": "x", "passed": True, "message": "m" * 100_000}]}, 413, None),
    ({**BODY, "name": "../../etc"}, 400, None),
    ({**BODY, "version": 5}, 404, None),
])
def test_bad_bodies_are_refused_and_nothing_is_stored(api: TestClient, body: dict[str, Any], status: int,
                                                      field: str | None) -> None:
    response = api.post(PATH, json=body)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    if field is not None:
        assert response.json().get("field") == field
    assert api.get(PATH).json() == []


def test_bad_ids_and_failed_runs(api: TestClient) -> None:
    assert api.get(f"{PATH}/abc").status_code in (400, 422)
    assert_error(api.get(f"{PATH}/77"), 404, MISSING)
    assert_error(api.post(f"{PATH}/77/promote", json={"alias": "challenger"}), 404, MISSING)
    failed = api.post(PATH, json={**BODY, "results": [{**RESULT, "passed": False}]}).json()
    assert api.post(f"{PATH}/{failed['id']}/promote", json={"alias": "challenger"}).status_code == 409
    assert_error(api.post(f"{PATH}/{failed['id']}/promote", json={"alias": 3}), 400, BAD)
    assert api.get(f"{PATH}/{failed['id']}").json()["promotion"] is None
    assert api.get(PATH, params={"limit": 0}).status_code in (400, 422)
