"""Alert rules on a monitor, kept in the store: each stored window advances them, fires, resolves, notifies.

    alerts = client.monitors.alerts
    alerts.add_rule("fraud-api", "drift_share > 0.3 for 2 windows",
                    notify=["webhook:https://am.example/hook"], trigger_pipeline="flows.fraud:retrain")
    client.monitors.run("fraud-api")        # evaluates the rules on the window it stores
    alerts.list_alerts(status="firing")

`evaluate(run)` advances every enabled rule of the run's monitor with the pure `Evaluator`, in ONE write
transaction that locks the rules (`SELECT … FOR UPDATE`), stores their new state, inserts a firing alert or
resolves the open one, and appends `alert.fire` / `alert.resolve` to the audit trail. So two processes that
evaluate windows of one monitor at once are serialised, and a window evaluated twice (a replay) finds the
state already past it and changes nothing.

Only after that commit does anything leave the process: the events go to the `Notifier` (background delivery
with retries; a slow or dead receiver never holds up the monitor), and a firing rule with `trigger_pipeline`
runs that pipeline. Each delivery is recorded on the alert row as "pending" in the same transaction that
creates the alert, and its outcome (delivered, or failed after its retries) replaces that entry when known, so
no notification is lost silently. A pipeline that fails to load or run is recorded on the alert row
(`pipeline_error`) and never fails the monitor run.

Rules and alerts are their monitor's, so they share its project: under a confined scope another project's rule
or alert (by id, or in a list) reads as absent, like a missing one.

A rule on an LLM monitor must name one of its values (`latency_p95`, `cost_total`, `score.<name>`, … — see
`arsenale.monitoring.llm`): a typo is refused when the rule is added, not left silent forever.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from arsenale.errors import ArsenaleError, Conflict, InvalidInput, NotFound
from arsenale.monitoring.alerts import (
    SECRET_REF,
    AlertEvent,
    AlertRule,
    AlertState,
    Delivery,
    Evaluator,
    Notifier,
    _channel,
    parse_rule,
)
from arsenale.monitoring.models import LLM_REFERENCE, Alert, AlertRuleInfo, MonitorRun, check_monitor_name
from arsenale.security.projects import visible_row
from arsenale.store import alerts as sql
from arsenale.store import monitors as monitors_sql
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.store.db import read, write
from arsenale.tracking.models import now_ms

if TYPE_CHECKING:
    from arsenale.pipelines.service import PipelineService

__all__ = ["PIPELINE_EXECUTOR", "AlertService"]

log = logging.getLogger("arsenale.monitoring.alerting")

STATUSES = ("firing", "resolved")
PIPELINE_EXECUTOR = "local"
EVIDENCE_PARAM = "evidence"
MAX_LIMIT = 10_000


def _check_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise InvalidInput(f"{what} must be a positive integer, got {value!r:.60}", field="id")
    return value


def redact_channel(entry: str) -> str:
    """A channel as the API, the audit trail and delivery records show it: `webhook:https://host/…`. The
    path and query of a webhook URL often hold its token."""
    from arsenale.registry.webhooks import redact_url

    kind, sep, url = entry.partition(":")
    if not sep or kind not in ("webhook", "slack") or url.startswith(SECRET_REF):  # a secret's name is no secret
        return entry
    return f"{kind}:{redact_url(url)}"


def _channels(row: Any, box: Any) -> list[str]:
    """A rule's channels, decrypted (rules stored before encryption read as they are)."""
    return json.loads(box.reveal(row.notify, what=f"the channels of alert rule {row.id}")) if row.notify else []


def _rule_info(row: Any, box: Any) -> AlertRuleInfo:
    return AlertRuleInfo(id=row.id, name=row.name, monitor=row.monitor, when=row.expression,
                         notify=[redact_channel(c) for c in _channels(row, box)], trigger_pipeline=row.trigger_pipeline,
                         severity=row.severity, enabled=bool(row.enabled),
                         state=json.loads(row.state) if row.state else None,
                         creation_time=row.creation_time, created_by=row.created_by)


