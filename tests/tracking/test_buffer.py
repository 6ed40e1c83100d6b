from __future__ import annotations

from collections.abc import Sequence

import pytest

from arsenale.tracking.buffer import MetricBuffer
from arsenale.tracking.models import MetricPoint


def test_failed_flush_keeps_points_and_reports() -> None:
    written: list[MetricPoint] = []
    fail = {"on": True}

    def sink(batch: Sequence[MetricPoint]) -> None:
        if fail["on"]:
            raise ConnectionError("database away")
        written.extend(batch)

    buf = MetricBuffer(sink, flush_points=10, flush_seconds=60)
    for i in range(5):
        buf.add(MetricPoint("m", float(i), i, 0))
    with pytest.raises(ConnectionError):
        buf.flush()
    assert buf.pending == 5
    fail["on"] = False
    buf.close()
    assert [p.step for p in written] == [0, 1, 2, 3, 4]


def test_size_threshold_applies_back_pressure() -> None:
    batches: list[int] = []
    buf = MetricBuffer(lambda b: batches.append(len(b)), flush_points=100, flush_seconds=60)
    for i in range(5000):
        buf.add(MetricPoint("m", 0.0, i, 0))
    buf.close()
    assert sum(batches) == 5000 and max(batches) <= 800
