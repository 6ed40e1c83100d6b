"""Alert rules and alerts over HTTP on a real store (SQLite and PostgreSQL): `Client(url).monitors.alerts`
answers what the local `AlertService` does, a monitor run on the server fires and resolves the rules it
holds, and bad requests get a 4xx naming the field and change nothing.

Windows are made as in tests/monitoring/test_alerting: a calm window is the training data, a drifted one
has 20 of its 30 columns scaled by 1.5 (drift_share >= 0.5).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arsenale.config import get_settings
from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.server.app import create_app
from arsenale.tracking.models import now_ms
from tests.conftest import LiveServer
from tests.server.test_app import BAD, EXISTS, MISSING, assert_error
from tests.server.test_monitoring_routes import LIMIT, _log, api, deployed, local  # noqa: F401  (fixtures)
from tests.serving.conftest import Fitted, cancer, shared_artifacts, store  # noqa: F401  (fixtures)

API = "/api/v1"
HOUR = 3_600_000
RULE = "drift_share > 0.3 for 2 windows"
PIPELINE = "tests.pipelines.example_pipelines:scheduled"


class Served:
    """A live server and the local client it wraps, whose notifier the test can wait for."""

    def __init__(self, backend: Client, live: LiveServer) -> None:
        self.backend = backend
        self.url = live.url

    def settle(self) -> None:
        """Wait until the server has recorded the outcome of every notification under way."""
        assert self.backend.monitors.alerts.notifier.flush(timeout=30)


@pytest.fixture
def served(local: Client) -> Iterator[Served]:  # noqa: F811
    backend = Client(local.uri, artifacts=get_settings().resolved_artifacts())
    with LiveServer(create_app(backend, max_json_bytes=LIMIT)) as live:
        yield Served(backend, live)
    backend.monitors.alerts.notifier.close(timeout=5)


def _window(cancer: Fitted, end: int, *, drifted: bool) -> int:  # noqa: F811
    """200 logged requests of bc-api in the minute before `end` (ms); `end`."""
    X = cancer.X.iloc[:200]
    if drifted:
        X = X.copy()
        for column in list(X.columns)[:20]:
            X[column] = X[column] * 1.5
    _log("bc-api", X.to_dict(orient="records"), cancer.model.predict(cancer.X.iloc[:200]), None, end - 60_000)
    return end


def snapshot(client: Client) -> Any:
    """Everything a refused request could have changed."""
    alerts = client.monitors.alerts
    audit = len(client.audit.entries(limit=None))
    return client.monitors.list(), alerts.list_rules(), alerts.list_alerts(), audit


# ---- the round trip --------------------------------------------------------------------------------------


def test_remote_alerts_answer_what_the_local_service_does(deployed: Client, served: Served,  # noqa: F811
                                                          cancer: Fitted) -> None:  # noqa: F811
    remote, mine = Client(served.url).monitors, deployed.monitors
    assert type(remote.alerts).__name__ == "AlertClient"
    remote.create("bc-api", "bc-api", window="1h")
    assert remote.alerts.list_rules() == [] and remote.alerts.list_alerts() == []

    rule = remote.alerts.add_rule("bc-api", RULE, name="drift", notify=["log"], severity="critical")
    assert (rule.name, rule.monitor, rule.when, rule.notify, rule.severity, rule.enabled, rule.state,
            rule.trigger_pipeline) == ("drift", "bc-api", RULE, ["log"], "critical", True, None, None)
    assert rule == mine.alerts.get_rule(rule.id) == remote.alerts.get_rule(rule.id)
    # Never fires here (no labels arrive, so accuracy has no data); stored with its pipeline, canonical text.
    quiet = remote.alerts.add_rule("bc-api", "accuracy  <  0", trigger_pipeline=PIPELINE)
    assert (quiet.name, quiet.when, quiet.notify, quiet.severity, quiet.trigger_pipeline) == \
        ("accuracy < 0", "accuracy < 0", [], "warning", PIPELINE)
    assert remote.alerts.list_rules() == mine.alerts.list_rules() == [rule, quiet]
    assert remote.alerts.list_rules("bc-api") == mine.alerts.list_rules("bc-api") == [rule, quiet]
    with pytest.raises(Conflict):
        remote.alerts.add_rule("bc-api", "rows > 1", name="drift")

    start = now_ms() - 24 * HOUR
    first = remote.run("bc-api", now=_window(cancer, start + HOUR, drifted=True))
    assert first.values["drift_share"] > 0.3 and first.alerts == [] and first.alert_error is None
    assert remote.alerts.get_rule(rule.id).state["status"] == "pending"  # type: ignore[index]
    assert remote.alerts.list_alerts() == []

    second = remote.run("bc-api", now=_window(cancer, start + 2 * HOUR, drifted=True))  # 2nd in a row: fires
    (fired,) = second.alerts
    assert (fired.status, fired.rule, fired.rule_id, fired.monitor, fired.severity, fired.threshold) == \
        ("firing", "drift", rule.id, "bc-api", "critical", RULE)
    assert (fired.value, fired.run_id, fired.started_at) == \
        (second.values["drift_share"], second.id, second.window_end)
    served.settle()
    alert = remote.alerts.get_alert(fired.id)
    assert alert == mine.alerts.get_alert(fired.id)
    assert [(d["channel"], d["event"], d["status"]) for d in alert.deliveries] == \
        [("log", "firing", "delivered")]
    assert alert.evidence["values"] == second.values and alert.evidence["run_id"] == second.id
    assert len(alert.evidence["drifted_columns"]) >= 10
    assert remote.alerts.list_alerts() == mine.alerts.list_alerts() == [alert]
    assert remote.alerts.list_alerts("bc-api", "firing") == [alert]
    assert remote.alerts.list_alerts(status="resolved") == [] and remote.alerts.list_alerts("other") == []
    assert remote.alerts.get_rule(rule.id) == mine.alerts.get_rule(rule.id)
    assert remote.alerts.get_rule(rule.id).state["status"] == "firing"  # type: ignore[index]
    # The run the alert names, read by id: the values it fired on.
    assert remote.get_run("bc-api", alert.run_id) == mine.get_run("bc-api", alert.run_id)
    assert remote.get_run("bc-api", alert.run_id).values == alert.evidence["values"]

    calm = remote.run("bc-api", now=_window(cancer, start + 3 * HOUR, drifted=False))
    (resolved,) = calm.alerts
    assert (resolved.id, resolved.status, resolved.resolved_at, resolved.resolved_run_id) == \
        (fired.id, "resolved", calm.window_end, calm.id)
    served.settle()
    after = remote.alerts.list_alerts(status="resolved")
    assert after == mine.alerts.list_alerts(status="resolved") == [remote.alerts.get_alert(fired.id)]
    assert [(d["event"], d["status"]) for d in after[0].deliveries] == \
        [("firing", "delivered"), ("resolved", "delivered")]
    assert remote.alerts.list_alerts(status="firing") == [] and remote.alerts.list_alerts(limit=1) == after
    assert remote.alerts.get_rule(quiet.id) == mine.alerts.get_rule(quiet.id)

    remote.alerts.delete_rule(rule.id)
    for call in (lambda: remote.alerts.get_rule(rule.id), lambda: remote.alerts.delete_rule(rule.id),
                 lambda: remote.alerts.get_alert(fired.id), lambda: mine.alerts.get_alert(fired.id)):
        with pytest.raises(NotFound):
            call()
    assert remote.alerts.list_rules() == mine.alerts.list_rules()
    assert [r.id for r in remote.alerts.list_rules()] == [quiet.id]
    assert remote.alerts.list_alerts() == mine.alerts.list_alerts() == []
    actions = [e.action for e in deployed.audit.entries(limit=None) if e.action.startswith("alert.")]
    assert sorted(actions) == sorted(["alert.rule.create", "alert.rule.create", "alert.fire", "alert.resolve",
                                      "alert.rule.delete"])
    assert deployed.audit.verify().ok

    remote.delete("bc-api")  # its rules go with it
    with pytest.raises(NotFound) as err:
        remote.alerts.list_rules("bc-api")
    assert err.value.field == "monitor" and mine.alerts.list_rules() == []


def test_client_side_checks_match_the_local_service(deployed: Client, served: Served) -> None:  # noqa: F811
    remote, mine = Client(served.url).monitors.alerts, deployed.monitors.alerts
    deployed.monitors.create("bc-api", "bc-api")
    before = snapshot(deployed)
    for side in (remote, mine):
        for bad in ["", "../x", "a b", "x" * 200]:
            with pytest.raises(InvalidInput):
                side.add_rule(bad, "rows > 1")
            with pytest.raises(InvalidInput):
                side.list_rules(bad)
        for rule_id in (0, -1, True, "1", "1/../2", 2**31, 1.5, None):
            for call in (side.get_rule, side.delete_rule, side.get_alert):
                with pytest.raises(InvalidInput) as err:
                    call(rule_id)  # type: ignore[arg-type]
                assert err.value.field == "id", (call, rule_id)
        for kwargs, field in [({"when": "rows >> 1"}, "when"), ({"when": 5}, "when"),
                              ({"notify": "log"}, "notify"),
                              ({"notify": ["email:ops@example.com"]}, "notify"),
                              ({"notify": ["webhook:not a url"]}, "notify"),
                              ({"severity": "loud"}, "severity"),
                              ({"name": ""}, "name"), ({"trigger_pipeline": "no_colon"}, "pipeline_ref")]:
            args = {"monitor": "bc-api", "when": "rows > 1", **kwargs}
            with pytest.raises(InvalidInput) as err:
                side.add_rule(args.pop("monitor"), args.pop("when"), **args)
            assert err.value.field == field, (side, kwargs)
        with pytest.raises(NotFound) as err:
            side.add_rule("nope", "rows > 1")
        assert err.value.field == "monitor"
        with pytest.raises(NotFound):
            side.list_rules("nope")
        for kwargs, field in [({"status": "open"}, "status"), ({"limit": 0}, "limit"),
                              ({"limit": 10_001}, "limit"), ({"limit": True}, "limit")]:
            with pytest.raises(InvalidInput) as err:
                side.list_alerts(**kwargs)
            assert err.value.field == field, (side, kwargs)
    with pytest.raises(InvalidInput) as err:  # larger than the server takes: 413, nothing stored
        remote.add_rule("bc-api", "rows > 1", name="x" * (LIMIT + 1))
    assert err.value.field == "body"
    assert snapshot(deployed) == before


# ---- bad requests ----------------------------------------------------------------------------------------

R, A = f"{API}/alerts/rules", f"{API}/alerts"
OK = {"monitor": "bc-api", "when": "rows > 1"}
JSON = {"Content-Type": "application/json"}
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
    ("POST", R, {"json": {**OK, "when": "rows >> 1"}}, 400, BAD, "when"),
    ("POST", R, {"json": {**OK, "when": "rows > 1 for 0 windows"}}, 400, BAD, "when"),
    ("POST", R, {"json": {**OK, "when": "rows > NaN"}}, 400, BAD, "when"),
    ("POST", R, {"json": {**OK, "when": "rows > 1" + " " * 600}}, 400, BAD, "when"),
    ("POST", R, {"json": {**OK, "when": ""}}, 400, BAD, "when"),
    ("POST", R, {"json": {**OK, "when": 5}}, 400, BAD, "when"),
    ("POST", R, {"json": {**OK, "when": None}}, 400, BAD, "when"),
    ("POST", R, {"json": {"monitor": "bc-api"}}, 400, BAD, "when"),
    ("POST", R, {"json": {**OK, "monitor": "nope"}}, 404, MISSING, "monitor"),
    ("POST", R, {"json": {**OK, "monitor": "../x"}}, 400, BAD, None),
    ("POST", R, {"json": {**OK, "monitor": 5}}, 400, BAD, "monitor"),
    ("POST", R, {"json": {**OK, "notify": ["email:ops@example.com"]}}, 400, BAD, "notify"),
    ("POST", R, {"json": {**OK, "notify": ["webhook:not a url"]}}, 400, BAD, "notify"),
    ("POST", R, {"json": {**OK, "notify": ["webhook:ftp://example.com/x"]}}, 400, BAD, "notify"),
    ("POST", R, {"json": {**OK, "notify": "log"}}, 400, BAD, "notify"),
    ("POST", R, {"json": {**OK, "notify": [1]}}, 400, BAD, "notify.0"),
    ("POST", R, {"json": {**OK, "notify": {"log": True}}}, 400, BAD, "notify"),
    ("POST", R, {"json": {**OK, "severity": "loud"}}, 400, BAD, "severity"),
    ("POST", R, {"json": {**OK, "severity": 1}}, 400, BAD, "severity"),
    ("POST", R, {"json": {**OK, "name": 5}}, 400, BAD, "name"),
    ("POST", R, {"json": {**OK, "name": "  "}}, 400, BAD, "name"),
    ("POST", R, {"json": {**OK, "name": "x" * 300}}, 400, BAD, "name"),
    ("POST", R, {"json": {**OK, "name": "taken"}}, 409, EXISTS, "name"),
    ("POST", R, {"json": {**OK, "trigger_pipeline": "no_colon"}}, 400, BAD, "pipeline_ref"),
    ("POST", R, {"json": {**OK, "trigger_pipeline": "os:system; rm"}}, 400, BAD, "pipeline_ref"),
    ("POST", R, {"json": {**OK, "trigger_pipeline": 5}}, 400, BAD, "trigger_pipeline"),
    ("POST", R, {"json": {**OK, "notfy": ["log"]}}, 400, BAD, "notfy"),
    ("POST", R, {"json": [OK]}, 400, BAD, "body"),
    ("POST", R, {"content": b"{not json", "headers": JSON}, 400, BAD, "body"),
    ("POST", R, {}, 400, BAD, "body"),
    ("POST", R, {"json": {**OK, "name": "x" * (LIMIT + 1)}}, 413, BAD, "body"),
    ("POST", R, {"content": b" " * (LIMIT + 1), "headers": JSON}, 413, BAD, "body"),
    ("PUT", R, {"json": OK}, 405, "HTTP_405", None),
    ("DELETE", R, {}, 405, "HTTP_405", None),
    ("GET", R, {"params": {"monitor": "nope"}}, 404, MISSING, "monitor"),
    ("GET", R, {"params": {"monitor": "a b"}}, 400, BAD, None),
    ("GET", f"{R}/999", {}, 404, MISSING, "id"),
    ("GET", f"{R}/0", {}, 400, BAD, "id"),
    ("GET", f"{R}/-1", {}, 400, BAD, "id"),
    ("GET", f"{R}/abc", {}, 400, BAD, "id"),
    ("GET", f"{R}/1.5", {}, 400, BAD, "id"),
    ("GET", f"{R}/{2**31}", {}, 400, BAD, "id"),
    ("GET", f"{R}/{10**30}", {}, 400, BAD, "id"),
    ("GET", f"{R}/..%2F..%2Fdb.sqlite", {}, 404, MISSING, None),  # '/' splits the segment: no such route
    ("DELETE", f"{R}/999", {}, 404, MISSING, "id"),
    ("DELETE", f"{R}/0", {}, 400, BAD, "id"),
    ("DELETE", f"{R}/abc", {}, 400, BAD, "id"),
    ("DELETE", f"{R}/{10**30}", {}, 400, BAD, "id"),
    ("POST", f"{R}/1", {"json": OK}, 405, "HTTP_405", None),
    ("GET", A, {"params": {"status": "open"}}, 400, BAD, "status"),
    ("GET", A, {"params": {"limit": 0}}, 400, BAD, "limit"),
    ("GET", A, {"params": {"limit": 10_001}}, 400, BAD, "limit"),
    ("GET", A, {"params": {"limit": "many"}}, 400, BAD, "limit"),
    ("GET", A, {"params": {"monitor": "a b"}}, 400, BAD, None),
    ("GET", f"{A}/999", {}, 404, MISSING, "id"),
    ("GET", f"{A}/0", {}, 400, BAD, "id"),
    ("GET", f"{A}/abc", {}, 400, BAD, "id"),
    ("GET", f"{A}/{10**30}", {}, 400, BAD, "id"),
    ("POST", A, {"json": OK}, 405, "HTTP_405", None),
    ("DELETE", f"{A}/1", {}, 405, "HTTP_405", None),
]


def test_bad_requests_get_a_4xx_and_change_nothing(deployed: Client, api: TestClient) -> None:  # noqa: F811
    assert api.post(f"{API}/monitors", json={"name": "bc-api", "deployment": "bc-api"}).status_code == 201
    created = api.post(R, json={**OK, "name": "taken", "notify": ["log"]})
    assert created.status_code == 201, created.text
    assert created.json() == deployed.monitors.alerts.get_rule(created.json()["id"]).model_dump()
    before = snapshot(deployed)
    for method, path, kwargs, status, code, field in BAD_REQUESTS:
        response = api.request(method, path, **kwargs)
        try:
            assert_error(response, status, code, field)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {kwargs!r:.200}: {exc}") from None
    assert snapshot(deployed) == before


def test_well_formed_requests_and_their_status_codes(deployed: Client, api: TestClient) -> None:  # noqa: F811
    assert api.post(f"{API}/monitors", json={"name": "bc-api", "deployment": "bc-api"}).status_code == 201
    created = api.post(R, json={**OK, "notify": ["log", "log", "slack:https://hooks.example/x"],
                                "severity": "critical", "name": None, "trigger_pipeline": None})
    assert created.status_code == 201 and created.headers["content-type"] == "application/json"
    rule = created.json()
    assert (rule["name"], rule["notify"], rule["severity"]) == \
        ("rows > 1", ["log", "slack:https://hooks.example/…"], "critical")  # the URL's path is never shown again
    assert api.get(f"{R}/{rule['id']}").json() == rule
    assert api.get(R).json() == api.get(R, params={"monitor": "bc-api"}).json() == [rule]
    assert api.get(A, params={"monitor": "nope", "status": "firing", "limit": 5}).json() == []
    assert api.get(f"{A}/rules").json() == [rule]  # the rules, not an alert named "rules"
    deleted = api.delete(f"{R}/{rule['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(R).json() == []


def test_openapi_lists_the_alert_routes(api: TestClient) -> None:  # noqa: F811
    paths = api.get("/openapi.json").json()["paths"]
    assert set(paths[f"{API}/alerts/rules"]) == {"get", "post"}
    assert set(paths[f"{API}/alerts/rules/{{id}}"]) == {"get", "delete"}
    assert set(paths[f"{API}/alerts"]) == {"get"} and set(paths[f"{API}/alerts/{{id}}"]) == {"get"}
