"""Alert rules on a real store (SQLite and PostgreSQL): fire, deduplicate, resolve, notify, trigger, schedule.

Windows come from a deployed model's logged traffic, as in test_service: a calm window is the training data,
a drifted one has 20 of its 30 columns scaled by 1.5 (drift_share >= 0.5).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from arsenale.config import get_settings
from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.monitoring.alerts import Notifier
from arsenale.monitoring.models import MonitorRun
from arsenale.monitoring.scheduling import run_due_monitors
from arsenale.monitoring.service import MonitorService
from arsenale.pipelines.schedules import Scheduler, next_tick
from arsenale.pipelines.service import PipelineService
from arsenale.platform import Client
from arsenale.serving.inference_log import InferenceLog
from arsenale.store import tables
from arsenale.store.db import read
from arsenale.tracking.models import now_ms
from tests.monitoring.test_alerts import Receiver, receiver  # noqa: F401  (fixture)
from tests.serving.conftest import Fitted, cancer, register, shared_artifacts, store  # noqa: F401  (fixtures)

HOUR = 3_600_000
RULE = "drift_share > 0.3 for 2 windows"
REF_FIELD = "pipeline_ref"  # the field a bad trigger pipeline is reported under


@dataclass
class Env:
    """A deployed model with a monitor `bc-api` (1 h windows) and a way to make windows of traffic."""

    store: Client
    monitors: MonitorService
    cancer: Fitted
    start: int
    made: list[Notifier]

    def window(self, k: int, *, drifted: bool, rows: int = 200) -> int:
        """Log `rows` requests into the k-th hourly window; its end (ms)."""
        end = self.start + k * HOUR
        X = self.cancer.X.iloc[:rows]
        if drifted:
            X = X.copy()
            for column in list(X.columns)[:20]:
                X[column] = X[column] * 1.5
        log = InferenceLog(get_settings().resolved_inference_log(), "bc-api", replica="t")
        predictions = self.cancer.model.predict(self.cancer.X.iloc[:rows])
        for i, (record, p) in enumerate(zip(X.to_dict(orient="records"), predictions)):
            log.log(request_id=f"w{k}-{i}", model="bc", version=1, role="route", inputs=[record],
                    outputs=[int(p)], latency_ms=1.0, timestamp_ms=end - 60_000 + i)
        log.close()
        return end

    def run(self, k: int, *, drifted: bool) -> MonitorRun:
        return self.monitors.run("bc-api", now=self.window(k, drifted=drifted))

    def notifier(self, **kwargs: Any) -> Notifier:
        n = Notifier(**{"external_url": "http://arsenale.test", "backoff": 0.01, "timeout": 2.0, **kwargs})
        self.made.append(n)
        self.monitors.alerts.notifier = n
        return n

    def snapshot(self) -> tuple[Any, ...]:
        """Everything an alert evaluation may change (once the notifications under way have been recorded)."""
        alerts = self.monitors.alerts
        assert alerts.notifier.flush(timeout=30)
        return (alerts.list_rules(), alerts.list_alerts(), len(self.store.audit.entries(limit=None)))


@pytest.fixture
def env(store: Client, cancer: Fitted, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ARSENALE_INFERENCE_LOG", str(tmp_path / "inference"))
    register("bc", cancer)
    store.deployments.create("bc-api", "bc/1")
    monitors = Client(store.uri, artifacts=get_settings().resolved_artifacts()).monitors
    monitors.create("bc-api", "bc-api", window="1h")
    e = Env(store, monitors, cancer, now_ms() - 24 * HOUR, [])
    yield e
    for n in e.made:
        n.close(timeout=5)


def _alert_actions(store: Client) -> list[str]:
    return [e.action for e in store.audit.entries(entity_type="alert", limit=None)]


# ---- firing, deduplication, resolution, replay -------------------------------------------------

def test_a_rule_fires_after_two_breaching_windows_then_resolves(env: Env,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="arsenale.monitoring.alerts")
    alerts = env.monitors.alerts
    notifier = env.notifier()
    rule = alerts.add_rule("bc-api", RULE, notify=["log"], severity="critical")
    assert (rule.name, rule.when, rule.notify, rule.severity, rule.state) == \
        (RULE, RULE, ["log"], "critical", None)

    first = env.run(1, drifted=True)
    assert first.values["drift_share"] > 0.3 and first.alerts == [] and first.alert_error is None
    assert alerts.get_rule(rule.id).state["status"] == "pending"  # type: ignore[index]
    assert alerts.list_alerts() == []

    second = env.run(2, drifted=True)
    (fired,) = second.alerts
    assert (fired.status, fired.rule, fired.rule_id, fired.monitor, fired.severity) == \
        ("firing", RULE, rule.id, "bc-api", "critical")
    assert fired.value == second.values["drift_share"] and fired.threshold == RULE
    assert (fired.run_id, fired.started_at, fired.resolved_at) == (second.id, second.window_end, None)
    evidence = fired.evidence
    assert evidence["values"] == second.values and evidence["run_id"] == second.id
    assert (evidence["model"], evidence["version"], evidence["window_end"]) == ("bc", 1, second.window_end)
    drifted = [c for c, r in (second.report or {})["drift"]["columns"].items() if r["drifted"]]
    assert evidence["drifted_columns"] == drifted and len(drifted) >= 10
    assert alerts.get_rule(rule.id).state["status"] == "firing"  # type: ignore[index]

    # The same window evaluated again (a replay) changes nothing.
    before = env.snapshot()
    assert alerts.evaluate(second) == []
    assert env.snapshot() == before

    third = env.run(3, drifted=True)  # still breaching: the open alert stands, no new one
    assert third.alerts == [] and [a.id for a in alerts.list_alerts()] == [fired.id]

    calm = env.run(4, drifted=False)
    assert calm.values["drift_share"] <= 0.3
    (resolved,) = calm.alerts
    assert (resolved.id, resolved.status, resolved.resolved_at, resolved.resolved_run_id) == \
        (fired.id, "resolved", calm.window_end, calm.id)
    assert alerts.list_alerts(status="firing") == []
    assert [a.id for a in alerts.list_alerts(status="resolved")] == [resolved.id]
    assert alerts.get_rule(rule.id).state["status"] == "ok"  # type: ignore[index]

    assert _alert_actions(env.store) == ["alert.fire", "alert.resolve"]
    fire, resolve = env.store.audit.entries(entity_type="alert", limit=None)
    assert fire.entity_id == str(fired.id) and fire.details["value"] == fired.value
    assert fire.details["drifted_columns"] == drifted and resolve.details["run_id"] == calm.id
    assert env.store.audit.verify().ok

    # Every window replayed, in any order: nothing moves.
    before = env.snapshot()
    for run in (calm, first, third, second, calm):
        assert alerts.evaluate(run) == []
    assert env.snapshot() == before

    assert notifier.flush(timeout=10)
    deliveries = alerts.get_alert(fired.id).deliveries
    assert [(d["channel"], d["event"], d["status"], d["attempts"]) for d in deliveries] == \
        [("log", "firing", "delivered", 1), ("log", "resolved", "delivered", 1)]
    messages = [r.getMessage() for r in caplog.records if r.name == "arsenale.monitoring.alerts"]
    assert any("is firing on monitor bc-api" in m for m in messages)
    assert any("resolved on monitor bc-api" in m for m in messages)

    # A monitor takes its rules and alerts with it; the audit trail keeps their record.
    env.monitors.delete("bc-api")
    assert alerts.list_rules() == [] and alerts.list_alerts() == []
    assert _alert_actions(env.store) == ["alert.fire", "alert.resolve"] and env.store.audit.verify().ok


def test_rules_are_independent_and_deletable(env: Env) -> None:
    alerts = env.monitors.alerts
    quick = alerts.add_rule("bc-api", "dataset_drift == 1", name="drift-now")
    rows = alerts.add_rule("bc-api", "rows < 10 for 3 windows", name="no-traffic")
    run = env.run(1, drifted=True)
    assert [(a.rule, a.status) for a in run.alerts] == [("drift-now", "firing")]
    assert alerts.get_rule(rows.id).state["breaches"] == 0  # type: ignore[index]
    assert [r.name for r in alerts.list_rules("bc-api")] == ["drift-now", "no-traffic"]
    alerts.delete_rule(quick.id)
    assert [r.id for r in alerts.list_rules()] == [rows.id] and alerts.list_alerts() == []
    with pytest.raises(NotFound):
        alerts.delete_rule(quick.id)
    actions = [e.action for e in env.store.audit.entries(entity_type="alert_rule", limit=None)]
    assert actions == ["alert.rule.create", "alert.rule.create", "alert.rule.delete"]
    assert env.store.audit.verify().ok


def test_bad_rules_are_refused_and_change_nothing(env: Env) -> None:
    alerts = env.monitors.alerts
    alerts.add_rule("bc-api", "accuracy < 0.9", name="taken")
    before = env.snapshot()
    refused: list[tuple[Callable[[], Any], type[Exception], str | None]] = [
        (lambda: alerts.add_rule("bc-api", "drift_share >> 0.3"), InvalidInput, "when"),
        (lambda: alerts.add_rule("bc-api", "drift_share > 0.3 for 0 windows"), InvalidInput, "when"),
        (lambda: alerts.add_rule("bc-api", ""), InvalidInput, "when"),
        (lambda: alerts.add_rule("bc-api", 0.3), InvalidInput, "when"),  # type: ignore[arg-type]
        (lambda: alerts.add_rule("no-such-monitor", "rows > 1"), NotFound, "monitor"),
        (lambda: alerts.add_rule("../x", "rows > 1"), InvalidInput, "name"),
        (lambda: alerts.add_rule("bc-api", "rows > 1", notify=["email:ops@example.com"]), InvalidInput,
         "notify"),
        (lambda: alerts.add_rule("bc-api", "rows > 1", notify=["webhook:ftp://example.com"]), InvalidInput,
         "notify"),
        (lambda: alerts.add_rule("bc-api", "rows > 1", notify="log"), InvalidInput, "notify"),
        (lambda: alerts.add_rule("bc-api", "rows > 1", trigger_pipeline="no_colon"), InvalidInput, REF_FIELD),
        (lambda: alerts.add_rule("bc-api", "rows > 1", trigger_pipeline="a:b:c"), InvalidInput, REF_FIELD),
        (lambda: alerts.add_rule("bc-api", "rows > 1", trigger_pipeline="1x:flow"), InvalidInput, REF_FIELD),
        (lambda: alerts.add_rule("bc-api", "rows > 1", severity="page-everyone"), InvalidInput, "severity"),
        (lambda: alerts.add_rule("bc-api", "rows > 1", name=""), InvalidInput, "name"),
        (lambda: alerts.add_rule("bc-api", "rows > 2", name="taken"), Conflict, "name"),
        (lambda: alerts.get_rule(10_000), NotFound, "id"),
        (lambda: alerts.get_rule(True), InvalidInput, "id"),  # type: ignore[arg-type]
        (lambda: alerts.delete_rule(-1), InvalidInput, "id"),
        (lambda: alerts.list_rules("no-such-monitor"), NotFound, "monitor"),
        (lambda: alerts.list_alerts(status="open"), InvalidInput, "status"),
        (lambda: alerts.list_alerts(limit=0), InvalidInput, "limit"),
        (lambda: alerts.get_alert(10_000), NotFound, "id"),
        (lambda: alerts.evaluate({"id": 1}), InvalidInput, "run"),  # type: ignore[arg-type]
    ]
    for call, error, field in refused:
        with pytest.raises(error) as info:
            call()
        assert info.value.field == field, (info.value, field)  # type: ignore[attr-defined]
    assert env.snapshot() == before


# ---- notification ------------------------------------------------------------------------------

def test_a_webhook_receives_the_alertmanager_payload(env: Env, receiver: Receiver) -> None:  # noqa: F811
    notifier = env.notifier()
    rule = env.monitors.alerts.add_rule("bc-api", "drift_share > 0.3", name="input-drift",
                                        severity="critical",
                                        notify=[f"webhook:{receiver.url}", f"slack:{receiver.url}"])
    run = env.run(1, drifted=True)
    (alert,) = run.alerts
    assert notifier.flush(timeout=10)
    webhook, slack = sorted(receiver.requests, key=lambda r: "text" in json.loads(r.body))
    body = json.loads(webhook.body)
    assert (body["version"], body["status"], body["receiver"], body["externalURL"]) == \
        ("4", "firing", "arsenale", "http://arsenale.test")
    (sent,) = body["alerts"]
    assert sent["labels"] == {"alertname": "input-drift", "monitor": "bc-api", "severity": "critical"}
    assert sent["status"] == "firing" and sent["endsAt"] == "0001-01-01T00:00:00Z"
    assert sent["generatorURL"] == "http://arsenale.test/monitoring/bc-api"
    assert str(run.values["drift_share"])[:5] in sent["annotations"]["description"]
    assert webhook.headers["x-arsenale-event"] == "alert.firing"
    assert "[FIRING: critical] input-drift is firing on monitor bc-api" in json.loads(slack.body)["text"]
    deliveries = env.monitors.alerts.get_alert(alert.id).deliveries
    outcomes = [(d["channel"].split(":")[0], d["status"], d["attempts"], d["response_code"])
                for d in deliveries]
    assert sorted(outcomes) == [("slack", "delivered", 1, 200), ("webhook", "delivered", 1, 200)]
    assert env.monitors.alerts.get_rule(rule.id).state["status"] == "firing"  # type: ignore[index]


def test_a_webhook_that_times_out_is_retried_and_recorded_while_the_monitor_runs_on(
        env: Env, receiver: Receiver) -> None:  # noqa: F811
    receiver.default = ("sleep", 3.0)  # answers long after the notifier gave up
    notifier = env.notifier(timeout=0.5, max_attempts=3)
    env.monitors.alerts.add_rule("bc-api", "drift_share > 0.3", notify=[f"webhook:{receiver.url}"])
    started = time.monotonic()
    run = env.run(1, drifted=True)
    assert time.monotonic() - started < 30
    (alert,) = run.alerts
    assert run.alert_error is None and alert.status == "firing"
    (pending,) = alert.deliveries  # recorded before anything was sent
    origin = receiver.url.rsplit("/", 1)[0]  # the path of a webhook URL may hold its token: never shown
    assert (pending["status"], pending["event"], pending["channel"]) == ("pending", "firing",
                                                                         f"webhook:{origin}/…")
    assert [d.status for d in notifier.deliveries()] == ["pending"]  # still trying: the run did not wait

    later = env.run(2, drifted=False)  # the monitor keeps running meanwhile
    assert [a.status for a in later.alerts] == ["resolved"]

    assert notifier.flush(timeout=30)
    assert len(receiver.requests) >= 3
    firing = [d for d in env.monitors.alerts.get_alert(alert.id).deliveries if d["event"] == "firing"]
    assert [(d["status"], d["attempts"]) for d in firing] == [("failed", 3)]
    assert "Timeout" in firing[0]["last_error"]


# ---- trigger pipelines -------------------------------------------------------------------------

FLOWS = '''
import arsenale as ars


@ars.step
def retrain(evidence: dict) -> dict:
    return {"drifted": evidence["drifted_columns"], "run_id": evidence["run_id"],
            "rule": evidence["alert_rule"]}


@ars.pipeline
def retrain_on_drift(evidence=...):
    return retrain(evidence)


@ars.step
def explode(n: int = 1) -> int:
    raise RuntimeError("no data to retrain on")


@ars.pipeline
def broken():
    return explode()
'''


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of pipelines on sys.path (spawned step workers inherit it); its name."""
    name = f"ars_alert_flows_{uuid.uuid4().hex[:10]}"
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / f"{name}.py").write_text(FLOWS)
    monkeypatch.syspath_prepend(str(folder))
    return name


