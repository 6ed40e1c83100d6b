"""LLM traces in the store: spans shaped like OpenTelemetry's, rolled up per trace, with cost and scores.

    TraceService(engine, actor)
        ingest(spans)            a batch in one transaction; any order, parents may come later or never;
                                 a span id seen twice is replaced (an exporter's retry doubles nothing)
        get(trace_id)            the trace with its spans (orphans flagged) and scores
        search(session=, user=, name=, min_cost=, max_cost=, attributes={k: v}, prompt=, score=, min_score=,
               since=, until=, status=, limit=, page_token=)   newest first, a page at a time
        score(trace_id, name, value, comment=, source="human"|"auto", span_id=)   feedback on a trace
        set_price(model, input_per_million, output_per_million) / prices()
        timeline(since=, bucket=)  cost and latency over time

A span's model and tokens come from explicit fields or from the OpenTelemetry GenAI attributes
(`gen_ai.response.model` / `gen_ai.request.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`);
its cost from an explicit field or from the price table when it is stored. A trace's session, user and prompt
come from the attributes `session.id`, `user.id` and `arsenale.prompt` (the SDK sets them). Attribute values
longer than `MAX_VALUE_CHARS` are cut with a marker, never refused; past `MAX_ATTRIBUTES` the rest are counted
in `arsenale.dropped_attributes`. A span that cannot be read (bad ids, no name) is rejected with its reason
and the others are stored.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field
from sqlalchemy import Engine

from arsenale.errors import InvalidInput, NotFound
from arsenale.security.projects import current
from arsenale.store import traces as sql
from arsenale.store.db import read, write
from arsenale.store.tables import MAX_NAME

__all__ = ["IngestResult", "Price", "Score", "SessionSummary", "Span", "SpanEvent", "Trace", "TraceAPI", "TracePage",
           "TraceService", "check_span", "cost_text", "duration_text", "span_tree"]

MAX_VALUE_CHARS = 16_384
MAX_ATTRIBUTES = 128
MAX_EVENTS = 128
MAX_BATCH = 10_000
MAX_SESSIONS = 1000  # sessions per listing
MAX_LIMIT = 1000
STATUSES = ("UNSET", "OK", "ERROR")
SESSION_KEYS = ("session.id", "arsenale.session", "gen_ai.conversation.id")
USER_KEYS = ("user.id", "enduser.id", "arsenale.user")
PROMPT_KEYS = ("arsenale.prompt",)
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
INPUT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_INT64 = 2**63


# ---- schemas -----------------------------------------------------------------------------------------------


class SpanEvent(BaseModel):
    name: str
    time_ns: int
    attributes: dict[str, Any] = Field(default_factory=dict)


class Span(BaseModel):
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: str = "internal"
    start_ns: int
    end_ns: int | None = None
    status: str = "UNSET"
    status_message: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[SpanEvent] = Field(default_factory=list)
    orphan: bool = False  # its parent is not (yet) among the trace's spans

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6


class Score(BaseModel):
    id: int
    trace_id: str
    span_id: str | None = None
    name: str
    value: float | None = None
    comment: str | None = None
    source: str
    creation_time: int
    created_by: str


class Trace(BaseModel):
    trace_id: str
    project: str = "default"
    name: str | None = None
    session: str | None = None
    user_id: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    status: str
    span_count: int
    input_tokens: int
    output_tokens: int
    cost: float | None = None
    prompt: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    spans: list[Span] = Field(default_factory=list)
    scores: list[Score] = Field(default_factory=list)

    @property
    def duration_ms(self) -> float | None:
        if self.start_ns is None or self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e6


class TracePage(BaseModel):
    traces: list[Trace]
    next_page_token: str | None = None


class SessionSummary(BaseModel):
    """One session's traces at a glance (a conversation, or whatever `session=` groups)."""

    session: str
    traces: int
    users: int
    first_ns: int | None = None
    last_ns: int | None = None
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float | None = None


