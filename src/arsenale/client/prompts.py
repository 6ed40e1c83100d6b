"""`PromptClient`: the prompt registry of a remote `arsenale server`, the same methods as `PromptService`.

Arguments are checked here first, with the service's messages, so a bad name never becomes part of a URL.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, segment
from arsenale.llm.prompts import (
    Prompt,
    PromptDiff,
    PromptVersion,
    check_label,
    check_prompt_name,
    check_register,
    check_version,
    parse_ref,
    parse_selector,
)

__all__ = ["PromptClient"]

_PATH = "/api/v1/prompts"
_PROMPTS = TypeAdapter(builtins.list[Prompt])
_VERSIONS = TypeAdapter(builtins.list[PromptVersion])


def _prompt_path(name: str, suffix: str = "") -> str:
    return f"{_PATH}/{segment(check_prompt_name(name))}{suffix}"


def _side(value: Any) -> str:
    version, label = parse_selector(value)
    return label if label is not None else "latest" if version is None else str(version)


class PromptClient:
    """What `Client("http://…").prompts` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"PromptClient({self.transport.base_url!r})"

    def register(self, name: str, template: str, *, model: str | None = None,
                 params: Mapping[str, Any] | None = None, description: str | None = None) -> PromptVersion:
        name, template, _, model, stored, description = check_register(name, template, model, params, description)
        body = {"name": name, "template": template, "model": model, "params": stored, "description": description}
        return PromptVersion.model_validate_json(self.transport.request("POST", _PATH, json=body).content)

    def get(self, ref: str, *, version: int | str | None = None, label: str | None = None) -> PromptVersion:
        name, number, label = parse_ref(ref, version, label)
        suffix = f"/labels/{label}" if label is not None else f"/versions/{number or 'latest'}"
        return PromptVersion.model_validate_json(self.transport.request("GET", _prompt_path(name, suffix)).content)

    def get_prompt(self, name: str) -> Prompt:
        return Prompt.model_validate_json(self.transport.request("GET", _prompt_path(name)).content)

    def list(self) -> builtins.list[Prompt]:
        return _PROMPTS.validate_json(self.transport.request("GET", _PATH).content)

    def versions(self, name: str) -> builtins.list[PromptVersion]:
        return _VERSIONS.validate_json(self.transport.request("GET", _prompt_path(name, "/versions")).content)

    def set_label(self, name: str, label: str, version: int, *, reason: str | None = None) -> PromptVersion:
        path = _prompt_path(name, f"/labels/{check_label(label)}")
        body = {"version": check_version(version), "reason": reason}
        return PromptVersion.model_validate_json(self.transport.request("PUT", path, json=body).content)

    def delete_label(self, name: str, label: str) -> None:
        self.transport.request("DELETE", _prompt_path(name, f"/labels/{check_label(label)}"))

    def diff(self, name: str, a: int | str, b: int | str) -> PromptDiff:
        params = {"a": _side(a), "b": _side(b)}
        return PromptDiff.model_validate_json(
            self.transport.request("GET", _prompt_path(name, "/diff"), params=params).content)
