"""Experiment tracking's domain logic, over the SQL store and the artifact store.

`TrackingAPI` is the one interface the SDK, CLI and server use; this service
implements it in-process and `arsenale.client.tracking` over HTTP.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from arsenale.errors import InvalidInput, NotFound
from arsenale.store.artifacts import ArtifactStore
from arsenale.store.audit import AuditRecord
from arsenale.store.tracking import SqlTrackingStore
from arsenale.tracking import artifact_paths
from arsenale.tracking.models import (
    ArtifactInfo,
    Experiment,
    MetricHistory,
    Run,
    RunPage,
    RunStatus,
    ViewType,
    check_experiment_id,
    check_key,
    check_name,
    check_run_id,
    normalize_metrics,
    normalize_params,
    normalize_tags,
    now_ms,
    to_int,
)
from arsenale.tracking.names import run_name as generate_run_name
from arsenale.tracking.search import parse_filter, parse_order_by

MAX_SEARCH_RESULTS = 50_000
MAX_HISTORY_POINTS = 100_000
TERMINAL = {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED}


class TrackingAPI(Protocol):
    """Everything tracking offers; implemented in-process and over HTTP."""

    def create_experiment(self, name: str, tags: Mapping[str, Any] | None = None,
                          description: str | None = None) -> Experiment: ...
    def get_experiment(self, experiment_id: str) -> Experiment: ...
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...
    def list_experiments(self, view: str = "active") -> list[Experiment]: ...
    def delete_experiment(self, experiment_id: str) -> None: ...
    def restore_experiment(self, experiment_id: str) -> None: ...
    def create_run(self, experiment_id: str, run_name: str | None = None, tags: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
                   start_time: int | None = None, user_id: str | None = None) -> Run: ...
    def get_run(self, run_id: str) -> Run: ...
    def update_run(self, run_id: str, status: str | None = None, end_time: int | None = None,
                   run_name: str | None = None) -> Run: ...
    def delete_run(self, run_id: str) -> None: ...
    def restore_run(self, run_id: str) -> None: ...
    def log_batch(self, run_id: str, metrics: Iterable[Any] | None = None,
                  params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None) -> None: ...
    def get_metric_history(self, run_id: str, key: str, max_points: int | None = None) -> MetricHistory: ...
    def search_runs(self, experiment_ids: Sequence[str], filter: str | None = None,
                    order_by: Sequence[str] | None = None, max_results: int = 1000,
                    page_token: str | None = None, view: str = "active") -> RunPage: ...
    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str],
                     artifact_path: str | None = None) -> list[ArtifactInfo]: ...
    def log_artifact_bytes(self, run_id: str, path: str, data: bytes) -> ArtifactInfo: ...
    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactInfo]: ...
    def read_artifact(self, run_id: str, path: str) -> bytes: ...
    def download_artifacts(self, run_id: str, path: str | None, dest: str | os.PathLike[str]) -> Path: ...


_parse_filter = lru_cache(maxsize=256)(parse_filter)  # pages of one search share their filter text


@lru_cache(maxsize=256)
def _parse_order_by(items: tuple[str, ...] | None) -> list[Any]:
    return parse_order_by(items)


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except Exception:
        raise InvalidInput("page_token is not a token this server issued", field="page_token") from None
    if offset < 0:
        raise InvalidInput("page_token is not a token this server issued", field="page_token")
    return offset


@contextmanager
def gc_paused() -> Iterator[None]:
    """Build a large page of objects without the cyclic collector stopping to scan them: it allocates
    no cycles, and collections triggered by its allocations took ~40% of a 1,000-run page."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class TrackingService:
    """In-process implementation of `TrackingAPI`."""

    def __init__(self, store: SqlTrackingStore, blobs: ArtifactStore, actor: str) -> None:
        self.store = store
        self.blobs = blobs
        self.actor = actor

    # ---- experiments -------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, Any] | None = None,
                          description: str | None = None) -> Experiment:
        check_name(name, "name")
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        exp_id = self.store.create_experiment(
            name.strip(), normalize_tags(tags), description, now_ms(),
            AuditRecord(self.actor, "experiment.create", "experiment", ""))
        return self.get_experiment(str(exp_id))

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment(**self.store.get_experiment(check_experiment_id(experiment_id)))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        check_name(name, "name")
        row = self.store.get_experiment_by_name(name.strip())
        return None if row is None else Experiment(**row)

    def list_experiments(self, view: str = "active") -> list[Experiment]:
        return [Experiment(**r) for r in self.store.list_experiments(self._view(view))]

    def delete_experiment(self, experiment_id: str) -> None:
        self.store.set_experiment_lifecycle(check_experiment_id(experiment_id), "deleted", "active", now_ms(),
                                            AuditRecord(self.actor, "experiment.delete", "experiment", ""))

    def restore_experiment(self, experiment_id: str) -> None:
        self.store.set_experiment_lifecycle(check_experiment_id(experiment_id), "active", "deleted", now_ms(),
                                            AuditRecord(self.actor, "experiment.restore", "experiment", ""))

    @staticmethod
    def _view(view: str | ViewType) -> str:
        try:
            return ViewType(view.lower() if isinstance(view, str) else view).value
        except ValueError:
            raise InvalidInput(f"view must be one of active, deleted, all; got {view!r}", field="view") from None

    # ---- runs --------------------------------------------------------------------------

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
                   start_time: int | None = None, user_id: str | None = None) -> Run:
        exp = check_experiment_id(experiment_id)
        name = check_name(run_name, "run_name") if run_name is not None else generate_run_name()
        if parent_run_id is not None:
            check_run_id(parent_run_id, "parent_run_id")
        row = {"run_id": uuid.uuid4().hex, "experiment_id": exp, "name": name, "status": RunStatus.RUNNING.value,
               "start_time": to_int(start_time, "start_time") if start_time is not None else now_ms(),
               "end_time": None, "parent_run_id": parent_run_id,
               "user_id": check_name(user_id, "user_id") if user_id is not None else self.actor,
               "lifecycle_stage": "active"}
        run_tags, run_params = normalize_tags(tags), normalize_params(params)
        self.store.create_run(row, run_tags, run_params)
        # What was just written, without reading it back: a sweep creates runs by the thousand.
        info = {k: v for k, v in row.items() if k not in ("name", "experiment_id")}
        return Run.model_validate({"info": {**info, "run_name": name, "experiment_id": str(exp)},
                                   "data": {"params": run_params, "tags": run_tags, "metrics": {}}})

    def get_run(self, run_id: str) -> Run:
        return Run(**self.store.get_run(check_run_id(run_id)))

    def update_run(self, run_id: str, status: str | None = None, end_time: int | None = None,
                   run_name: str | None = None) -> Run:
        check_run_id(run_id)
        values: dict[str, Any] = {}
        if status is not None:
            try:
                st = RunStatus(status.upper() if isinstance(status, str) else status)
            except (ValueError, AttributeError):
                raise InvalidInput(f"status must be one of {', '.join(s.value for s in RunStatus)}; got {status!r}",
                                   field="status") from None
            values["status"] = st.value
            if st in TERMINAL:
                values["end_time"] = now_ms()
        if end_time is not None:
            values["end_time"] = to_int(end_time, "end_time")
        if run_name is not None:
            values["name"] = check_name(run_name, "run_name")
        return Run(**self.store.update_run(run_id, values))

    def delete_run(self, run_id: str) -> None:
        self.store.set_run_lifecycle(check_run_id(run_id), "deleted")

    def restore_run(self, run_id: str) -> None:
        self.store.set_run_lifecycle(check_run_id(run_id), "active")

    def log_batch(self, run_id: str, metrics: Iterable[Any] | None = None,
                  params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None) -> None:
        check_run_id(run_id)
        points = normalize_metrics(metrics)
        p, t = normalize_params(params), normalize_tags(tags)
        if points or p or t:
            self.store.log_batch(run_id, points, p, t)

    def get_metric_history(self, run_id: str, key: str, max_points: int | None = None) -> MetricHistory:
        check_run_id(run_id)
        check_key(key, "key")
        if max_points is not None:
            max_points = to_int(max_points, "max_points")
            if not 2 <= max_points <= MAX_HISTORY_POINTS:
                raise InvalidInput(f"max_points must be between 2 and {MAX_HISTORY_POINTS}", field="max_points")
        return MetricHistory(**self.store.get_metric_history(run_id, key, max_points))

    def search_runs(self, experiment_ids: Sequence[str], filter: str | None = None,
                    order_by: Sequence[str] | None = None, max_results: int = 1000,
                    page_token: str | None = None, view: str = "active") -> RunPage:
        if isinstance(experiment_ids, (str, int)):
            experiment_ids = [str(experiment_ids)]
        ids = [check_experiment_id(e, "experiment_ids") for e in experiment_ids]
        if filter is not None and not isinstance(filter, str):
            raise InvalidInput("filter must be a string", field="filter")
        max_results = to_int(max_results, "max_results")
        if not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise InvalidInput(f"max_results must be between 1 and {MAX_SEARCH_RESULTS}", field="max_results")
        if order_by is not None and (isinstance(order_by, str) or not all(isinstance(o, str) for o in order_by)):
            raise InvalidInput("order_by must be a list of strings", field="order_by")
        offset = decode_page_token(page_token)
        expr = _parse_filter(filter)
        keys = _parse_order_by(tuple(order_by) if order_by is not None else None)
        with gc_paused():
            rows, more = self.store.search_runs(ids, expr, keys, self._view(view), offset, max_results)
            return RunPage(runs=[Run.model_validate_json(r) if isinstance(r, str) else Run.model_validate(r)
                                 for r in rows],
                           next_page_token=encode_page_token(offset + max_results) if more else None)

    # ---- artifacts ---------------------------------------------------------------------

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str],
                     artifact_path: str | None = None) -> list[ArtifactInfo]:
        """A file, or a folder's whole tree, stored under `artifact_path` in the run."""
        check_run_id(run_id)
        files = artifact_paths.files_to_log(local_path, artifact_path)
        self.store.require_run(run_id)  # fail before uploading anything
        entries = []
        for f, rel in files:
            digest, size = self.blobs.put_file(f)
            entries.append((rel, digest, size))
        if entries:
            self.store.add_artifacts(run_id, entries, now_ms())
        return [ArtifactInfo(path=p, is_dir=False, size=s, digest=d) for p, d, s in entries]

    def log_artifact_bytes(self, run_id: str, path: str, data: bytes) -> ArtifactInfo:
        check_run_id(run_id)
        rel = artifact_paths.check_artifact_path(path)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput("artifact data must be bytes", field="data")
        self.store.require_run(run_id)
        digest, size = self.blobs.put_bytes(bytes(data))
        self.store.add_artifacts(run_id, [(rel, digest, size)], now_ms())
        return ArtifactInfo(path=rel, is_dir=False, size=size, digest=digest)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactInfo]:
        """The immediate children of `path` (files and folders), like a directory listing."""
        check_run_id(run_id)
        prefix = artifact_paths.check_artifact_path(path, allow_root=True)
        out: dict[str, ArtifactInfo] = {}
        for p, digest, size in self.store.artifact_rows(run_id, prefix):
            if p == prefix:
                return [ArtifactInfo(path=p, is_dir=False, size=size, digest=digest)]
            rest = p[len(prefix) + 1:] if prefix else p
            head, _, tail = rest.partition("/")
            child = artifact_paths.join(prefix, head)
            if tail:
                out.setdefault(child, ArtifactInfo(path=child, is_dir=True))
            else:
                out[child] = ArtifactInfo(path=child, is_dir=False, size=size, digest=digest)
        return sorted(out.values(), key=lambda a: (not a.is_dir, a.path))

    def _file_rows(self, run_id: str, path: str | None) -> tuple[str, list[tuple[str, str, int]]]:
        check_run_id(run_id)
        prefix = artifact_paths.check_artifact_path(path, allow_root=True)
        rows = self.store.artifact_rows(run_id, prefix)
        if not rows:
            raise NotFound(f"run {run_id} has no artifact at {prefix or '/'!r}", field="path")
        return prefix, rows

    def read_artifact(self, run_id: str, path: str) -> bytes:
        rel, rows = self._file_rows(run_id, artifact_paths.check_artifact_path(path))
        exact = [r for r in rows if r[0] == rel]
        if not exact:
            raise InvalidInput(f"{rel!r} is a folder; download it instead", field="path")
        return self.blobs.get_bytes(exact[0][1])

    def download_artifacts(self, run_id: str, path: str | None, dest: str | os.PathLike[str]) -> Path:
        """Copy a file or a folder's tree into `dest`; every file is verified against its digest."""
        prefix, rows = self._file_rows(run_id, path)
        dest_root = Path(dest).resolve()
        parent = prefix.rpartition("/")[0]
        for p, digest, _size in rows:
            rel = p[len(parent) + 1:] if parent else p
            target = (dest_root / rel).resolve()
            if dest_root not in target.parents:
                raise InvalidInput(f"artifact path {p!r} escapes the destination", field="path")
            self.blobs.download(digest, target)
        return dest_root / (prefix.rpartition("/")[2] if prefix else "")
