"""`arsenale tokens`: API tokens for a server with auth (next to the store, or through a server as admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.platform import Client

app = typer.Typer(help="API tokens: created with a role and a project, shown once, stored only as a hash.",
                  no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. ci or alice.")],
    role: Annotated[str, typer.Option("--role", help="viewer, editor or admin.")] = "viewer",
    project: Annotated[str, typer.Option("--project", help="The project it acts in ('*': every one).")] = "*",
    expires: Annotated[str | None, typer.Option("--expires", help="Lifetime, e.g. 90d or 12h.")] = None,
    as_json: render.JsonFlag = False,
) -> None:
    """Create a token; its secret is printed once and never stored."""
    info, secret = Client().tokens.create(name, role=role, project=project, expires=expires)
    if as_json:
        render.print_json({**info.model_dump(), "token": secret})
        return
    render.print_message(f"token {info.id} ({info.name}): {info.role} in project {info.project}"
                         + (f", expires {render.iso(info.expires_at)}" if info.expires_at else ""))
    render.print_message(f"secret (shown once): {secret}", "bold")


@app.command("list")
def list_tokens(
    show_all: Annotated[bool, typer.Option("--all", help="Revoked and expired tokens too.")] = False,
    as_json: render.JsonFlag = False,
) -> None:
    """List tokens (never their secrets)."""
    tokens = Client().tokens.list(include_inactive=show_all)
    if as_json:
        render.print_json(tokens)
        return
    t = render.table("id", "name", "role", "project", "created", "expires", "last used", "state",
                     fixed=("id", "created", "expires", "last used"))
    for x in tokens:
        state = "revoked" if x.revoked_at else ("active" if x.active else "expired")
        t.add_row(render.cell(x.id), render.cell(x.name), render.cell(x.role), render.cell(x.project),
                  render.cell(render.iso(x.creation_time)), render.cell(render.iso(x.expires_at)),
                  render.cell(render.iso(x.last_used_at)), render.cell(state))
    render.show(t)


@app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (from `arsenale tokens list`).")]) -> None:
    """Revoke a token at once."""
    info = Client().tokens.revoke(token_id)
    render.print_message(f"revoked token {info.id} ({info.name})")
