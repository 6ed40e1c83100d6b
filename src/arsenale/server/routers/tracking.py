"""Experiment tracking over HTTP: experiments, runs, metric batches, search, artifacts.

`log-batch` takes columnar JSON, parsed without a model per point:

    {"metrics": {"key": [...] or "one key for all", "value": [...], "step": [...], "timestamp": [...]},
     "params": {...}, "tags": {...}}

Values are numbers or the strings "NaN", "Infinity", "-Infinity"; `step` and `timestamp`
may be left out (0 and the server's clock). Metric history keys travel in a query
parameter because keys may contain '/'.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from arsenale.errors import InvalidInput, NotFound
from arsenale.server.auth import READ
from arsenale.server.routers import (
    API_PREFIX,
    JSON,
    Tracking,
    no_content,
    parse_json,
    render,
    stream_and_remove,
)
from arsenale.tracking.artifact_paths import check_artifact_path
from arsenale.tracking.models import ArtifactInfo, Experiment, MetricHistory, Run, RunPage, check_run_id
from arsenale.tracking.service import TrackingAPI

router = APIRouter(prefix=API_PREFIX, tags=["tracking"])

SMALL_UPLOAD = 8 << 20
"""Uploads up to this size are read into memory; larger ones are streamed to a temporary file."""
MAX_FILE_NAME_BYTES = 255
DOWNLOAD_CHUNK = 1 << 20


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateExperiment(_Body):
    name: str
    tags: dict[str, Any] | None = None
    description: str | None = None


class CreateRun(_Body):
    experiment_id: str
    run_name: str | None = None
    tags: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    parent_run_id: str | None = None
    start_time: int | None = None
    user_id: str | None = None


class UpdateRun(_Body):
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class SearchRuns(_Body):
    experiment_ids: list[str]
    filter: str | None = None
    order_by: list[str] | None = None
    max_results: int = 1000
    page_token: str | None = None
    view: str = "active"


# ---- experiments -----------------------------------------------------------------------------------------


@router.post("/experiments", status_code=201, response_model=Experiment)
def create_experiment(body: CreateExperiment, tracking: Tracking) -> Response:
    return render(tracking.create_experiment(body.name, body.tags, body.description), 201)


@router.get("/experiments", response_model=list[Experiment])
def list_experiments(tracking: Tracking, view: str = "active") -> Response:
    return render(tracking.list_experiments(view))


@router.get("/experiments/by-name/{name:path}", response_model=Experiment)
def get_experiment_by_name(name: str, tracking: Tracking) -> Response:
    exp = tracking.get_experiment_by_name(name)
    if exp is None:
        raise NotFound(f"experiment {name!r} does not exist", field="name")
    return render(exp)


@router.get("/experiments/{experiment_id}", response_model=Experiment)
def get_experiment(experiment_id: str, tracking: Tracking) -> Response:
    return render(tracking.get_experiment(experiment_id))


@router.post("/experiments/{experiment_id}/delete", status_code=204)
def delete_experiment(experiment_id: str, tracking: Tracking) -> Response:
    tracking.delete_experiment(experiment_id)
    return no_content()


@router.post("/experiments/{experiment_id}/restore", status_code=204)
def restore_experiment(experiment_id: str, tracking: Tracking) -> Response:
    tracking.restore_experiment(experiment_id)
    return no_content()


# ---- runs ------------------------------------------------------------------------------------------------


@router.post("/runs", status_code=201, response_model=Run)
def create_run(body: CreateRun, tracking: Tracking) -> Response:
    return render(tracking.create_run(body.experiment_id, run_name=body.run_name, tags=body.tags,
                                      params=body.params, parent_run_id=body.parent_run_id,
                                      start_time=body.start_time, user_id=body.user_id), 201)


@router.post("/runs/search", response_model=RunPage, openapi_extra=READ)
def search_runs(body: SearchRuns, tracking: Tracking) -> Response:
    return render(tracking.search_runs(body.experiment_ids, filter=body.filter, order_by=body.order_by,
                                       max_results=body.max_results, page_token=body.page_token,
                                       view=body.view))


@router.get("/runs/{run_id}", response_model=Run)
def get_run(run_id: str, tracking: Tracking) -> Response:
    return render(tracking.get_run(run_id))


@router.patch("/runs/{run_id}", response_model=Run)
def update_run(run_id: str, body: UpdateRun, tracking: Tracking) -> Response:
    return render(tracking.update_run(run_id, status=body.status, end_time=body.end_time,
                                      run_name=body.run_name))


@router.post("/runs/{run_id}/delete", status_code=204)
def delete_run(run_id: str, tracking: Tracking) -> Response:
    tracking.delete_run(run_id)
    return no_content()


@router.post("/runs/{run_id}/restore", status_code=204)
def restore_run(run_id: str, tracking: Tracking) -> Response:
    tracking.restore_run(run_id)
    return no_content()


_LOG_BATCH_SCHEMA = {
    "requestBody": {"required": True, "content": {JSON: {"schema": {
        "type": "object",
        "properties": {
            "metrics": {"type": "object", "description": "columns of equal length",
                        "properties": {"key": {"oneOf": [{"type": "string"},
                                                         {"type": "array", "items": {"type": "string"}}]},
                                       "value": {"type": "array", "items": {
                                           "oneOf": [{"type": "number"}, {"type": "string"}]}},
                                       "step": {"type": "array", "items": {"type": "integer"}},
                                       "timestamp": {"type": "array", "items": {"type": "integer"}}},
                        "required": ["key", "value"]},
            "params": {"type": "object", "additionalProperties": True},
            "tags": {"type": "object", "additionalProperties": True},
        }}}}},
}


def metric_points(columns: Any) -> list[tuple[Any, ...]] | None:
    """Columns → (key, value[, step[, timestamp]]) tuples; the service validates each value."""
    if columns is None:
        return None
    if not isinstance(columns, dict):
        raise InvalidInput("metrics must be an object of columns: key, value, step, timestamp",
                           field="metrics")
    unknown = set(columns) - {"key", "value", "step", "timestamp"}
    if unknown:
        raise InvalidInput(f"metrics has unknown columns {sorted(unknown)}; "
                           f"expected key, value, step, timestamp", field="metrics")
    values = columns.get("value")
    if not isinstance(values, list):
        raise InvalidInput("metrics.value must be an array", field="metrics.value")
    n = len(values)
    keys = columns.get("key")
    if isinstance(keys, str):
        keys = [keys] * n
    elif not isinstance(keys, list):
        raise InvalidInput("metrics.key must be a string or an array of strings", field="metrics.key")
    elif not all(type(k) is str for k in keys):
        raise InvalidInput("metrics.key must contain only strings", field="metrics.key")
    cols = [keys, values]
    for name in ("step", "timestamp"):
        col = columns.get(name)
        if col is None:
            if name == "step" and columns.get("timestamp") is not None:
                col = [0] * n
            else:
                break
        if not isinstance(col, list):
            raise InvalidInput(f"metrics.{name} must be an array of integers", field=f"metrics.{name}")
        cols.append(col)
    for name, col in zip(("key", "value", "step", "timestamp"), cols, strict=False):
        if len(col) != n:
            raise InvalidInput(f"metrics.{name} has {len(col)} entries but metrics.value has {n}",
                               field=f"metrics.{name}")
    return list(zip(*cols, strict=True))


def _log_batch(tracking: TrackingAPI, run_id: str, raw: bytes) -> None:
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object", field="body")
    unknown = set(body) - {"metrics", "params", "tags"}
    if unknown:
        raise InvalidInput(f"unknown fields {sorted(unknown)}; expected metrics, params, tags", field="body")
    tracking.log_batch(run_id, metric_points(body.get("metrics")), body.get("params"), body.get("tags"))


@router.post("/runs/{run_id}/log-batch", status_code=204, openapi_extra=_LOG_BATCH_SCHEMA)
async def log_batch(run_id: str, request: Request, tracking: Tracking) -> Response:
    # Parsing a 100,000-point body takes tens of milliseconds: keep it off the event loop too.
    await run_in_threadpool(_log_batch, tracking, run_id, await request.body())
    return no_content()


@router.get("/runs/{run_id}/metrics/history", response_model=MetricHistory)
def get_metric_history(run_id: str, tracking: Tracking, key: str = Query(description="the metric's key"),
                       max_points: int | None = None) -> Response:
    return render(tracking.get_metric_history(run_id, key, max_points))


# ---- artifacts -------------------------------------------------------------------------------------------


@router.get("/runs/{run_id}/artifacts", response_model=list[ArtifactInfo])
def list_artifacts(run_id: str, tracking: Tracking, path: str | None = None) -> Response:
    return render(tracking.list_artifacts(run_id, path))


_UPLOAD_SCHEMA = {
    "requestBody": {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}},
}


@router.put("/runs/{run_id}/artifacts/{path:path}", status_code=201, response_model=ArtifactInfo,
            openapi_extra=_UPLOAD_SCHEMA)
async def upload_artifact(run_id: str, path: str, request: Request, tracking: Tracking) -> Response:
    """The raw body becomes the artifact at `path`: small bodies in memory, large ones through a temp file."""
    check_run_id(run_id)
    rel = check_artifact_path(path)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= SMALL_UPLOAD:
        data = await request.body()
        info = await run_in_threadpool(tracking.log_artifact_bytes, run_id, rel, data)
        return render(info, 201)
    folder, _, name = rel.rpartition("/")
    if len(name.encode()) > MAX_FILE_NAME_BYTES:
        raise InvalidInput(f"file name {name[:40]!r}… is longer than {MAX_FILE_NAME_BYTES} bytes",
                           field="path")
    with tempfile.TemporaryDirectory(prefix="arsenale-upload-") as tmp:
        local = Path(tmp) / name
        with open(local, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        infos = await run_in_threadpool(tracking.log_artifact, run_id, local, folder or None)
    return render(infos[0], 201)


@router.get("/runs/{run_id}/artifacts/content/{path:path}",
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_artifact(run_id: str, path: str, tracking: Tracking) -> StreamingResponse:
    """One file's bytes, verified against its digest before the first byte leaves."""
    entries = tracking.list_artifacts(run_id, path)
    rel = check_artifact_path(path)
    if not any(e.path == rel and not e.is_dir for e in entries):
        if entries:
            raise InvalidInput(f"{rel!r} is a folder; list it and download its files", field="path")
        raise NotFound(f"run {run_id} has no artifact at {rel!r}", field="path")
    tmp = tempfile.mkdtemp(prefix="arsenale-download-")
    try:
        local = tracking.download_artifacts(run_id, rel, tmp)
        size = local.stat().st_size
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StreamingResponse(stream_and_remove(tmp, local), media_type="application/octet-stream",
                             headers={"Content-Length": str(size)})
