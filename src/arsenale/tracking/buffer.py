"""Buffered metric logging: `log_metric` appends to memory; a background thread writes batches.

A flush happens when the buffer reaches a size threshold, after a time
threshold, at run end and at interpreter exit. A failed flush keeps its points
and re-raises on the next call, so nothing is dropped silently. When writes fall
behind, the logging thread flushes itself (back-pressure) instead of growing
without bound.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence

from arsenale.tracking.models import MetricPoint

_LIVE: "weakref.WeakSet[MetricBuffer]" = weakref.WeakSet()


class MetricBuffer:
    def __init__(self, sink: Callable[[Sequence[MetricPoint]], None], flush_points: int,
                 flush_seconds: float) -> None:
        self._sink = sink
        self._flush_points = flush_points
        self._hard_limit = flush_points * 8
        self._flush_seconds = flush_seconds
        self._reset_state()
        _LIVE.add(self)

    def _reset_state(self) -> None:
        self._pending: list[MetricPoint] = []
        self._lock = threading.Lock()          # guards _pending
        self._write_lock = threading.Lock()    # one writer at a time keeps points in order
        self._wake = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def add(self, point: MetricPoint) -> None:
        if self._error is not None:
            self._raise_error()
        with self._lock:
            self._pending.append(point)
            n = len(self._pending)
        if n >= self._flush_points:
            if n >= self._hard_limit:
                self.flush()
            else:
                self._ensure_thread()
                self._wake.set()
        elif self._thread is None:
            self._ensure_thread()

    def add_many(self, points: Sequence[MetricPoint]) -> None:
        if self._error is not None:
            self._raise_error()
        with self._lock:
            self._pending.extend(points)
            n = len(self._pending)
        if n >= self._hard_limit:
            self.flush()
        else:
            self._ensure_thread()
            if n >= self._flush_points:
                self._wake.set()

    def _raise_error(self) -> None:
        err, self._error = self._error, None
        assert err is not None
        raise err

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._loop, name="arsenale-metric-flush", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except BaseException as exc:  # kept and re-raised in the user's thread
                self._error = exc

    def flush(self) -> int:
        """Write every pending point; on failure they stay pending and the error propagates."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                self._sink(batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch
                raise
            return len(batch)

    def close(self) -> None:
        """Flush and stop the background thread; raises if the final flush fails."""
        self._closed = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()
        if self._error is not None:
            self._raise_error()

    @property
    def pending(self) -> int:
        return len(self._pending)


def _after_fork_in_child() -> None:
    # Points buffered before the fork belong to the parent, which flushes them;
    # the child starts empty so no point is written twice.
    for buf in list(_LIVE):
        buf._reset_state()


def flush_all() -> None:
    for buf in list(_LIVE):
        try:
            buf.close()
        except Exception:  # at exit there is no one left to tell but stderr
            import traceback

            traceback.print_exc()


os.register_at_fork(after_in_child=_after_fork_in_child)
