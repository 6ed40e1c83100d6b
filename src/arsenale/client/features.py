"""`FeatureRegistryClient`: the feature store's definitions on a remote `arsenale server`, with the same
methods as `FeatureRegistry`, plus the two operations that run on the server's online store."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, segment
from arsenale.errors import InvalidInput
from arsenale.features.definitions import Definition
from arsenale.features.models import KINDS, DefinitionInfo, Materialization
from arsenale.features.registry import as_definition

__all__ = ["FeatureRegistryClient"]

_PATH = "/api/v1/features"
_INFOS = TypeAdapter(builtins.list[DefinitionInfo])
_MATS = TypeAdapter(builtins.list[Materialization])


def _kind(kind: Any) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}; got {kind!r}", field="kind")
    return str(kind)


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput("name must be a non-empty string", field="name")
    return segment(name)


class FeatureRegistryClient:
    """What `Client("http://…").features` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"FeatureRegistryClient({self.transport.base_url!r})"

    def apply(self, definitions: Iterable[Any]) -> builtins.list[DefinitionInfo]:
        if isinstance(definitions, (str, bytes, Mapping)) or not isinstance(definitions, Iterable):
            raise InvalidInput("apply takes a list of definitions", field="definitions")
        body = {"definitions": [as_definition(d).model_dump(mode="json") for d in definitions]}
        return _INFOS.validate_json(self.transport.request("POST", f"{_PATH}/apply", json=body).content)

    def get(self, kind: str, name: str, version: int | None = None) -> DefinitionInfo:
        path = f"{_PATH}/definitions/{_kind(kind)}/{_name(name)}"
        content = self.transport.request("GET", path, params={"version": version}).content
        return DefinitionInfo.model_validate_json(content)

    def definition(self, kind: str, name: str, version: int | None = None) -> Definition:
        return self.get(kind, name, version).definition()

    def list(self, kind: str | None = None) -> builtins.list[DefinitionInfo]:
        params = {"kind": None if kind is None else _kind(kind)}
        return _INFOS.validate_json(self.transport.request("GET", f"{_PATH}/definitions", params=params).content)

    def versions(self, kind: str, name: str) -> builtins.list[DefinitionInfo]:
        path = f"{_PATH}/definitions/{_kind(kind)}/{_name(name)}/versions"
        return _INFOS.validate_json(self.transport.request("GET", path).content)

    def materializations(self, view: str | None = None, version: int | None = None, limit: int = 100
                         ) -> builtins.list[Materialization]:
        params = {"view": view, "version": version, "limit": limit}
        return _MATS.validate_json(self.transport.request("GET", f"{_PATH}/materializations",
                                                          params=params).content)

    def last_materialization(self, view: str, version: int, online_store: str) -> Materialization | None:
        done = [m for m in self.materializations(view, version, 100)
                if m.status == "succeeded" and m.online_store == online_store]
        return done[0] if done else None

    def materialize(self, *, end: str, start: str | None, views: Sequence[str] | None, entities: Any
                    ) -> builtins.list[Materialization]:
        """Run on the server, into the server's online store."""
        if entities is not None and hasattr(entities, "to_dict"):
            entities = entities.to_dict(orient="records")
        body = {"end": end, "start": start, "views": None if views is None else builtins.list(views),
                "entities": entities}
        return _MATS.validate_json(self.transport.request("POST", f"{_PATH}/materialize", json=body).content)

    def online(self, features: Any, entity_rows: Sequence[Mapping[str, Any]], *, full_feature_names: bool = False
               ) -> dict[str, builtins.list[Any]]:
        """Online features, read by the server from its online store."""
        body = {"features": features if isinstance(features, str) else builtins.list(features),
                "entity_rows": [dict(r) for r in entity_rows], "full_feature_names": full_feature_names}
        result: dict[str, builtins.list[Any]] = self.transport.request("POST", f"{_PATH}/online", json=body).json()
        return result

    def freshness(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self.transport.request("GET", f"{_PATH}/freshness").json()
        return result
