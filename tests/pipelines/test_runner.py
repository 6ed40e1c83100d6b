"""Running pipelines on local worker processes: tracking, caching, parallelism, failures, retries, timeouts."""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import pytest

import arsenale as ars
from arsenale.pipelines.executors import LocalExecutor
from arsenale.pipelines.models import PipelineStatus, StepStatus
from arsenale.pipelines.service import PipelineService
from arsenale.platform import Client
from tests.pipelines import example_pipelines as ex


def statuses(run: ars.pipelines.models.PipelineRun) -> dict[str, str]:
    return {s.name: s.status.value for s in run.steps}


def ran(marks_file: Path) -> list[str]:
    return [m["step"] for m in ex.marks(marks_file)]


def test_fraud_pipeline_runs_is_tracked_and_a_rerun_executes_nothing(pclient: Client, marks_file: Path) -> None:
    raw = ex.raw_frame()
    first = ars.run_pipeline(ex.fraud_training, "local", {"raw": raw}, client=pclient)
    assert first.status is PipelineStatus.SUCCEEDED, first.report()
    assert statuses(first) == dict.fromkeys(["featurize", "summarize", "train", "evaluate"], "succeeded")
    assert sorted(ran(marks_file)) == ["evaluate", "featurize", "summarize", "train"]
    result = first.output("evaluate")
    assert result["rows"] == 300 and 0.5 < result["accuracy"] <= 1.0
    model = first.output("train")  # a real estimator, back from skops
    assert model.predict(first.output("featurize")[["log_amount", "night"]]).shape == (300,)
    assert first.output("featurize").shape == (300, 3)

    # Tracking: a parent run in pipelines/<name>, one nested run per step with params, key, digest, duration.
    exp = pclient.tracking.get_experiment_by_name("pipelines/fraud_training")
    assert exp is not None
    parent = pclient.tracking.get_run(first.run_id or "")
    assert parent.info.status.value == "FINISHED" and parent.data.tags["ars.pipeline.run_id"] == first.pipeline_run_id
    train = first.step("train")
    nested = pclient.tracking.get_run(train.run_id or "")
    assert nested.info.parent_run_id == first.run_id and nested.info.status.value == "FINISHED"
    assert nested.data.params == {"C": "1.0"}
    assert nested.data.tags["ars.pipeline.cache_key"] == train.cache_key
    assert nested.data.tags["ars.pipeline.output_digest"] == train.output_digest
    assert nested.data.tags["ars.pipeline.output_format"] == "skops"
    assert nested.data.metrics["duration_s"] > 0
    assert pclient.tracking.list_artifacts(nested.info.run_id) == []  # referenced by digest, not copied

    # Nothing changed: nothing executes, every step reports its cache key.
    marks_file.unlink()
    t0 = time.perf_counter()
    again = ars.run_pipeline(ex.fraud_training, "local", {"raw": ex.raw_frame()}, client=pclient)
    elapsed = time.perf_counter() - t0
    assert again.status is PipelineStatus.SUCCEEDED
    assert set(statuses(again).values()) == {"cached"}
    assert ran(marks_file) == []
    assert elapsed < 5
    for s in again.steps:
        assert s.cache_key == first.step(s.name).cache_key
        assert f"cached: key {s.cache_key}" in again.report()
        assert s.cached_from == first.pipeline_run_id
    assert again.output("evaluate") == result


def test_changing_a_param_reruns_only_its_dependants(pclient: Client, marks_file: Path) -> None:
    raw = ex.raw_frame()
    first = ars.run_pipeline(ex.fraud_training, "local", {"raw": raw}, client=pclient)
    marks_file.unlink()
    second = ars.run_pipeline(ex.fraud_training, "local", {"raw": raw, "C": 0.05}, client=pclient)
    assert statuses(second) == {"featurize": "cached", "summarize": "cached", "train": "succeeded",
                                "evaluate": "succeeded"}
    assert sorted(ran(marks_file)) == ["evaluate", "train"]
    assert second.step("train").cache_key != first.step("train").cache_key
    assert second.step("featurize").cache_key == first.step("featurize").cache_key

    marks_file.unlink()  # a changed input re-runs everything reading it
    changed = raw.assign(amount=raw["amount"] * 2)
    third = ars.run_pipeline(ex.fraud_training, "local", {"raw": changed}, client=pclient)
    assert set(statuses(third).values()) == {"succeeded"}
    assert sorted(ran(marks_file)) == ["evaluate", "featurize", "summarize", "train"]


