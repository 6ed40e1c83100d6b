"""WorkerPool: real model processes, real crashes (os._exit, SIGKILL), real replacement."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from arsenale.config import get_settings
from arsenale.errors import Forbidden, InvalidInput, ModelFailed, NotFound, WorkerCrashed
from arsenale.platform import Client
from arsenale.serving.models import ModelRef
from arsenale.serving.runtime import predictor_from_client
from arsenale.serving.workers import PoolStats, WorkerPool
from tests.serving.toy_predictors import CRASH, HOLD, RAISE, Unreadable

from .conftest import Fitted, register

LOADER = "tests.serving.toy_predictors:load"
V1 = ModelRef(model="toy", version=1)
V2 = ModelRef(model="toy", version=2)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Each test owns one event loop, and a hung pool fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(coro, 30))


async def until(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `check()` holds (polled every 5 ms); fails after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def pids(pool: WorkerPool, state: str = "ready") -> set[int]:
    return {w.pid for w in pool.stats().per_worker if w.state == state and w.pid}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def with_pool(body: Callable[[WorkerPool], Awaitable[None]], *, refs: tuple[ModelRef, ...] = (V1,),
                    kwargs: dict[str, Any] | None = None, **options: Any) -> list[int]:
    """Run `body` against a loaded pool, close it, and return the pids of every worker it ever had."""
    options.setdefault("min_workers", 2)
    pool = WorkerPool(LOADER, kwargs or {}, **options)
    seen: set[int] = set()
    try:
        await pool.load(list(refs))
        seen |= pids(pool)
        await body(pool)
        seen |= {w.pid for w in pool.stats().per_worker if w.pid}
    finally:
        await pool.close()
    assert pool.stats().per_worker == ()
    assert multiprocessing.active_children() == []
    return sorted(seen)


def row(value: float) -> np.ndarray:
    return np.array([[value, 1.0]])


@pytest.mark.parametrize("start_method", [
    "spawn",
    pytest.param("fork", marks=pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")),
])
def test_predictions_match_the_model_across_workers_under_concurrency(start_method: str) -> None:
    async def body(pool: WorkerPool) -> None:
        frames = [np.arange(3, dtype=float).reshape(1, 3) + i for i in range(200)]
        outputs = await asyncio.gather(*(pool.predict(V1.key, f) for f in frames))
        for frame, out in zip(frames, outputs, strict=True):
            np.testing.assert_array_equal(out["predictions"], frame * 2)
        answered_by = {int(out["pid"][0]) for out in outputs}
        assert answered_by == pids(pool) and len(answered_by) == 2
        stats = pool.stats()
        assert (stats.completed, stats.in_flight, stats.queued, stats.crashes) == (200, 0, 0, 0)
        assert pool.in_flight == 0 and stats.ewma_latency_ms is not None

    workers = run(with_pool(body, start_method=start_method))
    assert len(workers) == 2 and all(gone(pid) for pid in workers)


def test_a_worker_that_exits_mid_batch_fails_only_that_batch_and_is_replaced() -> None:
    async def body(pool: WorkerPool) -> None:
        before = pids(pool)
        frames = [row(float(i)) for i in range(40)]
        frames[7] = row(CRASH)
        results = await asyncio.gather(*(pool.predict(V1.key, f) for f in frames), return_exceptions=True)
        crashed_at = time.monotonic()
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [7]
        assert isinstance(results[7], WorkerCrashed) and "exited with code 1" in str(results[7])
        for frame, out in zip(frames, results, strict=True):
            if not isinstance(out, BaseException):
                np.testing.assert_array_equal(out["predictions"], frame * 2)

        # ~0.35 s on idle cores (most of it importing numpy and pydantic); generous for a busy CI machine.
        await until(lambda: pool.stats().workers == 2, timeout=3.0)
        replaced_in = time.monotonic() - crashed_at
        stats = pool.stats()
        assert (stats.crashes, stats.restarts) == (1, 1)
        assert len(pids(pool) - before) == 1, "exactly one new worker"
        outputs = await asyncio.gather(*(pool.predict(V1.key, row(float(i))) for i in range(20)))
        assert [float(o["predictions"][0, 0]) for o in outputs] == [2.0 * i for i in range(20)]
        print(f"replacement ready {replaced_in * 1000:.0f} ms after the crash")

    run(with_pool(body))


def test_a_worker_killed_from_outside_fails_its_batch_while_the_other_keeps_serving() -> None:
    async def body(pool: WorkerPool) -> None:
        held = asyncio.ensure_future(pool.predict(V1.key, row(HOLD)))
        await until(lambda: any(w.busy for w in pool.stats().per_worker))
        victim = next(w.pid for w in pool.stats().per_worker if w.busy)
        assert victim is not None
        survivor = (pids(pool) - {victim}).pop()
        others = [asyncio.ensure_future(pool.predict(V1.key, row(float(i)))) for i in range(30)]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        with pytest.raises(WorkerCrashed, match=f"model worker {victim} "):
            await held
        assert time.monotonic() - killed_at < 0.5
        stats = pool.stats()  # the replacement started the moment the death was seen
        assert (stats.restarts, stats.workers + stats.starting) == (1, 2)
        outputs = await asyncio.gather(*others)
        assert [float(o["predictions"][0, 0]) for o in outputs] == [2.0 * i for i in range(30)]
        assert {int(o["pid"][0]) for o in outputs} <= {survivor} | pids(pool)
        await until(lambda: pool.stats().workers == 2, timeout=3.0)
        assert victim not in pids(pool) and gone(victim)
        assert (pool.stats().crashes, pool.stats().restarts) == (1, 1)
        out = await pool.predict(V1.key, row(4.0))
        assert float(out["predictions"][0, 0]) == 8.0

    run(with_pool(body, kwargs={"hold_s": 10.0}))


def test_a_model_exception_comes_back_as_model_failed_and_the_worker_lives() -> None:
    async def body(pool: WorkerPool) -> None:
        before = pids(pool)
        with pytest.raises(ModelFailed, match="ValueError: negative two is not a valid amount"):
            await pool.predict(V1.key, row(RAISE))
        outputs = await asyncio.gather(*(pool.predict(V1.key, row(float(i))) for i in range(10)))
        assert [float(o["predictions"][0, 0]) for o in outputs] == [2.0 * i for i in range(10)]
        stats = pool.stats()
        assert pids(pool) == before and (stats.crashes, stats.restarts, stats.completed) == (0, 0, 11)

    run(with_pool(body, min_workers=1))


def test_a_frame_the_worker_cannot_rebuild_fails_only_its_batch() -> None:
    async def body(pool: WorkerPool) -> None:
        with pytest.raises(ModelFailed, match="this frame cannot be rebuilt"):
            await pool.predict(V1.key, Unreadable())
        assert float((await pool.predict(V1.key, row(2.0)))["predictions"][0, 0]) == 4.0
        assert pool.stats().crashes == 0

    run(with_pool(body, min_workers=1))


def test_versions_load_and_unload_and_new_workers_load_what_is_current() -> None:
    async def body(pool: WorkerPool) -> None:
        await pool.load([V1, V2])  # V1 again: idempotent
        assert float((await pool.predict(V1.key, row(5.0)))["predictions"][0, 0]) == 10.0
        assert float((await pool.predict(V2.key, row(5.0)))["predictions"][0, 0]) == 15.0

        broken = ModelRef(model="toy", version=9)
        with pytest.raises(ModelFailed, match="cannot load toy/9: RuntimeError: version 9 has a corrupt"):
            await pool.load([broken])
        with pytest.raises(NotFound):
            await pool.predict(broken.key, row(1.0))

        # Unloading lets the batches already accepted finish, then refuses new ones.
        held = asyncio.ensure_future(pool.predict(V1.key, row(HOLD)))
        await until(lambda: pool.stats().in_flight == 1)
        pool.unload([V1.key])
        with pytest.raises(NotFound, match="toy/1 is not loaded"):
            await pool.predict(V1.key, row(1.0))
        assert float((await held)["predictions"][0, 0]) == HOLD * 2

        pool.resize(3)
        await until(lambda: pool.stats().workers == 3)
        outputs = await asyncio.gather(*(pool.predict(V2.key, row(float(i))) for i in range(60)))
        assert [float(o["predictions"][0, 0]) for o in outputs] == [3.0 * i for i in range(60)]
        assert len({int(o["pid"][0]) for o in outputs}) == 3, "the new worker loaded toy/2 and serves it"
        assert pool.stats().crashes == 0

    run(with_pool(body, refs=(V1,), max_workers=3, kwargs={"hold_s": 0.3, "broken_versions": (9,)}))


def test_close_waits_for_accepted_batches_and_leaves_no_process() -> None:
    async def main() -> list[int]:
        pool = WorkerPool(LOADER, {"sleep_s": 0.05}, min_workers=2)
        await pool.load([V1])
        workers = sorted(pids(pool))
        pending = [asyncio.ensure_future(pool.predict(V1.key, row(float(i)))) for i in range(6)]
        await asyncio.sleep(0)
        await pool.close()
        outputs = await asyncio.gather(*pending)
        assert [float(o["predictions"][0, 0]) for o in outputs] == [2.0 * i for i in range(6)]
        with pytest.raises(WorkerCrashed, match="shutting down"):
            await pool.predict(V1.key, row(1.0))
        return workers

    workers = run(main())
    assert len(workers) == 2 and all(gone(pid) for pid in workers)
    assert multiprocessing.active_children() == [] and zombies() == []


ABANDONED = """
import asyncio, numpy as np
from arsenale.serving.models import ModelRef
from arsenale.serving.workers import WorkerPool

