"""Monitors on a real store (SQLite and PostgreSQL): a deployment's logged traffic evaluated per window."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsenale.config import get_settings
from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.monitoring.models import window_seconds
from arsenale.platform import Client
from arsenale.serving.inference_log import InferenceLog
from arsenale.tracking.models import now_ms
from tests.serving.conftest import Fitted, cancer, register, shared_artifacts, store  # noqa: F401  (fixtures)


def _log(rows, predictions, labels, start: int) -> None:  # type: ignore[no-untyped-def]
    log = InferenceLog(get_settings().resolved_inference_log(), "bc-api", replica="t")
    for i, (record, p) in enumerate(zip(rows, predictions)):
        log.log(request_id=f"r{start}-{i}", model="bc", version=1, role="route", inputs=[record], outputs=[int(p)],
                latency_ms=1.0, timestamp_ms=start + i)
        if labels is not None:
            log.feedback(f"r{start}-{i}", int(labels[i]), timestamp_ms=start + i + 1)
    log.close()


def test_a_window_of_live_traffic_is_evaluated_and_stored(store: Client, cancer: Fitted,  # noqa: F811
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_INFERENCE_LOG", str(tmp_path / "inference"))
    register("bc", cancer)
    store.deployments.create("bc-api", "bc/1")
    monitors = Client(store.uri, artifacts=get_settings().resolved_artifacts()).monitors
    mon = monitors.create("bc-api", "bc-api", window="1h", schedule="*/10 * * * *")
    assert (mon.window_s, mon.schedule, mon.reference) == (3600, "*/10 * * * *", "model-contract")

    now = now_ms()
    X = cancer.X.iloc[:200]
    _log(X.to_dict(orient="records"), cancer.model.predict(X), cancer.y.iloc[:200].to_numpy(), now - 60_000)
    calm = monitors.run("bc-api", now=now)
    assert calm.rows == 200 and (calm.model, calm.version) == ("bc", 1)
    assert calm.values["dataset_drift"] == 0.0 and calm.values["quality.errors"] == 0.0
    assert calm.values["labelled"] == 200.0 and calm.values["accuracy"] > 0.9
    assert "drift.mean radius.statistic" in calm.values
    assert calm.report is not None and set(calm.report) == {"drift", "quality"}

    shifted = X.copy()
    for column in list(X.columns)[:20]:
        shifted[column] = shifted[column] * 1.5
    later = now + 3_600_000
    _log(shifted.to_dict(orient="records"), cancer.model.predict(X), None, later - 60_000)
    alarm = monitors.run("bc-api", now=later)
    assert alarm.rows == 200 and alarm.values["dataset_drift"] == 1.0 and alarm.values["drift_share"] >= 0.5
    assert alarm.values["accuracy"] is None and alarm.values["labelled"] == 0.0

    empty = monitors.run("bc-api", now=later + 7_200_000)  # a window with no traffic
    assert empty.rows == 0 and empty.values["dataset_drift"] == 0.0
    history = monitors.runs("bc-api")
    assert [r.id for r in history] == [empty.id, alarm.id, calm.id] and history[0].report is None
    assert monitors.runs("bc-api", with_report=True)[0].report is not None

    # One run by id reads that row alone: the same run as the history's, with or without its report.
    old = monitors.get_run("bc-api", calm.id)
    assert old.report is not None and old == monitors.runs("bc-api", with_report=True)[2]
    assert monitors.get_run("bc-api", calm.id, with_report=False) == history[2]
    assert [e.action for e in store.audit.entries(entity_type="monitor")] == ["monitor.create"]


def test_refused_calls_change_nothing(store: Client, cancer: Fitted) -> None:  # noqa: F811
    register("bc", cancer)
    store.deployments.create("bc-api", "bc/1")
    monitors = Client(store.uri, artifacts=get_settings().resolved_artifacts()).monitors
    monitors.create("bc-api", "bc-api")
    before = (monitors.list(), len(store.audit.entries(limit=None)))
    with pytest.raises(Conflict):
        monitors.create("bc-api", "bc-api")
    with pytest.raises(NotFound):
        monitors.create("other", "no-such-deployment")
    for kwargs, field in [({"window": "soon"}, "window"), ({"window": 0}, "window"), ({"schedule": "every day"},
                          "schedule"), ({"reference": "last-week"}, "reference"), ({"drift_share": 2}, "drift_share")]:
        with pytest.raises(InvalidInput) as err:
            monitors.create("other", "bc-api", **kwargs)
        assert err.value.field == field
    for bad in ["", "../x", "a b"]:
        with pytest.raises(InvalidInput):
            monitors.create(bad, "bc-api")
    with pytest.raises(NotFound):
        monitors.run("missing")
    assert monitors.runs("bc-api") == []  # a monitor that has not run: an empty history
    with pytest.raises(NotFound) as err:  # a monitor that does not exist: not an empty history
        monitors.runs("missing")
    assert err.value.field == "name"
    for name, run_id, error, field in [("missing", 1, NotFound, "name"), ("bc-api", 1, NotFound, "run_id"),
                                       ("../x", 1, InvalidInput, "name"),
                                       ("bc-api", 0, InvalidInput, "run_id"),
                                       ("bc-api", True, InvalidInput, "run_id"),
                                       ("bc-api", "1", InvalidInput, "run_id"),
                                       ("bc-api", 2**31, InvalidInput, "run_id")]:
        with pytest.raises(error) as caught:
            monitors.get_run(name, run_id)  # type: ignore[arg-type]
        assert caught.value.field == field, (name, run_id)
    for bad in ("yes", 1, None):
        with pytest.raises(InvalidInput) as err:
            monitors.runs("bc-api", with_report=bad)  # type: ignore[arg-type]
        assert err.value.field == "with_report"
    assert (monitors.list(), len(store.audit.entries(limit=None))) == before
    monitors.delete("bc-api")
    assert monitors.list() == []
    with pytest.raises(NotFound):
        monitors.delete("bc-api")


def test_window_spellings() -> None:
    assert [window_seconds(w) for w in ("1h", "10m", "30s", "1d", 90)] == [3600, 600, 30, 86400, 90]
    for bad in ("1 week", True, "-1h", 0, 10**9):
        with pytest.raises(InvalidInput):
            window_seconds(bad)
