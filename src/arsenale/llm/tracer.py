"""The tracing SDK: `ars.trace` and `ars.span`, recorded in memory and written by a background thread.

    with ars.trace("answer", session="user-42", user="u-42") as t:
        with ars.span("retrieval", kind="retriever") as s:
            s.set_attribute("k", 4)
        with t.span("generation", kind="llm") as g:
            g.set_usage(model="gpt-4o", input_tokens=812, output_tokens=64)
        t.score("groundedness", 0.9)

Spans nest through a context variable (threads and asyncio tasks each see their own current span). A finished
span is appended to an in-memory buffer, which costs microseconds; a background thread writes the buffer in
batches (`TraceAPI.ingest`: one transaction locally, one request to a server) when it holds `FLUSH_SPANS`
spans, every `FLUSH_SECONDS`, when a root span ends, and at interpreter exit. `flush()` waits for it. An
exception inside a span marks it ERROR with the message, records an `exception` event, and propagates.
A failed write is retried at the next flush and reported by `flush()`, never dropped silently.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from arsenale.security import projects
from arsenale.security.projects import ProjectScope, use_scope

__all__ = ["SpanHandle", "flush", "span", "trace"]

FLUSH_SPANS = 1000
FLUSH_SECONDS = 1.0
COALESCE_SECONDS = 0.1  # after a root span ends, the writer waits this long for more before writing
IDLE_EXIT_FLUSHES = 30  # an idle writer thread ends after this many empty rounds
BATCH_SPANS = 1000  # spans per ingest call (one transaction, or one request to a server)
MAX_PENDING = 200_000  # past this the caller's thread writes (back-pressure) rather than grow without bound

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("arsenale.llm.tracer")

_current: contextvars.ContextVar[SpanHandle | None] = contextvars.ContextVar("arsenale_span", default=None)


def _new_id(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


class _Writer:
    """One per trace store: a buffer of finished spans and pending scores, drained by a daemon thread."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        # each with the project scope it was made in: the thread that writes it stands in none
        self._spans: list[tuple[ProjectScope, dict[str, Any]]] = []
        self._scores: list[tuple[ProjectScope, dict[str, Any]]] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.error: BaseException | None = None

    def add_span(self, row: dict[str, Any], root: bool) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's thread and lock do not exist here
            self._reset()
        with self._lock:
            self._spans.append((projects.current(), row))
            n = len(self._spans)
        if n >= MAX_PENDING:
            self.write()
            return
        if root or n >= FLUSH_SPANS:
            self._wake.set()
        if self._thread is None:
            self._start()

    def add_score(self, score: dict[str, Any]) -> None:
        with self._lock:
            self._scores.append((projects.current(), score))
        self._wake.set()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="arsenale-traces", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        idle = 0
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            with self._lock:
                if not self._spans and not self._scores:
                    idle += 1
                    if idle >= IDLE_EXIT_FLUSHES:  # the next span starts a new thread
                        self._thread = None
                        return
                    continue
                pending = len(self._spans)
            idle = 0
            if pending < FLUSH_SPANS:  # a root span just ended: let a few more arrive, one transaction for all
                time.sleep(COALESCE_SECONDS)
            try:
                self.write()
            except Exception:  # the batch stays queued for the next round; `flush()` raises it to the caller
                log.exception("writing %d buffered spans failed; will retry", len(self._spans))
                time.sleep(FLUSH_SECONDS)

    def write(self) -> None:
        """Write everything buffered now; on failure put it back (in front) and remember the error."""
        with self._write_lock:
            with self._lock:
                spans, self._spans = self._spans, []
                scores, self._scores = self._scores, []
            sent_scores = 0
            try:
                for scope, rows in _by_scope(spans).items():
                    with use_scope(scope):
                        for i in range(0, len(rows), BATCH_SPANS):
                            self.api.ingest(rows[i:i + BATCH_SPANS])
                for scope, score in scores:  # after the spans: a score needs its trace stored
                    with use_scope(scope):
                        self.api.score(**score)
                    sent_scores += 1
            except BaseException as exc:
                with self._lock:  # re-writing stored spans is harmless (idempotent): the whole batch goes back
                    self._spans[:0] = spans
                    self._scores[:0] = scores[sent_scores:]
                self.error = exc
                raise
            self.error = None

    def flush(self) -> None:
        self.write()


def _by_scope(spans: list[tuple[ProjectScope, dict[str, Any]]]) -> dict[ProjectScope, list[dict[str, Any]]]:
    """Spans grouped by the project scope they were made in (almost always one group), in order."""
    groups: dict[ProjectScope, list[dict[str, Any]]] = {}
    for scope, row in spans:
        groups.setdefault(scope, []).append(row)
    return groups


_writers: weakref.WeakKeyDictionary[Any, _Writer] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def _writer(api: Any) -> _Writer:
    with _writers_lock:
        w = _writers.get(api)
        if w is None:
            w = _writers[api] = _Writer(api)
        return w


def flush(client: Any = None) -> None:
    """Write every buffered span and score now (of `client`'s store, or of every store); raises the write's
    error if it fails (the spans stay buffered for the next try)."""
    with _writers_lock:
        writers = [_writers[client.traces]] if client is not None and client.traces in _writers else (
            list(_writers.values()) if client is None else [])
    for w in writers:
        w.flush()


@atexit.register
def _flush_at_exit() -> None:
    for w in list(_writers.values()):
        try:
            w.write()
        except Exception:  # the process is ending: the log is all that is left to tell
            log.exception("could not write the buffered spans at exit")


