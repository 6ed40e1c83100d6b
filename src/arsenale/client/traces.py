"""`TraceClient`: LLM traces kept by a remote `arsenale server`, the same methods as `TraceService`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport
from arsenale.errors import InvalidInput
from arsenale.llm.tracing import (
    IngestResult,
    Price,
    Score,
    SessionSummary,
    Trace,
    TracePage,
    check_price,
    check_score,
    check_trace_id,
)

__all__ = ["TraceClient"]

_PATH = "/api/v1/traces"
_PRICES = TypeAdapter(builtins.list[Price])
_TIMELINE = TypeAdapter(builtins.list[dict[str, Any]])
_SESSIONS = TypeAdapter(builtins.list[SessionSummary])


def _time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class TraceClient:
    """What `Client("http://…").traces` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"TraceClient({self.transport.base_url!r})"

    def ingest(self, spans: Sequence[Mapping[str, Any]]) -> IngestResult:
        if isinstance(spans, (str, bytes, Mapping)) or not isinstance(spans, Sequence):
            raise InvalidInput("spans must be a list of span objects", field="spans")
        return IngestResult.model_validate_json(
            self.transport.request("POST", f"{_PATH}/spans", json={"spans": list(spans)}).content)

    def get(self, trace_id: str) -> Trace:
        return Trace.model_validate_json(self.transport.request("GET", f"{_PATH}/{check_trace_id(trace_id)}").content)

    def search(self, *, session: str | None = None, user: str | None = None, name: str | None = None,
               min_cost: float | None = None, max_cost: float | None = None,
               attributes: Mapping[str, Any] | None = None, prompt: str | None = None, score: str | None = None,
               min_score: float | None = None, since: Any = None, until: Any = None, status: str | None = None,
               limit: int = 100, page_token: str | None = None) -> TracePage:
        params = {"session": session, "user": user, "name": name, "min_cost": min_cost, "max_cost": max_cost,
                  "attribute": [f"{k}={v}" for k, v in (attributes or {}).items()] or None, "prompt": prompt,
                  "score": score, "min_score": min_score, "since": _time(since), "until": _time(until),
                  "status": status, "limit": limit, "page_token": page_token}
        return TracePage.model_validate_json(self.transport.request("GET", _PATH, params=params).content)

    def score(self, trace_id: str, name: str, value: float | None = None, comment: str | None = None,
              source: str = "human", span_id: str | None = None) -> Score:
        check_score(name, value, comment, source)
        body = {"name": name, "value": value, "comment": comment, "source": source, "span_id": span_id}
        return Score.model_validate_json(self.transport.request(
            "POST", f"{_PATH}/{check_trace_id(trace_id)}/scores", json=body).content)

    def set_price(self, model: str, input_per_million: float, output_per_million: float) -> Price:
        model, pin, pout = check_price(model, input_per_million, output_per_million)
        body = {"input_per_million": pin, "output_per_million": pout}
        return Price.model_validate_json(self.transport.request(
            "PUT", f"{_PATH}/prices/{quote(model, safe='')}", json=body).content)

    def prices(self) -> builtins.list[Price]:
        return _PRICES.validate_json(self.transport.request("GET", f"{_PATH}/prices").content)

    def sessions(self, since: Any = "7d", limit: int = 100) -> builtins.list[SessionSummary]:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidInput("limit must be an integer", field="limit")
        params = {"since": _time(since), "limit": limit}
        return _SESSIONS.validate_json(self.transport.request("GET", f"{_PATH}/sessions", params=params).content)

    def timeline(self, since: Any = "7d", bucket: str = "1h") -> builtins.list[dict[str, Any]]:
        params = {"since": _time(since), "bucket": bucket}
        return _TIMELINE.validate_json(self.transport.request("GET", f"{_PATH}/timeline", params=params).content)
