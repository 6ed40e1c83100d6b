"""The model registry over HTTP: blobs, models, versions, aliases, stages, history, lineage, diffs, files;
and the registry's webhooks.

A version is registered in two steps, as in the embedded SDK: each file is uploaded once to
`POST /blobs` (raw bytes in, `{"digest", "size"}` out; identical content is stored once), then
`POST /models/{name}/versions` names the files by digest. Model names travel as one
percent-encoded path segment (they never contain '/'); file paths as the rest of the path.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from arsenale.errors import NotFound
from arsenale.registry.models import (
    Lineage,
    ModelEvent,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    VersionDiff,
)
from arsenale.registry.service import LegalHold
from arsenale.registry.webhooks import Delivery, Webhook, WebhookCreated
from arsenale.server.auth import ADMIN, READ
from arsenale.server.routers import API_PREFIX, Registry, Webhooks, no_content, render, stream_and_remove
from arsenale.tracking.artifact_paths import check_artifact_path

router = APIRouter(prefix=API_PREFIX, tags=["registry"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateModel(_Body):
    name: str
    description: str | None = None
    tags: dict[str, Any] | None = None


class CreateVersion(_Body):
    files: list[ModelFile] | None = None
    flavor: str | None = None
    flavor_meta: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None
    run_id: str | None = None
    source: str | None = None
    description: str | None = None
    tags: dict[str, Any] | None = None


class UpdateVersion(_Body):
    description: str | None = None
    tags: dict[str, Any] | None = None


class SetAlias(_Body):
    version: int
    reason: str | None = None


class UndoAlias(_Body):
    reason: str | None = None


class SetLegalHold(_Body):
    reason: str


class Transition(_Body):
    stage: str
    archive_existing: bool = False
    reason: str | None = None


class BlobInfo(BaseModel):
    digest: str
    size: int


class CreateWebhook(_Body):
    url: str
    events: list[str]
    model_name: str | None = None
    secret: str | None = None


# ---- blobs -----------------------------------------------------------------------------------------------

_UPLOAD_SCHEMA = {
    "requestBody": {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}},
}


@router.post("/blobs", status_code=201, response_model=BlobInfo, openapi_extra=_UPLOAD_SCHEMA)
async def upload_blob(request: Request, registry: Registry) -> Response:
    """The raw body, streamed to a temporary file and stored once by content (`BodyLimit` caps its size)."""
    with tempfile.TemporaryDirectory(prefix="arsenale-blob-") as tmp:
        local = Path(tmp) / "blob"
        with open(local, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        digest, size = await run_in_threadpool(registry.upload_file, local)
    return render({"digest": digest, "size": size}, 201)


# ---- models ----------------------------------------------------------------------------------------------


@router.post("/models", status_code=201, response_model=RegisteredModel)
def create_model(body: CreateModel, registry: Registry) -> Response:
    return render(registry.create_model(body.name, body.description, body.tags), 201)


@router.get("/models", response_model=list[RegisteredModel])
def list_models(registry: Registry, name_like: str | None = None,
                limit: int = Query(1000, ge=1, le=10_000)) -> Response:
    return render(registry.list_models(name_like, limit))


@router.get("/models/{name}", response_model=RegisteredModel)
def get_model(name: str, registry: Registry) -> Response:
    return render(registry.get_model(name))


@router.get("/models/{name}/events", response_model=list[ModelEvent])
def events(name: str, registry: Registry, limit: int = Query(200, ge=1, le=10_000)) -> Response:
    return render(registry.events(name, limit))


@router.get("/models/{name}/diff", response_model=VersionDiff)
def diff(name: str, registry: Registry, a: int = Query(description="the first version"),
         b: int = Query(description="the second version")) -> Response:
    return render(registry.diff(name, a, b))


@router.get("/resolve", response_model=ModelVersion)
def resolve(registry: Registry, uri: str = Query(description="models:/name/3, models:/name@alias, "
                                                             "models:/name/Production or models:/name/latest")
            ) -> Response:
    return render(registry.resolve(uri))


# ---- versions --------------------------------------------------------------------------------------------


@router.post("/models/{name}/versions", status_code=201, response_model=ModelVersion)
def create_version(name: str, body: CreateVersion, registry: Registry) -> Response:
    return render(registry.create_version(name, files=body.files, flavor=body.flavor,
                                          flavor_meta=body.flavor_meta, contract=body.contract,
                                          run_id=body.run_id, source=body.source,
                                          description=body.description, tags=body.tags), 201)


@router.get("/models/{name}/versions", response_model=list[ModelVersion])
def list_versions(name: str, registry: Registry,
                  stage: Annotated[list[str] | None, Query(description="repeat for several stages")] = None
                  ) -> Response:
    return render(registry.list_versions(name, stage))


@router.get("/models/{name}/versions/{version}", response_model=ModelVersion)
def get_version(name: str, version: int, registry: Registry) -> Response:
    return render(registry.get_version(name, version))


@router.patch("/models/{name}/versions/{version}", response_model=ModelVersion)
def update_version(name: str, version: int, body: UpdateVersion, registry: Registry) -> Response:
    return render(registry.update_version(name, version, body.description, body.tags))


@router.post("/models/{name}/versions/{version}/stage", response_model=ModelVersion)
def transition_stage(name: str, version: int, body: Transition, registry: Registry) -> Response:
    return render(registry.transition_stage(name, version, body.stage, body.archive_existing, body.reason))


@router.get("/models/{name}/versions/{version}/lineage", response_model=Lineage)
def lineage(name: str, version: int, registry: Registry) -> Response:
    return render(registry.lineage(name, version))


@router.get("/models/{name}/versions/{version}/files/{path:path}",
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_file(name: str, version: int, path: str, registry: Registry) -> StreamingResponse:
    """One file of the version's manifest, verified against its digest before the first byte leaves."""
    mv = registry.get_version(name, version)
    rel = check_artifact_path(path)
    entry = next((f for f in mv.files if f.path == rel), None)
    if entry is None:
        raise NotFound(f"model {mv.name!r} version {mv.version} has no file {rel!r}", field="path")
    tmp = tempfile.mkdtemp(prefix="arsenale-download-")
    try:
        local = registry.blobs.download(entry.digest, Path(tmp) / "file")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StreamingResponse(stream_and_remove(tmp, local), media_type="application/octet-stream",
                             headers={"Content-Length": str(entry.size), "X-Arsenale-Digest": entry.digest})


