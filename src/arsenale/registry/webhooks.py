"""Webhooks for model-registry events: subscribe a URL, get a signed JSON POST per event.

A webhook subscribes to some of `EVENTS` (or `"*"` for all), optionally on one
model only. `WebhookService.emit` never blocks and never raises: it puts the
event on a queue and returns. One background thread per service matches the
event against the active webhooks, records a "pending" delivery for each, POSTs
it, retries connection errors, timeouts, 5xx and 429 with exponential backoff
(`backoff * 2**n` before retry n, up to `max_attempts` tries), and records each
outcome in the delivery row: 2xx is "delivered"; any other answer (4xx, 3xx:
redirects are not followed) or running out of attempts is "failed".

What a receiver gets::

    POST <url>
    Content-Type: application/json
    X-Arsenale-Event: model.alias_set
    X-Arsenale-Delivery: 42
    X-Arsenale-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the webhook secret>

    {"event": "model.alias_set", "model_name": "churn", "timestamp": 1718000000000, "data": {...}}

A receiver checks the signature over the raw body bytes, before parsing them::

    from arsenale.registry.webhooks import verify_signature

    if not verify_signature(secret, request_body, request.headers["X-Arsenale-Signature"]):
        return 401

A retried delivery carries the same delivery id and the same body, so receivers
can drop duplicates by `X-Arsenale-Delivery`. Delivery is at most once per
attempt and in-process: events still queued when the process dies are lost
(their rows, if written, stay "pending").

A webhook's URL (it often carries a token, as chat webhooks do) and its signing
secret are stored encrypted (`arsenale.security.secrets`). The secret is shown
once, by `create`; listings show the URL only as `scheme://host/…`, and logs
never show more. Rows written before encryption are read as they are and
encrypted by `arsenale secrets rotate`.
"""

from __future__ import annotations

import atexit
import builtins
import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, select

from arsenale.background import QueueWorker
from arsenale.errors import InvalidInput, NotFound
from arsenale.security.projects import current, in_scope
from arsenale.security.secrets import EncryptionError, SecretBox
from arsenale.store import webhooks as webhooks_sql
from arsenale.store.db import read, write
from arsenale.store.tables import registered_models
from arsenale.tracking.models import check_name, now_ms

__all__ = ["EVENTS", "Delivery", "Webhook", "WebhookCreated", "WebhookService", "redact_url", "sign",
           "verify_signature"]

log = logging.getLogger("arsenale.registry.webhooks")

EVENTS: tuple[str, ...] = ("model.registered", "model.alias_set", "model.alias_removed", "model.stage_changed",
                           "model.version_updated")
ALL_EVENTS = "*"
MAX_URL = 2000
MAX_SECRET = 256
MAX_DELIVERIES_PAGE = 1000
_ERROR_CHARS = 2000
_ATEXIT_FLUSH_SECONDS = 2.0


class Webhook(BaseModel):
    webhook_id: str
    url: str  # listed as scheme://host/… (the whole URL only in the create response)
    events: list[str]
    model_name: str | None
    active: bool
    creation_time: int


class WebhookCreated(Webhook):
    """The create response: the only time the secret and the whole URL are shown."""

    secret: str


class Delivery(BaseModel):
    id: int
    webhook_id: str
    event: str
    status: str  # "pending" | "delivered" | "failed"
    attempts: int
    response_code: int | None
    last_error: str | None
    timestamp: int


