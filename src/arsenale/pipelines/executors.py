"""Executors: run one step attempt somewhere and hand back a `concurrent.futures.Future`.

    executor = get_executor("local")            # or "ray", "ray://host:10001"
    future = executor.submit(task)              # Future[TaskResult]
    executor.shutdown()

The one interface is `submit(task) -> Future` (`run_many` is built on it). A `Task` is small and plain: the
step as `module:qualname` (workers import it, so it must be importable: module level, on sys.path), the
literal params, and the *digests* of its inputs in the artifact store; the worker reads its inputs from the
store, calls the function, writes the output there and returns its digest. Large values never travel
through the executor, and a Ray cluster only needs to reach the same artifact store (an fsspec URL).

A task that raises comes back as a `TaskResult` with `error` set (the future itself only fails when the
worker could not run it). A task past its `timeout` is killed: the local executor SIGKILLs the worker
process and starts a fresh one (its clock starts when the function is called, after the worker has started and
read the inputs); Ray force-cancels the task, which kills its worker (its clock starts at submission).

| executor       | where                                                        |
| -------------- | ------------------------------------------------------------ |
| LocalExecutor  | a pool of worker processes (spawn by default), one per task at a time |
| RayExecutor    | `ray.remote` tasks on a local Ray or `ray.init(address)`     |
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from arsenale.errors import BackendUnavailable, InvalidInput

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "Task", "TaskResult", "get_executor", "run_task"]


@dataclass(frozen=True)
class InputBlob:
    digest: str
    format: str
    trusted: bool = False  # may be unpickled (the producing step declared trusted-pickle)


@dataclass(frozen=True)
class Task:
    node: str
    step_ref: str  # module:qualname
    params: dict[str, Any]
    inputs: dict[str, InputBlob]
    artifacts: str  # root of the artifact store (a path or fsspec URL)
    serializer: str = "safe"
    timeout: float | None = None
    attempt: int = 1


@dataclass
class TaskResult:
    node: str
    attempt: int
    started: float  # epoch seconds, as seen by the worker
    ended: float
    digest: str | None = None
    format: str | None = None
    size: int | None = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @property
    def ok(self) -> bool:
        return self.error is None


class StepTimeout(Exception):
    """An attempt ran past its step's timeout and was killed."""


class WorkerDied(Exception):
    """The process running an attempt exited without answering."""


def load_step(ref: str) -> Any:
    """The `Step` a `module:qualname` reference names, imported fresh in a worker when needed."""
    from arsenale.pipelines.steps import Step

    module, _, qualname = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot import step {ref}: {exc}; steps must be defined at module level in an "
                           "importable module", field="step") from exc
    if not isinstance(obj, Step):
        raise InvalidInput(f"{ref} is not a @step", field="step")
    return obj


def run_task(task: Task, on_start: Any = None) -> TaskResult:
    """Run one attempt of one step in this process: read inputs, call, store the output. `on_start()` is
    called just before the step's function (the local executor's timeout clock starts there)."""
    from arsenale.pipelines.cache import deserialize, serialize
    from arsenale.store.artifacts import open_artifact_store

    started = time.time()
    try:
        step = load_step(task.step_ref)
        blobs = open_artifact_store(task.artifacts)
        kwargs = dict(task.params)
        for arg, ref in task.inputs.items():
            kwargs[arg] = deserialize(blobs.get_bytes(ref.digest), ref.format, trusted=ref.trusted)
        if on_start is not None:
            on_start()
        value = step.func(**kwargs)
        data, fmt = serialize(value, task.serializer)
        digest, size = blobs.put_bytes(data)
        return TaskResult(task.node, task.attempt, started, time.time(), digest, fmt, size)
    except Exception as exc:  # noqa: BLE001 - the step's own failure: reported, never raised through the executor
        return TaskResult(task.node, task.attempt, started, time.time(), error=f"{type(exc).__name__}: {exc}",
                          error_type=type(exc).__name__, traceback=traceback.format_exc(limit=20))


class Executor(Protocol):
    """Where step attempts run."""

    name: str

    def submit(self, task: Task) -> Future[TaskResult]: ...

    def shutdown(self) -> None: ...


def run_many(executor: Executor, tasks: Iterable[Task]) -> list[TaskResult]:
    """Submit every task at once and wait for all (results in task order)."""
    futures = [executor.submit(t) for t in tasks]
    return [f.result() for f in futures]


# ---- local processes ------------------------------------------------------------------------------------


def _worker_main(conn: Any) -> None:
    """A worker process: run tasks from the pipe until it closes."""
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        conn.send(("result", run_task(task, on_start=lambda: conn.send(("started", time.time())))))


