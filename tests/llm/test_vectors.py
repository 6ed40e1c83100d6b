"""Versioned vector indexes on SQLite and PostgreSQL: immutable versions, replace and delete, exact search against
brute force, the HNSW path's recall, bad input that stores nothing, integrity on load, and the retrieval span
that names the index version a trace's chunks came from."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

import arsenale as ars
from arsenale.errors import IntegrityError, InvalidInput, NotFound
from arsenale.llm import tracer, vectors
from arsenale.llm.vectors import VectorIndex, hashing_embedder
from arsenale.platform import Client

DOCS: list[dict[str, Any]] = [{"id": "refund", "text": "Refunds take five business days.", "metadata": {"topic": "billing"}},
        {"id": "ship", "text": "Shipping is free above fifty euros."},
        {"id": "pwd", "text": "Reset your password from the login page."}]


def _state(index: VectorIndex) -> list[Any]:
    return index.versions()


def test_versions_are_immutable_replace_and_delete(store: Client) -> None:
    index = ars.VectorIndex("kb", embedder=hashing_embedder(64))
    v1 = index.add(DOCS)
    assert (v1.version, v1.parent_version, v1.count, len(v1.digest)) == (1, None, 3, 64)
    [hit] = index.search("how many days for a refund", k=1)
    assert (hit.id, hit.version, hit.metadata) == ("refund", 1, {"topic": "billing"})
    v2 = index.add([{"id": "refund", "text": "Refunds now take two days."}, "Gift cards never expire."])
    assert (v2.version, v2.parent_version, v2.count) == (2, 1, 4)
    assert {h.id: h.text for h in index.search("refund days", k=4)}["refund"] == "Refunds now take two days."
    # Version 1 is untouched and still searchable.
    old = {h.id: h for h in index.search("refund days", k=4, version=1)}
    assert set(old) == {"refund", "ship", "pwd"} and old["refund"].text == DOCS[0]["text"]
    assert {h.version for h in old.values()} == {1}
    v3 = index.delete(["ship"])
    assert (v3.version, v3.parent_version, v3.count) == (3, 2, 3)
    assert "ship" not in {h.id for h in index.search("shipping euros", k=10)}
    assert "ship" in {h.id for h in index.search("shipping euros", k=10, version=2)}
    assert [v.version for v in index.versions()] == [1, 2, 3] and index.get() == v3 and index.get(1) == v1
    # The same text added twice without an id is one row (its id is the content hash).
    v4 = index.add(["Gift cards never expire."])
    assert v4.count == 3
    with pytest.raises(InvalidInput, match="not in version 4"):
        index.delete(["ship", "pwd"])
    with pytest.raises(NotFound):
        index.search("x", version=9)
    assert [v.version for v in index.versions()] == [1, 2, 3, 4]


def test_bad_input_stores_nothing(store: Client) -> None:
    index = VectorIndex("kb", embedder=hashing_embedder(32), dim=32)
    with pytest.raises(InvalidInput, match="empty"):
        index.add([])
    with pytest.raises(NotFound):
        index.get()
    index.add(DOCS)
    before = _state(index)
    wrong = VectorIndex("kb", embedder=hashing_embedder(16))
    with pytest.raises(InvalidInput, match="dimension 16; the index has dimension 32"):
        wrong.add(["another text"])
    with pytest.raises(InvalidInput, match="dimension"):
        VectorIndex("kb", dim=64).add(["x"])
    with pytest.raises(InvalidInput, match="metric"):
        VectorIndex("kb", metric="l2", embedder=hashing_embedder(32)).add(["x"])
    with pytest.raises(InvalidInput, match="same id"):
        index.add([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(InvalidInput, match="no text"):
        index.add([{"id": "a"}])
    with pytest.raises(InvalidInput, match="NaN"):
        index.add(["x"], vectors=np.full((1, 32), np.nan))
    with pytest.raises(InvalidInput, match="k must"):
        index.search("x", k=0)
    with pytest.raises(InvalidInput, match="metric"):
        VectorIndex("other", metric="hamming")
    assert _state(index) == before
    assert VectorIndex("new", embedder=lambda texts: np.ones((len(texts), 3, 2))) is not None
    with pytest.raises(InvalidInput, match="shape"):
        VectorIndex("new", embedder=lambda texts: np.ones((len(texts), 3, 2))).add(["x"])
    with pytest.raises(NotFound):
        VectorIndex("new").get()


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_exact_search_matches_brute_force(store: Client, metric: str) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(2000, 24)).astype(np.float32)
    queries = rng.normal(size=(20, 24)).astype(np.float32)
    index = VectorIndex(f"rand-{metric}", metric=metric)
    index.add([{"id": f"d{i}", "text": f"doc {i}"} for i in range(len(data))], vectors=data)
    for q in queries:
        if metric == "cosine":
            truth = (data / np.linalg.norm(data, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
        elif metric == "dot":
            truth = data @ q
        else:
            truth = -np.linalg.norm(data - q, axis=1)
        expected = [f"d{i}" for i in np.argsort(-truth, kind="stable")[:10]]
        hits = index.search(q, k=10)
        assert [h.id for h in hits] == expected
        assert [h.score for h in hits] == pytest.approx(sorted(truth, reverse=True)[:10], rel=1e-4, abs=1e-4)


def test_approximate_search_recall(store: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")
    approx_rows = vectors.APPROX_ROWS
    rng = np.random.default_rng(11)
    n, dim = 25_000, 64
    data = rng.normal(size=(n, dim)).astype(np.float32)
    queries = rng.normal(size=(50, dim)).astype(np.float32)
    index = VectorIndex("big")
    index.add([{"id": str(i), "text": ""} for i in range(n)], vectors=data)
    start = time.perf_counter()
    approx = [[h.id for h in index.search(q, k=10)] for q in queries]
    assert vectors._graphs, "the HNSW path was not taken above APPROX_ROWS"
    build = time.perf_counter() - start
    monkeypatch.setattr(vectors, "APPROX_ROWS", n + 1)
    exact = [[h.id for h in index.search(q, k=10)] for q in queries]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95, (recall, build)
    # Built deterministically and cached on disk by the version's digest.
    assert (vectors._cache_dir() / f"{index.get().digest}-cosine.hnsw").is_file()
    vectors._graphs.clear()
    monkeypatch.setattr(vectors, "APPROX_ROWS", approx_rows)
    assert [[h.id for h in index.search(q, k=10)] for q in queries] == approx


def test_retrieval_span_names_the_index_version(store: Client) -> None:
    index = VectorIndex("kb", embedder=hashing_embedder(64))
    index.add(DOCS)
    index.add(["Gift cards never expire."])
    assert len(index.search("refund")) == 4  # outside a trace: no span, no error
    with ars.trace("answer") as t:
        hits = index.search("how long do refunds take", k=2)
        old = index.search("password", k=1, version=1)
    tracer.flush()
    got = store.traces.get(t.trace_id)
    spans = [s for s in got.spans if s.kind == "retrieval"]
    assert [s.attributes["retrieval.index_version"] for s in spans] == [2, 1]
    assert spans[0].attributes["retrieval.chunk_ids"] == [h.id for h in hits]
    assert spans[1].attributes["retrieval.chunk_ids"] == [h.id for h in old] == ["pwd"]
    assert {s.attributes["retrieval.index"] for s in spans} == {"kb"}
    assert spans[0].attributes["retrieval.k"] == 2
    [root] = [s for s in got.spans if s.parent_span_id is None]
    assert root.name == "answer" and all(s.parent_span_id == root.span_id for s in spans)


def test_altered_stored_array_is_refused(store: Client, tmp_path: Path) -> None:
    index = VectorIndex("kb", embedder=hashing_embedder(16))
    v1 = index.add(DOCS)
    vectors._loaded.clear()
    blobs: Any = cast(Any, store.registry).blobs
    path = blobs._path(v1.files["vectors.npy"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        index.search("refund")
    # Even a blob store that skips its own check cannot slip altered vectors past the version digest.
    original = blobs.get_bytes
    blobs.get_bytes = lambda digest, verify=True: original(digest, verify=False)
    try:
        with pytest.raises(IntegrityError, match="does not match its digest"):
            index.search("refund")
    finally:
        del blobs.get_bytes


def test_an_http_client_gets_the_remote_index() -> None:
    """`ars.VectorIndex` against a server is the HTTP implementation (tested in tests/client/test_indexes.py);
    an unreachable server is a clear BackendUnavailable, and pgvector settings are the server's to choose."""
    from arsenale.client.indexes import RemoteVectorIndex
    from arsenale.errors import BackendUnavailable

    client = Client("http://127.0.0.1:1")
    index = VectorIndex("kb", client=client)
    assert isinstance(index, RemoteVectorIndex)
    with pytest.raises(BackendUnavailable):
        index.search("x")
    with pytest.raises(InvalidInput, match="server chooses"):
        VectorIndex("kb", client=client, backend="pgvector", dsn="postgresql://x")