def test_a_firing_rule_runs_its_pipeline_with_the_evidence(env: Env, flows: str) -> None:
    alerts = env.monitors.alerts
    alerts.add_rule("bc-api", "drift_share > 0.3", name="retrain",
                    trigger_pipeline=f"{flows}:retrain_on_drift")
    alerts.add_rule("bc-api", "dataset_drift == 1", name="broken", trigger_pipeline=f"{flows}:broken")
    alerts.add_rule("bc-api", "drifted_columns > 1", name="gone", trigger_pipeline="no_such_module_xyz:flow")
    run = env.run(1, drifted=True)
    assert run.alert_error is None
    by_rule = {a.rule: a for a in run.alerts}
    assert set(by_rule) == {"retrain", "broken", "gone"}

    ok = by_rule["retrain"]
    assert ok.pipeline_error is None and ok.pipeline_run_id is not None
    pipelines = PipelineService.from_client(env.store)
    pipeline_run = pipelines.get_run(ok.pipeline_run_id)
    assert pipeline_run.status.value == "succeeded" and pipeline_run.trigger == f"alert:{ok.id}"
    assert pipeline_run.output("retrain") == {"drifted": ok.evidence["drifted_columns"], "run_id": run.id,
                                              "rule": "retrain"}
    assert json.loads(pipeline_run.params["evidence"])["values"] == run.values

    failed = by_rule["broken"]  # ran and failed: linked, and the failure recorded
    assert failed.pipeline_run_id is not None and "failed" in (failed.pipeline_error or "")
    assert pipelines.get_run(failed.pipeline_run_id).status.value == "failed"
    missing = by_rule["gone"]  # could not even load
    assert missing.pipeline_run_id is None and "no_such_module_xyz" in (missing.pipeline_error or "")
    assert env.monitors.runs("bc-api")[0].id == run.id


