"""`PipelineService`: pipeline runs, step runs, the step cache's index and schedules, over the store.

Every pipeline run is also tracked: one parent run in experiment `pipelines/<name>` and one nested run per
step, with the step's params, its cache key and output digest as tags, its status and a `duration_s` metric.
Outputs are referenced by digest (tag `ars.pipeline.output_digest`), never copied into the run's artifacts.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from arsenale.errors import Conflict, InvalidInput
from arsenale.pipelines.cache import deserialize
from arsenale.pipelines.models import PipelineRun, PipelineStatus, Schedule, StepRun, StepStatus
from arsenale.store.artifacts import ArtifactStore
from arsenale.store.pipelines import SqlPipelineStore
from arsenale.tracking.models import now_ms
from arsenale.tracking.service import TrackingAPI

__all__ = ["PipelineService", "experiment_name"]

EXPERIMENT_PREFIX = "pipelines/"
MAX_PARAM_CHARS = 6000
MAX_LIST = 1000


def experiment_name(pipeline: str) -> str:
    return EXPERIMENT_PREFIX + pipeline


def param_text(value: Any) -> str:
    """How a param value is shown and logged: JSON when it is JSON, else its type and repr (truncated)."""
    from arsenale.pipelines.cache import canonical_json, is_json_value

    text = value if isinstance(value, str) else (
        canonical_json(value) if is_json_value(value) else f"<{type(value).__name__}>")
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 1] + "…"


class PipelineService:
    """In-process pipelines over the SQL store, the artifact store and tracking."""

    def __init__(self, store: SqlPipelineStore, blobs: ArtifactStore, tracking: TrackingAPI, actor: str) -> None:
        self.store = store
        self.blobs = blobs
        self.tracking = tracking
        self.actor = actor
        self._experiments: dict[str, str] = {}

    @classmethod
    def from_client(cls, client: Any) -> PipelineService:
        """The service behind an `arsenale.Client` on a local or PostgreSQL store."""
        uri = str(client.uri)
        if uri.startswith(("http://", "https://")):
            raise InvalidInput("pipelines run against the metadata store itself (sqlite:///… or postgresql://…), "
                               "not through an Arsenale server; set ARSENALE_URI to the server's database",
                               field="uri")
        from arsenale.store.db import get_engine

        tracking = client.tracking
        return cls(SqlPipelineStore(get_engine(uri)), tracking.blobs, tracking, tracking.actor)

    # ---- runs --------------------------------------------------------------------------

    def _experiment_id(self, pipeline: str) -> str:
        name = experiment_name(pipeline)
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        exp = self.tracking.get_experiment_by_name(name)
        if exp is None:
            try:
                exp = self.tracking.create_experiment(name, tags={"ars.pipeline": pipeline})
            except Conflict:  # created meanwhile by another process
                exp = self.tracking.get_experiment_by_name(name)
                assert exp is not None
        self._experiments[name] = exp.experiment_id
        return exp.experiment_id

    def create_run(self, *, name: str, ref: str, executor: str, params: Mapping[str, Any],
                   steps: Sequence[Mapping[str, Any]], trigger: str | None = None) -> PipelineRun:
        """A pipeline run with every step pending, and its parent tracking run."""
        shown = {k: param_text(v) for k, v in params.items()}
        exp_id = self._experiment_id(name)
        tags = {"ars.pipeline": name, "ars.pipeline.ref": ref, "ars.pipeline.executor": executor,
                "ars.pipeline.host": f"{socket.gethostname()}:{os.getpid()}"}
        if trigger:
            tags["ars.pipeline.trigger"] = trigger
        parent = self.tracking.create_run(exp_id, run_name=name, tags=tags, params=shown)
        now = now_ms()
        pid = uuid.uuid4().hex
        row = {"pipeline_run_id": pid, "name": name, "ref": ref, "executor": executor,
               "status": PipelineStatus.RUNNING.value, "params": shown, "trigger": trigger,
               "run_id": parent.info.run_id, "start_time": now, "end_time": None}
        step_rows = [{"pipeline_run_id": pid, "name": s["name"], "step_ref": s["step_ref"],
                      "status": StepStatus.PENDING.value, "layer": s["layer"], "upstream": list(s["upstream"]),
                      "attempts": 0} for s in steps]
        self.store.create_run(row, step_rows)
        self.tracking.log_batch(parent.info.run_id, tags={"ars.pipeline.run_id": pid})
        return self.get_run(pid)

    def record_steps(self, pipeline_run_id: str, changes: Mapping[str, Mapping[str, Any]]) -> None:
        self.store.update_steps(pipeline_run_id, {k: dict(v) for k, v in changes.items()})

    def track_step(self, run: PipelineRun, step: StepRun, params: Mapping[str, Any], *,
                   input_digests: Mapping[str, str]) -> str:
        """The nested tracking run of one step (finished at once for a cached or failed-upstream step)."""
        tags = {"ars.pipeline": run.name, "ars.pipeline.run_id": run.pipeline_run_id,
                "ars.pipeline.step": step.name, "ars.pipeline.step_ref": step.step_ref,
                "ars.pipeline.status": step.status.value, "ars.parent_run_id": run.run_id or ""}
        if step.cache_key:
            tags["ars.pipeline.cache_key"] = step.cache_key
        for arg, digest in input_digests.items():
            tags[f"ars.pipeline.input.{arg}"] = digest
        if step.output_digest:
            tags["ars.pipeline.output_digest"] = step.output_digest
            tags["ars.pipeline.output_format"] = step.output_format or ""
        if step.cached_from:
            tags["ars.pipeline.cached_from"] = step.cached_from
        exp_id = self._experiment_id(run.name)
        tr = self.tracking.create_run(exp_id, run_name=step.name, tags=tags,
                                      params={k: param_text(v) for k, v in params.items()},
                                      parent_run_id=run.run_id)
        return tr.info.run_id

    def finish_step_run(self, run_id: str, step: StepRun) -> None:
        """Close a step's tracking run with its outcome."""
        tags: dict[str, str] = {"ars.pipeline.status": step.status.value}
        if step.output_digest:
            tags["ars.pipeline.output_digest"] = step.output_digest
            tags["ars.pipeline.output_format"] = step.output_format or ""
        if step.error:
            tags["ars.pipeline.error"] = step.error[:MAX_PARAM_CHARS]
        metrics = []
        if step.duration_ms is not None and step.status is not StepStatus.CACHED:
            metrics = [("duration_s", step.duration_ms / 1000, 0), ("attempts", float(step.attempts), 0)]
        self.tracking.log_batch(run_id, metrics=metrics, tags=tags)
        status = "FINISHED" if step.status in (StepStatus.SUCCEEDED, StepStatus.CACHED) else (
            "KILLED" if step.status is StepStatus.NOT_RUN else "FAILED")
        self.tracking.update_run(run_id, status=status)

    def finish_run(self, run: PipelineRun, status: PipelineStatus, counts: Mapping[str, int]) -> None:
        end = now_ms()
        self.store.finish_run(run.pipeline_run_id, {"status": status.value, "end_time": end})
        if run.run_id:
            self.tracking.log_batch(run.run_id, metrics=[(f"steps_{k}", float(v), 0) for k, v in counts.items()]
                                    + [("duration_s", (end - run.start_time) / 1000, 0)])
            self.tracking.update_run(run.run_id, status="FINISHED" if status is PipelineStatus.SUCCEEDED
                                     else "FAILED")

    def get_run(self, pipeline_run_id: str) -> PipelineRun:
        if not isinstance(pipeline_run_id, str) or not pipeline_run_id.strip():
            raise InvalidInput("pipeline_run_id must be a non-empty string", field="pipeline_run_id")
        run = PipelineRun(**self.store.get_run(pipeline_run_id.strip()))
        run._loader = self.load_output
        return run

    def list_runs(self, name: str | None = None, limit: int = 100) -> list[tuple[PipelineRun, dict[str, int]]]:
        """The newest runs (without their steps) and their step counts by status."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST}", field="limit")
        out = []
        for r in self.store.list_runs(name, limit):
            counts = r.pop("step_counts")
            out.append((PipelineRun(**r), counts))
        return out

    def find_cached(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Cache hits among `keys` whose output blob is still in the artifact store."""
        hits = self.store.find_cached(keys)
        return {k: v for k, v in hits.items() if self.blobs.exists(v["output_digest"])}

    def load_output(self, step: StepRun, *, trusted: bool = False) -> Any:
        if step.output_digest is None or step.output_format is None:
            raise InvalidInput(f"step {step.name!r} has no stored output", field="step")
        return deserialize(self.blobs.get_bytes(step.output_digest), step.output_format, trusted=trusted)

    # ---- schedules ---------------------------------------------------------------------

    def create_schedule(self, pipeline_ref: str, cron: str | None = None, *, params: Mapping[str, Any] | None = None,
                        executor: str = "local", trigger_dataset: str | None = None,
                        now: int | None = None) -> Schedule:
        from arsenale.pipelines.schedules import check_ref, next_tick

        check_ref(pipeline_ref)
        if cron is None and trigger_dataset is None:
            raise InvalidInput("a schedule needs a cron expression, a dataset to watch, or both", field="cron")
        if trigger_dataset is not None and (not isinstance(trigger_dataset, str) or not trigger_dataset.strip()):
            raise InvalidInput("the dataset to watch must be a non-empty name", field="trigger_dataset")
        p = dict(params or {})
        try:
            json.dumps(p)
        except (TypeError, ValueError):
            raise InvalidInput("schedule params must be JSON values", field="params") from None
        now = now_ms() if now is None else now
        nxt = next_tick(cron, now) if cron is not None else None
        seen = self.store.latest_dataset_version(trigger_dataset) if trigger_dataset else None
        schedule_id = uuid.uuid4().hex
        row: dict[str, Any] = {"schedule_id": schedule_id, "pipeline_ref": pipeline_ref, "cron": cron, "params": p,
               "executor": executor, "trigger_dataset": trigger_dataset, "last_dataset_version": seen,
               "next_run_time": nxt, "last_run_time": None, "last_pipeline_run_id": None, "lease_owner": None,
               "lease_until": 0, "enabled": True, "creation_time": now}
        self.store.create_schedule(row)
        return Schedule(**self.store.get_schedule(schedule_id))

    def list_schedules(self) -> list[Schedule]:
        return [Schedule(**r) for r in self.store.list_schedules()]

    def delete_schedule(self, schedule_id: str) -> None:
        self.store.delete_schedule(schedule_id)
