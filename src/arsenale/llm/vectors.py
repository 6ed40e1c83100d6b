"""Versioned vector indexes, embedded: every `add` or `delete` makes a new immutable version.

    index = ars.VectorIndex("kb", embedder=my_embed)     # any callable list[str] -> array (n, dim)
    v1 = index.add(["Refunds take 5 days.", {"id": "faq-2", "text": "…", "metadata": {"lang": "en"}}])
    with ars.trace("answer"):
        hits = index.search("how long do refunds take?", k=4)   # a "retrieval" span: index, version, chunk ids

A version is the previous version's rows plus the new ones (an id given again replaces its row), stored in the
artifact store content-addressed: ids, texts and metadata as Parquet, the vectors as a float32 `.npy` (loaded
with `allow_pickle=False`). Its `digest` (BLAKE3 of vectors, ids, texts and metadata) is checked on every load,
so an altered array is refused (`IntegrityError`), never searched. Old versions stay searchable
(`search(..., version=1)`), which is what lets a trace's retrieved chunks name the exact version they came from.

Search is exact (numpy; cosine is the dot product of normalised vectors) below `APPROX_ROWS` rows, and above it
an HNSW graph (faiss's `IndexHNSWFlat`, built on one thread, so deterministically) cached on local disk
per version digest. Scores: higher is better — cosine similarity, the dot product, or minus the L2 distance.

For scale, `backend="pgvector"` (with `dsn="postgresql://…"`) searches each version in a pgvector table with an
HNSW index instead (see `arsenale.llm.pgvector`); versions, their artifacts and their digests stay the same.

The default embedder is `hashing_embedder(dim)` (bag of hashed words; no model, no download) — a baseline, not a
semantic embedder. Against an `http(s)://` server, `VectorIndex(...)` is a `RemoteVectorIndex`
(`arsenale.client.indexes`): the same methods and the same retrieval span, answered by the server's store.
"""

from __future__ import annotations

import builtins
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import sqlalchemy as sa

from arsenale.errors import Conflict, IntegrityError, InvalidInput, NotFound
from arsenale.llm import scorers
from arsenale.security.projects import current, home, in_scope, visible, visible_row
from arsenale.store import tables as t
from arsenale.store.db import read, write
from arsenale.tracking.models import check_name, now_ms

__all__ = ["APPROX_ROWS", "BACKENDS", "METRICS", "Hit", "IndexVersion", "VectorIndex", "hashing_embedder"]

APPROX_ROWS = 20_000  # from this many rows on, search uses the HNSW index (when faiss is installed)
METRICS = ("cosine", "dot", "l2")
BACKENDS = ("embedded", "pgvector")
MAX_K = 1000
MAX_ID = 256
_HNSW_M, _HNSW_EF_CONSTRUCTION, _HNSW_EF = 32, 100, 256  # recall@10 ≈ 0.99 on hard data

Embedder = Callable[[list[str]], Any]


def hashing_embedder(dim: int = 256) -> Embedder:
    """The download-free default: `arsenale.llm.scorers.hashing_embedder` over a batch of texts."""
    one = scorers.hashing_embedder(dim)

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray([one(text) for text in texts], dtype=np.float32).reshape(len(texts), dim)

    embed.__name__ = f"hashing_embedder({dim})"
    return embed


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, with the index version it came from."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any]
    version: int


@dataclass(frozen=True)
class IndexVersion:
    name: str
    version: int
    parent_version: int | None
    count: int
    digest: str
    files: dict[str, str] = field(default_factory=dict)
    creation_time: int = 0
    created_by: str = ""


@dataclass
class _Rows:
    ids: list[str]
    texts: list[str]
    metadata: list[dict[str, Any]]
    vectors: np.ndarray  # float32, (n, dim)
    _unit: np.ndarray | None = field(default=None, repr=False, compare=False)

    def unit(self) -> np.ndarray:
        """The rows normalised, once per loaded version: cosine search would otherwise renormalise every row
        for every query (at 100,000 × 384 that is most of a query's time)."""
        if self._unit is None:
            self._unit = _normalised(self.vectors)
        return self._unit


