"""Schedules: run a pipeline on a cron tick or when a dataset gets a new version, once per trigger.

    ars.pipelines.schedules.schedule("flows.fraud:fraud_training", "0 3 * * *", on_dataset="transactions")
    Scheduler().tick()              # run what is due now; `arsenale scheduler` loops over this

Any number of schedulers may tick the same store. Each claims a due schedule with one conditional UPDATE that
takes a lease and moves the trigger forward (the next cron time, or the dataset version seen), so exactly one
of them runs a given tick; the lease is released when the run ends. A scheduler that dies mid-run leaves the
lease to expire: that tick is not run again (at most once), the next one is.

Missed ticks are not back-filled: after downtime a schedule runs once and moves to its next time after now.
Dataset triggers read the data component's `dataset_versions` table when it exists, and are skipped otherwise.

Monitors with a cron `schedule` run on the same ticks (`arsenale.monitoring.scheduling`, claimed the same
way): `tick()` returns their evaluations after the pipeline runs, as `TickResult`s with `kind="monitor"`. A
failing monitor never stops the pipelines, nor a failing pipeline the monitors.

Retention policies (`arsenale.security.retention`) are applied on the same ticks, each once a day, claimed
with a lease so that one scheduler applies a policy: their results come last, with `kind="retention"`.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arsenale.errors import ArsenaleError, InvalidInput
from arsenale.pipelines.models import Schedule
from arsenale.pipelines.service import PipelineService
from arsenale.pipelines.steps import Pipeline
from arsenale.tracking.models import now_ms

__all__ = ["Scheduler", "TickResult", "load_pipeline", "next_tick", "schedule"]

DEFAULT_LEASE_SECONDS = 6 * 3600
DEFAULT_MONITOR_LEASE_SECONDS = 3600

log = logging.getLogger("arsenale.pipelines.schedules")


def check_ref(ref: str) -> tuple[str, str]:
    """`module:function` split in two, or `InvalidInput`."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise InvalidInput(f"a pipeline is named MODULE:FUNCTION (e.g. flows.fraud:fraud_training), got {ref!r}",
                           field="pipeline_ref")
    module, qualname = (p.strip() for p in ref.split(":"))
    if not module or not qualname or not all(part.isidentifier() for part in module.split(".") + qualname.split(".")):
        raise InvalidInput(f"a pipeline is named MODULE:FUNCTION (e.g. flows.fraud:fraud_training), got {ref!r}",
                           field="pipeline_ref")
    return module, qualname


def load_pipeline(ref: str) -> Pipeline:
    """Import the `@pipeline` that `module:function` names (the working directory is importable, as in
    `python -m`)."""
    module, qualname = check_ref(ref)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise InvalidInput(f"cannot import module {module!r}: {exc}", field="pipeline_ref") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise InvalidInput(f"module {module!r} has no {qualname!r}", field="pipeline_ref")
        obj = getattr(obj, part)
    if not isinstance(obj, Pipeline):
        raise InvalidInput(f"{ref} is not a pipeline: decorate it with @ars.pipeline", field="pipeline_ref")
    return obj


def next_tick(cron: str, after_ms: int) -> int:
    """The first time matching `cron` (UTC) strictly after `after_ms`, in epoch milliseconds."""
    from croniter import croniter

    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise InvalidInput(f"not a cron expression: {cron!r} (e.g. \"0 3 * * *\")", field="cron")
    base = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
    nxt = croniter(cron, base).get_next(datetime)
    return int(nxt.timestamp() * 1000)


def _service(client: Any = None) -> PipelineService:
    if client is None:
        from arsenale.tracking.fluent import get_client

        client = get_client()
    return PipelineService.from_client(client)


def schedule(pipeline_ref: str, cron: str | None = None, *, on_dataset: str | None = None,
             params: dict[str, Any] | None = None, executor: str = "local", client: Any = None) -> Schedule:
    """Run `module:function` on `cron` (UTC), and/or whenever dataset `on_dataset` gets a new version."""
    if cron is not None:
        next_tick(cron, now_ms())  # validate before storing
    return _service(client).create_schedule(pipeline_ref, cron, params=params, executor=executor,
                                            trigger_dataset=on_dataset)


@dataclass(frozen=True)
class TickResult:
    """What one tick ran. For a monitor (`kind="monitor"`): `schedule_id` is the monitor's name,
    `pipeline_ref` is `monitor:<name>`, `status` is "succeeded" or "error", and `monitor_run_id` the
    evaluation stored."""

    schedule_id: str
    pipeline_ref: str
    trigger: str
    pipeline_run_id: str | None
    status: str  # the pipeline run's status, or "error"
    error: str | None = None
    kind: str = "pipeline"  # or "monitor", or "retention"
    monitor_run_id: int | None = None
    alert_ids: tuple[int, ...] = ()


