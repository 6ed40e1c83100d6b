"""The engine: run a pipeline's graph on an executor, with caching, retries, timeouts and a final report.

    run = ars.run_pipeline(fraud_training, executor="local", params={"raw": df, "C": 0.5})
    print(run.report())            # per step: succeeded / cached: key … / failed (error) / not run
    model = run.output("train")

The graph is built (and validated) before anything runs. Then, repeatedly: every step whose inputs are all
available gets its cache key; hits are taken from the store without running; misses are submitted to the
executor. A failed attempt is retried after `backoff * 2**(attempt - 1)` seconds, up to `retries` times; a step
that finally fails marks everything downstream "not run" while independent branches carry on. A failed step
stores no output, so it never becomes a cache entry.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from arsenale.pipelines.cache import cache_key, code_hash, is_json_value, param_token, serialize
from arsenale.pipelines.executors import Executor, InputBlob, Task, TaskResult, check_executor, get_executor
from arsenale.pipelines.graph import Graph, NodeRef, ValueRef, build
from arsenale.pipelines.models import PipelineRun, PipelineStatus, StepRun, StepStatus
from arsenale.pipelines.service import PipelineService
from arsenale.pipelines.steps import Pipeline

__all__ = ["run_pipeline"]

log = logging.getLogger("arsenale.pipelines")


def run_pipeline(pipeline: Pipeline, executor: str | Executor | None = None,
                 params: Mapping[str, Any] | None = None, *, client: Any = None, max_workers: int | None = None,
                 trigger: str | None = None, service: PipelineService | None = None) -> PipelineRun:
    """Run `pipeline` and return its `PipelineRun` (a failed step does not raise: see `run.status`)."""
    graph = build(pipeline, params)
    check_executor(executor)
    if service is None:
        if client is None:
            from arsenale.tracking.fluent import get_client

            client = get_client()
        service = PipelineService.from_client(client)
    owned = isinstance(executor, str) or executor is None
    name = executor if isinstance(executor, str) else (executor.name if executor is not None else None)
    if max_workers is None:  # no more workers than steps that can run at once
        import os

        max_workers = max(1, min(os.cpu_count() or 1, 8, max(len(layer) for layer in graph.layers())))
    runner = Runner(graph, service, lambda: get_executor(executor, max_workers=max_workers))
    try:
        return runner.run(dict(params or {}), executor_name=name or "local", trigger=trigger)
    finally:
        if owned:
            runner.shutdown()


class Runner:
    """One run of one graph. The executor is made on first use: a fully cached run starts no workers."""

    def __init__(self, graph: Graph, service: PipelineService, make_executor: Callable[[], Executor]) -> None:
        self.graph = graph
        self.service = service
        self._make_executor = make_executor
        self._executor: Executor | None = None
        self._codes: dict[int, str] = {}
        self._blob_of_value: dict[int, tuple[Any, InputBlob]] = {}

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._make_executor()
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()

    # ---- argument preparation ------------------------------------------------------------------------

    def _code(self, node: str) -> str:
        step = self.graph.nodes[node].step
        code = self._codes.get(id(step))
        if code is None:
            code = self._codes[id(step)] = code_hash(step.func)
        return code

    def _value_blob(self, value: Any, serializer: str) -> InputBlob:
        """A non-JSON value known before the run (a DataFrame argument), stored once by content."""
        hit = self._blob_of_value.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        data, fmt = serialize(value, serializer)
        digest, _ = self.service.blobs.put_bytes(data)
        blob = InputBlob(digest, fmt, trusted=fmt == "pickle")
        self._blob_of_value[id(value)] = (value, blob)
        return blob

    def _split_args(self, node: str, outputs: Mapping[str, InputBlob]) -> tuple[dict[str, Any], dict[str, InputBlob]]:
        """(literal params, blob inputs) of a node whose upstream outputs are all known."""
        n = self.graph.nodes[node]
        literals: dict[str, Any] = {}
        blobs: dict[str, InputBlob] = {}
        for arg, src in n.args.items():
            if isinstance(src, NodeRef):
                blobs[arg] = outputs[src.node]
            elif isinstance(src, ValueRef) and is_json_value(src.value):
                literals[arg] = src.value
            else:
                blobs[arg] = self._value_blob(src.value, n.step.serializer)
        return literals, blobs

    def _key(self, node: str, literals: Mapping[str, Any], blobs: Mapping[str, InputBlob]) -> str:
        step = self.graph.nodes[node].step
        return cache_key(self._code(node), {k: param_token(v) for k, v in literals.items()},
                         {k: b.digest for k, b in blobs.items()}, step.serializer)

    # ---- the run ---------------------------------------------------------------------------------------

    def run(self, params: Mapping[str, Any], *, executor_name: str, trigger: str | None) -> PipelineRun:
        g = self.graph
        depth = g.layer_of()
        run = self.service.create_run(
            name=g.name, ref=g.ref, executor=executor_name, params=params, trigger=trigger,
            steps=[{"name": n, "step_ref": g.nodes[n].step.ref, "layer": depth[n], "upstream": g.nodes[n].upstream}
                   for n in g.order])
        state = _RunState(self, run)
        try:
            state.loop()
        except BaseException as exc:
            state.abort(f"the run was interrupted: {type(exc).__name__}: {exc}")
            raise
        return state.finish()


class _RunState:
    """The moving parts of one run: what is pending, running, waiting to retry, and done."""

    def __init__(self, runner: Runner, run: PipelineRun) -> None:
        self.r = runner
        self.g = runner.graph
        self.svc = runner.service
        self.run = run
        self.steps: dict[str, StepRun] = {s.name: s for s in run.steps}
        self.pending: list[str] = list(self.g.order)
        self.outputs: dict[str, InputBlob] = {}
        self.running: dict[Future[TaskResult], tuple[str, Task, float]] = {}
        self.retry_at: list[tuple[float, str, Task]] = []
        self.tracked: dict[str, str] = {}  # step name -> tracking run id
        self.args: dict[str, tuple[dict[str, Any], dict[str, InputBlob]]] = {}
        self.changes: dict[str, dict[str, Any]] = {}

    # ---- bookkeeping ----------------------------------------------------------------------------------

    def _set(self, name: str, **values: Any) -> None:
        step = self.steps[name]
        for k, v in values.items():
            setattr(step, k, StepStatus(v) if k == "status" else v)
        row = self.changes.setdefault(name, {})
        row.update({k: (v.value if isinstance(v, StepStatus) else v) for k, v in values.items()})

    def _flush(self) -> None:
        if self.changes:
            self.svc.record_steps(self.run.pipeline_run_id, self.changes)
            self.changes = {}

    def _track_start(self, name: str) -> None:
        literals, blobs = self.args.get(name, ({}, {}))
        self.tracked[name] = self.svc.track_step(self.run, self.steps[name], literals,
                                                 input_digests={k: b.digest for k, b in blobs.items()})
        self._set(name, run_id=self.tracked[name])

    def _track_end(self, name: str) -> None:
        if name not in self.tracked:
            self._track_start(name)
        self.svc.finish_step_run(self.tracked[name], self.steps[name])

    # ---- scheduling ------------------------------------------------------------------------------------

    def _ready(self) -> list[str]:
        return [n for n in self.pending if all(u in self.outputs for u in self.g.nodes[n].upstream)]

    def _start_ready(self) -> None:
        while True:
            ready = self._ready()
            if not ready:
                return
            keys: dict[str, str] = {}
            for n in ready:
                literals, blobs = self.args[n] = self.r._split_args(n, self.outputs)
                keys[n] = self.r._key(n, literals, blobs)
            wanted = [keys[n] for n in ready if self.g.nodes[n].step.cache]
            hits = self.svc.find_cached(wanted) if wanted else {}
            for n in ready:
                self.pending.remove(n)
                step = self.g.nodes[n].step
                hit = hits.get(keys[n]) if step.cache else None
                if hit is not None:
                    now = _ms(time.time())
                    self._set(n, status=StepStatus.CACHED, cache_key=keys[n], start_time=now, end_time=now,
                              output_digest=hit["output_digest"], output_format=hit["output_format"],
                              output_size=hit["output_size"],
                              cached_from=hit["cached_from"] or hit["pipeline_run_id"])
                    self.outputs[n] = InputBlob(hit["output_digest"], hit["output_format"],
                                                trusted=step.serializer == "trusted-pickle")
                    log.info("%s: cached: key %s", n, keys[n])
                    self._track_end(n)
                else:
                    self._set(n, status=StepStatus.RUNNING, cache_key=keys[n], start_time=_ms(time.time()))
                    self._track_start(n)
                    literals, blobs = self.args[n]
                    task = Task(node=n, step_ref=step.ref, params=literals, inputs=blobs,
                                artifacts=self.svc.blobs.root, serializer=step.serializer, timeout=step.timeout)
                    self._submit(task)

    def _submit(self, task: Task) -> None:
        self._set(task.node, attempts=task.attempt)
        future = self.r.executor.submit(task)
        self.running[future] = (task.node, task, time.time())

    def loop(self) -> None:
        self._start_ready()
        self._flush()
        while self.running or self.retry_at:
            timeout = None
            if self.retry_at:
                timeout = max(0.0, min(t for t, _, _ in self.retry_at) - time.monotonic())
            if self.running:
                done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
            else:
                time.sleep(timeout or 0)
                done = set()
            for future in done:
                self._finished(future)
            now = time.monotonic()
            due = [r for r in self.retry_at if r[0] <= now]
            for r in due:
                self.retry_at.remove(r)
                self._submit(r[2])
            self._start_ready()
            self._flush()

    def _finished(self, future: Future[TaskResult]) -> None:
        name, task, submitted = self.running.pop(future)
        step = self.g.nodes[name].step
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - the attempt never produced a result: timeout, dead worker
            result = TaskResult(name, task.attempt, submitted, time.time(), error=f"{type(exc).__name__}: {exc}",
                                error_type=type(exc).__name__)
        if result.ok:
            self._set(name, status=StepStatus.SUCCEEDED, start_time=_ms(result.started), end_time=_ms(result.ended),
                      output_digest=result.digest, output_format=result.format, output_size=result.size,
                      error=None)
            self.outputs[name] = InputBlob(result.digest or "", result.format or "",
                                           trusted=step.serializer == "trusted-pickle")
            log.info("%s: succeeded in %.2f s", name, result.ended - result.started)
            self._track_end(name)
            return
        if task.attempt <= step.retries:
            delay = step.backoff * 2 ** (task.attempt - 1)
            log.info("%s: attempt %d failed (%s); retrying in %.2f s", name, task.attempt, result.error, delay)
            self._set(name, error=result.error)
            nxt = dataclasses.replace(task, attempt=task.attempt + 1)
            self.retry_at.append((time.monotonic() + delay, name, nxt))
            return
        self._set(name, status=StepStatus.FAILED, end_time=_ms(result.ended), error=result.error)
        log.info("%s: failed after %d attempt(s): %s", name, task.attempt, result.error)
        self._track_end(name)
        self._skip_downstream(name, f"upstream step {name!r} failed")

    def _skip_downstream(self, name: str, why: str) -> None:
        for d in self.g.order:
            if d in self.g.downstream(name) and d in self.pending:
                self.pending.remove(d)
                self._set(d, status=StepStatus.NOT_RUN, error=why)
                self._track_end(d)

    def abort(self, why: str) -> None:
        """An interrupted run: running steps failed, the rest not run, the run failed."""
        try:
            for future, (name, _, _) in list(self.running.items()):
                future.cancel()
                self._set(name, status=StepStatus.FAILED, end_time=_ms(time.time()), error=why)
            for _, name, _ in self.retry_at:
                self._set(name, status=StepStatus.FAILED, end_time=_ms(time.time()), error=why)
            for name in self.pending:
                self._set(name, status=StepStatus.NOT_RUN, error=why)
            self.pending = []
            self._flush()
            self.svc.finish_run(self.run, PipelineStatus.FAILED, self._counts())
        except Exception:
            log.exception("could not record the interrupted pipeline run")

    def _counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.FAILED,
                                       StepStatus.NOT_RUN)}
        for s in self.steps.values():
            if s.status.value in counts:
                counts[s.status.value] += 1
        return counts

    def finish(self) -> PipelineRun:
        self._flush()
        ok = all(s.status in (StepStatus.SUCCEEDED, StepStatus.CACHED) for s in self.steps.values())
        status = PipelineStatus.SUCCEEDED if ok else PipelineStatus.FAILED
        self.svc.finish_run(self.run, status, self._counts())
        return self.svc.get_run(self.run.pipeline_run_id)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