_loaded: dict[str, _Rows] = {}  # by version digest (a version never changes); a few recent ones
_graphs: dict[str, Any] = {}


def _digest(rows: _Rows) -> str:
    h = blake3.blake3()
    h.update(np.ascontiguousarray(rows.vectors, dtype="<f4").tobytes())
    h.update(json.dumps([rows.ids, rows.texts, rows.metadata], sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _doc(doc: Any, i: int) -> tuple[str, str, dict[str, Any]]:
    text: Any
    doc_id: Any
    meta: Any
    if isinstance(doc, str):
        text, doc_id, meta = doc, None, None
    elif isinstance(doc, Mapping):
        text, doc_id, meta = doc.get("text"), doc.get("id"), doc.get("metadata")
    else:
        text, doc_id, meta = getattr(doc, "text", None), getattr(doc, "id", None), getattr(doc, "metadata", None)
    if not isinstance(text, str):
        raise InvalidInput(f"docs[{i}] has no text: give a string or an object with a text", field="docs")
    if doc_id is None:  # the content's own hash: the same text added twice is one row
        doc_id = blake3.blake3(text.encode()).hexdigest()[:16]
    doc_id = check_name(doc_id, f"docs[{i}].id", MAX_ID)
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise InvalidInput(f"docs[{i}].metadata must be a mapping", field="docs")
    try:
        meta = json.loads(json.dumps(dict(meta)))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"docs[{i}].metadata is not JSON-serialisable: {exc}", field="docs") from None
    return doc_id, text, meta


def _matrix(raw: Any, n: int, dim: int | None, what: str) -> np.ndarray:
    try:
        arr = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not a numeric array: {exc}", field="embedder") from None
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InvalidInput(f"{what} has shape {arr.shape}; expected ({n}, dim)", field="embedder")
    if dim is not None and arr.shape[1] != dim:
        raise InvalidInput(f"{what} has dimension {arr.shape[1]}; the index has dimension {dim}",
                           field="embedder")
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{what} holds NaN or infinite values", field="embedder")
    return np.ascontiguousarray(arr)


def _normalised(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


class VectorIndex:
    """A named vector index with immutable versions; see the module docstring.

    `embedder`: a callable list[str] -> array (n, dim) (default: `hashing_embedder(dim or 256)`). `dim` and
    `metric` ('cosine', 'dot' or 'l2') are fixed when the first version is written; reopening an index with a
    different one is refused. `client` defaults to `ars.get_client()` (it must be local).
    `backend`: where searches run — "embedded" (numpy, then faiss HNSW; the default) or "pgvector" (an HNSW index
    in the PostgreSQL database at `dsn`, which must have the `vector` extension). The backend is a property of
    this handle, not of the index: the same versions can be searched either way.
    """

    def __new__(cls, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        """An index on an arsenale server is a `RemoteVectorIndex`, so one line of user code works on both."""
        if cls is VectorIndex:
            target = client
            if target is None:
                from arsenale.tracking.fluent import get_client

                target = get_client()
            if str(target.uri).startswith(("http://", "https://")):
                from arsenale.client.indexes import RemoteVectorIndex

                if "metric" not in kwargs:
                    kwargs["metric"] = None  # the stored one
                return RemoteVectorIndex(*args, client=target, **kwargs)
        return super().__new__(cls)

    def __init__(self, name: str, *, embedder: Embedder | None = None, dim: int | None = None,
                 metric: str = "cosine", client: Any = None, backend: str = "embedded",
                 dsn: str | None = None) -> None:
        self.name = check_name(name, "name")
        if backend not in BACKENDS:
            raise InvalidInput(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}", field="backend")
        if backend == "pgvector":
            from arsenale.llm import pgvector

            if dsn is None:
                raise InvalidInput("the pgvector backend needs dsn='postgresql://…'", field="dsn")
            dsn = pgvector.check_dsn(dsn)
        elif dsn is not None:
            raise InvalidInput("dsn is only for backend='pgvector'", field="dsn")
        self.backend = backend
        self.dsn = dsn
        if metric not in METRICS:
            raise InvalidInput(f"metric must be one of {', '.join(METRICS)}, got {metric!r}", field="metric")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65_536):
            raise InvalidInput("dim must be an integer between 1 and 65536", field="dim")
        if embedder is not None and not callable(embedder):
            raise InvalidInput("embedder must be a callable list[str] -> array (n, dim)", field="embedder")
        self.embedder = embedder
        self.dim = dim
        self.metric = metric
        self._client = client

    def __repr__(self) -> str:
        backend = "" if self.backend == "embedded" else f", backend={self.backend!r}"  # never the DSN: a password
        return f"VectorIndex({self.name!r}, dim={self.dim!r}, metric={self.metric!r}{backend})"

    # ---- plumbing ----------------------------------------------------------------------------------------

    def _local(self) -> tuple[Any, Any, str]:
        client = self._client
        if client is None:
            from arsenale.tracking.fluent import get_client

            client = self._client = get_client()
        if str(client.uri).startswith(("http://", "https://")):
            raise InvalidInput("vector indexes need a local store (a database URI) in this release, not an "
                               f"arsenale server ({client.uri})", field="client")
        return client.audit.engine, client.registry.blobs, client.registry.actor

    def _index_row(self, conn: sa.Connection) -> Any:
        """The index's row; None for a missing one and for one outside the project scope alike."""
        row = visible_row(conn.execute(sa.select(t.vector_indexes)
                                       .where(t.vector_indexes.c.name == self.name)).first())
        if row is not None:
            if self.dim is not None and row.dim != self.dim:
                raise InvalidInput(f"index {self.name!r} has dimension {row.dim}, not {self.dim}", field="dim")
            if row.metric != self.metric:
                raise InvalidInput(f"index {self.name!r} uses the {row.metric} metric, not {self.metric}",
                                   field="metric")
        return row

    def _embed(self, texts: list[str], dim: int | None) -> np.ndarray:
        embed = self.embedder or hashing_embedder(dim or self.dim or 256)
        return _matrix(embed(texts), len(texts), dim, "the embedder's output")

    def _versions_query(self) -> Any:
        """This index's versions; none when the index is outside the project scope (checked through it)."""
        v, i = t.vector_index_versions, t.vector_indexes
        q = sa.select(v).where(v.c.name == self.name)
        if current().confined:
            q = q.where(v.c.name.in_(sa.select(i.c.name).where(i.c.name == self.name, in_scope(i.c.project))))
        return q

    def _version_row(self, conn: sa.Connection, version: int | None) -> Any:
        v = t.vector_index_versions
        q = self._versions_query()
        if version is None:
            q = q.order_by(v.c.version.desc()).limit(1)
        else:
            if isinstance(version, bool) or not isinstance(version, int):
                raise InvalidInput("version must be an integer", field="version")
            q = q.where(v.c.version == version)
        row = conn.execute(q).first()
        if row is None:
            what = "has no versions yet" if version is None else f"has no version {version}"
            raise NotFound(f"vector index {self.name!r} {what}", field="version")
        return row

    @staticmethod
    def _model(row: Any) -> IndexVersion:
        return IndexVersion(name=row.name, version=row.version, parent_version=row.parent_version,
                            count=row.count, digest=row.digest, files=json.loads(row.files),
                            creation_time=row.creation_time, created_by=row.created_by)

    def _load(self, blobs: Any, row: Any) -> _Rows:
        cached = _loaded.get(row.digest)
        if cached is not None:
            return cached
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        files = json.loads(row.files)
        table = pq.read_table(pa.BufferReader(blobs.get_bytes(files["rows.parquet"], verify=True)))
        vectors = np.load(io.BytesIO(blobs.get_bytes(files["vectors.npy"], verify=True)), allow_pickle=False)
        rows = _Rows(ids=table.column("id").to_pylist(), texts=table.column("text").to_pylist(),
                     metadata=[json.loads(m) for m in table.column("metadata").to_pylist()],
                     vectors=np.ascontiguousarray(vectors, dtype=np.float32))
        if _digest(rows) != row.digest:
            raise IntegrityError(f"vector index {self.name!r} version {row.version} does not match its digest: "
                                 "the stored arrays were altered")
        if len(_loaded) >= 8:
            _loaded.pop(next(iter(_loaded)))
        _loaded[row.digest] = rows
        return rows

    def _write(self, parent: Any, rows: _Rows, dim: int) -> IndexVersion:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        engine, blobs, actor = self._local()
        table = pa.table({"id": pa.array(rows.ids, pa.string()), "text": pa.array(rows.texts, pa.string()),
                          "metadata": pa.array([json.dumps(m, sort_keys=True) for m in rows.metadata],
                                               pa.string())})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        npy = io.BytesIO()
        np.save(npy, np.ascontiguousarray(rows.vectors, dtype="<f4").reshape(len(rows.ids), dim),
                allow_pickle=False)
        files = {"rows.parquet": blobs.put_bytes(buf.getvalue())[0], "vectors.npy": blobs.put_bytes(npy.getvalue())[0]}
        digest, now = _digest(rows), now_ms()
        if self.dsn is not None:  # built before the version is recorded: a recorded version is searchable
            from arsenale.llm import pgvector

            files["pgvector.table"] = pgvector.ensure_table(self.dsn, rows.vectors.reshape(len(rows.ids), dim),
                                                            digest, self.metric)
        parent_version = None if parent is None else parent.version
        with write(engine) as conn:
            index = self._index_row(conn)
            if index is None:
                _refuse_foreign(conn, self.name)
                described = (f"hashing_embedder({dim})" if self.embedder is None
                             else getattr(self.embedder, "__name__", None) or repr(self.embedder))
                conn.execute(sa.insert(t.vector_indexes).values(
                    name=self.name, dim=dim, metric=self.metric, embedder=described[:2000], creation_time=now,
                    created_by=actor, project=home()))
            elif index.dim != dim:  # created meanwhile by another writer, with another dimension
                raise InvalidInput(f"index {self.name!r} has dimension {index.dim}, not {dim}", field="dim")
            v = t.vector_index_versions
            latest = conn.execute(sa.select(sa.func.max(v.c.version)).where(v.c.name == self.name)).scalar()
            if latest != parent_version:
                raise Conflict(f"vector index {self.name!r} changed (now at version {latest}) while this version "
                               f"was built on {parent_version}; retry", field="version")
            version = (latest or 0) + 1
            conn.execute(sa.insert(v).values(name=self.name, version=version, parent_version=parent_version,
                                             count=len(rows.ids), digest=digest, files=json.dumps(files),
                                             creation_time=now, created_by=actor))
        _loaded[digest] = rows
        return IndexVersion(name=self.name, version=version, parent_version=parent_version, count=len(rows.ids),
                            digest=digest, files=files, creation_time=now, created_by=actor)

    def _latest(self) -> tuple[Any, Any, _Rows | None]:
        engine, blobs, _ = self._local()
        with read(engine) as conn:
            index = self._index_row(conn)
            parent = None if index is None else self._version_row(conn, None)
        return index, parent, None if parent is None else self._load(blobs, parent)

    # ---- writing -----------------------------------------------------------------------------------------

    def add(self, docs: Sequence[Any], *, vectors: Any = None) -> IndexVersion:
        """A new version: the latest one's rows plus `docs` (strings, or mappings/objects with `id`, `text` and
        optional `metadata`; an id already there is replaced). `vectors` (n, dim) skips the embedder."""
        if isinstance(docs, str | bytes) or not isinstance(docs, Sequence):
            raise InvalidInput("docs must be a list of strings or of documents", field="docs")
        if not docs:
            raise InvalidInput("docs is empty: a version needs at least one new document", field="docs")
        parsed = [_doc(d, i) for i, d in enumerate(docs)]
        ids = [p[0] for p in parsed]
        if len(set(ids)) != len(ids):
            raise InvalidInput("docs holds the same id more than once", field="docs")
        index, parent, old = self._latest()
        dim = index.dim if index is not None else self.dim
        texts = [p[1] for p in parsed]
        if vectors is not None:
            new = _matrix(vectors, len(texts), dim, "vectors")
        else:
            new = self._embed(texts, dim)
        dim = new.shape[1]
        if old is None:
            rows = _Rows(ids=ids, texts=texts, metadata=[p[2] for p in parsed], vectors=new)
        else:
            keep = [i for i, x in enumerate(old.ids) if x not in set(ids)]
            rows = _Rows(ids=[old.ids[i] for i in keep] + ids, texts=[old.texts[i] for i in keep] + texts,
                         metadata=[old.metadata[i] for i in keep] + [p[2] for p in parsed],
                         vectors=np.concatenate([old.vectors[keep], new]))
        return self._write(parent, rows, dim)

    def delete(self, ids: Sequence[str]) -> IndexVersion:
        """A new version without `ids`; every id must be in the latest version (else nothing is written)."""
        if isinstance(ids, str) or not isinstance(ids, Sequence) or not ids:
            raise InvalidInput("ids must be a non-empty list of ids", field="ids")
        index, parent, old = self._latest()
        if old is None:
            raise NotFound(f"vector index {self.name!r} has no versions yet", field="name")
        gone = set(ids)
        missing = sorted(str(x) for x in gone - set(old.ids))
        if missing:
            raise InvalidInput(f"not in version {parent.version}: {', '.join(missing[:10])}", field="ids")
        keep = [i for i, x in enumerate(old.ids) if x not in gone]
        rows = _Rows(ids=[old.ids[i] for i in keep], texts=[old.texts[i] for i in keep],
                     metadata=[old.metadata[i] for i in keep], vectors=old.vectors[keep])
        return self._write(parent, rows, index.dim)

    # ---- reading -----------------------------------------------------------------------------------------

    def versions(self) -> builtins.list[IndexVersion]:
        engine, _, _ = self._local()
        v = t.vector_index_versions
        with read(engine) as conn:
            rows = conn.execute(self._versions_query().order_by(v.c.version)).all()
        return [self._model(r) for r in rows]

    def get(self, version: int | None = None) -> IndexVersion:
        """A version's metadata (the latest by default)."""
        engine, _, _ = self._local()
        with read(engine) as conn:
            return self._model(self._version_row(conn, version))

    def search(self, query: str | Any, k: int = 4, version: int | None = None) -> builtins.list[Hit]:
        """The `k` nearest rows of `version` (the latest by default) to `query` (a text, or a vector), best
        first. Inside `ars.trace(...)` this records a span of kind "retrieval" naming the index, its version,
        `k` and the chunk ids returned."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be an integer between 1 and {MAX_K}", field="k")
        from arsenale.llm import tracer

        if tracer._current.get() is None:
            return self._search(query, k, version)
        with tracer.span("retrieval", kind="retrieval") as s:
            s.set_attributes({"retrieval.index": self.name, "retrieval.k": k})
            hits = self._search(query, k, version)
            s.set_attributes({"retrieval.index_version": hits[0].version if hits else version,
                              "retrieval.chunk_ids": [h.id for h in hits],
                              "retrieval.scores": [round(h.score, 6) for h in hits]})
            return hits

    def _search(self, query: Any, k: int, version: int | None) -> builtins.list[Hit]:
        engine, blobs, _ = self._local()
        with read(engine) as conn:
            index = self._index_row(conn)
            if index is None:
                raise NotFound(f"no vector index {self.name!r}", field="name")
            row = self._version_row(conn, version)
        rows = self._load(blobs, row)
        if isinstance(query, str):
            q = self._embed([query], index.dim)[0]
        else:
            q = _matrix(np.asarray(query, dtype=np.float32).reshape(1, -1), 1, index.dim, "query")[0]
        n = len(rows.ids)
        k = min(k, n)
        if k == 0:
            return []
        if self.dsn is not None:
            idx, scores = self._pgvector_search(row, rows, q, k)
        elif n >= APPROX_ROWS and (graph := _graph(rows, row.digest, self.metric)) is not None:
            qq = _normalised(q) if self.metric == "cosine" else q
            graph.hnsw.efSearch = max(_HNSW_EF, 4 * k)
            found, labels = graph.search(np.ascontiguousarray(qq.reshape(1, -1), dtype=np.float32), k)
            keep = labels[0] >= 0
            idx = labels[0][keep].astype(np.int64)
            d = found[0][keep].astype(np.float64)
            # faiss answers squared distances for L2 and inner products (cosine of normalised vectors) otherwise
            scores = -np.sqrt(np.maximum(d, 0)) if self.metric == "l2" else d
        else:
            if self.metric == "cosine":  # the dot product of normalised vectors, as `_exact` computes it
                idx, scores = _exact(rows.unit(), _normalised(q), k, "dot")
            else:
                idx, scores = _exact(rows.vectors, q, k, self.metric)
        return [Hit(id=rows.ids[i], text=rows.texts[i], score=float(s), metadata=dict(rows.metadata[i]),
                    version=row.version) for i, s in zip(idx.tolist(), scores.tolist(), strict=True)]

    def _pgvector_search(self, row: Any, rows: _Rows, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from arsenale.llm import pgvector

        assert self.dsn is not None
        table = pgvector.table_name(row.digest, self.metric)
        recorded = json.loads(row.files).get("pgvector.table")
        if recorded is not None and recorded != table:
            raise IntegrityError(f"vector index {self.name!r} version {row.version} names pgvector table "
                                 f"{str(recorded)[:80]!r}, which is not its content's")
        exact = len(rows.ids) < APPROX_ROWS
        try:
            idx, scores = pgvector.search(self.dsn, table, q, k, self.metric, exact)
        except pgvector.MissingTable:  # written by the embedded backend, or against another database
            pgvector.ensure_table(self.dsn, rows.vectors, row.digest, self.metric)
            idx, scores = pgvector.search(self.dsn, table, q, k, self.metric, exact)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(rows.ids)):
            raise IntegrityError(f"the pgvector table of {self.name!r} version {row.version} does not match it")
        return idx, scores


def _refuse_foreign(conn: sa.Connection, name: str) -> None:
    """Names are global: creating an index whose name another project holds is refused (only a confined
    caller can meet one: unconfined, every index is visible)."""
    if current().confined:
        owner = conn.execute(sa.select(t.vector_indexes.c.project)
                             .where(t.vector_indexes.c.name == name)).scalar()
        if owner is not None and not visible(owner):
            raise Conflict(f"vector index name {name!r} is already taken", field="name")


def _exact(vectors: np.ndarray, q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        scores = _normalised(vectors) @ _normalised(q)
    elif metric == "dot":
        scores = vectors @ q
    else:
        scores = -np.linalg.norm(vectors - q, axis=1)
    scores = scores.astype(np.float64)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = top[np.lexsort((top, -scores[top]))]  # best first; ties by row order
    return order, scores[order]


def _cache_dir() -> Path:
    from arsenale.config import get_settings

    return Path(get_settings().resolved_home()) / "cache" / "vector-indexes"


def _graph(rows: _Rows, digest: str, metric: str) -> Any:
    """The HNSW graph of a version (built once on one thread, so the same graph every time; cached on disk by
    digest), or None when faiss is not installed."""
    key = f"{digest}-{metric}"
    if key in _graphs:
        return _graphs[key]
    try:
        import faiss  # type: ignore[import-untyped]
    except ImportError:
        return None
    dim = rows.vectors.shape[1]
    path = _cache_dir() / f"{key}.hnsw"
    if path.is_file():
        graph = faiss.read_index(str(path))
    else:
        space = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        data = _normalised(rows.vectors) if metric == "cosine" else rows.vectors
        graph = faiss.IndexHNSWFlat(dim, _HNSW_M, space)
        graph.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # parallel insertion would make the graph depend on timing
        try:
            graph.add(np.ascontiguousarray(data, dtype=np.float32))
        finally:
            faiss.omp_set_num_threads(threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        faiss.write_index(graph, str(tmp))
        os.replace(tmp, path)
    if len(_graphs) >= 4:
        _graphs.pop(next(iter(_graphs)))
    _graphs[key] = graph
    return graph
