"""The fluent SDK: active runs, buffered metrics that are never lost, source capture."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import arsenale as ars
from arsenale.errors import Conflict, InvalidInput
from arsenale.tracking.models import RunStatus


def test_start_run_logs_everything_and_finishes(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("<p>report</p>")
    with ars.start_run(experiment="fraud", run_name="first", params={"C": 0.1}, tags={"team": "risk"}) as run:
        for step in range(10_000):
            ars.log_metric("loss", 1 / (step + 1), step=step)
        ars.log_metrics({"acc": 0.9, "f1": 0.8}, step=1)
        ars.log_param("kernel", "rbf")
        ars.set_tag("stage", "dev")
        ars.log_artifact(str(tmp_path / "report.html"))
        ars.log_text("hello", "notes/hello.txt")
        ars.log_dict({"a": 1}, "config.json")
        assert ars.active_run() is run
    assert ars.active_run() is None
    client = ars.get_client()
    got = client.tracking.get_run(run.run_id)
    assert got.info.status == RunStatus.FINISHED and got.info.run_name == "first"
    assert got.data.params == {"C": "0.1", "kernel": "rbf"}
    assert got.data.metrics == {"loss": 1 / 10_000, "acc": 0.9, "f1": 0.8}
    assert got.data.tags["team"] == "risk" and got.data.tags["ars.source.python"]
    assert len(client.tracking.get_metric_history(run.run_id, "loss").steps) == 10_000
    assert {a.path for a in client.tracking.list_artifacts(run.run_id)} == {"report.html", "notes", "config.json"}
    found = ars.search_runs("fraud", filter="metrics.loss < 0.2 and params.C = '0.1'", order_by=["metrics.loss"])
    assert [r.run_id for r in found] == [run.run_id]


def test_exception_marks_run_failed_and_keeps_points() -> None:
    with pytest.raises(RuntimeError):
        with ars.start_run(experiment="crash") as run:
            for i in range(5000):
                ars.log_metric("loss", float(i), step=i)
            raise RuntimeError("diverged")
    got = ars.get_client().tracking.get_run(run.run_id)
    assert got.info.status == RunStatus.FAILED
    assert len(ars.get_client().tracking.get_metric_history(run.run_id, "loss").steps) == 5000


def test_bad_values_fail_at_the_call_site() -> None:
    with ars.start_run(experiment="bad") as run:
        with pytest.raises(InvalidInput):
            ars.log_metric("loss", "abc")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            ars.log_metric("bad key!", 1.0)
        with pytest.raises(InvalidInput):
            ars.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
        ars.log_param("C", 1)
        with pytest.raises(Conflict):
            ars.log_param("C", 2)
        with pytest.raises(Conflict):
            ars.start_run(experiment="bad")
    assert ars.get_client().tracking.get_run(run.run_id).data.params == {"C": "1"}


def test_nested_runs_record_their_parent() -> None:
    with ars.start_run(experiment="sweep") as parent:
        with ars.start_run(nested=True) as child:
            ars.log_metric("x", 1.0)
    got = ars.get_client().tracking.get_run(child.run_id)
    assert got.info.parent_run_id == parent.run_id and got.data.tags["ars.parent_run_id"] == parent.run_id
    assert got.info.experiment_id == parent.info.experiment_id


def test_time_threshold_flushes_in_the_background(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_METRIC_FLUSH_SECONDS", "0.1")
    with ars.start_run(experiment="bg") as run:
        ars.log_metric("loss", 1.0, step=0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if ars.get_client().tracking.get_run(run.run_id).data.metrics:
                break
            time.sleep(0.05)
        assert ars.get_client().tracking.get_run(run.run_id).data.metrics == {"loss": 1.0}


def test_points_survive_a_normal_exit_without_end_run(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import arsenale as ars
        run = ars.start_run(experiment="exit")
        for i in range(3000):
            ars.log_metric("loss", float(i), step=i)
        print(run.run_id)
    """)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARSENALE_")},
           "ARSENALE_HOME": str(tmp_path / ".arsenale")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    client = ars.Client(f"sqlite:///{tmp_path / '.arsenale' / 'arsenale.db'}",
                        artifacts=str(tmp_path / ".arsenale" / "artifacts"))
    assert len(client.tracking.get_metric_history(run_id, "loss").steps) == 3000
    assert client.tracking.get_run(run_id).info.status == RunStatus.FINISHED


def test_project_home_is_found_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arsenale.config import get_settings

    monkeypatch.delenv("ARSENALE_HOME")
    (tmp_path / ".arsenale").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert get_settings().resolved_home() == (tmp_path / ".arsenale").resolve()


def test_one_client_per_store_and_artifact_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_URI", f"sqlite:///{tmp_path / 'one.db'}")
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "a"))
    first = ars.get_client()
    assert ars.get_client() is first
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "b"))  # same store, other artifacts: another client
    second = ars.get_client()
    assert second is not first
    digest, _ = second.tracking.blobs.put_bytes(b"written where the settings say")
    assert (tmp_path / "b").exists() and not (tmp_path / "a").exists()
    assert second.tracking.blobs.get_bytes(digest) == b"written where the settings say"
