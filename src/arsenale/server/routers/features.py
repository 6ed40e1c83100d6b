"""The feature store over HTTP: apply and read definitions, materialize, read online features.

Materialization and online reads run here, against the server's online store, so a remote client sees
the same online values as serving does; historical retrieval runs in the client (it reads the sources
through the dataset API), so no large frame travels as JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.features.models import DefinitionInfo, Materialization
from arsenale.features.registry import MAX_APPLY, FeatureRegistry
from arsenale.features.store import MAX_ONLINE_ROWS, FeatureStore
from arsenale.server.auth import READ
from arsenale.server.routers import API_PREFIX, render

router = APIRouter(prefix=API_PREFIX, tags=["features"])
Kind = Literal["entity", "view", "on_demand", "service"]


def _registry(request: Request) -> FeatureRegistry:
    return request.app.state.client.features  # type: ignore[no-any-return]


def feature_store(request: Request) -> FeatureStore:
    """One per app, on the app's client and the configured online store."""
    store = getattr(request.app.state, "feature_store", None)
    if store is None:
        store = request.app.state.feature_store = FeatureStore(request.app.state.client)
    return store  # type: ignore[no-any-return]


Registry = Annotated[FeatureRegistry, Depends(_registry)]
Store = Annotated[FeatureStore, Depends(feature_store)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Apply(_Body):
    definitions: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_APPLY,
                                              description="each {'kind': 'entity'|'view'|'on_demand'|'service', …}")


class Materialize(_Body):
    end: str = Field("now", max_length=64, description="'now' or an ISO 8601 time")
    start: str | None = Field(None, max_length=64)
    views: list[str] | None = Field(None, max_length=1000)
    entities: list[dict[str, Any]] | None = Field(None, max_length=100_000)


class Online(_Body):
    features: list[str] | str = Field(description="'view:feature' references, or a feature service's name")
    entity_rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ONLINE_ROWS)
    full_feature_names: bool = False


@router.post("/features/apply", response_model=list[DefinitionInfo])
def apply(body: Apply, registry: Registry, request: Request) -> Response:
    infos = registry.apply(body.definitions)
    store = getattr(request.app.state, "feature_store", None)
    if store is not None:
        store.forget_plans()
    return render(infos)


@router.get("/features/definitions", response_model=list[DefinitionInfo])
def list_definitions(registry: Registry, kind: Kind | None = None) -> Response:
    return render(registry.list(kind))


@router.get("/features/definitions/{kind}/{name}", response_model=DefinitionInfo)
def get_definition(kind: Kind, name: str, registry: Registry,
                   version: Annotated[int | None, Query(ge=1, lt=2**31)] = None) -> Response:
    return render(registry.get(kind, name, version))


@router.get("/features/definitions/{kind}/{name}/versions", response_model=list[DefinitionInfo])
def versions(kind: Kind, name: str, registry: Registry) -> Response:
    return render(registry.versions(kind, name))


@router.get("/features/materializations", response_model=list[Materialization])
def materializations(registry: Registry, view: str | None = None,
                     version: Annotated[int | None, Query(ge=1, lt=2**31)] = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Response:
    return render(registry.materializations(view, version, limit))


@router.post("/features/materialize", response_model=list[Materialization])
def materialize(body: Materialize, store: Store) -> Response:
    return render(store.materialize(body.end, start=body.start, views=body.views, entities=body.entities))


@router.post("/features/online", openapi_extra=READ)
def online(body: Online, store: Store) -> Response:
    return render(store.get_online_features(body.features, body.entity_rows,
                                            full_feature_names=body.full_feature_names))


@router.get("/features/freshness")
def freshness(store: Store) -> Response:
    return render(store.freshness())
