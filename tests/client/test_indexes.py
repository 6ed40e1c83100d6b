"""Vector indexes through `client.indexes` and `open_index` on SQLite, PostgreSQL and over HTTP to a live server
(the `client` fixture): one behaviour — versions, search, a caller's embedder, the retrieval span — and the same
errors, with nothing stored by a refused call."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arsenale.client.indexes import IndexClient, LocalIndexes, RemoteVectorIndex, open_index
from arsenale.errors import InvalidInput, NotFound
from arsenale.llm import tracer, vectors
from arsenale.llm.vectors import VectorIndex, hashing_embedder

DOCS: list[dict[str, Any]] = [
    {"id": "refund", "text": "Refunds take five business days.", "metadata": {"topic": "billing"}},
    {"id": "ship", "text": "Shipping is free above fifty euros."},
    {"id": "pwd", "text": "Reset your password from the login page."}]


def _letters(texts: list[str]) -> np.ndarray:
    """A caller's own embedder (the server cannot run it): counts of a, e, i, o, u."""
    return np.asarray([[t.lower().count(c) for c in "aeiou"] for t in texts], dtype=np.float32)


@pytest.fixture(autouse=True)
def _cold() -> None:
    vectors._loaded.clear()


def test_open_index_is_remote_exactly_over_http(client: Any) -> None:
    index = open_index("kb", client=client)
    remote = str(client.uri).startswith("http")
    assert isinstance(index, RemoteVectorIndex if remote else VectorIndex)
    assert isinstance(client.indexes, IndexClient if remote else LocalIndexes)
    assert index.versions() == []
    with pytest.raises(NotFound):
        index.get()
    v1 = index.add(DOCS)
    assert (v1.version, v1.count, v1.parent_version) == (1, 3, None)
    assert index.search("how long do refunds take?", k=1)[0].id == "refund"
    v2 = index.add([{"id": "ship", "text": "Shipping costs five euros."}, "A plain string document."])
    assert (v2.version, v2.count, v2.parent_version) == (2, 4, 1)
    v3 = index.delete(["pwd"])
    assert [v.version for v in index.versions()] == [1, 2, 3] and index.get().count == 3
    assert index.get(1) == v1
    assert index.search("password", k=3, version=1)[0].id == "pwd"  # old versions stay searchable
    assert "pwd" not in [h.id for h in index.search("password", k=3)]
    vec = hashing_embedder(256)(["refunds"])[0]
    assert index.search(vec, k=1)[0].id == "refund"
    [info] = client.indexes.list()
    assert (info.name, info.dim, info.metric, info.latest_version, info.count) == ("kb", 256, "cosine", 3, 3)
    assert client.indexes.get("kb") == info and client.indexes.version("kb", "latest") == v3


def test_a_callers_embedder_works_remotely_and_is_named(client: Any) -> None:
    index = open_index("vowels", client=client, embedder=_letters, metric="dot")
    index.add(["aaa", "eee", "ooo"])
    assert index.search("a a", k=1)[0].text == "aaa"
    info = client.indexes.get("vowels")
    assert (info.dim, info.metric, info.embedder) == (5, "dot", "_letters")
    # without the embedder, text cannot be embedded on the store's side: a clear error, not a wrong answer
    with pytest.raises(InvalidInput, match="_letters"):
        client.indexes.search("vowels", "aaa")
    assert [h.text for h in client.indexes.search("vowels", [0, 0, 0, 5, 0], k=1)] == ["ooo"]


def test_the_retrieval_span_names_the_version(client: Any) -> None:
    index = open_index("kb", client=client)
    index.add(DOCS)
    with tracer.trace("answer", client=client) as t:
        hits = index.search("refunds", k=2)
    tracer.flush(client)
    span = next(s for s in client.traces.get(t.trace_id).spans if s.kind == "retrieval")
    assert span.attributes["retrieval.index"] == "kb" and span.attributes["retrieval.index_version"] == 1
    assert span.attributes["retrieval.chunk_ids"] == [h.id for h in hits]


def test_bad_input_is_refused_the_same_way_and_stores_nothing(client: Any) -> None:
    index = open_index("kb", client=client)
    index.add(DOCS)
    before = (client.indexes.list(), index.versions())
    calls: list[tuple[Any, type[Exception], str]] = [
        (lambda: index.search("x", k=0), InvalidInput, "k"),
        (lambda: index.search("x", k=5000), InvalidInput, "k"),
        (lambda: index.search([1.0, 2.0]), InvalidInput, "dimension"),
        (lambda: index.search("x", version=9), NotFound, "no version 9"),
        (lambda: index.add([]), InvalidInput, "empty"),
        (lambda: index.add("one string"), InvalidInput, "list"),
        (lambda: index.add([{"id": "a"}]), InvalidInput, "no text"),
        (lambda: index.add(DOCS[:1], vectors=[[1.0, 2.0]]), InvalidInput, "dimension"),
        (lambda: index.add(DOCS[:1], vectors=[[float("nan")] * 256]), InvalidInput, "NaN"),
        (lambda: index.delete(["missing"]), InvalidInput, "missing"),
        (lambda: index.delete([]), InvalidInput, "ids"),
        (lambda: open_index("kb", client=client, dim=8).add(["x"]), InvalidInput, "dimension"),
        (lambda: open_index("kb", client=client, metric="l2").add(["x"]), InvalidInput, "metric"),
        (lambda: open_index("", client=client), InvalidInput, "empty"),
        (lambda: open_index("kb", client=client, metric="manhattan"), InvalidInput, "metric"),
        (lambda: RemoteVectorIndex("kb", backend="pgvector", indexes=client.indexes), InvalidInput, "backend"),
        (lambda: client.indexes.search("nope", "x"), NotFound, "nope"),
        (lambda: client.indexes.version("kb", "abc"), InvalidInput, "version"),
        (lambda: client.indexes.versions("nope"), NotFound, "nope"),
    ]
    for call, error, words in calls:
        with pytest.raises(error, match=words):
            call()
    assert (client.indexes.list(), index.versions()) == before
