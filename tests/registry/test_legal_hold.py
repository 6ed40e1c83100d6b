"""Legal holds and model-version deletion, on SQLite and PostgreSQL (the `store_uri` fixture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.store import tables as t


@pytest.fixture
def client(store_uri: str, tmp_path: Path) -> Client:
    return Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="alice")


def _version(client: Client, name: str = "fraud", data: bytes = b"weights") -> int:
    digest, size = client.registry.blobs.put_bytes(data)  # type: ignore[attr-defined]
    mv = client.registry.create_version(name, files=[{"path": "model.bin", "digest": digest, "size": size}],
                                        flavor="custom", flavor_meta={})
    return mv.version


def _state(client: Client) -> dict[str, Any]:
    engine = client.registry.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {tb.name: sorted(map(tuple, conn.execute(sa.select(tb)).all()))
                for tb in (t.model_versions, t.model_version_tags, t.model_aliases, t.legal_holds, t.audit_log)}


def test_hold_release_and_list_are_audited(client: Client) -> None:
    v = _version(client)
    hold = client.registry.set_legal_hold("fraud", v, "subpoena 2026-041")
    assert (hold.name, hold.version, hold.reason, hold.created_by, hold.active) == (
        "fraud", v, "subpoena 2026-041", "alice", True)
    assert [h.id for h in client.registry.legal_holds("fraud")] == [hold.id]
    with pytest.raises(Conflict, match="already on legal hold"):
        client.registry.set_legal_hold("fraud", v, "again")
    released = client.registry.release_legal_hold("fraud", v, "case closed")
    assert not released.active and released.released_by == "alice"
    assert client.registry.legal_holds("fraud") == []
    assert [h.id for h in client.registry.legal_holds(active_only=False)] == [hold.id]
    with pytest.raises(Conflict, match="not on legal hold"):
        client.registry.release_legal_hold("fraud", v)
    actions = [(e.action, e.entity_id) for e in client.audit.entries(entity_type="model_version")]
    assert ("model.legal_hold.set", f"fraud/{v}") in actions and ("model.legal_hold.release", f"fraud/{v}") in actions
    kinds = [e.kind for e in client.registry.events("fraud")]
    assert kinds[:2] == ["legal_hold_released", "legal_hold"]


def test_deleting_a_held_version_is_refused_and_the_store_unchanged(client: Client) -> None:
    v = _version(client)
    client.registry.set_legal_hold("fraud", v, "audit by the regulator")
    before = _state(client)
    with pytest.raises(Conflict, match="legal hold"):
        client.registry.delete_model_version("fraud", v)
    assert _state(client) == before
    assert client.registry.get_version("fraud", v).version == v
    client.registry.release_legal_hold("fraud", v)
    client.registry.delete_model_version("fraud", v, reason="superseded")
    with pytest.raises(NotFound):
        client.registry.get_version("fraud", v)
    [entry] = client.audit.entries(action="model.version.delete")
    assert (entry.entity_id, entry.details["reason"]) == (f"fraud/{v}", "superseded")


def test_delete_is_refused_while_an_alias_or_a_deployment_needs_the_version(client: Client) -> None:
    v1, v2 = _version(client, data=b"one"), _version(client, data=b"two")
    client.registry.set_alias("fraud", "champion", v1)
    before = _state(client)
    with pytest.raises(Conflict, match="champion"):
        client.registry.delete_model_version("fraud", v1)
    assert _state(client) == before
    client.deployments.create("fraud-api", f"models:/fraud/{v2}")
    before = _state(client)
    with pytest.raises(Conflict, match="fraud-api"):
        client.registry.delete_model_version("fraud", v2)
    assert _state(client) == before
    client.registry.delete_alias("fraud", "champion")
    client.registry.delete_model_version("fraud", v1)
    assert [mv.version for mv in client.registry.list_versions("fraud")] == [v2]
    assert client.registry.get_model("fraud").latest_version == v2


@pytest.mark.parametrize("call, args, error", [
    ("set_legal_hold", ("fraud", 99, "why"), NotFound),
    ("set_legal_hold", ("nobody", 1, "why"), NotFound),
    ("set_legal_hold", ("fraud", 1, ""), InvalidInput),
    ("set_legal_hold", ("fraud", 1, "   "), InvalidInput),
    ("set_legal_hold", ("fraud", 1, None), InvalidInput),
    ("set_legal_hold", ("fraud", 1, "x" * 5000), InvalidInput),
    ("set_legal_hold", ("fraud", "one", "why"), InvalidInput),
    ("set_legal_hold", ("fraud", -1, "why"), InvalidInput),
    ("set_legal_hold", ("../x", 1, "why"), InvalidInput),
    ("release_legal_hold", ("fraud", 99), NotFound),
    ("release_legal_hold", ("fraud", 1, 7), InvalidInput),
    ("delete_model_version", ("fraud", 99), NotFound),
    ("delete_model_version", ("nobody", 1), NotFound),
    ("delete_model_version", ("fraud", True), InvalidInput),
    ("legal_holds", ("nobody",), NotFound),
    ("legal_holds", ("fraud", "yes"), InvalidInput),
])
def test_bad_input_is_refused_and_changes_nothing(client: Client, call: str, args: tuple[Any, ...],
                                                  error: type[Exception]) -> None:
    _version(client)
    before = _state(client)
    with pytest.raises(error):
        getattr(client.registry, call)(*args)
    assert _state(client) == before


# ---- REST, HTTP client and CLI -----------------------------------------------------------------------------


def test_rest_roles_hold_for_editors_release_and_delete_for_admins(client: Client) -> None:
    from fastapi.testclient import TestClient

    from arsenale.security.tokens import TokenService
    from arsenale.server.app import create_app

    svc = TokenService(client.registry.store.engine, "root")  # type: ignore[attr-defined]
    auth = {role: {"Authorization": f"Bearer {svc.create(role, role=role)[1]}"}
            for role in ("viewer", "editor", "admin")}
    v = _version(client)
    path = f"/api/v1/models/fraud/versions/{v}"
    with TestClient(create_app(client, auth=True, rate_limit_per_minute=100_000)) as api:
        assert api.post(f"{path}/legal-hold", json={"reason": "x"}, headers=auth["viewer"]).status_code == 403
        for body in ({}, {"reason": 5}, {"reason": "x" * 100_000}, {"reason": "x", "extra": 1}):
            r = api.post(f"{path}/legal-hold", json=body, headers=auth["editor"])
            assert 400 <= r.status_code < 500 and r.json()["error_code"], (body, r.status_code)
        assert api.post("/api/v1/models/fraud/versions/99/legal-hold", json={"reason": "x"},
                        headers=auth["editor"]).status_code == 404
        r = api.post(f"{path}/legal-hold", json={"reason": "subpoena"}, headers=auth["editor"])
        assert r.status_code == 201 and r.json()["created_by"] == "token:editor"
        assert [h["version"] for h in api.get("/api/v1/legal-holds", headers=auth["viewer"]).json()] == [v]
        before = _state(client)
        assert api.delete(path, headers=auth["editor"]).status_code == 403
        assert api.delete(f"{path}/legal-hold", headers=auth["editor"]).status_code == 403
        r = api.delete(path, headers=auth["admin"])
        assert r.status_code == 409 and "legal hold" in r.json()["message"]
        assert _state(client) == before
        assert api.delete(f"{path}/legal-hold", params={"reason": "closed"}, headers=auth["admin"]).status_code == 200
        assert api.delete(path, headers=auth["admin"]).status_code == 204
        assert api.get(path, headers=auth["viewer"]).status_code == 404
        assert api.delete(path, headers=auth["admin"]).status_code == 404


def test_http_client_and_cli(client: Client, store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from arsenale.cli.main import app
    from arsenale.server.app import create_app
    from tests.conftest import LiveServer

    v1, v2 = _version(client, data=b"a"), _version(client, data=b"b")
    with LiveServer(create_app(client)) as server:
        remote = Client(server.url).registry
        assert remote.set_legal_hold("fraud", v1, "hold it").active
        with pytest.raises(Conflict):
            remote.delete_model_version("fraud", v1)
        with pytest.raises(Conflict):
            remote.set_legal_hold("fraud", v1, "twice")
        with pytest.raises(InvalidInput):
            remote.set_legal_hold("fraud", v1, "")
        with pytest.raises(InvalidInput):
            remote.legal_holds("fraud", active_only="no")  # type: ignore[arg-type]
        assert [h.version for h in remote.legal_holds("fraud")] == [v1]
        assert not remote.release_legal_hold("fraud", v1, "done").active
        assert [h.version for h in remote.legal_holds(active_only=False)] == [v1]
        remote.delete_model_version("fraud", v1)
        with pytest.raises(NotFound):
            remote.get_version("fraud", v1)

    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    runner = CliRunner()
    held = runner.invoke(app, ["models", "hold", "fraud", str(v2), "--reason", "audit"])
    assert held.exit_code == 0 and "legal hold" in held.output, held.output
    listed = runner.invoke(app, ["models", "holds", "fraud", "--json"])
    assert listed.exit_code == 0 and '"audit"' in listed.output
    refused = runner.invoke(app, ["models", "delete-version", "fraud", str(v2)])
    assert refused.exit_code == 4 and "legal hold" in refused.output and "Traceback" not in refused.output
    assert runner.invoke(app, ["models", "release", "fraud", str(v2)]).exit_code == 0
    assert runner.invoke(app, ["models", "delete-version", "fraud", str(v2), "--reason", "old"]).exit_code == 0
    assert runner.invoke(app, ["models", "delete-version", "fraud", str(v2)]).exit_code == 3
    history = runner.invoke(app, ["models", "history", "fraud"])
    assert history.exit_code == 0 and "deleted" in history.output and "legal hold released" in history.output
