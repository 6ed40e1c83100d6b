"""The project boundary around experiment tracking and gate runs. An experiment made as alpha (and its runs,
metrics, artifacts) is absent for beta: the same 404 as a missing one, the store unchanged, nothing in beta's
lists or searches; an all-projects token sees both unless it names a project. A gate run belongs to its
model's project. SQLite and PostgreSQL (the `projects` fixture)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from arsenale.errors import NotFound
from arsenale.security.projects import PROJECT_HEADER, project
from tests.security.conftest import Projects, listed

E = "/api/v1/experiments"
R = "/api/v1/runs"
G = "/api/v1/gates/runs"
GHOST_RUN = "0" * 32
GHOST_EXP = "987654"
RESULT = {"name": "performance.accuracy", "passed": True, "message": "ok"}


def _as_missing(body: dict[str, Any], key: str, ghost: str) -> dict[str, Any]:
    """The error body with the key swapped: what a missing thing answers, if nothing else differs."""
    return {**body, "message": body["message"].replace(key, ghost)}


def _sub(value: Any, key: str, ghost: str) -> Any:
    if isinstance(value, str):
        return value.replace(key, ghost)
    if isinstance(value, dict):
        return {k: _sub(v, key, ghost) for k, v in value.items()}
    return value


def _same_404(projects: Projects, method: str, path: str, key: str, ghost: str, **kw: Any) -> None:
    """Beta's answer for alpha's `key` equals its answer for a `ghost` key that does not exist."""
    got = projects.api.request(method, path, headers=projects.beta, **kw)
    missing_kw = {k: _sub(v, key, ghost) for k, v in kw.items()}
    ghost_path = re.sub(rf"(?<=/){re.escape(key)}(?=[/?]|$)", ghost, path)  # whole segments: not /api/v1
    missing = projects.api.request(method, ghost_path, headers=projects.beta, **missing_kw)
    assert got.status_code == 404, (method, path, got.text)
    assert missing.status_code == 404, (method, path, missing.text)
    assert _as_missing(got.json(), key, ghost) == missing.json()


def _experiment(projects: Projects, headers: dict[str, str], name: str) -> str:
    r = projects.api.post(E, json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["experiment_id"])


def _run(projects: Projects, headers: dict[str, str], exp_id: str) -> str:
    """A run with a param, one metric point and one artifact."""
    r = projects.api.post(R, json={"experiment_id": exp_id, "params": {"lr": "0.1"}}, headers=headers)
    assert r.status_code == 201, r.text
    run_id = str(r.json()["info"]["run_id"])
    logged = projects.api.post(f"{R}/{run_id}/log-batch", headers=headers,
                               json={"metrics": {"key": "loss", "value": [0.5], "step": [1]}})
    assert logged.status_code == 204, logged.text
    put = projects.api.put(f"{R}/{run_id}/artifacts/a.txt", content=b"alpha's", headers=headers)
    assert put.status_code == 201, put.text
    return run_id


def _search(projects: Projects, headers: dict[str, str], ids: list[str], **extra: Any) -> list[str]:
    r = projects.api.post(f"{R}/search", json={"experiment_ids": ids, **extra}, headers=headers)
    assert r.status_code == 200, r.text
    return [run["info"]["run_id"] for run in r.json()["runs"]]


def test_an_experiment_is_made_in_the_requests_project(projects: Projects) -> None:
    made = projects.api.post(E, json={"name": "e-alpha"}, headers=projects.alpha)
    assert made.status_code == 201 and made.json()["project"] == "alpha"
    exp_id = str(made.json()["experiment_id"])
    got = projects.api.get(f"{E}/{exp_id}", headers=projects.alpha)
    assert got.status_code == 200 and got.json()["project"] == "alpha"
    assert projects.api.get(f"{E}/by-name/e-alpha", headers=projects.alpha).json()["project"] == "alpha"
    assert projects.local.tracking.get_experiment(exp_id).project == "alpha"


def test_another_projects_experiment_reads_as_missing_and_stays_unchanged(projects: Projects) -> None:
    exp_id = _experiment(projects, projects.alpha, "e-alpha")
    run_id = _run(projects, projects.alpha, exp_id)
    for method, path, kw in [("GET", f"{E}/{exp_id}", {}), ("POST", f"{E}/{exp_id}/delete", {}),
                             ("POST", f"{E}/{exp_id}/restore", {})]:
        _same_404(projects, method, path, exp_id, GHOST_EXP, **kw)
    _same_404(projects, "GET", f"{E}/by-name/e-alpha", "e-alpha", "e-ghost")
    # an experiment id in a body: a run is not created in another project's experiment
    _same_404(projects, "POST", R, exp_id, GHOST_EXP, json={"experiment_id": exp_id, "run_name": "intruder"})
    taken = projects.api.post(E, json={"name": "e-alpha"}, headers=projects.beta)
    assert taken.status_code == 409  # names stay unique across projects
    exp = projects.local.tracking.get_experiment(exp_id)
    assert (exp.project, exp.lifecycle_stage) == ("alpha", "active")
    assert [r.info.run_id for r in projects.local.tracking.search_runs([exp_id], view="all").runs] == [run_id]


def test_another_projects_run_reads_as_missing_and_stays_unchanged(projects: Projects) -> None:
    run_id = _run(projects, projects.alpha, _experiment(projects, projects.alpha, "e-alpha"))
    beta_exp = _experiment(projects, projects.beta, "e-beta")
    for method, path, kw in [
            ("GET", f"{R}/{run_id}", {}),
            ("PATCH", f"{R}/{run_id}", {"json": {"status": "KILLED", "run_name": "mine"}}),
            ("POST", f"{R}/{run_id}/delete", {}), ("POST", f"{R}/{run_id}/restore", {}),
            ("POST", f"{R}/{run_id}/log-batch", {"json": {"metrics": {"key": "loss", "value": [9.0], "step": [2]},
                                                         "params": {"lr": "1"}, "tags": {"t": "x"}}}),
            ("GET", f"{R}/{run_id}/metrics/history?key=loss", {}),
            ("GET", f"{R}/{run_id}/artifacts", {}),
            ("GET", f"{R}/{run_id}/artifacts?path=a.txt", {}),
            ("GET", f"{R}/{run_id}/artifacts/content/a.txt", {}),
            ("PUT", f"{R}/{run_id}/artifacts/b.txt", {"content": b"beta's"}),
            # run ids in request bodies: a parent run, a model version's source run
            ("POST", R, {"json": {"experiment_id": beta_exp, "parent_run_id": run_id}}),
            ("POST", "/api/v1/models/m-beta/versions", {"json": {"source": f"runs:/{run_id}/model"}})]:
        _same_404(projects, method, path, run_id, GHOST_RUN, **kw)
    run = projects.local.tracking.get_run(run_id)
    assert (run.info.status.value, run.info.run_name != "mine", run.info.lifecycle_stage) == ("RUNNING", True,
                                                                                              "active")
    assert (run.data.params, run.data.tags.get("t"), run.data.metrics) == ({"lr": "0.1"}, None, {"loss": 0.5})
    assert projects.local.tracking.get_metric_history(run_id, "loss").values == [0.5]
    assert [a.path for a in projects.local.tracking.list_artifacts(run_id)] == ["a.txt"]
    assert projects.local.tracking.search_runs([beta_exp]).runs == []


def test_searching_another_projects_experiment_finds_nothing(projects: Projects) -> None:
    alpha_exp = _experiment(projects, projects.alpha, "e-alpha")
    alpha_run = _run(projects, projects.alpha, alpha_exp)
    beta_exp = _experiment(projects, projects.beta, "e-beta")
    beta_run = _run(projects, projects.beta, beta_exp)
    both = [alpha_exp, beta_exp]
    assert _search(projects, projects.beta, [alpha_exp]) == [] == _search(projects, projects.beta, [GHOST_EXP])
    assert _search(projects, projects.beta, both) == [beta_run]
    # the sorted path builds its query differently from the default order
    assert _search(projects, projects.beta, both, order_by=["metrics.loss DESC"], filter="params.lr = '0.1'",
                   view="all") == [beta_run]
    assert _search(projects, projects.alpha, both) == [alpha_run]
    assert set(_search(projects, projects.root, both)) == {alpha_run, beta_run}
    assert _search(projects, {**projects.root, PROJECT_HEADER: "beta"}, both) == [beta_run]


def test_experiment_lists_show_the_projects_own(projects: Projects) -> None:
    _experiment(projects, projects.alpha, "e-alpha")
    _experiment(projects, projects.beta, "e-beta")

    def names(headers: dict[str, str], view: str = "active") -> set[str]:
        return listed(projects.api, f"{E}?view={view}", headers)

    assert "e-alpha" not in projects.api.get(f"{E}?view=all", headers=projects.beta).text
    assert names(projects.beta) == names(projects.beta, "all") == {"e-beta"}
    assert names(projects.alpha_viewer) == {"e-alpha"}
    assert names(projects.root) == {"e-alpha", "e-beta"}
    assert names({**projects.root, PROJECT_HEADER: "beta"}) == {"e-beta"}
    assert projects.api.get(f"{E}/by-name/e-alpha", headers={**projects.root, PROJECT_HEADER: "beta"}
                            ).status_code == 404
    assert projects.api.get(f"{E}/by-name/e-alpha", headers=projects.root).json()["project"] == "alpha"


def test_embedded_scope_confines_the_tracking_service(projects: Projects) -> None:
    tracking = projects.local.tracking
    with project("alpha"):
        exp = tracking.create_experiment("e-embedded")
        run_id = tracking.create_run(exp.experiment_id).info.run_id
        tracking.log_batch(run_id, [("loss", 0.5, 1, 1)])
    assert exp.project == "alpha"
    with project("beta"):
        with pytest.raises(NotFound, match=f"experiment {exp.experiment_id} does not exist"):
            tracking.get_experiment(exp.experiment_id)
        assert tracking.get_experiment_by_name("e-embedded") is None
        assert "e-embedded" not in {e.name for e in tracking.list_experiments("all")}
        for call in (lambda: tracking.get_run(run_id), lambda: tracking.store.require_run(run_id),
                     lambda: tracking.log_batch(run_id, [("loss", 9.0, 2, 2)]),
                     lambda: tracking.get_metric_history(run_id, "loss"),
                     lambda: tracking.delete_experiment(exp.experiment_id)):
            with pytest.raises(NotFound, match=f"(run {run_id}|experiment {exp.experiment_id}) does not exist"):
                call()
        assert tracking.search_runs([exp.experiment_id]).runs == []
    assert tracking.get_metric_history(run_id, "loss").values == [0.5]  # unconfined: everything, unchanged
    assert tracking.get_experiment(exp.experiment_id).lifecycle_stage == "active"


def _alpha_gate_run(projects: Projects) -> int:
    blob = projects.api.post("/api/v1/blobs", content=b"weights", headers=projects.alpha)
    assert blob.status_code == 201, blob.text
    version = projects.api.post("/api/v1/models/m-alpha/versions", headers=projects.alpha, json={
        "files": [{"path": "model.bin", **blob.json()}], "flavor": "custom", "flavor_meta": {}})
    assert version.status_code == 201, version.text
    made = projects.api.post(G, headers=projects.alpha, json={"name": "m-alpha", "version": 1, "dataset": "d",
                                                              "results": [RESULT], "policy": "[[performance]]"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_another_projects_gate_run_reads_as_missing_and_stays_unchanged(projects: Projects) -> None:
    gate_id = _alpha_gate_run(projects)
    ghost = str(gate_id + 1000)
    _same_404(projects, "GET", f"{G}/{gate_id}", str(gate_id), ghost)
    _same_404(projects, "POST", f"{G}/{gate_id}/promote", str(gate_id), ghost, json={"alias": "challenger"})
    recorded = projects.api.post(G, headers=projects.beta, json={"name": "m-alpha", "version": 1, "dataset": "d",
                                                                 "results": [RESULT], "policy": "p"})
    assert recorded.status_code == 404, recorded.text
    stored = projects.local.gates.list("m-alpha")
    assert [(g.id, g.promotion) for g in stored] == [(gate_id, None)]
    assert projects.local.registry.get_version("m-alpha", 1).aliases == []
    with project("beta"), pytest.raises(NotFound, match=f"no gate run {gate_id}"):
        projects.local.gates.get(gate_id)


def test_gate_run_lists_show_the_projects_own(projects: Projects) -> None:
    gate_id = _alpha_gate_run(projects)

    def ids(headers: dict[str, str], query: str = "") -> list[int]:
        r = projects.api.get(f"{G}{query}", headers=headers)
        assert r.status_code == 200, r.text
        return [g["id"] for g in r.json()]

    assert ids(projects.beta) == [] == ids(projects.beta, "?model=m-alpha&version=1")
    assert ids({**projects.root, PROJECT_HEADER: "beta"}) == []
    assert ids(projects.alpha_viewer) == [gate_id] == ids(projects.alpha, "?model=m-alpha")
    assert ids(projects.root) == [gate_id]
    with project("beta"):
        assert projects.local.gates.list() == []