@pytest.mark.parametrize("start_method", ["spawn", pytest.param("fork", marks=pytest.mark.skipif(
    sys.platform == "win32", reason="no fork on Windows"))])
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_independent_steps_run_in_parallel(pclient: Client, marks_file: Path, start_method: str) -> None:
    with LocalExecutor(max_workers=2, start_method=start_method) as executor:
        run = ars.run_pipeline(ex.diamond, executor, {"delay": 2.5}, client=pclient)
    assert run.status is PipelineStatus.SUCCEEDED, run.report()
    assert run.output("combine") == {"total": 10, "max": 4}
    by_step = {m["step"]: m for m in ex.marks(marks_file)}
    a, b = by_step["slow_sum"], by_step["slow_max"]
    assert a["pid"] != b["pid"] and os.getpid() not in (a["pid"], b["pid"])
    assert a["start"] < b["end"] and b["start"] < a["end"], "the two independent steps did not overlap"
    s1, s2 = run.step("slow_sum"), run.step("slow_max")
    assert s1.start_time is not None and s2.end_time is not None and s2.start_time is not None
    assert s1.start_time < s2.end_time and s2.start_time < (s1.end_time or 0)
    assert by_step["combine"]["start"] >= max(a["end"], b["end"])


def test_a_raising_step_is_not_cached_and_its_dependants_do_not_run(pclient: Client, marks_file: Path) -> None:
    run = ars.run_pipeline(ex.failing, "local", client=pclient)
    assert run.status is PipelineStatus.FAILED
    assert statuses(run) == {"source": "succeeded", "side": "succeeded", "boom": "failed", "after_boom": "not_run"}
    boom = run.step("boom")
    assert boom.error == "ValueError: the boom step always fails" and boom.output_digest is None
    assert run.step("after_boom").error == "upstream step 'boom' failed"
    assert "after_boom" not in ran(marks_file)
    svc = PipelineService.from_client(pclient)
    assert boom.cache_key and svc.find_cached([boom.cache_key]) == {}
    assert pclient.tracking.get_run(boom.run_id or "").info.status.value == "FAILED"
    assert pclient.tracking.get_run(run.run_id or "").info.status.value == "FAILED"
    report = run.report()
    assert "boom" in report and "failed after 1 attempt(s): ValueError" in report and "not run" in report

    marks_file.unlink()  # the failure was not cached: it runs (and fails) again; the rest is cached
    again = ars.run_pipeline(ex.failing, "local", client=pclient)
    assert statuses(again) == {"source": "cached", "side": "cached", "boom": "failed", "after_boom": "not_run"}
    assert ran(marks_file) == ["boom"]


def test_retries_back_off_exponentially(pclient: Client, tmp_path: Path) -> None:
    state = tmp_path / "flaky"
    state.mkdir()
    run = ars.run_pipeline(ex.flaky_pipeline, "local", {"state_dir": str(state), "fail_times": 2}, client=pclient)
    assert run.status is PipelineStatus.SUCCEEDED, run.report()
    assert run.output("flaky") == "ok after 3" and run.step("flaky").attempts == 3
    times = [float(t) for t in (state / "times").read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # backoff 0.2 s, then 0.4 s

    state2 = tmp_path / "flaky2"
    state2.mkdir()
    run = ars.run_pipeline(ex.flaky_pipeline, "local", {"state_dir": str(state2), "fail_times": 9}, client=pclient)
    assert run.status is PipelineStatus.FAILED
    s = run.step("flaky")
    assert s.attempts == 3 and s.error == "RuntimeError: flaky failure 3"
    assert (state2 / "attempts").read_text() == "3"


def test_a_step_past_its_timeout_is_killed(pclient: Client, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    t0 = time.monotonic()
    run = ars.run_pipeline(ex.sleepy_pipeline, "local", {"pid_file": str(pid_file), "seconds": 60},
                           client=pclient)
    assert time.monotonic() - t0 < 30
    s = run.step("sleepy")
    assert s.status is StepStatus.FAILED and s.error is not None
    assert "StepTimeout: timed out after 1.5 s" in s.error
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the timed-out worker process is still running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_unsafe_outputs_are_refused_unless_the_step_trusts_pickle(pclient: Client) -> None:
    run = ars.run_pipeline(ex.unsafe_output, "local", client=pclient)
    s = run.step("make_opaque")
    assert s.status is StepStatus.FAILED and s.output_digest is None
    assert "tests.pipelines.example_pipelines.Opaque" in (s.error or "") and "trusted-pickle" in (s.error or "")
    assert PipelineService.from_client(pclient).find_cached([s.cache_key or ""]) == {}

    run = ars.run_pipeline(ex.trusted_output, "local", client=pclient)
    assert run.status is PipelineStatus.SUCCEEDED, run.report()
    assert run.step("make_trusted_opaque").output_format == "pickle"
    assert run.output("read_opaque") == 10
    with pytest.raises(ars.Forbidden):
        run.output("make_trusted_opaque")  # reading a pickle back needs trusted=True


def test_pipeline_runs_are_listed_and_shown(pclient: Client) -> None:
    run = ars.run_pipeline(ex.diamond, "local", {"delay": 0.0}, client=pclient)
    svc = PipelineService.from_client(pclient)
    listed = svc.list_runs()
    assert [(r.pipeline_run_id, c) for r, c in listed] == [(run.pipeline_run_id, {"succeeded": 4})]
    shown = svc.get_run(run.pipeline_run_id)
    assert shown.steps[0].name == "source" and shown.step("combine").layer == 2
    assert shown.params == {"delay": "0.0"}
    with pytest.raises(ars.NotFound):
        svc.get_run("0" * 32)
