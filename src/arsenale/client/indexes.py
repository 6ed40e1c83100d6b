"""Vector indexes by name, local or remote: what `client.indexes` is, and `RemoteVectorIndex`.

    client.indexes.list()                      every index: dim, metric, embedder, latest version, count
    client.indexes.search("kb", [0.1, …], k=4)  or a text, where the store's side can embed it
    open_index("kb", client=client)            a `VectorIndex` for a local store, a `RemoteVectorIndex` for a server

Two implementations of one interface: `LocalIndexes` (a database URI; the server wraps this one) and
`IndexClient` (an `arsenale server`, through `/api/v1/indexes`). Both open a stored index with the metric it
was created with, and embed text only with an embedder they can run: the default hashing embedder, recorded as
`hashing_embedder(<dim>)`, or the local sentence encoder `local(<model>, device=…)` of `arsenale.llm.embedders`
when the optional `embeddings` extra is installed. An index written with any other embedder keeps that
embedder's name, so a text query that this side cannot embed is refused with a clear `InvalidInput` (send a
vector) instead of being embedded by the wrong function. `RemoteVectorIndex` embeds on the caller's side when
given an embedder, so a custom embedder works over HTTP exactly as it does locally.
"""

from __future__ import annotations

import builtins
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, path_param
from arsenale.errors import InvalidInput, NotFound
from arsenale.llm.vectors import MAX_K, METRICS, Embedder, Hit, IndexVersion, VectorIndex, hashing_embedder
from arsenale.security.projects import DEFAULT_PROJECT, in_scope, visible_row
from arsenale.store import tables as t
from arsenale.store.db import read
from arsenale.tracking.models import check_name

__all__ = ["IndexClient", "IndexInfo", "LocalIndexes", "RemoteVectorIndex", "can_embed", "open_index",
           "server_embedder"]

_PATH = "/api/v1/indexes"
_HASHING = re.compile(r"hashing_embedder\((\d{1,7})\)")
_LOCAL = re.compile(r"local\((?P<model>[^,()]{1,200}), device=[^()]{1,100}\)")
MAX_EMBEDDER_NAME = 2000


@dataclass(frozen=True)
class IndexInfo:
    """One index as listed: fixed at creation (dim, metric, embedder) plus its newest version."""

    name: str
    dim: int
    metric: str
    embedder: str | None
    latest_version: int | None
    count: int
    creation_time: int
    created_by: str
    project: str = DEFAULT_PROJECT


_INFOS = TypeAdapter(builtins.list[IndexInfo])
_VERSIONS = TypeAdapter(builtins.list[IndexVersion])
_HITS = TypeAdapter(builtins.list[Hit])


def _local_model(described: str | None, dim: int) -> str | None:
    """The model of a `local(<model>, device=…)` embedder (`arsenale.llm.embedders`) when this process has the
    optional extra and the model has the index's dimension; else None. Nothing is loaded here."""
    m = _LOCAL.fullmatch(described or "")
    if m is None:
        return None
    try:
        from arsenale.llm import embedders
    except ImportError:
        return None
    known = getattr(embedders, "MODELS", {}).get(m["model"])
    if known is None or known[1] != dim or importlib.util.find_spec(known[0]) is None:
        return None
    return m["model"]


def can_embed(described: str | None, dim: int) -> bool:
    """Whether `server_embedder` would find an embedder, without loading a model (for pages that only ask)."""
    m = _HASHING.fullmatch(described or "")
    return (m is not None and int(m.group(1)) == dim) or _local_model(described, dim) is not None


def server_embedder(described: str | None, dim: int) -> Embedder | None:
    """The embedder an index was written with, when this process can run it, else None (a name alone cannot be
    turned back into an arbitrary model): the hashing embedder of the index's dimension, or the local sentence
    encoder it names when the optional `embeddings` extra is installed (run on CPU: the same vectors, within
    float error, as on the device that wrote the index)."""
    m = _HASHING.fullmatch(described or "")
    if m is not None:
        return hashing_embedder(dim) if int(m.group(1)) == dim else None
    model = _local_model(described, dim)
    if model is None:
        return None
    from arsenale.llm import embedders

    try:
        return embedders.local(model, device="cpu")
    except InvalidInput:  # the extra is there but cannot load (e.g. torch missing): say so as "cannot run"
        return None


class _NamedEmbedder:
    """Stands for an embedder that runs elsewhere: names it in the index row, refuses to run here."""

    def __init__(self, name: str, index: str) -> None:
        self.__name__ = name
        self._index = index

    def __call__(self, texts: list[str]) -> Any:
        raise InvalidInput(f"vector index {self._index!r} embeds with {self.__name__!r}, which cannot run here: "
                           "send vectors (or a query vector) instead of text", field="text")