def sign(secret: str, body: bytes) -> str:
    """The `X-Arsenale-Signature` header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """True when `header` (the `X-Arsenale-Signature` value) signs exactly `body` with `secret`.

    For receivers: pass the raw request body bytes, not re-serialised JSON. The
    comparison takes constant time, so it leaks nothing about the right value.
    """
    if not isinstance(header, str) or not isinstance(body, (bytes, bytearray)) or not isinstance(secret, str):
        return False
    return hmac.compare_digest(sign(secret, bytes(body)).encode(), header.strip().encode("utf-8", "replace"))


# ---- validation ------------------------------------------------------------------------------

def _check_url(url: Any) -> str:
    if not isinstance(url, str):
        raise InvalidInput(f"url must be a string, got {type(url).__name__}", field="url")
    if len(url) > MAX_URL:
        raise InvalidInput(f"url is {len(url)} characters long; the limit is {MAX_URL}", field="url")
    if not url or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidInput("url must be non-empty and contain no whitespace or control characters", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a port out of range or not a number
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise InvalidInput(f"url {url[:100]!r} is not a valid URL: {exc}", field="url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"url must start with http:// or https://, got {url[:100]!r}", field="url")
    if not host:
        raise InvalidInput(f"url {url[:100]!r} has no host", field="url")
    return url


def _check_events(events: Any) -> list[str]:
    if isinstance(events, str) or not isinstance(events, (list, tuple)):
        raise InvalidInput('events must be a list of event names, e.g. ["model.registered"] or ["*"]',
                           field="events")
    if not events:
        raise InvalidInput('events must not be empty; use ["*"] for every event', field="events")
    out: list[str] = []
    for e in events:
        if e != ALL_EVENTS and e not in EVENTS:
            raise InvalidInput(f"unknown event {e!r}; known events: {', '.join(EVENTS)} or '*'", field="events")
        if e not in out:
            out.append(e)
    return [ALL_EVENTS] if ALL_EVENTS in out else out


def _check_secret(secret: Any) -> str:
    if secret is None:
        return secrets.token_hex(32)
    if not isinstance(secret, str) or not secret:
        raise InvalidInput("secret must be a non-empty string", field="secret")
    if len(secret) > MAX_SECRET:
        raise InvalidInput(f"secret is {len(secret)} characters long; the limit is {MAX_SECRET}", field="secret")
    return secret


def redact_url(url: str) -> str:
    """`scheme://host[:port]/…`: enough to recognise a receiver, nothing of the path, query or credentials
    that may carry its token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparseable URL)"
    if ":" in host:
        host = f"[{host}]"
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    return origin + ("/…" if parts.path.strip("/") or parts.query or parts.fragment else "")


def _webhook(row: Any, box: SecretBox) -> Webhook:
    try:
        url = redact_url(box.reveal(row.url, what=f"the URL of webhook {row.webhook_id}"))
    except EncryptionError as exc:
        log.warning("webhooks: %s", exc.message)
        url = "(encrypted with another key)"
    return Webhook(webhook_id=row.webhook_id, url=url, events=json.loads(row.events), model_name=row.model_name,
                   active=bool(row.active), creation_time=row.creation_time)


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    """The start of an error response's body, for the delivery record (never the whole of it)."""
    chunk = b""
    for part in response.iter_bytes():
        chunk += part
        if len(chunk) >= limit:
            break
    text = chunk[:limit].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


# ---- projects --------------------------------------------------------------------------------

def _models_in_scope(conn: Connection, names: builtins.set[str]) -> builtins.set[str]:
    """Which of `names` are models the scope sees. A webhook on one model lives in that model's project; a
    webhook on every model spans projects, so only an unconfined caller sees or makes one."""
    if not names:
        return builtins.set()
    return builtins.set(conn.execute(select(registered_models.c.name).where(
        registered_models.c.name.in_(names), in_scope(registered_models.c.project))).scalars())


def _hook_visible(conn: Connection, model_name: str | None) -> bool:
    if not current().confined:
        return True
    return model_name is not None and model_name in _models_in_scope(conn, {model_name})


# ---- the delivery worker's units of work ------------------------------------------------------

@dataclass
class _Event:
    event: str
    model_name: str
    body: bytes


@dataclass
class _Attempt:
    delivery_id: int
    webhook_id: str
    url: str = field(repr=False)
    secret: str = field(repr=False)
    event: str
    body: bytes
    attempts: int = 0




