"""The bookkeeping of a background sender: a queue drained by one worker thread, a count of unfinished work
that `flush` waits on, and a `close` that stops the worker without losing what a later call queues.

Registry webhooks and monitoring alerts both deliver this way; the delivery itself (what to send, how to retry)
stays with each of them.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

STOP = object()
"""Put on the queue to end its worker."""


class QueueWorker:
    """State and lifecycle of one worker thread; subclasses start `self._thread` on `self._queue`."""

    def _init_worker_state(self) -> None:
        # Rebuilt in a forked child: locks held by parent threads at fork time would never be released there.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._unfinished = 0  # queued or in-flight work not yet delivered or failed
        self._pid = os.getpid()

    def _join_timeout(self, timeout: float) -> float:
        return max(0.1, timeout)

    def _finished(self, n: int = 1) -> None:
        with self._idle:
            self._unfinished = max(0, self._unfinished - n)
            if self._unfinished == 0:
                self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued is delivered or has failed; False if `timeout` ran out first."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._idle:
            while self._unfinished > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to `timeout`, then stop the worker (a later call starts a new one on a fresh queue)."""
        drained = self.flush(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(STOP)
                self._queue = queue.SimpleQueue()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._join_timeout(timeout))
        return drained
