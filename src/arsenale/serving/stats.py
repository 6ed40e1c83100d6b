"""Per-version request statistics, counted in the request path and flushed to the store off it.

The canary controller judges a version from these counts (requests, model errors, latency buckets) summed
over replicas. Counting is a lock and a few integer additions; the write to the store happens on a daemon
thread every couple of seconds. A failed write never reaches a request: it is logged and the counts are
kept for the next attempt, so a database blip delays statistics without losing them.
"""

from __future__ import annotations

import bisect
import logging
import threading
from typing import Literal

from arsenale.serving.models import LATENCY_BUCKETS_MS, VersionStats
from arsenale.serving.service import DeploymentAPI
from arsenale.tracking.models import now_ms

__all__ = ["StatsFlusher", "StatsRecorder"]

log = logging.getLogger("arsenale.serving.stats")

Role = Literal["route", "shadow"]


class StatsRecorder:
    """Counters per (model, version, role) for the current window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acc: dict[tuple[str, int, Role], list] = {}  # type: ignore[type-arg]
        self._window_start = now_ms()

    def record(self, model: str, version: int, role: Role, latency_ms: float, error: bool = False) -> None:
        bucket = bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)
        with self._lock:
            acc = self._acc.get((model, version, role))
            if acc is None:
                acc = self._acc[(model, version, role)] = [0, 0, [0] * (len(LATENCY_BUCKETS_MS) + 1), 0.0]
            acc[0] += 1
            acc[1] += error
            acc[2][bucket] += 1
            acc[3] += latency_ms

    def drain(self) -> list[VersionStats]:
        """The window's statistics, and a fresh window."""
        with self._lock:
            acc, start = self._acc, self._window_start
            self._acc, self._window_start = {}, now_ms()
        return [VersionStats(model=m, version=v, role=role, window_start=start, requests=a[0], errors=a[1],
                             latency_counts=a[2], latency_sum_ms=a[3]) for (m, v, role), a in acc.items()]

    def restore(self, stats: list[VersionStats]) -> None:
        """Put back counts a flush could not write, to go out with the next window."""
        with self._lock:
            for s in stats:
                acc = self._acc.setdefault((s.model, s.version, s.role),
                                           [0, 0, [0] * (len(LATENCY_BUCKETS_MS) + 1), 0.0])
                acc[0] += s.requests
                acc[1] += s.errors
                acc[2] = [a + b for a, b in zip(acc[2], s.latency_counts)]
                acc[3] += s.latency_sum_ms
            self._window_start = min(self._window_start, *(s.window_start for s in stats)) if stats \
                else self._window_start


class StatsFlusher:
    """A daemon thread writing the recorder's windows to `deployments.record_stats` every `interval_s`."""

    def __init__(self, recorder: StatsRecorder, deployments: DeploymentAPI, deployment: str, replica: str,
                 interval_s: float = 2.0) -> None:
        self.recorder = recorder
        self.deployments = deployments
        self.deployment = deployment
        self.replica = replica
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"arsenale-stats-{deployment}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> bool:
        """Write what has been counted; False (counts kept) when the store refused."""
        stats = self.recorder.drain()
        if not stats:
            return True
        try:
            self.deployments.record_stats(self.deployment, self.replica, stats)
        except Exception as e:  # the store is down or the deployment is gone: keep the counts, keep serving
            log.warning("could not record serving statistics for %s: %s", self.deployment, e)
            self.recorder.restore(stats)
            return False
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.flush()
