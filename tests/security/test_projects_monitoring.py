"""The project boundary around monitors, their alert rules and alerts. Made as alpha, they are absent for beta
(the same answer as a missing one, the store unchanged), hidden from beta's lists, visible to an all-projects
token unless it names a project. An LLM monitor only ever reads its own project's traces, and the scheduler
(unconfined) still runs every project's monitors. SQLite and PostgreSQL (the `projects` fixture)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from arsenale.errors import Conflict, NotFound
from arsenale.monitoring.scheduling import run_due_monitors
from arsenale.registry.models import ModelFile
from arsenale.security.projects import PROJECT_HEADER, project
from tests.security.conftest import Projects

M = "/api/v1/monitors"
A = "/api/v1/alerts"
RULE = "traces < 1"  # fires on an empty window
GHOST_ID = 987654


@pytest.fixture
def fired(projects: Projects) -> dict[str, int]:
    """As alpha over REST: LLM monitor mon-alpha with rule RULE, run once on an empty window, so one alert fired.
    The ids of its run, rule and alert."""
    assert projects.api.post(f"{M}/llm", json={"name": "mon-alpha"}, headers=projects.alpha).status_code == 201
    rule = projects.api.post(f"{A}/rules", json={"monitor": "mon-alpha", "when": RULE}, headers=projects.alpha)
    assert rule.status_code == 201, rule.text
    run = projects.api.post(f"{M}/mon-alpha/run", json={}, headers=projects.alpha)
    assert run.status_code == 200, run.text
    assert [a["status"] for a in run.json()["alerts"]] == ["firing"]
    return {"run": run.json()["id"], "rule": rule.json()["id"], "alert": run.json()["alerts"][0]["id"]}


def _same_answer(projects: Projects, method: str, path: str, real: str, ghost: str, **kw: Any) -> int:
    """Beta's answer about alpha's thing equals its answer about a missing one (`real` swapped for `ghost`)."""
    got = projects.api.request(method, path, headers=projects.beta, **kw)
    missing = projects.api.request(method, path.replace(real, ghost), headers=projects.beta,
                                   **{k: _swap(v, real, ghost) for k, v in kw.items()})
    assert got.status_code == missing.status_code, (method, path, got.text, missing.text)
    assert got.text.replace(real, ghost) == missing.text, (method, path, got.text, missing.text)
    return got.status_code


def _swap(value: Any, real: str, ghost: str) -> Any:
    if isinstance(value, dict):
        return {k: _swap(v, real, ghost) for k, v in value.items()}
    return ghost if value == real else value


def _stored(projects: Projects) -> tuple[Any, ...]:
    """Everything beta's requests could change about mon-alpha, read unconfined."""
    mons, alerts = projects.local.monitors, projects.local.monitors.alerts
    return (mons.get("mon-alpha"), [r.id for r in mons.runs("mon-alpha")],
            [(r.id, r.when) for r in alerts.list_rules("mon-alpha")],
            [(a.id, a.status) for a in alerts.list_alerts("mon-alpha")])


def test_a_monitor_is_made_in_the_requests_project(projects: Projects, fired: dict[str, int],
                                                    tmp_path: Path) -> None:
    got = projects.api.get(f"{M}/mon-alpha", headers=projects.alpha)
    assert got.status_code == 200 and got.json()["project"] == "alpha"
    assert projects.local.monitors.get("mon-alpha").project == "alpha"
    assert projects.api.get(f"{A}/{fired['alert']}", headers=projects.alpha).json()["monitor"] == "mon-alpha"
    # a model monitor too, on alpha's deployment
    blob = tmp_path / "w.bin"
    blob.write_bytes(b"weights")
    with project("alpha"):
        digest, size = projects.local.registry.upload_file(blob)
        projects.local.registry.create_version("m-alpha", files=[ModelFile(path="w.bin", digest=digest, size=size)],
                                               flavor="sklearn", flavor_meta={})
        projects.local.deployments.create("d-alpha", "m-alpha/1")
    made = projects.api.post(M, json={"name": "dm-alpha", "deployment": "d-alpha"}, headers=projects.alpha)
    assert made.status_code == 201 and made.json()["project"] == "alpha"
    # beta cannot watch alpha's deployment: the same 404 as a missing deployment
    assert _same_answer(projects, "POST", M, "d-alpha", "d-ghost",
                        json={"name": "dm-beta", "deployment": "d-alpha"}) == 404


def test_another_projects_monitor_rules_and_alerts_read_as_missing(projects: Projects,
                                                                   fired: dict[str, int]) -> None:
    before = _stored(projects)
    run, rule, alert = str(fired["run"]), str(fired["rule"]), str(fired["alert"])
    for method, path, kw in [("GET", f"{M}/mon-alpha", {}), ("GET", f"{M}/mon-alpha/runs", {}),
                             ("GET", f"{M}/mon-alpha/runs/{run}", {}), ("GET", f"{M}/mon-alpha/report", {}),
                             ("POST", f"{M}/mon-alpha/run", {"json": {}}), ("DELETE", f"{M}/mon-alpha", {}),
                             ("GET", f"{A}/rules?monitor=mon-alpha", {}),
                             ("POST", f"{A}/rules", {"json": {"monitor": "mon-alpha", "when": "traces > 5"}})]:
        assert _same_answer(projects, method, path, "mon-alpha", "mon-ghost", **kw) == 404, path
    for method, base, key in [("GET", f"{A}/rules", rule), ("DELETE", f"{A}/rules", rule), ("GET", A, alert)]:
        got = projects.api.request(method, f"{base}/{key}", headers=projects.beta)
        missing = projects.api.request(method, f"{base}/{GHOST_ID}", headers=projects.beta)
        assert got.status_code == missing.status_code == 404, (method, base, got.text)
        assert got.text.replace(f"id {key}", f"id {GHOST_ID}") == missing.text, (method, base, got.text)
    alerts = projects.api.get(f"{A}?monitor=mon-alpha", headers=projects.beta)
    assert alerts.status_code == 200 and alerts.json() == []  # as for a monitor that does not exist
    taken = projects.api.post(f"{M}/llm", json={"name": "mon-alpha"}, headers=projects.beta)
    assert taken.status_code == 409  # names stay unique across projects
    assert _stored(projects) == before


