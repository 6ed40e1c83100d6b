"""Named secrets over HTTP, under /api/v1/secrets (admin only when auth is on). No route returns a value.

    PUT    /secrets/{name}       set it (create or replace): {"value": "…", "project": "*"} (audited, no value)
    GET    /secrets              every secret's name and times (`?project=`: that project's and the shared ones)
    GET    /secrets/{name}       one secret's name and times (`?project=`, default "*")
    DELETE /secrets/{name}       delete it (`?project=`, default "*"; audited)
    POST   /secrets/rotate       re-encrypt every stored value under the first key

The body is read as plain JSON rather than through a strict schema, so that a wrong type is reported by the
service by its type name, and no validation message can ever echo a value.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from arsenale.errors import InvalidInput
from arsenale.security.secrets import MAX_VALUE_BYTES, RotationReport, SecretInfo, SecretService
from arsenale.security.tokens import ALL_PROJECTS
from arsenale.server.auth import ADMIN
from arsenale.server.routers import API_PREFIX, no_content, parse_json, render

router = APIRouter(prefix=API_PREFIX, tags=["security"])

_MAX_BODY = 4 * MAX_VALUE_BYTES + 4096  # a value at the limit, JSON-escaped, plus the project


def _secrets(request: Request) -> SecretService:
    return request.app.state.client.secrets  # type: ignore[no-any-return]


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise InvalidInput(f"the request body is {len(raw)} bytes; a secret's value may be at most "
                           f"{MAX_VALUE_BYTES} bytes", field="value")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidInput('the body must be a JSON object: {"value": "…", "project": "*"}', field="body")
    unknown = sorted(set(body) - {"value", "project"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(map(repr, unknown))}; expected value and project",
                           field=str(unknown[0])[:100])
    if "value" not in body:
        raise InvalidInput("the body needs a value", field="value")
    return body


@router.put("/secrets/{name:path}", response_model=SecretInfo, openapi_extra=ADMIN)
async def set_secret(name: str, request: Request) -> Response:
    body = await _body(request)
    info = await run_in_threadpool(_secrets(request).set, name, body["value"],
                                   project=body.get("project", ALL_PROJECTS))
    return render(info)


@router.get("/secrets", response_model=list[SecretInfo], openapi_extra=ADMIN)
def list_secrets(request: Request, project: str | None = None) -> Response:
    return render(_secrets(request).list(project=project))


@router.post("/secrets/rotate", response_model=RotationReport, openapi_extra=ADMIN)
def rotate(request: Request) -> Response:
    return render(_secrets(request).rotate())


@router.get("/secrets/{name:path}", response_model=SecretInfo, openapi_extra=ADMIN)
def get_secret(name: str, request: Request, project: str = ALL_PROJECTS) -> Response:
    return render(_secrets(request).get(name, project=project))


@router.delete("/secrets/{name:path}", status_code=204, openapi_extra=ADMIN)
def delete_secret(name: str, request: Request, project: str = ALL_PROJECTS) -> Response:
    _secrets(request).delete(name, project=project)
    return no_content()
