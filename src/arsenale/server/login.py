"""The dashboard's login: a token pasted once becomes an HttpOnly, SameSite=Strict session cookie.

    GET  /login?next=/models      the form
    POST /login                   token (+ next): 303 to next with the cookie, or the form again with 401
    POST /logout                  clears the cookie (needs the CSRF value, like every form)

Only local paths are followed after a login (`next` must start with one "/"), so the page cannot be
used to send someone elsewhere.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from arsenale.errors import Unauthenticated
from arsenale.server.auth import PUBLIC, READ, SESSION_COOKIE, SESSION_SECONDS, AuthConfig, form_field

__all__ = ["router"]

router = APIRouter(tags=["security"])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · Arsenale</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:10vh auto;padding:0 1rem;color:#1d2330}}
input{{width:100%;padding:.5rem;margin:.5rem 0 1rem;font:inherit;box-sizing:border-box}}
button{{padding:.5rem 1.25rem;font:inherit}}.error{{color:#a4161a}}</style></head>
<body><main><h1>Arsenale</h1>
<form method="post" action="{root}/login"><label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" placeholder="ars_…" required autofocus>
<input type="hidden" name="next" value="{next}">{error}
<button type="submit">Log in</button></form>
<p>Create a token with <code>arsenale tokens create NAME --role viewer</code>.</p></main></body></html>"""


def _local(path: str) -> str:
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


def _page(request: Request, next_path: str, error: str = "", status: int = 200) -> HTMLResponse:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return HTMLResponse(_PAGE.format(root=escape(root), next=escape(_local(next_path)), error=message),
                        status_code=status)


@router.get("/login", response_class=HTMLResponse, openapi_extra=PUBLIC)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, next)


@router.post("/login", openapi_extra=PUBLIC)
async def login(request: Request) -> Response:
    body = await request.body()
    token, next = form_field(body, "token"), form_field(body, "next") or "/"
    config: AuthConfig | None = request.app.state.auth
    if config is None:
        return RedirectResponse(_local(next), status_code=303)
    try:
        principal = await run_in_threadpool(config.tokens.verify, token.strip())
    except Unauthenticated as exc:
        return _page(request, next, f"Not logged in: {exc.message}", status=401)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, config.session_value(principal.token_id), max_age=SESSION_SECONDS,
                        httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout", openapi_extra=READ)
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