def test_monitor_rule_and_alert_lists_show_the_projects_own(projects: Projects, fired: dict[str, int]) -> None:
    assert projects.api.post(f"{M}/llm", json={"name": "mon-beta"}, headers=projects.beta).status_code == 201
    assert projects.api.post(f"{A}/rules", json={"monitor": "mon-beta", "when": RULE},
                             headers=projects.beta).status_code == 201
    assert projects.api.post(f"{M}/mon-beta/run", json={}, headers=projects.beta).status_code == 200

    def monitors(headers: dict[str, str]) -> set[str]:
        found = set()
        for path in (M, f"{A}/rules", A):
            r = projects.api.get(path, headers=headers)
            assert r.status_code == 200, r.text
            found |= {item.get("monitor", item.get("name")) for item in r.json()}
        return found

    assert monitors(projects.alpha) == {"mon-alpha"}
    assert monitors(projects.beta) == {"mon-beta"}
    for path in (M, f"{A}/rules", A):
        assert "mon-alpha" not in projects.api.get(path, headers=projects.beta).text, path
    metrics = projects.api.get("/metrics", headers={**projects.root, PROJECT_HEADER: "beta"})
    assert metrics.status_code == 200 and "mon-beta" in metrics.text and "mon-alpha" not in metrics.text
    assert "mon-alpha" in projects.api.get("/metrics", headers=projects.root).text
    assert monitors(projects.root) == {"mon-alpha", "mon-beta"}
    assert monitors({**projects.root, PROJECT_HEADER: "beta"}) == {"mon-beta"}
    assert {m.name: m.project for m in projects.local.monitors.list()} == {"mon-alpha": "alpha", "mon-beta": "beta"}


def _span(trace_id: str) -> dict[str, Any]:
    start = time.time_ns() - 1_000_000
    return {"trace_id": trace_id, "span_id": trace_id[:16], "name": "answer", "start_ns": start,
            "end_ns": start + 1000}


def test_an_llm_monitor_reads_its_own_projects_traces_whoever_runs_it(projects: Projects) -> None:
    for headers, trace in [(projects.alpha, "a" * 32), (projects.beta, "b" * 32), (projects.beta, "c" * 32)]:
        r = projects.api.post("/api/v1/traces/spans", json={"spans": [_span(trace)]}, headers=headers)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    for headers, name in [(projects.alpha, "mon-alpha"), (projects.beta, "mon-beta")]:
        r = projects.api.post(f"{M}/llm", json={"name": name, "schedule": "* * * * *"}, headers=headers)
        assert r.status_code == 201, r.text
    mons = projects.local.monitors
    # unconfined, as the scheduler runs: each monitor's window holds its own project's traces only
    assert mons.run("mon-alpha").values["traces"] == 1
    assert mons.run("mon-beta").values["traces"] == 2
    ticks = run_due_monitors(mons, now=int(time.time() * 1000) + 120_000)
    assert sorted((t.monitor, t.status) for t in ticks) == [("mon-alpha", "succeeded"), ("mon-beta", "succeeded")]
    assert [r.values["traces"] for r in mons.runs("mon-alpha")] == [1, 1]
    with project("beta"):
        assert mons.run("mon-beta").values["traces"] == 2


def test_monitors_and_alerts_in_an_embedded_project_block(projects: Projects) -> None:
    mons = projects.local.monitors
    alerts = mons.alerts
    with project("alpha"):
        assert mons.create_llm("mon-alpha").project == "alpha"
        rule = alerts.add_rule("mon-alpha", RULE)
        alert = mons.run("mon-alpha").alerts[0]
    with project("beta"):
        for call in (lambda: mons.get("mon-alpha"), lambda: mons.runs("mon-alpha"),
                     lambda: mons.run("mon-alpha"), lambda: mons.delete("mon-alpha"),
                     lambda: alerts.add_rule("mon-alpha", "traces > 1"), lambda: alerts.list_rules("mon-alpha")):
            with pytest.raises(NotFound, match="no monitor named 'mon-alpha'"):
                call()
        with pytest.raises(NotFound, match=f"no alert rule with id {rule.id}"):
            alerts.get_rule(rule.id)
        with pytest.raises(NotFound, match=f"no alert rule with id {rule.id}"):
            alerts.delete_rule(rule.id)
        with pytest.raises(NotFound, match=f"no alert with id {alert.id}"):
            alerts.get_alert(alert.id)
        with pytest.raises(Conflict):
            mons.create_llm("mon-alpha")
        assert mons.list() == [] and alerts.list_rules() == [] and alerts.list_alerts() == []
    assert [m.name for m in mons.list()] == ["mon-alpha"]
    assert alerts.get_rule(rule.id).monitor == "mon-alpha" and alerts.get_alert(alert.id).status == "firing"
    assert len(mons.runs("mon-alpha")) == 1
