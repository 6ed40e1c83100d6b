"""`Client("http://…")` against a real server: same return types, same values, same exceptions
as the embedded store it wraps."""

from __future__ import annotations

import math
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import arsenale as ars
from arsenale.audit.models import AuditEntry, VerifyReport
from arsenale.client import AuditClient, HttpTransport, TrackingClient
from arsenale.client.tracking import MAX_POINTS_PER_REQUEST
from arsenale.errors import (
    ArsenaleError,
    BackendUnavailable,
    Conflict,
    IntegrityError,
    InvalidFilter,
    InvalidInput,
    NotFound,
)
from arsenale.platform import Client
from arsenale.tracking.models import ArtifactInfo, Experiment, MetricHistory, Run, RunPage, RunStatus


@pytest.fixture
def remote(live_server_url: str) -> Client:
    return Client(live_server_url, actor="tester")


@pytest.fixture
def exp_id(remote: Client) -> str:
    return remote.tracking.create_experiment(f"exp-{uuid.uuid4().hex[:8]}").experiment_id


@pytest.fixture
def run_id(remote: Client, exp_id: str) -> str:
    return remote.tracking.create_run(exp_id, run_name="r", params={"lr": 0.1}).info.run_id


def test_remote_client_is_made_of_the_http_clients(remote: Client, live_server_url: str) -> None:
    assert isinstance(remote.tracking, TrackingClient)
    assert isinstance(remote.audit, AuditClient)
    assert remote.tracking.transport.base_url == live_server_url  # type: ignore[attr-defined]


def test_experiments_round_trip(remote: Client, server_store: Client) -> None:
    name = f"team/exp {uuid.uuid4().hex[:6]} .."
    exp = remote.tracking.create_experiment(name, tags={"owner": "ada", "n": 3}, description="d")
    assert isinstance(exp, Experiment)
    assert exp == server_store.tracking.get_experiment(exp.experiment_id)
    assert exp.tags == {"owner": "ada", "n": "3"} and exp.description == "d"
    assert remote.tracking.get_experiment(exp.experiment_id) == exp
    assert remote.tracking.get_experiment(int(exp.experiment_id)) == exp  # type: ignore[arg-type]
    assert remote.tracking.get_experiment_by_name(name) == exp
    assert remote.tracking.get_experiment_by_name("..") is None
    assert remote.tracking.get_experiment_by_name(f"missing-{uuid.uuid4().hex}") is None
    assert exp in remote.tracking.list_experiments()
    remote.tracking.delete_experiment(exp.experiment_id)
    assert exp.experiment_id not in [e.experiment_id for e in remote.tracking.list_experiments()]
    assert exp.experiment_id in [e.experiment_id for e in remote.tracking.list_experiments("deleted")]
    remote.tracking.restore_experiment(exp.experiment_id)
    assert remote.tracking.get_experiment(exp.experiment_id).lifecycle_stage == "active"
    with pytest.raises(Conflict):
        remote.tracking.create_experiment(name)


def test_runs_round_trip(remote: Client, server_store: Client, exp_id: str) -> None:
    parent = remote.tracking.create_run(exp_id, run_name="parent", tags={"t": 1}, params={"lr": 0.1},
                                        start_time=1000, user_id="ada")
    assert isinstance(parent, Run)
    assert (parent.info.start_time, parent.info.user_id, parent.info.run_name) == (1000, "ada", "parent")
    assert parent.data.params == {"lr": "0.1"} and parent.data.tags == {"t": "1"}
    child = remote.tracking.create_run(exp_id, parent_run_id=parent.info.run_id)
    assert child.info.parent_run_id == parent.info.run_id
    assert remote.tracking.get_run(parent.info.run_id) == server_store.tracking.get_run(parent.info.run_id)
    done = remote.tracking.update_run(parent.info.run_id, status=RunStatus.FINISHED, run_name="renamed")
    assert done.info.status == RunStatus.FINISHED and done.info.end_time and done.info.run_name == "renamed"
    assert remote.tracking.update_run(parent.info.run_id, end_time=5000.0).info.end_time == 5000  # type: ignore[arg-type]
    remote.tracking.delete_run(child.info.run_id)
    assert remote.tracking.get_run(child.info.run_id).info.lifecycle_stage == "deleted"
    remote.tracking.restore_run(child.info.run_id)
    assert remote.tracking.get_run(child.info.run_id).info.lifecycle_stage == "active"


