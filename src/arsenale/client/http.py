"""`HttpTransport`: one keep-alive HTTP connection pool to an `arsenale server`, and the error mapping.

Every failure comes back as the `ArsenaleError` subclass the embedded store would have raised:
error bodies go through `ArsenaleError.from_dict`; an unreachable or overloaded server becomes
`BackendUnavailable` naming the URL.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pydantic_core

from arsenale.errors import ArsenaleError, BackendUnavailable, InvalidInput, NotFound
from arsenale.security.projects import PROJECT_HEADER, header_value

ACTOR_HEADER = "X-Arsenale-Actor"
JSON = "application/json"
_UNAVAILABLE = {502, 503, 504}


def segment(value: str) -> str:
    """One URL path segment, with '/', '.' and every reserved character escaped (no dot-segment surprises)."""
    return quote(value, safe="").replace(".", "%2E")


def path_param(value: str) -> str:
    """A multi-segment path (an artifact path), each segment escaped."""
    return "/".join(segment(part) for part in value.split("/"))


def to_json(value: Any) -> bytes:
    """JSON with NaN and infinities as the strings "NaN", "Infinity", "-Infinity"."""
    return pydantic_core.to_json(value, inf_nan_mode="strings")


def _name_project(request: httpx.Request) -> None:
    """Every request names the project the caller works in (`arsenale.project(…)`, ARSENALE_PROJECT), if any."""
    project = header_value()
    if project is not None:
        request.headers[PROJECT_HEADER] = project


class HttpTransport:
    """Requests to one server, sharing connections; the one place that knows about HTTP."""

    def __init__(self, base_url: str, timeout: float = 60.0, actor: str | None = None,
                 token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": JSON}
        if actor:
            headers[ACTOR_HEADER] = actor
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # retries=1 retries connection set-up only. TCP_NODELAY because the request head and body leave in
        # two writes: with Nagle on, the body waits for the server's delayed ACK (~40 ms per POST).
        transport = httpx.HTTPTransport(retries=1, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers, transport=transport,
                                  event_hooks={"request": [_name_project]})

    def __repr__(self) -> str:
        return f"HttpTransport({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                content: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send one request; a non-2xx answer raises its `ArsenaleError`."""
        hdrs = dict(headers or {})
        if json is not None:
            content = to_json(json)
            hdrs["Content-Type"] = JSON
        try:
            response = self._http.request(method, path, params=_clean(params), content=content, headers=hdrs)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc
        if not response.is_success:
            raise self.error(response)
        return response

    @contextmanager
    def stream(self, method: str, path: str, *,
               params: Mapping[str, Any] | None = None) -> Iterator[httpx.Response]:
        """A streamed response (large downloads); a non-2xx answer raises its `ArsenaleError`."""
        try:
            with self._http.stream(method, path, params=_clean(params)) as response:
                if not response.is_success:
                    response.read()
                    raise self.error(response)
                yield response
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: httpx.TransportError) -> BackendUnavailable:
        what = "timed out talking to" if isinstance(exc, httpx.TimeoutException) else "cannot reach"
        reason = str(exc) or type(exc).__name__
        return BackendUnavailable(f"{what} the Arsenale server at {self.base_url}: {reason}")

    def error(self, response: httpx.Response) -> ArsenaleError:
        """The exception an error response stands for."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error_code" in body:
            return ArsenaleError.from_dict(body)
        where = f"{response.request.method} {response.request.url}"
        text = response.text[:200].strip()
        status = response.status_code
        if status in _UNAVAILABLE:
            return BackendUnavailable(f"the Arsenale server at {self.base_url} is unavailable "
                                      f"(HTTP {status} for {where}) {text}".rstrip())
        if status == 404:
            return NotFound(f"{where} answered 404: {text}")
        if status in (400, 413, 422):
            return InvalidInput(f"{where} answered {status}: {text}")
        return ArsenaleError(f"{where} answered {status}: {text}")


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the ones left unset."""
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}
