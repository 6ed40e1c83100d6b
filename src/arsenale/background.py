"""The bookkeeping of a background sender: a queue drained by one worker thread, a count of unfinished work
that `flush` waits on, and a `close` that stops the worker without losing what a later call queues.

Registry webhooks and monitoring alerts both deliver this way: the worker loop (`_serve`: due times, retries
after the delay an attempt asks for, exit when idle) is here; what a queued job becomes, how one attempt is
made and what happens to what is left at a stop stay with each of them.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpx

STOP = object()
"""Put on the queue to end its worker."""

IDLE_EXIT_SECONDS = 30.0
"""An idle worker thread ends; the next job starts a new one."""


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

    # ---- the worker loop (subclasses provide the four hooks below) ----------------------------------------

    timeout: float

    def _expand(self, job: Any) -> Iterable[Any]:
        """The attempts a queued job becomes (one by default)."""
        return (job,)

    def _attempt(self, client: httpx.Client, item: Any) -> float | None:
        """Try once; the delay before the next try, or None when the item is done (delivered or failed)."""
        raise NotImplementedError

    def _done(self, item: Any) -> None:
        """An item is done (after `_attempt` returned None)."""

    def _abandon(self, items: list[Any]) -> None:
        """The worker was stopped with these items still waiting for a retry."""

    def _serve(self, jobs: queue.SimpleQueue[Any], user_agent: str) -> None:
        """The worker thread: attempt each job when it falls due, retry after the delay an attempt asks for,
        end on STOP or after `IDLE_EXIT_SECONDS` with nothing to do."""
        me = threading.current_thread()
        due: list[tuple[float, int, Any]] = []  # (monotonic due time, tie-break, item)
        order = itertools.count()
        with httpx.Client(timeout=self.timeout, follow_redirects=False,
                          headers={"User-Agent": user_agent}) as client:
            while True:
                wait = IDLE_EXIT_SECONDS if not due else max(0.0, due[0][0] - time.monotonic())
                try:
                    job = jobs.get(timeout=wait)
                except queue.Empty:
                    job = None
                if job is STOP:
                    if due:
                        self._abandon([item for _, _, item in due])
                    return
                if job is None and not due:
                    with self._lock:  # idle: end, unless a job slipped in (callers enqueue under this lock)
                        if jobs.empty():
                            if self._thread is me:
                                self._thread = None
                            return
                    continue
                if job is not None:
                    for item in self._expand(job):
                        heapq.heappush(due, (time.monotonic(), next(order), item))
                while due and due[0][0] <= time.monotonic():
                    _, _, item = heapq.heappop(due)
                    retry_in = self._attempt(client, item)
                    if retry_in is None:
                        self._done(item)
                    else:
                        heapq.heappush(due, (time.monotonic() + retry_in, next(order), item))
