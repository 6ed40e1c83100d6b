"""Adaptive batching: many concurrent requests for one version become one model call.

A model call has a fixed cost (input checks, Python dispatch) that dwarfs the per-row cost for small
batches, so coalescing is where throughput under load comes from. It must not cost latency when the
server is quiet, hence the rule: an idle model takes a request at once; while a batch computes, new
requests queue and leave together as the next batch. Lingering to fill a batch happens only under load
(the previous batch was coalesced or another is still running), for at most a fraction of the observed
call time and never beyond `max_wait_ms`: waiting longer than the call itself would buy no throughput.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from arsenale.errors import ModelFailed
from arsenale.serving.executor import Executor

__all__ = ["AdaptiveBatcher"]

_MIN_LINGER_S = 0.0002  # below this a timer costs more than it can gather


def _concat(parts: Sequence[Any]) -> Any:
    """Default batch builder: arrays are stacked, DataFrames concatenated."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


class AdaptiveBatcher:
    """Coalesces concurrent `submit`s for one model version into batches of at most `max_batch` rows."""

    def __init__(self, executor: Executor, key: str, max_batch: int, max_wait_ms: float, *,
                 build: Callable[[Sequence[Any]], Any] = _concat, max_concurrent: int = 1,
                 linger_fraction: float = 0.25, on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_concurrent < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_concurrent must be ≥ 1 and max_wait_ms ≥ 0")
        self.executor = executor
        self.key = key
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.max_concurrent = max_concurrent
        self.linger_fraction = linger_fraction
        self.build = build
        self.on_batch = on_batch
        self.ewma_call_s = 0.0
        self.batches = 0
        self.last_size = 0
        self._queue: deque[tuple[Any, int, asyncio.Future[dict[str, Any]]]] = deque()
        self._queued_rows = 0
        self._running = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def linger_s(self) -> float:
        """How long the next batch may wait for more rows (0 when the model is idle)."""
        if self._running == 0 and self.last_size <= 1:
            return 0.0
        return min(self.max_wait_s, self.linger_fraction * self.ewma_call_s)

    async def submit(self, part: Any, rows: int) -> dict[str, Any]:
        """The model's outputs for this part's rows; raises what the batch's model call raised."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((part, rows, future))
        self._queued_rows += rows
        self._kick()
        return await future

    def _kick(self) -> None:
        if not self._scheduled and self._queue and self._running < self.max_concurrent:
            self._scheduled = True
            # After the callbacks already due: requests parsed in this loop turn join the same batch.
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._scheduled = False
        if not self._queue or self._running >= self.max_concurrent:
            return
        linger = self.linger_s if self._queued_rows < self.max_batch else 0.0
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._run(linger))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[Any, int, asyncio.Future[dict[str, Any]]]]:
        items = [self._queue.popleft()]
        rows = items[0][1]
        while self._queue and rows + self._queue[0][1] <= self.max_batch:
            item = self._queue.popleft()
            rows += item[1]
            items.append(item)
        self._queued_rows -= rows
        return items

    async def _run(self, linger: float) -> None:
        items: list[tuple[Any, int, asyncio.Future[dict[str, Any]]]] = []
        live: list[tuple[Any, int, asyncio.Future[dict[str, Any]]]] = []
        try:
            if linger >= _MIN_LINGER_S:
                await asyncio.sleep(linger)
            items = self._take()
            live = [it for it in items if not it[2].done()]  # a caller that went away costs no model time
            if not live:
                return
            total = sum(n for _, n, _ in live)
            self.batches += 1
            self.last_size = total
            if self.on_batch is not None:
                self.on_batch(total)
            frame = self.build([p for p, _, _ in live])
            start = time.perf_counter()
            out = await self.executor.predict(self.key, frame)
            elapsed = time.perf_counter() - start
            self.ewma_call_s = elapsed if self.batches == 1 else 0.8 * self.ewma_call_s + 0.2 * elapsed
            for name, values in out.items():
                if len(values) != total:
                    raise ModelFailed(f"{self.key} returned {len(values)} {name} for {total} rows")
            offset = 0
            for _, n, future in live:
                if not future.done():
                    future.set_result({name: values[offset:offset + n] for name, values in out.items()})
                offset += n
        except asyncio.CancelledError:
            for _, _, future in items:
                future.cancel()
            raise
        except ModelFailed as e:
            if len(live) > 1:  # one poisoned request must not fail the requests it was batched with
                await self._isolate(live)
            else:
                _fail(items, e)
        except Exception as e:  # the batch failed: exactly its requests get the error
            _fail(items, e)
        finally:
            self._running -= 1
            self._kick()

    async def _isolate(self, items: list[tuple[Any, int, asyncio.Future[dict[str, Any]]]]) -> None:
        """Re-run a failed batch one request at a time, so only the requests the model refuses fail."""
        for part, n, future in items:
            if future.done():
                continue
            try:
                out = await self.executor.predict(self.key, self.build([part]))
            except Exception as e:
                if not future.done():
                    future.set_exception(e)
            else:
                if not future.done():
                    future.set_result(out)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        while self._queue:
            self._queue.popleft()[2].cancel()


def _fail(items: list[tuple[Any, int, asyncio.Future[dict[str, Any]]]], error: Exception) -> None:
    for _, _, future in items:
        if not future.done():
            future.set_exception(error)