class _Slot:
    """One worker process and the thread that feeds it tasks from the shared queue."""

    def __init__(self, pool: LocalExecutor, index: int) -> None:
        self.pool = pool
        self.index = index
        self.proc: Any = None
        self.conn: Any = None
        self._ensure_process()
        self.thread = threading.Thread(target=self._loop, name=f"ars-local-slot-{index}", daemon=True)
        self.thread.start()

    def _ensure_process(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            return
        self._close()
        parent, child = self.pool.ctx.Pipe()
        proc = self.pool.ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(child,), name=f"arsenale-step-worker-{self.index}", daemon=True)
        proc.start()
        child.close()
        self.proc, self.conn = proc, parent

    def _close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(timeout=5)
            self.proc = None

    def kill(self) -> None:
        self._close()

    def _loop(self) -> None:
        while True:
            item = self.pool.queue.get()
            if item is None:
                self._stop()
                return
            task, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self._ensure_process()
                self.conn.send(task)
                message = self._receive()  # "started" once inputs are loaded, or already the result
                if message[0] == "started":
                    if not self.conn.poll(task.timeout):
                        pid = self.proc.pid
                        self.kill()  # SIGKILL: a stuck step may ignore everything else
                        future.set_exception(StepTimeout(f"timed out after {task.timeout:g} s; worker process "
                                                         f"{pid} was killed"))
                        continue
                    message = self.conn.recv()
                future.set_result(message[1])
            except (EOFError, OSError, BrokenPipeError) as exc:
                code = self.proc.exitcode if self.proc is not None else None
                self.kill()
                future.set_exception(WorkerDied(f"the worker process died (exit code {code}): {exc}"))
            except BaseException as exc:  # noqa: BLE001 - never leave a future unresolved
                self.kill()
                future.set_exception(exc)

    def _receive(self) -> Any:
        """The next message from the worker, noticing a worker that dies before it answers."""
        while not self.conn.poll(1.0):
            if not self.proc.is_alive():
                raise EOFError("the worker exited")
        return self.conn.recv()

    def _stop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.send(None)
            except OSError:
                pass
        if self.proc is not None:
            self.proc.join(timeout=5)
        self._close()


class LocalExecutor:
    """Worker processes on this machine; independent steps run in parallel, one per worker.

    `start_method` is "spawn" by default (safe with threads and open database connections; workers import
    the pipeline's module by name). Workers start on first use and are reused across tasks."""

    name = "local"

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn") -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise InvalidInput(f"max_workers must be a positive integer, got {max_workers!r}", field="max_workers")
        self.max_workers = max_workers or max(1, min(os.cpu_count() or 1, 8))
        self.ctx = multiprocessing.get_context(start_method)
        self.queue: queue.Queue[Any] = queue.Queue()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closed = False

    def submit(self, task: Task) -> Future[TaskResult]:
        future: Future[TaskResult] = Future()
        with self._lock:
            if self._closed:
                raise InvalidInput("this executor is shut down", field="executor")
            self._in_flight += 1
            # All workers start (in parallel) with the first task, so the next independent steps find them
            # ready; an executor that is never used starts none.
            while len(self._slots) < self.max_workers:
                self._slots.append(_Slot(self, len(self._slots)))
        future.add_done_callback(self._done)
        self.queue.put((task, future))
        return future

    def _done(self, _future: Future[TaskResult]) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots)
        while True:  # drop queued work that never started
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].cancel()
        for _ in slots:
            self.queue.put(None)
        for s in slots:
            s.thread.join(timeout=10)
            s.kill()  # a slot still busy after the wait (an interrupted run) loses its worker

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# ---- Ray ----------------------------------------------------------------------------------------------


class RayExecutor:
    """Ray tasks: `ray.init(address)` for a cluster (`ray://host:10001` or `auto`), or a local Ray.

    An already-initialised Ray is reused and left running; one this executor started is shut down with it.
    Steps are imported by module name in Ray workers, so the pipeline's module must be importable there
    (same code on every node, or a `runtime_env`), and the artifact store must be reachable from them."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus_per_task: float = 1.0,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise BackendUnavailable("the Ray executor needs Ray: pip install 'arsenale[ray]'") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "logging_level": "WARNING", **(init_kwargs or {})}
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:
                raise BackendUnavailable(f"cannot start or reach Ray at {address or 'local'}: {exc}") from exc
            self._started = True
        self._remote = ray.remote(num_cpus=num_cpus_per_task, max_retries=0)(run_task)

    def submit(self, task: Task) -> Future[TaskResult]:
        future: Future[TaskResult] = Future()
        future.set_running_or_notify_cancel()
        ref = self._remote.remote(task)
        threading.Thread(target=self._watch, args=(ref, task, future), daemon=True,
                         name=f"ars-ray-{task.node}").start()
        return future

    def _watch(self, ref: Any, task: Task, future: Future[TaskResult]) -> None:
        ray = self._ray
        try:
            ready, _ = ray.wait([ref], timeout=task.timeout)
            if not ready:
                ray.cancel(ref, force=True)
                future.set_exception(StepTimeout(f"timed out after {task.timeout:g} s; the Ray task was "
                                                 "cancelled and its worker killed"))
                return
            future.set_result(ray.get(ref))
        except BaseException as exc:  # noqa: BLE001 - a lost worker or node: report it on the future
            future.set_exception(WorkerDied(f"the Ray task failed: {type(exc).__name__}: {exc}"))

    def shutdown(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def check_executor(spec: object) -> None:
    """`InvalidInput` for an executor spec `get_executor` would refuse (checked before a run is recorded)."""
    if spec is None or (not isinstance(spec, str) and hasattr(spec, "submit")):
        return
    if not isinstance(spec, str) or not (spec in ("local", "ray") or spec.startswith("ray:")):
        raise InvalidInput(f"unknown executor {spec!r}: use local, ray, or ray://host:port", field="executor")


def get_executor(spec: str | Executor | None = None, *, max_workers: int | None = None) -> Executor:
    """"local", "ray" (local or already-initialised Ray), "ray://host:port" / "ray:auto", or an executor.
    None reads ARSENALE_EXECUTOR."""
    if spec is None:
        from arsenale.config import get_settings

        spec = get_settings().executor
    if not isinstance(spec, str):
        if not hasattr(spec, "submit"):
            raise InvalidInput(f"not an executor: {spec!r}", field="executor")
        return spec
    if spec == "local":
        return LocalExecutor(max_workers)
    if spec == "ray":
        return RayExecutor()
    if spec.startswith("ray://"):
        return RayExecutor(spec)
    if spec.startswith("ray:"):
        return RayExecutor(spec[len("ray:"):])
    raise InvalidInput(f"unknown executor {spec!r}: use local, ray, or ray://host:port", field="executor")