# ---- aliases ---------------------------------------------------------------------------------------------


@router.put("/models/{name}/aliases/{alias}", response_model=ModelVersion)
def set_alias(name: str, alias: str, body: SetAlias, registry: Registry) -> Response:
    return render(registry.set_alias(name, alias, body.version, body.reason))


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
def delete_alias(name: str, alias: str, registry: Registry, reason: str | None = None) -> Response:
    registry.delete_alias(name, alias, reason)
    return no_content()


@router.post("/models/{name}/aliases/{alias}/undo", response_model=ModelVersion | None)
def undo_alias(name: str, alias: str, registry: Registry, body: UndoAlias | None = None) -> Response:
    """Moves the alias back; answers the version it now points at, or null when the undo removed it."""
    return render(registry.undo_alias(name, alias, body.reason if body else None))


# ---- legal holds and deletion (holding: editor; releasing and deleting: admin) -------------------------------


@router.post("/models/{name}/versions/{version}/legal-hold", status_code=201, response_model=LegalHold)
def set_legal_hold(name: str, version: int, body: SetLegalHold, registry: Registry) -> Response:
    return render(registry.set_legal_hold(name, version, body.reason), 201)


@router.delete("/models/{name}/versions/{version}/legal-hold", response_model=LegalHold, openapi_extra=ADMIN)
def release_legal_hold(name: str, version: int, registry: Registry, reason: str | None = None) -> Response:
    return render(registry.release_legal_hold(name, version, reason))


@router.get("/legal-holds", response_model=list[LegalHold], openapi_extra=READ)
def legal_holds(registry: Registry, name: str | None = None, all: bool = False) -> Response:
    """Active holds (`?all=true`: released ones too), of one model with `?name=`."""
    return render(registry.legal_holds(name, active_only=not all))


@router.delete("/models/{name}/versions/{version}", status_code=204, openapi_extra=ADMIN)
def delete_model_version(name: str, version: int, registry: Registry, reason: str | None = None) -> Response:
    """409 while an alias points at the version, a deployment serves it, or it is on legal hold."""
    registry.delete_model_version(name, version, reason)
    return no_content()


# ---- webhooks --------------------------------------------------------------------------------------------


@router.post("/webhooks", status_code=201, response_model=WebhookCreated, tags=["webhooks"])
def create_webhook(body: CreateWebhook, webhooks: Webhooks) -> Response:
    """The answer is the only place the signing secret is ever shown."""
    return render(webhooks.create(body.url, body.events, body.model_name, body.secret), 201)


@router.get("/webhooks", response_model=list[Webhook], tags=["webhooks"])
def list_webhooks(webhooks: Webhooks) -> Response:
    return render(webhooks.list())


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
def delete_webhook(webhook_id: str, webhooks: Webhooks) -> Response:
    webhooks.delete(webhook_id)
    return no_content()


@router.get("/webhooks/{webhook_id}/deliveries", response_model=list[Delivery], tags=["webhooks"])
def deliveries(webhook_id: str, webhooks: Webhooks, limit: int = Query(50, ge=1, le=10_000)) -> Response:
    return render(webhooks.deliveries(webhook_id, limit))

