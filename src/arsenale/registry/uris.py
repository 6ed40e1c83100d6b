"""`models:/name/3`, `models:/name@champion`, `models:/name/Production`: parsed, not guessed."""

from __future__ import annotations

from dataclasses import dataclass

from arsenale.errors import InvalidInput
from arsenale.registry.models import Stage, check_alias, check_model_name, check_version


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None
    stage: Stage | None = None


def parse_model_uri(uri: str) -> ModelRef:
    if not isinstance(uri, str) or not uri.startswith("models:/"):
        raise InvalidInput(f"model URI must look like models:/name/3, models:/name@alias or "
                           f"models:/name/Production; got {uri!r}", field="uri")
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, _, alias = rest.partition("@")
        return ModelRef(check_model_name(name), alias=check_alias(alias))
    name, sep, tail = rest.rpartition("/")
    if not sep or not name or not tail:
        raise InvalidInput(f"model URI {uri!r} needs a version, a stage or an alias", field="uri")
    check_model_name(name)
    if tail.isdigit():
        return ModelRef(name, version=check_version(tail))
    if tail.lower() == "latest":
        return ModelRef(name)
    return ModelRef(name, stage=Stage.parse(tail))