def test_log_batch_keeps_nan_and_infinities(remote: Client, server_store: Client, run_id: str) -> None:
    points = [("loss", 1.5, 0, 10), ("loss", math.nan, 1, 11), ("loss", math.inf, 2, 12),
              ("loss", -math.inf, 3, 13), ("acc", 1, 0, 10)]
    remote.tracking.log_batch(run_id, metrics=points, params={"batch": 32}, tags={"phase": "train"})
    hist = remote.tracking.get_metric_history(run_id, "loss")
    assert isinstance(hist, MetricHistory)
    assert hist.steps == [0, 1, 2, 3] and hist.timestamps == [10, 11, 12, 13]
    assert hist.values[0] == 1.5 and math.isnan(hist.values[1]) and hist.values[2:] == [math.inf, -math.inf]
    local = server_store.tracking.get_metric_history(run_id, "loss")
    assert local.model_dump_json() == hist.model_dump_json()
    run = remote.tracking.get_run(run_id)
    assert run.data.metrics["loss"] == -math.inf and run.data.metrics["acc"] == 1.0
    assert run.data.params == {"lr": "0.1", "batch": "32"} and run.data.tags == {"phase": "train"}
    remote.tracking.log_batch(run_id, metrics=[ars.Metric(key="m", value=math.nan, step=2),
                                               {"key": "m", "value": "Infinity", "step": 3}])
    values = remote.tracking.get_metric_history(run_id, "m").values
    assert math.isnan(values[0]) and values[1] == math.inf


def test_large_batches_are_split_and_history_returns_every_point(remote: Client, run_id: str) -> None:
    n = MAX_POINTS_PER_REQUEST + 1
    ts = int(time.time() * 1000)
    remote.tracking.log_batch(run_id, metrics=[("loss", float(i), i, ts) for i in range(n)])
    hist = remote.tracking.get_metric_history(run_id, "loss")
    assert len(hist.steps) == n and hist.total_points == n
    assert hist.steps[-1] == n - 1 and hist.values[12345] == 12345.0
    small = remote.tracking.get_metric_history(run_id, "loss", max_points=1000)
    assert small.downsampled and len(small.steps) <= 1000 and small.mins and small.maxs


def test_bad_point_in_a_split_batch_stores_nothing(remote: Client, run_id: str) -> None:
    points: list[Any] = [("loss", float(i), i, 1) for i in range(MAX_POINTS_PER_REQUEST + 10)]
    points[-1] = ("loss", "not a number", 1, 1)
    with pytest.raises(InvalidInput) as err:
        remote.tracking.log_batch(run_id, metrics=points)
    assert err.value.field == f"metrics[{len(points) - 1}].value"
    assert remote.tracking.get_metric_history(run_id, "loss").steps == []


def test_search_filters_orders_and_pages(remote: Client, exp_id: str) -> None:
    ids = []
    for i in range(5):
        run = remote.tracking.create_run(exp_id, run_name=f"r{i}", params={"lr": "0.1" if i % 2 else "0.2"})
        remote.tracking.log_batch(run.info.run_id, metrics=[("acc", i / 10, 0, 1)])
        ids.append(run.info.run_id)
    page = remote.tracking.search_runs([exp_id], filter="metrics.acc >= 0.2", order_by=["metrics.acc DESC"])
    assert isinstance(page, RunPage)
    assert [r.info.run_id for r in page.runs] == [ids[4], ids[3], ids[2]] and page.next_page_token is None
    odd = remote.tracking.search_runs(exp_id, filter="params.lr = '0.1'")
    assert {r.info.run_id for r in odd.runs} == {ids[1], ids[3]}
    seen, token = [], None
    while True:
        page = remote.tracking.search_runs([exp_id], order_by=["metrics.acc ASC"], max_results=2,
                                           page_token=token)
        seen.extend(r.info.run_id for r in page.runs)
        token = page.next_page_token
        if not token:
            break
    assert seen == ids


