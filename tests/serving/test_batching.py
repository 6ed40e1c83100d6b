"""Adaptive batching: no added wait when idle, coalescing under load, failures confined to their requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from arsenale.errors import ModelFailed
from arsenale.serving.batching import AdaptiveBatcher
from arsenale.serving.models import ModelRef


class FakeExecutor:
    """Doubles its input; takes `delay_s` per call; refuses any batch holding a negative value."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.called_at: list[float] = []
        self._in_flight = 0

    async def load(self, refs: list[ModelRef]) -> None:
        return None

    def unload(self, keys: list[str]) -> None:
        return None

    async def predict(self, key: str, frame: Any) -> dict[str, Any]:
        self.called_at.append(time.perf_counter())
        self.calls.append(len(frame))
        self._in_flight += 1
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if (frame < 0).any():
                raise ModelFailed("negative input")
            return {"predictions": frame * 2}
        finally:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def close(self) -> None:
        return None


def test_an_idle_model_takes_a_request_at_once() -> None:
    async def scenario() -> list[float]:
        ex = FakeExecutor()
        batcher = AdaptiveBatcher(ex, "m/1", max_batch=64, max_wait_ms=50)
        waits = []
        for i in range(50):
            assert batcher.linger_s == 0.0
            start = time.perf_counter()
            out = await batcher.submit(np.array([float(i)]), 1)
            waits.append(ex.called_at[-1] - start)
            assert out["predictions"].tolist() == [2.0 * i]
        assert ex.calls == [1] * 50
        return waits

    waits = asyncio.run(scenario())
    assert sorted(waits)[len(waits) // 2] < 0.005  # one loop turn, far below max_wait_ms=50


def test_concurrent_requests_are_coalesced_and_split_back() -> None:
    async def scenario() -> tuple[FakeExecutor, list[dict[str, Any]]]:
        ex = FakeExecutor(delay_s=0.02)
        sizes: list[int] = []
        batcher = AdaptiveBatcher(ex, "m/1", max_batch=16, max_wait_ms=2, on_batch=sizes.append)
        parts = [np.arange(i % 3 + 1, dtype=float) + 10 * i for i in range(60)]
        outs = await asyncio.gather(*(batcher.submit(p, len(p)) for p in parts))
        for p, out in zip(parts, outs):
            np.testing.assert_array_equal(out["predictions"], p * 2)
        assert sizes == ex.calls
        return ex, outs

    ex, _ = asyncio.run(scenario())
    assert max(ex.calls) > 1 and max(ex.calls) <= 16
    assert len(ex.calls) < 60 / 2


def test_a_failing_request_fails_alone() -> None:
    async def scenario() -> list[Any]:
        ex = FakeExecutor(delay_s=0.005)
        batcher = AdaptiveBatcher(ex, "m/1", max_batch=64, max_wait_ms=1)
        parts = [np.array([float(i)]) for i in range(20)]
        parts[7] = np.array([-1.0])
        return await asyncio.gather(*(batcher.submit(p, 1) for p in parts), return_exceptions=True)

    results = asyncio.run(scenario())
    assert isinstance(results[7], ModelFailed)
    assert all(isinstance(r, dict) for i, r in enumerate(results) if i != 7)


def test_a_request_larger_than_max_batch_goes_alone() -> None:
    async def scenario() -> FakeExecutor:
        ex = FakeExecutor(delay_s=0.005)
        batcher = AdaptiveBatcher(ex, "m/1", max_batch=4, max_wait_ms=0)
        small = (batcher.submit(np.ones(1), 1) for _ in range(6))
        await asyncio.gather(batcher.submit(np.zeros(10), 10), *small)
        return ex

    ex = asyncio.run(scenario())
    assert 10 in ex.calls and all(c <= 4 for c in ex.calls if c != 10)
    assert sum(ex.calls) == 16


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        AdaptiveBatcher(FakeExecutor(), "m/1", max_batch=0, max_wait_ms=1)
