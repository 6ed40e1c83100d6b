"""Scheduled monitors: each cron tick of a monitor is evaluated once, by one of any number of schedulers.

    run_due_monitors(client.monitors)      # what `Scheduler.tick()` does for monitors, next to pipelines

As for pipeline schedules, a scheduler claims a due monitor with ONE conditional UPDATE that moves
`next_run_time` to the next cron tick and takes a lease (`next_run_time <= now` and no live lease), so of two
schedulers that see the same due tick exactly one updates the row and runs it; the lease is released when
the run ends. A scheduler that dies mid-run leaves the lease to expire: that tick is not evaluated again (at
most once), the next one is. Missed ticks are not back-filled: after downtime a monitor runs once, on the
window that ends now. LLM monitors (`MonitorService.create_llm`) are scheduled the same way: the service's
`run` computes either kind of window.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from arsenale.errors import ArsenaleError
from arsenale.store import monitors as sql
from arsenale.store.db import read, write
from arsenale.tracking.models import now_ms

if TYPE_CHECKING:
    from arsenale.monitoring.service import MonitorService
    from arsenale.pipelines.service import PipelineService

__all__ = ["DEFAULT_MONITOR_LEASE_SECONDS", "MonitorTick", "any_due", "monitor_service_for",
           "run_due_monitors"]

log = logging.getLogger("arsenale.monitoring.scheduling")

DEFAULT_MONITOR_LEASE_SECONDS = 3600  # an evaluation takes seconds; a triggered pipeline may take longer


@dataclass(frozen=True)
class MonitorTick:
    """One scheduled evaluation: which tick, the run it stored, the alerts it fired or resolved."""

    monitor: str
    trigger: str
    status: str  # "succeeded" or "error"
    run_id: int | None = None
    alert_ids: tuple[int, ...] = ()
    error: str | None = None


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ArsenaleError) else f"{type(exc).__name__}: {exc}"


def any_due(engine: Any, now: int) -> bool:
    """Whether a monitor is due: a cheap query, so a tick with nothing due loads no monitoring code."""
    with read(engine) as conn:
        return bool(sql.due_monitors(conn, now))


def run_due_monitors(service: MonitorService, now: int | None = None, owner: str | None = None, *,
                     lease_seconds: float = DEFAULT_MONITOR_LEASE_SECONDS) -> list[MonitorTick]:
    """Claim, evaluate and release every monitor due at `now` (epoch ms; default: the clock).

    One monitor's failure is its result's `error`, never an exception: the others still run.
    """
    from arsenale.pipelines.schedules import next_tick

    at = now_ms() if now is None else int(now)
    owner = owner or _owner()
    lease_ms = int(lease_seconds * 1000)
    with read(service.engine) as conn:
        due = list(sql.due_monitors(conn, at))
    results = []
    for row in due:
        tick = datetime.fromtimestamp(row.next_run_time / 1000, tz=UTC).isoformat()
        trigger = f"cron:{row.schedule}@{tick}"
        try:
            following = next_tick(row.schedule, at)
            with write(service.engine) as conn:
                claimed = sql.claim_monitor(conn, row.name, row.next_run_time, following, owner, at,
                                            at + lease_ms)
        except Exception as exc:  # noqa: BLE001 - a bad schedule or a lost connection: report, go on
            results.append(MonitorTick(row.name, trigger, "error", error=_message(exc)))
            continue
        if not claimed:  # another scheduler took this tick
            continue
        try:
            run = service.run(row.name, now=at)
            results.append(MonitorTick(row.name, trigger, "succeeded", run.id,
                                       tuple(a.id for a in run.alerts), run.alert_error))
        except Exception as exc:  # noqa: BLE001 - one bad monitor must not stop the others
            log.error("scheduler: monitor %r failed: %s", row.name, _message(exc))
            results.append(MonitorTick(row.name, trigger, "error", error=_message(exc)))
        finally:
            try:
                with write(service.engine) as conn:
                    sql.release_monitor(conn, row.name, owner)
            except Exception:  # the lease expires on its own
                log.exception("scheduler: releasing the lease on monitor %r failed", row.name)
    return results


def monitor_service_for(pipelines: PipelineService) -> MonitorService:
    """The monitors of the store a pipeline scheduler ticks, built from its pieces (same engine, blobs,
    tracking and actor); trigger pipelines of alerts run on that same pipeline service."""
    from arsenale.config import get_settings
    from arsenale.monitoring.service import MonitorService
    from arsenale.registry.service import RegistryService
    from arsenale.registry.webhooks import WebhookService
    from arsenale.serving.service import DeploymentService
    from arsenale.store.registry import SqlRegistryStore

    engine = pipelines.store.engine
    tracking: Any = pipelines.tracking  # a TrackingService: pipelines run in-process on this store
    registry = RegistryService(SqlRegistryStore(engine), pipelines.blobs, tracking, pipelines.actor,
                               WebhookService(engine))
    deployments = DeploymentService(engine, registry, pipelines.actor)
    return MonitorService(engine, deployments, registry, pipelines.actor,
                          get_settings().resolved_inference_log(), pipelines=pipelines)
