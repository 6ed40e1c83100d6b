"""Model worker processes behind one asyncio server: the `Executor` for CPU-bound models.

    pool = WorkerPool("arsenale.serving.runtime:load_predictor",
                      {"uri": ..., "artifacts": ..., "trusted": False}, min_workers=2, max_workers=8)
    await pool.load([ModelRef(model="fraud", version=3)])
    outputs = await pool.predict("fraud/3", frame)
    pool.resize(4)                  # the autoscaler's lever
    await pool.close()

Why processes: a model's `predict` holds the GIL (or a C library's threads) for milliseconds; in the server's
own process it would stall parsing and batching for every other request, and a segfault in native code
would take the whole server down. Each worker is a process that imports the loader, builds one predictor
per model version and answers batches over a pipe.

Why one batch per worker at a time: the server has already batched rows, so a worker is never idle for
long, a crash costs exactly the batch that worker was computing, and the pool's own queue (not a pipe
buffer) holds the backlog, so a worker added by the autoscaler takes work at once and the queue length
is an honest load signal.

Why `add_reader` on the pipe and on `Process.sentinel` rather than a thread per worker: results and deaths
are noticed inside the event loop with no thread hop (a 1-row batch makes the round trip in about 0.2 ms,
within a few tens of microseconds of a bare blocking ping-pong over the same pipe), and a worker that dies
without a word (SIGKILL, OOM killer, `os._exit`) is seen the moment the kernel closes its end. This needs
a selector event loop (asyncio's default on Linux and macOS, and uvloop), and every method must be called
from the loop that first called `load`.

Why `in_flight` counts queued batches too: to the caller (and to the autoscaler) a batch waiting for a
free worker is as outstanding as one being computed; `stats()` tells the two apart.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import itertools
import multiprocessing
import multiprocessing.util  # registers its exit hook (join every child) before any pool registers its own
import os
import pickle
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from typing import Any

from arsenale.errors import ArsenaleError, InvalidInput, ModelFailed, NotFound, WorkerCrashed
from arsenale.serving.models import ModelRef

__all__ = ["PoolStats", "WorkerInfo", "WorkerPool"]

_EWMA_ALPHA = 0.2
_STOP_GRACE_S = 5.0
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class WorkerInfo:
    pid: int | None
    state: str  # starting | ready | draining | stopping
    busy: bool
    batches: int


@dataclass(frozen=True)
class PoolStats:
    """One reading of the pool, for the autoscaler, metrics and tests."""

    target: int  # workers the pool is converging to
    workers: int  # ready, taking batches
    starting: int  # loading their models
    draining: int  # finishing their last batch before they exit
    in_flight: int  # batches being computed
    queued: int  # accepted batches waiting for a free worker
    ewma_latency_ms: float | None  # dispatch-to-answer time of recent batches
    completed: int  # batches answered (outputs or ModelFailed) since the pool started
    crashes: int  # workers that died without being asked to
    restarts: int  # replacement workers started after a crash
    outstanding_seconds: float  # time integral of (in_flight + queued): its slope is the mean load
    per_worker: tuple[WorkerInfo, ...] = field(default_factory=tuple)


# ---- the child process --------------------------------------------------------------------------------


def _describe(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data: the parent raises Arsenale errors as themselves, others as ModelFailed."""
    body: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ArsenaleError):
        body.update(exc.to_dict())
    return body