def _check_metric(metric: Any) -> str | None:
    if metric is not None and metric not in METRICS:
        raise InvalidInput(f"metric must be one of {', '.join(METRICS)}, got {metric!r}", field="metric")
    return metric  # type: ignore[no-any-return]


def _check_embedder_name(embedder: Any) -> str | None:
    if embedder is None:
        return None
    if not isinstance(embedder, str) or not embedder.strip() or len(embedder) > MAX_EMBEDDER_NAME:
        raise InvalidInput(f"embedder must name the embedder in at most {MAX_EMBEDDER_NAME} characters",
                           field="embedder")
    return embedder


def _check_version(version: Any) -> int | None:
    """None (the latest), an integer, or its text ('3', 'latest')."""
    if version is None or version == "latest":
        return None
    if isinstance(version, str) and re.fullmatch(r"-?\d{1,9}", version):
        return int(version)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput(f"version must be an integer or 'latest', got {version!r:.40}", field="version")
    return version


class LocalIndexes:
    """The indexes of a local store (what `Client(<database URI>).indexes` is, and what the server serves)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"LocalIndexes({self._client.uri!r})"

    @property
    def _engine(self) -> Any:
        return self._client.audit.engine

    def list(self) -> builtins.list[IndexInfo]:
        i, v = t.vector_indexes, t.vector_index_versions
        latest = (sa.select(v.c.name, sa.func.max(v.c.version).label("version")).group_by(v.c.name).subquery())
        q = (sa.select(i, latest.c.version, v.c.count.label("rows"))
             .select_from(i.outerjoin(latest, latest.c.name == i.c.name)
                          .outerjoin(v, sa.and_(v.c.name == i.c.name, v.c.version == latest.c.version)))
             .where(in_scope(i.c.project)).order_by(i.c.name))
        with read(self._engine) as conn:
            rows = conn.execute(q).all()
        return [IndexInfo(name=r.name, dim=r.dim, metric=r.metric, embedder=r.embedder, latest_version=r.version,
                          count=r.rows or 0, creation_time=r.creation_time, created_by=r.created_by,
                          project=r.project) for r in rows]

    def _row(self, name: Any) -> Any:
        """The index's row; None for a missing one and for one of another project alike."""
        name = check_name(name, "name")
        with read(self._engine) as conn:
            return visible_row(conn.execute(sa.select(t.vector_indexes)
                                            .where(t.vector_indexes.c.name == name)).first())

    def _existing(self, name: Any) -> Any:
        row = self._row(name)
        if row is None:
            raise NotFound(f"no vector index {name!r}", field="name")
        return row

    def get(self, name: str) -> IndexInfo:
        row = self._existing(name)
        latest = VectorIndex(row.name, metric=row.metric, client=self._client).versions()[-1:]
        return IndexInfo(name=row.name, dim=row.dim, metric=row.metric, embedder=row.embedder,
                         latest_version=latest[0].version if latest else None,
                         count=latest[0].count if latest else 0, creation_time=row.creation_time,
                         created_by=row.created_by, project=row.project)

    def _index(self, row: Any) -> VectorIndex:
        embedder = server_embedder(row.embedder, row.dim) or _NamedEmbedder(row.embedder or "unknown", row.name)
        return VectorIndex(row.name, embedder=embedder, dim=row.dim, metric=row.metric, client=self._client)

    def versions(self, name: str) -> builtins.list[IndexVersion]:
        """Oldest first; an unknown index is NotFound (a `VectorIndex` answers [] for it)."""
        return self._index(self._existing(name)).versions()

    def version(self, name: str, version: int | str | None = None) -> IndexVersion:
        return self._index(self._existing(name)).get(_check_version(version))

    def search(self, name: str, query: str | Any, k: int = 4, version: int | str | None = None
               ) -> builtins.list[Hit]:
        """`query` is a text (embedded here only when this side can run the index's embedder) or a vector."""
        return self._index(self._existing(name)).search(query, k, _check_version(version))

    def add(self, name: str, docs: Sequence[Any], vectors: Any = None, *, dim: int | None = None,
            metric: str | None = None, embedder: str | None = None) -> IndexVersion:
        """A new version. `dim`, `metric` and `embedder` (the name of the embedder that made `vectors`; None for
        the default hashing embedder) only matter when the index is created; for an existing index a different
        dim or metric is refused, as `VectorIndex` does."""
        metric, embedder = _check_metric(metric), _check_embedder_name(embedder)
        row = self._row(name)
        if row is not None:
            if dim is not None and dim != row.dim:
                raise InvalidInput(f"index {row.name!r} has dimension {row.dim}, not {dim}", field="dim")
            if metric is not None and metric != row.metric:
                raise InvalidInput(f"index {row.name!r} uses the {row.metric} metric, not {metric}", field="metric")
            index = self._index(row)
        else:
            run: Embedder | None = None
            if embedder is not None:
                m = _HASHING.fullmatch(embedder)
                if m is not None and dim is None:
                    dim = int(m.group(1))
                run = server_embedder(embedder, dim or 256) or _NamedEmbedder(embedder, name)
            index = VectorIndex(name, embedder=run, dim=dim, metric=metric or "cosine", client=self._client)
        return index.add(docs, vectors=vectors)

    def delete(self, name: str, ids: Sequence[str]) -> IndexVersion:
        return self._index(self._existing(name)).delete(ids)

    def open(self, name: str, **kwargs: Any) -> VectorIndex:
        """`VectorIndex(name, client=…, **kwargs)`, with the stored metric when none is given."""
        if "metric" not in kwargs and (row := self._row(name)) is not None:
            kwargs["metric"] = row.metric
        return VectorIndex(name, client=self._client, **kwargs)


