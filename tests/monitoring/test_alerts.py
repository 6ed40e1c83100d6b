"""monitoring.alerts: rule parsing, the evaluation state machine, payload formats, delivery to a local receiver."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arsenale.errors import InvalidInput
from arsenale.monitoring.alerts import (
    MAX_WINDOWS,
    AlertEvent,
    AlertRule,
    AlertState,
    Condition,
    Evaluator,
    Notifier,
    RuleSyntaxError,
    alertmanager_payload,
    parse_rule,
    slack_payload,
)
from arsenale.registry.webhooks import verify_signature
from tests.conftest import free_port

T0 = 1_718_000_000_000
MINUTE = 60_000
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# ---- parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("drift_share > 0.3 for 2 windows", Condition("drift_share", ">", 0.3, 2)),
    ("quality.errors >= 1", Condition("quality.errors", ">=", 1.0)),
    ("accuracy < 0.9 for 3 windows", Condition("accuracy", "<", 0.9, 3)),
    ("p99_ms > 50", Condition("p99_ms", ">", 50.0)),
    ("drift.age.statistic > 0.2", Condition("drift.age.statistic", ">", 0.2)),
    ("  f1<=.5   for 1 window ", Condition("f1", "<=", 0.5)),
    ("x==-2.5e-3", Condition("x", "==", -0.0025)),
    ("drift.amount-usd.p_value != +1E2", Condition("drift.amount-usd.p_value", "!=", 100.0)),
])
def test_parse_accepts(text: str, expected: Condition) -> None:
    assert parse_rule(text) == expected


@pytest.mark.parametrize(("text", "position"), [
    ("", 0),
    ("drift_share", 11),
    ("drift_share >", 13),
    ("drift_share > abc", 14),
    ("1x > 2", 0),
    ("a.b. > 1", 4),
    ("a =< 1", 2),
    ("a >> 1", 3),
    ("a => 1", 2),
    ("a > 1e", 6),
    ("a > 1.2.3", 7),
    ("a > 1e999", 4),
    ("a > nan", 4),
    ("a > inf", 4),
    ("a > --1", 4),
    ("a > 1 or b > 2", 6),
    ("a > 1for 2 windows", 5),
    ("a > 1 for", 9),
    ("a > 1 for 0 windows", 10),
    ("a > 1 for -2 windows", 10),
    (f"a > 1 for {MAX_WINDOWS + 1} windows", 10),
    ("a > 1 for 2", 11),
    ("a > 1 for 2windows", 11),
    ("a > 1 for 2 minutes", 12),
    ("a > 1 for 2 windows and more", 20),
    ("__import__('os').system('x') > 1", 10),
    ("a ＞ 1", 2),
])
def test_parse_rejects_with_field_and_position(text: str, position: int) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(text)
    assert isinstance(info.value, InvalidInput)
    assert info.value.field == "when"
    assert info.value.position == position
    assert f"position {position}" in info.value.message


@pytest.mark.parametrize("text", [None, 3, b"a > 1", "a > 1" + " " * 600])
def test_parse_rejects_non_text_and_overlong(text: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_rule(text)
    assert info.value.field == "when"


@pytest.mark.parametrize("kwargs", [
    {"metric": "a b", "op": ">", "threshold": 1}, {"metric": "a", "op": "=", "threshold": 1},
    {"metric": "a", "op": ">", "threshold": math.nan}, {"metric": "a", "op": ">", "threshold": True},
    {"metric": "a", "op": ">", "threshold": 1, "windows": 0}, {"metric": "a", "op": ">", "threshold": 1, "windows": 1.5},
])
def test_condition_validates_its_fields(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Condition(**kwargs)


_segment = st.text("abcxyzABZ019_-", min_size=1, max_size=8)
conditions = st.builds(
    Condition,
    metric=st.builds(lambda first, rest: ".".join([first, *rest]),
                     st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True), st.lists(_segment, max_size=3)),
    op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    threshold=st.floats(allow_nan=False, allow_infinity=False),
    windows=st.integers(1, MAX_WINDOWS),
)


@given(conditions)
def test_condition_round_trips_through_text(condition: Condition) -> None:
    text = str(condition)
    assert parse_rule(text) == condition
    assert str(parse_rule(text)) == text


@given(st.text(max_size=60))
def test_parse_never_fails_other_than_invalid_input(text: str) -> None:
    try:
        condition = parse_rule(text)
    except InvalidInput as exc:
        assert exc.field == "when"
    else:
        assert parse_rule(str(condition)) == condition


# ---- rules -------------------------------------------------------------------------------------

def make_rule(when: str = "drift_share > 0.3 for 2 windows", **kwargs: Any) -> AlertRule:
    return AlertRule(**{"name": "input-drift", "monitor": "churn-prod", "condition": parse_rule(when),
                        "notify": ["log"], "labels": {"team": "risk"}, **kwargs})


def test_rule_accepts_channels_and_rule_text() -> None:
    text: Any = "p99_ms > 50"  # rule text is accepted as well as a Condition
    rule = AlertRule("r", "m", text, ["webhook:https://hooks.example/x?a=1", "slack:http://127.0.0.1:9/s",
                                      "log", "log"], {"env": "prod"}, "critical")
    assert rule.condition == Condition("p99_ms", ">", 50.0)
    assert rule.notify == ["webhook:https://hooks.example/x?a=1", "slack:http://127.0.0.1:9/s", "log"]


@pytest.mark.parametrize(("kwargs", "field_name"), [
    ({"notify": ["email:a@b.c"]}, "notify"),
    ({"notify": ["webhook:ftp://x/y"]}, "notify"),
    ({"notify": ["webhook:"]}, "notify"),
    ({"notify": ["slack:http://"]}, "notify"),
    ({"notify": ["webhook:http://a b/"]}, "notify"),
    ({"notify": ["webhook:http://h:99999/"]}, "notify"),
    ({"notify": ["LOG"]}, "notify"),
    ({"notify": [5]}, "notify"),
    ({"notify": "log"}, "notify"),
    ({"severity": "info"}, "severity"),
    ({"labels": {"severity": "low"}}, "labels"),
    ({"labels": {"alertname": "x"}}, "labels"),
    ({"labels": {"bad-name": "x"}}, "labels"),
    ({"labels": {"team": 3}}, "labels"),
    ({"name": ""}, "name"),
    ({"monitor": None}, "monitor"),
    ({"condition": "drift_share >"}, "when"),
])
def test_rule_rejects_bad_fields(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        make_rule(**kwargs)
    assert info.value.field == field_name


def test_fingerprint_is_stable_per_rule_and_monitor() -> None:
    a = make_rule()
    assert a.fingerprint == make_rule("accuracy < 0.5", severity="critical", labels={}).fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", a.fingerprint)
    assert a.fingerprint != make_rule(monitor="churn-staging").fingerprint != make_rule(name="other").fingerprint


# ---- evaluation --------------------------------------------------------------------------------

def run(rule: AlertRule, windows: list[dict[str, float]], state: AlertState | None = None, start: int = T0,
        ) -> tuple[AlertState, list[list[AlertEvent]]]:
    """Evaluate one window per minute, storing the state as JSON in between, as the caller will."""
    evaluator, out = Evaluator(), []
    for i, values in enumerate(windows):
        stored = None if state is None else AlertState.from_json(state.to_json())
        state, events = evaluator.evaluate(rule, values, start + i * MINUTE, stored)
        out.append(events)
    assert state is not None
    return state, out


def statuses(events: list[list[AlertEvent]]) -> list[str]:
    return ["/".join(e.status for e in batch) or "-" for batch in events]


def test_breach_twice_fires_once_then_resolves() -> None:
    rule = make_rule()
    state, events = run(rule, [{"drift_share": 0.5}, {"drift_share": 0.6}, {"drift_share": 0.7},
                               {"drift_share": 0.1}])
    assert statuses(events) == ["-", "firing", "-", "resolved"]
    fired, resolved = events[1][0], events[3][0]
    assert (fired.value, fired.starts_at_ms, fired.ends_at_ms) == (0.6, T0 + MINUTE, None)
    assert (resolved.value, resolved.starts_at_ms, resolved.ends_at_ms) == (0.1, T0 + MINUTE, T0 + 3 * MINUTE)
    assert fired.fingerprint == resolved.fingerprint == rule.fingerprint
    assert fired.condition == "drift_share > 0.3 for 2 windows" and fired.labels == {"team": "risk"}
    assert state.status == "ok" and state.breaches == 0 and state.fired_at_ms is None


def test_pending_and_firing_states() -> None:
    rule = make_rule("accuracy < 0.9 for 3 windows")
    state, _ = run(rule, [{"accuracy": 0.8}, {"accuracy": 0.85}])
    assert (state.status, state.breaches, state.breaching_since_ms) == ("pending", 2, T0)
    state, events = run(rule, [{"accuracy": 0.7}], state, start=T0 + 2 * MINUTE)
    assert state.status == "firing" and events[0][0].status == "firing"


def test_single_window_rule_fires_at_once() -> None:
    _, events = run(make_rule("quality.errors >= 1"), [{"quality.errors": 0}, {"quality.errors": 2}])
    assert statuses(events) == ["-", "firing"]


def test_flapping_never_reaches_the_window_count() -> None:
    values = [0.5, 0.1, 0.5, 0.1, 0.5, 0.5, 0.1, 0.5]
    _, events = run(make_rule(), [{"drift_share": v} for v in values])
    assert statuses(events) == ["-", "-", "-", "-", "-", "firing", "resolved", "-"]
    _, events = run(make_rule("drift_share > 0.3"), [{"drift_share": v} for v in values[:4]])
    assert statuses(events) == ["firing", "resolved", "firing", "resolved"]


def test_no_data_neither_breaches_nor_resolves() -> None:
    rule = make_rule()
    state, events = run(rule, [{"drift_share": 0.5}, {}, {"other": 1.0}, {"drift_share": 0.5},
                               {"drift_share": math.nan}, {}, {"drift_share": 0.2}])
    assert statuses(events) == ["-", "-", "-", "firing", "-", "-", "resolved"]
    assert state.no_data_total == 4 and state.no_data == 0
    state, events = run(rule, [{}, {}], None)
    assert (state.status, state.no_data, state.no_data_total, state.last_value) == ("ok", 2, 2, None)
    assert statuses(events) == ["-", "-"]


@pytest.mark.parametrize(("op", "breaching", "not_breaching"), [
    (">", 2.0, 1.0), (">=", 1.0, 0.5), ("<", 0.5, 1.0), ("<=", 1.0, 1.5), ("==", 1.0, 1.1), ("!=", 1.1, 1.0),
])
def test_every_operator(op: str, breaching: float, not_breaching: float) -> None:
    _, events = run(make_rule(f"m {op} 1"), [{"m": not_breaching}, {"m": breaching}, {"m": not_breaching}])
    assert statuses(events) == ["-", "firing", "resolved"]


def test_values_of_other_numeric_types() -> None:
    import numpy as np

    _, events = run(make_rule("dataset_drift == 1"), [{"dataset_drift": True}, {"dataset_drift": cast(float, np.float32(0))}])
    assert statuses(events) == ["firing", "resolved"]
    state, events = run(make_rule("p99_ms > 50"), [{"p99_ms": math.inf}])
    assert statuses(events) == ["firing"]
    assert AlertState.from_json(state.to_json()).last_value == math.inf  # stored as "Infinity", like the reports


def test_replayed_window_changes_nothing() -> None:
    rule, evaluator = make_rule("m > 1"), Evaluator()
    state, events = evaluator.evaluate(rule, {"m": 5}, T0, None)
    assert len(events) == 1
    for end in (T0, T0 - MINUTE):
        again, events = evaluator.evaluate(rule, {"m": 0}, end, state)
        assert again == state and events == []


def test_state_is_json_and_checked() -> None:
    rule = make_rule()
    state, _ = run(rule, [{"drift_share": 0.9}, {"drift_share": 0.9}])
    assert json.loads(state.to_json())["status"] == "firing"
    assert AlertState.from_json(state.to_json()) == state
    for bad in ("{", "[]", '{"rule": "x"}', state.to_json().replace('"firing"', '"exploded"'),
                state.to_json().replace('"breaches":2', '"breaches":-1')):
        with pytest.raises(InvalidInput) as info:
            AlertState.from_json(bad)
        assert info.value.field == "state"
    with pytest.raises(InvalidInput) as info:
        Evaluator().evaluate(make_rule(name="other"), {"drift_share": 0.9}, T0 + 9 * MINUTE, state)
    assert info.value.field == "state"


@pytest.mark.parametrize(("values", "end", "field_name"), [
    ({"drift_share": "high"}, T0, "window_values"), ([("drift_share", 1.0)], T0, "window_values"),
    ({"drift_share": 1.0}, float(T0), "window_end_ms"), ({"drift_share": 1.0}, True, "window_end_ms"),
])
def test_evaluate_rejects_bad_input(values: Any, end: Any, field_name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Evaluator().evaluate(make_rule(), values, end, None)
    assert info.value.field == field_name


# ---- payloads ----------------------------------------------------------------------------------

def fired_and_resolved(rule: AlertRule | None = None) -> tuple[AlertEvent, AlertEvent]:
    _, events = run(rule or make_rule(), [{"drift_share": 0.5}, {"drift_share": 0.625}, {"drift_share": 0.1}])
    return events[1][0], events[2][0]


def test_alertmanager_payload_shape() -> None:
    fired, _ = fired_and_resolved()
    body = alertmanager_payload([fired], external_url="https://arsenale.example/")
    assert {"version", "groupKey", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations",
            "externalURL", "alerts", "truncatedAlerts"} <= body.keys()
    assert (body["version"], body["status"], body["externalURL"]) == ("4", "firing", "https://arsenale.example")
    (alert,) = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {"alertname": "input-drift", "monitor": "churn-prod", "severity": "warning",
                               "team": "risk"}
    assert "input-drift" in alert["annotations"]["summary"]
    assert "0.625" in alert["annotations"]["description"]
    assert "drift_share > 0.3 for 2 windows" in alert["annotations"]["description"]
    assert RFC3339.match(alert["startsAt"]) and RFC3339.match(alert["endsAt"])
    assert datetime.fromisoformat(alert["startsAt"]).timestamp() * 1000 == T0 + MINUTE
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"].startswith("https://arsenale.example/")
    assert body["groupLabels"] == {"alertname": "input-drift"}
    assert json.loads(json.dumps(body)) == body


def test_resolved_payload_and_stable_fingerprint() -> None:
    fired, resolved = fired_and_resolved()
    first = alertmanager_payload([fired], external_url="http://x")["alerts"][0]
    body = alertmanager_payload([resolved], external_url="http://x")
    alert = body["alerts"][0]
    assert body["status"] == alert["status"] == "resolved"
    assert datetime.fromisoformat(alert["endsAt"]).timestamp() * 1000 == T0 + 2 * MINUTE
    assert alert["startsAt"] == first["startsAt"]
    assert alert["fingerprint"] == first["fingerprint"] == make_rule().fingerprint
    assert alertmanager_payload([resolved], external_url="http://x") == body  # deterministic

    other, _ = fired_and_resolved(make_rule(monitor="churn-staging"))
    mixed = alertmanager_payload([resolved, other], external_url="http://x")
    assert mixed["status"] == "firing"
    assert mixed["commonLabels"] == {"alertname": "input-drift", "severity": "warning", "team": "risk"}
    assert len({a["fingerprint"] for a in mixed["alerts"]}) == 2


def test_slack_payload() -> None:
    fired, resolved = fired_and_resolved(make_rule(severity="critical"))
    body = slack_payload([fired, resolved])
    assert list(body) == ["text"]
    first, second = body["text"].splitlines()
    assert "FIRING" in first and "critical" in first and "input-drift" in first and "0.625" in first
    assert "RESOLVED" in second and "0.1" in second


@pytest.mark.parametrize("events", [[], None, ["firing"]])
def test_payloads_need_events(events: Any) -> None:
    for build in (lambda e: alertmanager_payload(e, external_url="http://x"), slack_payload):
        with pytest.raises(InvalidInput) as info:
            build(events)
        assert info.value.field == "events"


# ---- delivery ----------------------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP endpoint that records each request and answers with the next behaviour in `plan`:
    an HTTP status, or ("sleep", seconds) to answer 200 only after the caller has given up."""

    url: str = ""
    plan: list[Any] = field(default_factory=list)
    default: Any = 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, request: Received) -> Any:
        with self.lock:
            self.requests.append(request)
            return self.plan.pop(0) if self.plan else self.default


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            what = rec.next(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if isinstance(what, tuple):
                time.sleep(what[1])
                what = 200
            try:
                self.send_response(what)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if what >= 400 else b"ok")
            except OSError:  # the notifier gave up on this request already
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def notifier_factory() -> Iterator[Callable[..., Notifier]]:
    made: list[Notifier] = []

    def make(**kwargs: Any) -> Notifier:
        made.append(Notifier(**{"external_url": "http://arsenale.test", "backoff": 0.01, "timeout": 2.0, **kwargs}))
        return made[-1]

    yield make
    for n in made:
        n.close(timeout=5)


