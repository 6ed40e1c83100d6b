"""The REST API under `/api/v1/`: one thin router per component (parse, call one service method, render).

Responses are rendered with pydantic-core's serializer (NaN and infinities as the strings
"NaN", "Infinity", "-Infinity"), so a diverging loss survives the trip and large payloads
such as a 100,000-point metric history cost milliseconds, not a validation pass per point.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pydantic_core
from fastapi import Depends, Request, Response

from arsenale.audit.service import AuditAPI
from arsenale.errors import InvalidInput
from arsenale.registry.service import RegistryAPI
from arsenale.registry.webhooks import WebhookService
from arsenale.serving.service import DeploymentAPI
from arsenale.tracking.service import TrackingAPI

API_PREFIX = "/api/v1"
JSON = "application/json"


def render(value: Any, status_code: int = 200) -> Response:
    """A JSON response for a pydantic model, a list of them, or plain data."""
    body = pydantic_core.to_json(value, inf_nan_mode="strings")
    return Response(body, status_code=status_code, media_type=JSON)


def no_content() -> Response:
    return Response(status_code=204)


def parse_json(raw: bytes) -> Any:
    """A request body parsed without per-field models (the fast path for large batches)."""
    if not raw:
        raise InvalidInput("request body must be a JSON object", field="body")
    try:
        return pydantic_core.from_json(raw)
    except ValueError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}", field="body") from None


def stream_and_remove(folder: str, file: Path, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Stream a verified temporary copy, then delete its folder (also when the client goes away)."""
    try:
        with open(file, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tracking(request: Request) -> TrackingAPI:
    return request.app.state.client.tracking  # type: ignore[no-any-return]


def _audit(request: Request) -> AuditAPI:
    return request.app.state.client.audit  # type: ignore[no-any-return]


def _registry(request: Request) -> RegistryAPI:
    return request.app.state.client.registry  # type: ignore[no-any-return]


def _deployments(request: Request) -> DeploymentAPI:
    return request.app.state.client.deployments  # type: ignore[no-any-return]


def _webhooks(request: Request) -> WebhookService:
    webhooks = getattr(request.app.state.client, "webhooks", None)
    if webhooks is None:
        raise InvalidInput("webhooks are managed by the server that owns the store", field="webhooks")
    return webhooks  # type: ignore[no-any-return]


Tracking = Annotated[TrackingAPI, Depends(_tracking)]
Registry = Annotated[RegistryAPI, Depends(_registry)]
Webhooks = Annotated[WebhookService, Depends(_webhooks)]
Audit = Annotated[AuditAPI, Depends(_audit)]
Deployments = Annotated[DeploymentAPI, Depends(_deployments)]
