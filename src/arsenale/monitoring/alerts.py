"""Alert rules over monitor windows: parse, evaluate, deduplicate, notify.

A rule watches one metric of a monitor's windows::

    drift_share > 0.3 for 2 windows        quality.errors >= 1        drift.age.statistic > 0.2

`Evaluator.evaluate` is a pure state machine, so that the caller decides where the state lives (it
serialises to JSON) and a replayed window changes nothing. Per rule it counts consecutive
breaching windows and emits one "firing" event when the count reaches N, nothing more while the
rule keeps breaching, and one "resolved" event at the first window that no longer breaches. A
window without the metric (or with NaN) is "no data": it neither breaches nor resolves, so a gap
in the data can neither page anyone nor silence a real alert; the state counts such windows.

`Notifier` sends events to a rule's channels (`webhook:URL` in the Alertmanager webhook format,
`slack:URL` as `{"text": ...}`, `log`) from a background thread, with the registry webhooks'
delivery policy: timeouts, connection errors, 5xx and 429 are retried with exponential back-off,
other answers fail at once, and every outcome is recorded in `deliveries()` and failures are logged,
so a lost notification is never silent. With a secret, each POST carries the registry's
`X-Arsenale-Signature` header (`arsenale.registry.webhooks.verify_signature` checks it).
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import logging
import math
import queue
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arsenale.background import QueueWorker
from arsenale.errors import InvalidInput
from arsenale.registry.webhooks import sign
from arsenale.tracking.models import check_name, now_ms

__all__ = ["OPERATORS", "AlertEvent", "AlertRule", "AlertState", "Condition", "Delivery", "Evaluator", "Notifier",
           "RuleSyntaxError", "alertmanager_payload", "parse_rule", "slack_payload"]

log = logging.getLogger("arsenale.monitoring.alerts")

Operator = Literal[">", ">=", "<", "<=", "==", "!="]
OPERATORS: tuple[str, ...] = (">=", "<=", "==", "!=", ">", "<")  # two-character ones first, for the scanner
Severity = Literal["warning", "critical"]
MAX_RULE = 500
MAX_WINDOWS = 10_000
_COMPARE = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__,
            "==": float.__eq__, "!=": float.__ne__}
_RESERVED_LABELS = ("alertname", "monitor", "severity")
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert that has not ended


# ---- rules -----------------------------------------------------------------------------------

class RuleSyntaxError(InvalidInput):
    """A malformed rule; `position` is the 0-based character offset where parsing stopped."""

    def __init__(self, text: str, position: int, expected: str) -> None:
        found = repr(text[position:position + 12]) if position < len(text) else "the end"
        super().__init__(f"invalid rule {text[:80]!r}: expected {expected} at position {position}, found {found}",
                         field="when")
        self.position = position


def _format_number(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e16 else repr(x)


@dataclass(frozen=True)
class Condition:
    """`metric op threshold [for N windows]`; `str()` gives back text that parses to an equal Condition."""

    metric: str
    op: Operator
    threshold: float
    windows: int = 1

    def __post_init__(self) -> None:
        if not _is_metric(self.metric) or self.op not in OPERATORS or not isinstance(self.threshold, (int, float)) \
                or isinstance(self.threshold, bool) or not math.isfinite(self.threshold):
            raise InvalidInput(f"invalid condition {self.metric!r} {self.op} {self.threshold!r}", field="when")
        if isinstance(self.windows, bool) or not isinstance(self.windows, int) or not 1 <= self.windows <= MAX_WINDOWS:
            raise InvalidInput(f"windows must be an integer from 1 to {MAX_WINDOWS}", field="when")
        object.__setattr__(self, "threshold", float(self.threshold))

    def breaches(self, value: float) -> bool:
        return _COMPARE[self.op](float(value), self.threshold)

    def __str__(self) -> str:
        tail = f" for {self.windows} windows" if self.windows != 1 else ""
        return f"{self.metric} {self.op} {_format_number(self.threshold)}{tail}"


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def fail(self, expected: str) -> RuleSyntaxError:
        return RuleSyntaxError(self.text, self.pos, expected)

    def take(self, allowed: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start:self.pos]

    def metric(self) -> str:
        what = "a metric name (letters, digits, _ or -, dotted, starting with a letter or _)"
        if self.pos >= len(self.text) or not (self.text[self.pos].isascii() and
                                               (self.text[self.pos].isalpha() or self.text[self.pos] == "_")):
            raise self.fail(what)
        parts = [self.take(_NAME_CHARS)]
        while self.text.startswith(".", self.pos):
            self.pos += 1
            part = self.take(_NAME_CHARS)
            if not part:
                raise self.fail(what)
            parts.append(part)
        return ".".join(parts)

    def operator(self) -> Operator:
        for op in OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return cast(Operator, op)
        raise self.fail("an operator (> >= < <= == !=)")

    def number(self) -> float:
        start = self.pos
        if self.text.startswith(("+", "-"), self.pos):
            self.pos += 1
        whole = self.take(_DIGITS)
        frac = ""
        if self.text.startswith(".", self.pos):
            self.pos += 1
            frac = self.take(_DIGITS)
        if not whole and not frac:
            self.pos = start
            raise self.fail("a number")
        if self.pos < len(self.text) and self.text[self.pos] in "eE":
            self.pos += 1
            if self.pos < len(self.text) and self.text[self.pos] in "+-":
                self.pos += 1
            if not self.take(_DIGITS):
                raise self.fail("the digits of an exponent")
        value = float(self.text[start:self.pos])
        if not math.isfinite(value):
            self.pos = start
            raise self.fail("a finite number")
        return value

    def word(self, *words: str) -> str:
        start = self.pos
        got = self.take(_NAME_CHARS)
        if got not in words:
            self.pos = start
            raise self.fail(" or ".join(repr(w) for w in words))
        return got


_DIGITS = "0123456789"
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + _DIGITS + "_-"


def parse_rule(text: str) -> Condition:
    """Parse `metric op number [for N windows]`; malformed text raises `RuleSyntaxError` (field "when")."""
    if not isinstance(text, str):
        raise InvalidInput(f"a rule must be a string, got {type(text).__name__}", field="when")
    if len(text) > MAX_RULE:
        raise InvalidInput(f"the rule is {len(text)} characters long; the limit is {MAX_RULE}", field="when")
    s = _Scanner(text)
    s.skip_spaces()
    metric = s.metric()
    s.skip_spaces()
    op = s.operator()
    s.skip_spaces()
    threshold = s.number()
    windows = 1
    if s.pos < len(text) and text[s.pos] not in " \t":
        raise s.fail("a space or the end of the rule")
    s.skip_spaces()
    if s.pos < len(text):
        s.word("for")
        s.skip_spaces()
        start = s.pos
        digits = s.take(_DIGITS)
        if not digits or int(digits) < 1 or int(digits) > MAX_WINDOWS:
            s.pos = start
            raise s.fail(f"a whole number of windows from 1 to {MAX_WINDOWS}")
        windows = int(digits)
        if s.pos >= len(text) or text[s.pos] not in " \t":
            raise s.fail("a space, then 'windows'")
        s.skip_spaces()
        s.word("windows", "window")
        s.skip_spaces()
        if s.pos < len(text):
            raise s.fail("the end of the rule")
    return Condition(metric, op, threshold, windows)


def _is_metric(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    s = _Scanner(text)
    try:
        s.metric()
    except RuleSyntaxError:
        return False
    return s.pos == len(text)


SECRET_REF = "secret:"
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _channel(entry: Any) -> tuple[str, str]:
    """`("webhook"|"slack", url)` or `("log", "")`, validated."""
    if entry == "log":
        return "log", ""
    if not isinstance(entry, str) or ":" not in entry:
        raise InvalidInput(f"notify entries are 'webhook:URL', 'slack:URL' or 'log', got {entry!r:.100}",
                           field="notify")
    kind, url = entry.split(":", 1)
    if kind not in ("webhook", "slack"):
        raise InvalidInput(f"unknown notify channel {kind!r:.40}: use webhook:, slack: or log", field="notify")
    if url.startswith(SECRET_REF):  # the URL is a stored secret, read when a notification leaves
        if not _SECRET_NAME.fullmatch(url[len(SECRET_REF):]):
            raise InvalidInput(f"{kind}:secret:NAME needs a secret's name (letters, digits, '.', '_', '-'), got "
                               f"{url[len(SECRET_REF):]!r:.60}", field="notify")
        return kind, url
    if len(url) > 2000 or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidInput(f"{kind} URL must be under 2000 characters without spaces or control characters",
                           field="notify")
    try:
        parts = urlsplit(url)
        _ = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise InvalidInput(f"{kind} URL {url[:100]!r} is not valid: {exc}", field="notify") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{kind} URL must be http(s)://host..., got {url[:100]!r}", field="notify")
    return kind, url


@dataclass(frozen=True)
class AlertRule:
    """One rule on one monitor: when `condition` holds, notify each channel in `notify`."""

    name: str
    monitor: str
    condition: Condition
    notify: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    severity: Severity = "warning"

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        check_name(self.monitor, "monitor")
        if isinstance(self.condition, str):  # accepted as text for convenience; stored parsed
            object.__setattr__(self, "condition", parse_rule(self.condition))
        if not isinstance(self.condition, Condition):
            raise InvalidInput("condition must be a Condition or rule text", field="when")
        if self.severity not in ("warning", "critical"):
            raise InvalidInput(f"severity must be 'warning' or 'critical', got {self.severity!r}", field="severity")
        if isinstance(self.notify, str) or not isinstance(self.notify, (list, tuple)):
            raise InvalidInput("notify must be a list of channels", field="notify")
        for entry in self.notify:
            _channel(entry)
        object.__setattr__(self, "notify", list(dict.fromkeys(self.notify)))
        if not isinstance(self.labels, Mapping):
            raise InvalidInput("labels must be a mapping of label names to strings", field="labels")
        for key, value in self.labels.items():
            if not isinstance(key, str) or not key or not (key[0].isalpha() or key[0] == "_") or not key.isascii() \
                    or not key.replace("_", "a").isalnum() or not isinstance(value, str) or len(value) > 1000:
                raise InvalidInput(f"label {key!r:.60} must be a Prometheus label name with a string value",
                                   field="labels")
            if key in _RESERVED_LABELS:
                raise InvalidInput(f"label {key!r} is set by Arsenale and cannot be given", field="labels")
        object.__setattr__(self, "labels", dict(self.labels))

    @property
    def fingerprint(self) -> str:
        """16 hex digits, stable per rule and monitor, so receivers can group an alert's firing and resolve."""
        return hashlib.sha256(f"{self.name}\x00{self.monitor}".encode()).hexdigest()[:16]