def test_webhook_delivery_is_the_payload_and_signed(receiver: Receiver,
                                                    notifier_factory: Callable[..., Notifier]) -> None:
    notifier = notifier_factory(secret="s3cret")
    rule = make_rule(notify=[f"webhook:{receiver.url}"])
    fired, _ = fired_and_resolved(rule)
    (delivery_id,) = notifier.notify(rule, [fired])
    assert notifier.close(timeout=10)
    (request,) = receiver.requests
    assert json.loads(request.body) == alertmanager_payload([fired], external_url="http://arsenale.test")
    assert verify_signature("s3cret", request.body, request.headers["x-arsenale-signature"])
    assert not verify_signature("other", request.body, request.headers["x-arsenale-signature"])
    assert request.headers["x-arsenale-event"] == "alert.firing"
    assert request.headers["x-arsenale-delivery"] == str(delivery_id)
    assert request.headers["content-type"] == "application/json"
    (record,) = notifier.deliveries()
    assert (record.id, record.status, record.attempts, record.response_code, record.last_error) == \
        (delivery_id, "delivered", 1, 200, None)
    assert (record.channel, record.url, record.rule, record.events) == ("webhook", receiver.url, "input-drift", 1)


def test_slack_and_log_channels(receiver: Receiver, notifier_factory: Callable[..., Notifier],
                                caplog: pytest.LogCaptureFixture) -> None:
    notifier = notifier_factory()
    rule = make_rule(notify=[f"slack:{receiver.url}", "log"], severity="critical")
    fired, resolved = fired_and_resolved(rule)
    with caplog.at_level(logging.INFO, logger="arsenale.monitoring.alerts"):
        assert len(notifier.notify(rule, [fired])) == 2
        notifier.notify(rule, [resolved])
        assert notifier.flush(timeout=10)
    assert [json.loads(r.body) for r in receiver.requests] == [slack_payload([fired]), slack_payload([resolved])]
    assert "x-arsenale-signature" not in receiver.requests[0].headers  # no secret, no signature
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("alert:")]
    assert [lvl for lvl, _ in logged] == [logging.ERROR, logging.INFO]
    assert "input-drift" in logged[0][1] and "0.625" in logged[0][1]
    assert [d.status for d in notifier.deliveries()] == ["delivered"] * 4
    assert notifier.notify(rule, []) == []


