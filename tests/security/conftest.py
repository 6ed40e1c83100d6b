"""Two projects on one server with auth: tokens for `alpha`, for `beta` and for all projects, SQLite and
PostgreSQL. The project-boundary tests build things as each project and check that the other cannot
see them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.app import create_app


@dataclass
class Projects:
    """A server with auth, the client next to its store, and one `Authorization` header per role."""

    local: Client
    api: TestClient
    alpha: dict[str, str]  # editor in alpha
    beta: dict[str, str]  # editor in beta
    alpha_viewer: dict[str, str]
    alpha_admin: dict[str, str]
    root: dict[str, str]  # admin in every project


def _bearer(local: Client, name: str, role: str, project: str) -> dict[str, str]:
    _, secret = local.tokens.create(name, role=role, project=project)
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def projects(store_uri: str, tmp_path: Path) -> Iterator[Projects]:
    local = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="admin-on-the-box")
    with TestClient(create_app(local, auth=True, rate_limit_per_minute=100_000)) as api:
        yield Projects(local=local, api=api,
                       alpha=_bearer(local, "alpha-editor", "editor", "alpha"),
                       beta=_bearer(local, "beta-editor", "editor", "beta"),
                       alpha_viewer=_bearer(local, "alpha-viewer", "viewer", "alpha"),
                       alpha_admin=_bearer(local, "alpha-admin", "admin", "alpha"),
                       root=_bearer(local, "root", "admin", "*"))


def as_missing(body: dict[str, Any], name: str, ghost: str) -> dict[str, Any]:
    """The error body with the name swapped: what a missing thing answers, if nothing else differs."""
    return {**body, "message": body["message"].replace(name, ghost)}


def same_404(projects: Projects, method: str, path: str, name: str, ghost: str, **kw: Any) -> None:
    """As beta, `path` naming alpha's `name` answers exactly what it answers for a `ghost` that never existed."""
    got = projects.api.request(method, path, headers=projects.beta, **kw)
    missing = projects.api.request(method, path.replace(name, ghost), headers=projects.beta, **kw)
    assert got.status_code == 404, (method, path, got.text)
    assert missing.status_code == 404, (method, path, missing.text)
    assert as_missing(got.json(), name, ghost) == missing.json()


def listed(api: TestClient, path: str, headers: dict[str, str]) -> set[str]:
    """The names a list route answers to `headers`."""
    r = api.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return {item["name"] for item in r.json()}
