"""Vector indexes over HTTP, under /api/v1/indexes: what `client.indexes` (and `RemoteVectorIndex`) does.

    GET  /indexes                           every index: name, dim, metric, embedder, latest version, count
    GET  /indexes/{name}                    one index
    GET  /indexes/{name}/versions           its versions, oldest first
    GET  /indexes/{name}/versions/{v}       one version (a number or `latest`)
    POST /indexes/{name}/search             {"vector": [...]} or {"text": "..."}, "k", "version" → hits, best first
    POST /indexes/{name}/documents          {"documents": [{id, text, metadata}], "vectors"?, "dim"?, "metric"?,
                                            "embedder"?} → the new version (201)
    POST /indexes/{name}/deletions          {"ids": [...]} → the new version without them (201)

A text is embedded on the server only when the index was written with an embedder the server can run (the
default hashing embedder; the local sentence encoder when the `embeddings` extra is installed); for any other
the answer is a 400 asking for a vector (the server cannot run the caller's model). Names may
hold '/' (they are data, never paths): clients send them percent-encoded. Bodies are bounded by the server's
JSON limit (413 beyond it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.client.indexes import IndexInfo, LocalIndexes
from arsenale.errors import InvalidInput
from arsenale.llm.vectors import MAX_K, Hit, IndexVersion
from arsenale.server.routers import API_PREFIX, render

router = APIRouter(prefix=f"{API_PREFIX}/indexes", tags=["indexes"])


def _indexes(request: Request) -> LocalIndexes:
    return request.app.state.client.indexes  # type: ignore[no-any-return]


Indexes = Annotated[LocalIndexes, Depends(_indexes)]


class Search(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector: list[float] | None = Field(None, description="the query vector (always accepted)")
    text: str | None = Field(None, description="a query text, for indexes the server can embed")
    k: int = Field(4, description=f"how many hits, 1 to {MAX_K}")
    version: int | None = Field(None, description="the index version (the latest by default)")


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    text: str
    metadata: dict[str, Any] | None = None


class AddDocuments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[Document] = Field(description="an id given again replaces its row")
    vectors: list[list[float]] | None = Field(None, description="one per document; without them the server "
                                                               "embeds the texts (with an embedder it can run)")
    dim: int | None = Field(None, description="fixed when the index is created")
    metric: str | None = Field(None, description="cosine, dot or l2; fixed when the index is created")
    embedder: str | None = Field(None, description="the name of the embedder that made the vectors; none "
                                                   "means the default hashing embedder")


class Delete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str]


# Routes with a suffix come first: a name may hold '/', and `{name:path}` would otherwise swallow the suffix.


@router.get("", response_model=list[IndexInfo])
def list_indexes(indexes: Indexes) -> Response:
    return render(indexes.list())


@router.get("/{name:path}/versions/{version}", response_model=IndexVersion)
def get_version(name: str, version: str, indexes: Indexes) -> Response:
    return render(indexes.version(name, version))


@router.get("/{name:path}/versions", response_model=list[IndexVersion])
def versions(name: str, indexes: Indexes) -> Response:
    return render(indexes.versions(name))


@router.post("/{name:path}/search", response_model=list[Hit])
def search(name: str, body: Search, indexes: Indexes) -> Response:
    if (body.vector is None) == (body.text is None):
        raise InvalidInput('give exactly one of "vector" and "text"', field="vector")
    query: Any = body.text if body.text is not None else body.vector
    return render(indexes.search(name, query, body.k, body.version))


@router.post("/{name:path}/documents", status_code=201, response_model=IndexVersion)
def add_documents(name: str, body: AddDocuments, indexes: Indexes) -> Response:
    docs = [d.model_dump() for d in body.documents]
    return render(indexes.add(name, docs, body.vectors, dim=body.dim, metric=body.metric,
                              embedder=body.embedder), 201)


@router.post("/{name:path}/deletions", status_code=201, response_model=IndexVersion)
def delete_documents(name: str, body: Delete, indexes: Indexes) -> Response:
    return render(indexes.delete(name, body.ids), 201)


@router.get("/{name:path}", response_model=IndexInfo)
def get_index(name: str, indexes: Indexes) -> Response:
    return render(indexes.get(name))