# ---- evaluation ------------------------------------------------------------------------------

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")


class AlertState(_Model):
    """Where one rule stands after the windows seen so far; JSON via `to_json` / `from_json`."""

    rule: str
    monitor: str
    status: Literal["ok", "pending", "firing"] = "ok"
    breaches: int = Field(0, ge=0, description="consecutive breaching windows (no-data windows are skipped)")
    no_data: int = Field(0, ge=0, description="consecutive windows without the metric")
    no_data_total: int = Field(0, ge=0)
    breaching_since_ms: int | None = None
    fired_at_ms: int | None = None
    last_value: float | None = None
    last_window_end_ms: int | None = None

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> AlertState:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise InvalidInput(f"malformed alert state{' at ' + where if where else ''}: {err.get('msg')}",
                               field="state") from None


class AlertEvent(_Model):
    """A transition worth notifying: the rule started firing, or stopped."""

    status: Literal["firing", "resolved"]
    rule: str
    monitor: str
    severity: Severity
    labels: dict[str, str]
    condition: str
    value: float | None
    starts_at_ms: int
    ends_at_ms: int | None = None
    fingerprint: str


def _value(values: Mapping[str, Any], metric: str) -> float | None:
    v = values.get(metric)
    if v is None:
        return None
    if not isinstance(v, (int, float)):  # numpy scalars are int/float subclasses or convert below
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise InvalidInput(f"window value {metric!r} must be a number, got {type(v).__name__}",
                               field="window_values") from None
    v = float(v)
    return None if math.isnan(v) else v


