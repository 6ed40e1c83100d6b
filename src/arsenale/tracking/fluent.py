"""The fluent SDK: `with ars.start_run(...)`, `ars.log_metric(...)`, as MLflow users expect.

The active run is per thread (a stack, for nested runs). Metric points go
through a `MetricBuffer`; params, tags and artifacts are written at once since
they are few and users expect to see them immediately.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from arsenale.config import get_settings
from arsenale.errors import Conflict, InvalidInput
from arsenale.platform import Client
from arsenale.tracking.buffer import MetricBuffer, flush_all
from arsenale.tracking.models import (
    ArtifactInfo,
    MetricPoint,
    Run,
    RunInfo,
    RunStatus,
    check_key,
    check_run_id,
    to_float,
    to_int,
)
from arsenale.tracking.source import source_tags

DEFAULT_EXPERIMENT = "Default"
PARENT_TAG = "ars.parent_run_id"

_local = threading.local()
_clients: dict[tuple[str, str, int], Client] = {}
_clients_lock = threading.Lock()


def get_client() -> Client:
    """The `Client` for the current settings (store and artifact store), one per process."""
    settings = get_settings()
    uri, artifacts = settings.resolved_uri(), settings.resolved_artifacts()
    key = (uri, artifacts, os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = Client(uri, artifacts=artifacts)
        return client


def _stack() -> list["ActiveRun"]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


class ActiveRun:
    """A run being logged to; a context manager that ends it (FAILED when an exception escapes)."""

    def __init__(self, client: Client, run: Run) -> None:
        self._client = client
        self._run = run
        self.run_id = run.info.run_id
        settings = get_settings()
        self._buffer = MetricBuffer(self._write_points, settings.metric_flush_points, settings.metric_flush_seconds)
        self._keys: set[str] = set()
        self._ended = False

    def _write_points(self, points: Sequence[MetricPoint]) -> None:
        self._client.tracking.log_batch(self.run_id, metrics=points)

    @property
    def info(self) -> RunInfo:
        return self._run.info

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id} {self._run.info.run_name!r}>"

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        status = RunStatus.FINISHED if exc_type is None else (
            RunStatus.KILLED if exc_type is KeyboardInterrupt else RunStatus.FAILED)
        self.end(status)

    # ---- logging -----------------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        if key not in self._keys:
            check_key(key, "key")
            self._keys.add(key)
        v = value if type(value) is float else to_float(value)
        s = 0 if step is None else (step if type(step) is int else to_int(step, "step"))
        t = int(time.time() * 1000) if timestamp is None else (
            timestamp if type(timestamp) is int else to_int(timestamp, "timestamp"))
        self._buffer.add(MetricPoint(key, v, s, t))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None,
                    timestamp: int | None = None) -> None:
        if not isinstance(metrics, Mapping):
            raise InvalidInput("metrics must be a mapping of name to number", field="metrics")
        for k, v in metrics.items():
            self.log_metric(k, v, step, timestamp)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._client.tracking.log_batch(self.run_id, params=params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.tracking.log_batch(self.run_id, tags=tags)

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactInfo]:
        return self._client.tracking.log_artifact(self.run_id, local_path, artifact_path)

    def log_bytes(self, data: bytes, artifact_file: str) -> ArtifactInfo:
        return self._client.tracking.log_artifact_bytes(self.run_id, artifact_file, data)

    def flush(self) -> None:
        """Make every buffered metric point durable now."""
        self._buffer.flush()

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._buffer.close()
        finally:
            self._client.tracking.update_run(self.run_id, status=RunStatus(status).value)
            stack = _stack()
            if self in stack:
                stack.remove(self)


def _experiment_id(client: Client, experiment: str | None) -> str:
    name = experiment or os.environ.get("ARSENALE_EXPERIMENT") or DEFAULT_EXPERIMENT
    if not isinstance(name, str):
        raise InvalidInput("experiment must be a name", field="experiment")
    exp = client.tracking.get_experiment_by_name(name)
    if exp is None:
        try:
            exp = client.tracking.create_experiment(name)
        except Conflict:  # another process created it first
            exp = client.tracking.get_experiment_by_name(name)
            assert exp is not None
    if exp.lifecycle_stage != "active":
        raise Conflict(f"experiment {name!r} is deleted; restore it with `arsenale experiments restore`",
                       field="experiment")
    return exp.experiment_id


def start_run(experiment: str | None = None, run_name: str | None = None, *, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None, nested: bool = False, run_id: str | None = None,
              parent_run_id: str | None = None) -> ActiveRun:
    """Start a run (or resume `run_id`) and make it the active run of this thread."""
    client = get_client()
    stack = _stack()
    if stack and not nested and run_id is None:
        raise Conflict(f"run {stack[-1].run_id} is already active; end it first or pass nested=True",
                       field="nested")
    if run_id is not None:
        run = client.tracking.get_run(check_run_id(run_id))
        if run.info.status != RunStatus.RUNNING:
            run = client.tracking.update_run(run_id, status=RunStatus.RUNNING.value)
        active = ActiveRun(client, run)
        if params:
            active.log_params(params)
        if tags:
            active.set_tags(tags)
    else:
        parent = parent_run_id or (stack[-1].run_id if (stack and nested) else None)
        all_tags = {**source_tags(), **(dict(tags) if tags else {})}
        if parent:
            all_tags[PARENT_TAG] = parent
        # A nested run without an experiment of its own joins its parent's, as MLflow users expect.
        exp_id = (stack[-1].info.experiment_id if (nested and stack and experiment is None)
                  else _experiment_id(client, experiment))
        run = client.tracking.create_run(exp_id, run_name=run_name, tags=all_tags,
                                         params=params, parent_run_id=parent)
        active = ActiveRun(client, run)
    stack.append(active)
    return active


def active_run() -> ActiveRun | None:
    stack = _stack()
    return stack[-1] if stack else None


def _current() -> ActiveRun:
    run = active_run()
    return run if run is not None else start_run()


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    run = active_run()
    if run is not None:
        run.end(status)


def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
    _current().log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
    _current().log_metrics(metrics, step, timestamp)


def log_param(key: str, value: Any) -> None:
    _current().log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    _current().log_params(params)


def set_tag(key: str, value: Any) -> None:
    _current().set_tags({key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    _current().set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactInfo]:
    return _current().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactInfo]:
    """Every file under `local_dir`, stored under `artifact_path` (its contents, not the folder itself)."""
    folder = Path(local_dir)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", field="local_dir")
    out: list[ArtifactInfo] = []
    for child in sorted(folder.iterdir()):
        out.extend(_current().log_artifact(child, artifact_path))
    return out


def log_text(text: str, artifact_file: str) -> ArtifactInfo:
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", field="text")
    return _current().log_bytes(text.encode(), artifact_file)


def log_dict(data: Any, artifact_file: str) -> ArtifactInfo:
    return _current().log_bytes(json.dumps(data, indent=2, default=str).encode(), artifact_file)


def log_figure(figure: Any, artifact_file: str) -> ArtifactInfo:
    """A matplotlib figure, saved in the format its file name asks for (png by default)."""
    buf = io.BytesIO()
    fmt = Path(artifact_file).suffix.lstrip(".") or "png"
    figure.savefig(buf, format=fmt, bbox_inches="tight")
    return _current().log_bytes(buf.getvalue(), artifact_file)


def search_runs(experiment: str | Sequence[str] | None = None, filter: str | None = None,
                order_by: Sequence[str] | None = None, max_results: int = 1000, view: str = "active") -> list[Run]:
    """Every run matching `filter` in the named experiments, paging through all results."""
    client = get_client()
    names = [experiment] if isinstance(experiment, str) or experiment is None else list(experiment)
    ids = []
    for name in names:
        exp = client.tracking.get_experiment_by_name(name or DEFAULT_EXPERIMENT)
        if exp is not None:
            ids.append(exp.experiment_id)
    if not ids:
        return []
    out: list[Run] = []
    token: str | None = None
    while True:
        page = client.tracking.search_runs(ids, filter=filter, order_by=order_by,
                                           max_results=min(max_results - len(out), 10_000), page_token=token,
                                           view=view)
        out.extend(page.runs)
        token = page.next_page_token
        if not token or len(out) >= max_results:
            return out


def _at_exit() -> None:
    for stack in [_stack()]:
        while stack:
            try:
                stack[-1].end(RunStatus.FINISHED)
            except Exception:
                import traceback

                traceback.print_exc()
                stack.pop()
    flush_all()


atexit.register(_at_exit)
