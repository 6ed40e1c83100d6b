"""Pipeline schemas: a pipeline run, its step runs, and schedules (pydantic, apart from the SQL tables)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

__all__ = ["PipelineRun", "PipelineStatus", "Schedule", "StepRun", "StepStatus"]


class StepStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    NOT_RUN = "not_run"


class PipelineStatus(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


DONE_OK = (StepStatus.SUCCEEDED, StepStatus.CACHED)


class StepRun(BaseModel):
    pipeline_run_id: str
    name: str
    step_ref: str
    status: StepStatus
    layer: int = 0
    upstream: list[str] = Field(default_factory=list)
    cache_key: str | None = None
    attempts: int = 0
    start_time: int | None = None
    end_time: int | None = None
    output_digest: str | None = None
    output_format: str | None = None
    output_size: int | None = None
    error: str | None = None
    run_id: str | None = None  # the nested tracking run
    cached_from: str | None = None  # the pipeline run that computed a cached output

    @property
    def duration_ms(self) -> int | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    def summary(self) -> str:
        if self.status is StepStatus.CACHED:
            return f"cached: key {self.cache_key}"
        if self.status is StepStatus.SUCCEEDED:
            tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
            return f"succeeded in {(self.duration_ms or 0) / 1000:.2f} s{tries}: key {self.cache_key}"
        if self.status is StepStatus.FAILED:
            return f"failed after {self.attempts} attempt(s): {self.error}"
        if self.status is StepStatus.NOT_RUN:
            return f"not run: {self.error}" if self.error else "not run"
        return self.status.value


class PipelineRun(BaseModel):
    pipeline_run_id: str
    name: str
    ref: str
    executor: str
    status: PipelineStatus
    params: dict[str, str] = Field(default_factory=dict)
    trigger: str | None = None
    run_id: str | None = None  # the parent tracking run
    start_time: int
    end_time: int | None = None
    steps: list[StepRun] = Field(default_factory=list)

    _loader: Callable[[StepRun], Any] | None = PrivateAttr(default=None)

    def step(self, name: str) -> StepRun:
        for s in self.steps:
            if s.name == name:
                return s
        from arsenale.errors import NotFound

        raise NotFound(f"pipeline run {self.pipeline_run_id} has no step {name!r}", field="step")

    def by_status(self, status: StepStatus | str) -> list[str]:
        st = StepStatus(status)
        return [s.name for s in self.steps if s.status is st]

    @property
    def succeeded(self) -> list[str]:
        return self.by_status(StepStatus.SUCCEEDED)

    @property
    def cached(self) -> list[str]:
        return self.by_status(StepStatus.CACHED)

    @property
    def failed(self) -> list[str]:
        return self.by_status(StepStatus.FAILED)

    @property
    def not_run(self) -> list[str]:
        return self.by_status(StepStatus.NOT_RUN)

    def output(self, name: str) -> Any:
        """The value step `name` produced (or found in the cache), read back from the artifact store."""
        s = self.step(name)
        if s.status not in DONE_OK or s.output_digest is None:
            from arsenale.errors import NotFound

            raise NotFound(f"step {name!r} has no output: it {s.status.value}", field="step")
        if self._loader is None:
            from arsenale.errors import InvalidInput

            raise InvalidInput("this pipeline run was not loaded through a PipelineService", field="step")
        return self._loader(s)

    def report(self) -> str:
        """The final report: one line per step, then the counts."""
        lines = [f"pipeline {self.name} run {self.pipeline_run_id}: {self.status.value}"]
        width = max((len(s.name) for s in self.steps), default=0)
        for s in self.steps:
            lines.append(f"  {s.name.ljust(width)}  {s.summary()}")
        lines.append(f"succeeded {len(self.succeeded)}, cached {len(self.cached)}, failed {len(self.failed)}, "
                     f"not run {len(self.not_run)}")
        return "\n".join(lines)


class Schedule(BaseModel):
    schedule_id: str
    pipeline_ref: str
    cron: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    executor: str = "local"
    trigger_dataset: str | None = None
    last_dataset_version: int | None = None
    next_run_time: int | None = None
    last_run_time: int | None = None
    last_pipeline_run_id: str | None = None
    lease_owner: str | None = None
    lease_until: int = 0
    enabled: bool = True
    creation_time: int
