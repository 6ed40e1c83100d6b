"""API tokens over HTTP, under /api/v1/tokens (admin only), and who a request acts as.

    POST   /tokens            a new token: its secret is in this answer and never again (201; audited)
    GET    /tokens            every active token (`?all=true`: revoked and expired too), never a secret
    DELETE /tokens/{id}       revoke it at once (audited)
    GET    /auth/whoami       the calling token's name, role and project

An admin token for one project makes, lists and revokes that project's tokens only.

Token management over HTTP needs auth on: a server without it would let anyone mint tokens for the day it
is turned on. Without auth, manage tokens next to the store with `arsenale tokens`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import Forbidden, NotFound
from arsenale.security.tokens import ALL_PROJECTS, TokenInfo, TokenService
from arsenale.server.auth import ADMIN, principal_of
from arsenale.server.routers import API_PREFIX, render

router = APIRouter(prefix=API_PREFIX, tags=["security"])


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(description="what the token is for, e.g. ci or alice")
    role: str = Field("viewer", description="viewer, editor or admin")
    project: str = Field(ALL_PROJECTS, description="the project it acts in; '*' for every project")
    expires: str | None = Field(None, description="a lifetime such as 90d or 12h; none = until revoked")


class CreatedToken(TokenInfo):
    token: str = Field(description="the secret: shown once")


class WhoAmI(BaseModel):
    name: str
    role: str
    project: str
    token_id: str


def _tokens(request: Request) -> TokenService:
    config = getattr(request.app.state, "auth", None)
    if config is None:
        raise Forbidden("token management over HTTP needs a server started with auth on "
                        "(`arsenale server --auth`); without it use `arsenale tokens` next to the store")
    return config.tokens  # type: ignore[no-any-return]


def _own_project(request: Request) -> str | None:
    """The one project an admin's token is confined to (None: all projects)."""
    principal = principal_of(request)
    return None if principal is None or principal.project == ALL_PROJECTS else principal.project


@router.post("/tokens", status_code=201, response_model=CreatedToken, openapi_extra=ADMIN)
def create(body: NewToken, request: Request) -> Response:
    own = _own_project(request)
    if own is not None and body.project != own:
        raise Forbidden(f"an admin of project {own!r} makes tokens for {own!r} only, not {body.project!r}")
    info, secret = _tokens(request).create(body.name, role=body.role, project=body.project, expires=body.expires)
    return render(CreatedToken(**info.model_dump(), token=secret), 201)


@router.get("/tokens", response_model=list[TokenInfo], openapi_extra=ADMIN)
def list_tokens(request: Request, all: bool = False) -> Response:
    own = _own_project(request)
    return render([info for info in _tokens(request).list(include_inactive=all) if own in (None, info.project)])


@router.delete("/tokens/{token_id}", response_model=TokenInfo, openapi_extra=ADMIN)
def revoke(token_id: str, request: Request) -> Response:
    tokens, own = _tokens(request), _own_project(request)
    if own is not None and tokens.get(token_id).project != own:
        raise NotFound(f"no token {token_id!r}", field="id")
    return render(tokens.revoke(token_id))


@router.get("/auth/whoami", response_model=WhoAmI)
def whoami(request: Request) -> Response:
    principal = principal_of(request)
    if principal is None:
        raise Forbidden("this server runs without auth: requests act as the server itself")
    return render(WhoAmI(name=principal.name, role=principal.role, project=principal.project,
                         token_id=principal.token_id))