class Evaluator:
    """Pure: the same rule, window and state always give the same new state and events."""

    def evaluate(self, rule: AlertRule, window_values: Mapping[str, float], window_end_ms: int,
                 state: AlertState | None = None) -> tuple[AlertState, list[AlertEvent]]:
        if not isinstance(window_values, Mapping):
            raise InvalidInput("window_values must be a mapping of metric names to numbers", field="window_values")
        if isinstance(window_end_ms, bool) or not isinstance(window_end_ms, int):
            raise InvalidInput("window_end_ms must be an integer (milliseconds since the epoch)",
                               field="window_end_ms")
        if state is None:
            state = AlertState.model_validate({"rule": rule.name, "monitor": rule.monitor})
        elif (state.rule, state.monitor) != (rule.name, rule.monitor):
            raise InvalidInput(f"state belongs to rule {state.rule!r} on {state.monitor!r}", field="state")
        if state.last_window_end_ms is not None and window_end_ms <= state.last_window_end_ms:
            return state, []  # a replayed or late window: already accounted for
        value = _value(window_values, rule.condition.metric)
        if value is None:
            return state.model_copy(update={"no_data": state.no_data + 1, "no_data_total": state.no_data_total + 1,
                                            "last_window_end_ms": window_end_ms}), []
        seen = {"no_data": 0, "last_value": value, "last_window_end_ms": window_end_ms}
        if not rule.condition.breaches(value):
            events = [self._event(rule, "resolved", value, state.fired_at_ms or window_end_ms, window_end_ms)] \
                if state.status == "firing" else []
            return state.model_copy(update={**seen, "status": "ok", "breaches": 0, "breaching_since_ms": None,
                                            "fired_at_ms": None}), events
        breaches = state.breaches + 1
        since = state.breaching_since_ms if state.breaches else window_end_ms
        if state.status == "firing":
            return state.model_copy(update={**seen, "breaches": breaches}), []
        if breaches >= rule.condition.windows:
            return state.model_copy(update={**seen, "status": "firing", "breaches": breaches,
                                            "breaching_since_ms": since, "fired_at_ms": window_end_ms}), \
                [self._event(rule, "firing", value, window_end_ms, None)]
        return state.model_copy(update={**seen, "status": "pending", "breaches": breaches,
                                        "breaching_since_ms": since}), []

    @staticmethod
    def _event(rule: AlertRule, status: Literal["firing", "resolved"], value: float, starts: int,
               ends: int | None) -> AlertEvent:
        return AlertEvent(status=status, rule=rule.name, monitor=rule.monitor, severity=rule.severity,
                          labels=rule.labels, condition=str(rule.condition), value=value, starts_at_ms=starts,
                          ends_at_ms=ends, fingerprint=rule.fingerprint)


