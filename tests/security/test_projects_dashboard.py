"""The project boundary in the dashboard: a session signed in with one project's token sees that project's
experiments, runs, models, deployments and monitors, and another project's pages answer 404 as missing ones
do. SQLite and PostgreSQL (the `projects` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsenale.registry.models import ModelFile
from arsenale.security.projects import project
from tests.security.conftest import Projects

NAMES = ("e-alpha", "m-alpha", "d-alpha", "mon-alpha")


@pytest.fixture
def alpha(projects: Projects, tmp_path: Path) -> dict[str, str]:
    """Alpha's experiment, run (with a metric), model version, deployment and monitor; their ids."""
    local = projects.local
    blob = tmp_path / "w.bin"
    blob.write_bytes(b"weights")
    with project("alpha"):
        exp = local.tracking.create_experiment("e-alpha")
        run = local.tracking.create_run(exp.experiment_id, run_name="r-alpha")
        local.tracking.log_batch(run.info.run_id, metrics=[("auc", 0.9, 1, 0)])
        digest, size = local.registry.upload_file(blob)
        local.registry.create_version("m-alpha", files=[ModelFile(path="w.bin", digest=digest, size=size)],
                                      flavor="sklearn", flavor_meta={})
        local.deployments.create("d-alpha", "m-alpha/1")
    made = projects.api.post("/api/v1/monitors/llm", json={"name": "mon-alpha"}, headers=projects.alpha)
    assert made.status_code == 201, made.text
    return {"experiment": exp.experiment_id, "run": run.info.run_id}


def _sign_in(projects: Projects, headers: dict[str, str]) -> None:
    projects.api.cookies.clear()
    secret = headers["Authorization"].removeprefix("Bearer ")
    login = projects.api.post("/login", data={"token": secret, "next": "/"}, follow_redirects=False)
    assert login.status_code == 303, login.text


def _pages(run: str, exp: str, who: str = "alpha") -> list[str]:
    return [f"/experiments/{exp}", f"/runs/{run}", f"/runs/{run}/artifacts",
            f"/runs/{run}/metrics.json?key=auc", f"/models/m-{who}", f"/models/m-{who}/versions/1",
            f"/deployments/d-{who}", f"/monitors/mon-{who}"]


def test_a_project_session_sees_its_own_pages(projects: Projects, alpha: dict[str, str]) -> None:
    _sign_in(projects, projects.alpha_viewer)
    for page in _pages(alpha["run"], alpha["experiment"]):
        assert projects.api.get(page).status_code == 200, page
    listed = "".join(projects.api.get(p).text for p in ("/", "/models", "/deployments", "/monitors"))
    assert all(name in listed for name in NAMES)


def test_another_projects_pages_read_as_missing(projects: Projects, alpha: dict[str, str]) -> None:
    _sign_in(projects, projects.beta)
    ghost_run, ghost_exp = "f" * 32, "987654"
    pages = _pages(alpha["run"], alpha["experiment"])
    for page, ghost_page in zip(pages, _pages(ghost_run, ghost_exp, "ghost"), strict=True):
        got, missing = projects.api.get(page), projects.api.get(ghost_page)
        assert (got.status_code, missing.status_code) == (404, 404), (page, got.status_code)
        text = (got.text.replace(alpha["run"], ghost_run).replace("-alpha", "-ghost")
                .replace(f"experiment {alpha['experiment']} ", f"experiment {ghost_exp} "))
        assert text == missing.text, page  # the same page as for a thing that never existed
    for page in ("/", "/models", "/deployments", "/monitors", "/compare?runs=" + alpha["run"]):
        text = projects.api.get(page).text
        leaked = [name for name in (*NAMES, "r-alpha") if name in text]
        assert leaked == [], (page, leaked)
