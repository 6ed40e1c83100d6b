"""Datasets over HTTP: register, look up, download, validation reports, and the runs that read them.

Two ways to register a version:
- `POST /datasets/{name}/upload?policy=…&format=csv|parquet` with the file as the raw body (for curl; the
  body is capped by the JSON size limit; a validation schema can ride along as the `schema` query parameter);
- `POST /blobs` with the Parquet bytes (artifact size limit), then `POST /datasets/{name}/versions` naming the
  digest, with the schema in the JSON body: what `DatasetClient` does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from arsenale.data.datasets import DatasetService
from arsenale.data.models import DATA_FILE, QUARANTINE_FILE, Dataset, DatasetVersion, RunInput
from arsenale.data.validation import ValidationReport
from arsenale.errors import InvalidInput
from arsenale.server.routers import API_PREFIX, render, stream_and_remove

router = APIRouter(prefix=API_PREFIX, tags=["datasets"])


def _datasets(request: Request) -> DatasetService:
    return request.app.state.client.datasets  # type: ignore[no-any-return]


Datasets = Annotated[DatasetService, Depends(_datasets)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterUploaded(_Body):
    digest: str
    format: str = "parquet"
    policy: str = "reject"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema", description="a validation schema")
    description: str | None = None
    source: str | None = None


class RecordInput(_Body):
    name: str
    version: int | str


_UPLOAD_SCHEMA = {
    "requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}}}},
}


@router.post("/datasets/{name}/upload", status_code=201, response_model=DatasetVersion,
             openapi_extra=_UPLOAD_SCHEMA)
async def upload(request: Request, name: str, datasets: Datasets,
                 format: str = Query(description="csv or parquet"),
                 policy: str = Query("reject", description="reject, quarantine or allow"),
                 description: str | None = None, source: str | None = None,
                 schema: str | None = Query(None, description="a validation schema as JSON text")) -> Response:
    """The file as the raw body, streamed to a temporary file, then registered."""
    with tempfile.TemporaryDirectory(prefix="arsenale-dataset-") as tmp:
        local = Path(tmp) / f"upload.{format.lower() if format.lower() in ('csv', 'parquet') else 'bin'}"
        with open(local, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        if local.stat().st_size == 0:
            raise InvalidInput("the request body (the data file) is empty", field="body")
        dv = await run_in_threadpool(lambda: datasets.register(name, local, description=description, schema=schema,
                                                               policy=policy, format=format,
                                                               source=source or "upload"))
    return render(dv, 201)


@router.post("/datasets/{name}/versions", status_code=201, response_model=DatasetVersion)
def register(name: str, body: RegisterUploaded, datasets: Datasets) -> Response:
    return render(datasets.register_blob(name, body.digest, format=body.format, description=body.description,
                                         schema=body.schema_, policy=body.policy, source=body.source), 201)


@router.get("/datasets", response_model=list[Dataset])
def list_datasets(datasets: Datasets, name_like: str | None = None,
                  limit: int = Query(1000, ge=1, le=10_000)) -> Response:
    return render(datasets.list(name_like, limit))


@router.get("/datasets/{name}", response_model=Dataset)
def get_dataset(name: str, datasets: Datasets) -> Response:
    return render(datasets.get_dataset(name))


@router.get("/datasets/{name}/versions", response_model=list[DatasetVersion])
def versions(name: str, datasets: Datasets) -> Response:
    return render(datasets.versions(name))


@router.get("/datasets/{name}/versions/{version}", response_model=DatasetVersion)
def get_version(name: str, version: str, datasets: Datasets) -> Response:
    """`version` is a number or `latest` (the newest version that was not rejected)."""
    return render(datasets.get(name, version))


@router.get("/datasets/{name}/versions/{version}/validation", response_model=ValidationReport)
def validation(name: str, version: str, datasets: Datasets) -> Response:
    return render(datasets.report(name, version))


@router.get("/datasets/{name}/versions/{version}/download",
            responses={200: {"content": {"application/vnd.apache.parquet": {}}}})
def download(name: str, version: str, datasets: Datasets, quarantine: bool = False) -> StreamingResponse:
    """The version's Parquet file (or its quarantined rows), verified against its digest before sending."""
    tmp = tempfile.mkdtemp(prefix="arsenale-download-")
    try:
        local = Path(tmp) / "data.parquet"
        dv, entry = datasets.download_file(name, version, QUARANTINE_FILE if quarantine else DATA_FILE, local)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    filename = f"{dv.name}-v{dv.version}{'-quarantine' if quarantine else ''}.parquet"
    return StreamingResponse(stream_and_remove(tmp, local), media_type="application/vnd.apache.parquet",
                             headers={"Content-Length": str(entry.size), "X-Arsenale-Digest": entry.digest,
                                      "X-Arsenale-Version": str(dv.version),
                                      "Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/runs/{run_id}/inputs", status_code=201, response_model=RunInput)
def record_input(run_id: str, body: RecordInput, datasets: Datasets) -> Response:
    return render(datasets.record_input(run_id, body.name, body.version), 201)


@router.get("/runs/{run_id}/inputs", response_model=list[RunInput])
def inputs(run_id: str, datasets: Datasets) -> Response:
    return render(datasets.inputs(run_id))