def _alert_rule(row: Any, box: Any) -> AlertRule:
    """The pure rule the evaluator and notifier work with (validated again: a row is input like any other)."""
    return AlertRule(row.name, row.monitor, parse_rule(row.expression), _channels(row, box), severity=row.severity)


def _alert(row: Any) -> Alert:
    return Alert(id=row.id, rule_id=row.rule_id, rule=row.rule, monitor=row.monitor, severity=row.severity,
                 status=row.status, value=row.value, threshold=row.threshold, started_at=row.started_at,
                 resolved_at=row.resolved_at, run_id=row.run_id, resolved_run_id=row.resolved_run_id,
                 evidence=json.loads(row.evidence), pipeline_run_id=row.pipeline_run_id,
                 pipeline_error=row.pipeline_error, deliveries=json.loads(row.deliveries))


def _pending(notify: Iterable[str], event: str, now: int) -> list[dict[str, Any]]:
    return [{"channel": redact_channel(entry), "event": event, "status": "pending", "attempts": 0, "response_code": None,
             "last_error": None, "queued_at": now, "finished_at": None} for entry in notify]


def _drifted_columns(report: dict[str, Any] | None) -> list[str]:
    columns = ((report or {}).get("drift") or {}).get("columns") or {}
    return [name for name, result in columns.items() if isinstance(result, dict) and result.get("drifted")]


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