# ---- scheduling --------------------------------------------------------------------------------

def _lease(monitors: MonitorService) -> tuple[Any, ...]:
    with read(monitors.engine) as conn:
        m = tables.monitors
        return tuple(conn.execute(select(m.c.next_run_time, m.c.lease_owner, m.c.lease_expires)
                                  .where(m.c.name == "sched")).one())


def test_two_schedulers_run_a_due_monitor_once_per_tick(env: Env) -> None:
    mon = env.monitors.create("sched", "bc-api", window="1h", schedule="*/10 * * * *")
    assert mon.next_run_time is not None and mon.next_run_time == next_tick("*/10 * * * *", mon.creation_time)
    env.monitors.alerts.add_rule("sched", "rows >= 0", name="always")
    due = mon.next_run_time + 1
    artifacts = get_settings().resolved_artifacts()
    schedulers = [Scheduler(PipelineService.from_client(Client(env.store.uri, artifacts=artifacts)),
                            owner=f"s{i}") for i in range(2)]
    assert [s.tick(due - 2) for s in schedulers] == [[], []]  # not due yet

    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def tick(i: int) -> None:
        barrier.wait(timeout=30)
        results[i] = schedulers[i].tick(due)

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ran = [r for batch in results for r in batch]
    assert len(ran) == 1, results
    (result,) = ran
    assert (result.kind, result.schedule_id, result.pipeline_ref, result.status, result.error) == \
        ("monitor", "sched", "monitor:sched", "succeeded", None)
    assert result.trigger.startswith("cron:*/10 * * * *@") and result.pipeline_run_id is None
    (stored,) = env.monitors.runs("sched")
    assert (stored.id, stored.window_end) == (result.monitor_run_id, due)
    (alert,) = env.monitors.alerts.list_alerts("sched")
    assert result.alert_ids == (alert.id,) and alert.run_id == stored.id
    assert _lease(env.monitors) == (next_tick("*/10 * * * *", due), None, None)
    assert [s.tick(due + 1) for s in schedulers] == [[], []]  # the same tick never runs twice

    # The next tick, raced by two bare run_due_monitors on separate services: again exactly once.
    nxt = next_tick("*/10 * * * *", due) + 1
    monitors = [Client(env.store.uri, artifacts=artifacts).monitors for _ in range(2)]
    out: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        out[i] = run_due_monitors(monitors[i], nxt, owner=f"r{i}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(len(batch) for batch in out) == [0, 1], out
    assert len(env.monitors.runs("sched")) == 2 and _lease(env.monitors)[1:] == (None, None)


def test_a_failing_monitor_does_not_stop_pipelines_nor_the_reverse(env: Env,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mon = env.monitors.create("sched", "bc-api", window="1h", schedule="*/10 * * * *")
    assert mon.next_run_time is not None
    pipelines = PipelineService.from_client(env.store)
    bad = pipelines.create_schedule("tests.pipelines.example_pipelines:nope", "*/10 * * * *",
                                    now=mon.next_run_time - 60_000)
    assert bad.next_run_time == mon.next_run_time
    sched = Scheduler(pipelines, owner="solo")
    results = sched.tick(mon.next_run_time + 1)
    assert sorted((r.kind, r.status) for r in results) == [("monitor", "succeeded"), ("pipeline", "error")]

    def explode(self: MonitorService, name: str, *, now: int | None = None) -> MonitorRun:
        raise RuntimeError("inference log unreadable")

    monkeypatch.setattr(MonitorService, "run", explode)
    pipelines.delete_schedule(bad.schedule_id)
    good = pipelines.create_schedule("tests.pipelines.example_pipelines:scheduled", "*/10 * * * *",
                                     params={"n": 2}, now=mon.next_run_time + 1)
    again = (good.next_run_time or 0) + 1
    results = sched.tick(again)
    by_kind = {r.kind: r for r in results}
    assert by_kind["pipeline"].status == "succeeded"
    assert by_kind["monitor"].status == "error"
    assert "inference log unreadable" in (by_kind["monitor"].error or "")
    assert _lease(env.monitors) == (next_tick("*/10 * * * *", again), None, None)  # released, moved on


def test_channel_urls_are_encrypted_at_rest_and_shown_redacted(env: Env) -> None:
    """A webhook URL often carries its token: it is stored encrypted, delivered in full, and shown (API,
    audit trail, delivery records) as scheme://host/… only; `arsenale secrets rotate` re-encrypts it."""
    import sqlalchemy as sa

    from arsenale.monitoring.alerting import _alert_rule
    from arsenale.security.secrets import SecretBox, rotate_all
    from arsenale.store import tables as t

    url = "https://hooks.example/services/T000/B000/s3cr3t-token"
    alerts = env.monitors.alerts
    rule = alerts.add_rule("bc-api", "rows > 1", notify=[f"slack:{url}", "log"])
    assert rule.notify == ["slack:https://hooks.example/…", "log"] == alerts.get_rule(rule.id).notify
    with env.monitors.engine.connect() as conn:
        stored = conn.execute(sa.select(t.alert_rules.c.notify).where(t.alert_rules.c.id == rule.id)).scalar_one()
    assert stored.startswith("enc:v1:") and "s3cr3t" not in stored
    details = [e.details for e in env.store.audit.entries(entity_type="alert_rule")]
    assert "s3cr3t" not in str(details) and "hooks.example/…" in str(details)
    with env.monitors.engine.connect() as conn:  # what the notifier is given: the URL in full
        row = conn.execute(sa.select(t.alert_rules).where(t.alert_rules.c.id == rule.id)).one()
    assert _alert_rule(row, alerts.box).notify == [f"slack:{url}", "log"]
    from arsenale.config import get_settings
    from arsenale.security.secrets import _load_keys, new_key

    keys, _ = _load_keys(get_settings())
    rotated = SecretBox([new_key(), *keys])
    report = rotate_all(env.monitors.engine, rotated)
    assert report.reencrypted["alert_rules.notify"] == 1
    with env.monitors.engine.connect() as conn:
        row = conn.execute(sa.select(t.alert_rules).where(t.alert_rules.c.id == rule.id)).one()
    assert row.notify != stored and _alert_rule(row, rotated).notify == [f"slack:{url}", "log"]


def test_a_channel_can_name_a_stored_secret(env: Env, receiver: Receiver) -> None:  # noqa: F811
    """`webhook:secret:NAME` keeps the URL in the secrets store: read when the alert goes out, so rotating
    the webhook is one `arsenale secrets set`; a missing secret is a failed delivery, never a crash."""
    notifier = env.notifier()
    env.store.secrets.set("ONCALL_HOOK", receiver.url)
    alerts = env.monitors.alerts
    rule = alerts.add_rule("bc-api", "drift_share > 0.3", notify=["webhook:secret:ONCALL_HOOK",
                                                                   "slack:secret:NOT_THERE", "log"])
    assert rule.notify == ["webhook:secret:ONCALL_HOOK", "slack:secret:NOT_THERE", "log"]
    run = env.run(1, drifted=True)
    (alert,) = run.alerts
    assert notifier.flush(timeout=10)
    assert len(receiver.requests) == 1 and json.loads(receiver.requests[0].body)["status"] == "firing"
    outcomes = {d["channel"]: (d["status"], d["last_error"]) for d in alerts.get_alert(alert.id).deliveries}
    assert outcomes["webhook:secret:ONCALL_HOOK"] == ("delivered", None)
    assert outcomes["log"] == ("delivered", None)
    status, error = outcomes["slack:secret:NOT_THERE"]
    assert status == "failed" and "NotFound" in error and "NOT_THERE" in error
    with pytest.raises(InvalidInput, match="secret's name"):
        alerts.add_rule("bc-api", "rows > 1", notify=["webhook:secret:../x"])
