"""`arsenale audit`: read and verify the tamper-evident audit trail."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.errors import IntegrityError
from arsenale.platform import Client

app = typer.Typer(help="Read and verify the tamper-evident audit trail.", no_args_is_help=True)


@app.command("list")
def list_entries(
    entity_type: Annotated[str | None, typer.Option("--entity-type", help="e.g. experiment, model.")] = None,
    entity_id: Annotated[str | None, typer.Option("--entity-id", help="One entity's id.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="e.g. experiment.create.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, oldest first.")] = 1000,
    as_json: render.JsonFlag = False,
) -> None:
    """Audit entries, oldest first."""
    entries = Client().audit.entries(entity_type=entity_type, entity_id=entity_id, action=action, limit=limit)
    if as_json:
        render.print_json(entries)
        return
    if not entries:
        render.print_message("no audit entries match")
        return
    t = render.table("seq", "time", "actor", "action", "entity", "details", "hash", fixed=("seq", "time"))
    for e in entries:
        t.add_row(render.cell(e.seq), render.cell(render.iso(e.timestamp)), render.cell(e.actor),
                  render.cell(e.action, "bold"), render.cell(f"{e.entity_type} {e.entity_id}"),
                  render.cell(json.dumps(render.jsonable(e.details), sort_keys=True, ensure_ascii=False)),
                  render.cell(e.hash[:12], "dim"))
    render.show(t)


@app.command("verify")
def verify(as_json: render.JsonFlag = False) -> None:
    """Check the hash chain; exits 5 and names the first bad entry when it was tampered with."""
    report = Client().audit.verify()
    if as_json:
        render.print_json(report)
        if not report.ok:
            raise typer.Exit(IntegrityError.exit_code)
        return
    if not report.ok:
        raise IntegrityError(f"audit trail is broken at entry {report.first_bad_seq}: {report.problem} "
                             f"({report.checked} entries before it are intact)")
    render.print_message(f"audit trail intact: {report.checked} entries verified", "green")
