"""Feature-store records: stored definitions and materializations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from arsenale.features.definitions import Definition, from_spec

KINDS = ("entity", "view", "on_demand", "service")
Kind = Literal["entity", "view", "on_demand", "service"]


class DefinitionInfo(BaseModel):
    """One stored version of a definition. `created` is False when `apply` found an identical one."""

    kind: Kind
    name: str
    version: int
    fingerprint: str
    spec: dict[str, Any]
    creation_time: int
    created_by: str
    created: bool = False

    def definition(self) -> Definition:
        return from_spec(self.kind, self.spec)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Materialization(BaseModel):
    """One run of `materialize` for one view version: the range (ms since the epoch), rows written, the
    source data it read (`dataset:name@version` or a path), and how it ended."""

    id: int
    view: str
    version: int
    online_store: str
    start_time: int | None
    end_time: int
    rows: int
    source: str
    status: Literal["running", "succeeded", "failed"]
    error: str | None
    started: int
    finished: int | None
    created_by: str