class AlertService:
    """Alert rules and alerts of the monitors in one store; `client.monitors.alerts`."""

    def __init__(self, engine: Engine, actor: str, notifier: Notifier | None = None, *,
                 pipelines: PipelineService | Callable[[], PipelineService] | None = None) -> None:
        self.engine = engine
        self.actor = actor
        self.notifier = notifier if notifier is not None else Notifier()
        self._pipelines = pipelines
        self._evaluator = Evaluator()
        self._box: Any = None

    @property
    def box(self) -> Any:
        """Encrypts the rules' channels at rest (webhook URLs carry tokens); built on first use."""
        if self._box is None:
            from arsenale.security.secrets import SecretBox

            self._box = SecretBox.from_settings()
        return self._box

    # ---- rules -----------------------------------------------------------------------------------

    def add_rule(self, monitor: str, when: str, *, name: str | None = None, notify: Iterable[str] = (),
                 trigger_pipeline: str | None = None, severity: str = "warning") -> AlertRuleInfo:
        """A rule on `monitor`: `when` is `metric op threshold [for N windows]`; `name` defaults to it."""
        from arsenale.pipelines.schedules import check_ref

        check_monitor_name(monitor)
        condition = parse_rule(when)
        if isinstance(notify, str) or not isinstance(notify, Iterable):
            raise InvalidInput("notify must be a list of channels (webhook:URL, slack:URL or log)",
                               field="notify")
        rule = AlertRule(str(condition) if name is None else name, monitor, condition, list(notify),
                         severity=severity)  # type: ignore[arg-type]  # validated by AlertRule
        ref = None
        if trigger_pipeline is not None:
            module, qualname = check_ref(trigger_pipeline)
            ref = f"{module}:{qualname}"
        now = now_ms()
        with write(self.engine) as conn:
            watched = monitors_sql.get_monitor(conn, monitor)
            if watched is None:
                raise NotFound(f"no monitor named {monitor!r}", field="monitor")
            if watched.reference == LLM_REFERENCE:  # a fixed set of values: refuse a metric it never has
                from arsenale.monitoring.llm import check_llm_metric

                check_llm_metric(condition.metric)
            if sql.find_rule(conn, monitor, rule.name) is not None:
                raise Conflict(f"monitor {monitor!r} already has a rule named {rule.name!r}", field="name")
            rule_id = sql.insert_rule(conn, name=rule.name, monitor=monitor, expression=str(condition),
                                      notify=self.box.encrypt(json.dumps(rule.notify)), trigger_pipeline=ref,
                                      severity=rule.severity, state=None, enabled=True, creation_time=now,
                                      created_by=self.actor)
            audit_append(conn, AuditRecord(self.actor, "alert.rule.create", "alert_rule", str(rule_id),
                                           {"monitor": monitor, "name": rule.name, "when": str(condition),
                                            "notify": [redact_channel(c) for c in rule.notify],
                                            "trigger_pipeline": ref,
                                            "severity": rule.severity}), now)
        return self.get_rule(rule_id)

    def get_rule(self, rule_id: int) -> AlertRuleInfo:
        _check_id(rule_id, "a rule id")
        with read(self.engine) as conn:
            row = visible_row(sql.get_rule(conn, rule_id))
        if row is None:
            raise NotFound(f"no alert rule with id {rule_id}", field="id")
        return _rule_info(row, self.box)

    def list_rules(self, monitor: str | None = None) -> list[AlertRuleInfo]:
        """Every rule, or `monitor`'s (NotFound for a monitor that does not exist)."""
        with read(self.engine) as conn:
            if monitor is not None:
                check_monitor_name(monitor)
                if monitors_sql.get_monitor(conn, monitor) is None:
                    raise NotFound(f"no monitor named {monitor!r}", field="monitor")
            return [_rule_info(r, self.box) for r in sql.list_rules(conn, monitor)]

    def delete_rule(self, rule_id: int) -> None:
        """The rule and its alerts (the audit trail keeps their record)."""
        _check_id(rule_id, "a rule id")
        now = now_ms()
        with write(self.engine) as conn:
            row = visible_row(sql.get_rule(conn, rule_id))
            if row is None or not sql.delete_rule(conn, rule_id):
                raise NotFound(f"no alert rule with id {rule_id}", field="id")
            audit_append(conn, AuditRecord(self.actor, "alert.rule.delete", "alert_rule", str(rule_id),
                                           {"monitor": row.monitor, "name": row.name}), now)

    # ---- alerts ----------------------------------------------------------------------------------

    def get_alert(self, alert_id: int) -> Alert:
        _check_id(alert_id, "an alert id")
        with read(self.engine) as conn:
            row = visible_row(sql.get_alert(conn, alert_id))
        if row is None:
            raise NotFound(f"no alert with id {alert_id}", field="id")
        return _alert(row)

    def list_alerts(self, monitor: str | None = None, status: str | None = None,
                    limit: int = 100) -> list[Alert]:
        """Newest first, optionally of one monitor and/or one status ("firing" or "resolved")."""
        if monitor is not None:
            check_monitor_name(monitor)
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be 'firing' or 'resolved', got {status!r:.40}", field="status")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}", field="limit")
        with read(self.engine) as conn:
            return [_alert(r) for r in sql.list_alerts(conn, monitor, status, limit)]

    # ---- evaluation ------------------------------------------------------------------------------

    def evaluate(self, run: MonitorRun) -> list[Alert]:
        """Advance the rules of `run.monitor` by the stored window `run.id`; the alerts it fired or resolved.

        Values are read back from the store, not taken from `run`, so what fires is what was recorded.
        """
        if not isinstance(run, MonitorRun):
            raise InvalidInput("evaluate takes the MonitorRun that MonitorService.run stored", field="run")
        now = now_ms()
        changed: list[tuple[int | None, AlertRule, AlertEvent, str | None, dict[str, Any]]] = []
        with write(self.engine) as conn:
            rules = sql.lock_rules(conn, run.monitor)
            if not rules:
                return []
            stored = monitors_sql.get_run(conn, run.monitor, run.id)
            if stored is None:
                raise NotFound(f"monitor {run.monitor!r} has no run {run.id}", field="run")
            values = json.loads(stored.values)
            report: dict[str, Any] | None = None
            for row in rules:
                try:
                    rule = _alert_rule(row, self.box)
                    state = AlertState.from_json(row.state) if row.state else None
                    new_state, events = self._evaluator.evaluate(rule, values, stored.window_end, state)
                except ArsenaleError as exc:  # a damaged row must not keep the monitor's other rules silent
                    log.error("alerts: rule %s on monitor %r cannot be evaluated: %s", row.id, run.monitor,
                              exc.message)
                    continue
                if new_state == state:  # a replayed or late window: already accounted for
                    continue
                sql.set_rule_state(conn, row.id, new_state.to_json())
                for event in events:
                    if report is None:
                        report = json.loads(stored.report) if stored.report else {}
                    changed.append(self._record(conn, row, rule, event, stored, values, report, now))
        results = []
        for alert_id, rule, event, ref, evidence in changed:
            if alert_id is not None:
                self._notify(alert_id, rule, event)
                if event.status == "firing" and ref is not None:
                    self._trigger(alert_id, ref, evidence)
                results.append(self.get_alert(alert_id))
        return results

    def _record(self, conn: Connection, row: Any, rule: AlertRule, event: AlertEvent, stored: Any,
                values: dict[str, Any], report: dict[str, Any], now: int
                ) -> tuple[int | None, AlertRule, AlertEvent, str | None, dict[str, Any]]:
        """Insert or resolve the alert row of one event and audit it, inside the evaluation's transaction."""
        value = _finite(event.value)
        if event.status == "firing":
            evidence = {"alert_rule": rule.name, "rule_id": row.id, "monitor": rule.monitor,
                        "condition": event.condition, "value": value, "run_id": stored.id,
                        "window_start": stored.window_start, "window_end": stored.window_end,
                        "model": stored.model, "version": stored.version, "values": values,
                        "drifted_columns": _drifted_columns(report)}
            alert_id: int | None = sql.insert_alert(
                conn, rule_id=row.id, monitor=rule.monitor, status="firing", value=value,
                threshold=event.condition, started_at=stored.window_end, resolved_at=None, run_id=stored.id,
                resolved_run_id=None,
                evidence=json.dumps(evidence, allow_nan=False), pipeline_run_id=None, pipeline_error=None,
                deliveries=json.dumps(_pending(rule.notify, "firing", now)))
            audit_append(conn, AuditRecord(self.actor, "alert.fire", "alert", str(alert_id),
                                           {"monitor": rule.monitor, "rule": rule.name, "rule_id": row.id,
                                            "condition": event.condition, "value": value, "run_id": stored.id,
                                            "severity": rule.severity,
                                            "drifted_columns": evidence["drifted_columns"]}), now)
            return alert_id, rule, event, row.trigger_pipeline, evidence
        open_row = sql.open_alert(conn, row.id)
        alert_id = None if open_row is None else int(open_row.id)
        if open_row is not None:
            deliveries = json.loads(open_row.deliveries) + _pending(rule.notify, "resolved", now)
            sql.update_alert(conn, open_row.id, status="resolved", resolved_at=stored.window_end,
                             resolved_run_id=stored.id, deliveries=json.dumps(deliveries))
        else:
            log.warning("alerts: rule %r on monitor %r resolved with no open alert on record", rule.name,
                        rule.monitor)
        audit_append(conn, AuditRecord(self.actor, "alert.resolve", "alert", str(alert_id),
                                       {"monitor": rule.monitor, "rule": rule.name, "rule_id": row.id,
                                        "condition": event.condition, "value": value, "run_id": stored.id}),
                     now)
        return alert_id, rule, event, None, {}

    # ---- after the commit: notifications and pipelines -------------------------------------------

    def _resolve(self, entry: str) -> str:
        """`webhook:secret:NAME` with the stored secret's URL; any other channel as it is."""
        kind, _, rest = entry.partition(":")
        if not rest.startswith(SECRET_REF):
            return entry
        from arsenale.security.secrets import SecretService

        return f"{kind}:{SecretService(self.engine, self.actor).resolve(rest[len(SECRET_REF):])}"

    def _notify(self, alert_id: int, rule: AlertRule, event: AlertEvent) -> None:
        if not rule.notify:
            return
        original: dict[str, str] = {}  # the channel sent to -> the channel as the rule names it
        for entry in rule.notify:
            try:
                resolved = self._resolve(entry)
                _channel(resolved)  # a secret's value must be a channel URL like any other
                original[resolved] = entry
            except ArsenaleError as exc:  # a missing secret, a key that cannot open it: recorded, not raised
                self._record_delivery(alert_id, event.status, entry, {
                    "status": "failed", "last_error": f"{type(exc).__name__}: {exc.message}",
                    "finished_at": now_ms()})
        if not original:
            return
        rule = replace(rule, notify=list(original))

        def done(entry: str, delivery: Delivery) -> None:
            self._record_delivery(alert_id, event.status, original.get(entry, entry), {
                "status": delivery.status, "attempts": delivery.attempts,
                "response_code": delivery.response_code, "last_error": delivery.last_error,
                "finished_at": now_ms()})

        try:
            self.notifier.notify(rule, [event], on_done=done)
        except Exception as exc:  # noqa: BLE001 - e.g. no thread can start at shutdown: record, do not raise
            log.error("alerts: %s of alert %s could not be queued: %s", event.status, alert_id, exc)
            for entry in rule.notify:
                self._record_delivery(alert_id, event.status, original.get(entry, entry), {
                    "status": "failed", "last_error": f"not queued: {type(exc).__name__}: {exc}",
                    "finished_at": now_ms()})

    def _record_delivery(self, alert_id: int, event: str, entry: str, outcome: dict[str, Any]) -> None:
        """Replace the pending entry of (event, channel) on the alert row with its outcome."""
        with write(self.engine) as conn:
            row = sql.get_alert(conn, alert_id, lock=True)
            if row is None:  # deleted with its rule or monitor meanwhile
                return
            deliveries = json.loads(row.deliveries)
            channel = redact_channel(entry)
            for d in deliveries:
                if d.get("channel") == channel and d.get("event") == event and d.get("status") == "pending":
                    d.update(outcome)
                    break
            else:
                deliveries.append({"channel": channel, "event": event, **outcome})
            sql.update_alert(conn, alert_id, deliveries=json.dumps(deliveries))

    def _pipeline_service(self) -> PipelineService:
        source = self._pipelines
        if source is None:
            raise InvalidInput("this alert service was built without a pipeline service, so it cannot run "
                               "trigger pipelines", field="trigger_pipeline")
        from arsenale.pipelines.service import PipelineService

        service = source if isinstance(source, PipelineService) else source()
        self._pipelines = service
        return service

    def _trigger(self, alert_id: int, ref: str, evidence: dict[str, Any]) -> None:
        """Run the rule's pipeline for a firing alert. A pipeline with an `evidence` argument receives the
        evidence; any other runs without params. The trigger `alert:<id>` names the alert either way."""
        from arsenale.pipelines.runner import run_pipeline
        from arsenale.pipelines.schedules import load_pipeline

        run_id, error = None, None
        try:
            pipeline = load_pipeline(ref)
            params = {EVIDENCE_PARAM: evidence} if EVIDENCE_PARAM in pipeline.signature.parameters else {}
            run = run_pipeline(pipeline, PIPELINE_EXECUTOR, params, service=self._pipeline_service(),
                               trigger=f"alert:{alert_id}")
            run_id = run.pipeline_run_id
            if run.status.value != "succeeded":
                error = f"pipeline run {run_id} ended {run.status.value}"
        except Exception as exc:  # noqa: BLE001 - a broken pipeline must not break the monitor run
            error = exc.message if isinstance(exc, ArsenaleError) else f"{type(exc).__name__}: {exc}"
        if error is not None:
            log.error("alerts: pipeline %s triggered by alert %s: %s", ref, alert_id, error)
        try:
            with write(self.engine) as conn:
                sql.update_alert(conn, alert_id, pipeline_run_id=run_id, pipeline_error=error)
        except Exception:  # the pipeline ran (its run is stored); only the link is missing
            log.exception("alerts: recording pipeline run %s on alert %s failed", run_id, alert_id)
