"""LLMOps: traced prompt-response interactions, the prompt registry and evaluation."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """`ars.llm.eval` (and the other submodules) without importing them first."""
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
