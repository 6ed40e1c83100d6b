"""`arsenale db`: manage the metadata database's schema."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from arsenale.cli import render, use_uri
from arsenale.config import get_settings
from arsenale.errors import InvalidInput

app = typer.Typer(help="Manage the metadata database's schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(
    uri: Annotated[str | None, typer.Option(
        "--uri", help="The database: a path, sqlite:///… or postgresql://… (default: ARSENALE_URI).")] = None,
) -> None:
    """Apply pending schema migrations and print the current revision."""
    from arsenale.store.db import get_engine, normalize_uri
    from arsenale.store.migrate import current_revision, head_revision
    from arsenale.store.migrate import upgrade as apply_migrations

    use_uri(uri)
    target = get_settings().resolved_uri()
    if target.startswith(("http://", "https://")):
        raise InvalidInput(f"{target} is an Arsenale server, not a database: run `arsenale db upgrade` "
                           "where the server runs, with --uri set to its sqlite:///… or postgresql://… "
                           "database", field="uri")
    shown = make_url(normalize_uri(target)).render_as_string(hide_password=True)
    engine = get_engine(target)
    apply_migrations(engine)
    revision = current_revision(engine)
    state = "head" if revision == head_revision() else f"head is {head_revision()}"
    render.print_message(f"{shown}: schema at revision {revision} ({state})", "green")