def test_artifacts_up_and_down(remote: Client, server_store: Client, run_id: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "model" / "sub").mkdir(parents=True)
    (src / "model" / "weights.bin").write_bytes(bytes(range(256)) * 100)
    (src / "model" / "sub" / "config.json").write_text('{"a": 1}')
    (src / "notes.txt").write_text("hello")
    infos = remote.tracking.log_artifact(run_id, src / "model", artifact_path="outputs")
    assert all(isinstance(i, ArtifactInfo) for i in infos)
    assert [i.path for i in infos] == ["outputs/model/sub/config.json", "outputs/model/weights.bin"]
    [note] = remote.tracking.log_artifact(run_id, src / "notes.txt")
    assert note.path == "notes.txt" and note.size == 5
    assert remote.tracking.log_artifact_bytes(run_id, "raw/b.bin", b"\x00\x01").size == 2
    assert remote.tracking.list_artifacts(run_id) == server_store.tracking.list_artifacts(run_id)
    assert [a.path for a in remote.tracking.list_artifacts(run_id, "outputs/model")] == [
        "outputs/model/sub", "outputs/model/weights.bin"]
    assert remote.tracking.read_artifact(run_id, "outputs/model/sub/config.json") == b'{"a": 1}'

    folder = remote.tracking.download_artifacts(run_id, "outputs/model", tmp_path / "down")
    assert folder == (tmp_path / "down" / "model").resolve()
    assert (folder / "weights.bin").read_bytes() == (src / "model" / "weights.bin").read_bytes()
    assert (folder / "sub" / "config.json").read_text() == '{"a": 1}'
    assert not list((tmp_path / "down").rglob("*.part"))
    one = remote.tracking.download_artifacts(run_id, "notes.txt", tmp_path / "one")
    assert one.read_text() == "hello"
    everything = remote.tracking.download_artifacts(run_id, None, tmp_path / "all")
    assert sorted(p.relative_to(everything).as_posix() for p in everything.rglob("*") if p.is_file()) == [
        "notes.txt", "outputs/model/sub/config.json", "outputs/model/weights.bin", "raw/b.bin"]


