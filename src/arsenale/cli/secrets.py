"""`arsenale secrets`: named secrets, encrypted at rest. A value is read from a file or stdin, never from a
flag, so it stays out of shell history and the process list; no command prints one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.platform import Client
from arsenale.security.secrets import MAX_VALUE_BYTES, add_key_to_file, key_file, new_key

app = typer.Typer(help="Secrets (provider keys, webhook URLs, storage credentials), stored encrypted; "
                       "values never printed.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("--project", help="The project it belongs to ('*': every one).")]
_READ_LIMIT = 4 * MAX_VALUE_BYTES + 1  # the service says how large is too large; this only bounds the read


def _trim(text: str) -> str:
    """The value without the one line ending that `echo` or an editor adds."""
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _read_value(value_file: Path | None) -> str:
    if value_file is not None:
        try:
            with open(value_file, encoding="utf-8") as f:
                return _trim(f.read(_READ_LIMIT))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise InvalidInput(f"cannot read {value_file}: {reason}", field="value_file") from None
    if sys.stdin.isatty():
        return str(typer.prompt("value", hide_input=True))
    try:
        return _trim(sys.stdin.read(_READ_LIMIT))
    except UnicodeDecodeError:
        raise InvalidInput("the value on stdin is not UTF-8 text", field="value") from None


@app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="The secret's name, e.g. OPENAI_API_KEY.")],
    value_file: Annotated[Path | None, typer.Option("--value-file", help="Read the value from this file "
                                                    "(else from stdin, or a hidden prompt).")] = None,
    project: ProjectOpt = "*",
) -> None:
    """Create a secret or replace its value."""
    info = Client().secrets.set(name, _read_value(value_file), project=project)
    render.print_message(f"secret {info.name} set (project {info.project})")


@app.command("list")
def list_secrets(
    project: Annotated[str | None, typer.Option("--project", help="Only this project's and the shared ones.")]
    = None,
    as_json: render.JsonFlag = False,
) -> None:
    """List secrets: names and times, never values."""
    rows = Client().secrets.list(project=project)
    if as_json:
        render.print_json(rows)
        return
    t = render.table("name", "project", "updated", "updated by", "created", fixed=("updated", "created"))
    for x in rows:
        t.add_row(render.cell(x.name), render.cell(x.project), render.cell(render.iso(x.update_time)),
                  render.cell(x.updated_by), render.cell(render.iso(x.creation_time)))
    render.show(t)


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="The secret's name.")], project: ProjectOpt = "*") -> None:
    """Delete a secret."""
    Client().secrets.delete(name, project=project)
    render.print_message(f"secret {name} deleted (project {project})")


@app.command("rotate")
def rotate(
    add_key: Annotated[bool, typer.Option("--new-key", help="First put a new key at the top of the key file "
                                          "(the old keys stay after it, for values not yet re-encrypted).")]
    = False,
    as_json: render.JsonFlag = False,
) -> None:
    """Re-encrypt every stored secret, webhook URL and signing secret under the first key."""
    client = Client()
    if add_key:
        path = key_file()
        if client.uri.startswith(("http://", "https://")) or path is None:
            raise InvalidInput("--new-key adds a key to a key file next to the store; with ARSENALE_ENCRYPTION_KEY "
                               "(or a server) put a new key first yourself (`arsenale secrets new-key`), keep the "
                               "old ones after it, and run rotate", field="new_key")
        count = add_key_to_file(path)
        render.print_message(f"added a new key to {path} ({count} keys; the old ones can go after this rotation)")
    report = client.secrets.rotate()
    if as_json:
        render.print_json(report)
        return
    for column, n in report.reencrypted.items():
        render.print_message(f"{column}: {n} re-encrypted, {report.unchanged[column]} already under the first key")


@app.command("new-key")
def make_key() -> None:
    """Print a fresh encryption key (for ARSENALE_ENCRYPTION_KEY or a key file)."""
    typer.echo(new_key())
