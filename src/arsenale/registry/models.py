"""Registry schemas: registered models, versions, aliases, stages, history, lineage, diffs."""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput
from arsenale.tracking.models import check_name


class Schema(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class Stage(str, Enum):
    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, value: Any) -> Stage:
        if isinstance(value, Stage):
            return value
        if isinstance(value, str):
            for s in cls:
                if s.value.lower() == value.strip().lower():
                    return s
        raise InvalidInput(f"stage must be one of None, Staging, Production, Archived; got {value!r}",
                           field="stage")


class ModelFile(Schema):
    path: str
    digest: str
    size: int


class RegisteredModel(Schema):
    name: str
    project: str = "default"
    description: str | None = None
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)
    latest_version: int | None = None
    stages: dict[str, int] = Field(default_factory=dict, description="the newest version in each stage")


class ModelVersion(Schema):
    name: str
    version: int
    run_id: str | None = None
    source: str
    status: str
    stage: Stage
    description: str | None = None
    flavor: str
    flavor_meta: dict[str, Any]
    files: list[ModelFile]
    contract: dict[str, Any]
    created_by: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class ModelEvent(Schema):
    id: int
    name: str
    kind: str
    version: int | None = None
    alias: str | None = None
    from_version: int | None = None
    from_stage: str | None = None
    to_stage: str | None = None
    actor: str
    reason: str | None = None
    timestamp: int


class Lineage(Schema):
    """model version → run → data → code and environment."""

    model: str
    version: int
    source: str
    run: dict[str, Any] | None = None
    experiment: dict[str, Any] | None = None
    data: list[dict[str, Any]] = Field(default_factory=list)
    code: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)


class VersionDiff(Schema):
    model: str
    a: int
    b: int
    params: dict[str, list[str | None]] = Field(default_factory=dict)
    metrics: dict[str, list[float | None]] = Field(default_factory=dict)
    data: dict[str, list[Any]] = Field(default_factory=dict)
    contract: dict[str, Any] = Field(default_factory=dict)
    flavor: list[str] = Field(default_factory=list)


_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
RESERVED_ALIASES = frozenset({"latest", "none", "staging", "production", "archived"})


def check_model_name(name: Any) -> str:
    check_name(name, "name")
    if "/" in name or "@" in name or name != name.strip():
        raise InvalidInput(f"model name {name!r} must not contain '/' or '@' or surrounding spaces", field="name")
    return str(name)


def check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise InvalidInput(f"alias {alias!r} must start with a lowercase letter and hold only lowercase letters, "
                           f"digits, '-' and '_' (at most 64)", field="alias")
    if alias in RESERVED_ALIASES or re.fullmatch(r"v\d+", alias):
        raise InvalidInput(f"alias {alias!r} is reserved (it reads as a stage or a version)", field="alias")
    return alias


def check_version(version: Any) -> int:
    if isinstance(version, bool):
        raise InvalidInput(f"version must be a positive integer, got {version!r}", field="version")
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise InvalidInput(f"version must be a positive integer, got {version!r}", field="version") from None
    if v < 1 or v > 2**31 - 1 or (isinstance(version, float) and not version.is_integer()):
        raise InvalidInput(f"version must be a positive integer, got {version!r}", field="version")
    return v
