"""One tracking suite, run against SQLite, PostgreSQL and a live HTTP server."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from arsenale.errors import Conflict, InvalidFilter, InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.tracking.models import RunStatus


def _run(client: Client, exp: str = "exp", **kw: object) -> str:
    e = client.tracking.get_experiment_by_name(exp) or client.tracking.create_experiment(exp)
    return client.tracking.create_run(e.experiment_id, **kw).info.run_id  # type: ignore[arg-type]


def test_experiment_lifecycle_is_audited(client: Client) -> None:
    t = client.tracking
    exp = t.create_experiment("fraud", tags={"team": "risk"}, description="card fraud")
    assert exp.name == "fraud" and exp.tags == {"team": "risk"} and exp.lifecycle_stage == "active"
    assert t.get_experiment(exp.experiment_id).description == "card fraud"
    assert t.get_experiment_by_name("fraud").experiment_id == exp.experiment_id  # type: ignore[union-attr]
    assert t.get_experiment_by_name("nope") is None
    with pytest.raises(Conflict):
        t.create_experiment("fraud")
    t.delete_experiment(exp.experiment_id)
    assert [e.name for e in t.list_experiments()] == []
    assert [e.name for e in t.list_experiments("deleted")] == ["fraud"]
    with pytest.raises(Conflict):
        t.create_run(exp.experiment_id)
    t.restore_experiment(exp.experiment_id)
    assert [e.name for e in t.list_experiments("all")] == ["fraud"]
    actions = [(e.action, e.entity_id) for e in client.audit.entries(entity_type="experiment")]
    assert actions == [("experiment.create", exp.experiment_id), ("experiment.delete", exp.experiment_id),
                       ("experiment.restore", exp.experiment_id)]
    assert client.audit.verify().ok


@pytest.mark.parametrize("bad", ["", "   ", "x" * 300, 42, None])
def test_bad_experiment_names_leave_store_unchanged(client: Client, bad: object) -> None:
    with pytest.raises(InvalidInput):
        client.tracking.create_experiment(bad)  # type: ignore[arg-type]
    assert client.tracking.list_experiments("all") == []
    assert client.audit.entries() == []


def test_unknown_ids(client: Client) -> None:
    with pytest.raises(NotFound):
        client.tracking.get_run("0" * 32)
    with pytest.raises(NotFound):
        client.tracking.get_experiment("999")
    with pytest.raises(InvalidInput):
        client.tracking.get_run("../../etc/passwd")
    with pytest.raises(InvalidInput):
        client.tracking.get_experiment("abc")
    with pytest.raises(NotFound):
        client.tracking.log_batch("f" * 32, metrics=[("loss", 1.0, 0, 0)])


def test_run_params_tags_metrics(client: Client) -> None:
    t = client.tracking
    run_id = _run(client, run_name="baseline", params={"C": 0.1, "kernel": "rbf"}, tags={"team": "risk"})
    t.log_batch(run_id, metrics=[("loss", 1.0, 0, 10), ("loss", 0.5, 1, 11), ("acc", 0.9, 1, 11)],
                params={"seed": 7}, tags={"stage": "dev"})
    run = t.get_run(run_id)
    assert run.info.run_name == "baseline" and run.info.status == RunStatus.RUNNING
    assert run.data.params == {"C": "0.1", "kernel": "rbf", "seed": "7"}
    assert run.data.tags == {"team": "risk", "stage": "dev"}
    assert run.data.metrics == {"loss": 0.5, "acc": 0.9}
    # Re-logging the same param value is fine; another value is refused and nothing of the batch lands.
    t.log_batch(run_id, params={"C": 0.1})
    with pytest.raises(Conflict):
        t.log_batch(run_id, metrics=[("loss", 0.1, 5, 12)], params={"C": 1.0})
    after = t.get_run(run_id)
    assert after.data.params["C"] == "0.1" and after.data.metrics["loss"] == 0.5
    assert len(t.get_metric_history(run_id, "loss").steps) == 2
    finished = t.update_run(run_id, status="FINISHED")
    assert finished.info.status == RunStatus.FINISHED and finished.info.end_time is not None


def test_latest_metric_is_highest_step_not_last_logged(client: Client) -> None:
    run_id = _run(client)
    client.tracking.log_batch(run_id, metrics=[("loss", 0.1, 10, 1)])
    client.tracking.log_batch(run_id, metrics=[("loss", 9.9, 3, 2)])
    assert client.tracking.get_run(run_id).data.metrics["loss"] == 0.1


def test_nan_and_infinities_are_stored_faithfully(client: Client) -> None:
    run_id = _run(client)
    client.tracking.log_batch(run_id, metrics=[("loss", float("nan"), 0, 1), ("loss", float("inf"), 1, 2),
                                               ("loss", float("-inf"), 2, 3), ("loss", 0.25, 3, 4),
                                               ("div", float("nan"), 0, 1)])
    hist = client.tracking.get_metric_history(run_id, "loss")
    assert math.isnan(hist.values[0]) and hist.values[1:] == [math.inf, -math.inf, 0.25]
    assert math.isnan(client.tracking.get_run(run_id).data.metrics["div"])
    client.tracking.log_batch(run_id, metrics=[("up", math.inf, 0, 1), ("small", 1e-300, 0, 1),
                                               ("exact", 0.1 + 0.2, 0, 1)], params={"p": "x"}, tags={"t": "y"})
    exp = client.tracking.get_run(run_id).info.experiment_id
    found = client.tracking.search_runs([exp]).runs[0].data
    assert math.isnan(found.metrics["div"]) and found.metrics["up"] == math.inf
    assert found.metrics["small"] == 1e-300 and found.metrics["exact"] == 0.1 + 0.2 and found.metrics["loss"] == 0.25
    assert found.params == {"p": "x"} and found.tags == {"t": "y"}


@pytest.mark.parametrize("points", [
    [("loss", "not a number", 0, 0)],
    [("loss", 1.0, "x", 0)],
    [("loss", 1.0, 1.5, 0)],
    [("", 1.0, 0, 0)],
    [("../x", 1.0, 0, 0)],
    [("loss",)],
    [("loss", 1.0, 2**70, 0)],
    "loss",
])
def test_bad_metric_points_reject_the_whole_batch(client: Client, points: object) -> None:
    run_id = _run(client)
    with pytest.raises(InvalidInput):
        client.tracking.log_batch(run_id, metrics=[("ok", 1.0, 0, 0), *points] if isinstance(points, list)
                                  else points)  # type: ignore[arg-type]
    assert client.tracking.get_run(run_id).data.metrics == {}


def test_long_history_and_downsampling_keeps_spikes(client: Client) -> None:
    run_id = _run(client)
    n = 100_000
    pts = [("loss", 1.0, i, i) for i in range(n)]
    pts[54_321] = ("loss", 1000.0, 54_321, 54_321)
    client.tracking.log_batch(run_id, metrics=pts)
    full = client.tracking.get_metric_history(run_id, "loss")
    assert full.steps == list(range(n)) and not full.downsampled and full.total_points == n
    small = client.tracking.get_metric_history(run_id, "loss", max_points=500)
    assert small.downsampled and len(small.steps) <= 500 and small.total_points == n
    assert max(small.maxs or []) == 1000.0 and min(small.mins or []) == 1.0
    with pytest.raises(InvalidInput):
        client.tracking.get_metric_history(run_id, "loss", max_points=1)


def test_history_is_sorted_by_step_across_batches(client: Client) -> None:
    run_id = _run(client)
    client.tracking.log_batch(run_id, metrics=[("m", 3.0, 3, 1), ("m", 1.0, 1, 1)])
    client.tracking.log_batch(run_id, metrics=[("m", 2.0, 2, 1), ("m", 0.0, 0, 1)])
    assert client.tracking.get_metric_history(run_id, "m").values == [0.0, 1.0, 2.0, 3.0]


def _seed_search(client: Client) -> tuple[str, dict[str, str]]:
    exp = client.tracking.create_experiment("search").experiment_id
    ids = {}
    for i, (c, acc, kernel) in enumerate([("0.1", 0.70, "rbf"), ("1.0", 0.90, "linear"), ("10", 0.95, "rbf"),
                                          ("0.1", None, "poly")]):
        rid = client.tracking.create_run(exp, run_name=f"r{i}", params={"C": c, "kernel": kernel},
                                         tags={"team": "a" if i % 2 else "b"}).info.run_id
        if acc is not None:
            client.tracking.log_batch(rid, metrics=[("acc", acc, 0, 0)])
        ids[f"r{i}"] = rid
    return exp, ids


def test_search_filter_grammar(client: Client) -> None:
    exp, ids = _seed_search(client)

    def names(flt: str | None, order: list[str] | None = None) -> list[str]:
        page = client.tracking.search_runs([exp], filter=flt, order_by=order)
        return [r.info.run_name for r in page.runs]

    assert sorted(names("metrics.acc > 0.8")) == ["r1", "r2"]
    assert sorted(names("metrics.acc < 0.8 or params.kernel = 'poly'")) == ["r0", "r3"]
    assert sorted(names("params.C in ('0.1', '10') and (tags.team = 'b' or metrics.acc > 0.9)")) == ["r0", "r2"]
    assert names("metrics.acc is null") == ["r3"]
    assert sorted(names("metrics.acc is not null")) == ["r0", "r1", "r2"]
    assert sorted(names("params.kernel like 'r%'")) == ["r0", "r2"]
    assert names("metrics.acc > 0.5", ["metrics.acc DESC"]) == ["r2", "r1", "r0"]
    assert names(None, ["metrics.acc ASC"])[-1] == "r3"  # missing values sort last
    assert names("attributes.run_name = 'r1'") == ["r1"]
    for bad in ["metrics.acc >", "metrics.acc = 'x' and", "(params.C = '1'", "foo.bar = 1", "params.C ~ 1"]:
        with pytest.raises(InvalidFilter):
            client.tracking.search_runs([exp], filter=bad)


def test_search_paging_has_no_thousand_item_cap(client: Client) -> None:
    exp = client.tracking.create_experiment("many").experiment_id
    for i in range(1205):
        client.tracking.create_run(exp, run_name=f"run{i}", start_time=1_000_000 + i)
    seen: list[str] = []
    token = None
    while True:
        page = client.tracking.search_runs([exp], max_results=500, page_token=token)
        seen.extend(r.info.run_id for r in page.runs)
        token = page.next_page_token
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 1205
    assert len(client.tracking.search_runs([exp], max_results=5000).runs) == 1205
    with pytest.raises(InvalidInput):
        client.tracking.search_runs([exp], page_token="garbage!")


def test_artifacts_files_folders_and_traversal(client: Client, tmp_path: Path) -> None:
    run_id = _run(client)
    report = tmp_path / "report.html"
    report.write_text("<h1>ok</h1>")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (folder / "sub" / "meta.json").write_text("{}")
    client.tracking.log_artifact(run_id, report)
    client.tracking.log_artifact(run_id, folder, artifact_path="outputs")
    top = client.tracking.list_artifacts(run_id)
    assert [(a.path, a.is_dir) for a in top] == [("outputs", True), ("report.html", False)]
    assert [a.path for a in client.tracking.list_artifacts(run_id, "outputs/model")] == [
        "outputs/model/sub", "outputs/model/weights.bin"]
    assert client.tracking.read_artifact(run_id, "report.html") == b"<h1>ok</h1>"
    dest = client.tracking.download_artifacts(run_id, "outputs/model", tmp_path / "dl")
    assert (dest / "sub" / "meta.json").read_text() == "{}"
    assert (dest / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    before = client.tracking.list_artifacts(run_id)
    for bad in ["../escape.txt", "/etc/passwd", "a/../../b", "a\\..\\b", "C:/x"]:
        with pytest.raises(InvalidInput):
            client.tracking.log_artifact_bytes(run_id, bad, b"x")
        with pytest.raises(InvalidInput):
            client.tracking.log_artifact(run_id, report, artifact_path=bad)
    assert client.tracking.list_artifacts(run_id) == before
    with pytest.raises(NotFound):
        client.tracking.read_artifact(run_id, "missing.txt")


def test_nested_runs_and_deleted_runs(client: Client) -> None:
    parent = _run(client, run_name="sweep")
    child = _run(client, run_name="trial", parent_run_id=parent)
    assert client.tracking.get_run(child).info.parent_run_id == parent
    exp = client.tracking.get_run(parent).info.experiment_id
    kids = client.tracking.search_runs([exp], filter=f"attributes.parent_run_id = '{parent}'").runs
    assert [r.info.run_id for r in kids] == [child]
    client.tracking.delete_run(child)
    assert [r.info.run_id for r in client.tracking.search_runs([exp]).runs] == [parent]
    assert len(client.tracking.search_runs([exp], view="all").runs) == 2
    with pytest.raises(Conflict):
        client.tracking.log_batch(child, metrics=[("m", 1.0, 0, 0)])
    client.tracking.restore_run(child)
    with pytest.raises(NotFound):
        _run(client, parent_run_id="a" * 32)