def test_timeout_is_retried_then_delivered(receiver: Receiver, notifier_factory: Callable[..., Notifier]) -> None:
    receiver.plan = [("sleep", 1.5)]
    notifier = notifier_factory(timeout=0.3, secret="k")
    rule = make_rule(notify=[f"webhook:{receiver.url}"])
    fired, _ = fired_and_resolved(rule)
    notifier.notify(rule, [fired])
    assert notifier.flush(timeout=10)
    (record,) = notifier.deliveries()
    assert (record.status, record.attempts, record.response_code) == ("delivered", 2, 200)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body  # same body, same delivery id: dedupable
    assert receiver.requests[0].headers["x-arsenale-delivery"] == receiver.requests[1].headers["x-arsenale-delivery"]
    assert verify_signature("k", receiver.requests[1].body, receiver.requests[1].headers["x-arsenale-signature"])


def test_always_failing_receiver_is_recorded_as_failed(receiver: Receiver,
                                                       notifier_factory: Callable[..., Notifier],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    receiver.default = 500
    notifier = notifier_factory(max_attempts=3)
    rule = make_rule(notify=[f"webhook:{receiver.url}"])
    fired, _ = fired_and_resolved(rule)
    notifier.notify(rule, [fired])
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="arsenale.monitoring.alerts"):
        assert notifier.close(timeout=10)
    assert time.monotonic() - started < 5
    (record,) = notifier.deliveries()
    assert (record.status, record.attempts, record.response_code, record.last_error) == ("failed", 3, 500, "HTTP 500")
    assert len(receiver.requests) == 3
    assert any("failed after 3 attempt(s)" in r.getMessage() for r in caplog.records)