class Price(BaseModel):
    model: str
    input_per_million: float
    output_per_million: float
    update_time: int
    updated_by: str


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    errors: list[str] = Field(default_factory=list)  # the first few reasons, one per rejected span


class TraceAPI(Protocol):
    def ingest(self, spans: Sequence[Mapping[str, Any]]) -> IngestResult: ...
    def get(self, trace_id: str) -> Trace: ...
    def search(self, *, session: str | None = None, user: str | None = None, name: str | None = None,
               min_cost: float | None = None, max_cost: float | None = None,
               attributes: Mapping[str, Any] | None = None, prompt: str | None = None, score: str | None = None,
               min_score: float | None = None, since: Any = None, until: Any = None, status: str | None = None,
               limit: int = 100, page_token: str | None = None) -> TracePage: ...
    def score(self, trace_id: str, name: str, value: float | None = None, comment: str | None = None,
              source: str = "human", span_id: str | None = None) -> Score: ...
    def set_price(self, model: str, input_per_million: float, output_per_million: float) -> Price: ...
    def prices(self) -> builtins.list[Price]: ...
    def timeline(self, since: Any = "7d", bucket: str = "1h") -> builtins.list[dict[str, Any]]: ...
    def sessions(self, since: Any = "7d", limit: int = 100) -> builtins.list[SessionSummary]: ...


# ---- reading a span as stored -------------------------------------------------------------------------------


