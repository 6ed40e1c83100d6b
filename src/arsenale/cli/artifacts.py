"""`arsenale artifacts`: browse and download a run's artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.errors import NotFound
from arsenale.platform import Client

app = typer.Typer(help="Browse and download a run's artifacts.", no_args_is_help=True)


@app.command("list")
def list_artifacts(
    run_id: Annotated[str, typer.Argument(help="The run's 32-character id.")],
    path: Annotated[str | None, typer.Argument(help="A folder or file in the run; default: root.")] = None,
    as_json: render.JsonFlag = False,
) -> None:
    """The files and folders directly under PATH."""
    api = Client().tracking
    api.get_run(run_id)  # an unknown run is an error, not an empty listing
    artifacts = api.list_artifacts(run_id, path)
    if path and not artifacts:
        raise NotFound(f"run {run_id} has no artifact at {path!r}", field="path")
    if as_json:
        render.print_json(artifacts)
        return
    if not artifacts:
        render.print_message(f"run {run_id} has no artifacts")
        return
    t = render.table("path", "type", "size", "digest")
    for a in artifacts:
        t.add_row(render.cell(a.path + "/" if a.is_dir else a.path),
                  render.cell("folder" if a.is_dir else "file"),
                  render.cell(render.size(a.size)), render.cell(a.digest, "dim"))
    render.show(t)


@app.command("get")
def get(
    run_id: Annotated[str, typer.Argument(help="The run's 32-character id.")],
    path: Annotated[str, typer.Argument(help="A file or folder inside the run.")],
    dest: Annotated[Path, typer.Option("--dest", help="Download into this folder.", file_okay=False)]
    = Path("."),
) -> None:
    """Download a file or a folder (verified against its digests); prints where it went."""
    local = Client().tracking.download_artifacts(run_id, path, dest)
    typer.echo(str(local))