# ---- payloads --------------------------------------------------------------------------------

def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _describe(e: AlertEvent) -> tuple[str, str]:
    value = "no value" if e.value is None else _format_number(e.value) if math.isfinite(e.value) else str(e.value)
    metric = e.condition.split(" ", 1)[0]
    if e.status == "firing":
        return (f"{e.rule} is firing on monitor {e.monitor}",
                f"{metric} = {value} breaches the rule `{e.condition}` since {rfc3339(e.starts_at_ms)}")
    return (f"{e.rule} resolved on monitor {e.monitor}",
            f"{metric} = {value} no longer breaches the rule `{e.condition}`")


def _common(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in dicts[0].items() if all(d.get(k) == v for d in dicts[1:])}


def _check_events(events: Sequence[AlertEvent]) -> list[AlertEvent]:
    out = list(events) if isinstance(events, Sequence) else []
    if not out or not all(isinstance(e, AlertEvent) for e in out):
        raise InvalidInput("events must be a non-empty list of AlertEvent", field="events")
    return out


def alertmanager_payload(events: Sequence[AlertEvent], *, external_url: str) -> dict[str, Any]:
    """The Alertmanager webhook body (version 4), so existing receivers (PagerDuty, Opsgenie bridges) work."""
    events = _check_events(events)
    if not isinstance(external_url, str) or not external_url.startswith(("http://", "https://")):
        raise InvalidInput(f"external_url must be an http(s) URL, got {external_url!r:.100}", field="external_url")
    base = external_url.rstrip("/")
    alerts: list[dict[str, Any]] = []
    for e in events:
        summary, description = _describe(e)
        alerts.append({
            "status": e.status,
            "labels": {**e.labels, "alertname": e.rule, "monitor": e.monitor, "severity": e.severity},
            "annotations": {"summary": summary, "description": description},
            "startsAt": rfc3339(e.starts_at_ms),
            "endsAt": rfc3339(e.ends_at_ms) if e.ends_at_ms is not None else _ZERO_TIME,
            "generatorURL": f"{base}/monitoring/{quote(e.monitor, safe='')}",
            "fingerprint": e.fingerprint,
        })
    common_labels = _common([a["labels"] for a in alerts])
    group = {"alertname": common_labels["alertname"]} if "alertname" in common_labels else {}
    return {
        "version": "4",
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}",
        "truncatedAlerts": 0,
        "status": "firing" if any(e.status == "firing" for e in events) else "resolved",
        "receiver": "arsenale",
        "groupLabels": group,
        "commonLabels": common_labels,
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": base,
        "alerts": alerts,
    }