def _truncate(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def _value(value: Any) -> Any:
    """An attribute value as stored: scalars as they are (NaN as a string), the rest as JSON, long text cut."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _truncate(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
        items = [_value(v) for v in value[:MAX_ATTRIBUTES]]
        if len(json.dumps(items)) <= MAX_VALUE_CHARS:
            return items
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return _truncate(text)


def _attributes(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where} must be an object of key: value", field=where)
    out: dict[str, Any] = {}
    dropped = 0
    for key, value in raw.items():
        if len(out) >= MAX_ATTRIBUTES:
            dropped += 1
            continue
        out[_truncate(str(key), MAX_NAME)] = _value(value)
    if dropped:
        out["arsenale.dropped_attributes"] = dropped
    return out


def _int(value: Any, where: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _INT64:
        raise InvalidInput(f"{where} must be a non-negative integer, got {value!r:.40}", field=where)
    return value


def _first(attributes: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for k in keys:
        v = attributes.get(k)
        if v is not None and v != "":
            return v
    return None


def check_span(span: Mapping[str, Any], i: int = 0) -> dict[str, Any]:
    """A span (a dict in the shape of `Span`) checked and normalised to a row; InvalidInput naming the field."""
    if not isinstance(span, Mapping):
        raise InvalidInput(f"spans[{i}] must be an object", field=f"spans[{i}]")
    where = f"spans[{i}]"
    trace_id = str(span.get("trace_id") or "").lower()
    span_id = str(span.get("span_id") or "").lower()
    parent = span.get("parent_span_id") or None
    if not _TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        raise InvalidInput(f"{where}.trace_id must be 32 hex digits, not all zero; got {trace_id!r:.40}",
                           field=f"{where}.trace_id")
    if not _SPAN_ID.fullmatch(span_id) or span_id == "0" * 16:
        raise InvalidInput(f"{where}.span_id must be 16 hex digits, not all zero; got {span_id!r:.40}",
                           field=f"{where}.span_id")
    if parent is not None:
        parent = str(parent).lower()
        if not _SPAN_ID.fullmatch(parent):
            raise InvalidInput(f"{where}.parent_span_id must be 16 hex digits; got {parent!r:.40}",
                               field=f"{where}.parent_span_id")
        if parent == "0" * 16:
            parent = None
    name = span.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}.name must be a non-empty string", field=f"{where}.name")
    start = _int(span.get("start_ns"), f"{where}.start_ns")
    end = _int(span.get("end_ns"), f"{where}.end_ns", optional=True)
    assert start is not None
    if end is not None and end < start:
        raise InvalidInput(f"{where}.end_ns is before start_ns", field=f"{where}.end_ns")
    status = str(span.get("status") or "UNSET").upper()
    if status not in STATUSES:
        raise InvalidInput(f"{where}.status must be one of {', '.join(STATUSES)}", field=f"{where}.status")
    attributes = _attributes(span.get("attributes"), f"{where}.attributes")
    raw_events = span.get("events") or []
    if not isinstance(raw_events, Sequence) or isinstance(raw_events, (str, bytes)):
        raise InvalidInput(f"{where}.events must be a list", field=f"{where}.events")
    events = []
    for j, ev in enumerate(raw_events[:MAX_EVENTS]):
        if not isinstance(ev, Mapping) or not isinstance(ev.get("name"), str):
            raise InvalidInput(f"{where}.events[{j}] must be an object with a name", field=f"{where}.events")
        events.append({"name": _truncate(ev["name"], MAX_NAME),
                       "time_ns": _int(ev.get("time_ns", start), f"{where}.events[{j}].time_ns"),
                       "attributes": _attributes(ev.get("attributes"), f"{where}.events[{j}].attributes")})
    if len(raw_events) > MAX_EVENTS:
        attributes["arsenale.dropped_events"] = len(raw_events) - MAX_EVENTS
    model = span.get("model") or _first(attributes, MODEL_KEYS)
    tin = span.get("input_tokens")
    tin = tin if tin is not None else _first(attributes, INPUT_KEYS)
    tout = span.get("output_tokens")
    tout = tout if tout is not None else _first(attributes, OUTPUT_KEYS)
    cost = span.get("cost")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))
                             or not math.isfinite(cost) or cost < 0):
        raise InvalidInput(f"{where}.cost must be a non-negative number", field=f"{where}.cost")
    message = span.get("status_message")
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": _truncate(name, MAX_NAME - 40),
        "kind": str(span.get("kind") or "internal")[:32], "start_ns": start, "end_ns": end, "status": status,
        "status_message": _truncate(str(message)) if message else None,
        "model": _truncate(str(model), MAX_NAME - 40) if model else None,
        "input_tokens": _int(tin, f"{where}.input_tokens", optional=True),
        "output_tokens": _int(tout, f"{where}.output_tokens", optional=True),
        "cost": float(cost) if cost is not None else None,
        "attributes": attributes, "events": events,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _ns(value: Any, field: str) -> int | None:
    """A time as nanoseconds since the epoch: an int (ns), a datetime, ISO-8601, or a duration ago ('1h')."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1e9)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return _ns(datetime.fromisoformat(value), field)
        except ValueError:
            from arsenale.units import parse_duration

            return time.time_ns() - int(parse_duration(value, field=field) * 1e9)
    raise InvalidInput(f"{field} must be a time (ISO-8601, nanoseconds, or a duration ago like 1h)", field=field)


def _spellings(key: str, value: Any) -> list[str]:
    """How `key: value` reads in a stored attribute object (a number also matches its text form)."""
    if isinstance(value, str):
        out = [f"{_dumps(key)}:{_dumps(value)}"]
        try:
            num = float(value)
            if math.isfinite(num):
                out.append(f"{_dumps(key)}:{_dumps(int(num) if num.is_integer() else num)}")
        except ValueError:
            pass
        if value in ("true", "false"):
            out.append(f"{_dumps(key)}:{value}")
        return out
    return [f"{_dumps(key)}:{_dumps(value)}", f"{_dumps(key)}:{_dumps(str(value))}"]


def span_tree(trace: Trace) -> list[tuple[int, Span]]:
    """Spans depth-first, each with its depth; orphans (unknown parent) start their own subtree at depth 0."""
    ids = {s.span_id for s in trace.spans}
    children: dict[str | None, list[Span]] = {}
    for s in trace.spans:
        key = s.parent_span_id if s.parent_span_id in ids and s.parent_span_id != s.span_id else None
        children.setdefault(key, []).append(s)
    out: list[tuple[int, Span]] = []
    seen: set[str] = set()
    tops = sorted(children.get(None, []), key=lambda s: s.parent_span_id is not None)  # roots, then orphans
    stack = [(0, s) for s in reversed(tops)]
    while stack:
        depth, s = stack.pop()
        if s.span_id in seen:
            continue
        seen.add(s.span_id)
        out.append((depth, s))
        stack.extend((depth + 1, c) for c in reversed(children.get(s.span_id, [])))
    out.extend((0, s) for s in trace.spans if s.span_id not in seen)  # cycles: still shown, never lost
    return out


# ---- the service --------------------------------------------------------------------------------------------


def _trace(row: Any, spans: Sequence[Any] = (), scores: Sequence[Any] = ()) -> Trace:
    span_models = [_span(r) for r in spans]
    ids = {s.span_id for s in span_models}
    for s in span_models:
        s.orphan = s.parent_span_id is not None and s.parent_span_id not in ids
    return Trace(trace_id=row.trace_id, project=row.project, name=row.name, session=row.session, user_id=row.user_id,
                 start_ns=row.start_ns, end_ns=row.end_ns, status=row.status, span_count=row.spans,
                 input_tokens=row.input_tokens, output_tokens=row.output_tokens, cost=row.cost, prompt=row.prompt,
                 attributes=json.loads(row.attributes or "{}"), spans=span_models,
                 scores=[Score.model_validate(r, from_attributes=True) for r in scores])


def _span(row: Any) -> Span:
    return Span(trace_id=row.trace_id, span_id=row.span_id, parent_span_id=row.parent_span_id, name=row.name,
                kind=row.kind, start_ns=row.start_ns, end_ns=row.end_ns, status=row.status,
                status_message=row.status_message, model=row.model, input_tokens=row.input_tokens,
                output_tokens=row.output_tokens, cost=row.cost, attributes=json.loads(row.attributes),
                events=[SpanEvent(**e) for e in json.loads(row.events)])


def check_trace_id(trace_id: Any) -> str:
    if not isinstance(trace_id, str) or not _TRACE_ID.fullmatch(trace_id.lower()):
        raise InvalidInput(f"trace_id must be 32 hex digits, got {trace_id!r:.60}", field="trace_id")
    return trace_id.lower()


def check_price(model: Any, input_per_million: Any, output_per_million: Any) -> tuple[str, float, float]:
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_NAME:
        raise InvalidInput(f"model must be a non-empty name of at most {MAX_NAME} characters", field="model")
    for field, v in (("input_per_million", input_per_million), ("output_per_million", output_per_million)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InvalidInput(f"{field} must be a non-negative number, got {v!r:.40}", field=field)
    return model.strip(), float(input_per_million), float(output_per_million)


def check_score(name: Any, value: Any, comment: Any, source: Any) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InvalidInput(f"name must be a non-empty string of at most {MAX_NAME} characters", field="name")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value)):
        raise InvalidInput(f"value must be a finite number, got {value!r:.40}", field="value")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_VALUE_CHARS):
        raise InvalidInput(f"comment must be text of at most {MAX_VALUE_CHARS} characters", field="comment")
    if source not in ("human", "auto"):
        raise InvalidInput("source must be 'human' or 'auto'", field="source")
    if value is None and comment is None:
        raise InvalidInput("a score needs a value or a comment", field="value")


