"""One model-registry suite, run against SQLite, PostgreSQL and a live HTTP server.

Versions are registered the way the SDK does it: a real scikit-learn model saved by its
flavor, each file uploaded with `upload_file`, then `create_version` naming the digests.
Every refused call leaves the registry and the audit trail exactly as they were.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arsenale.errors import IntegrityError, InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.registry.flavors import flavor_for, get_flavor
from arsenale.registry.models import ModelFile, ModelVersion, Stage

NAME = "fraud model #1 ?x=%20&y (eu) v2.0"  # every character here needs care in a URL
CONTRACT_A = {"inputs": {"columns": [{"name": "amount", "dtype": "float64"},
                                     {"name": "age", "dtype": "int64"}]}}
CONTRACT_B = {"inputs": {"columns": [{"name": "amount", "dtype": "float32"},
                                     {"name": "country", "dtype": "str"}]}}


def _fit(c: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return LogisticRegression(C=c).fit(X, y)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """A scikit-learn model saved once by its flavor: (folder, flavor name, flavor meta)."""
    folder = tmp_path_factory.mktemp("saved-model")
    model = _fit()
    flavor = flavor_for(model)
    return folder, flavor.name, flavor.save(model, folder)


def register(client: Client, saved: tuple[Path, str, dict[str, Any]], name: str = NAME,
             **kw: Any) -> ModelVersion:
    folder, flavor, meta = saved
    files = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest, size = client.registry.upload_file(f)
        assert size == f.stat().st_size
        files.append(ModelFile(path=f.relative_to(folder).as_posix(), digest=digest, size=size))
    kw.setdefault("contract", CONTRACT_A)
    return client.registry.create_version(name, files=files, flavor=flavor, flavor_meta=meta, **kw)


def snapshot(client: Client) -> Any:
    """Everything a refused registry call could have changed."""
    models = client.registry.list_models()
    versions = {m.name: [v.model_dump() for v in client.registry.list_versions(m.name)] for m in models}
    events = {m.name: [e.model_dump() for e in client.registry.events(m.name)] for m in models}
    return [m.model_dump() for m in models], versions, events, len(client.audit.entries(limit=None))


def audit_actions(client: Client) -> list[str]:
    return [e.action for e in client.audit.entries(limit=None) if e.action.startswith("model.")]


def _run(client: Client, name: str, params: dict[str, Any], metrics: dict[str, float],
         tags: dict[str, str] | None = None) -> str:
    exp = client.tracking.get_experiment_by_name("fraud") or client.tracking.create_experiment("fraud")
    run = client.tracking.create_run(exp.experiment_id, run_name=name, params=params, tags=tags)
    client.tracking.log_batch(run.info.run_id, metrics=[(k, v, 0, 1) for k, v in metrics.items()])
    return run.info.run_id


# ---- versions --------------------------------------------------------------------------------------------


def test_versions_are_numbered_from_one_and_audited(client: Client, saved: Any) -> None:
    reg = client.registry
    created = reg.create_model(NAME, description="card fraud", tags={"team": "risk"})
    assert created.latest_version is None and created.tags == {"team": "risk"}
    v1 = register(client, saved, description="first", tags={"k": 1})
    v2 = register(client, saved)
    v3 = register(client, saved)
    assert [v1.version, v2.version, v3.version] == [1, 2, 3]
    assert v1.name == NAME and v1.stage is Stage.NONE and v1.status == "READY"
    assert v1.description == "first" and v1.tags == {"k": "1"} and v1.flavor == "sklearn"
    assert {f.path for f in v1.files} == {"model.skops"} and v1.uri == f"models:/{NAME}/1"
    model = reg.get_model(NAME)
    assert model.latest_version == 3 and model.description == "card fraud"
    assert [v.version for v in reg.list_versions(NAME)] == [3, 2, 1]
    assert reg.get_version(NAME, 2) == v2
    other = register(client, saved, name="other")  # a model is created by its first version
    assert other.version == 1
    assert [m.name for m in reg.list_models()] == [NAME, "other"]
    assert [m.name for m in reg.list_models(name_like="oth%")] == ["other"]
    updated = reg.update_version(NAME, 1, description="first, reviewed", tags={"k": "2", "new": "x"})
    assert updated.description == "first, reviewed" and updated.tags == {"k": "2", "new": "x"}
    assert audit_actions(client) == ["model.create"] + ["model.register"] * 4
    ids = [e.entity_id for e in client.audit.entries(action="model.register")]
    assert ids == [f"{NAME}/1", f"{NAME}/2", f"{NAME}/3", "other/1"]
    assert client.audit.verify().ok


def test_unknown_models_and_versions(client: Client, saved: Any) -> None:
    register(client, saved)
    with pytest.raises(NotFound):
        client.registry.get_model("nope")
    with pytest.raises(NotFound):
        client.registry.get_version(NAME, 9)
    with pytest.raises(NotFound):
        client.registry.list_versions("nope")
    for bad in ("", "a/b", "a@b", " padded "):
        with pytest.raises(InvalidInput):
            client.registry.get_model(bad)
    for bad_version in (0, -1, "x", 1.5, True):
        with pytest.raises(InvalidInput):
            client.registry.get_version(NAME, bad_version)  # type: ignore[arg-type]


# ---- aliases ---------------------------------------------------------------------------------------------


def test_alias_set_move_undo_and_delete(client: Client, saved: Any) -> None:
    reg = client.registry
    for _ in range(3):
        register(client, saved)
    assert reg.set_alias(NAME, "champion", 1, reason="first launch").aliases == ["champion"]
    moved = reg.set_alias(NAME, "champion", 2, reason="better auc")
    assert moved.version == 2 and moved.aliases == ["champion"]
    assert reg.get_version(NAME, 1).aliases == []
    assert reg.get_model(NAME).aliases == {"champion": 2}
    back = reg.undo_alias(NAME, "champion", reason="regression in prod")
    assert back is not None and back.version == 1
    assert reg.get_model(NAME).aliases == {"champion": 1}
    assert reg.undo_alias(NAME, "champion") is None  # its first move created it: undoing that removes it
    assert reg.get_model(NAME).aliases == {}
    with pytest.raises(NotFound):
        reg.undo_alias(NAME, "champion")  # nothing left to undo
    reg.set_alias(NAME, "challenger", 3)
    reg.delete_alias(NAME, "challenger", reason="experiment over")
    assert reg.get_model(NAME).aliases == {}
    with pytest.raises(NotFound):
        reg.delete_alias(NAME, "challenger")
    with pytest.raises(NotFound):
        reg.resolve(f"models:/{NAME}@challenger")
    assert audit_actions(client)[3:] == ["model.alias.set", "model.alias.set", "model.alias.undo",
                                         "model.alias.undo", "model.alias.set", "model.alias.remove"]
    removal = client.audit.entries(action="model.alias.remove")[0]
    assert removal.details["previous_version"] == 3 and removal.details["reason"] == "experiment over"
    assert client.audit.verify().ok


@pytest.mark.parametrize("alias", ["latest", "v2", "Production", "UPPER", "a b", ""])
def test_reserved_and_malformed_aliases_change_nothing(client: Client, saved: Any, alias: str) -> None:
    register(client, saved)
    client.registry.set_alias(NAME, "champion", 1)
    before = snapshot(client)
    with pytest.raises(InvalidInput):
        client.registry.set_alias(NAME, alias, 1)
    with pytest.raises(InvalidInput):
        client.registry.delete_alias(NAME, alias)
    with pytest.raises(InvalidInput):
        client.registry.undo_alias(NAME, alias)
    assert snapshot(client) == before


def test_alias_on_an_unknown_version_or_model_changes_nothing(client: Client, saved: Any) -> None:
    register(client, saved)
    client.registry.set_alias(NAME, "champion", 1)
    before = snapshot(client)
    with pytest.raises(NotFound):
        client.registry.set_alias(NAME, "champion", 2)
    with pytest.raises(NotFound):
        client.registry.set_alias(NAME, "fresh", 7)
    with pytest.raises(NotFound):
        client.registry.set_alias("nope", "champion", 1)
    with pytest.raises(InvalidInput):
        client.registry.set_alias(NAME, "champion", 0)
    with pytest.raises(InvalidInput):
        client.registry.set_alias(NAME, "champion", 1, reason="x" * 2001)
    assert snapshot(client) == before


# ---- stages ----------------------------------------------------------------------------------------------


def test_stage_transitions_and_archive_existing(client: Client, saved: Any) -> None:
    reg = client.registry
    for _ in range(3):
        register(client, saved)
    assert reg.transition_stage(NAME, 1, "Production", reason="launch").stage is Stage.PRODUCTION
    assert reg.transition_stage(NAME, 3, "staging").stage is Stage.STAGING  # stage names ignore case
    two = reg.transition_stage(NAME, 2, "Production", archive_existing=True, reason="v2 wins")
    assert two.stage is Stage.PRODUCTION
    assert reg.get_version(NAME, 1).stage is Stage.ARCHIVED
    assert reg.get_version(NAME, 3).stage is Stage.STAGING  # another stage is left alone
    assert reg.get_model(NAME).stages == {"Production": 2, "Archived": 1, "Staging": 3}
    assert [v.version for v in reg.list_versions(NAME, stages=["Production", "archived"])] == [2, 1]
    reg.transition_stage(NAME, 3, "Production")  # without archive_existing two can share the stage
    assert [v.version for v in reg.list_versions(NAME, stages=["Production"])] == [3, 2]
    before = snapshot(client)
    with pytest.raises(InvalidInput):
        reg.transition_stage(NAME, 1, "Prod")
    with pytest.raises(InvalidInput):
        reg.list_versions(NAME, stages=["Live"])
    with pytest.raises(NotFound):
        reg.transition_stage(NAME, 9, "Staging")
    with pytest.raises(InvalidInput):
        reg.transition_stage(NAME, 1, "Staging", archive_existing="yes")  # type: ignore[arg-type]
    assert snapshot(client) == before
    transitions = client.audit.entries(action="model.stage.transition")
    assert [e.entity_id for e in transitions] == [f"{NAME}/1", f"{NAME}/3", f"{NAME}/2", f"{NAME}/3"]
    assert transitions[2].details["archived"] == [1]
    assert client.audit.verify().ok


# ---- resolve and events ----------------------------------------------------------------------------------


def test_resolve_every_uri_form(client: Client, saved: Any) -> None:
    reg = client.registry
    for _ in range(3):
        register(client, saved)
    reg.set_alias(NAME, "champion", 2)
    reg.transition_stage(NAME, 1, "Production")
    reg.transition_stage(NAME, 3, "Production")

    def resolved(uri: str) -> int:
        return reg.resolve(uri).version

    assert resolved(f"models:/{NAME}/1") == 1
    assert resolved(f"models:/{NAME}@champion") == 2
    assert resolved(f"models:/{NAME}/Production") == 3  # the newest version in the stage
    assert resolved(f"models:/{NAME}/production") == 3
    assert resolved(f"models:/{NAME}/latest") == 3
    for missing in (f"models:/{NAME}/4", f"models:/{NAME}@challenger", f"models:/{NAME}/Staging",
                    "models:/nope/1", "models:/nope@champion", "models:/nope/latest"):
        with pytest.raises(NotFound):
            reg.resolve(missing)
    for bad in ("runs:/abc/model", f"models:/{NAME}", f"models:/{NAME}@latest", f"models:/{NAME}/0",
                f"models:/{NAME}/Live", "models:/", ""):
        with pytest.raises(InvalidInput):
            reg.resolve(bad)


def test_events_tell_who_moved_what_and_when(client: Client, saved: Any) -> None:
    reg = client.registry
    register(client, saved)
    register(client, saved)
    reg.set_alias(NAME, "champion", 1, reason="launch")
    reg.set_alias(NAME, "champion", 2, reason="retrained")
    reg.transition_stage(NAME, 2, "Production", reason="approved")
    events = reg.events(NAME)
    assert [(e.kind, e.version) for e in events] == [("stage", 2), ("alias", 2), ("alias", 1),
                                                     ("register", 2), ("register", 1)]
    stage, move = events[0], events[1]
    assert (stage.from_stage, stage.to_stage, stage.reason) == ("None", "Production", "approved")
    assert (move.alias, move.from_version, move.reason) == ("champion", 1, "retrained")
    assert all(e.actor and e.timestamp > 0 for e in events)
    assert [e.kind for e in reg.events(NAME, limit=2)] == ["stage", "alias"]
    with pytest.raises(InvalidInput):
        reg.events(NAME, limit=0)
    with pytest.raises(NotFound):
        reg.events("nope")


# ---- lineage and diffs -----------------------------------------------------------------------------------


def test_lineage_and_diff_follow_real_runs(client: Client, saved: Any) -> None:
    tags = {"ars.input.transactions": "3", "ars.source.git_commit": "abc123", "ars.source.python": "3.12"}
    r1 = _run(client, "rf", {"C": 1.0, "depth": 4}, {"auc": 0.81, "loss": 0.4}, tags)
    r2 = _run(client, "rf-tuned", {"C": 0.1, "depth": 4, "seed": 7}, {"auc": 0.86, "loss": 0.4},
              {**tags, "ars.input.transactions": "4"})
    v1 = register(client, saved, run_id=r1, contract=CONTRACT_A)
    v2 = register(client, saved, run_id=r2, contract=CONTRACT_B)
    assert v1.run_id == r1 and v1.source == f"runs:/{r1}"
    assert v1.contract["metrics"] == {"auc": 0.81, "loss": 0.4}
    lin = client.registry.lineage(NAME, 1)
    assert lin.model == NAME and lin.version == 1
    assert lin.run is not None and lin.run["run_id"] == r1 and lin.run["run_name"] == "rf"
    assert lin.run["params"] == {"C": "1.0", "depth": "4"} and lin.run["metrics"]["auc"] == 0.81
    assert lin.experiment is not None and lin.experiment["name"] == "fraud"
    assert lin.data == [{"kind": "dataset", "name": "transactions", "version": "3"}]
    assert lin.code == {"git_commit": "abc123"} and lin.environment["python"] == "3.12"
    d = client.registry.diff(NAME, 1, 2)
    assert (d.model, d.a, d.b) == (NAME, v1.version, v2.version)
    assert d.params == {"C": ["1.0", "0.1"], "seed": [None, "7"]}
    assert d.metrics == {"auc": [0.81, 0.86]}
    assert d.data == {"only_in_a": ["transactions@3"], "only_in_b": ["transactions@4"]}
    assert d.contract == {"removed_columns": ["age"], "added_columns": ["country"],
                          "changed_types": {"amount": ["float64", "float32"]}}
    assert d.flavor == []
    same = client.registry.diff(NAME, 1, 1)
    assert (same.params, same.metrics, same.data, same.contract) == ({}, {}, {}, {})
    with pytest.raises(NotFound):
        client.registry.diff(NAME, 1, 5)
    with pytest.raises(NotFound):
        client.registry.lineage(NAME, 5)


def test_lineage_of_a_version_without_a_run(client: Client, saved: Any) -> None:
    register(client, saved, contract={"data_fingerprint": "f" * 16, "profile": {"rows": 60}})
    lin = client.registry.lineage(NAME, 1)
    assert lin.run is None and lin.experiment is None and lin.source == "upload"
    assert lin.data == [{"kind": "training data fingerprint", "fingerprint": "f" * 16, "rows": 60}]


# ---- files -----------------------------------------------------------------------------------------------


def _blob_file(tmp_path: Path, digest: str) -> Path:
    """The blob on disk: the same folder for every backend (the HTTP server's store uses it too)."""
    return tmp_path / "artifacts" / "blobs" / digest[:2] / digest[2:]


def test_download_version_verifies_every_file(client: Client, saved: Any, tmp_path: Path) -> None:
    mv = register(client, saved)
    dest = client.registry.download_version(NAME, 1, tmp_path / "dl")
    assert dest == (tmp_path / "dl").resolve()
    loaded = get_flavor(mv.flavor).load(dest, mv.flavor_meta, trusted=False)
    assert loaded.predict(np.array([[3.0, 3.0], [-3.0, -3.0]])).tolist() == [1, 0]
    cached = dest / "model.skops"
    stamp = cached.stat()
    client.registry.download_version(NAME, 1, dest)  # a verified cached copy is kept as it is
    assert (cached.stat().st_ino, cached.stat().st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    good = cached.read_bytes()
    cached.write_bytes(b"tampered cache")  # a cached copy that no longer matches is replaced
    client.registry.download_version(NAME, 1, dest)
    assert cached.read_bytes() == good
    blob = _blob_file(tmp_path, mv.files[0].digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        client.registry.download_version(NAME, 1, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "model.skops").exists()
    assert not [p for p in (tmp_path / "fresh").rglob("*") if p.is_file()]  # no partial file left behind
    assert cached.read_bytes() == good  # the verified copy stays usable


def test_upload_file_is_content_addressed(client: Client, tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    assert client.registry.upload_file(a) == client.registry.upload_file(b)
    (tmp_path / "empty").write_bytes(b"")
    assert client.registry.upload_file(tmp_path / "empty")[1] == 0
    with pytest.raises(NotFound):
        client.registry.upload_file(tmp_path / "missing.bin")


# ---- refused registrations -------------------------------------------------------------------------------


def test_refused_registrations_change_nothing(client: Client, saved: Any, tmp_path: Path) -> None:
    register(client, saved)
    run_id = _run(client, "plain", {"C": 1}, {"auc": 0.5})
    client.tracking.log_artifact_bytes(run_id, "model/weights.bin", b"not a logged model")
    before = snapshot(client)
    folder, flavor, meta = saved
    never_uploaded = [ModelFile(path="model.skops", digest="0" * 64, size=3)]
    with pytest.raises(InvalidInput, match="not uploaded"):
        client.registry.create_version(NAME, files=never_uploaded, flavor=flavor, flavor_meta=meta)
    with pytest.raises(NotFound):
        register(client, saved, run_id="a" * 32)
    with pytest.raises(InvalidInput, match="not a logged model"):
        client.registry.create_version(NAME, source=f"runs:/{run_id}/model")
    with pytest.raises(NotFound):
        client.registry.create_version(NAME, source=f"runs:/{run_id}/elsewhere")
    with pytest.raises(InvalidInput):
        client.registry.create_version(NAME, files=[], flavor=flavor, flavor_meta=meta)
    with pytest.raises(InvalidInput):
        client.registry.create_version(NAME, flavor=flavor, flavor_meta=meta)  # neither files nor source
    digest, size = client.registry.upload_file(folder / "model.skops")
    ok = [ModelFile(path="model.skops", digest=digest, size=size)]
    for bad_path in ("../escape", "/abs", "a/../../b"):
        with pytest.raises(InvalidInput):
            client.registry.create_version(NAME, files=[{"path": bad_path, "digest": digest, "size": size}],
                                           flavor=flavor, flavor_meta=meta)
    with pytest.raises(InvalidInput):
        client.registry.create_version(NAME, files=ok + ok, flavor=flavor, flavor_meta=meta)
    with pytest.raises(InvalidInput):
        client.registry.create_version(NAME, files=ok, flavor="", flavor_meta=meta)
    with pytest.raises(InvalidInput):
        client.registry.create_version("a/b", files=ok, flavor=flavor, flavor_meta=meta)
    assert snapshot(client) == before


def test_register_from_a_model_logged_to_a_run(client: Client, saved: Any, tmp_path: Path) -> None:
    folder, flavor, meta = saved
    run_id = _run(client, "logged", {"C": 1}, {"auc": 0.9})
    logged = tmp_path / "logged" / "model"
    logged.mkdir(parents=True)
    (logged / "model.skops").write_bytes((folder / "model.skops").read_bytes())
    (logged / "arsenale-model.json").write_text(json.dumps({"flavor": flavor, "flavor_meta": meta,
                                                            "contract": CONTRACT_A}))
    client.tracking.log_artifact(run_id, logged)
    mv = client.registry.create_version(NAME, source=f"runs:/{run_id}/model", description="from run")
    assert mv.run_id == run_id and mv.source == f"runs:/{run_id}/model" and mv.flavor == flavor
    assert [f.path for f in mv.files] == ["model.skops"]
    assert mv.contract["inputs"] == CONTRACT_A["inputs"] and mv.contract["metrics"] == {"auc": 0.9}
    dest = client.registry.download_version(NAME, mv.version, tmp_path / "dl")
    assert (dest / "model.skops").read_bytes() == (folder / "model.skops").read_bytes()
    assert client.audit.verify().ok


def test_webhooks_are_managed_through_every_client(client: Client) -> None:
    hook = client.webhooks.create("http://127.0.0.1:9/hook", ["model.alias_set"], model_name="fraud")
    assert hook.secret and [h.webhook_id for h in client.webhooks.list()] == [hook.webhook_id]
    assert client.webhooks.deliveries(hook.webhook_id) == []
    client.webhooks.delete(hook.webhook_id)
    assert client.webhooks.list() == []
