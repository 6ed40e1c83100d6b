"""`arsenale retention`: per-project retention policies and their application (next to the store, or
through a server as admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.platform import Client
from arsenale.security.retention import KINDS, ApplyReport

app = typer.Typer(help="Retention: delete inference logs, traces and deleted runs' artifacts older than an age.",
                  no_args_is_help=True)

Kind = Annotated[str, typer.Argument(help=f"What the policy deletes: {', '.join(KINDS)}.")]
Project = Annotated[str, typer.Option("--project", help="The project it applies to ('*': every project).")]


@app.command("set")
def set_policy(
    kind: Kind,
    max_age: Annotated[str, typer.Option("--max-age", help="Delete what is older than this, e.g. 30d or 12h.")],
    project: Project = "*",
    as_json: render.JsonFlag = False,
) -> None:
    """Create or change the policy for KIND in a project."""
    p = Client().retention.set_policy(kind, max_age, project=project)
    if as_json:
        render.print_json(p)
        return
    render.print_message(f"retention for {p.kind} in project {p.project}: {p.max_age}", "green")


@app.command("list")
def list_policies(as_json: render.JsonFlag = False) -> None:
    """List retention policies."""
    policies = Client().retention.list_policies()
    if as_json:
        render.print_json(policies)
        return
    t = render.table("project", "kind", "max age", "updated", "by", "last applied",
                     fixed=("max age", "updated", "last applied"))
    for p in policies:
        t.add_row(render.cell(p.project), render.cell(p.kind), render.cell(p.max_age),
                  render.cell(render.iso(p.update_time)), render.cell(p.updated_by),
                  render.cell(render.iso(p.last_applied_at)))
    render.show(t)


@app.command("delete")
def delete_policy(kind: Kind, project: Project = "*") -> None:
    """Remove the policy for KIND in a project (nothing is deleted any more for it)."""
    Client().retention.delete_policy(kind, project=project)
    render.print_message(f"removed the retention policy for {kind} in project {project}")


def _show(report: ApplyReport) -> None:
    t = render.table("project", "kind", "status", "deleted", "bytes", "held", "more left",
                     title="dry run: nothing deleted" if report.dry_run else None, fixed=("bytes", "held"))
    for r in report.results:
        deleted = ", ".join(f"{n} {what}" for what, n in r.deleted.items()) or (r.error or "")
        t.add_row(render.cell(r.project), render.cell(r.kind), render.cell(r.status), render.cell(deleted),
                  render.cell(r.bytes), render.cell(r.held), render.cell("yes" if r.remaining else ""))
    render.show(t)


@app.command("apply")
def apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")] = False,
    as_json: render.JsonFlag = False,
) -> None:
    """Apply every policy now (the scheduler does it daily); one audit entry per policy."""
    report = Client().retention.apply(dry_run=dry_run)
    if as_json:
        render.print_json(report)
        return
    _show(report)
