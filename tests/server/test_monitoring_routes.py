"""Monitors over HTTP on a real store (SQLite and PostgreSQL): `Client(url).monitors` gives what the local
service gives, bad requests get a 4xx naming the field and change nothing, and /metrics exports every
monitor's newest evaluation, read at scrape time."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from arsenale.config import get_settings
from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.server.app import create_app
from arsenale.server.monitor_metrics import MonitorCollector
from arsenale.server.routers.monitoring import REPORT_CSP, report_html
from arsenale.serving.inference_log import InferenceLog
from arsenale.store import monitors as sql
from arsenale.store.db import get_engine, write
from arsenale.tracking.models import now_ms
from tests.conftest import LiveServer
from tests.server.test_app import BAD, EXISTS, MISSING, assert_error
from tests.serving.conftest import Fitted, cancer, register, shared_artifacts, store  # noqa: F401  (fixtures)

API = "/api/v1"
LIMIT = 64 << 10
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _log(deployment: str, rows, predictions, labels, start: int) -> None:  # type: ignore[no-untyped-def]
    """Logged traffic (and labels, when given) as the model server writes it (from tests/monitoring)."""
    log = InferenceLog(get_settings().resolved_inference_log(), deployment, replica="t")
    for i, (record, p) in enumerate(zip(rows, predictions)):
        log.log(request_id=f"r{start}-{i}", model="bc", version=1, role="route", inputs=[record],
                outputs=[int(p)], latency_ms=1.0, timestamp_ms=start + i)
        if labels is not None:
            log.feedback(f"r{start}-{i}", int(labels[i]), timestamp_ms=start + i + 1)
    log.close()


@pytest.fixture
def local(store: Client, shared_artifacts: Path, tmp_path: Path,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch) -> Client:
    """A fresh client on the test's store: the SDK's cached one may hold monitors built for another test's
    inference log (the PostgreSQL URI is the same in every test)."""
    monkeypatch.setenv("ARSENALE_INFERENCE_LOG", str(tmp_path / "inference"))
    return Client(store.uri, artifacts=str(shared_artifacts))


@pytest.fixture
def deployed(local: Client, cancer: Fitted) -> Client:  # noqa: F811
    register("bc", cancer)
    local.deployments.create("bc-api", "bc/1")
    return local


@pytest.fixture
def server(local: Client) -> Iterator[LiveServer]:
    with LiveServer(create_app(Client(local.uri, artifacts=get_settings().resolved_artifacts()),
                               max_json_bytes=LIMIT)) as live:
        yield live


@pytest.fixture
def api(local: Client) -> Iterator[TestClient]:
    with TestClient(create_app(local, max_json_bytes=LIMIT)) as test_client:
        yield test_client


def series(text: str) -> Series:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def labels(monitor: str, deployment: str = "bc-api", **more: str) -> frozenset[tuple[str, str]]:
    return frozenset({"monitor": monitor, "deployment": deployment, **more}.items())


def snapshot(client: Client) -> Any:
    """Everything a refused request could have changed: monitors, their runs, the audit trail."""
    monitors = client.monitors.list()
    runs = {m.name: client.monitors.runs(m.name, 10_000) for m in monitors}
    return monitors, runs, len(client.audit.entries(limit=None))


# ---- the round trip --------------------------------------------------------------------------------------


def test_remote_monitors_answer_what_the_local_service_does(deployed: Client, server: LiveServer,
                                                            cancer: Fitted) -> None:  # noqa: F811
    remote, mine = Client(server.url).monitors, deployed.monitors
    assert type(remote).__name__ == "MonitorClient"
    mon = remote.create("bc-api", "bc-api", window="1h", schedule="*/10 * * * *")
    assert (mon.window_s, mon.schedule, mon.reference) == (3600, "*/10 * * * *", "model-contract")
    assert mon.drift_share == 0.5
    remote.create("bc-calm", "bc-api", window=3600, drift_share=0.25)
    assert mine.get("bc-api") == mon == remote.get("bc-api")
    assert remote.list() == mine.list() and [m.name for m in remote.list()] == ["bc-api", "bc-calm"]
    with pytest.raises(Conflict):
        remote.create("bc-api", "bc-api")

    now = now_ms()
    X = cancer.X.iloc[:200]
    _log("bc-api", X.to_dict(orient="records"), cancer.model.predict(X), cancer.y.iloc[:200].to_numpy(),
         now - 60_000)
    calm = remote.run("bc-api", now=now)
    assert calm.rows == 200 and (calm.model, calm.version) == ("bc", 1) and calm.window_end == now
    assert calm.values["dataset_drift"] == 0.0 and calm.values["accuracy"] > 0.9 and calm.report is not None
    steady = remote.run("bc-calm", now=now)

    shifted = X.copy()
    for column in list(X.columns)[:20]:
        shifted[column] = shifted[column] * 1.5
    later = now + 3_600_000
    _log("bc-api", shifted.to_dict(orient="records"), cancer.model.predict(X), None, later - 60_000)
    alarm = remote.run("bc-api", now=later)
    assert alarm.values["dataset_drift"] == 1.0 and alarm.values["accuracy"] is None

    assert remote.runs("bc-api") == mine.runs("bc-api")
    assert [r.id for r in remote.runs("bc-api")] == [alarm.id, calm.id]
    assert remote.runs("bc-api")[0].report is None
    assert remote.runs("bc-api", 1, with_report=True) == mine.runs("bc-api", 1, with_report=True)
    assert remote.runs("bc-api", 1, with_report=True)[0].values == alarm.values
    for side in (remote, mine):  # an unknown monitor is not an empty history
        with pytest.raises(NotFound) as err:
            side.runs("no-such-monitor")
        assert err.value.field == "name"

    # One run by id: what the local service reads, the report included unless asked not to.
    old = remote.get_run("bc-api", calm.id)
    assert old == mine.get_run("bc-api", calm.id) and old.report is not None
    assert old.model_dump(exclude={"report", "alerts"}) == calm.model_dump(exclude={"report", "alerts"})
    bare = remote.get_run("bc-api", calm.id, with_report=False)
    assert bare == mine.get_run("bc-api", calm.id, with_report=False) == remote.runs("bc-api")[1]
    assert bare.report is None
    for name, run_id, field in [("bc-calm", calm.id, "run_id"), ("bc-api", steady.id, "run_id"),
                                ("bc-api", 999, "run_id"), ("no-such-monitor", calm.id, "name")]:
        for side in (remote, mine):
            with pytest.raises(NotFound) as err:
                side.get_run(name, run_id)
            assert err.value.field == field, (name, run_id)

    html = remote.report_html("bc-api")
    assert html == report_html("bc-api", mine.runs("bc-api", 1, with_report=True)[0])
    assert html.lower().startswith("<!doctype html>") and "bc-api · bc/1" in html and "mean radius" in html
    older = remote.report_html("bc-api", run_id=calm.id)
    assert older == report_html("bc-api", mine.runs("bc-api", 2, with_report=True)[1]) and older != html
    response = httpx.get(f"{server.url}{API}/monitors/bc-api/report")
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == REPORT_CSP
    with pytest.raises(NotFound):
        remote.report_html("bc-calm", run_id=calm.id)  # another monitor's run

    scraped = series(httpx.get(f"{server.url}/metrics").text)
    api_labels, calm_labels = labels("bc-api"), labels("bc-calm")
    for metric, key in [("drift_share", "drift_share"), ("dataset_drift", "dataset_drift"), ("rows", "rows"),
                        ("drifted_columns", "drifted_columns"), ("quality_errors", "quality.errors"),
                        ("quality_missing_share", "quality.missing_share")]:
        assert scraped[(f"arsenale_monitor_{metric}", api_labels)] == alarm.values[key], metric
        assert scraped[(f"arsenale_monitor_{metric}", calm_labels)] == steady.values[key], metric
    assert ("arsenale_monitor_accuracy", api_labels) not in scraped  # the newest run has no labels yet
    assert scraped[("arsenale_monitor_accuracy", calm_labels)] == steady.values["accuracy"]
    feature = labels("bc-api", feature="mean radius")
    assert scraped[("arsenale_monitor_feature_drift", feature)] == alarm.values["drift.mean radius.statistic"]
    assert sum(1 for name, _ in scraped if name == "arsenale_monitor_feature_drift") == 2 * len(X.columns)
    assert scraped[("arsenale_monitor_last_run_timestamp_seconds", api_labels)] == alarm.timestamp / 1000
    assert scraped[("arsenale_monitor_collector_up", frozenset())] == 1.0

    remote.delete("bc-api")
    assert remote.list() == mine.list() and [m.name for m in mine.list()] == ["bc-calm"]
    with pytest.raises(NotFound):
        mine.runs("bc-api")
    with pytest.raises(NotFound):
        remote.get_run("bc-api", alarm.id)
    with pytest.raises(NotFound):
        remote.get("bc-api")
    with pytest.raises(NotFound):
        remote.delete("bc-api")
    assert ("arsenale_monitor_rows", api_labels) not in series(httpx.get(f"{server.url}/metrics").text)
    actions = [e.action for e in deployed.audit.entries(entity_type="monitor")]
    assert sorted(actions) == ["monitor.create", "monitor.create", "monitor.delete"]


def test_client_side_checks_match_the_local_service(server: LiveServer) -> None:
    remote = Client(server.url).monitors
    for bad in ["", "../x", "a b", "x" * 200]:
        for call in (lambda: remote.get(bad), lambda: remote.create(bad, "bc-api"), lambda: remote.run(bad),
                     lambda: remote.report_html(bad)):
            with pytest.raises(InvalidInput) as err:
                call()
            assert err.value.field == "name"
    with pytest.raises(NotFound):
        remote.create("m", "no-such-deployment")
    for kwargs, field in [({"window": "soon"}, "window"), ({"window": 0}, "window"),
                          ({"window": True}, "window"), ({"schedule": "every day"}, "schedule"),
                          ({"reference": "last-week"}, "reference"), ({"drift_share": 2}, "drift_share"),
                          ({"drift_share": math.nan}, "drift_share")]:
        with pytest.raises(InvalidInput) as err:
            remote.create("m", "bc-api", **kwargs)
        assert err.value.field == field
    with pytest.raises(InvalidInput):
        remote.runs("m", limit=0)
    for run_id in (0, -1, True, "1", "1/../2", 2**31, 1.5):
        with pytest.raises(InvalidInput) as err:
            remote.get_run("m", run_id)  # type: ignore[arg-type]
        assert err.value.field == "run_id", run_id
    with pytest.raises(InvalidInput) as err:
        remote.get_run("m", 1, with_report="no")  # type: ignore[arg-type]
    assert err.value.field == "with_report"
    with pytest.raises(NotFound):
        remote.get_run("m", 1)
    assert remote.list() == []


# ---- bad requests ----------------------------------------------------------------------------------------

M = f"{API}/monitors"
OK = {"name": "m", "deployment": "bc-api"}
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
    ("POST", M, {"json": {**OK, "name": 5}}, 400, BAD, "name"),
    ("POST", M, {"json": {"name": "m"}}, 400, BAD, "deployment"),
    ("POST", M, {"json": {**OK, "window": True}}, 400, BAD, "window"),
    ("POST", M, {"json": {**OK, "window": [1]}}, 400, BAD, "window"),
    ("POST", M, {"json": {**OK, "window": "soon"}}, 400, BAD, "window"),
    ("POST", M, {"json": {**OK, "window": 0}}, 400, BAD, "window"),
    ("POST", M, {"json": {**OK, "window": "31d"}}, 400, BAD, "window"),
    ("POST", M, {"json": {**OK, "schedule": "every day"}}, 400, BAD, "schedule"),
    ("POST", M, {"json": {**OK, "schedule": 5}}, 400, BAD, "schedule"),
    ("POST", M, {"json": {**OK, "reference": "last-week"}}, 400, BAD, "reference"),
    ("POST", M, {"json": {**OK, "drift_share": 2}}, 400, BAD, "drift_share"),
    ("POST", M, {"json": {**OK, "drift_share": "0.5"}}, 400, BAD, "drift_share"),
    ("POST", M, {"json": {**OK, "drift_share": "NaN"}}, 400, BAD, "drift_share"),
    ("POST", M, {"json": {**OK, "colour": "red"}}, 400, BAD, "colour"),
    ("POST", M, {"json": [OK]}, 400, BAD, "body"),
    ("POST", M, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, BAD, "body"),
    ("POST", M, {}, 400, BAD, "body"),
    ("POST", M, {"json": {**OK, "name": "../x"}}, 400, BAD, "name"),
    ("POST", M, {"json": {**OK, "name": "a b"}}, 400, BAD, "name"),
    ("POST", M, {"json": {**OK, "name": "x" * 200}}, 400, BAD, "name"),
    ("POST", M, {"json": {**OK, "deployment": "no-such-deployment"}}, 404, MISSING, "name"),
    ("POST", M, {"json": {**OK, "name": "bc-api"}}, 409, EXISTS, "name"),
    ("POST", M, {"json": {**OK, "schedule": "*" * (LIMIT + 1)}}, 413, BAD, "body"),
    ("POST", M, {"content": b" " * (LIMIT + 1), "headers": {"Content-Type": "application/json"}}, 413, BAD,
     "body"),
    ("PUT", M, {"json": OK}, 405, "HTTP_405", None),
    ("GET", f"{M}/missing", {}, 404, MISSING, "name"),
    ("GET", f"{M}/%2E%2E", {}, 400, BAD, "name"),
    ("GET", f"{M}/..%2F..%2Fdb.sqlite", {}, 404, MISSING, None),  # '/' splits the segment: no such route
    ("GET", f"{M}/a%5Cb", {}, 400, BAD, "name"),
    ("DELETE", f"{M}/missing", {}, 404, MISSING, "name"),
    ("DELETE", f"{M}/%2E%2E", {}, 400, BAD, "name"),
    ("POST", f"{M}/missing/run", {}, 404, MISSING, "name"),
    ("POST", f"{M}/%2E%2E/run", {"json": {"now": 1}}, 400, BAD, "name"),
    ("POST", f"{M}/bc-api/run", {"json": {"now": "soon"}}, 400, BAD, "now"),
    ("POST", f"{M}/bc-api/run", {"json": {"now": -1}}, 400, BAD, "now"),
    ("POST", f"{M}/bc-api/run", {"json": {"now": 1.5}}, 400, BAD, "now"),
    ("POST", f"{M}/bc-api/run", {"json": {"later": 1}}, 400, BAD, "later"),
    ("GET", f"{M}/bc-api/runs", {"params": {"limit": 0}}, 400, BAD, "limit"),
    ("GET", f"{M}/bc-api/runs", {"params": {"limit": "many"}}, 400, BAD, "limit"),
    ("GET", f"{M}/bc-api/runs", {"params": {"limit": 10_001}}, 400, BAD, "limit"),
    ("GET", f"{M}/bc-api/runs", {"params": {"with_report": "perhaps"}}, 400, BAD, "with_report"),
    ("GET", f"{M}/missing/runs", {}, 404, MISSING, "name"),
    ("GET", f"{M}/%2E%2E/runs", {}, 400, BAD, "name"),
    ("GET", f"{M}/bc-api/runs/999", {}, 404, MISSING, "run_id"),
    ("GET", f"{M}/bc-api/runs/0", {}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/runs/-1", {}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/runs/newest", {}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/runs/1.5", {}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/runs/{2**31}", {}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/runs/{10**30}", {}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/runs/1", {"params": {"with_report": "perhaps"}}, 400, BAD, "with_report"),
    ("GET", f"{M}/missing/runs/1", {}, 404, MISSING, "name"),
    ("DELETE", f"{M}/bc-api/runs/1", {}, 405, "HTTP_405", None),
    ("GET", f"{M}/bc-api/report", {}, 404, MISSING, "name"),  # not run yet
    ("GET", f"{M}/bc-api/report", {"params": {"run_id": 999}}, 404, MISSING, "run_id"),
    ("GET", f"{M}/bc-api/report", {"params": {"run_id": 0}}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/report", {"params": {"run_id": "newest"}}, 400, BAD, "run_id"),
    ("GET", f"{M}/bc-api/report", {"params": {"run_id": 10**30}}, 400, BAD, "run_id"),
    ("GET", f"{M}/missing/report", {}, 404, MISSING, "name"),
]


def test_bad_requests_get_a_4xx_and_change_nothing(deployed: Client, api: TestClient) -> None:
    assert api.post(M, json={"name": "bc-api", "deployment": "bc-api"}).status_code == 201
    before = snapshot(deployed)
    for method, path, kwargs, status, code, field in BAD_REQUESTS:
        response = api.request(method, path, **kwargs)
        try:
            assert_error(response, status, code, field)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {kwargs!r}: {exc}") from None
    assert snapshot(deployed) == before


def test_openapi_lists_the_monitor_routes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/monitors", "/monitors/{name}", "/monitors/{name}/run", "/monitors/{name}/runs",
                 "/monitors/{name}/runs/{run_id}", "/monitors/{name}/report"):
        assert f"{API}{path}" in paths, path


# ---- /metrics --------------------------------------------------------------------------------------------


def _seed(engine: Any, monitors: int, features: int, runs_each: int, report_bytes: int = 0) -> dict[str, Any]:
    """Monitors and runs written straight to the store, with values as `MonitorService.run` stores them."""
    newest = {}
    report = json.dumps({"drift": {"pad": "x" * report_bytes}})
    with write(engine) as conn:
        for m in range(monitors):
            name = f"mon-{m:03d}"
            sql.insert_monitor(conn, name=name, deployment=f"dep-{m % 7}", reference="model-contract",
                               window_s=3600, schedule=None, settings="{}", creation_time=1)
            for r in range(runs_each):
                values: dict[str, float | None] = {
                    "rows": 100.0 + r, "drift_share": r / 10, "dataset_drift": float(r % 2),
                    "drifted_columns": float(r), "quality.errors": 0.0, "quality.warnings": 1.0,
                    "quality.missing_share": None if m % 2 else 0.01, "labelled": 0.0,
                    "accuracy": None if m % 3 == 0 else 0.9 + r / 100}
                values.update({f"drift.f.{i}.statistic": (None if i == 0 else m + r + i / 100)
                               for i in range(features)})
                stamp = 1_700_000_000_000 + r
                sql.insert_run(conn, monitor=name, window_start=0, window_end=(r + 1) * 1000, rows=100 + r,
                               model="bc", version=1, values=json.dumps(values), report=report,
                               timestamp=stamp)
                newest[name] = (values, stamp)
    return newest


def test_metrics_export_the_newest_run_of_every_monitor(store_uri: str) -> None:
    engine = get_engine(store_uri)
    Client(store_uri)  # creates the schema
    newest = _seed(engine, monitors=3, features=3, runs_each=3)
    with write(engine) as conn:  # a run evaluated later but for an earlier window is not the newest
        sql.insert_run(conn, monitor="mon-000", window_start=0, window_end=500, rows=1, model="bc", version=1,
                       values=json.dumps({"rows": 1.0, "drift_share": 0.99}), report="{}", timestamp=2)
        sql.insert_monitor(conn, name="never-run", deployment="dep-0", reference="model-contract",
                           window_s=60, schedule=None, settings="{}", creation_time=1)
    registry = CollectorRegistry()
    registry.register(MonitorCollector(lambda: engine))
    scraped = series(generate_latest(registry).decode())
    for name, (values, stamp) in newest.items():
        deployment = f"dep-{int(name[-3:]) % 7}"
        at = labels(name, deployment)
        assert scraped[("arsenale_monitor_drift_share", at)] == values["drift_share"] == 0.2
        assert scraped[("arsenale_monitor_rows", at)] == 102.0
        assert scraped[("arsenale_monitor_last_run_timestamp_seconds", at)] == stamp / 1000
        assert scraped.get(("arsenale_monitor_accuracy", at)) == values["accuracy"]  # None: not exported
        assert scraped.get(("arsenale_monitor_quality_missing_share", at)) == values["quality.missing_share"]
        assert ("arsenale_monitor_feature_drift", labels(name, deployment, feature="f.0")) not in scraped
        assert scraped[("arsenale_monitor_feature_drift", labels(name, deployment, feature="f.2"))] == \
            values["drift.f.2.statistic"]
    assert not any(dict(key).get("monitor") == "never-run" for _, key in scraped)
    assert scraped[("arsenale_monitor_collector_up", frozenset())] == 1.0


def test_metrics_without_monitors_and_with_a_failing_store(store_uri: str, tmp_path: Path) -> None:
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    with TestClient(create_app(client)) as api:
        text = api.get("/metrics").text
    assert "# TYPE arsenale_monitor_drift_share gauge" in text and "arsenale_monitor_drift_share{" not in text
    assert series(text)[("arsenale_monitor_collector_up", frozenset())] == 1.0

    def broken() -> Any:
        raise ConnectionError("the store went away")

    registry = CollectorRegistry()
    registry.register(MonitorCollector(broken))
    assert series(generate_latest(registry).decode()) == {("arsenale_monitor_collector_up", frozenset()): 0.0}


def test_a_scrape_of_50_monitors_with_20_features_stays_cheap(store_uri: str) -> None:
    engine = get_engine(store_uri)
    Client(store_uri)
    _seed(engine, monitors=50, features=20, runs_each=20, report_bytes=20_000)
    registry = CollectorRegistry()
    registry.register(MonitorCollector(lambda: engine))
    timings = []
    for _ in range(7):
        t0 = time.perf_counter()
        text = generate_latest(registry).decode()
        timings.append(time.perf_counter() - t0)
    assert text.count("arsenale_monitor_feature_drift{") == 50 * 19
    # About 10 ms here; the bound only catches a scrape that went back to one query per monitor or read the
    # reports (timings on a shared CI machine are too noisy for a tighter one).
    assert sorted(timings)[len(timings) // 2] < 0.5, timings
