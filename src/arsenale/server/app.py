"""The FastAPI application behind `arsenale server` and `arsenale ui`.

    create_app(client)   the REST API under /api/v1/, /health, /metrics (requests, and every monitor's newest
                         evaluation), /docs, and the dashboard at /
    serve(host, port)    runs it with uvicorn

The server always wraps a local `Client` (SQLite or PostgreSQL); a server in front of a server is
refused. Errors keep one shape, `{"error_code", "message", "field"?}`, whatever raised them:
an `ArsenaleError` gets its own status; request validation failures get 400 naming the field;
an oversized body gets 413; anything else gets a generic 500 and a traceback in the server log only.

Identity: without auth, the services record the server's own actor in the audit trail (a client's
`X-Arsenale-Actor` is not trusted). With auth (`server.auth`), every route needs a token or a dashboard
session, and the audit trail names the token that made each change.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arsenale.config import get_settings
from arsenale.errors import ArsenaleError, InvalidInput
from arsenale.platform import Client
from arsenale.security.limits import oversized_headers
from arsenale.server import login as login_routes
from arsenale.server.auth import PUBLIC, AuthConfig, authorize
from arsenale.server.feature_metrics import FeatureCollector
from arsenale.server.monitor_metrics import MonitorCollector
from arsenale.server.routers import alerts as alert_routes
from arsenale.server.routers import audit as audit_routes
from arsenale.server.routers import data as data_routes
from arsenale.server.routers import deployments as deployment_routes
from arsenale.server.routers import features as feature_routes
from arsenale.server.routers import gates as gate_routes
from arsenale.server.routers import indexes as index_routes
from arsenale.server.routers import metrics as metric_routes
from arsenale.server.routers import monitoring as monitoring_routes
from arsenale.server.routers import otlp as otlp_routes
from arsenale.server.routers import projects as project_routes
from arsenale.server.routers import prompts as prompt_routes
from arsenale.server.routers import registry as registry_routes
from arsenale.server.routers import retention as retention_routes
from arsenale.server.routers import secrets as secret_routes
from arsenale.server.routers import tokens as token_routes
from arsenale.server.routers import traces as trace_routes
from arsenale.server.routers import tracking as tracking_routes

__all__ = ["create_app", "serve"]

log = logging.getLogger("arsenale.server")

DASHBOARD_MODULE = "arsenale.server.dashboard"
_STATUS_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "RESOURCE_DOES_NOT_EXIST", 409: "RESOURCE_ALREADY_EXISTS", 429: "RATE_LIMITED",
                 503: "BACKEND_UNAVAILABLE"}


def _refuse_remote(uri: str) -> None:
    if uri.startswith(("http://", "https://")):
        raise InvalidInput(f"the server must wrap a local store (a path, sqlite:///… or postgresql://…), "
                           f"not another server: {uri}", field="uri")


class _LazyClient:
    """Stands in for `Client()` until the first request needs it, then builds it once."""

    def __init__(self) -> None:
        self._client: Client | None = None
        self._lock = threading.Lock()

    def get(self) -> Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = Client()
                    _refuse_remote(client.uri)
                    self._client = client
        return self._client

    def __getattr__(self, name: str) -> Any:
        # Every component interface (tracking, registry, webhooks, audit, …) of the real client.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)


# ---- error bodies ----------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, field: str | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error_code": code, "message": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


async def _on_arsenale_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ArsenaleError)
    if exc.http_status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


def _field(loc: tuple[Any, ...]) -> str:
    """`("body", "tags", "x")` → "tags.x"; `("query", "limit")` → "limit"; `("body",)` → "body"."""
    parts = loc[1:] if len(loc) > 1 and loc[0] in ("body", "query", "path", "header") else loc
    return ".".join(str(p) for p in parts) or "body"


async def _on_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    messages, fields = [], []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "decode error")
            field, msg = "body", f"request body is not valid JSON ({reason})"
        else:
            field, msg = _field(loc), str(err.get("msg", "invalid value"))
        fields.append(field)
        messages.append(f"{field}: {msg}")
    return _error(400, InvalidInput.code, "; ".join(messages) or "invalid request",
                  fields[0] if fields else "body")


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return _error(exc.status_code, _STATUS_CODES.get(exc.status_code, f"HTTP_{exc.status_code}"), message,
                  headers=exc.headers)


# ---- middleware (plain ASGI: cheap on the log-batch hot path) ----------------------------------------------


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """413 for bodies over the limit: at once from Content-Length, or as soon as a streamed body passes it;
    431 for headers over `security.limits`' bounds."""

    def __init__(self, app: ASGIApp, max_json_bytes: int, max_artifact_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_artifact_bytes = max_artifact_bytes

    def _limit(self, scope: Scope) -> int:
        path = scope["path"].rstrip("/")
        if (scope["method"] == "PUT" and "/artifacts/" in path) or (scope["method"] == "POST" and (
                path.endswith("/api/v1/blobs") or (path.startswith("/api/v1/datasets/") and path.endswith("/upload")))):
            return self.max_artifact_bytes
        return self.max_json_bytes

    async def _reject(self, limit: int, send: Send) -> None:
        response = _error(413, InvalidInput.code, f"request body is larger than the {_size(limit)} limit",
                          "body", headers={"Connection": "close"})
        await response({"type": "http"}, _no_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        headers = scope["headers"]
        too_large = oversized_headers(headers)
        if too_large is not None:
            response = _error(431, InvalidInput.code, too_large, "headers", headers={"Connection": "close"})
            await response({"type": "http"}, _no_receive, send)
            return
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await self._reject(limit, send)
                    return
                break
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app answers to a cut-off body, the answer is 413
                if not started:
                    started = True
                    await self._reject(limit, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:
                await self._reject(limit, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


class Guard:
    """The last line: an unexpected exception becomes a generic 500 and a logged traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = _error(500, ArsenaleError.code,
                              "internal server error; the details are in the server log")
            await response(scope, receive, send)


class Metrics:
    """Prometheus request counts and latencies per route template (never per raw path) and status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("arsenale_http_requests", "HTTP requests served.",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("arsenale_http_request_duration_seconds", "Time to serve an HTTP request.",
                                 ["method", "route", "status"], registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            labels = (scope["method"], route, str(status))
            self.requests.labels(*labels).inc()
            self.latency.labels(*labels).observe(time.perf_counter() - t0)


# ---- the app ---------------------------------------------------------------------------------------------


def create_app(client: Client | None = None, *, max_json_bytes: int | None = None,
               max_artifact_bytes: int | None = None, auth: bool | None = None,
               rate_limit_per_minute: int | None = None) -> FastAPI:
    """The whole server. `client` must be local; by default `Client()` from settings, built on first use.
    `auth` (default `ARSENALE_AUTH`) requires a token or a dashboard login on every route but /health."""
    settings = get_settings()
    if client is None:
        _refuse_remote(settings.resolved_uri())
    else:
        _refuse_remote(client.uri)
    json_limit = max_json_bytes or settings.max_json_bytes
    artifact_limit = max_artifact_bytes or settings.max_artifact_bytes

    from arsenale import __version__

    app = FastAPI(title="Arsenale", version=__version__, docs_url="/docs", redoc_url=None,
                  description="Experiment tracking, registry, serving and governance for ML models.",
                  dependencies=[Depends(authorize)])
    app.state.client = client if client is not None else _LazyClient()
    app.state.auth = None
    if auth if auth is not None else settings.auth:
        from arsenale.security.tokens import TokenService

        key = settings.secret_key.encode() if settings.secret_key else secrets.token_bytes(32)
        app.state.auth = AuthConfig(lambda: TokenService(app.state.client.audit.engine, "server"),
                                    rate_per_minute=rate_limit_per_minute or settings.rate_limit_per_minute,
                                    secret_key=key)
    app.state.max_json_bytes = json_limit  # also bounds what a gzip body may inflate to (OTLP)
    app.state.metrics_registry = registry = CollectorRegistry(auto_describe=True)
    # Read at scrape time through whatever client the app holds then (the lazy one is built on first use).
    registry.register(MonitorCollector(lambda: app.state.client.monitors.engine))
    registry.register(FeatureCollector(lambda: app.state.client.features.engine))

    app.add_exception_handler(ArsenaleError, _on_arsenale_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Added last = outermost: metrics see every answer, including the guard's 500s and the 413s.
    app.add_middleware(BodyLimit, max_json_bytes=json_limit, max_artifact_bytes=artifact_limit)
    app.add_middleware(Guard)
    app.add_middleware(Metrics, registry=registry)

    app.include_router(tracking_routes.router)
    app.include_router(registry_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(data_routes.router)
    app.include_router(deployment_routes.router)
    app.include_router(monitoring_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(feature_routes.router)
    app.include_router(gate_routes.router)
    app.include_router(prompt_routes.router)
    app.include_router(metric_routes.router)
    app.include_router(trace_routes.router)
    app.include_router(index_routes.router)
    app.include_router(otlp_routes.router)
    app.include_router(token_routes.router)
    app.include_router(project_routes.router)
    app.include_router(retention_routes.router)
    app.include_router(secret_routes.router)
    app.include_router(login_routes.router)

    @app.get("/health", tags=["operations"], openapi_extra=PUBLIC)
    async def health(request: Request) -> Response:
        """200 when the metadata store answers a trivial query, 503 otherwise."""
        try:
            await run_in_threadpool(request.app.state.client.audit.entries, limit=1)
        except Exception as exc:  # any failure means "not healthy", with the reason
            log.warning("health check failed: %s", exc)
            message = exc.message if isinstance(exc, ArsenaleError) else type(exc).__name__
            return JSONResponse({"status": "unavailable", "message": message}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    if importlib.util.find_spec(DASHBOARD_MODULE) is not None:
        importlib.import_module(DASHBOARD_MODULE).install(app)
    return app


def serve(host: str, port: int, client: Client | None = None, *, auth: bool | None = None) -> None:
    """Run the server in this process until interrupted (one worker; scale out with replicas)."""
    import uvicorn

    uvicorn.run(create_app(client, auth=auth), host=host, port=port, workers=1, log_level="warning")
