"""The prompt registry over REST on a real store: statuses and bodies a caller sees; bad requests get a 4xx naming
the field, never a 500, and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.server.test_app import BAD, MISSING, assert_error

PATH = "/api/v1/prompts"
BODY = {"name": "support-answer", "template": "Answer using {{ context }}:\n{{ question }}", "model": "gpt-x",
        "params": {"temperature": 0.2}}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    local = Client(f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=str(tmp_path / "artifacts"))
    with TestClient(create_app(local, max_json_bytes=1 << 20), raise_server_exceptions=False) as test_client:
        yield test_client


def _snapshot(api: TestClient) -> Any:
    prompts = api.get(PATH).json()
    return prompts, [api.get(f"{PATH}/{p['name']}/versions").json() for p in prompts], \
        api.get("/api/v1/audit").json()


def test_register_read_label_and_diff(api: TestClient) -> None:
    created = api.post(PATH, json=BODY)
    assert created.status_code == 201, created.text
    v1 = created.json()
    assert (v1["version"], v1["variables"], v1["params"]) == (1, ["context", "question"], {"temperature": 0.2})
    assert api.post(PATH, json=BODY).json() == v1  # identical content: the same version
    v2 = api.post(PATH, json={**BODY, "params": {"temperature": 0.5}}).json()
    assert v2["version"] == 2
    assert [v["version"] for v in api.get(f"{PATH}/support-answer/versions").json()] == [2, 1]
    assert api.get(f"{PATH}/support-answer/versions/latest").json() == v2
    assert api.get(f"{PATH}/support-answer/versions/1").json() == v1
    moved = api.put(f"{PATH}/support-answer/labels/production", json={"version": 1, "reason": "ship it"})
    assert moved.status_code == 200 and moved.json()["labels"] == ["production"]
    assert api.get(f"{PATH}/support-answer/labels/production").json()["version"] == 1
    assert api.get(f"{PATH}/support-answer").json()["labels"] == {"production": 1}
    diff = api.get(f"{PATH}/support-answer/diff", params={"a": "production", "b": "latest"}).json()
    assert diff["changes"] == {"params.temperature": [0.2, 0.5]} and diff["template_diff"] == ""
    assert api.delete(f"{PATH}/support-answer/labels/production").status_code == 204
    assert_error(api.get(f"{PATH}/support-answer/labels/production"), 404, MISSING, "label")
    [listed] = api.get(PATH).json()
    assert listed["latest_version"] == 2 and listed["labels"] == {}


def test_names_travel_as_one_escaped_segment(api: TestClient) -> None:
    name = "a b?c#d%e.f"
    assert api.post(PATH, json={**BODY, "name": name}).status_code == 201
    from arsenale.client.http import segment

    assert api.get(f"{PATH}/{segment(name)}/versions/1").json()["name"] == name


def test_unknown_prompts_are_404s_never_500s(api: TestClient) -> None:
    for path in ("/nope", "/nope/versions", "/nope/versions/1", "/nope/versions/latest", "/nope/labels/production",
                 "/nope/diff?a=1&b=2"):
        assert_error(api.get(PATH + path), 404, MISSING)
    assert_error(api.put(f"{PATH}/nope/labels/production", json={"version": 1}), 404, MISSING, "name")
    assert_error(api.delete(f"{PATH}/nope/labels/production"), 404, MISSING, "name")
    api.post(PATH, json=BODY)
    assert_error(api.get(f"{PATH}/support-answer/versions/3"), 404, MISSING, "version")


def test_bad_requests_name_the_field_and_change_nothing(api: TestClient) -> None:
    api.post(PATH, json=BODY)
    api.put(f"{PATH}/support-answer/labels/production", json={"version": 1})
    before = _snapshot(api)
    cases: list[tuple[str, str, Any, int, str, str | None]] = [
        ("POST", PATH, {**BODY, "template": "{{ ''.__class__ }}"}, 400, BAD, "template"),
        ("POST", PATH, {**BODY, "template": "{% if %}"}, 400, BAD, "template"),
        ("POST", PATH, {**BODY, "template": "x" * 100_001}, 400, BAD, "template"),
        ("POST", PATH, {**BODY, "name": "a/b"}, 400, BAD, "name"),
        ("POST", PATH, {**BODY, "name": "a@b"}, 400, BAD, "name"),
        ("POST", PATH, {**BODY, "params": {"x": "y" * 20_000}}, 400, BAD, "params"),
        ("POST", PATH, {**BODY, "temperature": 1}, 400, BAD, "temperature"),
        ("POST", PATH, {**BODY, "params": "t=1"}, 400, BAD, "params"),
        ("POST", PATH, {"name": "x"}, 400, BAD, "template"),
        ("PUT", f"{PATH}/support-answer/labels/production", {"version": 9}, 404, MISSING, "version"),
        ("PUT", f"{PATH}/support-answer/labels/production", {"version": "1"}, 400, BAD, "version"),
        ("PUT", f"{PATH}/support-answer/labels/Prod", {"version": 1}, 400, BAD, "label"),
        ("PUT", f"{PATH}/support-answer/labels/v2", {"version": 1}, 400, BAD, "label"),
        ("GET", f"{PATH}/support-answer/versions/abc", None, 400, BAD, "version"),
        ("GET", f"{PATH}/support-answer/diff?a=1", None, 400, BAD, "b"),
        ("GET", f"{PATH}/support-answer/diff?a=1&b=Bad", None, 400, BAD, "label"),
    ]
    for method, path, body, status, code, field in cases:
        assert_error(api.request(method, path, json=body), status, code, field)
    assert_error(api.post(PATH, content=b"{not json", headers={"Content-Type": "application/json"}), 400, BAD)
    assert _snapshot(api) == before
