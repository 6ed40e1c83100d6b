"""LLM traces in the dashboard.

    install(app)   adds the pages below; `dashboard.install` calls it.

Pages: `/traces?session=&user=&name=&min_cost=&max_cost=&attribute=k=v&score=&min_score=&status=&since=&page_token=`
the traces newest first with tokens, cost and latency, and cost and latency per hour over the last day;
`/traces/{trace_id}` the span tree with a timeline bar per span, each span's attributes and events, and the
trace's scores. A bad filter comes back as the page with the message beside the form (400).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from arsenale.errors import InvalidInput, NotFound
from arsenale.llm.tracing import cost_text, duration_text, span_tree
from arsenale.server.dashboard import DashboardRoute, render

__all__ = ["install"]

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)

FILTERS = ("session", "user", "name", "min_cost", "max_cost", "attribute", "prompt", "score", "min_score", "status",
           "since")


def _float(raw: str, field: str) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{field} must be a number, got {raw!r:.40}", field=field) from None


def ns_time(ns: int | None) -> str:
    from arsenale.server.dashboard import fmt_time

    return fmt_time(None if ns is None else ns // 1_000_000)


@router.get("/traces")
def traces_page(request: Request, page_token: str = "") -> Response:
    state = {k: request.query_params.get(k, "").strip() for k in FILTERS}
    traces = request.app.state.client.traces
    context: dict[str, Any] = {"state": state, "page": None, "error": None, "timeline": [], "sessions": [],
                               "ms": duration_text,
                               "cost": cost_text, "ns_time": ns_time, "page_token": page_token}
    status = 200
    try:
        attributes = {}
        if state["attribute"]:
            key, sep, value = state["attribute"].partition("=")
            if not sep or not key:
                raise InvalidInput("attribute must read key=value", field="attribute")
            attributes[key] = value
        context["page"] = traces.search(
            session=state["session"] or None, user=state["user"] or None, name=state["name"] or None,
            min_cost=_float(state["min_cost"], "min_cost"), max_cost=_float(state["max_cost"], "max_cost"),
            attributes=attributes, prompt=state["prompt"] or None, score=state["score"] or None,
            min_score=_float(state["min_score"], "min_score"), status=state["status"] or None,
            since=state["since"] or None, limit=50, page_token=page_token or None)
        context["timeline"] = traces.timeline(since="24h", bucket="1h")
        context["sessions"] = traces.sessions(since="24h", limit=20)
    except InvalidInput as exc:
        context["error"] = exc.message
        status = exc.http_status
    return render(request, "traces.html", status, **context)


@router.get("/traces/{trace_id}")
def trace_page(request: Request, trace_id: str) -> Response:
    traces = request.app.state.client.traces
    try:
        trace = traces.get(trace_id)
    except InvalidInput:  # a malformed id names nothing, like an unknown one
        raise NotFound(f"there is no trace {trace_id!r:.80}", field="trace_id") from None
    start = trace.start_ns or 0
    total = max(1, (trace.end_ns or start) - start)
    rows = []
    for depth, span in span_tree(trace):
        left = 100 * (span.start_ns - start) / total
        width = 100 * ((span.end_ns or span.start_ns) - span.start_ns) / total
        rows.append({"depth": depth, "span": span, "left": max(0.0, min(100.0, left)),
                     "width": max(0.3, min(100.0 - max(0.0, left), width))})
    return render(request, "trace.html", trace=trace, rows=rows, ms=duration_text, cost=cost_text, ns_time=ns_time)


def install(app: FastAPI) -> None:
    """Add the trace pages to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)