def _default_client() -> Any:
    from arsenale.tracking.fluent import get_client

    return get_client()


class SpanHandle:
    """A span being recorded: set attributes, events and token usage; `with` it, or call it on a function."""

    def __init__(self, name: str, *, kind: str = "internal", attributes: Mapping[str, Any] | None = None,
                 session: str | None = None, user: str | None = None, prompt: str | None = None,
                 client: Any = None, root: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.attributes: dict[str, Any] = dict(attributes or {})
        if session is not None:
            self.attributes["session.id"] = session
        if user is not None:
            self.attributes["user.id"] = user
        if prompt is not None:
            self.attributes["arsenale.prompt"] = prompt
        self._client = client
        self._force_root = root
        self.events: list[dict[str, Any]] = []
        self.status = "UNSET"
        self.status_message: str | None = None
        self.trace_id = ""
        self.span_id = ""
        self.parent_span_id: str | None = None
        self.start_ns = 0
        self._token: contextvars.Token[SpanHandle | None] | None = None
        self._writer: _Writer | None = None
        self._usage: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SpanHandle({self.name!r}, trace_id={self.trace_id!r}, span_id={self.span_id!r})"

    # ---- recording ---------------------------------------------------------------------------------------

    def set_attribute(self, key: str, value: Any) -> SpanHandle:
        self.attributes[key] = value
        return self

    def set_attributes(self, attributes: Mapping[str, Any]) -> SpanHandle:
        self.attributes.update(attributes)
        return self

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> SpanHandle:
        self.events.append({"name": name, "time_ns": time.time_ns(), "attributes": dict(attributes or {})})
        return self

    def set_usage(self, model: str | None = None, input_tokens: int | None = None,
                  output_tokens: int | None = None, cost: float | None = None) -> SpanHandle:
        """The model called and the tokens it used (GenAI attribute names); `cost` overrides the price table."""
        if model is not None:
            self.attributes["gen_ai.request.model"] = model
        if input_tokens is not None:
            self.attributes["gen_ai.usage.input_tokens"] = input_tokens
        if output_tokens is not None:
            self.attributes["gen_ai.usage.output_tokens"] = output_tokens
        if cost is not None:
            self._usage["cost"] = cost
        return self

    def set_status(self, status: str, message: str | None = None) -> SpanHandle:
        self.status, self.status_message = status.upper(), message
        return self

    def span(self, name: str, *, kind: str = "internal", attributes: Mapping[str, Any] | None = None) -> SpanHandle:
        """A child of this span (whatever span is current when it starts)."""
        child = SpanHandle(name, kind=kind, attributes=attributes, client=self._client)
        child._parent = self
        return child

    def score(self, name: str, value: float | None = None, comment: str | None = None,
              source: str = "auto") -> None:
        """A score on this span's trace, written after its spans."""
        from arsenale.llm.tracing import check_score

        check_score(name, value, comment, source)
        if self._writer is None:
            raise RuntimeError("score() needs a started span: call it inside the `with`")
        self._writer.add_score({"trace_id": self.trace_id, "name": name, "value": value, "comment": comment,
                                "source": source})

    # ---- lifecycle ---------------------------------------------------------------------------------------

    _parent: SpanHandle | None = None

    def __enter__(self) -> Self:
        parent = None if self._force_root else (self._parent or _current.get())
        if parent is not None:
            self.trace_id, self.parent_span_id = parent.trace_id, parent.span_id
            self._writer = parent._writer
        else:
            self.trace_id = _new_id(16)
            self._writer = _writer((self._client or _default_client()).traces)
        self.span_id = _new_id(8)
        self.start_ns = time.time_ns()
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        end_ns = time.time_ns()
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # exited in another context than it was entered in
                _current.set(None)
            self._token = None
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.status = "ERROR"
            self.status_message = f"{type(exc).__name__}: {exc}"
            self.events.append({"name": "exception", "time_ns": end_ns, "attributes": {
                "exception.type": type(exc).__name__, "exception.message": str(exc)}})
        elif self.status == "UNSET":
            self.status = "OK"
        assert self._writer is not None
        self._writer.add_span({
            "trace_id": self.trace_id, "span_id": self.span_id, "parent_span_id": self.parent_span_id,
            "name": self.name, "kind": self.kind, "start_ns": self.start_ns, "end_ns": end_ns,
            "status": self.status, "status_message": self.status_message, "attributes": self.attributes,
            "events": self.events, "cost": self._usage.get("cost")}, root=self.parent_span_id is None)

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of `fn` is a fresh span of this name."""
        template = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fresh = SpanHandle(template.name, kind=template.kind, attributes=template.attributes,
                               client=template._client, root=template._force_root)
            with fresh:
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def trace(name: str, *, session: str | None = None, user: str | None = None,
          attributes: Mapping[str, Any] | None = None, prompt: str | None = None, client: Any = None,
          kind: str = "internal") -> SpanHandle:
    """A new trace: its root span. `client` defaults to the one for the current settings (`ars.get_client()`)."""
    return SpanHandle(name, kind=kind, attributes=attributes, session=session, user=user, prompt=prompt,
                      client=client, root=True)


def span(name: str, *, kind: str = "internal", attributes: Mapping[str, Any] | None = None,
         client: Any = None) -> SpanHandle:
    """A span inside the current one (a new trace when there is none)."""
    return SpanHandle(name, kind=kind, attributes=attributes, client=client)
