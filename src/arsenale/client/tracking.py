"""`TrackingClient`: `TrackingAPI` over HTTP, with the same signatures, return types and exceptions.

Inputs are checked here with the same functions the service uses before anything is sent, so a
bad id or a bad metric point fails the same way and, for batches split into several requests,
before any of them is stored. Metric points travel as columnar JSON in requests of at most
`MAX_POINTS_PER_REQUEST` points.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from operator import itemgetter
from pathlib import Path
from typing import Any

import blake3
from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, path_param, segment
from arsenale.errors import IntegrityError, InvalidInput, NotFound
from arsenale.tracking import artifact_paths
from arsenale.tracking.models import (
    ArtifactInfo,
    Experiment,
    MetricHistory,
    MetricPoint,
    Run,
    RunPage,
    check_experiment_id,
    check_key,
    check_name,
    check_run_id,
    normalize_metrics,
    normalize_params,
    normalize_tags,
    to_int,
)

__all__ = ["MAX_POINTS_PER_REQUEST", "TrackingClient"]

MAX_POINTS_PER_REQUEST = 100_000
_INT64 = 2**63 - 1
_PLAIN_TUPLES = frozenset({tuple, MetricPoint})
_NUMBERS = frozenset({float, int})
_INT = {int}
_EXPERIMENTS = TypeAdapter(list[Experiment])
_ARTIFACTS = TypeAdapter(list[ArtifactInfo])
_API = "/api/v1"


def _experiment_id(value: Any, field: str = "experiment_id") -> str:
    check_experiment_id(value, field)
    return str(value).strip()


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def metric_columns(metrics: Iterable[Any] | None) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Validated points as four columns. Plain 4-tuples of (str, float, int, int) take a fast path
    (C-level type checks, no per-point Python code); anything else goes through the service's own
    `normalize_metrics`, so errors read the same as in the embedded store."""
    points = metrics if isinstance(metrics, list) else list(metrics or ())
    if not points:
        return [], [], [], []
    if set(map(type, points)) <= _PLAIN_TUPLES and set(map(len, points)) == {4}:
        keys, values, steps, stamps = (list(map(itemgetter(i), points)) for i in range(4))
        if (set(map(type, values)) <= _NUMBERS and set(map(type, steps)) == _INT
                and set(map(type, stamps)) == _INT
                and -_INT64 <= min(steps) and max(steps) <= _INT64
                and -_INT64 <= min(stamps) and max(stamps) <= _INT64):
            for key in set(keys):
                check_key(key, "metrics.key")
            return keys, values, steps, stamps
    normalized = normalize_metrics(points)
    return tuple(list(map(itemgetter(i), normalized)) for i in range(4))  # type: ignore[return-value]


