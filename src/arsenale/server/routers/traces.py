"""LLM traces over HTTP, under /api/v1/traces: what `client.traces` does.

    POST /traces/spans                 a batch of spans {"spans": [...]}: stored in one transaction; the answer
                                       counts the accepted and the rejected (with their reasons)
    GET  /traces?session=&user=&name=&min_cost=&max_cost=&attribute=k=v&prompt=&score=&min_score=
                 &since=&until=&status=&limit=&page_token=    traces newest first, a page at a time
    GET  /traces/prices                the price table (per million tokens)
    PUT  /traces/prices/{model}        set a model's prices {"input_per_million", "output_per_million"}
    GET  /traces/timeline?since=&bucket=   cost and latency over time
    GET  /traces/{trace_id}            one trace with its spans and scores
    POST /traces/{trace_id}/scores     feedback: {"name", "value", "comment", "source": "human"|"auto"} (201)

OpenTelemetry exporters send to `/v1/traces` instead (`routers/otlp.py`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput
from arsenale.llm.tracing import (
    MAX_SESSIONS,
    IngestResult,
    Price,
    Score,
    SessionSummary,
    Trace,
    TracePage,
    TraceService,
)
from arsenale.server.routers import API_PREFIX, parse_json, render

router = APIRouter(prefix=f"{API_PREFIX}/traces", tags=["traces"])


def _traces(request: Request) -> TraceService:
    return request.app.state.client.traces  # type: ignore[no-any-return]


Traces = Annotated[TraceService, Depends(_traces)]


class SetPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(description="price of a million input tokens")
    output_per_million: float = Field(description="price of a million output tokens")


class AddScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    value: float | None = None
    comment: str | None = None
    source: str = "human"
    span_id: str | None = None


def _attributes(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"attribute must read key=value, got {pair!r:.60}", field="attribute")
        out[key] = value
    return out


@router.post("/spans", response_model=IngestResult)
async def ingest(request: Request, traces: Traces) -> Response:
    from starlette.concurrency import run_in_threadpool

    body = parse_json(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("spans"), list):
        raise InvalidInput('request body must be {"spans": [...]}', field="spans")
    return render(await run_in_threadpool(traces.ingest, body["spans"]))


@router.get("", response_model=TracePage)
def search(traces: Traces, session: str | None = None, user: str | None = None, name: str | None = None,
           min_cost: float | None = None, max_cost: float | None = None,
           attribute: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None, prompt: str | None = None,
           score: str | None = None, min_score: float | None = None, since: str | None = None,
           until: str | None = None, status: str | None = None, limit: int = Query(100, ge=1, le=1000),
           page_token: str | None = None) -> Response:
    return render(traces.search(session=session, user=user, name=name, min_cost=min_cost, max_cost=max_cost,
                                attributes=_attributes(attribute or []), prompt=prompt, score=score,
                                min_score=min_score, since=since, until=until, status=status, limit=limit,
                                page_token=page_token))


@router.get("/prices", response_model=list[Price])
def prices(traces: Traces) -> Response:
    return render(traces.prices())


@router.put("/prices/{model:path}", response_model=Price)
def set_price(model: str, body: SetPrice, traces: Traces) -> Response:
    return render(traces.set_price(model, body.input_per_million, body.output_per_million))


@router.get("/timeline", response_model=list[dict[str, Any]])
def timeline(traces: Traces, since: str = "7d", bucket: str = "1h") -> Response:
    return render(traces.timeline(since=since, bucket=bucket))


@router.get("/sessions", response_model=list[SessionSummary])
def sessions(traces: Traces, since: str = "7d", limit: int = Query(100, ge=1, le=MAX_SESSIONS)) -> Response:
    return render(traces.sessions(since=since, limit=limit))


@router.get("/{trace_id}", response_model=Trace)
def get(trace_id: str, traces: Traces) -> Response:
    return render(traces.get(trace_id))


@router.post("/{trace_id}/scores", status_code=201, response_model=Score)
def add_score(trace_id: str, body: AddScore, traces: Traces) -> Response:
    return render(traces.score(trace_id, body.name, body.value, body.comment, body.source, body.span_id), 201)
