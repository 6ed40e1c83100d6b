"""Registry webhooks against a real local HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select

from arsenale.errors import InvalidInput, NotFound
from arsenale.registry.webhooks import (
    EVENTS,
    Webhook,
    WebhookCreated,
    WebhookService,
    sign,
    verify_signature,
)
from arsenale.store.db import get_engine
from arsenale.store.tables import webhook_deliveries, webhooks
from tests.conftest import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP endpoint that records every request and answers as told."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    fail_times: int = 0  # answer `fail_status` this many times, then `status`
    fail_status: int = 500
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Received) -> int:
        with self.lock:
            self.requests.append(request)
            if self.fail_times > 0:
                self.fail_times -= 1
                return self.fail_status
            return self.status


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            code = rec.answer(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"no" if code >= 400 else b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def service(store_uri: str) -> Iterator[WebhookService]:
    svc = WebhookService(get_engine(store_uri), backoff=0.01, timeout=2.0)
    try:
        yield svc
    finally:
        svc.close(timeout=10)


def _count(svc: WebhookService, table: Any) -> int:
    with svc.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# ---- subscriptions -----------------------------------------------------------------------------

def test_create_list_delete(service: WebhookService, receiver: Receiver) -> None:
    created = service.create(receiver.url, ["model.registered", "model.alias_set"], model_name="churn")
    assert isinstance(created, WebhookCreated)
    assert len(created.secret) == 64 and int(created.secret, 16) >= 0  # 32 random bytes, hex
    assert created.active and created.model_name == "churn"
    other = service.create(receiver.url, ["*"], secret="s3cret")
    assert other.secret == "s3cret"

    listed = service.list()
    # Listed by creation time (milliseconds: two made in the same one may come either way round).
    assert {h.webhook_id for h in listed} == {created.webhook_id, other.webhook_id}
    assert [h.creation_time for h in listed] == sorted(h.creation_time for h in listed)
    assert all(type(h) is Webhook and "secret" not in h.model_dump() for h in listed)
    by_id = {h.webhook_id: h for h in listed}
    assert by_id[created.webhook_id].events == ["model.registered", "model.alias_set"]

    service.delete(created.webhook_id)
    assert [h.webhook_id for h in service.list()] == [other.webhook_id]
    with pytest.raises(NotFound):
        service.delete(created.webhook_id)


def test_delete_unknown_is_not_found(service: WebhookService) -> None:
    with pytest.raises(NotFound):
        service.delete("0" * 32)
    with pytest.raises(NotFound):
        service.deliveries("0" * 32)


@pytest.mark.parametrize("url", ["ftp://x", "http://", "javascript:alert(1)", "http://" + "a" * 2993,
                                 "", "example.com/hook", "http://exa mple.com/", "http://[::1/", "https://h:99999/",
                                 "file:///etc/passwd", None, 42])
def test_bad_urls_are_rejected_and_nothing_stored(service: WebhookService, url: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        service.create(url, ["*"])
    assert err.value.field == "url"
    assert service.list() == [] and _count(service, webhooks) == 0


def test_three_thousand_char_url_is_rejected(service: WebhookService) -> None:
    url = "https://example.com/" + "p" * 2980
    assert len(url) == 3000
    with pytest.raises(InvalidInput, match="limit is 2000"):
        service.create(url, ["*"])
    assert _count(service, webhooks) == 0


@pytest.mark.parametrize("events", [["model.deleted"], ["model.registered", "nope"], [], "model.registered",
                                    ["*", "model.*"], None])
def test_unknown_or_malformed_events_are_rejected(service: WebhookService, receiver: Receiver, events: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        service.create(receiver.url, events)
    assert err.value.field == "events"
    assert _count(service, webhooks) == 0


@pytest.mark.parametrize("kwargs", [{"model_name": ""}, {"model_name": "x" * 300}, {"secret": ""},
                                    {"secret": "s" * 257}])
def test_bad_model_name_or_secret_rejected(service: WebhookService, receiver: Receiver,
                                           kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        service.create(receiver.url, ["*"], **kwargs)
    assert _count(service, webhooks) == 0


# ---- delivery ----------------------------------------------------------------------------------

def test_delivery_is_signed_and_carries_event_and_delivery_headers(service: WebhookService,
                                                                   receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["model.registered"])
    service.emit("model.registered", {"version": 3, "run_id": "abc"}, "churn")
    assert service.flush(10)

    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    assert req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-arsenale-event"] == "model.registered"
    assert verify_signature(hook.secret, req.body, req.headers["x-arsenale-signature"])
    assert req.headers["x-arsenale-signature"] == sign(hook.secret, req.body)
    assert not verify_signature("another secret", req.body, req.headers["x-arsenale-signature"])
    assert not verify_signature(hook.secret, req.body + b" ", req.headers["x-arsenale-signature"])
    body = json.loads(req.body)
    assert body["event"] == "model.registered" and body["model_name"] == "churn"
    assert body["data"] == {"version": 3, "run_id": "abc"}

    [delivery] = service.deliveries(hook.webhook_id)
    assert req.headers["x-arsenale-delivery"] == str(delivery.id)
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.last_error) == \
        ("delivered", 1, 200, None)
    assert delivery.event == "model.registered" and delivery.webhook_id == hook.webhook_id


def test_verify_signature_rejects_malformed_headers() -> None:
    body = b'{"a":1}'
    good = sign("k", body)
    assert verify_signature("k", body, good)
    assert verify_signature("k", body, good + "\n")  # header values may keep trailing whitespace
    for header in ["", good.removeprefix("sha256="), "sha1=" + good[7:], good.upper(), "sha256=é", None]:
        assert not verify_signature("k", body, header)  # type: ignore[arg-type]


def test_retries_after_500s_then_delivered(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    receiver.fail_times = 2
    service.emit("model.stage_changed", {"version": 1, "to_stage": "Production"}, "churn")
    assert service.flush(10)

    assert len(receiver.requests) == 3
    assert len({r.headers["x-arsenale-delivery"] for r in receiver.requests}) == 1  # same delivery retried
    assert len({r.body for r in receiver.requests}) == 1  # with the same bytes
    [delivery] = service.deliveries(hook.webhook_id)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 3, 200)


def test_429_is_retried(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    receiver.fail_times, receiver.fail_status = 1, 429
    service.emit("model.alias_set", {"alias": "champion", "version": 2}, "churn")
    assert service.flush(10)
    [delivery] = service.deliveries(hook.webhook_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_5xx_until_attempts_run_out_is_failed(store_uri: str, receiver: Receiver) -> None:
    svc = WebhookService(get_engine(store_uri), max_attempts=3, backoff=0.01, timeout=2.0)
    try:
        hook = svc.create(receiver.url, ["*"])
        receiver.fail_times, receiver.fail_status = 100, 503
        svc.emit("model.registered", {"version": 1}, "churn")
        assert svc.flush(10)
    finally:
        svc.close()
    assert len(receiver.requests) == 3
    [delivery] = svc.deliveries(hook.webhook_id)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 3, 503)
    assert delivery.last_error is not None and delivery.last_error.startswith("HTTP 503")


def test_400_fails_without_retry(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    receiver.status = 400
    service.emit("model.registered", {"version": 1}, "churn")
    assert service.flush(10)
    assert len(receiver.requests) == 1
    [delivery] = service.deliveries(hook.webhook_id)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 400)
    assert delivery.last_error == "HTTP 400: no"


def test_endpoint_down_emit_is_fast_and_failure_is_recorded(service: WebhookService) -> None:
    hook = service.create(f"http://127.0.0.1:{free_port()}/closed", ["*"])
    service.emit("model.registered", {"version": 0}, "warmup")  # the first emit also starts the worker
    for _ in range(5):
        started = time.perf_counter()
        service.emit("model.registered", {"version": 1}, "churn")
        assert time.perf_counter() - started < 0.05
    assert service.flush(15)
    deliveries = service.deliveries(hook.webhook_id)
    assert len(deliveries) == 6
    for d in deliveries:
        assert d.status == "failed" and d.attempts == service.max_attempts and d.response_code is None
        assert d.last_error and "Connect" in d.last_error


def test_emit_inside_an_open_write_transaction_does_not_block(service: WebhookService,
                                                               receiver: Receiver) -> None:
    """On SQLite a second writer waits for the first: emit must not write in the caller's thread."""
    from arsenale.store.db import write

    hook = service.create(receiver.url, ["*"])
    with write(service.engine) as conn:
        conn.execute(webhooks.update().where(webhooks.c.webhook_id == hook.webhook_id).values(active=True))
        started = time.perf_counter()
        service.emit("model.registered", {"version": 1}, "churn")
        assert time.perf_counter() - started < 0.05
    assert service.flush(10)
    assert [d.status for d in service.deliveries(hook.webhook_id)] == ["delivered"]


