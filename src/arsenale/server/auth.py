"""Authentication and roles for the server: one dependency on every route.

With auth on (`arsenale server --auth`, `ARSENALE_AUTH=true`, `create_app(auth=True)`), every route except
the few marked public (`/health`, the login page) needs either `Authorization: Bearer ars_…` (SDK, CLI,
REST) or the dashboard's session cookie. What a route needs:

- reads (GET, HEAD, and POSTs that only read, marked `openapi_extra=READ`) need `viewer`;
- everything else needs `editor`; routes marked `openapi_extra=ADMIN` (tokens) need `admin`.

Projects: a token made for one project confines every request it signs to that project (another project's
ids read as 404, lists show only its own things, new things are created in it); a token for all projects
(`*`) may name one with the `X-Arsenale-Project` header, else it sees everything and creates in `default`.
What spans projects (the audit trail, delivery metrics, secrets, retention, `/metrics`, the dashboard's
delivery and security pages) needs a token for all projects.

The principal's name goes into the audit trail (`token:<name>`) through `store.audit.acting_as`, so every
entry a request writes names who made it. Requests are limited per token (a token bucket; 429 with
`Retry-After`). A browser without credentials asking for a dashboard page is sent to `/login`.

The session cookie holds `<token id>.<expiry>.<HMAC>` under a key from `ARSENALE_SECRET_KEY` (else one
made per process, which logs everyone out at a restart); it is HttpOnly and SameSite=Strict, and a form
posted with it must carry the CSRF value derived from it (`csrf_token(request)` in templates).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from arsenale.errors import Forbidden, InvalidInput, Unauthenticated
from arsenale.security.projects import (
    DEFAULT_PROJECT,
    PROJECT_HEADER,
    ProjectScope,
    check_project_name,
    set_scope,
)
from arsenale.security.tokens import ALL_PROJECTS, Principal, TokenService, role_allows
from arsenale.store.audit import acting_as

__all__ = ["ADMIN", "PUBLIC", "READ", "SESSION_COOKIE", "AuthConfig", "authorize", "csrf_token", "principal_of"]

READ: dict[str, Any] = {"x-arsenale-role": "viewer"}
ADMIN: dict[str, Any] = {"x-arsenale-role": "admin"}
PUBLIC: dict[str, Any] = {"x-arsenale-role": "public"}
SESSION_COOKIE = "arsenale_session"
SESSION_SECONDS = 12 * 3600
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_API_PREFIXES = ("/api/", "/v1/", "/metrics", "/openapi.json", "/docs")
PLATFORM_PATHS = ("/api/v1/audit", "/api/v1/metrics/", "/api/v1/secrets", "/api/v1/retention", "/metrics",
                  "/delivery", "/security")
"""What spans every project: only a token for all projects ('*') may use these."""


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class AuthConfig:
    """What `authorize` needs; `tokens` is built on first use (the app's client may be lazy)."""

    tokens_factory: Any
    rate_per_minute: int = 6000
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _tokens: TokenService | None = None
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tokens(self) -> TokenService:
        if self._tokens is None:
            self._tokens = self.tokens_factory()
        return self._tokens

    def take(self, token_id: str) -> float:
        """0 when the request may go on, else the seconds until this token may send another."""
        rate = self.rate_per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(token_id, _Bucket(float(self.rate_per_minute), now))
            bucket.tokens = min(float(self.rate_per_minute), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate

    # ---- the session cookie --------------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret_key, text.encode(), hashlib.sha256).hexdigest()

    def session_value(self, token_id: str) -> str:
        body = f"{token_id}.{int(time.time()) + SESSION_SECONDS}"
        return f"{body}.{self._sign(body)}"

    def session_token_id(self, value: str) -> str | None:
        parts = value.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(parts[2], self._sign(body)) or int(parts[1]) < time.time():
            return None
        return parts[0]

    def csrf_for(self, session: str) -> str:
        return self._sign(f"csrf:{session}")


def _needed_role(request: Request) -> str:
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    declared = extra.get("x-arsenale-role")
    if declared:
        return str(declared)
    return "viewer" if request.method in _SAFE_METHODS else "editor"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return value.strip()


def _is_page(request: Request) -> bool:
    return request.method in _SAFE_METHODS and not request.url.path.startswith(_API_PREFIXES)


async def _from_cookie(request: Request, config: AuthConfig, cookie: str) -> Principal:
    token_id = config.session_token_id(cookie)
    if token_id is None:
        raise Unauthenticated("the session has expired: log in again")
    info = await run_in_threadpool(config.tokens.get, token_id)
    if not info.active:
        raise Unauthenticated("the session's token was revoked or has expired: log in again")
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            sent = form_field(await request.body(), "csrf")
        if not sent or not hmac.compare_digest(sent, config.csrf_for(cookie)):
            raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")
    return Principal(token_id=info.id, name=info.name, role=info.role, project=info.project)


def _named_project(request: Request) -> str | None:
    named = request.headers.get(PROJECT_HEADER)
    if named is None:
        return None
    try:
        return check_project_name(named)
    except InvalidInput as exc:
        raise HTTPException(400, f"{PROJECT_HEADER}: {exc.message}") from None


def _is_platform_path(path: str) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") or (p.endswith("/") and path.startswith(p))
               for p in PLATFORM_PATHS)


def _scope_for(request: Request, principal: Principal | None) -> ProjectScope:
    named = _named_project(request)
    if principal is None or principal.project == ALL_PROJECTS:
        return ProjectScope(named, confined=True) if named else ProjectScope(DEFAULT_PROJECT, confined=False)
    if named is not None and named != principal.project:
        raise Forbidden(f"token {principal.name!r} is for project {principal.project!r}, not {named!r}")
    if _is_platform_path(request.url.path):
        raise Forbidden(f"token {principal.name!r} is for project {principal.project!r}; this spans every "
                        "project and needs a token for all projects ('*')")
    return ProjectScope(principal.project, confined=True)


async def authorize(request: Request) -> None:
    """The dependency every route runs (installed on the app): 401, 403 or 429, or the request goes on
    acting as its principal, in its project."""
    config: AuthConfig | None = getattr(request.app.state, "auth", None)
    if config is None:
        set_scope(_scope_for(request, None))
        return
    needed = _needed_role(request)
    if needed == "public":
        return
    try:
        token = _bearer(request)
        cookie = request.cookies.get(SESSION_COOKIE) if token is None else None
        if token is not None:
            principal = await run_in_threadpool(config.tokens.verify, token)
        elif cookie:
            principal = await _from_cookie(request, config, cookie)
        else:
            raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>' "
                                  "(create one with `arsenale tokens create`)")
    except Unauthenticated as exc:
        if _is_page(request):
            raise HTTPException(303, "log in first", headers={
                "Location": f"/login?next={quote(request.url.path, safe='/')}"}) from None
        raise HTTPException(401, exc.message, headers={"WWW-Authenticate": "Bearer"}) from None
    wait = config.take(principal.token_id)
    if wait > 0:
        raise HTTPException(429, f"too many requests for token {principal.name!r}; retry in {wait:.1f} s",
                            headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    if not role_allows(principal.role, needed):
        raise Forbidden(f"token {principal.name!r} has the {principal.role} role; this needs {needed}")
    scope = _scope_for(request, principal)
    request.state.principal = principal
    acting_as.set(principal.actor)
    set_scope(scope)


def form_field(body: bytes, name: str) -> str:
    """One field of a url-encoded form (the dashboard's forms are that small; no multipart parser needed)."""
    values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=50).get(name)
    return values[0] if values else ""


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def csrf_token(request: Request) -> str:
    """The value a dashboard form posts as `csrf` ('' when auth is off or the page was not opened with a
    session cookie)."""
    config: AuthConfig | None = getattr(request.app.state, "auth", None)
    cookie = request.cookies.get(SESSION_COOKIE)
    return config.csrf_for(cookie) if config is not None and cookie else ""
