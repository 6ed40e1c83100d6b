"""Security in the dashboard: who can get in, what is kept secret, and what is deleted when.

    install(app)   adds the pages below; `dashboard.install` calls it.

Page `/security` (admin when the server runs with auth): the API tokens (name, role, project, expiry, last
use; `?all=1` adds revoked and expired ones) with a Revoke button each, the names of the stored secrets (never
a value), the retention policies with their last application, and the legal holds on model versions.
`POST /security/tokens/{id}/revoke` revokes one (a form carrying its CSRF value) and comes back to the page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from arsenale.server.auth import ADMIN
from arsenale.server.dashboard import DashboardRoute, render
from arsenale.units import human_duration

__all__ = ["install"]

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


@router.get("/security", openapi_extra=ADMIN)
def security_page(request: Request, all: str = "") -> Response:
    client = request.app.state.client
    show_all = all not in ("", "0", "false")
    context: dict[str, Any] = {
        "tokens": client.tokens.list(include_inactive=show_all), "show_all": show_all,
        "secrets": client.secrets.list(), "policies": client.retention.list_policies(),
        "holds": client.registry.legal_holds(), "age": human_duration,
        "auth": getattr(request.app.state, "auth", None) is not None,
    }
    return render(request, "security.html", **context)


@router.post("/security/tokens/{token_id}/revoke", openapi_extra=ADMIN)
def revoke(request: Request, token_id: str) -> Response:
    request.app.state.client.tokens.revoke(token_id)
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{root}/security?revoked={token_id}", status_code=303)


def install(app: FastAPI) -> None:
    """Add the security page to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)
