"""`ars.prompts`: the prompt registry of the current settings' store or server (`ars.get_client()`).

    p = ars.prompts.register("support-answer", template="Answer using {{ context }}:\\n{{ question }}",
                             model="gpt-x", params={"temperature": 0.2})
    ars.prompts.set_label("support-answer", "production", version=p.version)
    text = ars.prompts.get("support-answer@production").render(context=hits, question=question)
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arsenale.llm.prompts import Prompt, PromptDiff, PromptVersion

__all__ = ["prompts"]


def _api() -> Any:
    from arsenale.tracking.fluent import get_client

    return get_client().prompts


class Prompts:
    """The methods of `Client().prompts`, bound to `ars.get_client()` at each call."""

    def __repr__(self) -> str:
        return "ars.prompts"

    def register(self, name: str, template: str, *, model: str | None = None,
                 params: Mapping[str, Any] | None = None, description: str | None = None) -> PromptVersion:
        """A new immutable version when the content changed; the existing version for identical content."""
        return _api().register(name, template, model=model, params=params,  # type: ignore[no-any-return]
                               description=description)

    def get(self, ref: str, *, version: int | str | None = None, label: str | None = None) -> PromptVersion:
        """`name` (newest), `name@label`, `name/3`, or `prompts:/…` of those."""
        return _api().get(ref, version=version, label=label)  # type: ignore[no-any-return]

    def list(self) -> builtins.list[Prompt]:
        return _api().list()  # type: ignore[no-any-return]

    def versions(self, name: str) -> builtins.list[PromptVersion]:
        return _api().versions(name)  # type: ignore[no-any-return]

    def set_label(self, name: str, label: str, version: int, *, reason: str | None = None) -> PromptVersion:
        return _api().set_label(name, label, version, reason=reason)  # type: ignore[no-any-return]

    def delete_label(self, name: str, label: str) -> None:
        _api().delete_label(name, label)

    def diff(self, name: str, a: int | str, b: int | str) -> PromptDiff:
        return _api().diff(name, a, b)  # type: ignore[no-any-return]


prompts = Prompts()
