"""The project boundary around the model registry: a model made as alpha (and its versions, aliases, stages,
events and legal holds) is absent for beta (the same 404 as a missing one, the store unchanged), hidden from
beta's lists, and visible to an all-projects token unless it names a project. A run of another project named
in a request body reads as missing; webhooks follow their model's project. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from arsenale.errors import Conflict, NotFound
from arsenale.security.projects import PROJECT_HEADER, project
from tests.security.conftest import Projects, as_missing, listed, same_404

M = "/api/v1/models"


def _files(projects: Projects, headers: dict[str, str]) -> list[dict[str, Any]]:
    blob = projects.api.post("/api/v1/blobs", content=b"weights", headers=headers)
    assert blob.status_code == 201, blob.text
    return [{"path": "model.bin", **blob.json()}]


def _version(projects: Projects, headers: dict[str, str], name: str, **extra: Any) -> Any:
    return projects.api.post(f"{M}/{name}/versions", headers=headers,
                             json={"files": _files(projects, headers), "flavor": "custom", "flavor_meta": {}, **extra})


def _alpha_model(projects: Projects, name: str = "m-alpha") -> None:
    assert projects.api.post(M, json={"name": name}, headers=projects.alpha).status_code == 201
    assert _version(projects, projects.alpha, name).status_code == 201
    assert projects.api.put(f"{M}/{name}/aliases/champion", json={"version": 1},
                            headers=projects.alpha).status_code == 200


def test_a_model_is_made_in_the_requests_project(projects: Projects) -> None:
    assert projects.api.post(M, json={"name": "m-alpha"}, headers=projects.alpha).status_code == 201
    assert _version(projects, projects.alpha, "m-auto").status_code == 201  # a version creates its model
    for name in ("m-alpha", "m-auto"):
        got = projects.api.get(f"{M}/{name}", headers=projects.alpha)
        assert got.status_code == 200 and got.json()["project"] == "alpha"
        assert projects.local.registry.get_model(name).project == "alpha"


def test_another_projects_model_reads_as_missing_and_stays_unchanged(projects: Projects) -> None:
    _alpha_model(projects)
    assert projects.api.post(f"{M}/m-alpha/versions/1/legal-hold", json={"reason": "audit"},
                             headers=projects.alpha).status_code == 201
    for method, path, kw in [
            ("GET", f"{M}/m-alpha", {}), ("GET", f"{M}/m-alpha/versions", {}),
            ("GET", f"{M}/m-alpha/versions/1", {}), ("GET", f"{M}/m-alpha/events", {}),
            ("GET", f"{M}/m-alpha/versions/1/lineage", {}), ("GET", f"{M}/m-alpha/diff?a=1&b=1", {}),
            ("GET", f"{M}/m-alpha/versions/1/files/model.bin", {}),
            ("GET", "/api/v1/resolve?uri=models:/m-alpha@champion", {}),
            ("GET", "/api/v1/resolve?uri=models:/m-alpha/1", {}),
            ("GET", "/api/v1/resolve?uri=models:/m-alpha/latest", {}),
            ("GET", "/api/v1/legal-holds?name=m-alpha", {}),
            ("PATCH", f"{M}/m-alpha/versions/1", {"json": {"description": "mine now"}}),
            ("POST", f"{M}/m-alpha/versions/1/stage", {"json": {"stage": "Production"}}),
            ("PUT", f"{M}/m-alpha/aliases/champion", {"json": {"version": 1}}),
            ("PUT", f"{M}/m-alpha/aliases/other", {"json": {"version": 1}}),
            ("DELETE", f"{M}/m-alpha/aliases/champion", {}),
            ("POST", f"{M}/m-alpha/aliases/champion/undo", {}),
            ("POST", f"{M}/m-alpha/versions/1/legal-hold", {"json": {"reason": "x"}})]:
        same_404(projects, method, path, "m-alpha", "m-ghost", **kw)
    # releasing a hold and deleting a version need an admin: alpha's admin may, beta's editor is refused before
    assert projects.api.delete(f"{M}/m-alpha/versions/1", headers=projects.beta).status_code in (403, 404)
    taken = projects.api.post(M, json={"name": "m-alpha"}, headers=projects.beta)
    assert taken.status_code == 409
    taken = _version(projects, projects.beta, "m-alpha")
    assert taken.status_code == 409 and "already taken" in taken.json()["message"]
    versions = projects.local.registry.list_versions("m-alpha")
    assert [(v.version, v.stage.value, v.description, v.aliases) for v in versions] == \
        [(1, "None", None, ["champion"])]
    assert [h.version for h in projects.local.registry.legal_holds("m-alpha")] == [1]
    assert projects.local.registry.get_model("m-alpha").project == "alpha"


def test_admin_only_writes_on_another_projects_model_readas_missing(projects: Projects) -> None:
    _alpha_model(projects)
    projects.api.post(f"{M}/m-alpha/versions/1/legal-hold", json={"reason": "audit"}, headers=projects.alpha)
    beta_admin = {"Authorization": "Bearer " + projects.local.tokens.create("beta-admin", role="admin",
                                                                            project="beta")[1]}
    for method, path in [("DELETE", f"{M}/m-alpha/versions/1/legal-hold"), ("DELETE", f"{M}/m-alpha/versions/1")]:
        got = projects.api.request(method, path, headers=beta_admin)
        missing = projects.api.request(method, path.replace("m-alpha", "m-ghost"), headers=beta_admin)
        assert got.status_code == 404 and missing.status_code == 404, got.text
        assert as_missing(got.json(), "m-alpha", "m-ghost") == missing.json()
    assert [h.version for h in projects.local.registry.legal_holds("m-alpha")] == [1]
    assert [v.version for v in projects.local.registry.list_versions("m-alpha")] == [1]


def test_model_lists_show_the_projects_own(projects: Projects) -> None:
    _alpha_model(projects)
    assert _version(projects, projects.beta, "m-beta").status_code == 201
    for name, headers in (("m-alpha", projects.alpha), ("m-beta", projects.beta)):
        assert projects.api.post(f"{M}/{name}/versions/1/legal-hold", json={"reason": "audit"},
                                 headers=headers).status_code == 201

    def names(path: str, headers: dict[str, str]) -> set[str]:
        return listed(projects.api, path, headers)

    assert names(M, projects.beta) == {"m-beta"} and "m-alpha" not in projects.api.get(M, headers=projects.beta).text
    assert names(M, projects.alpha) == {"m-alpha"}
    assert names("/api/v1/legal-holds", projects.beta) == {"m-beta"}
    assert names("/api/v1/legal-holds", projects.alpha_viewer) == {"m-alpha"}
    assert names(M, projects.root) == {"m-alpha", "m-beta"}
    assert names("/api/v1/legal-holds", projects.root) == {"m-alpha", "m-beta"}
    assert names(M, {**projects.root, PROJECT_HEADER: "beta"}) == {"m-beta"}
    assert names("/api/v1/legal-holds", {**projects.root, PROJECT_HEADER: "beta"}) == {"m-beta"}
    assert names(f"{M}?name_like=m-%25", projects.beta) == {"m-beta"}


def test_a_run_of_another_project_in_a_body_readsas_missing(projects: Projects) -> None:
    with project("alpha"):
        exp = projects.local.tracking.create_experiment("e-alpha")
        run_id = projects.local.tracking.create_run(exp.experiment_id).info.run_id
    ghost = "0" * 32
    for extra in ({"run_id": run_id}, {"source": f"runs:/{run_id}/model"}):
        body = {"files": _files(projects, projects.beta), "flavor": "custom", "flavor_meta": {}, **extra}
        if "source" in extra:
            body = {"source": extra["source"]}
        got = projects.api.post(f"{M}/m-beta/versions", json=body, headers=projects.beta)
        missing = projects.api.post(f"{M}/m-beta/versions", headers=projects.beta,
                                    json={k: v.replace(run_id, ghost) if isinstance(v, str) else v
                                          for k, v in body.items()})
        assert got.status_code == 404 and missing.status_code == 404, got.text
        assert as_missing(got.json(), run_id, ghost) == missing.json()
    assert "m-beta" not in {m.name for m in projects.local.registry.list_models()}
    # in its own project the run is found, and the version lists it
    made = _version(projects, projects.alpha, "m-alpha", run_id=run_id)
    assert made.status_code == 201 and made.json()["run_id"] == run_id
    with project("alpha"):
        assert [v["name"] for v in projects.local.registry.store.versions_of_run(run_id)] == ["m-alpha"]
    with project("beta"):
        assert projects.local.registry.store.versions_of_run(run_id) == []


def test_embedded_project_blocks_confine_the_registry(projects: Projects) -> None:
    reg = projects.local.registry
    with project("alpha"):
        reg.create_model("m-alpha")
        assert reg.get_model("m-alpha").project == "alpha"
    with project("beta"):
        with pytest.raises(NotFound, match="does not exist"):
            reg.get_model("m-alpha")
        with pytest.raises(NotFound):
            reg.events("m-alpha")
        with pytest.raises(Conflict):
            reg.create_model("m-alpha")
        assert reg.list_models() == []
    assert [m.name for m in reg.list_models()] == ["m-alpha"]  # unconfined: everything, as before


def test_webhooks_follow_their_models_project(projects: Projects) -> None:
    _alpha_model(projects)
    hook = {"url": "https://hooks.example.com/x", "events": ["*"]}
    made = projects.api.post("/api/v1/webhooks", json={**hook, "model_name": "m-alpha"}, headers=projects.alpha)
    assert made.status_code == 201, made.text
    hook_id = made.json()["webhook_id"]
    refused = projects.api.post("/api/v1/webhooks", json={**hook, "model_name": "m-alpha"}, headers=projects.beta)
    ghost = projects.api.post("/api/v1/webhooks", json={**hook, "model_name": "m-ghost"}, headers=projects.beta)
    assert refused.status_code == 404 and as_missing(refused.json(), "m-alpha", "m-ghost") == ghost.json()
    assert projects.api.post("/api/v1/webhooks", json=hook, headers=projects.beta).status_code == 400
    assert projects.api.get("/api/v1/webhooks", headers=projects.beta).json() == []
    for method, path in [("GET", f"/api/v1/webhooks/{hook_id}/deliveries"), ("DELETE", f"/api/v1/webhooks/{hook_id}")]:
        got = projects.api.request(method, path, headers=projects.beta)
        missing = projects.api.request(method, path.replace(hook_id, "f" * 32), headers=projects.beta)
        assert got.status_code == 404 and as_missing(got.json(), hook_id, "f" * 32) == missing.json()
    assert [h["webhook_id"] for h in projects.api.get("/api/v1/webhooks", headers=projects.alpha).json()] == [hook_id]
    assert [h.webhook_id for h in projects.local.webhooks.list()] == [hook_id]
