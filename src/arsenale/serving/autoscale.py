"""Grow and shrink a `WorkerPool` with its load, inside one server process.

    scaler = Autoscaler(pool, min_workers=1, max_workers=4, max_latency_ms=50)
    scaler.start()          # an asyncio task on the server's loop
    ...
    await scaler.stop()
    scaler.events           # [ScalingEvent(time, from_workers, to_workers, reason), ...]

Why an asyncio task and not a thread: the pool belongs to the server's event loop (it reads its workers'
pipes there), so a decision taken on that loop needs no locks and resizes the pool between two batches.

Why the load is read from `PoolStats.outstanding_seconds`: its slope over an interval is the mean number of
batches outstanding (computing plus queued) during that interval, so a burst that came and went between
two samples counts for what it was, where one instantaneous reading per second would be mostly noise.

Why growth waits for `scale_up_after` busy intervals and shrinking for `scale_down_after` quiet ones: one
busy second is a burst the queue absorbs; a worker takes a second to start and memory to hold its models,
so the pool grows only for sustained load and gives workers back slowly. A worker chosen to stop drains:
it takes no new batch and exits after its current one, so scaling never fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from arsenale.errors import InvalidInput
from arsenale.serving.workers import PoolStats

__all__ = ["Autoscaler", "Scalable", "ScalingEvent"]

log = logging.getLogger(__name__)
_KEPT_EVENTS = 1000


class Scalable(Protocol):
    def stats(self) -> PoolStats: ...

    def resize(self, n: int) -> None: ...


@dataclass(frozen=True)
class ScalingEvent:
    time: float  # seconds since the epoch
    from_workers: int
    to_workers: int
    reason: str


class Autoscaler:
    def __init__(self, pool: Scalable, *, min_workers: int, max_workers: int,
                 target_in_flight_per_worker: float = 2.0, max_latency_ms: float | None = None,
                 interval_s: float = 1.0, scale_up_after: int = 2, scale_down_after: int = 10) -> None:
        if not isinstance(min_workers, int) or min_workers < 1:
            raise InvalidInput(f"min_workers must be a positive integer, got {min_workers!r}",
                               field="min_workers")
        if not isinstance(max_workers, int) or max_workers < min_workers:
            raise InvalidInput(f"max_workers must be an integer >= min_workers, got {max_workers!r}",
                               field="max_workers")
        pool_min, pool_max = getattr(pool, "min_workers", None), getattr(pool, "max_workers", None)
        below = pool_min is not None and min_workers < pool_min
        if below or (pool_max is not None and max_workers > pool_max):
            raise InvalidInput(f"the autoscaler's range [{min_workers}, {max_workers}] must lie within the "
                               f"pool's [{pool_min}, {pool_max}]", field="max_workers")
        if not target_in_flight_per_worker > 0:
            raise InvalidInput("target_in_flight_per_worker must be positive",
                               field="target_in_flight_per_worker")
        if max_latency_ms is not None and not max_latency_ms > 0:
            raise InvalidInput("max_latency_ms must be positive", field="max_latency_ms")
        if not interval_s > 0:
            raise InvalidInput("interval_s must be positive", field="interval_s")
        if scale_up_after < 1 or scale_down_after < 1:
            raise InvalidInput("scale_up_after and scale_down_after count intervals: at least 1",
                               field="scale_up_after")
        self.pool = pool
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.target_in_flight_per_worker = float(target_in_flight_per_worker)
        self.max_latency_ms = max_latency_ms
        self.interval_s = float(interval_s)
        self.scale_up_after = scale_up_after
        self.scale_down_after = scale_down_after
        self.events: list[ScalingEvent] = []
        self._previous: tuple[float, PoolStats] | None = None
        self._busy = 0
        self._quiet = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sample every `interval_s` on the running event loop (the pool's), until `stop()`."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="arsenale-autoscaler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.step()
            except Exception:  # a bad reading must not end autoscaling for the life of the server
                log.exception("autoscaler step failed")

    def step(self, now: float | None = None) -> ScalingEvent | None:
        """Take one sample and resize the pool if the load has asked for it long enough."""
        now = time.monotonic() if now is None else now
        stats = self.pool.stats()
        previous, self._previous = self._previous, (now, stats)
        if previous is None:
            return None
        elapsed = now - previous[0]
        if elapsed > 0:
            load = max(0.0, (stats.outstanding_seconds - previous[1].outstanding_seconds) / elapsed)
        else:
            load = float(stats.in_flight + stats.queued)
        size = max(stats.target, 1)
        target = self.target_in_flight_per_worker
        per_worker = load / size
        answered = stats.completed > previous[1].completed
        latency = stats.ewma_latency_ms
        slow = (self.max_latency_ms is not None and answered and latency is not None
                and latency > self.max_latency_ms)
        crowded = per_worker > target
        if crowded or slow:
            # A worker still starting is capacity already on its way: judge again once it serves.
            self._busy = self._busy if stats.starting else self._busy + 1
            self._quiet = 0
        elif size == 1 or load / (size - 1) <= target / 2:
            self._quiet += 1  # one worker fewer would still be at most half busy
            self._busy = 0
        else:
            self._busy = self._quiet = 0

        if self._busy >= self.scale_up_after and size < self.max_workers:
            wanted = max(size + 1, math.ceil(load / target)) if crowded else size + 1
            reason = (f"{per_worker:.2f} batches in flight per worker > {target:g}" if crowded
                      else f"batch latency {latency:.1f} ms > {self.max_latency_ms:g} ms")
            return self._resize(size, min(wanted, self.max_workers), reason)
        if self._quiet >= self.scale_down_after and size > self.min_workers:
            return self._resize(size, size - 1, f"{per_worker:.2f} batches in flight per worker for "
                                                f"{self._quiet} intervals")
        if size < self.min_workers or size > self.max_workers:
            return self._resize(size, min(max(size, self.min_workers), self.max_workers), "outside the range")
        return None

    def _resize(self, size: int, to: int, reason: str) -> ScalingEvent:
        self.pool.resize(to)
        self._busy = self._quiet = 0
        event = ScalingEvent(time=time.time(), from_workers=size, to_workers=to, reason=reason)
        self.events.append(event)
        del self.events[:-_KEPT_EVENTS]  # a server that runs for months keeps the recent history only
        log.info("model workers %d -> %d: %s", size, to, reason)
        return event
