"""Autoscaler: the decision rule on scripted readings, then a real pool growing and shrinking under load."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from arsenale.errors import InvalidInput
from arsenale.serving.autoscale import Autoscaler
from arsenale.serving.models import ModelRef
from arsenale.serving.workers import PoolStats, WorkerPool

LOADER = "tests.serving.toy_predictors:load"
V1 = ModelRef(model="toy", version=1)


class ScriptedPool:
    """A pool whose load the test dictates: `load` batches outstanding on average, per second of clock."""

    min_workers, max_workers = 1, 8

    def __init__(self, size: int) -> None:
        self.size = size
        self.load = 0.0
        self.latency_ms: float | None = None
        self.starting = 0
        self.area = 0.0
        self.completed = 0
        self.resizes: list[int] = []

    def tick(self, load: float, latency_ms: float | None = None) -> None:
        self.load, self.latency_ms = load, latency_ms
        self.area += load
        self.completed += 1 if load else 0

    def stats(self) -> PoolStats:
        return PoolStats(target=self.size, workers=self.size - self.starting, starting=self.starting,
                         draining=0,
                         in_flight=0, queued=0, ewma_latency_ms=self.latency_ms, completed=self.completed,
                         crashes=0, restarts=0, outstanding_seconds=self.area)

    def resize(self, n: int) -> None:
        self.size = n
        self.resizes.append(n)


def drive(scaler: Autoscaler, pool: ScriptedPool, loads: list[float], latency_ms: float | None = None,
          start: float = 0.0) -> list[int]:
    """One step per second of fake clock with the given mean loads; the pool size after each step."""
    if start == 0.0:
        scaler.step(now=0.0)
    sizes = []
    for second, load in enumerate(loads, start=int(start) + 1):
        pool.tick(load, latency_ms)
        scaler.step(now=float(second))
        sizes.append(pool.size)
    return sizes


def test_sustained_load_grows_the_pool_in_proportion_and_never_past_max() -> None:
    pool = ScriptedPool(size=1)
    scaler = Autoscaler(pool, min_workers=1, max_workers=4, scale_up_after=2, scale_down_after=3)
    assert drive(scaler, pool, [5.0]) == [1], "one busy interval is a burst"
    assert drive(scaler, pool, [5.0], start=1) == [3], "5 outstanding at 2 per worker needs 3 workers"
    assert drive(scaler, pool, [30.0, 30.0, 30.0], start=2) == [3, 4, 4]
    assert [(e.from_workers, e.to_workers) for e in scaler.events] == [(1, 3), (3, 4)]
    assert "per worker > 2" in scaler.events[0].reason


def test_quiet_intervals_shrink_one_worker_at_a_time_down_to_min() -> None:
    pool = ScriptedPool(size=4)
    scaler = Autoscaler(pool, min_workers=2, max_workers=4, scale_down_after=3)
    assert drive(scaler, pool, [0.5] * 12) == [4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert [(e.from_workers, e.to_workers) for e in scaler.events] == [(4, 3), (3, 2)]


def test_moderate_load_holds_the_size_and_a_busy_interval_resets_the_quiet_count() -> None:
    pool = ScriptedPool(size=3)
    scaler = Autoscaler(pool, min_workers=1, max_workers=4, scale_up_after=2, scale_down_after=2)
    # 4 outstanding over 3 workers: under target, but 2 workers would be more than half busy -> hold.
    assert drive(scaler, pool, [4.0] * 5) == [3] * 5
    assert drive(scaler, pool, [0.0, 7.0, 0.0, 0.0], start=5) == [3, 3, 3, 2]


def test_slow_batches_grow_the_pool_only_while_batches_are_answered() -> None:
    pool = ScriptedPool(size=1)
    scaler = Autoscaler(pool, min_workers=1, max_workers=3, max_latency_ms=50, scale_up_after=2)
    assert drive(scaler, pool, [1.0, 1.0], latency_ms=80.0) == [1, 2]
    assert "latency 80.0 ms > 50 ms" in scaler.events[0].reason
    # An idle pool keeps its last EWMA: a stale reading must not grow it.
    assert drive(scaler, pool, [0.0, 0.0, 0.0], latency_ms=80.0, start=2) == [2, 2, 2]


def test_workers_still_starting_hold_further_growth() -> None:
    pool = ScriptedPool(size=2)
    scaler = Autoscaler(pool, min_workers=1, max_workers=8, scale_up_after=2)
    pool.starting = 1
    assert drive(scaler, pool, [20.0] * 4) == [2, 2, 2, 2]
    pool.starting = 0
    assert drive(scaler, pool, [20.0, 20.0], start=4) == [2, 8]


@pytest.mark.parametrize("kwargs", [
    {"min_workers": 0}, {"max_workers": 0}, {"max_workers": 9}, {"target_in_flight_per_worker": 0},
    {"max_latency_ms": -1}, {"interval_s": 0}, {"scale_up_after": 0}, {"scale_down_after": 0},
])
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    arguments = {"min_workers": 1, "max_workers": 4, **kwargs}
    with pytest.raises(InvalidInput):
        Autoscaler(ScriptedPool(size=1), **arguments)


def test_a_real_pool_grows_to_max_under_load_and_back_to_min_without_failing_a_request() -> None:
    async def main() -> None:
        pool = WorkerPool(LOADER, {"sleep_s": 0.02}, min_workers=1, max_workers=3)
        scaler = Autoscaler(pool, min_workers=1, max_workers=3, interval_s=0.1, scale_up_after=2,
                            scale_down_after=4)
        await pool.load([V1])
        scaler.start()
        stop = asyncio.Event()
        answered: list[int] = []
        failures: list[BaseException] = []

        async def client(i: int) -> None:
            while not stop.is_set():
                frame = np.array([[float(i), 1.0]])
                try:
                    out = await pool.predict(V1.key, frame)
                except Exception as exc:  # noqa: BLE001 - collected: the test asserts there are none
                    failures.append(exc)
                    continue
                assert out["predictions"].tolist() == (frame * 2).tolist()
                answered.append(int(out["pid"][0]))

        clients = [asyncio.ensure_future(client(i)) for i in range(10)]
        try:
            grew = await wait_for(lambda: pool.stats().workers == 3, timeout=10)
            mark = len(answered)
            await asyncio.sleep(0.3)
            served_by = len(set(answered[mark:]))
            stop.set()
            await asyncio.gather(*clients)
            shrank = await wait_for(lambda: pool.stats().target == 1 and pool.stats().draining == 0
                                    and len(pool.stats().per_worker) == 1, timeout=10)
        finally:
            stop.set()
            await scaler.stop()
            await pool.close()
        assert failures == []
        assert served_by == 3, "every worker took batches at full size"
        sizes = [(e.from_workers, e.to_workers) for e in scaler.events]
        assert max(e.to_workers for e in scaler.events) == 3 and sizes[-1][1] == 1
        assert all(a < b for a, b in sizes[: sizes.index(max(sizes, key=lambda s: s[1])) + 1])
        stats = pool.stats()
        assert stats.crashes == 0 and len(answered) > 30
        print(f"grew to 3 in {grew:.1f} s, back to 1 in {shrank:.1f} s; events {sizes}")

    asyncio.run(asyncio.wait_for(main(), 40))
    assert multiprocessing.active_children() == []


def test_shrinking_under_load_drains_workers_without_failing_a_batch() -> None:
    async def main() -> None:
        pool = WorkerPool(LOADER, {"sleep_s": 0.02}, min_workers=1, max_workers=3)
        await pool.load([V1])
        pool.resize(3)
        await wait_for(lambda: pool.stats().workers == 3)
        frames = [np.array([[float(i)]]) for i in range(30)]
        pending = [asyncio.ensure_future(pool.predict(V1.key, f)) for f in frames]
        await wait_for(lambda: pool.stats().in_flight == 3)
        pool.resize(1)
        stats = pool.stats()
        assert stats.target == 1 and stats.draining == 2 and stats.workers == 1
        outputs = await asyncio.gather(*pending)
        assert [o["predictions"].tolist() for o in outputs] == [(f * 2).tolist() for f in frames]
        await wait_for(lambda: len(pool.stats().per_worker) == 1)
        assert pool.stats().crashes == 0 and pool.stats().restarts == 0
        pool.resize(2)  # growing again after a shrink starts a fresh worker
        await wait_for(lambda: pool.stats().workers == 2)
        await pool.close()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert multiprocessing.active_children() == []


async def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `check()` holds (polled every 10 ms); fails after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start
