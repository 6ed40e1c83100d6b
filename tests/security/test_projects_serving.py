"""The project boundary around deployments. Made as alpha, a deployment is absent for beta on every route (the
same answer as a missing one, the store unchanged), hidden from beta's lists, visible to an all-projects token
unless it names a project, and it only ever answers with versions of its own project's models. SQLite and
PostgreSQL (the `projects` fixture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from arsenale.errors import NotFound
from arsenale.registry.models import ModelFile
from arsenale.security.projects import PROJECT_HEADER, project
from arsenale.serving.models import LATENCY_BUCKETS_MS, Decision
from arsenale.store.db import read
from arsenale.store.tables import deployments as deployments_table
from tests.security.conftest import Projects, listed

D = "/api/v1/deployments"


def _register(projects: Projects, tmp: Path, model: str, in_project: str) -> None:
    """Version 1 of `model`, registered embedded inside `in_project`."""
    blob = tmp / f"{model}.bin"
    blob.write_bytes(b"weights of " + model.encode())
    registry = projects.local.registry
    with project(in_project):
        digest, size = registry.upload_file(blob)
        registry.create_version(model, files=[ModelFile(path="w.bin", digest=digest, size=size)],
                                flavor="sklearn", flavor_meta={})


@pytest.fixture
def two(projects: Projects, tmp_path: Path) -> Projects:
    """Models m-alpha (2 versions) and m-beta; alpha deploys d-alpha on m-alpha/1 over REST."""
    _register(projects, tmp_path, "m-alpha", "alpha")
    _register(projects, tmp_path, "m-alpha", "alpha")
    _register(projects, tmp_path, "m-beta", "beta")
    made = projects.api.post(D, json={"name": "d-alpha", "model": "m-alpha/1"}, headers=projects.alpha)
    assert made.status_code == 201, made.text
    return projects


def _same_answer(projects: Projects, method: str, path: str, name: str, ghost: str, **kw: Any) -> int:
    """Beta's answer about alpha's `name` equals its answer about the missing `ghost` (name swapped back)."""
    got = projects.api.request(method, path, headers=projects.beta, **kw)
    missing = projects.api.request(method, path.replace(name, ghost), headers=projects.beta, **kw)
    assert got.status_code == missing.status_code, (method, path, got.text, missing.text)
    assert got.text.replace(name, ghost) == missing.text, (method, path)
    return got.status_code


def _stored(projects: Projects) -> tuple[Any, ...]:
    """Everything a request on d-alpha could change, read unconfined."""
    deps = projects.local.deployments
    dep = deps.get("d-alpha")
    engine = projects.local.audit.engine  # type: ignore[attr-defined]
    with read(engine) as conn:
        lease = conn.execute(select(deployments_table.c.controller_owner)
                             .where(deployments_table.c.name == "d-alpha")).scalar_one()
    return (dep.revision, dep.policy, len(deps.history("d-alpha")), deps.decisions("d-alpha"),
            deps.summaries("d-alpha", 0), lease)


def test_a_deployment_is_made_in_the_requests_project(two: Projects) -> None:
    got = two.api.get(f"{D}/d-alpha", headers=two.alpha)
    assert got.status_code == 200 and got.json()["project"] == "alpha"
    assert two.local.deployments.get("d-alpha").project == "alpha"
    stats = {"model": "m-alpha", "version": 1, "window_start": 1, "requests": 1, "errors": 0,
             "latency_counts": [1] + [0] * len(LATENCY_BUCKETS_MS), "latency_sum_ms": 1.0}
    assert two.api.post(f"{D}/d-alpha/stats", json={"replica": "r", "stats": [stats]},
                        headers=two.alpha).status_code == 204
    assert two.api.get(f"{D}/d-alpha/summaries?since=0", headers=two.alpha).json()[0]["requests"] == 1


def test_another_projects_deployment_reads_as_missing_and_stays_unchanged(two: Projects) -> None:
    before = _stored(two)
    stats = {"model": "m-beta", "version": 1, "window_start": 1, "requests": 5, "errors": 5,
             "latency_counts": [5] + [0] * len(LATENCY_BUCKETS_MS), "latency_sum_ms": 5.0}
    decision = {"deployment": "d-alpha", "timestamp": 1, "action": "wait", "step": 5, "reason": "r"}
    not_found = [("GET", f"{D}/d-alpha", {}), ("GET", f"{D}/d-alpha/revision", {}),
                 ("GET", f"{D}/d-alpha/status", {}),
                 ("POST", f"{D}/d-alpha/split", {"json": {"weights": {"m-beta/1": 100}}}),
                 ("POST", f"{D}/d-alpha/shadow", {"json": {"models": ["m-beta/1"]}}),
                 ("POST", f"{D}/d-alpha/canary", {"json": {"model": "m-beta/1"}}),
                 ("POST", f"{D}/d-alpha/decisions", {"json": {"decision": decision, "expected_revision": 1}}),
                 ("POST", f"{D}/d-alpha/rollback", {"json": {}}),
                 ("POST", f"{D}/d-alpha/stats", {"json": {"replica": "r", "stats": [stats]}}),
                 ("POST", f"{D}/d-alpha/delete", {"json": {}})]
    for method, path, kw in not_found:
        assert _same_answer(two, method, path, "d-alpha", "d-ghost", **kw) == 404, path
    empty = [f"{D}/d-alpha/decisions", f"{D}/d-alpha/history", f"{D}/d-alpha/summaries?since=0",
             f"{D}/d-alpha/timeline?since=0"]
    for path in empty:  # a missing deployment's children are an empty list; another project's too
        assert _same_answer(two, "GET", path, "d-alpha", "d-ghost") == 200, path
        assert two.api.get(path, headers=two.beta).json() == []
    assert _same_answer(two, "POST", f"{D}/d-alpha/lease?owner=beta", "d-alpha", "d-ghost") == 200
    assert two.api.post(f"{D}/d-alpha/lease?owner=beta", headers=two.beta).json() == {"acquired": False}
    taken = two.api.post(D, json={"name": "d-alpha", "model": "m-beta/1"}, headers=two.beta)
    assert taken.status_code == 409  # names stay unique across projects
    assert _stored(two) == before
    assert two.api.get(f"{D}/d-alpha/history", headers=two.alpha).json()[0]["action"] == "create"


def test_deployment_lists_show_the_projects_own(two: Projects) -> None:
    assert two.api.post(D, json={"name": "d-beta", "model": "m-beta/1"}, headers=two.beta).status_code == 201

    def names(headers: dict[str, str]) -> set[str]:
        return listed(two.api, D, headers)

    assert names(two.alpha) == {"d-alpha"}
    assert "d-alpha" not in two.api.get(D, headers=two.beta).text
    assert names(two.beta) == {"d-beta"}
    assert names(two.root) == {"d-alpha", "d-beta"}
    assert names({**two.root, PROJECT_HEADER: "beta"}) == {"d-beta"}
    assert two.api.get(f"{D}/d-alpha", headers={**two.root, PROJECT_HEADER: "beta"}).status_code == 404
    assert two.api.get(f"{D}/d-alpha", headers=two.root).json()["project"] == "alpha"
    assert {d.name: d.project for d in two.local.deployments.list()} == {"d-alpha": "alpha", "d-beta": "beta"}


def test_a_deployment_only_answers_with_its_projects_models(two: Projects) -> None:
    refused = two.api.post(D, json={"name": "d-stolen", "model": "m-alpha/1"}, headers=two.beta)
    assert refused.status_code == 404, refused.text
    assert two.api.post(D, json={"name": "d-beta", "model": "m-beta/1"}, headers=two.beta).status_code == 201
    for path, body in [("split", {"weights": {"m-beta/1": 50, "m-alpha/1": 50}}),
                       ("shadow", {"models": ["m-alpha/1"]}), ("canary", {"model": "m-alpha/2"})]:
        r = two.api.post(f"{D}/d-beta/{path}", json=body, headers=two.beta)
        assert r.status_code == 404, (path, r.text)
    assert two.api.post(f"{D}/d-alpha/canary", json={"model": "m-beta/1"}, headers=two.alpha).status_code == 404
    assert two.local.deployments.get("d-beta").revision == 1
    assert two.local.deployments.get("d-alpha").revision == 1
    assert "d-stolen" not in {d.name for d in two.local.deployments.list()}


def test_deployments_in_an_embedded_project_block(two: Projects) -> None:
    deps = two.local.deployments
    with project("beta"):
        made = deps.create("d-beta", "m-beta/1")
        assert made.project == "beta"
        assert [d.name for d in deps.list()] == ["d-beta"]
        for call in (lambda: deps.get("d-alpha"), lambda: deps.revision("d-alpha"),
                     lambda: deps.rollback("d-alpha"), lambda: deps.delete("d-alpha"),
                     lambda: deps.shadow("d-alpha", ["m-beta/1"]), lambda: deps.status("d-alpha"),
                     lambda: deps.apply_decision("d-alpha", Decision(deployment="d-alpha", timestamp=1,
                                                                     action="hold", step=5, reason="r"), 1)):
            with pytest.raises(NotFound, match="no deployment named 'd-alpha'"):
                call()
        assert deps.history("d-alpha") == [] and deps.decisions("d-alpha") == []
        assert deps.take_controller_lease("d-alpha", "beta", 30) is False
    with project("alpha"):
        assert [d.name for d in deps.list()] == ["d-alpha"]
        assert deps.take_controller_lease("d-alpha", "alpha-controller", 30) is True
    # unconfined (the canary controller, embedded use): every project
    assert {d.name for d in deps.list()} == {"d-alpha", "d-beta"}
    assert deps.get("d-alpha").revision == 1 and len(deps.history("d-alpha")) == 1
