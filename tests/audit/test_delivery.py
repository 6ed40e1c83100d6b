"""Delivery metrics replayed from the audit trail of a real history, on SQLite, PostgreSQL and over HTTP.

The history is made with the real services under a frozen clock (every `now_ms` the services stamp
audit entries with reads it), so each metric has one exact expected value. Hours after T0:

     0  run r1 starts              10  run r2 starts           44  run r3 starts (retraining)
     2  churn v1 registered (r1)   12  churn v2 registered (r2) 46  churn v3 registered (r3)
    20  fraud v1 registered without a run
    24  churn-api created with churn/1                          → churn/1 serves: lead 24 h
    25  monitor churn-drift on churn-api, rules "drift_share > 0.3" and "rows > 10"
    26  fraud-api created with fraud/1                          → fraud/1 serves: no run
    30  canary churn/2 at 25%; 31 advanced to 50% (an even split: churn/1 stays primary);
    32  advanced to 100%                                        → churn/2 serves: lead 22 h
    33  promoted
    40  a monitor window of drifted traffic: the drift alert fires, and so does "rows > 10"
    41  alice rolls churn-api back (churn/2 → churn/1)
    48  canary churn/3 at 50%; 49 advanced to 100%              → churn/3 serves: lead 5 h, 9 h after the alert
    50  promoted
    55  fraud v2 registered (run r4, started at 52); 56 canary fraud/2 at 10%;
    57  the canary controller rolls it back
    60  monitor fraud-mon on fraud-api; 61 deleted
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arsenale.audit.delivery import _primary, _quantile, delivery_metrics, is_drift_metric
from arsenale.audit.models import DeliveryReport
from arsenale.config import get_settings
from arsenale.errors import InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.registry.contract import build_contract
from arsenale.registry.models import ModelFile
from arsenale.serving.inference_log import InferenceLog
from arsenale.serving.models import Decision

HOUR = 3_600_000
T0 = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
END = T0 + 72 * HOUR
COLUMNS = ("tenure", "spend", "calls")

# Every module whose `now_ms` stamps what the history writes (imported first, so that the name is there).
_CLOCKED = ("arsenale.tracking.service", "arsenale.registry.service", "arsenale.registry.webhooks",
            "arsenale.serving.service", "arsenale.monitoring.service", "arsenale.monitoring.alerting",
            "arsenale.monitoring.alerts", "arsenale.audit.service", "arsenale.audit.delivery",
            "arsenale.server.dashboard_deployments")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """What every patched `now_ms` answers; `at(h)` moves it to T0 + h hours."""

    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def at(self, hours: float) -> int:
        self.t = T0 + int(hours * HOUR)
        return self.t


def freeze(mp: pytest.MonkeyPatch, start: int = T0) -> Clock:
    from arsenale.tracking import models

    real = models.now_ms
    clock = Clock(start)
    for name in _CLOCKED:
        importlib.import_module(name)
    for name, module in list(sys.modules.items()):
        if name.startswith("arsenale") and getattr(module, "now_ms", None) is real:
            mp.setattr(module, "now_ms", clock)
    return clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return freeze(monkeypatch)


def training_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({c: rng.normal(10.0 * (i + 1), 1.0, 300) for i, c in enumerate(COLUMNS)})


@dataclass
class History:
    runs: dict[str, str]  # r1..r4 → run id
    alert_ids: dict[str, str]  # rule name → alert id


def register(client: Client, tmp: Path, model: str, run_id: str | None, contract: dict[str, Any]) -> int:
    blob = tmp / f"{model}-weights.bin"
    blob.write_bytes(b"weights of " + model.encode())
    digest, size = client.registry.upload_file(blob)
    mv = client.registry.create_version(model, files=[ModelFile(path="weights.bin", digest=digest, size=size)],
                                        flavor="sklearn", flavor_meta={}, contract=contract, run_id=run_id)
    return mv.version


def decide(client: Client, name: str, action: str, step: float, reason: str) -> None:
    dep = client.deployments.get(name)
    decision = Decision(deployment=name, timestamp=dep.last_update_time, action=action,  # type: ignore[arg-type]
                        step=step, reason=reason)
    client.deployments.apply_decision(name, decision, expected_revision=dep.revision)


def drifted_window(end: int, rows: int = 200) -> None:
    """Log `rows` requests answered by churn/2 in the hour before `end`, every column far from training."""
    frame = training_frame().iloc[:rows] + 50.0
    log = InferenceLog(get_settings().resolved_inference_log(), "churn-api", replica="t")
    for i, record in enumerate(frame.to_dict(orient="records")):
        log.log(request_id=f"r{i}", model="churn", version=2, role="route", inputs=[record], outputs=[0],
                latency_ms=1.0, timestamp_ms=end - 30 * 60_000 + i)
    log.close()


def build_history(client: Client, clock: Clock, tmp: Path) -> History:
    contract = build_contract(training_frame()).model_dump(mode="json")
    exp = client.tracking.create_experiment("churn-training").experiment_id
    runs = {}
    for key, start in (("r1", 0), ("r2", 10), ("r3", 44), ("r4", 52)):
        runs[key] = client.tracking.create_run(exp, run_name=key, start_time=T0 + start * HOUR).info.run_id
    d = client.deployments

    clock.at(2)
    assert register(client, tmp, "churn", runs["r1"], contract) == 1
    clock.at(12)
    assert register(client, tmp, "churn", runs["r2"], contract) == 2
    clock.at(20)
    assert register(client, tmp, "fraud", None, contract) == 1
    clock.at(24)
    d.create("churn-api", "churn/1")
    clock.at(25)
    client.monitors.create("churn-drift", "churn-api", window="1h")
    client.monitors.alerts.add_rule("churn-drift", "drift_share > 0.3", name="drift")
    client.monitors.alerts.add_rule("churn-drift", "rows > 10", name="traffic")
    clock.at(26)
    d.create("fraud-api", "fraud/1")
    clock.at(30)
    d.start_canary("churn-api", "churn/2", steps=(25, 50, 100))
    clock.at(31)
    decide(client, "churn-api", "advance", 25, "healthy at 25%")
    clock.at(32)
    decide(client, "churn-api", "advance", 50, "healthy at 50%")
    clock.at(33)
    decide(client, "churn-api", "promote", 100, "healthy at 100%")
    clock.at(40)
    drifted_window(clock.t)
    fired = client.monitors.run("churn-drift", now=clock.t).alerts
    assert sorted((a.rule, a.status) for a in fired) == [("drift", "firing"), ("traffic", "firing")]
    clock.at(41)
    d.rollback("churn-api", reason="complaints from support")
    clock.at(46)
    assert register(client, tmp, "churn", runs["r3"], contract) == 3
    clock.at(48)
    d.start_canary("churn-api", "churn/3", steps=(50, 100))
    clock.at(49)
    decide(client, "churn-api", "advance", 50, "healthy at 50%")
    clock.at(50)
    decide(client, "churn-api", "promote", 100, "healthy at 100%")
    clock.at(55)
    assert register(client, tmp, "fraud", runs["r4"], contract) == 2
    clock.at(56)
    d.start_canary("fraud-api", "fraud/2", steps=(10, 100))
    clock.at(57)
    decide(client, "fraud-api", "rollback", 10, "error rate 9% > 1%")
    clock.at(60)
    client.monitors.create("fraud-mon", "fraud-api", window="1h")
    clock.at(61)
    client.monitors.delete("fraud-mon")
    clock.at(72)
    return History(runs, {a.rule: str(a.id) for a in fired})


@pytest.fixture
def history(client: Client, clock: Clock, tmp_path: Path) -> Iterator[History]:
    yield build_history(client, clock, tmp_path)


def test_the_history_replayed_exactly(client: Client, history: History) -> None:
    report = client.metrics.delivery(since=iso(T0), until=iso(END))
    assert (report.since, report.until, report.model, report.ignored_entries) == (T0, END, None, 0)

    lead = report.lead_time
    assert [(v.model, v.version, v.run_id, v.run_start, v.serving_since, v.deployment, v.action, v.lead_time_s)
            for v in lead.versions] == [
        ("churn", 1, history.runs["r1"], T0, T0 + 24 * HOUR, "churn-api", "create", 24 * 3600.0),
        ("fraud", 1, None, None, T0 + 26 * HOUR, "fraud-api", "create", None),
        ("churn", 2, history.runs["r2"], T0 + 10 * HOUR, T0 + 32 * HOUR, "churn-api", "advance", 22 * 3600.0),
        ("churn", 3, history.runs["r3"], T0 + 44 * HOUR, T0 + 49 * HOUR, "churn-api", "advance", 5 * 3600.0),
    ]
    assert lead.versions[1].reason == "registered without a run"
    # lead times 5 h, 22 h, 24 h: the median is 22 h; p90 sits 80% of the way from 22 h to 24 h
    assert (lead.count, lead.median_s, lead.p90_s, lead.reason) == (3, 22 * 3600.0, 23.6 * 3600.0, None)

    freq = report.deployment_frequency
    assert (freq.changes, freq.by_action, freq.days, freq.reason) == (5, {"create": 2, "canary": 3}, 3.0, None)
    assert freq.per_day == pytest.approx(5 / 3, rel=1e-12) and freq.per_week == pytest.approx(35 / 3, rel=1e-12)

    rb = report.rollback_rate
    assert (rb.rollbacks, rb.changes, rb.rate, rb.reason) == (2, 5, 0.4, None)
    assert [(e.timestamp, e.deployment, e.action, e.from_version, e.to_version, e.why) for e in rb.events] == [
        (T0 + 41 * HOUR, "churn-api", "rollback", "churn/2", "churn/1", "complaints from support"),
        (T0 + 57 * HOUR, "fraud-api", "canary_rollback", "fraud/1", "fraud/1", "error rate 9% > 1%"),
    ]

    mon = report.monitoring
    assert (mon.production_models, mon.monitored, mon.share, mon.unmonitored, mon.reason) == \
        (2, 1, 0.5, ["fraud"], None)
    assert [(c.model, c.deployments, c.monitors, c.monitored) for c in mon.models] == \
        [("churn", ["churn-api"], ["churn-drift"], True), ("fraud", ["fraud-api"], [], False)]

    ap = report.alert_to_promotion
    assert (ap.alerts, ap.promoted, ap.median_s, ap.reason) == (1, 1, 9 * 3600.0, None)  # "rows > 10" is no drift
    (item,) = ap.items
    assert (item.alert_id, item.fired_at, item.monitor, item.condition, item.deployment, item.model,
            item.promoted_version, item.promoted_at, item.time_to_promotion_s) == \
        (history.alert_ids["drift"], T0 + 40 * HOUR, "churn-drift", "drift_share > 0.3", "churn-api", "churn", 3,
         T0 + 49 * HOUR, 9 * 3600.0)

    # Datetimes (naive ones are UTC) say the same as ISO text; the report survives JSON both ways.
    start = datetime(2024, 3, 4)
    assert client.metrics.delivery(since=start, until=start + timedelta(hours=72)) == report
    assert DeliveryReport.model_validate_json(report.model_dump_json()) == report
    # Computed in this process from the trail's pages (over HTTP too) or by the server: the same report.
    assert delivery_metrics(client, since=iso(T0), until=iso(END)) == report
    assert client.audit.verify().ok


def test_windows_models_and_pages(client: Client, history: History) -> None:
    m = client.metrics
    # The last 37 hours: churn/3 is the only version that started serving; two changes, two rollbacks.
    late = m.delivery(since="37h", until=iso(END))
    assert late.since == T0 + 35 * HOUR
    assert [(v.model, v.version) for v in late.lead_time.versions] == [("churn", 3)]
    assert (late.lead_time.median_s, late.lead_time.p90_s) == (5 * 3600.0, 5 * 3600.0)
    assert (late.deployment_frequency.changes, late.rollback_rate.rollbacks, late.rollback_rate.rate) == (2, 2, 1.0)
    assert late.alert_to_promotion.median_s == 9 * 3600.0

    # Until hour 45: the state then (churn/1 back in production, churn/3 not yet served, fraud-mon not created).
    early = m.delivery(since=iso(T0), until=iso(T0 + 45 * HOUR))
    assert [(v.model, v.version) for v in early.lead_time.versions] == [("churn", 1), ("fraud", 1), ("churn", 2)]
    (item,) = early.alert_to_promotion.items
    assert (item.promoted_version, item.time_to_promotion_s) == (None, None)
    assert item.reason == f"no new version of 'churn' served production by {iso(T0 + 45 * HOUR)}"
    assert (early.alert_to_promotion.alerts, early.alert_to_promotion.promoted, early.alert_to_promotion.median_s) \
        == (1, 0, None)
    assert early.alert_to_promotion.reason == "no drift alert was followed by a new version serving production"
    assert (early.monitoring.share, early.monitoring.unmonitored) == (0.5, ["fraud"])
    assert (early.rollback_rate.rollbacks, early.rollback_rate.changes) == (1, 3)

    # One model: its versions, the changes it took part in, its rollbacks and coverage; an honest 0% monitored.
    fraud = m.delivery(since=iso(T0), until=iso(END), model="fraud")
    assert fraud.model == "fraud"
    assert [(v.version, v.lead_time_s) for v in fraud.lead_time.versions] == [(1, None)]
    assert (fraud.lead_time.median_s, fraud.lead_time.reason) == \
        (None, "no version that started serving production has a run with a start time")
    assert (fraud.deployment_frequency.changes, fraud.deployment_frequency.by_action) == (2, {"create": 1, "canary": 1})
    assert (fraud.rollback_rate.rollbacks, fraud.rollback_rate.rate) == (1, 0.5)
    assert (fraud.monitoring.production_models, fraud.monitoring.share, fraud.monitoring.unmonitored) == \
        (1, 0.0, ["fraud"])
    assert (fraud.alert_to_promotion.alerts, fraud.alert_to_promotion.median_s) == (0, None)
    assert fraud.alert_to_promotion.reason == \
        f"no drift alerts fired of model 'fraud' between {iso(T0)} and {iso(END)}"
    churn = m.delivery(since=iso(T0), until=iso(END), model="churn")
    assert (churn.lead_time.count, churn.deployment_frequency.changes, churn.rollback_rate.rollbacks,
            churn.monitoring.share, churn.alert_to_promotion.promoted) == (3, 3, 1, 1.0, 1)

    # since defaults to the trail's first entry, until to now (the clock: hour 72)
    whole = m.delivery()
    assert (whole.since, whole.until) == (client.audit.entries(limit=1)[0].timestamp, END)
    # A duration for until is before now; for since, before until.
    assert (m.delivery(since="1d", until="2d").since, m.delivery(since="1d", until="2d").until) == \
        (END - 3 * 24 * HOUR, END - 2 * 24 * HOUR)

    # The trail read one entry per page gives the same report as one page of 10,000.
    full = delivery_metrics(client, since=iso(T0), until=iso(END))
    assert delivery_metrics(client, since=iso(T0), until=iso(END), page_size=1) == full
    assert delivery_metrics(client, since=iso(T0), until=iso(END), page_size=7) == full
    assert full.entries_read == len([e for e in client.audit.entries(limit=None)
                                     if e.entity_type in ("deployment", "monitor") or e.action == "alert.fire"])
    for bad in (0, -1, 10_001, 10**12, True, "100", 2.5):
        with pytest.raises(InvalidInput) as err:
            delivery_metrics(client, page_size=bad)  # type: ignore[arg-type]
        assert err.value.field == "page_size"


def test_bad_input_is_refused_and_changes_nothing(client: Client, history: History) -> None:
    before = client.audit.entries(limit=None)
    m = client.metrics
    refused: list[tuple[dict[str, Any], type[Exception], str, str]] = [
        ({"since": "yesterday"}, InvalidInput, "since", "ISO 8601"),
        ({"since": "2024-13-45"}, InvalidInput, "since", "ISO 8601"),
        ({"since": "-3d"}, InvalidInput, "since", "ISO 8601"),
        ({"since": "0d"}, InvalidInput, "since", "positive duration"),
        ({"since": "30 fortnights"}, InvalidInput, "since", "positive duration"),
        ({"since": "1969-12-31"}, InvalidInput, "since", "before 1970-01-01"),
        ({"since": "9" * 30 + "w"}, InvalidInput, "since", "before 1970-01-01"),
        ({"until": datetime(1, 1, 1)}, InvalidInput, "until", "before 1970-01-01"),
        ({"since": ""}, InvalidInput, "since", "ISO 8601"),
        ({"since": iso(END + HOUR)}, InvalidInput, "since", "is in the future"),
        ({"since": iso(T0 + 10 * HOUR), "until": iso(T0 + 5 * HOUR)}, InvalidInput, "since", "is after until"),
        ({"until": iso(END + HOUR)}, InvalidInput, "until", "is in the future"),
        ({"until": "soon"}, InvalidInput, "until", "ISO 8601"),
        ({"since": 1_700_000_000_000}, InvalidInput, "since", "ISO 8601"),
        ({"model": "nope"}, NotFound, "model", "no registered model named 'nope'"),
        ({"model": "a/b"}, InvalidInput, "model", "must not contain"),
        ({"model": 42}, InvalidInput, "model", ""),
    ]
    for kwargs, error, field, message in refused:
        with pytest.raises(error) as err:
            m.delivery(**kwargs)
        assert err.value.field == field, kwargs  # type: ignore[attr-defined]
        assert message in err.value.message, (kwargs, err.value.message)  # type: ignore[attr-defined]
    assert client.audit.entries(limit=None) == before


def test_an_empty_trail_has_no_data_not_zeros(client: Client, clock: Clock) -> None:
    clock.at(1)
    report = client.metrics.delivery()
    assert (report.since, report.until, report.entries_read) == (T0 + HOUR, T0 + HOUR, 0)
    assert report.lead_time.median_s is None and report.lead_time.p90_s is None
    assert report.deployment_frequency.per_day is None and report.deployment_frequency.per_week is None
    assert report.deployment_frequency.reason == "the window is empty (since equals until)"
    assert report.rollback_rate.rate is None and report.monitoring.share is None
    assert report.alert_to_promotion.median_s is None
    for reason in (report.lead_time.reason, report.rollback_rate.reason, report.monitoring.reason,
                   report.alert_to_promotion.reason):
        assert reason

    # A window with a trail but no deployments: counts of 0, and no rate made up from them.
    client.tracking.create_experiment("nothing-deployed")
    clock.at(30)
    quiet = client.metrics.delivery(since="1d")
    assert (quiet.deployment_frequency.changes, quiet.deployment_frequency.per_week) == (0, None)
    assert quiet.deployment_frequency.reason == \
        f"no production changes between {iso(T0 + 6 * HOUR)} and {iso(T0 + 30 * HOUR)}"
    assert (quiet.rollback_rate.rollbacks, quiet.rollback_rate.rate) == (0, None)
    assert quiet.monitoring.reason == f"no model answered any deployment's traffic at {iso(T0 + 30 * HOUR)}"


def test_entries_recorded_by_hand_are_counted_as_ignored(client: Client, history: History) -> None:
    before = client.metrics.delivery(since=iso(T0), until=iso(END))
    client.audit.record("deployment.promote", "deployment", "churn-api", {"routes": "everything to v9"})
    client.audit.record("deployment.split", "deployment", "churn-api", {"routes": {"churn/x": 100}})
    client.audit.record("monitor.create", "monitor", "ghost", {"deployment": 7})
    after = client.metrics.delivery(since=iso(T0), until=iso(END))
    assert after.ignored_entries == 3
    assert after.model_dump(exclude={"entries_read", "ignored_entries"}) == \
        before.model_dump(exclude={"entries_read", "ignored_entries"})


# ---- the rules, without a store -------------------------------------------------------------------------

def test_the_primary_route_keeps_the_incumbent_on_a_tie() -> None:
    a, b, c = ("m", 1), ("m", 2), ("m", 10)
    assert _primary({a: 50.0, b: 50.0}, a) == a
    assert _primary({a: 50.0, b: 50.0}, b) == b
    assert _primary({c: 50.0, b: 50.0}, None) == b  # by version number, not by text ("m/10" < "m/2")
    assert _primary({a: 40.0, b: 60.0}, a) == b
    assert _primary({a: 0.0}, a) is None


def test_drift_metrics_are_told_from_other_alerts() -> None:
    for condition in ("drift_share > 0.3 for 2 windows", "dataset_drift == 1", "drifted_columns >= 3",
                      "drift.age.statistic > 0.2"):
        assert is_drift_metric(condition), condition
    others: tuple[object, ...] = ("rows > 10", "accuracy < 0.9", "quality.errors >= 1", "drift > 1", "", None, 3)
    for other in others:
        assert not is_drift_metric(other), other


@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=50),
       st.sampled_from([0.5, 0.9]))
def test_quantiles_interpolate_like_numpy(values: list[float], q: float) -> None:
    got = _quantile(sorted(values), q)
    assert math.isclose(got, float(np.quantile(values, q)), rel_tol=1e-9, abs_tol=1e-6)



def test_the_remote_client_has_the_local_services_methods() -> None:
    import inspect

    from arsenale.audit.delivery import MetricsService
    from arsenale.client.metrics import MetricsClient

    def public(cls: type) -> dict[str, inspect.Signature]:
        return {n: inspect.signature(f) for n, f in vars(cls).items() if not n.startswith("_") and callable(f)}

    assert public(MetricsClient) == public(MetricsService) and "delivery" in public(MetricsService)
