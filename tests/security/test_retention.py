"""Retention policies and their application, on SQLite and PostgreSQL (the `store_uri` fixture)."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arsenale.errors import InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.security.retention import RetentionService

DAY_MS = 86_400_000
NOW = 1_900_000_000_000  # a fixed "now" (2030) so ages do not depend on the clock


@pytest.fixture
def client(store_uri: str, tmp_path: Path) -> Client:
    return Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="alice")


def _service(client: Client, tmp_path: Path, **kw: Any) -> RetentionService:
    return RetentionService(client.registry.store.engine, client.registry.blobs, "alice",  # type: ignore[attr-defined]
                            str(tmp_path / "inference"), **kw)


def _trace(client: Client, end_ms: int) -> str:
    trace_id = os.urandom(16).hex()
    root, child = os.urandom(8).hex(), os.urandom(8).hex()
    start_ns = (end_ms - 1000) * 1_000_000
    client.traces.ingest([
        {"trace_id": trace_id, "span_id": root, "parent_span_id": None, "name": "answer",
         "start_ns": start_ns, "end_ns": end_ms * 1_000_000},
        {"trace_id": trace_id, "span_id": child, "parent_span_id": root, "name": "llm",
         "start_ns": start_ns, "end_ns": end_ms * 1_000_000 - 10}])
    client.traces.score(trace_id, "helpful", 1.0)
    return trace_id


def _run_with_artifact(client: Client, data: bytes, experiment: str = "exp") -> tuple[str, str]:
    exp = client.tracking.get_experiment_by_name(experiment)
    exp_id = (exp or client.tracking.create_experiment(experiment)).experiment_id
    run = client.tracking.create_run(exp_id)
    info = client.tracking.log_artifact_bytes(run.info.run_id, "model/weights.bin", data)
    return run.info.run_id, str(info.digest)


def _entries(client: Client, action: str) -> list[Any]:
    return client.audit.entries(action=action)


def _tables(client: Client) -> dict[str, int]:
    import sqlalchemy as sa

    from arsenale.store import tables as t

    engine = client.registry.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {tb.name: conn.execute(sa.select(sa.func.count()).select_from(tb)).scalar_one()
                for tb in (t.runs, t.artifacts, t.llm_traces, t.llm_spans, t.llm_scores, t.retention_policies,
                           t.retention_deleted_runs, t.audit_log, t.model_versions, t.legal_holds)}


# ---- policies ----------------------------------------------------------------------------------------------


def test_policies_are_set_listed_changed_and_deleted_with_audit(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    p = svc.set_policy("traces", "30d")
    assert (p.project, p.kind, p.max_age_seconds, p.max_age, p.created_by) == ("*", "traces", 30 * 86400, "30d",
                                                                                "alice")
    svc.set_policy("traces", "7d")
    svc.set_policy("inference_logs", 3600, project="fraud")
    assert [(x.project, x.kind, x.max_age) for x in svc.list_policies()] == [
        ("*", "traces", "7d"), ("fraud", "inference_logs", "1h")]
    svc.delete_policy("inference_logs", project="fraud")
    assert [x.kind for x in svc.list_policies()] == ["traces"]
    sets = _entries(client, "retention.policy.set")
    assert [e.details["max_age_seconds"] for e in sets] == [30 * 86400, 7 * 86400, 3600]
    assert sets[1].details["previous_max_age_seconds"] == 30 * 86400
    assert [e.entity_id for e in _entries(client, "retention.policy.delete")] == ["fraud/inference_logs"]


@pytest.mark.parametrize("kind, max_age, project, field", [
    ("traces", "-5d", "*", "max_age"), ("traces", -3600, "*", "max_age"), ("traces", 0, "*", "max_age"),
    ("traces", "soon", "*", "max_age"), ("traces", True, "*", "max_age"), ("traces", "200000d", "*", "max_age"),
    ("traces", None, "*", "max_age"), ("traces", 10**400, "*", "max_age"), ("traces", 1e300, "*", "max_age"),
    ("logs", "30d", "*", "kind"), (None, "30d", "*", "kind"),
    (["traces"], "30d", "*", "kind"), ("traces", "30d", "../x", "project"), ("traces", "30d", "", "project"),
    ("traces", "30d", "p" * 300, "project"), ("traces", "30d", 5, "project")])
def test_bad_policy_input_is_refused_and_changes_nothing(client: Client, tmp_path: Path, kind: Any, max_age: Any,
                                                         project: Any, field: str) -> None:
    svc = _service(client, tmp_path)
    before = _tables(client)
    with pytest.raises(InvalidInput) as err:
        svc.set_policy(kind, max_age, project=project)
    assert err.value.field == field
    assert _tables(client) == before


def test_unknown_policy_and_bad_apply_arguments(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    with pytest.raises(NotFound):
        svc.delete_policy("traces")
    with pytest.raises(NotFound):
        svc.get_policy("traces", "fraud")
    with pytest.raises(InvalidInput):
        svc.delete_policy("everything")
    with pytest.raises(InvalidInput):
        svc.apply(now=-1)
    with pytest.raises(InvalidInput):
        svc.apply(now="yesterday")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        svc.apply(now=10**20)
    with pytest.raises(InvalidInput):
        svc.apply(dry_run="yes")  # type: ignore[arg-type]


# ---- traces ------------------------------------------------------------------------------------------------


def test_old_traces_are_purged_and_recent_ones_kept(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path, batch_size=2)
    old = [_trace(client, NOW - 40 * DAY_MS - i) for i in range(5)]
    recent = _trace(client, NOW - 2 * DAY_MS)
    svc.set_policy("traces", "30d")

    dry = svc.apply(now=NOW, dry_run=True)
    before = _tables(client)
    assert dry.results[0].status == "dry_run"
    assert dry.results[0].deleted == {"traces": 5, "spans": 10, "scores": 5}
    assert client.traces.get(old[0]).span_count == 2

    report = svc.apply(now=NOW)
    assert report.results[0].deleted == dry.results[0].deleted
    assert not report.results[0].remaining
    for trace_id in old:
        with pytest.raises(NotFound):
            client.traces.get(trace_id)
    assert client.traces.get(recent).span_count == 2
    after = _tables(client)
    assert (before["llm_traces"] - after["llm_traces"], before["llm_spans"] - after["llm_spans"],
            before["llm_scores"] - after["llm_scores"]) == (5, 10, 5)
    [entry] = _entries(client, "retention.apply")
    assert entry.entity_id == "*/traces"
    assert entry.details["deleted"] == {"traces": 5, "spans": 10, "scores": 5}
    assert entry.details["status"] == "applied"
    # Idempotent: a second apply finds nothing left.
    again = svc.apply(now=NOW)
    assert again.results[0].deleted == {"traces": 0, "spans": 0, "scores": 0}
    assert client.audit.verify().ok


def test_dry_run_changes_nothing(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    _trace(client, NOW - 5 * DAY_MS)  # old at NOW, not yet at the first apply below
    run_id, _ = _run_with_artifact(client, b"x" * 100)
    client.tracking.delete_run(run_id)
    svc.set_policy("traces", "1d")
    svc.set_policy("deleted_run_artifacts", "1d")
    svc.apply(now=NOW - 10 * DAY_MS)  # the deleted run is first seen here
    before = _tables(client)
    report = svc.apply(now=NOW, dry_run=True)
    assert {r.kind: r.deleted for r in report.results} == {
        "traces": {"traces": 1, "spans": 2, "scores": 1},
        "deleted_run_artifacts": {"runs": 1, "artifacts": 1, "blobs": 1}}
    assert _tables(client) == before
    assert client.tracking.get_run(run_id).info.lifecycle_stage == "deleted"


# ---- deleted runs ------------------------------------------------------------------------------------------


def test_deleted_run_artifacts_are_purged_after_the_age(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    svc.set_policy("deleted_run_artifacts", "30d")
    gone, gone_digest = _run_with_artifact(client, b"old weights")
    kept, kept_digest = _run_with_artifact(client, b"live weights")
    shared, shared_digest = _run_with_artifact(client, b"live weights")  # same content as `kept`
    client.tracking.delete_run(gone)
    client.tracking.delete_run(shared)

    first = svc.apply(now=NOW)  # sees the deletions; nothing is old enough yet
    assert first.results[0].deleted == {"runs": 0, "artifacts": 0, "blobs": 0}
    assert client.registry.blobs.exists(gone_digest)
    assert svc.apply(now=NOW + 29 * DAY_MS).results[0].deleted["runs"] == 0

    report = svc.apply(now=NOW + 31 * DAY_MS)
    assert report.results[0].deleted == {"runs": 2, "artifacts": 2, "blobs": 1}
    assert report.results[0].bytes == len(b"old weights")
    assert not client.registry.blobs.exists(gone_digest)
    assert client.registry.blobs.exists(kept_digest) and shared_digest == kept_digest  # still referenced
    for run_id in (gone, shared):
        with pytest.raises(NotFound):
            client.tracking.get_run(run_id)
    assert client.tracking.read_artifact(kept, "model/weights.bin") == b"live weights"
    entry = _entries(client, "retention.apply")[-1]
    assert entry.details["deleted"] == {"runs": 2, "artifacts": 2, "blobs": 1}
    assert entry.details["bytes"] == len(b"old weights")


def test_a_restored_run_starts_over(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    svc.set_policy("deleted_run_artifacts", "30d")
    run_id, digest = _run_with_artifact(client, b"restored")
    client.tracking.delete_run(run_id)
    svc.apply(now=NOW)
    client.tracking.restore_run(run_id)
    svc.apply(now=NOW + DAY_MS)
    client.tracking.delete_run(run_id)
    svc.apply(now=NOW + 20 * DAY_MS)
    assert svc.apply(now=NOW + 40 * DAY_MS).results[0].deleted["runs"] == 0  # 20 days since seen deleted again
    assert client.registry.blobs.exists(digest)
    assert svc.apply(now=NOW + 51 * DAY_MS).results[0].deleted["runs"] == 1


def test_a_held_versions_run_and_files_are_never_purged(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    svc.set_policy("deleted_run_artifacts", "1d")
    held_run, held_digest = _run_with_artifact(client, b"held model")
    free_run, free_digest = _run_with_artifact(client, b"registered, not held")
    for run_id, digest, name in ((held_run, held_digest, "held"), (free_run, free_digest, "free")):
        client.registry.create_version(name, files=[{"path": "weights.bin", "digest": digest, "size": 10}],
                                       flavor="custom", flavor_meta={}, run_id=run_id)
    client.registry.set_legal_hold("held", 1, "litigation 2030-17")
    client.tracking.delete_run(held_run)
    client.tracking.delete_run(free_run)
    svc.apply(now=NOW)
    report = svc.apply(now=NOW + 2 * DAY_MS).results[0]
    assert report.held == 1
    assert report.deleted == {"runs": 1, "artifacts": 1, "blobs": 0}  # the free version still lists its blob
    assert client.tracking.get_run(held_run).info.lifecycle_stage == "deleted"
    assert client.registry.blobs.exists(held_digest) and client.registry.blobs.exists(free_digest)
    # Released, the run goes; the blob stays while the version lists it.
    client.registry.release_legal_hold("held", 1, "case closed")
    assert svc.apply(now=NOW + 3 * DAY_MS).results[0].deleted == {"runs": 1, "artifacts": 1, "blobs": 0}
    assert client.registry.blobs.exists(held_digest)


# ---- inference logs ----------------------------------------------------------------------------------------


def _partition(root: Path, deployment: str, at_ms: int, feedback: bool = False, size: int = 10) -> Path:
    t = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    folder = root / deployment / ("feedback" if feedback else "") / f"date={t:%Y-%m-%d}" / f"hour={t:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "r1-1.parquet").write_bytes(b"p" * size)
    return folder


def test_old_inference_log_partitions_are_deleted(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    root = tmp_path / "inference"
    old = [_partition(root, "fraud", NOW - 10 * DAY_MS), _partition(root, "fraud", NOW - 10 * DAY_MS, True),
           _partition(root, "churn", NOW - 9 * DAY_MS, size=5)]
    recent = [_partition(root, "fraud", NOW - DAY_MS), _partition(root, "churn", NOW - 3600_000, True)]
    svc.set_policy("inference_logs", "7d")
    dry = svc.apply(now=NOW, dry_run=True).results[0]
    assert (dry.deleted, dry.bytes) == ({"partitions": 3, "files": 3}, 25)
    assert all(p.exists() for p in old)
    result = svc.apply(now=NOW).results[0]
    assert (result.deleted, result.bytes) == ({"partitions": 3, "files": 3}, 25)
    assert not any(p.exists() for p in old) and not any(p.parent.exists() for p in old)
    assert all(p.exists() for p in recent)
    assert svc.apply(now=NOW).results[0].deleted == {"partitions": 0, "files": 0}


# ---- projects ------------------------------------------------------------------------------------------------


def test_a_projects_policy_covers_its_project_and_star_covers_the_rest(client: Client, tmp_path: Path) -> None:
    """alpha keeps traces 1 day, everyone else 30: a 10-day-old trace goes in alpha and stays in beta and
    default; a 40-day-old one goes everywhere. The same split for deleted runs and inference logs."""
    from arsenale.security.projects import project
    from arsenale.store import tables as t

    svc = _service(client, tmp_path)
    with project("alpha"):
        alpha_10 = _trace(client, NOW - 10 * DAY_MS)
    with project("beta"):
        beta_10, beta_40 = _trace(client, NOW - 10 * DAY_MS), _trace(client, NOW - 40 * DAY_MS)
    default_10 = _trace(client, NOW - 10 * DAY_MS)
    svc.set_policy("traces", "30d")
    svc.set_policy("traces", "1d", project="alpha")
    report = {(r.project, r.kind): r for r in svc.apply(now=NOW).results}
    assert report["alpha", "traces"].deleted["traces"] == 1
    assert report["*", "traces"].deleted["traces"] == 1
    with pytest.raises(NotFound):
        client.traces.get(alpha_10)
    with pytest.raises(NotFound):
        client.traces.get(beta_40)
    assert client.traces.get(beta_10).span_count == client.traces.get(default_10).span_count == 2

    with project("alpha"):
        alpha_run, _ = _run_with_artifact(client, b"alpha weights", experiment="alpha-exp")
    with project("beta"):
        beta_run, _ = _run_with_artifact(client, b"beta weights", experiment="beta-exp")
    client.tracking.delete_run(alpha_run)
    client.tracking.delete_run(beta_run)
    svc.set_policy("deleted_run_artifacts", "1d", project="beta")
    svc.apply(now=NOW)  # sees both deletions
    purged = svc.apply(now=NOW + 2 * DAY_MS).results
    assert [(r.project, r.deleted["runs"]) for r in purged if r.kind == "deleted_run_artifacts"] == [("beta", 1)]
    with pytest.raises(NotFound):
        client.tracking.get_run(beta_run)
    assert client.tracking.get_run(alpha_run).info.lifecycle_stage == "deleted"  # no policy covers alpha

    root = tmp_path / "inference"
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    with client.registry.store.engine.begin() as conn:  # type: ignore[attr-defined]
        import sqlalchemy as sa

        conn.execute(sa.insert(t.deployments).values(name="alpha-svc", project="alpha", policy="{}", revision=1,
                                                     creation_time=now_ms, last_update_time=now_ms))
    alpha_log = _partition(root, "alpha-svc", NOW - 3 * DAY_MS)
    orphan_log = _partition(root, "gone-svc", NOW - 3 * DAY_MS)  # no deployment row: counts as `default`
    svc.set_policy("inference_logs", "1d", project="alpha")
    logs = [r for r in svc.apply(now=NOW).results if r.kind == "inference_logs"]
    assert [(r.project, r.deleted["partitions"]) for r in logs] == [("alpha", 1)]
    assert not alpha_log.exists() and orphan_log.exists()
    assert client.audit.verify().ok


# ---- concurrency -------------------------------------------------------------------------------------------


def _apply_in_child(uri: str, artifacts: str, inference: str, queue: Any) -> None:
    from arsenale.store.artifacts import open_artifact_store
    from arsenale.store.db import get_engine

    svc = RetentionService(get_engine(uri), open_artifact_store(artifacts), "child", inference, batch_size=3)
    report = svc.apply(now=NOW)
    queue.put([(r.kind, r.status, r.deleted) for r in report.results])


def test_a_policy_under_another_appliers_lease_is_reported_busy(client: Client, tmp_path: Path) -> None:
    svc = _service(client, tmp_path)
    trace_id = _trace(client, NOW - 40 * DAY_MS)
    svc.set_policy("traces", "30d")
    [policy] = svc.list_policies()
    assert svc._claim(policy, NOW, "someone-else", None)  # another applier, mid-run
    before = _tables(client)
    [result] = svc.apply(now=NOW).results
    assert (result.status, result.deleted) == ("busy", {})
    assert _tables(client) == before and client.traces.get(trace_id)
    svc._release(policy, NOW, "someone-else", result)  # its run ends; the lease is free again
    assert svc.apply(now=NOW).results[0].deleted["traces"] == 1


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_two_concurrent_applies_do_not_double_delete(client: Client, store_uri: str, tmp_path: Path,
                                                     method: str) -> None:
    svc = _service(client, tmp_path)
    for i in range(12):
        _trace(client, NOW - 33 * DAY_MS - i)  # old at NOW, not at the marking apply
    runs = [_run_with_artifact(client, f"weights {i}".encode())[0] for i in range(6)]
    for run_id in runs:
        client.tracking.delete_run(run_id)
    svc.set_policy("traces", "30d")
    svc.set_policy("deleted_run_artifacts", "1d")
    svc.apply(now=NOW - 5 * DAY_MS, dry_run=False)  # marks the runs as seen deleted
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_apply_in_child, args=(store_uri, str(tmp_path / "artifacts"),
                                                       str(tmp_path / "inference"), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    totals = {"traces": 0, "runs": 0, "blobs": 0}
    for outcome in outcomes:
        for kind, status, deleted in outcome:
            assert status in ("applied", "busy")
            for key in totals:
                totals[key] += deleted.get(key, 0)
    assert totals == {"traces": 12, "runs": 6, "blobs": 6}
    assert _tables(client)["llm_traces"] == 0
    audited = [e.details["deleted"] for e in _entries(client, "retention.apply") if e.actor == "child"]
    assert sum(d.get("traces", 0) for d in audited) == 12 and sum(d.get("runs", 0) for d in audited) == 6
    assert client.audit.verify().ok


# ---- scheduler ---------------------------------------------------------------------------------------------


def test_the_scheduler_applies_each_policy_once_a_day(client: Client, tmp_path: Path) -> None:
    from arsenale.pipelines.schedules import Scheduler
    from arsenale.pipelines.service import PipelineService

    svc = _service(client, tmp_path)
    svc.set_policy("traces", "30d")
    trace_id = _trace(client, NOW - 40 * DAY_MS)
    first, second = (Scheduler(PipelineService.from_client(client), owner=f"s{i}") for i in range(2))
    ticks = first.tick(NOW)
    assert [(r.kind, r.schedule_id, r.status) for r in ticks] == [("retention", "*/traces", "applied")]
    with pytest.raises(NotFound):
        client.traces.get(trace_id)
    assert second.tick(NOW + 3600_000) == []  # applied an hour ago: not due, whoever ticks
    assert [r.status for r in second.tick(NOW + DAY_MS)] == ["applied"]
    assert len(_entries(client, "retention.apply")) == 2


# ---- REST, HTTP client and CLI -----------------------------------------------------------------------------


@pytest.fixture
def tokens(client: Client) -> dict[str, str]:
    from arsenale.security.tokens import TokenService

    svc = TokenService(client.registry.store.engine, "root")  # type: ignore[attr-defined]
    return {role: svc.create(role, role=role)[1] for role in ("viewer", "editor", "admin")}


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_rest_is_admin_only_and_refuses_bad_input(client: Client, tokens: dict[str, str], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from arsenale.server.app import create_app

    with TestClient(create_app(client, auth=True, rate_limit_per_minute=100_000)) as api:
        base = "/api/v1/retention"
        for role in ("viewer", "editor"):
            r = api.put(f"{base}/policies/traces", json={"max_age": "30d"}, headers=_auth(tokens[role]))
            assert r.status_code == 403, r.text
            assert api.get(f"{base}/policies", headers=_auth(tokens[role])).status_code == 403
            assert api.post(f"{base}/apply", json={}, headers=_auth(tokens[role])).status_code == 403
        admin = _auth(tokens["admin"])
        before = _tables(client)
        for path, body in (("traces", {"max_age": "-1d"}), ("everything", {"max_age": "30d"}),
                           ("traces", {"max_age": "30d", "project": "a/b"}), ("traces", {}),
                           ("traces", {"max_age": "30d", "extra": 1}), ("traces", {"max_age": "x" * 100_000}),
                           ("traces", {"max_age": [1, 2]})):
            r = api.put(f"{base}/policies/{path}", json=body, headers=admin)
            assert 400 <= r.status_code < 500 and r.json()["error_code"], (path, body, r.status_code, r.text[:200])
        for body in ({"dry_run": "yes"}, {"now": -5}, {"now": "soon"}, {"extra": True}):
            r = api.post(f"{base}/apply", json=body, headers=admin)
            assert 400 <= r.status_code < 500, (body, r.status_code)
        assert api.delete(f"{base}/policies/traces", headers=admin).status_code == 404
        assert _tables(client) == before
        r = api.put(f"{base}/policies/traces", json={"max_age": "30d"}, headers=admin)
        assert r.status_code == 200 and r.json()["max_age_seconds"] == 30 * 86400
        _trace(client, NOW - 40 * DAY_MS)
        r = api.post(f"{base}/apply", json={"dry_run": True, "now": NOW}, headers=admin)
        assert r.status_code == 200
        assert r.json()["results"][0]["deleted"] == {"traces": 1, "spans": 2, "scores": 1}
        assert [e.actor for e in _entries(client, "retention.policy.set")] == ["token:admin"]


def test_http_client_and_cli(client: Client, store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from arsenale.cli.main import app
    from arsenale.server.app import create_app
    from tests.conftest import LiveServer

    with LiveServer(create_app(client)) as server:
        remote = Client(server.url).retention
        assert remote.set_policy("traces", "2w", project="fraud").max_age == "14d"
        assert [(p.project, p.kind) for p in remote.list_policies()] == [("fraud", "traces")]
        assert remote.get_policy("traces", "fraud").max_age_seconds == 14 * 86400
        with pytest.raises(InvalidInput):
            remote.set_policy("traces", "-3d")
        with pytest.raises(NotFound):
            remote.delete_policy("traces")
        report = remote.apply(now=NOW, dry_run=True)
        assert [(r.kind, r.status) for r in report.results] == [("traces", "dry_run")]
        remote.delete_policy("traces", project="fraud")
        assert remote.list_policies() == []

    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    runner = CliRunner()
    ok = runner.invoke(app, ["retention", "set", "traces", "--max-age", "30d", "--project", "fraud"])
    assert ok.exit_code == 0 and "30d" in ok.output, ok.output
    listed = runner.invoke(app, ["retention", "list", "--json"])
    assert listed.exit_code == 0 and '"fraud"' in listed.output
    dry = runner.invoke(app, ["retention", "apply", "--dry-run"])
    assert dry.exit_code == 0 and "dry run" in dry.output, dry.output
    bad = runner.invoke(app, ["retention", "set", "traces", "--max-age", "-1d"])
    assert bad.exit_code == 2 and "max_age" in bad.output and "Traceback" not in bad.output
    unknown = runner.invoke(app, ["retention", "delete", "logs"])
    assert unknown.exit_code == 2
    assert runner.invoke(app, ["retention", "delete", "traces", "--project", "fraud"]).exit_code == 0
    assert runner.invoke(app, ["retention", "delete", "traces", "--project", "fraud"]).exit_code == 3


def test_inference_logs_in_an_object_store_are_deleted_too(client: Client, tmp_path: Path) -> None:
    import fsspec

    root = f"memory://retention-{os.urandom(4).hex()}"
    fs = fsspec.filesystem("memory")
    base = root[len("memory://"):]
    old, new = (datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in (NOW - 10 * DAY_MS, NOW - 3600_000))
    fs.pipe(f"{base}/fraud/date={old:%Y-%m-%d}/hour={old:%H}/r-1.parquet", b"x" * 7)
    fs.pipe(f"{base}/fraud/feedback/date={old:%Y-%m-%d}/hour={old:%H}/r-1.parquet", b"y" * 3)
    fs.pipe(f"{base}/fraud/date={new:%Y-%m-%d}/hour={new:%H}/r-1.parquet", b"z")
    svc = RetentionService(client.registry.store.engine, client.registry.blobs, "alice", root)  # type: ignore[attr-defined]
    svc.set_policy("inference_logs", "1d")
    result = svc.apply(now=NOW).results[0]
    assert (result.deleted, result.bytes) == ({"partitions": 2, "files": 2}, 10)
    left = list(fs.find(base))
    assert left == [f"/{base}/fraud/date={new:%Y-%m-%d}/hour={new:%H}/r-1.parquet"]