def _import_loader(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


def _serve(conn: Any, loader: str, loader_kwargs: dict[str, Any], refs: list[dict[str, Any]]) -> None:
    """A worker's whole life: load, then answer messages in order until told to stop or the parent is gone."""
    # Ctrl-C in the server's terminal reaches the whole process group; the parent decides when workers stop.
    # A forked worker also inherits the server's Python-level SIGTERM handler and its loop's wakeup fd:
    # neither means anything here, and the handler would keep SIGTERM from ending the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    try:
        build = _import_loader(loader)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides what to do
        conn.send(("fatal", _describe(exc)))
        return
    predictors: dict[str, Any] = {}

    def load(batch: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        errors: dict[str, dict[str, Any]] = {}
        for data in batch:
            ref = ModelRef(**data)
            if ref.key not in predictors:
                try:
                    predictors[ref.key] = build(ref=ref, **loader_kwargs)
                except Exception as exc:  # noqa: BLE001 - a version that cannot load is reported, not fatal
                    errors[ref.key] = _describe(exc)
        return errors

    try:
        conn.send(("ready", load(refs)))
        while True:
            data = conn.recv_bytes()
            try:
                message = pickle.loads(data)
            except Exception as exc:  # noqa: BLE001 - a frame this process cannot rebuild fails its batch only
                conn.send(("failed", None, _describe(exc)))
                continue
            kind = message[0]
            if kind == "predict":
                _, batch_id, key, frame = message
                try:
                    reply: tuple[Any, ...] = ("result", batch_id, predictors[key].predict(frame))
                    payload = ForkingPickler.dumps(reply)
                except Exception as exc:  # noqa: BLE001 - the model's failure, not the worker's
                    if isinstance(exc, KeyError) and key not in predictors:
                        exc = NotFound(f"model version {key} is not loaded in this worker")
                    payload = ForkingPickler.dumps(("failed", batch_id, _describe(exc)))
                conn.send_bytes(payload)
            elif kind == "load":
                conn.send(("loaded", message[1], load(message[2])))
            elif kind == "unload":
                for key in message[1]:
                    predictors.pop(key, None)
            elif kind == "stop":
                return
    except (EOFError, OSError):  # the parent is gone: nobody is waiting for answers
        return


# ---- the parent side ----------------------------------------------------------------------------------


def _error_from(body: dict[str, Any], prefix: str = "") -> ArsenaleError:
    if "error_code" in body:
        error = ArsenaleError.from_dict(body)
        if prefix:
            error.message = f"{prefix}{error.message}"
            error.args = (error.message,)
        return error
    return ModelFailed(f"{prefix}{body['type']}: {body['message']}")


class _Batch:
    __slots__ = ("frame", "future", "id", "key", "sent_at", "state", "timer", "worker")

    def __init__(self, batch_id: int, key: str, frame: Any, future: asyncio.Future[dict[str, Any]]) -> None:
        self.id = batch_id
        self.key = key
        self.frame = frame
        self.future = future
        self.state = "queued"  # queued | sent | gone
        self.worker: _Worker | None = None
        self.sent_at = 0.0
        self.timer: asyncio.TimerHandle | None = None


class _Worker:
    __slots__ = ("batch", "batches", "conn", "control", "fatal", "proc", "ready", "started_at", "state")

    def __init__(self, proc: Any, conn: Any, ready: asyncio.Future[None]) -> None:
        self.proc = proc
        self.conn = conn
        self.state = "starting"  # starting | ready | draining | stopping | dead
        self.batch: _Batch | None = None
        self.control: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ready = ready
        self.batches = 0
        self.fatal: ArsenaleError | None = None
        self.started_at = time.monotonic()


class WorkerPool:
    """Model worker processes fed batches by the server's event loop; see the module docstring for why.

    `min_workers`/`max_workers` bound `resize` (the pool starts at `min_workers`); `queue_timeout_s` is how
    long a batch may wait for a free worker (when every worker is busy or restarting) before it is refused
    with WorkerCrashed, so that a client retries elsewhere instead of hanging.
    """

    def __init__(self, loader: str, loader_kwargs: dict[str, Any], *, min_workers: int = 1,
                 max_workers: int | None = None, start_method: str = "spawn",
                 queue_timeout_s: float = 30.0) -> None:
        module_name, sep, attr = loader.partition(":") if isinstance(loader, str) else ("", "", "")
        if not (module_name and sep and attr):
            raise InvalidInput(f"a loader is 'module:function', got {loader!r}", field="loader")
        if not isinstance(min_workers, int) or min_workers < 1:
            raise InvalidInput(f"min_workers must be a positive integer, got {min_workers!r}",
                               field="min_workers")
        if max_workers is None:
            max_workers = max(min_workers, os.cpu_count() or 1)
        if not isinstance(max_workers, int) or max_workers < min_workers:
            raise InvalidInput(f"max_workers must be an integer >= min_workers ({min_workers}), "
                               f"got {max_workers!r}", field="max_workers")
        if start_method not in multiprocessing.get_all_start_methods():
            raise InvalidInput(f"start_method must be one of {multiprocessing.get_all_start_methods()}, "
                               f"got {start_method!r}", field="start_method")
        if queue_timeout_s <= 0:
            raise InvalidInput("queue_timeout_s must be positive", field="queue_timeout_s")
        self.loader = loader
        self.loader_kwargs = dict(loader_kwargs)
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.start_method = start_method
        self.queue_timeout_s = queue_timeout_s
        self._ctx = multiprocessing.get_context(start_method)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._target = min_workers
        self._workers: list[_Worker] = []  # every process not yet reaped, dead ones included
        self._idle: deque[_Worker] = deque()  # ready and free, least recently used first
        self._queue: deque[_Batch] = deque()
        self._refs: dict[str, ModelRef] = {}  # loaded (or being loaded) everywhere
        self._retiring: set[str] = set()  # unloaded, waiting for their last accepted batches
        self._waiting: dict[str, int] = {}  # accepted, unanswered batches per version
        self._ids = itertools.count(1)
        self._worker_ids = itertools.count(1)
        self._queued = 0
        self._busy = 0
        self._area = 0.0
        self._area_t = time.monotonic()
        self._ewma_s: float | None = None
        self._completed = 0
        self._crashes = 0
        self._restarts = 0
        self._start_failures = 0
        self._respawn: asyncio.TimerHandle | None = None
        self._closing = False
        self._atexit: Callable[[], None] | None = None
        self._last_error: ArsenaleError | None = None

    # ---- Executor -------------------------------------------------------------------------------------

    async def load(self, refs: list[ModelRef]) -> None:
        """Load versions in every worker; a version that fails anywhere is unloaded everywhere and raised."""
        self._start()
        wanted: dict[str, ModelRef] = {}
        for ref in refs:
            self._retiring.discard(ref.key)
            if ref.key not in self._refs:
                wanted[ref.key] = ModelRef(model=ref.model, version=ref.version)
        if not wanted:
            await self._any_ready()
            return
        self._refs.update(wanted)  # workers started from now on load these too
        try:
            payload = [r.model_dump() for r in wanted.values()]
            results = await asyncio.gather(*(self._control(w, "load", payload) for w in self._live()),
                                           return_exceptions=True)
            failures: dict[str, ArsenaleError] = {}
            crashed: WorkerCrashed | None = None
            answered = False
            for result in results:
                if isinstance(result, WorkerCrashed):
                    crashed = result  # its replacement loads every version in self._refs
                    continue
                if isinstance(result, BaseException):
                    raise result
                answered = True
                for key, body in result.items():
                    failures.setdefault(key, _error_from(body, f"cannot load {key}: "))
            if failures:
                raise next(iter(failures.values()))
            if not answered:
                raise crashed or WorkerCrashed("no model worker could start; retry")
        except BaseException:
            for key in wanted:
                self._refs.pop(key, None)
            self._broadcast(("unload", list(wanted)))
            raise

    def unload(self, keys: list[str]) -> None:
        """Forget versions; batches already accepted for them are answered before the workers drop them."""
        for key in keys:
            if key in self._refs:
                self._retiring.add(key)
                self._retire_if_idle(key)

    async def predict(self, key: str, frame: Any) -> dict[str, Any]:
        if self._closing:
            raise WorkerCrashed("the model worker pool is shutting down")
        if key not in self._refs or key in self._retiring:
            raise NotFound(f"model version {key} is not loaded", field="model")
        loop = self._require_loop()
        batch = _Batch(next(self._ids), key, frame, loop.create_future())
        batch.future.add_done_callback(lambda _f: self._settled(batch))
        self._waiting[key] = self._waiting.get(key, 0) + 1
        self._account()
        self._queued += 1
        self._queue.append(batch)
        self._pump()
        if batch.state == "queued":
            batch.timer = loop.call_later(self.queue_timeout_s, self._expire, batch)
        try:
            return await batch.future
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
                self._retire_if_idle(key)

    @property
    def in_flight(self) -> int:
        """Batches accepted and not yet answered: those being computed plus those waiting for a worker."""
        return self._busy + self._queued

    async def close(self) -> None:
        """Let accepted batches finish (up to a grace period), stop every worker, reap every process."""
        self._closing = True
        if self._respawn is not None:
            self._respawn.cancel()
        deadline = time.monotonic() + _STOP_GRACE_S
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._target = 0
        for worker in list(self._workers):
            if worker.state == "starting":
                self._drain(worker)
            elif worker.state in ("ready", "draining"):
                self._stop(worker)
        deadline = time.monotonic() + _STOP_GRACE_S
        while any(w.proc.exitcode is None for w in self._workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for worker in list(self._workers):
            self._lost(worker, "was stopped as the pool closed")
            self._reap(worker)
        while self._queue:
            batch = self._queue.popleft()
            if not batch.future.done():
                batch.future.set_exception(WorkerCrashed("the model worker pool closed before the batch ran"))
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None

    # ---- scaling --------------------------------------------------------------------------------------

    def resize(self, n: int) -> None:
        """Converge to `n` workers: start new ones at once, stop surplus ones after their current batch."""
        if not isinstance(n, int) or not self.min_workers <= n <= self.max_workers:
            raise InvalidInput(f"a pool size is between {self.min_workers} and {self.max_workers}, got {n!r}",
                               field="workers")
        self._target = n
        if self._loop is not None and not self._closing:
            self._reconcile()

    def stats(self) -> PoolStats:
        self._account()
        workers = list(self._workers)
        states = [w.state for w in workers]
        return PoolStats(
            target=self._target, workers=states.count("ready"), starting=states.count("starting"),
            draining=states.count("draining") + states.count("stopping"), in_flight=self._busy,
            queued=self._queued, ewma_latency_ms=None if self._ewma_s is None else self._ewma_s * 1000,
            completed=self._completed, crashes=self._crashes, restarts=self._restarts,
            outstanding_seconds=self._area,
            per_worker=tuple(WorkerInfo(w.proc.pid, w.state, w.batch is not None, w.batches)
                             for w in workers if w.state != "dead"))

    # ---- workers --------------------------------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise InvalidInput("load() a model version before predicting", field="model")
        return self._loop

    def _start(self) -> None:
        if self._closing:
            raise WorkerCrashed("the model worker pool is shutting down")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            workers = self._workers

            # At interpreter exit without close(): hooks run last-registered first, so this one runs before
            # multiprocessing's, which would otherwise wait forever for workers blocked reading their pipes.
            def kill_all() -> None:
                for w in workers:
                    if w.proc.exitcode is None:
                        w.proc.kill()
                    w.proc.join(1)

            self._atexit = kill_all
            atexit.register(kill_all)
            self._reconcile()

    def _live(self) -> list[_Worker]:
        return [w for w in self._workers if w.state in ("starting", "ready", "draining")]

    def _reconcile(self) -> int:
        """Start or drain workers towards the target; returns how many were started."""
        live = [w for w in self._workers if w.state in ("starting", "ready")]
        missing = self._target - len(live)
        for worker in self._workers:  # a draining worker still alive is the cheapest new worker
            if missing > 0 and worker.state == "draining":
                worker.state = "ready"
                missing -= 1
        if missing > 0 and self._respawn is None:
            for started in range(missing):
                try:
                    self._spawn()
                except OSError as exc:  # out of processes or file descriptors: try again later
                    self._last_error = WorkerCrashed(f"cannot start a model worker: {exc}")
                    self._retry_later()
                    return started
            return missing
        if missing < 0:
            # Surplus: workers still loading first, then idle ones, the newest first (the oldest have proven
            # they load and serve).
            surplus = sorted(live, key=lambda w: (w.state != "starting", w.batch is not None, -w.started_at))
            for worker in surplus[:-missing]:
                self._drain(worker)
        return 0

    def _spawn(self) -> None:
        assert self._loop is not None
        parent, child = self._ctx.Pipe(duplex=True)
        refs = [r.model_dump() for r in self._refs.values()]
        name = f"arsenale-model-worker-{next(self._worker_ids)}"
        proc = self._ctx.Process(  # type: ignore[attr-defined]
            target=_serve, args=(child, self.loader, self.loader_kwargs, refs), name=name, daemon=False)
        try:
            proc.start()
        finally:
            child.close()
        worker = _Worker(proc, parent, self._loop.create_future())
        worker.ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody may await it
        self._workers.append(worker)
        self._loop.add_reader(parent.fileno(), self._on_message, worker)
        self._loop.add_reader(proc.sentinel, self._on_exit, worker)

    def _drain(self, worker: _Worker) -> None:
        if worker.state == "starting":  # it holds nothing yet: no reason to wait for its models to load
            self._stop(worker)
            worker.proc.kill()
        elif worker.batch is None:
            self._stop(worker)
        else:
            worker.state = "draining"  # _finish stops it after this batch
        if worker in self._idle:
            self._idle.remove(worker)

    def _stop(self, worker: _Worker) -> None:
        worker.state = "stopping"
        try:
            worker.conn.send(("stop",))
        except (OSError, ValueError):
            pass  # already gone: its sentinel says so
        if worker in self._idle:
            self._idle.remove(worker)

    async def _any_ready(self) -> None:
        """Wait for one worker to take work, so that a loaded pool is a serving pool."""
        while not any(w.state == "ready" for w in self._workers):
            starting = [w.ready for w in self._live() if not w.ready.done()]
            if not starting:
                raise self._last_error or WorkerCrashed("no model worker could start; retry")
            await asyncio.wait(starting, return_when=asyncio.FIRST_COMPLETED)

    def _control(self, worker: _Worker, kind: str, payload: Any) -> asyncio.Future[dict[str, Any]]:
        assert self._loop is not None
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        request = next(self._ids)
        worker.control[request] = future
        try:
            worker.conn.send((kind, request, payload))
        except (OSError, ValueError):
            self._lost(worker, "lost its connection")
        return future

    def _broadcast(self, message: tuple[Any, ...]) -> None:
        for worker in self._live():
            try:
                worker.conn.send(message)
            except (OSError, ValueError):
                self._lost(worker, "lost its connection")

    def _retire_if_idle(self, key: str) -> None:
        if key in self._retiring and not self._waiting.get(key):
            self._retiring.discard(key)
            self._refs.pop(key, None)
            self._broadcast(("unload", [key]))

    # ---- batches --------------------------------------------------------------------------------------

    def _account(self) -> None:
        now = time.monotonic()
        self._area += (self._busy + self._queued) * (now - self._area_t)
        self._area_t = now

    def _pump(self) -> None:
        while self._queue and self._idle:
            batch = self._queue[0]
            if batch.state != "queued" or batch.future.done():
                self._queue.popleft()
                self._settled(batch)
                continue
            worker = self._idle.popleft()
            try:
                payload = ForkingPickler.dumps(("predict", batch.id, batch.key, batch.frame))
            except Exception as exc:  # noqa: BLE001 - a frame that cannot cross a process boundary
                self._idle.appendleft(worker)
                self._queue.popleft()
                batch.future.set_exception(ArsenaleError(f"the batch cannot reach a model worker: {exc}"))
                self._settled(batch)
                continue
            try:
                worker.conn.send_bytes(payload)
            except (OSError, ValueError):
                self._lost(worker, "lost its connection")  # the batch stays first in line for another worker
                continue
            self._queue.popleft()
            self._account()
            self._queued -= 1
            self._busy += 1
            if batch.timer is not None:
                batch.timer.cancel()
            batch.state, batch.worker, batch.sent_at = "sent", worker, time.monotonic()
            worker.batch = batch

    def _settled(self, batch: _Batch) -> None:
        """Runs whenever a batch's future ends (answered, failed, expired or cancelled by the caller)."""
        if batch.state == "queued":  # it never reached a worker
            self._account()
            batch.state = "gone"
            self._queued -= 1
            if batch.timer is not None:
                batch.timer.cancel()

    def _expire(self, batch: _Batch) -> None:
        if not batch.future.done():
            batch.future.set_exception(WorkerCrashed(
                f"no model worker was free within {self.queue_timeout_s:g} s; retry"))

    def _finish(self, worker: _Worker) -> _Batch | None:
        batch = worker.batch
        if batch is None:
            return None
        self._account()
        worker.batch = None
        self._busy -= 1
        if worker.state == "ready":
            self._idle.append(worker)
        elif worker.state == "draining":
            self._stop(worker)
        return batch

    # ---- messages and deaths --------------------------------------------------------------------------

    def _on_message(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._on_exit(worker)
            return
        self._handle(worker, message)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind in ("result", "failed"):
            batch = worker.batch
            if batch is None or message[1] not in (None, batch.id):  # None: its frame could not be read
                return
            self._finish(worker)
            worker.batches += 1
            self._completed += 1
            took = time.monotonic() - batch.sent_at
            ewma = self._ewma_s
            self._ewma_s = took if ewma is None else ewma + _EWMA_ALPHA * (took - ewma)
            if not batch.future.done():
                if kind == "result":
                    batch.future.set_result(message[2])
                else:
                    batch.future.set_exception(_error_from(message[2]))
            self._pump()
        elif kind == "loaded":
            future = worker.control.pop(message[1], None)
            if future is not None and not future.done():
                future.set_result(message[2])
        elif kind == "ready":
            self._on_ready(worker, message[1])
        elif kind == "fatal":
            worker.fatal = _error_from(message[1], f"cannot import the loader {self.loader}: ")

    def _on_ready(self, worker: _Worker, errors: dict[str, dict[str, Any]]) -> None:
        if errors:  # it cannot serve every version: it must not take work, and a later try may succeed
            key, body = next(iter(errors.items()))
            worker.fatal = _error_from(body, f"cannot load {key}: ")
            self._stop(worker)
            return
        self._start_failures = 0
        if worker.state == "starting":
            worker.state = "ready"
            self._idle.append(worker)
        if not worker.ready.done():
            worker.ready.set_result(None)
        self._pump()

    def _on_exit(self, worker: _Worker) -> None:
        """Its sentinel fired or its pipe closed: read what it said last, then account for its death."""
        if worker.state != "dead":
            try:
                while worker.conn.poll():
                    self._handle(worker, worker.conn.recv())
            except (EOFError, OSError):
                pass
            # A process closes its files a moment before it can be waited for: wait that moment, so the
            # error names the exit code (a signal, an OOM kill) rather than a closed pipe.
            worker.proc.join(0.5)
            self._lost(worker, "closed its pipe")
        self._reap(worker)

    def _lost(self, worker: _Worker, why: str) -> None:
        """The worker can no longer answer: fail what it held, and replace it unless it was meant to stop."""
        if worker.state == "dead":
            return
        was = worker.state
        worker.state = "dead"
        assert self._loop is not None
        self._loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        if worker in self._idle:
            self._idle.remove(worker)
        code = worker.proc.exitcode
        if code is not None:
            why = f"exited with code {code}"
        crashed = WorkerCrashed(f"model worker {worker.proc.pid} {why} before answering; retry")
        batch = self._finish(worker)
        if batch is not None and not batch.future.done():
            batch.future.set_exception(crashed)
        failure = worker.fatal or crashed
        self._last_error = failure
        for future in worker.control.values():
            if not future.done():
                future.set_exception(failure)
        worker.control.clear()
        if not worker.ready.done():
            worker.ready.set_exception(failure)
        if code is None and was != "stopping":
            worker.proc.kill()  # it closed its pipe but lives on: it must not linger; the sentinel reaps it
        if self._closing or (was == "stopping" and worker.fatal is None):
            return  # it was asked to stop
        if worker.fatal is None:
            self._crashes += 1
        if worker.fatal is not None or was == "starting":
            self._retry_later()  # what failed while loading would fail again at once
        else:
            self._restarts += self._reconcile()

    def _retry_later(self) -> None:
        """A worker that fails while loading would fail again at once: wait, longer after each failure."""
        assert self._loop is not None
        self._start_failures += 1
        if self._respawn is None:
            delay = min(_MAX_BACKOFF_S, 0.25 * 2 ** (self._start_failures - 1))

            def again() -> None:
                self._respawn = None
                if not self._closing:
                    self._restarts += self._reconcile()

            self._respawn = self._loop.call_later(delay, again)

    def _reap(self, worker: _Worker) -> None:
        assert self._loop is not None
        self._loop.remove_reader(worker.proc.sentinel)
        worker.proc.join(1)
        if worker.proc.exitcode is None:
            worker.proc.kill()
            worker.proc.join(5)
        worker.proc.close()
        if worker in self._workers:
            self._workers.remove(worker)