def test_download_refuses_a_digest_mismatch(remote: Client, run_id: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    remote.tracking.log_artifact_bytes(run_id, "a.txt", b"abc")
    real = remote.tracking.list_artifacts
    monkeypatch.setattr(remote.tracking, "list_artifacts",
                        lambda r, p=None: [a.model_copy(update={"digest": "0" * 64}) for a in real(r, p)])
    with pytest.raises(IntegrityError):
        remote.tracking.download_artifacts(run_id, "a.txt", tmp_path / "d")
    assert not (tmp_path / "d" / "a.txt").exists()


def test_audit_round_trip(remote: Client, server_store: Client) -> None:
    entity = uuid.uuid4().hex
    entry = remote.audit.record("model.promote", "model", entity, {"to": "production"})
    assert isinstance(entry, AuditEntry) and entry.details == {"to": "production"}
    assert entry.actor == "server"  # the server records its own identity until authentication lands
    for i in range(3):
        remote.audit.record("model.tag", "model", entity, {"i": i})
    mine = remote.audit.entries(entity_type="model", entity_id=entity, limit=None)
    assert [e.action for e in mine] == ["model.promote", "model.tag", "model.tag", "model.tag"]
    assert remote.audit.entries(entity_id=entity, limit=2) == mine[:2]
    assert remote.audit.entries(entity_id=entity, after_seq=mine[1].seq) == mine[2:]
    assert remote.audit.entries(limit=None) == server_store.audit.entries(limit=None)
    report = remote.audit.verify()
    assert isinstance(report, VerifyReport) and report.ok


def test_audit_pages_through_long_listings(remote: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    import arsenale.client.audit as audit_client

    monkeypatch.setattr(audit_client, "PAGE", 2)
    entity = uuid.uuid4().hex
    for _ in range(5):
        remote.audit.record("x.y", "thing", entity)
    assert len(remote.audit.entries(entity_id=entity, limit=None)) == 5
    assert len(remote.audit.entries(entity_id=entity, limit=3)) == 3


BAD_CALLS: list[tuple[str, Callable[[Any, str, str], Any], type[ArsenaleError]]] = [
    ("empty experiment name", lambda t, e, r: t.create_experiment("  "), InvalidInput),
    ("bad experiment id", lambda t, e, r: t.get_experiment("x"), InvalidInput),
    ("missing experiment", lambda t, e, r: t.get_experiment("987654"), NotFound),
    ("delete twice", lambda t, e, r: (t.delete_experiment(e), t.delete_experiment(e)), Conflict),
    ("run in missing experiment", lambda t, e, r: t.create_run("987654"), NotFound),
    ("bad run id", lambda t, e, r: t.get_run("../etc"), InvalidInput),
    ("missing run", lambda t, e, r: t.get_run("f" * 32), NotFound),
    ("bad status", lambda t, e, r: t.update_run(r, status="DONE"), InvalidInput),
    ("param changed", lambda t, e, r: t.log_batch(r, params={"lr": 0.5}), Conflict),
    ("bad metric key", lambda t, e, r: t.log_batch(r, metrics=[("a/../b", 1.0, 0, 0)]), InvalidInput),
    ("bad metric value", lambda t, e, r: t.log_batch(r, metrics=[("a", "x", 0, 0)]), InvalidInput),
    ("bad history key", lambda t, e, r: t.get_metric_history(r, ""), InvalidInput),
    ("bad max_points", lambda t, e, r: t.get_metric_history(r, "a", max_points=1), InvalidInput),
    ("bad filter", lambda t, e, r: t.search_runs([e], filter="metrics.a >>> 1"), InvalidFilter),
    ("bad page token", lambda t, e, r: t.search_runs([e], page_token="garbage"), InvalidInput),
    ("bad max_results", lambda t, e, r: t.search_runs([e], max_results=0), InvalidInput),
    ("traversal", lambda t, e, r: t.log_artifact_bytes(r, "../x", b""), InvalidInput),
    ("absolute path", lambda t, e, r: t.log_artifact_bytes(r, "/etc/x", b""), InvalidInput),
    ("missing local file", lambda t, e, r: t.log_artifact(r, "/no/such/file"), NotFound),
    ("missing artifact", lambda t, e, r: t.read_artifact(r, "nope.txt"), NotFound),
    ("missing download", lambda t, e, r: t.download_artifacts(r, "nope", "/tmp/never-written"), NotFound),
]


@pytest.mark.parametrize("name,call,expected", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_errors_are_the_same_classes_as_embedded(remote: Client, server_store: Client, name: str,
                                                 call: Callable[[Any, str, str], Any],
                                                 expected: type[ArsenaleError]) -> None:
    raised = []
    for api in (server_store.tracking, remote.tracking):
        exp_id = api.create_experiment(f"errs-{uuid.uuid4().hex[:8]}").experiment_id
        run_id = api.create_run(exp_id, params={"lr": 0.1}).info.run_id
        with pytest.raises(ArsenaleError) as err:
            call(api, exp_id, run_id)
        raised.append(err.value)
    local, over_http = raised
    assert type(local) is type(over_http) is expected, (local, over_http)
    assert local.field == over_http.field


def test_unreachable_server_is_backend_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{port}"
        client = Client(url)
        with pytest.raises(BackendUnavailable, match=url):
            client.tracking.list_experiments()


def test_transport_sends_the_actor_header(live_server_url: str) -> None:
    with HttpTransport(live_server_url, timeout=5, actor="ada") as transport:
        assert transport._http.headers["X-Arsenale-Actor"] == "ada"
        assert transport.request("GET", "/health").json() == {"status": "ok"}


def test_fluent_api_works_against_the_server(live_server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_URI", live_server_url)
    with ars.start_run(experiment=f"fluent-{uuid.uuid4().hex[:8]}", params={"C": 1}) as run:
        for i in range(50):
            ars.log_metric("loss", 1 / (i + 1), step=i)
        ars.log_text("hi", "notes/hi.txt")
    client = ars.get_client()
    assert len(client.tracking.get_metric_history(run.run_id, "loss").steps) == 50
    assert client.tracking.read_artifact(run.run_id, "notes/hi.txt") == b"hi"
    assert client.tracking.get_run(run.run_id).info.status == RunStatus.FINISHED
