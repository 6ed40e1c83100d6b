"""The request's project: taken from its token, or named by an all-projects token with X-Arsenale-Project;
what spans projects needs an all-projects token; a project's admin manages its own tokens only. SQLite and
PostgreSQL (the `projects` fixture)."""

from __future__ import annotations

import httpx
import pytest

from arsenale.client.http import _name_project
from arsenale.security.projects import PROJECT_HEADER, ProjectScope, current, header_value, project
from tests.security.conftest import Projects

PLATFORM_READS = ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/metrics/delivery", "/api/v1/secrets",
                  "/api/v1/retention/policies", "/metrics"]


def test_whoami_names_the_tokens_project(projects: Projects) -> None:
    body = projects.api.get("/api/v1/auth/whoami", headers=projects.alpha).json()
    assert (body["name"], body["role"], body["project"]) == ("alpha-editor", "editor", "alpha")


def test_a_project_token_cannot_name_another_project(projects: Projects) -> None:
    r = projects.api.get("/api/v1/experiments", headers={**projects.alpha, PROJECT_HEADER: "beta"})
    assert r.status_code == 403
    assert "is for project 'alpha', not 'beta'" in r.json()["message"]
    same = projects.api.get("/api/v1/experiments", headers={**projects.alpha, PROJECT_HEADER: "alpha"})
    assert same.status_code == 200


@pytest.mark.parametrize("bad", ["../etc", "*", "", "a b", "x" * 129])
def test_a_malformed_project_header_is_a_clear_400(projects: Projects, bad: str) -> None:
    r = projects.api.get("/api/v1/experiments", headers={**projects.root, PROJECT_HEADER: bad})
    assert r.status_code == 400
    assert PROJECT_HEADER in r.text


@pytest.mark.parametrize("path", PLATFORM_READS)
def test_what_spans_projects_needs_an_all_projects_token(projects: Projects, path: str) -> None:
    r = projects.api.get(path, headers=projects.alpha_admin)
    assert r.status_code == 403, r.text
    assert "needs a token for all projects" in r.text
    assert projects.api.get(path, headers=projects.root).status_code == 200


def test_dashboard_hides_cross_project_pages_from_a_project_session(projects: Projects) -> None:
    alpha_secret = projects.alpha_admin["Authorization"].removeprefix("Bearer ")
    root_secret = projects.root["Authorization"].removeprefix("Bearer ")

    def nav(secret: str) -> str:
        projects.api.cookies.clear()
        login = projects.api.post("/login", data={"token": secret, "next": "/"}, follow_redirects=False)
        assert login.status_code == 303, login.text
        return projects.api.get("/").text

    page = nav(alpha_secret)
    assert "project alpha" in page and 'href="/security"' not in page and 'href="/delivery"' not in page
    assert projects.api.get("/security").status_code == 403
    page = nav(root_secret)
    assert "all projects" in page and 'href="/security"' in page


def test_a_project_admin_manages_its_own_projects_tokens_only(projects: Projects) -> None:
    api = projects.api
    made = api.post("/api/v1/tokens", json={"name": "alpha-ci", "role": "viewer", "project": "alpha"},
                    headers=projects.alpha_admin)
    assert made.status_code == 201 and made.json()["project"] == "alpha"
    for other in ("beta", "*"):
        r = api.post("/api/v1/tokens", json={"name": "escalate", "role": "admin", "project": other},
                     headers=projects.alpha_admin)
        assert r.status_code == 403 and f"not {other!r}" in r.json()["message"]
    listed = {row["name"] for row in api.get("/api/v1/tokens", headers=projects.alpha_admin).json()}
    assert listed == {"alpha-editor", "alpha-viewer", "alpha-admin", "alpha-ci"}
    everyone = {row["name"] for row in api.get("/api/v1/tokens", headers=projects.root).json()}
    assert {"beta-editor", "root", "escalate"} & everyone == {"beta-editor", "root"}

    beta_id = next(row["id"] for row in api.get("/api/v1/tokens", headers=projects.root).json()
                   if row["name"] == "beta-editor")
    r = api.delete(f"/api/v1/tokens/{beta_id}", headers=projects.alpha_admin)
    assert r.status_code == 404 and r.json() == api.delete("/api/v1/tokens/000000000000",
                                                           headers=projects.alpha_admin).json() | {
        "message": r.json()["message"]}
    assert api.get("/api/v1/auth/whoami", headers=projects.beta).status_code == 200  # still valid
    assert api.delete(f"/api/v1/tokens/{made.json()['id']}", headers=projects.alpha_admin).status_code == 200


def test_the_remote_client_names_the_project_it_works_in(monkeypatch: pytest.MonkeyPatch) -> None:
    def sent() -> str | None:
        request = httpx.Request("GET", "http://server/api/v1/experiments")
        _name_project(request)
        return request.headers.get(PROJECT_HEADER)

    monkeypatch.delenv("ARSENALE_PROJECT", raising=False)
    assert sent() is None and current() == ProjectScope("default", confined=False)
    with project("alpha"):
        assert sent() == "alpha" and header_value() == "alpha"
        with project("beta", confined=False):
            assert sent() is None and current().home == "beta"
    monkeypatch.setenv("ARSENALE_PROJECT", "gamma")
    assert sent() == "gamma" and current() == ProjectScope("gamma", confined=True)
    monkeypatch.setenv("ARSENALE_PROJECT", "../x")
    with pytest.raises(Exception, match="project"):
        current()


def test_projects_are_listed_with_what_they_hold_within_the_scope(projects: Projects,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    api = projects.api
    for headers, name in ((projects.alpha, "a1"), (projects.alpha, "a2"), (projects.beta, "b1")):
        assert api.post("/api/v1/experiments", json={"name": name}, headers=headers).status_code == 201
    assert api.post("/api/v1/prompts", json={"name": "ask", "template": "Hi {{ x }}"},
                    headers=projects.beta).status_code == 201
    mine = api.get("/api/v1/projects", headers=projects.alpha_viewer).json()
    assert [(p["name"], p["experiments"], p["prompts"]) for p in mine] == [("alpha", 2, 0)]
    every = {p["name"]: p for p in api.get("/api/v1/projects", headers=projects.root).json()}
    assert (every["alpha"]["experiments"], every["beta"]["experiments"], every["beta"]["prompts"]) \
        == (2, 1, 1)
    named = api.get("/api/v1/projects", headers={**projects.root, PROJECT_HEADER: "beta"}).json()
    assert [p["name"] for p in named] == ["beta"]

    from typer.testing import CliRunner

    from arsenale.cli.main import app

    monkeypatch.setenv("ARSENALE_URI", projects.local.uri)
    out = CliRunner().invoke(app, ["--project", "alpha", "projects", "--json"])
    assert out.exit_code == 0, out.output
    assert '"name": "alpha"' in out.output and "beta" not in out.output
    listed = CliRunner().invoke(app, ["--project", "beta", "experiments", "list"])
    assert listed.exit_code == 0 and "b1" in listed.output and "a1" not in listed.output
    assert CliRunner().invoke(app, ["--project", "../x", "projects"]).exit_code != 0