def _docs_json(docs: Any) -> builtins.list[dict[str, Any]]:
    """Documents as the REST body carries them; the checks (and messages) are `VectorIndex`'s, run here first
    so a bad document never travels."""
    from arsenale.llm.vectors import _doc

    if isinstance(docs, str | bytes) or not isinstance(docs, Sequence):
        raise InvalidInput("docs must be a list of strings or of documents", field="docs")
    if not docs:
        raise InvalidInput("docs is empty: a version needs at least one new document", field="docs")
    out = []
    for i, d in enumerate(docs):
        doc_id, text, meta = _doc(d, i)
        out.append({"id": doc_id, "text": text, "metadata": meta})
    return out


def _vector_json(value: Any, what: str) -> Any:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not a numeric array: {exc}", field=what) from None
    return arr.tolist()


class IndexClient:
    """What `Client("http://…").indexes` is: the same methods as `LocalIndexes`, over `/api/v1/indexes`."""

    def __init__(self, transport: HttpTransport, client: Any = None) -> None:
        self.transport = transport
        self._client = client

    def __repr__(self) -> str:
        return f"IndexClient({self.transport.base_url!r})"

    def _path(self, name: str, suffix: str = "") -> str:
        return f"{_PATH}/{path_param(check_name(name, 'name'))}{suffix}"

    def list(self) -> builtins.list[IndexInfo]:
        return _INFOS.validate_json(self.transport.request("GET", _PATH).content)

    def get(self, name: str) -> IndexInfo:
        return IndexInfo(**self.transport.request("GET", self._path(name)).json())

    def versions(self, name: str) -> builtins.list[IndexVersion]:
        return _VERSIONS.validate_json(self.transport.request("GET", self._path(name, "/versions")).content)

    def version(self, name: str, version: int | str | None = None) -> IndexVersion:
        number = _check_version(version)
        suffix = f"/versions/{'latest' if number is None else number}"
        return IndexVersion(**self.transport.request("GET", self._path(name, suffix)).json())

    def search(self, name: str, query: str | Any, k: int = 4, version: int | str | None = None
               ) -> builtins.list[Hit]:
        body: dict[str, Any] = {"k": k, "version": _check_version(version)}
        if isinstance(query, str):
            body["text"] = query
        else:
            body["vector"] = _vector_json(query, "vector")
        return _HITS.validate_json(self.transport.request("POST", self._path(name, "/search"), json=body).content)

    def add(self, name: str, docs: Sequence[Any], vectors: Any = None, *, dim: int | None = None,
            metric: str | None = None, embedder: str | None = None) -> IndexVersion:
        body = {"documents": _docs_json(docs), "vectors": None if vectors is None else _vector_json(vectors, "vectors"),
                "dim": dim, "metric": _check_metric(metric), "embedder": _check_embedder_name(embedder)}
        response = self.transport.request("POST", self._path(name, "/documents"), json=body)
        return IndexVersion(**response.json())

    def delete(self, name: str, ids: Sequence[str]) -> IndexVersion:
        if isinstance(ids, str) or not isinstance(ids, Sequence) or not ids:
            raise InvalidInput("ids must be a non-empty list of ids", field="ids")
        response = self.transport.request("POST", self._path(name, "/deletions"), json={"ids": list(ids)})
        return IndexVersion(**response.json())

    def open(self, name: str, **kwargs: Any) -> RemoteVectorIndex:
        return RemoteVectorIndex(name, client=self._client, indexes=self, **kwargs)