def slack_payload(events: Sequence[AlertEvent]) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body: one line per event."""
    lines = []
    for e in _check_events(events):
        summary, description = _describe(e)
        mark = f"[FIRING: {e.severity}]" if e.status == "firing" else "[RESOLVED]"
        lines.append(f"{mark} {summary}: {description}")
    return {"text": "\n".join(lines)}


# ---- delivery --------------------------------------------------------------------------------

@dataclass
class Delivery:
    """One notification of one rule's events to one channel, and how it went."""

    id: int
    rule: str
    channel: Literal["webhook", "slack", "log"]
    url: str
    events: int
    status: Literal["pending", "delivered", "failed"] = "pending"
    attempts: int = 0
    response_code: int | None = None
    last_error: str | None = None
    timestamp_ms: int = 0


@dataclass
class _Job:
    delivery: Delivery
    body: bytes
    event: str
    lines: list[tuple[int, str]]  # for the log channel: (level, message)
    on_done: Callable[[str, Delivery], None] | None = None  # (notify entry, final record)
    entry: str = ""


_PROBE = AlertEvent(status="firing", rule="r", monitor="m", severity="warning", labels={}, condition="m > 0",
                    value=1.0, starts_at_ms=0, fingerprint="0")


class Notifier(QueueWorker):
    """Sends alert events to their rule's channels in the background; `close()` before the process ends."""

    def __init__(self, *, external_url: str = "http://127.0.0.1:5000", secret: str | None = None,
                 max_attempts: int = 4, backoff: float = 0.5, timeout: float = 5.0, history: int = 10_000) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidInput("max_attempts must be an integer of at least 1", field="max_attempts")
        if backoff < 0 or timeout <= 0 or history < 1:
            raise InvalidInput("backoff must be >= 0, timeout > 0 and history >= 1", field="backoff")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise InvalidInput("secret must be a non-empty string", field="secret")
        alertmanager_payload([_PROBE], external_url=external_url)  # fail here, not in every notify()
        self.external_url, self.secret = external_url, secret
        self.max_attempts, self.backoff, self.timeout = max_attempts, backoff, timeout
        self._init_worker_state()
        self._ids = itertools.count(1)
        self._records: deque[Delivery] = deque(maxlen=history)
        _LIVE.add(self)

    def notify(self, rule: AlertRule, events: Sequence[AlertEvent], *,
               on_done: Callable[[str, Delivery], None] | None = None) -> list[int]:
        """Queue one delivery per channel of `rule` and return their ids at once (none for no events).

        `on_done(entry, delivery)` is called from the worker thread with each channel's final record
        (delivered or failed), before `flush` counts it as finished, so a caller can persist the outcome and a
        flushed notifier means persisted records. An exception it raises is logged, never propagated.
        """
        if not isinstance(rule, AlertRule):
            raise InvalidInput("rule must be an AlertRule", field="rule")
        if not events:
            return []
        events = _check_events(events)
        status = "firing" if any(e.status == "firing" for e in events) else "resolved"
        jobs = []
        for entry in rule.notify:
            kind, url = _channel(entry)
            body, lines = b"", []
            if kind == "webhook":
                body = _dump(alertmanager_payload(events, external_url=self.external_url))
            elif kind == "slack":
                body = _dump(slack_payload(events))
            else:
                level = logging.ERROR if rule.severity == "critical" else logging.WARNING
                lines = [(level if e.status == "firing" else logging.INFO, ": ".join(_describe(e))) for e in events]
            record = Delivery(next(self._ids), rule.name, cast(Any, kind), url, len(events), timestamp_ms=now_ms())
            jobs.append(_Job(record, body, f"alert.{status}", lines, on_done, entry))
        with self._lock:
            for job in jobs:
                self._records.append(job.delivery)
                self._unfinished += 1
                self._queue.put(job)
            if jobs and self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(self._queue,), name="arsenale-alerts",
                                                daemon=True)
                try:
                    self._thread.start()
                except BaseException:  # interpreter shutting down: the deliveries stay "pending" in the record
                    self._thread = None
                    raise
        return [j.delivery.id for j in jobs]

    def deliveries(self) -> list[Delivery]:
        """Copies of the delivery records, oldest first (the newest `history` of them)."""
        with self._lock:
            return [replace(d) for d in self._records]

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to `timeout`, then stop: deliveries still waiting for a retry are recorded as failed."""
        return super().close(timeout)

    def _join_timeout(self, timeout: float) -> float:
        return self.timeout + 1.0

    # ---- the worker thread ---------------------------------------------------------------------

    def _update(self, job: _Job, **changes: Any) -> None:
        d = job.delivery
        final = changes.get("status", "pending") != "pending"
        with self._idle:
            for k, v in changes.items():
                setattr(d, k, v)
            if not final:
                return
            snapshot = replace(d)
        if job.on_done is not None:
            try:
                job.on_done(job.entry, snapshot)
            except Exception:  # recording an outcome must not stop the other deliveries
                log.exception("alerts: recording the outcome of %s delivery %s of rule %r failed", d.channel,
                              d.id, d.rule)
        with self._idle:
            self._unfinished = max(0, self._unfinished - 1)
            self._idle.notify_all()

    def _run(self, jobs: queue.SimpleQueue[Any]) -> None:
        self._serve(jobs, "arsenale-alerts")

    def _expand(self, job: Any) -> tuple[_Job, ...]:
        return (job,) if isinstance(job, _Job) else ()

    def _abandon(self, items: list[Any]) -> None:
        for left in items:
            d = left.delivery
            log.warning("alerts: notifier closed with %s delivery %s of rule %r undelivered: %s",
                        d.channel, d.id, d.rule, d.last_error)
            self._update(left, status="failed", last_error="notifier closed before delivery; "
                                                           f"last error: {d.last_error}")

    def _attempt(self, client: httpx.Client, job: _Job) -> float | None:
        """Deliver once and record the outcome; the delay before the next try, or None when done."""
        d = job.delivery
        attempts = d.attempts + 1
        if d.channel == "log":
            for level, message in job.lines:
                log.log(level, "alert: %s", message)
            self._update(job, status="delivered", attempts=attempts)
            return None
        code: int | None = None
        headers = {"Content-Type": "application/json", "X-Arsenale-Event": job.event,
                   "X-Arsenale-Delivery": str(d.id)}
        if self.secret is not None:
            headers["X-Arsenale-Signature"] = sign(self.secret, job.body)
        try:
            with client.stream("POST", d.url, content=job.body, headers=headers) as response:
                code = response.status_code
                if 200 <= code < 300:
                    self._update(job, status="delivered", attempts=attempts, response_code=code,
                                 last_error=None)
                    return None
                retry, error = code >= 500 or code == 429, f"HTTP {code}"
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            retry, error = True, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - TLS set-up, a URL httpx cannot send: retrying will not help
            retry, error = False, f"{type(exc).__name__}: {exc}"
        if retry and attempts < self.max_attempts:
            self._update(job, attempts=attempts, response_code=code, last_error=error)
            return float(self.backoff * 2 ** (attempts - 1))
        log.warning("alerts: %s delivery %s of rule %r to %s failed after %d attempt(s): %s", d.channel, d.id,
                    d.rule, d.url, attempts, error)
        self._update(job, status="failed", attempts=attempts, response_code=code, last_error=error)
        return None


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


_LIVE: weakref.WeakSet[Notifier] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    deadline = time.monotonic() + 2.0
    for notifier in list(_LIVE):
        try:
            notifier.flush(max(0.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001, S110 - never fail an interpreter exit
            pass