async def main():
    pool = WorkerPool("tests.serving.toy_predictors:load", {}, min_workers=2)
    await pool.load([ModelRef(model="toy", version=1)])
    await pool.predict("toy/1", np.ones((1, 1)))
    print(" ".join(str(w.pid) for w in pool.stats().per_worker), flush=True)
    raise SystemExit(3)  # the server dies without closing its pool

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_server_that_exits_without_closing_its_pool_leaves_no_worker_behind(tmp_path: Path) -> None:
    script = tmp_path / "abandon.py"
    script.write_text(ABANDONED)
    root = str(Path(__file__).parents[2])  # where `tests.serving.toy_predictors` imports from
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": root},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr
    workers = [int(pid) for pid in done.stdout.split()]
    assert len(workers) == 2 and all(gone(pid) for pid in workers)


def zombies() -> list[int]:
    """Children of this process that exited and were never waited for."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                found.append(int(entry.name))
    return found


def test_a_batch_waiting_too_long_for_a_worker_is_refused_and_cancelled_ones_are_forgotten() -> None:
    async def body(pool: WorkerPool) -> None:
        held = asyncio.ensure_future(pool.predict(V1.key, row(HOLD)))
        await until(lambda: pool.stats().in_flight == 1)
        with pytest.raises(WorkerCrashed, match=r"no model worker was free within 0\.2 s"):
            await pool.predict(V1.key, row(1.0))
        waiting = asyncio.ensure_future(pool.predict(V1.key, row(1.0)))
        await until(lambda: pool.stats().queued == 1)
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert pool.stats().queued == 0
        await held
        assert pool.in_flight == 0

    run(with_pool(body, min_workers=1, queue_timeout_s=0.2, kwargs={"hold_s": 0.5}))


def test_round_trip_of_a_one_row_batch_is_well_under_a_millisecond() -> None:
    async def body(pool: WorkerPool) -> None:
        frame = row(1.0)
        for _ in range(100):
            await pool.predict(V1.key, frame)
        times = []
        for _ in range(1000):
            start = time.perf_counter()
            await pool.predict(V1.key, frame)
            times.append(time.perf_counter() - start)
        median = sorted(times)[len(times) // 2]
        print(f"1-row round trip: median {median * 1e6:.0f} us")
        assert median < 0.002  # ~0.25 ms on 2 shared cores; generous for a loaded CI machine

    run(with_pool(body, min_workers=1))


def test_a_loader_that_cannot_be_imported_fails_load_with_its_reason() -> None:
    async def main() -> PoolStats:
        pool = WorkerPool("tests.serving.toy_predictors:missing", {}, min_workers=1)
        try:
            with pytest.raises(ModelFailed, match="cannot import the loader .*AttributeError"):
                await pool.load([V1])
        finally:
            await pool.close()
        return pool.stats()

    stats = run(main())
    assert stats.per_worker == () and multiprocessing.active_children() == []


def test_the_real_loader_serves_a_registered_model_and_its_errors_keep_their_class(
        local_store: Client, cancer: Fitted) -> None:
    import arsenale as ars
    from tests.registry.pyfunc_example import ThresholdModel

    ref = ModelRef(model="cancer", version=register("cancer", cancer))
    ars.register_model("threshold", ThresholdModel([1.0, 1.0], 1.5),
                       signature_from=pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]}))
    expected = predictor_from_client(local_store, ref).predict(cancer.X.iloc[:5])
    settings = get_settings()
    options = {"uri": settings.resolved_uri(), "artifacts": settings.resolved_artifacts(), "trusted": False}

    async def main() -> None:
        pool = WorkerPool("arsenale.serving.runtime:load_predictor", options, min_workers=1)
        try:
            await pool.load([ref])
            out = await pool.predict(ref.key, cancer.X.iloc[:5])
            np.testing.assert_array_equal(out["predictions"], expected["predictions"])
            np.testing.assert_allclose(out["probabilities"], expected["probabilities"])
            with pytest.raises(Forbidden, match="cannot load threshold/1"):  # stored code needs trust
                await pool.load([ModelRef(model="threshold", version=1)])
            with pytest.raises(NotFound):
                await pool.load([ModelRef(model="cancer", version=99)])
            assert (await pool.predict(ref.key, cancer.X.iloc[:5]))["predictions"].tolist() == \
                expected["predictions"].tolist()
        finally:
            await pool.close()

    run(main())


@pytest.mark.parametrize("kwargs", [
    {"loader": "no_function_here"}, {"min_workers": 0}, {"min_workers": 3, "max_workers": 2},
    {"start_method": "teleport"}, {"queue_timeout_s": 0},
])
def test_invalid_settings_are_refused_before_any_process_starts(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"loader": LOADER, **kwargs}
    with pytest.raises(InvalidInput):
        WorkerPool(arguments.pop("loader"), {}, **arguments)
    pool = WorkerPool(LOADER, {}, min_workers=1, max_workers=2)
    with pytest.raises(InvalidInput):
        pool.resize(3)
    assert multiprocessing.active_children() == []