def test_emit_never_raises(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    service.emit("model.unknown_event", {}, "churn")  # logged and ignored
    service.emit("model.registered", {"when": object()}, "churn")  # not JSON: stringified, still delivered
    service.emit("model.registered", None, "churn")  # type: ignore[arg-type]
    assert service.flush(10)
    assert [d.status for d in service.deliveries(hook.webhook_id)] == ["delivered", "delivered"]


def test_filter_by_event_and_model(service: WebhookService, receiver: Receiver) -> None:
    registered = service.create(receiver.url + "/registered", ["model.registered"])
    churn_alias = service.create(receiver.url + "/churn", ["model.alias_set", "model.alias_removed"],
                                 model_name="churn")
    everything = service.create(receiver.url + "/all", ["*"])
    fraud_all = service.create(receiver.url + "/fraud", ["*"], model_name="fraud")

    service.emit("model.registered", {"version": 1}, "churn")
    service.emit("model.alias_set", {"alias": "champion"}, "churn")
    service.emit("model.alias_set", {"alias": "champion"}, "fraud")
    service.emit("model.version_updated", {"version": 1}, "other")
    assert service.flush(10)

    def events(hook: WebhookCreated) -> list[tuple[str, str]]:
        return [(d.event, d.status) for d in reversed(service.deliveries(hook.webhook_id))]

    assert events(registered) == [("model.registered", "delivered")]
    assert events(churn_alias) == [("model.alias_set", "delivered")]
    assert events(everything) == [("model.registered", "delivered"), ("model.alias_set", "delivered"),
                                  ("model.alias_set", "delivered"), ("model.version_updated", "delivered")]
    assert events(fraud_all) == [("model.alias_set", "delivered")]
    by_path: dict[str, list[str]] = {}
    for r in receiver.requests:
        by_path.setdefault(r.path, []).append(json.loads(r.body)["model_name"])
    assert by_path == {"/hook/registered": ["churn"], "/hook/churn": ["churn"],
                       "/hook/all": ["churn", "churn", "fraud", "other"], "/hook/fraud": ["fraud"]}


def test_every_known_event_reaches_a_star_subscription(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    for event in EVENTS:
        service.emit(event, {}, "m")
    assert service.flush(10)
    assert [r.headers["x-arsenale-event"] for r in receiver.requests] == list(EVENTS)
    assert [d.event for d in service.deliveries(hook.webhook_id)] == list(reversed(EVENTS))


def test_deliveries_newest_first_with_limit(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    for version in range(5):
        service.emit("model.registered", {"version": version}, "churn")
    assert service.flush(10)
    page = service.deliveries(hook.webhook_id, limit=3)
    assert len(page) == 3 and [d.id for d in page] == sorted((d.id for d in page), reverse=True)
    assert page[0].id == max(d.id for d in service.deliveries(hook.webhook_id))
    with pytest.raises(InvalidInput):
        service.deliveries(hook.webhook_id, limit=0)


def test_deleted_webhook_gets_nothing_and_its_deliveries_go(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    service.emit("model.registered", {"version": 1}, "churn")
    assert service.flush(10)
    assert _count(service, webhook_deliveries) == 1
    service.delete(hook.webhook_id)
    assert _count(service, webhook_deliveries) == 0
    service.emit("model.registered", {"version": 2}, "churn")
    assert service.flush(10)
    assert len(receiver.requests) == 1 and _count(service, webhook_deliveries) == 0


def test_idle_service_flushes_at_once(service: WebhookService) -> None:
    assert service.flush(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_worker_restarts_in_a_forked_child(service: WebhookService, receiver: Receiver) -> None:
    hook = service.create(receiver.url, ["*"])
    service.emit("model.registered", {"who": "parent"}, "churn")  # the parent's worker is now running
    assert service.flush(10)
    pid = os.fork()
    if pid == 0:  # the child: no worker thread came along; emit must start one
        code = 1
        try:
            service.emit("model.registered", {"who": "child"}, "churn")
            code = 0 if service.flush(10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(json.loads(r.body)["data"]["who"] for r in receiver.requests) == ["child", "parent"]
    assert [d.status for d in service.deliveries(hook.webhook_id)] == ["delivered", "delivered"]
    service.emit("model.registered", {"who": "parent again"}, "churn")  # the parent's worker still works
    assert service.flush(10)
    assert len(receiver.requests) == 3
