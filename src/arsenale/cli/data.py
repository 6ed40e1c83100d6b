"""`arsenale data`: version files and folders in place (add, status, diff, checkout, push, pull, gc).

This module is on the hot path of `arsenale data status`, which must answer in
about 100 ms: it imports only typer at module level; the workspace, Rich and
pyarrow are imported inside the commands that use them, and the project's
`.arsenale/` folder is found without building the full `Settings` (same rule:
`ARSENALE_HOME`, else the nearest `.arsenale/` upward, else `./.arsenale`).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from arsenale.cli.datawork import add_lines, status_lines, status_reports
from arsenale.cli.datawork import workspace as _workspace
from arsenale.units import human_size

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Version data files and folders: add, status, diff, checkout, push, pull, gc.",
                  no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
Remote = Annotated[str | None, typer.Option(
    "--remote", envvar="ARSENALE_DATA_REMOTE", show_envvar=True,
    help="Where blobs are pushed and pulled: a folder or any fsspec URL (s3://bucket/prefix, …). "
         "S3 settings come from the usual AWS_* or FSSPEC_S3_* variables.")]
Link = Annotated[str | None, typer.Option(
    "--link", envvar="ARSENALE_DATA_LINK", show_envvar=True,
    help="How files enter the cache and the working copy, in order of preference "
         "(default reflink,copy; hardlink is faster but an in-place edit would change the cached copy).")]
Targets = Annotated[list[str] | None, typer.Argument(
    metavar="[PATH]...", help="Tracked paths or their .ars manifests (default: every manifest in the project).")]


def _console() -> "Console":
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out = Console(highlight=False, width=1000)
    return out


def _print(text: str, style: str = "") -> None:
    from rich.text import Text

    _console().print(Text(text, style=style), soft_wrap=True)


def _json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _size(n: int | None) -> str:
    return human_size(n, missing="—")


@app.command("add")
def add(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Files or folders to version.")],
    link: Link = None,
    as_json: JsonFlag = False,
) -> None:
    """Hash PATH, store its content in the cache and write PATH.ars (commit that file to git)."""
    ws = _workspace(link=link)
    results = [ws.add(p) for p in paths]
    if as_json:
        _json([r.to_dict() for r in results])
        return
    for text, style in add_lines(results):
        _print(text, style)


@app.command("status")
def status(targets: Targets = None, as_json: JsonFlag = False) -> None:
    """Show what changed in tracked files and folders since their manifests."""
    reports = status_reports(targets)
    if as_json:
        _json(reports)
        return
    for text, style in status_lines(reports):
        _print(text, style)


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="Old version: a .ars manifest or a tracked path (as it is now).")],
    b: Annotated[str, typer.Argument(help="New version: a .ars manifest or a tracked path (as it is now).")],
    no_tables: Annotated[bool, typer.Option("--no-tables", help="Skip row/column/statistics diffs.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Files added, removed and changed between two versions; rows, columns and statistics of tables."""
    d = _workspace().diff(a, b, tables=not no_tables)
    if as_json:
        _json(d.to_dict())
        return
    if d.same:
        _print("no differences", "green")
        return
    from rich.table import Table

    t = Table(title=f"{d.a} → {d.b}", title_justify="left", header_style="bold", show_edge=False)
    for col in ("change", "path", "old size", "new size"):
        t.add_column(col, overflow="fold")
    for label, items, style in (("added", d.added, "green"), ("removed", d.removed, "red"),
                                ("changed", d.changed, "yellow")):
        for c in items:
            t.add_row(f"[{style}]{label}[/]", c.path, _size(c.old_size), _size(c.new_size))
    out = _console()
    out.print(t)
    for path, info in d.tables.items():
        if "error" in info:
            out.print(f"{path}: {info['error']}", style="dim")
            continue
        rows, cols = info["rows"], info["columns"]
        lines = [f"rows {rows['old']} → {rows['new']}"
                 + (f" (+{rows['added']} / -{rows['removed']})" if rows.get("added") is not None else "")]
        if cols["added"]:
            lines.append("columns added: " + ", ".join(cols["added"]))
        if cols["removed"]:
            lines.append("columns removed: " + ", ".join(cols["removed"]))
        for col, (old_t, new_t) in cols["type_changed"].items():
            lines.append(f"type of {col}: {old_t} → {new_t}")
        for col, s in info["stats"].items():
            if s["changed"]:
                keys = [k for k in s["new"] if s["old"].get(k) != s["new"].get(k)]
                lines.append(f"{col}: " + ", ".join(f"{k} {s['old'].get(k)} → {s['new'].get(k)}" for k in keys))
        from rich.text import Text

        out.print(Text(f"{path} ({info['format']})", style="bold"))
        for line in lines:
            out.print(Text("  " + line), soft_wrap=True)


@app.command("checkout")
def checkout(
    targets: Targets = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite or remove changes not in the cache.")] = False,
    remote: Remote = None,
    link: Link = None,
    as_json: JsonFlag = False,
) -> None:
    """Make tracked paths match their manifests, from verified cached blobs (refetching corrupt ones)."""
    results = _workspace(remote, link).checkout(targets, force=force)
    if as_json:
        _json([r.to_dict() for r in results])
        return
    for r in results:
        extra = f", {len(r.refetched)} blob(s) refetched from the remote" if r.refetched else ""
        _print(f"{r.manifest}: {len(r.restored)} restored, {len(r.removed)} removed, "
               f"{r.unchanged} unchanged{extra}", "green")


@app.command("push")
def push(targets: Targets = None, remote: Remote = None, as_json: JsonFlag = False) -> None:
    """Upload to the remote the blobs it lacks (only new chunks of grown large files)."""
    r = _workspace(remote).push(targets)
    if as_json:
        _json(r.to_dict())
    else:
        _print(f"pushed {r.transferred} object(s), {_size(r.bytes)}, to {r.remote}; "
               f"{r.already_there} already there", "green")


@app.command("pull")
def pull(
    targets: Targets = None,
    remote: Remote = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite or remove changes not in the cache.")] = False,
    link: Link = None,
    as_json: JsonFlag = False,
) -> None:
    """Download the blobs the cache lacks, then check the working copy out."""
    r = _workspace(remote, link).pull(targets, force=force)
    if as_json:
        _json(r.to_dict())
    else:
        _print(f"pulled {r.transferred} blob(s), {_size(r.bytes)}, from {r.remote}; "
               f"{r.already_there} already cached", "green")


@app.command("gc")
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove cached blobs that no manifest in the project names."""
    r = _workspace().gc(dry_run=dry_run)
    if as_json:
        _json(r.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    _print(f"{verb} {r.removed} blob(s), {_size(r.bytes_freed)} freed; {r.kept} kept",
           "yellow" if dry_run else "green")
