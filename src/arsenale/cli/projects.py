"""`arsenale projects`: the projects in sight and what each holds."""

from __future__ import annotations

from arsenale.cli import render
from arsenale.platform import Client

KINDS = ("experiments", "models", "datasets", "deployments", "monitors", "prompts", "indexes", "traces")


def projects(as_json: render.JsonFlag = False) -> None:
    """List the projects that hold something, with counts per kind (with --project or a project's token:
    that project only)."""
    rows = Client().projects()
    if as_json:
        render.print_json(rows)
        return
    t = render.table("project", *KINDS, fixed=KINDS)
    for row in rows:
        t.add_row(render.cell(row.name), *(render.cell(str(getattr(row, k))) for k in KINDS))
    render.show(t)
