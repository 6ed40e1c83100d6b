"""The project boundary around datasets: a dataset registered as alpha (its versions, reports, files and the
runs that read it) is absent for beta (the same 404 as a missing one, the store unchanged), hidden from beta's
lists, and visible to an all-projects token unless it names a project. A run and a dataset are linked only
when both are in the scope. SQLite and PostgreSQL (the `projects` fixture)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from arsenale.errors import Conflict, NotFound
from arsenale.security.projects import PROJECT_HEADER, project
from tests.security.conftest import Projects, as_missing, listed, same_404

D = "/api/v1/datasets"
CSV = b"a,b\n1,x\n2,y\n"


def _upload(projects: Projects, headers: dict[str, str], name: str, data: bytes = CSV) -> Any:
    return projects.api.post(f"{D}/{name}/upload?format=csv", content=data, headers=headers)


def _run(projects: Projects, in_project: str) -> str:
    with project(in_project):
        exp = projects.local.tracking.create_experiment(f"e-{in_project}")
        return str(projects.local.tracking.create_run(exp.experiment_id).info.run_id)


def test_a_dataset_is_made_in_the_requests_project(projects: Projects) -> None:
    assert _upload(projects, projects.alpha, "d-alpha").status_code == 201
    got = projects.api.get(f"{D}/d-alpha", headers=projects.alpha)
    assert got.status_code == 200 and got.json()["project"] == "alpha"
    assert projects.local.datasets.get_dataset("d-alpha").project == "alpha"


def test_another_projects_dataset_reads_as_missing_and_stays_unchanged(projects: Projects) -> None:
    assert _upload(projects, projects.alpha, "d-alpha").status_code == 201
    for method, path in [("GET", f"{D}/d-alpha"), ("GET", f"{D}/d-alpha/versions"),
                         ("GET", f"{D}/d-alpha/versions/1"), ("GET", f"{D}/d-alpha/versions/latest"),
                         ("GET", f"{D}/d-alpha/versions/2"), ("GET", f"{D}/d-alpha/versions/1/validation"),
                         ("GET", f"{D}/d-alpha/versions/1/download")]:
        same_404(projects, method, path, "d-alpha", "d-ghost")
    taken = _upload(projects, projects.beta, "d-alpha", b"a,b\n9,z\n")
    assert taken.status_code == 409 and "already taken" in taken.json()["message"]
    same_data = _upload(projects, projects.beta, "d-alpha")  # not even identical data finds alpha's version
    assert same_data.status_code == 409
    assert [v.version for v in projects.local.datasets.versions("d-alpha")] == [1]
    assert projects.local.datasets.get_dataset("d-alpha").project == "alpha"


def test_dataset_lists_show_the_projects_own(projects: Projects) -> None:
    _upload(projects, projects.alpha, "d-alpha")
    _upload(projects, projects.beta, "d-beta")

    def names(headers: dict[str, str]) -> set[str]:
        return listed(projects.api, D, headers)

    assert names(projects.beta) == {"d-beta"} and "d-alpha" not in projects.api.get(D, headers=projects.beta).text
    assert names(projects.alpha_viewer) == {"d-alpha"}
    assert names(projects.root) == {"d-alpha", "d-beta"}
    assert names({**projects.root, PROJECT_HEADER: "beta"}) == {"d-beta"}


def test_inputs_link_only_a_run_and_a_dataset_of_the_scope(projects: Projects) -> None:
    _upload(projects, projects.alpha, "d-alpha")
    _upload(projects, projects.beta, "d-beta")
    run_a, run_b, ghost = _run(projects, "alpha"), _run(projects, "beta"), "0" * 32
    # beta names alpha's run, or alpha's dataset: each reads as missing
    got = projects.api.post(f"/api/v1/runs/{run_a}/inputs", json={"name": "d-beta", "version": 1},
                            headers=projects.beta)
    missing = projects.api.post(f"/api/v1/runs/{ghost}/inputs", json={"name": "d-beta", "version": 1},
                                headers=projects.beta)
    assert got.status_code == 404 and as_missing(got.json(), run_a, ghost) == missing.json()
    got = projects.api.post(f"/api/v1/runs/{run_b}/inputs", json={"name": "d-alpha", "version": 1},
                            headers=projects.beta)
    missing = projects.api.post(f"/api/v1/runs/{run_b}/inputs", json={"name": "d-ghost", "version": 1},
                                headers=projects.beta)
    assert got.status_code == 404 and as_missing(got.json(), "d-alpha", "d-ghost") == missing.json()
    got = projects.api.get(f"/api/v1/runs/{run_a}/inputs", headers=projects.beta)
    assert got.status_code == 404
    assert projects.local.datasets.inputs(run_a) == [] and projects.local.datasets.inputs(run_b) == []
    # in their own project they link
    assert projects.api.post(f"/api/v1/runs/{run_a}/inputs", json={"name": "d-alpha", "version": 1},
                             headers=projects.alpha).status_code == 201
    assert [i["name"] for i in projects.api.get(f"/api/v1/runs/{run_a}/inputs", headers=projects.alpha).json()] \
        == ["d-alpha"]


def test_embedded_project_blocks_confine_datasets(projects: Projects) -> None:
    ds = projects.local.datasets
    frame = pd.DataFrame({"a": [1, 2]})
    with project("alpha"):
        ds.register("d-alpha", frame)
        run_a = projects.local.tracking.create_run(
            projects.local.tracking.create_experiment("e-alpha").experiment_id).info.run_id
        ds.record_input(run_a, "d-alpha", 1)
        assert [r.run_id for r in ds.consumers("d-alpha", 1)] == [run_a]
    with project("beta"):
        with pytest.raises(NotFound, match="does not exist"):
            ds.get("d-alpha")
        with pytest.raises(NotFound):
            ds.consumers("d-alpha", 1)
        with pytest.raises(NotFound):
            ds.inputs(run_a)
        with pytest.raises(Conflict):
            ds.register("d-alpha", frame)
        assert ds.list() == []
    assert [d.name for d in ds.list()] == ["d-alpha"]  # unconfined: everything, as before
    assert [r.run_id for r in ds.consumers("d-alpha", 1)] == [run_a]
