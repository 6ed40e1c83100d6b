"""The Ray executor gives the same results and the same cache keys as local processes."""

from __future__ import annotations

from pathlib import Path

import pytest

import arsenale as ars
from arsenale.pipelines.executors import RayExecutor
from arsenale.pipelines.models import PipelineStatus, StepStatus
from arsenale.platform import Client
from tests.pipelines import example_pipelines as ex

pytestmark = pytest.mark.ray


def test_ray_matches_local_results_and_cache_keys(ray_session: object, tmp_path: Path) -> None:
    raw = ex.raw_frame()
    local = Client(f"sqlite:///{tmp_path / 'local.db'}", artifacts=str(tmp_path / "local-artifacts"))
    remote = Client(f"sqlite:///{tmp_path / 'ray.db'}", artifacts=str(tmp_path / "ray-artifacts"))
    a = ars.run_pipeline(ex.fraud_training, "local", {"raw": raw, "C": 0.3}, client=local)
    b = ars.run_pipeline(ex.fraud_training, "ray", {"raw": raw, "C": 0.3}, client=remote)
    assert a.status is PipelineStatus.SUCCEEDED and b.status is PipelineStatus.SUCCEEDED, b.report()
    assert b.executor == "ray"
    assert {s.name: s.cache_key for s in a.steps} == {s.name: s.cache_key for s in b.steps}
    assert a.output("evaluate") == b.output("evaluate")
    assert a.step("featurize").output_digest == b.step("featurize").output_digest
    # A re-run on Ray is a no-op too.
    again = ars.run_pipeline(ex.fraud_training, "ray", {"raw": raw, "C": 0.3}, client=remote)
    assert {s.status for s in again.steps} == {StepStatus.CACHED}


def test_ray_runs_branches_in_parallel_and_reports_failures(ray_session: object, pclient: Client) -> None:
    executor = RayExecutor()  # reuses the session's Ray and leaves it running
    run = ars.run_pipeline(ex.diamond, executor, {"delay": 1.0}, client=pclient)
    assert run.output("combine") == {"total": 10, "max": 4}
    s1, s2 = run.step("slow_sum"), run.step("slow_max")
    assert (s1.start_time or 0) < (s2.end_time or 0) and (s2.start_time or 0) < (s1.end_time or 0)
    failed = ars.run_pipeline(ex.failing, executor, client=pclient)
    assert {s.name: s.status.value for s in failed.steps} == {
        "source": "succeeded", "side": "succeeded", "boom": "failed", "after_boom": "not_run"}
    executor.shutdown()
    assert ray_session.is_initialized()  # type: ignore[attr-defined]