def test_client_errors_are_not_retried(receiver: Receiver, notifier_factory: Callable[..., Notifier]) -> None:
    receiver.default = 404
    notifier = notifier_factory()
    rule = make_rule(notify=[f"webhook:{receiver.url}"])
    notifier.notify(rule, fired_and_resolved(rule)[:1])
    assert notifier.flush(timeout=10)
    assert [(d.status, d.attempts, d.response_code) for d in notifier.deliveries()] == [("failed", 1, 404)]


def test_unreachable_receiver_is_retried_and_recorded(notifier_factory: Callable[..., Notifier]) -> None:
    notifier = notifier_factory(max_attempts=2)
    rule = make_rule(notify=[f"webhook:http://127.0.0.1:{free_port()}/nobody"])
    notifier.notify(rule, fired_and_resolved(rule)[:1])
    assert notifier.flush(timeout=10)
    (record,) = notifier.deliveries()
    assert (record.status, record.attempts, record.response_code) == ("failed", 2, None)
    assert record.last_error and "Connect" in record.last_error


def test_close_does_not_wait_out_a_long_backoff(receiver: Receiver,
                                                notifier_factory: Callable[..., Notifier]) -> None:
    receiver.default = 503
    notifier = notifier_factory(max_attempts=5, backoff=60)
    rule = make_rule(notify=[f"webhook:{receiver.url}"])
    notifier.notify(rule, fired_and_resolved(rule)[:1])
    started = time.monotonic()
    assert not notifier.close(timeout=0.5)
    assert time.monotonic() - started < 3
    (record,) = notifier.deliveries()
    assert record.status == "failed" and record.attempts == 1
    assert record.last_error is not None and "closed before delivery" in record.last_error \
        and "HTTP 503" in record.last_error
    # A closed notifier still works: the next notify starts a new worker.
    receiver.default = 200
    notifier.notify(rule, fired_and_resolved(rule)[:1])
    assert notifier.flush(timeout=10)
    assert notifier.deliveries()[-1].status == "delivered"


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"backoff": -1}, {"timeout": 0}, {"secret": ""},
                                    {"external_url": "arsenale.local"}, {"external_url": None}])
def test_notifier_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Notifier(**kwargs)