class Scheduler:
    """Runs due schedules; safe to run in several processes or machines against one store."""

    def __init__(self, service: PipelineService | None = None, *, client: Any = None, owner: str | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS, monitors: Any = None,
                 monitor_lease_seconds: float = DEFAULT_MONITOR_LEASE_SECONDS) -> None:
        self.service = service or _service(client)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ms = int(lease_seconds * 1000)
        self.monitor_lease_seconds = monitor_lease_seconds
        self._monitors = monitors  # a MonitorService; built from `service` on the first due monitor when None
        self.retention_every_seconds = 86_400.0  # each retention policy is applied once a day
        self._retention: Any = None  # a RetentionService, built on the first due policy

    def tick(self, now: int | datetime | None = None) -> list[TickResult]:
        """Claim and run every schedule and every monitor due at `now` (epoch ms or datetime; default: the
        clock): pipeline runs first, then monitor evaluations (`kind="monitor"`)."""
        at = now_ms() if now is None else (int(now.timestamp() * 1000) if isinstance(now, datetime) else int(now))
        failure: BaseException | None = None
        results: list[TickResult] = []
        try:
            self._tick_pipelines(at, results)
        except Exception as exc:  # noqa: BLE001 - raised below, once the monitors have had their turn
            failure = exc
        results.extend(self._tick_monitors(at))
        results.extend(self._tick_retention(at))
        if failure is not None:
            raise failure
        return results

    def _tick_monitors(self, at: int) -> list[TickResult]:
        """Due monitors, claimed and evaluated; any failure is a result with status "error", never raised."""
        from arsenale.monitoring.scheduling import any_due, monitor_service_for, run_due_monitors

        try:
            if self._monitors is None:
                if not any_due(self.service.store.engine, at):
                    return []
                self._monitors = monitor_service_for(self.service)
            ticks = run_due_monitors(self._monitors, at, self.owner, lease_seconds=self.monitor_lease_seconds)
        except Exception as exc:  # noqa: BLE001 - monitors must not stop the scheduler (nor its pipelines)
            msg = exc.message if isinstance(exc, ArsenaleError) else f"{type(exc).__name__}: {exc}"
            log.error("scheduler: monitors could not be run: %s", msg)
            return [TickResult("monitors", "monitors", "tick", None, "error", msg, kind="monitor")]
        return [TickResult(t.monitor, f"monitor:{t.monitor}", t.trigger, None, t.status, t.error,
                           kind="monitor", monitor_run_id=t.run_id, alert_ids=t.alert_ids) for t in ticks]

    def _tick_retention(self, at: int) -> list[TickResult]:
        """Retention policies due at `at`, applied under their lease; a failure is a result, never raised.
        `schedule_id` is `<project>/<kind>`, `status` "applied" or "error"."""
        from arsenale.security.retention import RetentionService, any_due

        try:
            engine = self.service.store.engine
            if not any_due(engine, at, self.retention_every_seconds):
                return []
            if self._retention is None:
                from arsenale.config import get_settings

                self._retention = RetentionService(engine, self.service.blobs, self.service.actor,
                                                   get_settings().resolved_inference_log())
            report = self._retention.apply(now=at, due_every_seconds=self.retention_every_seconds, owner=self.owner)
        except Exception as exc:  # noqa: BLE001 - retention must not stop the scheduler
            msg = exc.message if isinstance(exc, ArsenaleError) else f"{type(exc).__name__}: {exc}"
            log.error("scheduler: retention could not be applied: %s", msg)
            return [TickResult("retention", "retention", "daily", None, "error", msg, kind="retention")]
        return [TickResult(f"{r.project}/{r.kind}", f"retention:{r.kind}", "daily", None, r.status, r.error,
                           kind="retention") for r in report.results if r.status != "busy"]

    def _tick_pipelines(self, at: int, results: list[TickResult]) -> None:
        store = self.service.store
        for s in store.due_schedules(at):
            if s["cron"] and s["next_run_time"] is not None and s["next_run_time"] <= at:
                claimed = store.claim_cron(s["schedule_id"], s["next_run_time"], next_tick(s["cron"], at),
                                           self.owner, at, at + self.lease_ms)
                if claimed is not None:
                    when = datetime.fromtimestamp(s["next_run_time"] / 1000, tz=UTC).isoformat()
                    results.append(self._run(claimed, f"cron:{s['cron']}@{when}"))
            if s["trigger_dataset"]:
                version = store.latest_dataset_version(s["trigger_dataset"])
                seen = s["last_dataset_version"]
                if version is not None and (seen is None or version > seen):
                    claimed = store.claim_dataset(s["schedule_id"], seen, version, self.owner, at,
                                                  at + self.lease_ms)
                    if claimed is not None:
                        results.append(self._run(claimed, f"dataset:{s['trigger_dataset']}@{version}"))

    def _run(self, s: dict[str, Any], trigger: str) -> TickResult:
        from arsenale.pipelines.runner import run_pipeline

        run_id = None
        try:
            pipeline = load_pipeline(s["pipeline_ref"])
            run = run_pipeline(pipeline, s["executor"], s["params"], service=self.service, trigger=trigger)
            run_id = run.pipeline_run_id
            return TickResult(s["schedule_id"], s["pipeline_ref"], trigger, run_id, run.status.value)
        except (ArsenaleError, Exception) as exc:  # noqa: BLE001 - one bad schedule must not stop the others
            msg = exc.message if isinstance(exc, ArsenaleError) else f"{type(exc).__name__}: {exc}"
            return TickResult(s["schedule_id"], s["pipeline_ref"], trigger, run_id, "error", msg)
        finally:
            self.service.store.release(s["schedule_id"], self.owner,
                                       {"last_run_time": now_ms(), "last_pipeline_run_id": run_id})

    def run_forever(self, interval: float = 30.0, stop: threading.Event | None = None) -> None:
        """Tick every `interval` seconds until `stop` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            self.tick()
            stop.wait(interval)