class RemoteVectorIndex:
    """`VectorIndex` against an `arsenale server`: the same constructor and public methods, the same errors.

    With an `embedder`, texts are embedded here and travel as vectors (the index records the embedder's name);
    without one, the server embeds with the default hashing embedder, as the local index would. Inside
    `ars.trace(...)`, `search` records the same "retrieval" span.
    """

    def __init__(self, name: str, *, embedder: Embedder | None = None, dim: int | None = None,
                 metric: str | None = None, client: Any = None, indexes: IndexClient | None = None,
                 backend: str | None = None, dsn: str | None = None) -> None:
        self.name = check_name(name, "name")
        if backend not in (None, "embedded") or dsn is not None:
            raise InvalidInput("against an arsenale server, the server chooses where searches run: leave backend "
                               "and dsn unset", field="backend")
        if metric is not None:
            _check_metric(metric)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65_536):
            raise InvalidInput("dim must be an integer between 1 and 65536", field="dim")
        if embedder is not None and not callable(embedder):
            raise InvalidInput("embedder must be a callable list[str] -> array (n, dim)", field="embedder")
        self.embedder, self.dim, self.metric = embedder, dim, metric
        if indexes is None:
            if client is None:
                from arsenale.tracking.fluent import get_client

                client = get_client()
            indexes = client.indexes
            if not isinstance(indexes, IndexClient):
                raise InvalidInput(f"RemoteVectorIndex needs an arsenale server, not {client.uri}", field="client")
        self._indexes = indexes

    def __repr__(self) -> str:
        return f"RemoteVectorIndex({self.name!r}, dim={self.dim!r}, metric={self.metric!r}, " \
               f"server={self._indexes.transport.base_url!r})"

    def _embedder_name(self) -> str | None:
        if self.embedder is None:
            return None
        return (getattr(self.embedder, "__name__", None) or repr(self.embedder))[:MAX_EMBEDDER_NAME]

    def add(self, docs: Sequence[Any], *, vectors: Any = None) -> IndexVersion:
        """A new version: the latest one's rows plus `docs` (see `VectorIndex.add`)."""
        body = _docs_json(docs)
        if vectors is None and self.embedder is not None:
            vectors = self.embedder([d["text"] for d in body])
        return self._indexes.add(self.name, body, vectors, dim=self.dim, metric=self.metric,
                                 embedder=self._embedder_name())

    def delete(self, ids: Sequence[str]) -> IndexVersion:
        """A new version without `ids`; every id must be in the latest version."""
        return self._indexes.delete(self.name, ids)

    def versions(self) -> builtins.list[IndexVersion]:
        """Oldest first; [] for an index not written yet, as `VectorIndex.versions`."""
        try:
            return self._indexes.versions(self.name)
        except NotFound as exc:
            if exc.field != "name":
                raise
            return []

    def get(self, version: int | None = None) -> IndexVersion:
        try:
            return self._indexes.version(self.name, version)
        except NotFound as exc:
            if exc.field != "name":
                raise
            raise NotFound(f"vector index {self.name!r} has no versions yet", field="version") from None

    def search(self, query: str | Any, k: int = 4, version: int | None = None) -> builtins.list[Hit]:
        """The `k` nearest rows of `version` (the latest by default), best first; see `VectorIndex.search`."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be an integer between 1 and {MAX_K}", field="k")
        if isinstance(query, str) and self.embedder is not None:
            query = np.asarray(self.embedder([query]), dtype=np.float64).reshape(-1)
        from arsenale.llm import tracer

        if tracer._current.get() is None:
            return self._indexes.search(self.name, query, k, version)
        with tracer.span("retrieval", kind="retrieval") as s:
            s.set_attributes({"retrieval.index": self.name, "retrieval.k": k})
            hits = self._indexes.search(self.name, query, k, version)
            s.set_attributes({"retrieval.index_version": hits[0].version if hits else version,
                              "retrieval.chunk_ids": [h.id for h in hits],
                              "retrieval.scores": [round(h.score, 6) for h in hits]})
            return hits


def open_index(name: str, *, client: Any = None, **kwargs: Any) -> VectorIndex | RemoteVectorIndex:
    """The index for `client` (default `ars.get_client()`): a `VectorIndex` on a local store, a
    `RemoteVectorIndex` against a server. `kwargs` are `VectorIndex`'s (embedder, dim, metric)."""
    if client is None:
        from arsenale.tracking.fluent import get_client

        client = get_client()
    if str(client.uri).startswith(("http://", "https://")):
        return RemoteVectorIndex(name, client=client, indexes=client.indexes, **kwargs)
    if kwargs.get("metric", "") is None:
        kwargs.pop("metric")
    return VectorIndex(name, client=client, **kwargs)

