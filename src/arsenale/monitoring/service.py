"""Monitors: a deployment's live traffic, evaluated window by window against the answering version's contract.

One evaluation reads the window from the inference log, tests drift against the training profile kept in
the model contract (the training data is never reloaded), checks data quality, measures accuracy on the rows
whose labels have arrived, and stores every value under the names alert rules refer to (`drift_share`,
`dataset_drift`, `quality.errors`, `accuracy`, `drift.<column>.statistic`, …) with the full reports. Then
the monitor's alert rules (`self.alerts`, an `AlertService`) are evaluated on the stored window.

An LLM monitor (`create_llm`) is the same kind of row with `reference="llm-traces"`: its windows are computed
from stored traces by `arsenale.monitoring.llm` and stored, alerted on and scheduled exactly like these.

A monitor belongs to the project it was created in and watches that project only: a model monitor's deployment
must be visible when it is created, and an LLM monitor's windows read its own project's traces even when the
(unconfined) scheduler evaluates them, so no project's values leak into another's alerts.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from arsenale.errors import ArsenaleError, Conflict, InvalidInput, NotFound
from arsenale.monitoring.alerting import AlertService
from arsenale.monitoring.alerts import Notifier
from arsenale.monitoring.models import (
    LLM_REFERENCE,
    Monitor,
    MonitorRun,
    TraceFilter,
    check_monitor_name,
    window_seconds,
)
from arsenale.registry.service import RegistryAPI
from arsenale.security.projects import home, project
from arsenale.serving.service import DeploymentAPI
from arsenale.store import monitors as sql
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.store.db import read, write
from arsenale.tracking.models import now_ms

if TYPE_CHECKING:
    from arsenale.pipelines.service import PipelineService

REFERENCES = ("model-contract",)

log = logging.getLogger("arsenale.monitoring")


def _monitor(row: Any) -> Monitor:
    settings = json.loads(row.settings)
    llm = row.reference == LLM_REFERENCE
    return Monitor(name=row.name, deployment=row.deployment, reference=row.reference, window_s=row.window_s,
                   schedule=row.schedule, drift_share=settings.get("drift_share", 0.5),
                   kind="llm" if llm else "model",
                   traces=TraceFilter.model_validate(settings.get("traces") or {}) if llm else None,
                   creation_time=row.creation_time, next_run_time=row.next_run_time, project=row.project)


def _next_run(schedule: Any, now: int) -> int | None:
    """The first cron tick after `now` of a scheduled monitor (None when it runs on demand only)."""
    if schedule is None:
        return None
    from croniter import croniter

    from arsenale.pipelines.schedules import next_tick

    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise InvalidInput(f"schedule must be a cron expression like '*/10 * * * *'; got {schedule!r}",
                           field="schedule")
    return next_tick(schedule, now)


def _run(row: Any) -> MonitorRun:
    report = getattr(row, "report", None)
    return MonitorRun(id=row.id, monitor=row.monitor, window_start=row.window_start, window_end=row.window_end,
                      rows=row.rows, model=row.model, version=row.version, values=json.loads(row.values),
                      timestamp=row.timestamp, report=json.loads(report) if report else None)


class MonitorService:
    def __init__(self, engine: Engine, deployments: DeploymentAPI, registry: RegistryAPI, actor: str,
                 inference_log_root: str, *, notifier: Notifier | None = None,
                 pipelines: PipelineService | Callable[[], PipelineService] | None = None) -> None:
        self.engine = engine
        self.deployments = deployments
        self.registry = registry
        self.actor = actor
        self.root = inference_log_root
        self.alerts = AlertService(engine, actor, notifier, pipelines=pipelines or self._pipeline_factory())

    def _pipeline_factory(self) -> Callable[[], PipelineService] | None:
        """Trigger pipelines run on the registry's tracking store; built when a rule first triggers one."""
        tracking = getattr(self.registry, "tracking", None)
        if tracking is None or not hasattr(tracking, "blobs"):
            return None
        engine, actor = self.engine, self.actor

        def build() -> PipelineService:
            from arsenale.pipelines.service import PipelineService
            from arsenale.store.pipelines import SqlPipelineStore

            return PipelineService(SqlPipelineStore(engine), tracking.blobs, tracking, actor)

        return build

    def create(self, name: str, deployment: str, *, reference: str = "model-contract", window: Any = "1h",
               schedule: str | None = None, drift_share: float = 0.5) -> Monitor:
        check_monitor_name(name)
        if reference not in REFERENCES:
            raise InvalidInput(f"reference must be one of {', '.join(REFERENCES)}; got {reference!r}",
                               field="reference")
        seconds = window_seconds(window)
        now = now_ms()
        next_run_time = _next_run(schedule, now)
        if isinstance(drift_share, bool) or not isinstance(drift_share, (int, float)) or not 0 <= drift_share <= 1:
            raise InvalidInput(f"drift_share must be between 0 and 1; got {drift_share!r}", field="drift_share")
        self.deployments.get(deployment)  # NotFound for an unknown deployment (or another project's)
        with write(self.engine) as conn:
            if sql.name_taken(conn, name):
                raise Conflict(f"monitor {name!r} already exists", field="name")
            sql.insert_monitor(conn, name=name, deployment=deployment, reference=reference, window_s=seconds,
                               schedule=schedule, settings=json.dumps({"drift_share": float(drift_share)}),
                               creation_time=now, next_run_time=next_run_time, project=home())
            audit_append(conn, AuditRecord(self.actor, "monitor.create", "monitor", name,
                                           {"deployment": deployment, "window_s": seconds, "schedule": schedule}),
                         now)
        return self.get(name)

    def create_llm(self, name: str, *, trace_name: str | None = None, prompt: str | None = None,
                   tags: Mapping[str, Any] | None = None, feedback: str = "thumbs", window: Any = "1h",
                   schedule: str | None = None) -> Monitor:
        """A monitor over stored LLM traces (those of one trace name, prompt and/or tags): each window's
        count, error rate, latency percentiles, cost, tokens, score means and negative feedback, under the
        names alert rules use (see `arsenale.monitoring.llm`)."""
        from arsenale.monitoring.llm import check_filter

        check_monitor_name(name)
        traces = check_filter(trace_name, prompt, tags, feedback)
        seconds = window_seconds(window)
        now = now_ms()
        next_run_time = _next_run(schedule, now)
        with write(self.engine) as conn:
            if sql.name_taken(conn, name):
                raise Conflict(f"monitor {name!r} already exists", field="name")
            sql.insert_monitor(conn, name=name, deployment="", reference=LLM_REFERENCE, window_s=seconds,
                               schedule=schedule, settings=json.dumps({"traces": traces.model_dump()}),
                               creation_time=now, next_run_time=next_run_time, project=home())
            audit_append(conn, AuditRecord(self.actor, "monitor.create", "monitor", name,
                                           {"kind": "llm", "traces": traces.model_dump(), "window_s": seconds,
                                            "schedule": schedule}), now)
        return self.get(name)

    def get(self, name: str) -> Monitor:
        check_monitor_name(name)
        with read(self.engine) as conn:
            row = sql.get_monitor(conn, name)
        if row is None:
            raise NotFound(f"no monitor named {name!r}", field="name")
        return _monitor(row)

    def list(self) -> list[Monitor]:
        with read(self.engine) as conn:
            return [_monitor(r) for r in sql.list_monitors(conn)]

    def delete(self, name: str) -> None:
        """The monitor, its history, its alert rules and their alerts, in one transaction."""
        check_monitor_name(name)
        now = now_ms()
        with write(self.engine) as conn:
            if not sql.delete_monitor(conn, name):
                raise NotFound(f"no monitor named {name!r}", field="name")
            audit_append(conn, AuditRecord(self.actor, "monitor.delete", "monitor", name, {}), now)

    def runs(self, name: str, limit: int = 100, with_report: bool = False) -> builtins.list[MonitorRun]:
        """Past evaluations, newest first. An unknown monitor is NotFound, not an empty history, so a typo
        in the name is told apart from a monitor that has not run yet."""
        check_monitor_name(name)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit must be an integer in 1..10000, got {limit!r}", field="limit")
        _check_flag(with_report, "with_report")
        with read(self.engine) as conn:  # one snapshot: the monitor and the runs read together
            if sql.get_monitor(conn, name) is None:
                raise NotFound(f"no monitor named {name!r}", field="name")
            return [_run(r) for r in sql.list_runs(conn, name, limit, with_report)]

    def get_run(self, name: str, run_id: int, with_report: bool = True) -> MonitorRun:
        """One past evaluation by id. `runs` pages from the newest, so reaching an old run through it would
        load every newer report on the way; this reads the one row. A run of another monitor is NotFound."""
        check_monitor_name(name)
        if isinstance(run_id, bool) or not isinstance(run_id, int) or not 1 <= run_id < 2**31:
            raise InvalidInput(f"run_id must be a positive integer, got {run_id!r:.60}", field="run_id")
        _check_flag(with_report, "with_report")
        with read(self.engine) as conn:
            if sql.get_monitor(conn, name) is None:
                raise NotFound(f"no monitor named {name!r}", field="name")
            row = sql.get_run(conn, name, run_id, with_report)
        if row is None:
            raise NotFound(f"monitor {name!r} has no run {run_id}", field="run_id")
        return _run(row)

    def run(self, name: str, *, now: int | None = None) -> MonitorRun:
        """Evaluate the window ending now (or at `now`, ms) and store what was found."""
        from arsenale import monitoring
        from arsenale.registry.contract import Contract
        from arsenale.serving.inference_log import read_log

        monitor = self.get(name)
        end = now_ms() if now is None else _check_now(now)
        start = end - monitor.window_s * 1000
        if monitor.traces is not None:  # an LLM monitor: the window's traces
            from arsenale.monitoring.llm import window_values

            with project(monitor.project):  # its own project's traces, whoever runs it
                count, llm_values, llm_report = window_values(self.engine, monitor.traces, start, end)
            return self._store(name, start, end, count, None, None, llm_values, llm_report)
        routes = self.deployments.get(monitor.deployment).policy.routes
        primary = max(routes, key=lambda r: r.weight)
        contract = Contract.model_validate(self.registry.get_version(primary.model, primary.version).contract)
        if contract.inputs is None or contract.profile is None:
            raise InvalidInput(f"{primary.key} was registered without reference data: its contract has no "
                               "profile to compare live traffic with", field="reference")
        log = read_log(self.root, monitor.deployment, since_ms=start, until_ms=end, role="route")
        features = [c.name for c in contract.inputs.columns]
        window = log[[c for c in features if c in log.columns]] if len(log) else log.reindex(columns=features)
        drift = monitoring.drift(contract.profile, window, drift_share=monitor.drift_share)
        quality = monitoring.check_quality(contract, log if len(log) else window)
        values: dict[str, float | None] = {
            "rows": float(len(log)), "drift_share": drift.drift_share, "dataset_drift": float(drift.dataset_drift),
            "drifted_columns": float(drift.number_of_drifted_columns),
            "quality.errors": float(quality.summary.get("errors", 0)),
            "quality.warnings": float(quality.summary.get("warnings", 0)),
            "quality.missing_share": quality.summary.get("missing_share"),
        }
        for column, result in drift.columns.items():
            values[f"drift.{column}.statistic"] = result.statistic
        values.update(_accuracy(log))
        values = {k: None if v is None or not math.isfinite(v) else float(v) for k, v in values.items()}
        report = {"drift": drift.to_dict(), "quality": quality.to_dict()}
        return self._store(name, start, end, len(log), primary.model, primary.version, values, report)

    def _store(self, name: str, start: int, end: int, rows: int, model: str | None, version: int | None,
               values: dict[str, float | None], report: dict[str, Any]) -> MonitorRun:
        """Store one evaluated window, then evaluate the monitor's alert rules on it (both kinds alike)."""
        stamp = now_ms()
        with write(self.engine) as conn:
            if sql.get_monitor(conn, name) is None:
                raise NotFound(f"no monitor named {name!r}", field="name")
            run_id = sql.insert_run(conn, monitor=name, window_start=start, window_end=end, rows=rows,
                                    model=model, version=version,
                                    values=json.dumps(values, allow_nan=False),
                                    report=json.dumps(report, default=str), timestamp=stamp)
        result = MonitorRun(id=run_id, monitor=name, window_start=start, window_end=end, rows=rows,
                            model=model, version=version, values=values, timestamp=stamp, report=report)
        try:
            result.alerts = self.alerts.evaluate(result)
        except Exception as exc:  # noqa: BLE001 - the window is stored; the rules' state did not move
            result.alert_error = exc.message if isinstance(exc, ArsenaleError) \
                else f"{type(exc).__name__}: {exc}"
            log.error("monitor %r: alert rules were not evaluated on run %s: %s", name, run_id,
                      result.alert_error)
        return result


def _check_now(value: Any) -> int:
    """The end of a window (epoch ms): a non-negative integer, not a bool, a fraction or text."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) < 2**53:
        raise InvalidInput(f"now must be epoch milliseconds, got {value!r:.40}", field="now")
    return int(value)


def _check_flag(value: Any, field: str) -> None:
    # A truthy string ("false") would otherwise silently mean True.
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false, got {value!r:.40}", field=field)


def _accuracy(log: Any) -> dict[str, float | None]:
    """Accuracy on the window's rows whose labels have arrived (None until some have)."""
    import pandas as pd

    labelled = log[log["label"].notna()] if len(log) and "label" in log.columns else log.iloc[0:0]
    if not len(labelled):
        return {"labelled": 0.0, "accuracy": None}
    try:
        correct = pd.to_numeric(labelled["prediction"]) == pd.to_numeric(labelled["label"])
    except (TypeError, ValueError):  # text labels: compare as text
        correct = labelled["prediction"].astype(str) == labelled["label"].astype(str)
    return {"labelled": float(len(labelled)), "accuracy": float(correct.mean())}
