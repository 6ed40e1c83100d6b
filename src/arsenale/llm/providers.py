"""Model providers: one small contract, a callable `prompt -> reply`.

    class ChatModel(Protocol):
        def __call__(self, prompt: str, /, **params) -> str | Completion

A reply is text, or a `Completion` carrying the text and the usage the provider reported (model, tokens,
cost), which evaluation records on the trace. Any function `str -> str` is a model. Shipped here:
`EchoModel` and `DeterministicModel` (tests and demos, no network), and `OpenAICompatible` for any server
speaking the OpenAI chat-completions API (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from arsenale.errors import BackendUnavailable, InvalidInput

__all__ = ["ChatModel", "Completion", "DeterministicModel", "EchoModel", "OpenAICompatible", "reply_text"]


@dataclass(frozen=True)
class Completion:
    """A model's reply with the usage it reported (None where it did not)."""

    text: str
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None


@runtime_checkable
class ChatModel(Protocol):
    def __call__(self, prompt: str, /, **params: Any) -> str | Completion: ...


def reply_text(reply: Any) -> str:
    """The text of a model's reply (a string, or anything with a `.text` string)."""
    if isinstance(reply, str):
        return reply
    text = getattr(reply, "text", None)
    if isinstance(text, str):
        return text
    raise InvalidInput(f"a model must return text or an object with a .text string, got {type(reply).__name__}",
                       field="model")


def _words(text: str) -> int:
    return len(text.split())


class EchoModel:
    """Replies with the prompt itself; usage counts whitespace-separated words as tokens."""

    def __init__(self, model: str = "echo") -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"EchoModel(model={self.model!r})"

    def __call__(self, prompt: str, /, **params: Any) -> Completion:
        return Completion(prompt, self.model, _words(prompt), _words(prompt))


class DeterministicModel:
    """A model for tests and demos: `respond` is a function prompt -> text, or a mapping whose first key
    (in order) found in the prompt gives the reply; `default` answers anything else (None: InvalidInput).
    Usage counts words as tokens. `calls` holds every prompt received."""

    def __init__(self, respond: Callable[[str], str] | Mapping[str, str], *, default: str | None = None,
                 model: str = "deterministic") -> None:
        self.respond = respond
        self.default = default
        self.model = model
        self.calls: list[str] = []

    def __repr__(self) -> str:
        return f"DeterministicModel(model={self.model!r})"

    def __call__(self, prompt: str, /, **params: Any) -> Completion:
        self.calls.append(prompt)
        if callable(self.respond):
            text = self.respond(prompt)
        else:
            found = next((v for k, v in self.respond.items() if k in prompt), self.default)
            if found is None:
                raise InvalidInput(f"no reply configured for the prompt {prompt[:80]!r}", field="prompt")
            text = found
        return Completion(text, self.model, _words(prompt), _words(text))


class OpenAICompatible:
    """A chat model behind an OpenAI-compatible `/chat/completions` endpoint. The API key is read from the
    environment variable `api_key_env` at each call (never stored); `params` (temperature, max_tokens, …)
    are sent with every request, overridden by the call's own."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout: float = 60.0, params: Mapping[str, Any] | None = None) -> None:
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.params = dict(params or {})

    def __repr__(self) -> str:
        return f"OpenAICompatible({self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def __call__(self, prompt: str, /, **params: Any) -> Completion:
        import httpx

        headers = {}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise InvalidInput(f"set the environment variable {self.api_key_env} to the API key",
                                   field="api_key_env")
            headers["Authorization"] = f"Bearer {key}"
        body = {**self.params, **params, "model": self.model, "messages": [{"role": "user", "content": prompt}]}
        url = self.base_url.rstrip("/") + "/chat/completions"
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{url}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise BackendUnavailable(f"{url} answered {response.status_code}: {response.text[:300]}")
        if response.status_code >= 400:
            raise InvalidInput(f"{url} answered {response.status_code}: {response.text[:300]}", field="model")
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendUnavailable(f"{url} sent no chat completion: {response.text[:300]}") from exc
        usage = data.get("usage") or {}
        return Completion(str(text or ""), data.get("model") or self.model, usage.get("prompt_tokens"),
                          usage.get("completion_tokens"))