class TraceService:
    """Traces of one store; `actor` signs scores and prices."""

    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor

    def __repr__(self) -> str:
        return f"TraceService({self.engine.url!r})"

    def ingest(self, spans: Sequence[Mapping[str, Any]]) -> IngestResult:
        if isinstance(spans, (str, bytes, Mapping)) or not isinstance(spans, Sequence):
            raise InvalidInput("spans must be a list of span objects", field="spans")
        if len(spans) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} spans per batch, got {len(spans)}", field="spans")
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        errors: list[str] = []
        for i, span in enumerate(spans):
            try:
                row = check_span(span, i)
            except InvalidInput as exc:
                errors.append(exc.message)
                continue
            rows[(row["trace_id"], row["span_id"])] = row  # the last of two copies in one batch wins
        rejected = len(errors)
        for tid in self._store(list(rows.values())) if rows else []:
            n = sum(1 for t, _ in rows if t == tid)
            rejected += n
            errors.append(f"trace {tid} belongs to another project: its {n} span{'s were' if n > 1 else ' was'} "
                          f"not stored")
        return IngestResult(accepted=len(spans) - rejected, rejected=rejected, errors=errors[:20])

    def _store(self, rows: list[dict[str, Any]]) -> list[str]:
        """Store the spans; the ids of the traces refused because they are another project's (a trace is its
        first sender's project's: a confined request never attaches spans to, or changes, another's)."""
        trace_ids = sorted({r["trace_id"] for r in rows})
        identity: dict[str, dict[str, Any]] = {}
        for r in sorted(rows, key=lambda r: r["parent_span_id"] is None):  # roots last: theirs win
            a = r["attributes"]
            ident = identity.setdefault(r["trace_id"], {})
            for field, keys in (("session", SESSION_KEYS), ("user_id", USER_KEYS), ("prompt", PROMPT_KEYS)):
                v = _first(a, keys)
                if v is not None:
                    ident[field] = _truncate(str(v), MAX_NAME - 40)
        with write(self.engine) as conn:
            prices = sql.prices(conn)
            for r in rows:
                if r["cost"] is None and r["model"] in prices and (r["input_tokens"] or r["output_tokens"]):
                    pin, pout = prices[r["model"]]
                    r["cost"] = ((r["input_tokens"] or 0) * pin + (r["output_tokens"] or 0) * pout) / 1e6
                r["attributes"] = _dumps(r["attributes"])
                r["events"] = _dumps(r["events"])
            sql.ensure_traces(conn, trace_ids)
            scope = current()
            refused = sorted(sql.foreign_traces(conn, trace_ids, scope.home)) if scope.confined else []
            if refused:
                trace_ids = [t for t in trace_ids if t not in refused]
                rows = [r for r in rows if r["trace_id"] not in refused]
            if rows:
                sql.replace_spans(conn, rows)
                sql.roll_up(conn, trace_ids, identity)
        return refused

    def get(self, trace_id: str) -> Trace:
        trace_id = check_trace_id(trace_id)
        with read(self.engine) as conn:
            row = sql.get_trace(conn, trace_id)
            if row is None or row.spans == 0:
                raise NotFound(f"no trace {trace_id}", field="trace_id")
            return _trace(row, sql.get_spans(conn, trace_id), sql.get_scores(conn, [trace_id]))

    def search(self, *, session: str | None = None, user: str | None = None, name: str | None = None,
               min_cost: float | None = None, max_cost: float | None = None,
               attributes: Mapping[str, Any] | None = None, prompt: str | None = None, score: str | None = None,
               min_score: float | None = None, since: Any = None, until: Any = None, status: str | None = None,
               limit: int = 100, page_token: str | None = None) -> TracePage:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        for field, v in (("min_cost", min_cost), ("max_cost", max_cost), ("min_score", min_score)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise InvalidInput(f"{field} must be a number", field=field)
        if status is not None and status.upper() not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
        after = None
        if page_token:
            start, _, tid = page_token.partition(":")
            if not start.isdigit() or not _TRACE_ID.fullmatch(tid):
                raise InvalidInput("page_token is not one this server handed out", field="page_token")
            after = (int(start), tid)
        attrs = [(str(k), _spellings(str(k), v)) for k, v in (attributes or {}).items()]
        with read(self.engine) as conn:
            rows = sql.search(conn, session=session, user=user, name=name, min_cost=min_cost, max_cost=max_cost,
                              attributes=attrs, prompt=prompt, score=score, min_score=min_score,
                              since_ns=_ns(since, "since"), until_ns=_ns(until, "until"),
                              status=status.upper() if status else None, after=after, limit=limit + 1)
            page = rows[:limit]
            scores: dict[str, list[Any]] = {}
            for s in sql.get_scores(conn, [r.trace_id for r in page]):
                scores.setdefault(s.trace_id, []).append(s)
        traces = [_trace(r, scores=scores.get(r.trace_id, ())) for r in page]
        token = f"{page[-1].start_ns or 0}:{page[-1].trace_id}" if len(rows) > limit else None
        return TracePage(traces=traces, next_page_token=token)

    def score(self, trace_id: str, name: str, value: float | None = None, comment: str | None = None,
              source: str = "human", span_id: str | None = None) -> Score:
        trace_id = check_trace_id(trace_id)
        check_score(name, value, comment, source)
        if span_id is not None and not (isinstance(span_id, str) and _SPAN_ID.fullmatch(span_id)):
            raise InvalidInput("span_id must be 16 hex digits", field="span_id")
        with write(self.engine) as conn:
            if sql.get_trace(conn, trace_id) is None:
                raise NotFound(f"no trace {trace_id}", field="trace_id")
            row = sql.insert_score(conn, trace_id=trace_id, span_id=span_id, name=name,
                                   value=None if value is None else float(value), comment=comment, source=source,
                                   creation_time=int(time.time() * 1000), created_by=self.actor)
        return Score.model_validate(row, from_attributes=True)

    def set_price(self, model: str, input_per_million: float, output_per_million: float) -> Price:
        model, pin, pout = check_price(model, input_per_million, output_per_million)
        with write(self.engine) as conn:
            row = sql.upsert_price(conn, model=model, input_per_million=pin, output_per_million=pout,
                                   update_time=int(time.time() * 1000), updated_by=self.actor)
        return Price.model_validate(row, from_attributes=True)

    def prices(self) -> builtins.list[Price]:
        with read(self.engine) as conn:
            return [Price.model_validate(r, from_attributes=True) for r in sql.price_rows(conn)]

    def sessions(self, since: Any = "7d", limit: int = 100) -> builtins.list[SessionSummary]:
        """The sessions active since `since`, most recent first: traces, users, errors, tokens and cost."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SESSIONS:
            raise InvalidInput(f"limit must be an integer between 1 and {MAX_SESSIONS}", field="limit")
        since_ns = _ns(since, "since") or 0
        with read(self.engine) as conn:
            rows = sql.sessions(conn, since_ns, limit)
        return [SessionSummary(session=r.session, traces=r.traces, users=r.users, first_ns=r.first_ns,
                               last_ns=r.last_ns, errors=int(r.errors or 0), input_tokens=int(r.input_tokens or 0),
                               output_tokens=int(r.output_tokens or 0), cost=r.cost) for r in rows]

    def timeline(self, since: Any = "7d", bucket: str = "1h") -> builtins.list[dict[str, Any]]:
        """Per time bucket: traces started, their total cost and their median and p95 latency (ms)."""
        from arsenale.units import parse_duration

        width = int(parse_duration(bucket, field="bucket") * 1e9)
        since_ns = _ns(since, "since") or 0
        with read(self.engine) as conn:
            rows = sql.window(conn, since_ns, 100_000)
        buckets: dict[int, list[Any]] = {}
        for start, end, cost in rows:
            buckets.setdefault(start - start % width, []).append((start, end, cost))
        out = []
        for b, items in sorted(buckets.items()):
            lat = sorted((e - s) / 1e6 for s, e, _ in items if e is not None)
            costs = [c for _, _, c in items if c is not None]
            out.append({"start_ns": b, "traces": len(items), "cost": sum(costs) if costs else None,
                        "p50_ms": statistics.median(lat) if lat else None,
                        "p95_ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None})
        return out


def duration_text(start_ns: int | None, end_ns: int | None) -> str:
    """A span's or trace's duration for people: milliseconds up to 10 s, then seconds."""
    if start_ns is None or end_ns is None:
        return "—"
    ms = (end_ns - start_ns) / 1e6
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.2f} s"


def cost_text(value: float | None) -> str:
    """A cost in dollars without trailing zeros; "—" when unknown (no price for the model)."""
    return "—" if value is None else f"${value:.6f}".rstrip("0").rstrip(".") if value else "$0"