class WebhookService(QueueWorker):
    """Registry webhooks: manage subscriptions, deliver events in the background."""

    def __init__(self, engine: Engine, *, max_attempts: int = 4, backoff: float = 0.5, timeout: float = 5.0,
                 box: SecretBox | None = None) -> None:
        if max_attempts < 1:
            raise InvalidInput("max_attempts must be at least 1", field="max_attempts")
        if backoff < 0 or timeout <= 0:
            raise InvalidInput("backoff must be >= 0 and timeout > 0", field="backoff")
        self.engine = engine
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout = timeout
        self._forked_engine = False
        self._box = box
        self._init_worker_state()
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"WebhookService({self.engine.url!r})"

    @property
    def box(self) -> SecretBox:
        """Encrypts URLs and signing secrets; built on first use from the settings' keys."""
        if self._box is None:
            self._box = SecretBox.from_settings()
        return self._box

    # ---- subscriptions -----------------------------------------------------------------------

    def create(self, url: str, events: builtins.list[str], model_name: str | None = None,
               secret: str | None = None) -> WebhookCreated:
        url = _check_url(url)
        checked_events = _check_events(events)
        if model_name is not None:
            check_name(model_name, "model_name")
        elif current().confined:
            raise InvalidInput("a webhook on every model spans projects; a project's webhook names one of its "
                               "models (model_name)", field="model_name")
        secret = _check_secret(secret)
        hook = WebhookCreated(webhook_id=uuid.uuid4().hex, url=url, events=checked_events, model_name=model_name,
                              active=True, creation_time=now_ms(), secret=secret)
        with write(self.engine) as conn:
            if not _hook_visible(conn, model_name):
                raise NotFound(f"registered model {model_name!r} does not exist", field="model_name")
            webhooks_sql.insert_webhook(conn, webhook_id=hook.webhook_id, url=self.box.encrypt(url),
                                        events=hook.events, model_name=hook.model_name,
                                        secret=self.box.encrypt(secret), active=hook.active,
                                        creation_time=hook.creation_time)
        return hook

    def list(self) -> builtins.list[Webhook]:
        with read(self.engine) as conn:
            rows = webhooks_sql.list_webhooks(conn)
            if current().confined:
                seen = _models_in_scope(conn, {r.model_name for r in rows if r.model_name is not None})
                rows = [r for r in rows if r.model_name in seen]
        return [_webhook(r, self.box) for r in rows]

    def delete(self, webhook_id: str) -> None:
        """Delete a webhook and its delivery history; deliveries still queued for it are dropped."""
        check_name(webhook_id, "webhook_id")
        with write(self.engine) as conn:
            if current().confined:
                row = webhooks_sql.get_webhook(conn, webhook_id)
                if row is None or not _hook_visible(conn, row.model_name):
                    raise NotFound(f"webhook {webhook_id} does not exist", field="webhook_id")
            if not webhooks_sql.delete_webhook(conn, webhook_id):
                raise NotFound(f"webhook {webhook_id} does not exist", field="webhook_id")

    def deliveries(self, webhook_id: str, limit: int = 50) -> builtins.list[Delivery]:
        """A webhook's deliveries, newest first."""
        check_name(webhook_id, "webhook_id")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_DELIVERIES_PAGE:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_DELIVERIES_PAGE}", field="limit")
        with read(self.engine) as conn:
            row = webhooks_sql.get_webhook(conn, webhook_id)
            if row is None or not _hook_visible(conn, row.model_name):
                raise NotFound(f"webhook {webhook_id} does not exist", field="webhook_id")
            return [Delivery(**r._asdict()) for r in webhooks_sql.list_deliveries(conn, webhook_id, limit)]

    # ---- events ------------------------------------------------------------------------------

    def emit(self, event: str, payload: dict[str, Any], model_name: str) -> None:
        """Queue `event` for every matching webhook and return at once; never raises.

        Call it after the registry change has committed: the worker reads the
        webhooks and writes delivery rows in its own transactions, never in the
        caller's, so a webhook can neither block nor roll back a registry write.
        """
        try:
            if event not in EVENTS:
                log.warning("webhooks: ignoring unknown event %r", event)
                return
            body = json.dumps({"event": event, "model_name": model_name, "timestamp": now_ms(), "data": payload},
                              separators=(",", ":"), default=str).encode()
            with self._lock:
                if self._pid != os.getpid():  # forked without the at-fork hook (should not happen)
                    self._reset_after_fork()
                    return self.emit(event, payload, model_name)
                self._unfinished += 1
                self._queue.put(_Event(event, model_name, body))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, args=(self._queue,),
                                                    name="arsenale-webhooks", daemon=True)
                    try:
                        self._thread.start()
                    except BaseException:
                        self._thread = None
                        raise
        except Exception:
            log.exception("webhooks: could not queue event %r for model %r", event, model_name)

    # ---- the worker thread -------------------------------------------------------------------

    def _run(self, jobs: queue.SimpleQueue[Any]) -> None:
        if self._forked_engine:
            # A child must not use connections it inherited from its parent (SQLAlchemy's fork recipe).
            self._forked_engine = False
            self.engine.dispose(close=False)
        self._serve(jobs, "arsenale-webhooks")

    def _expand(self, job: Any) -> builtins.list[_Attempt]:
        return self._prepare(job) if isinstance(job, _Event) else []

    def _done(self, item: Any) -> None:
        self._finished(1)

    def _abandon(self, items: builtins.list[Any]) -> None:
        log.warning("webhooks: stopped with %d deliveries still to retry", len(items))
        self._finished(len(items))

    def _prepare(self, job: _Event) -> builtins.list[_Attempt]:
        """Match the event against active webhooks and record a pending delivery for each."""
        attempts: builtins.list[_Attempt] = []
        try:
            with write(self.engine) as conn:
                for hook in webhooks_sql.active_webhooks_for_model(conn, job.model_name):
                    subscribed = json.loads(hook.events)
                    if ALL_EVENTS not in subscribed and job.event not in subscribed:
                        continue
                    delivery_id = webhooks_sql.insert_delivery(conn, webhook_id=hook.webhook_id, event=job.event,
                                                               payload=job.body.decode(), timestamp=now_ms())
                    try:
                        url = self.box.reveal(hook.url, what=f"the URL of webhook {hook.webhook_id}")
                        secret = self.box.reveal(hook.secret, what=f"the signing secret of webhook {hook.webhook_id}")
                    except EncryptionError as exc:  # recorded as failed, never sent unsigned or elsewhere
                        log.error("webhooks: %s", exc.message)
                        webhooks_sql.update_delivery(conn, delivery_id, status="failed", attempts=0,
                                                     response_code=None, last_error=exc.message[:_ERROR_CHARS])
                        continue
                    attempts.append(_Attempt(delivery_id, hook.webhook_id, url, secret, job.event, job.body))
        except Exception:
            log.exception("webhooks: could not record deliveries of %r for model %r", job.event, job.model_name)
            attempts = []
        with self._idle:  # count the deliveries before the event stops counting, so flush never sees a gap
            self._unfinished += len(attempts) - 1
            if self._unfinished <= 0:
                self._unfinished = 0
                self._idle.notify_all()
        return attempts

    def _attempt(self, client: httpx.Client, a: _Attempt) -> float | None:
        """POST once and record the outcome; the delay before the next try, or None when done."""
        a.attempts += 1
        code: int | None = None
        error: str | None = None
        try:
            with client.stream("POST", a.url, content=a.body, headers={
                "Content-Type": "application/json",
                "X-Arsenale-Event": a.event,
                "X-Arsenale-Delivery": str(a.delivery_id),
                "X-Arsenale-Signature": sign(a.secret, a.body),
            }) as response:
                code = response.status_code
                if 200 <= code < 300:
                    status, retry = "delivered", False
                else:
                    retry = code >= 500 or code == 429
                    status = "failed"
                    error = f"HTTP {code}" + _snippet(response)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            status, retry = "failed", True
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a bad URL, TLS set-up, anything else: not worth retrying
            status, retry = "failed", False
            error = f"{type(exc).__name__}: {exc}"
        retry = retry and a.attempts < self.max_attempts
        if retry:
            status = "pending"
        try:
            with write(self.engine) as conn:
                still_there = webhooks_sql.update_delivery(
                    conn, a.delivery_id, status=status, attempts=a.attempts, response_code=code,
                    last_error=error[:_ERROR_CHARS] if error else None)
        except Exception:
            log.exception("webhooks: could not record delivery %s", a.delivery_id)
            still_there = True
        if status == "failed":
            log.warning("webhooks: delivery %s of %s to %s failed after %d attempt(s): %s", a.delivery_id,
                        a.event, redact_url(a.url), a.attempts, error)
        if retry and still_there:
            return self.backoff * 2 ** (a.attempts - 1)
        return None

    # ---- processes ---------------------------------------------------------------------------

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's worker thread does not exist here, and its queued events
        belong to the parent (which delivers them). Start clean; the next `emit` starts a worker."""
        self._init_worker_state()
        self._forked_engine = True


_LIVE: weakref.WeakSet[WebhookService] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for service in builtins.list(_LIVE):
        service._reset_after_fork()


def _flush_at_exit() -> None:
    deadline = time.monotonic() + _ATEXIT_FLUSH_SECONDS
    for service in builtins.list(_LIVE):
        try:
            service.flush(max(0.0, deadline - time.monotonic()))
        except Exception:  # never fail an interpreter exit
            log.debug("webhooks: flush at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)