class TrackingClient:
    """Tracking on a remote `arsenale server`; what `Client("http://…").tracking` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"TrackingClient({self.transport.base_url!r})"

    def _run_path(self, run_id: str, suffix: str = "") -> str:
        return f"{_API}/runs/{check_run_id(run_id)}{suffix}"

    def _content_path(self, run_id: str, path: str) -> str:
        return self._run_path(run_id, f"/artifacts/content/{path_param(path)}")

    # ---- experiments -------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, Any] | None = None,
                          description: str | None = None) -> Experiment:
        body = {"name": name, "tags": normalize_tags(tags), "description": description}
        r = self.transport.request("POST", f"{_API}/experiments", json=body)
        return Experiment.model_validate_json(r.content)

    def get_experiment(self, experiment_id: str) -> Experiment:
        r = self.transport.request("GET", f"{_API}/experiments/{_experiment_id(experiment_id)}")
        return Experiment.model_validate_json(r.content)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        check_name(name, "name")
        try:
            r = self.transport.request("GET", f"{_API}/experiments/by-name/{segment(name)}")
        except NotFound:
            return None
        return Experiment.model_validate_json(r.content)

    def list_experiments(self, view: str = "active") -> list[Experiment]:
        r = self.transport.request("GET", f"{_API}/experiments", params={"view": _enum_value(view)})
        return _EXPERIMENTS.validate_json(r.content)

    def delete_experiment(self, experiment_id: str) -> None:
        self.transport.request("POST", f"{_API}/experiments/{_experiment_id(experiment_id)}/delete")

    def restore_experiment(self, experiment_id: str) -> None:
        self.transport.request("POST", f"{_API}/experiments/{_experiment_id(experiment_id)}/restore")

    # ---- runs --------------------------------------------------------------------------

    def create_run(self, experiment_id: str, run_name: str | None = None,
                   tags: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
                   start_time: int | None = None, user_id: str | None = None) -> Run:
        body = {"experiment_id": _experiment_id(experiment_id), "run_name": run_name,
                "tags": normalize_tags(tags), "params": normalize_params(params),
                "parent_run_id": parent_run_id, "user_id": user_id,
                "start_time": None if start_time is None else to_int(start_time, "start_time")}
        return Run.model_validate_json(self.transport.request("POST", f"{_API}/runs", json=body).content)

    def get_run(self, run_id: str) -> Run:
        return Run.model_validate_json(self.transport.request("GET", self._run_path(run_id)).content)

    def update_run(self, run_id: str, status: str | None = None, end_time: int | None = None,
                   run_name: str | None = None) -> Run:
        body = {"status": _enum_value(status), "run_name": run_name,
                "end_time": None if end_time is None else to_int(end_time, "end_time")}
        r = self.transport.request("PATCH", self._run_path(run_id), json=body)
        return Run.model_validate_json(r.content)

    def delete_run(self, run_id: str) -> None:
        self.transport.request("POST", self._run_path(run_id, "/delete"))

    def restore_run(self, run_id: str) -> None:
        self.transport.request("POST", self._run_path(run_id, "/restore"))

    def log_batch(self, run_id: str, metrics: Iterable[Any] | None = None,
                  params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None) -> None:
        """Params, tags and points; at most `MAX_POINTS_PER_REQUEST` points per request (each request is
        one transaction on the server; params and tags go with the first)."""
        path = self._run_path(run_id, "/log-batch")
        extra: dict[str, Any] = {}
        if params is not None:
            extra["params"] = normalize_params(params)
        if tags is not None:
            extra["tags"] = normalize_tags(tags)
        keys, values, steps, stamps = metric_columns(metrics)
        n = len(values)
        if n == 0:
            if extra:
                self.transport.request("POST", path, json=extra)
            return
        for start in range(0, n, MAX_POINTS_PER_REQUEST):
            end = start + MAX_POINTS_PER_REQUEST
            chunk_keys = keys[start:end]
            first = chunk_keys[0]
            one_key = chunk_keys.count(first) == len(chunk_keys)
            body = {**extra, "metrics": {"key": first if one_key else chunk_keys, "value": values[start:end],
                                         "step": steps[start:end], "timestamp": stamps[start:end]}}
            self.transport.request("POST", path, json=body)
            extra = {}

    def get_metric_history(self, run_id: str, key: str, max_points: int | None = None) -> MetricHistory:
        check_key(key, "key")
        params = {"key": key, "max_points": None if max_points is None else to_int(max_points, "max_points")}
        r = self.transport.request("GET", self._run_path(run_id, "/metrics/history"), params=params)
        return MetricHistory.model_validate_json(r.content)

    def search_runs(self, experiment_ids: Sequence[str], filter: str | None = None,
                    order_by: Sequence[str] | None = None, max_results: int = 1000,
                    page_token: str | None = None, view: str = "active") -> RunPage:
        if isinstance(experiment_ids, (str, int)):
            experiment_ids = [str(experiment_ids)]
        if isinstance(order_by, str):
            raise InvalidInput("order_by must be a list of strings", field="order_by")
        body = {"experiment_ids": [_experiment_id(e, "experiment_ids") for e in experiment_ids],
                "filter": filter, "order_by": None if order_by is None else list(order_by),
                "max_results": to_int(max_results, "max_results"), "page_token": page_token,
                "view": _enum_value(view)}
        r = self.transport.request("POST", f"{_API}/runs/search", json=body)
        return RunPage.model_validate_json(r.content)

    # ---- artifacts ---------------------------------------------------------------------

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str],
                     artifact_path: str | None = None) -> list[ArtifactInfo]:
        """A file, or a folder's whole tree, stored under `artifact_path` in the run.

        One request per file: unlike the embedded store, a folder is not stored all or nothing."""
        check_run_id(run_id)
        checked = artifact_paths.files_to_log(local_path, artifact_path)  # all checked before any upload
        out = []
        for f, rel in checked:
            with open(f, "rb") as data:
                r = self.transport.request("PUT", self._run_path(run_id, f"/artifacts/{path_param(rel)}"),
                                           content=data, headers={"Content-Type": "application/octet-stream"})
            out.append(ArtifactInfo.model_validate_json(r.content))
        return out

    def log_artifact_bytes(self, run_id: str, path: str, data: bytes) -> ArtifactInfo:
        rel = artifact_paths.check_artifact_path(path)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput("artifact data must be bytes", field="data")
        r = self.transport.request("PUT", self._run_path(run_id, f"/artifacts/{path_param(rel)}"),
                                   content=bytes(data), headers={"Content-Type": "application/octet-stream"})
        return ArtifactInfo.model_validate_json(r.content)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactInfo]:
        rel = artifact_paths.check_artifact_path(path, allow_root=True)
        r = self.transport.request("GET", self._run_path(run_id, "/artifacts"), params={"path": rel or None})
        return _ARTIFACTS.validate_json(r.content)

    def read_artifact(self, run_id: str, path: str) -> bytes:
        rel = artifact_paths.check_artifact_path(path)
        return self.transport.request("GET", self._content_path(run_id, rel)).content

    def _files(self, run_id: str, prefix: str) -> list[ArtifactInfo]:
        out: list[ArtifactInfo] = []
        for entry in self.list_artifacts(run_id, prefix):
            if entry.is_dir:
                out.extend(self._files(run_id, entry.path))
            else:
                out.append(entry)
        return out

    def download_artifacts(self, run_id: str, path: str | None, dest: str | os.PathLike[str]) -> Path:
        """Copy a file or a folder's tree into `dest`; every file is verified against its digest and
        appears under its final name only once complete."""
        check_run_id(run_id)
        prefix = artifact_paths.check_artifact_path(path, allow_root=True)
        files = self._files(run_id, prefix)
        if not files:
            raise NotFound(f"run {run_id} has no artifact at {prefix or '/'!r}", field="path")
        dest_root = Path(dest).resolve()
        parent = prefix.rpartition("/")[0]
        targets = []
        for info in files:
            rel = info.path[len(parent) + 1:] if parent else info.path
            target = (dest_root / rel).resolve()
            if dest_root not in target.parents:
                raise InvalidInput(f"artifact path {info.path!r} escapes the destination", field="path")
            targets.append((info, target))
        for info, target in targets:
            self._download_file(run_id, info, target)
        return dest_root / (prefix.rpartition("/")[2] if prefix else "")

    def _download_file(self, run_id: str, info: ArtifactInfo, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        digest = blake3.blake3()
        try:
            with self.transport.stream("GET", self._content_path(run_id, info.path)) as response, \
                    open(tmp, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if info.digest and digest.hexdigest() != info.digest:
                raise IntegrityError(f"artifact {info.path!r} of run {run_id} arrived with digest "
                                     f"{digest.hexdigest()}, expected {info.digest}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
