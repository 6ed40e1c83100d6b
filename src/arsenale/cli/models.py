"""`arsenale models`: registered models, their versions, aliases, stages, lineage, diffs and history."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from arsenale.cli import render
from arsenale.cli.webhooks import app as webhooks_app
from arsenale.errors import InvalidInput
from arsenale.platform import Client
from arsenale.registry.models import Lineage, ModelEvent, ModelVersion, Stage, VersionDiff, check_alias

app = typer.Typer(help="Registered models: versions, aliases, stages, lineage and history.",
                  no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

LATEST = 10  # versions shown by `models show`
ARROW = "→"

Name = Annotated[str, typer.Argument(help="The registered model's name.")]
Version = Annotated[int, typer.Argument(help="The version number.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why; kept in the history and the audit trail.")]


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def versions_table(versions: list[ModelVersion]) -> Table:
    t = render.table("version", "stage", "aliases", "flavor", "run_id", "created", "by", "description",
                     fixed=("version", "run_id", "created"))
    for v in versions:
        t.add_row(render.cell(v.version, "bold"), render.cell(v.stage.value),
                  render.cell(", ".join(v.aliases)), render.cell(v.flavor), render.cell(v.run_id),
                  render.cell(render.iso(v.creation_time)), render.cell(v.created_by),
                  render.cell(v.description))
    return t


@app.command("list")
def list_models(as_json: render.JsonFlag = False) -> None:
    """List registered models."""
    models = Client().registry.list_models()
    if as_json:
        render.print_json(models)
        return
    if not models:
        render.print_message("no registered models")
        return
    t = render.table("name", "latest", "aliases", "stages", "updated", "description", fixed=("updated",))
    for m in models:
        latest = _v(m.latest_version) if m.latest_version else None
        t.add_row(render.cell(m.name, "bold"), render.cell(latest),
                  render.cell(render.pairs(m.aliases)), render.cell(render.pairs(m.stages)),
                  render.cell(render.iso(m.last_update_time)), render.cell(m.description))
    render.show(t)


@app.command("show")
def show(name: Name, as_json: render.JsonFlag = False) -> None:
    """A model's aliases, stages and latest versions."""
    registry = Client().registry
    model = registry.get_model(name)
    versions = registry.list_versions(name)[:LATEST]
    if as_json:
        render.print_json({**model.model_dump(mode="json"), "versions": versions})
        return
    info = [("name", model.name), ("description", model.description),
            ("latest_version", model.latest_version), ("created", render.iso(model.creation_time)),
            ("updated", render.iso(model.last_update_time)), ("tags", render.pairs(model.tags) or None)]
    parts: list[Any] = [render.key_value_table(info, "model")]
    if model.aliases:
        parts.append(render.key_value_table(sorted(model.aliases.items()), "aliases", "version"))
    if model.stages:
        parts.append(render.key_value_table([(s.value, model.stages[s.value]) for s in Stage
                                             if s.value in model.stages], "stages", "newest version"))
    if versions:
        t = versions_table(versions)
        t.title, t.title_justify = "latest versions", "left"
        parts.append(t)
    render.show(*parts)


@app.command("versions")
def versions(
    name: Name,
    stage: Annotated[list[str] | None, typer.Option(
        "--stage", help="Only versions in this stage (None, Staging, Production, Archived); repeatable."
    )] = None,
    as_json: render.JsonFlag = False,
) -> None:
    """A model's versions, newest first."""
    found = Client().registry.list_versions(name, stage or None)
    if as_json:
        render.print_json(found)
    elif not found:
        render.print_message("no versions match")
    else:
        render.show(versions_table(found))


@app.command("alias")
def alias(
    name: Name,
    alias_: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion, challenger.")],
    version: Annotated[int | None, typer.Argument(
        help="The version to point at (not with --undo/--delete).")] = None,
    reason: Reason = None,
    undo: Annotated[bool, typer.Option(
        "--undo", help="Move the alias back to where it pointed before.")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
) -> None:
    """Point an alias at a version, move it back (--undo) or remove it (--delete)."""
    if undo and delete:
        raise InvalidInput("--undo and --delete cannot be combined", field="undo")
    if (undo or delete) and version is not None:
        raise InvalidInput("VERSION is not used with --undo or --delete", field="version")
    if not (undo or delete) and version is None:
        raise InvalidInput("VERSION is required to set an alias (or use --undo / --delete)", field="version")
    check_alias(alias_)
    registry = Client().registry
    before = registry.get_model(name).aliases.get(alias_)
    if delete:
        registry.delete_alias(name, alias_, reason)
        render.print_message(f"removed alias {alias_!r} of {name!r} (was {_v(before)})")
    elif undo:
        after = registry.undo_alias(name, alias_, reason)
        now = _v(after.version) if after is not None else "removed"
        render.print_message(f"{name}@{alias_}: {_v(before)} {ARROW} {now}", "green")
    else:
        assert version is not None
        mv = registry.set_alias(name, alias_, version, reason)
        render.print_message(f"{name}@{alias_}: {_v(before)} {ARROW} {_v(mv.version)}", "green")


def _transition(name: str, version: int, stage: str, archive_existing: bool, reason: str | None) -> None:
    registry = Client().registry
    before = registry.get_version(name, version).stage
    mv = registry.transition_stage(name, version, stage, archive_existing=archive_existing, reason=reason)
    note = f" (other {mv.stage.value} versions archived)" if archive_existing else ""
    render.print_message(f"{name} v{mv.version}: {before.value} {ARROW} {mv.stage.value}{note}", "green")


@app.command("transition")
def transition(
    name: Name,
    version: Version,
    stage: Annotated[str, typer.Argument(help="None, Staging, Production or Archived.")],
    archive_existing: Annotated[bool, typer.Option(
        "--archive-existing", help="Archive the versions already in that stage.")] = False,
    reason: Reason = None,
) -> None:
    """Move a version to another stage."""
    _transition(name, version, stage, archive_existing, reason)


@app.command("archive")
def archive(name: Name, version: Version, reason: Reason = None) -> None:
    """Move a version to the Archived stage."""
    _transition(name, version, Stage.ARCHIVED.value, False, reason)


# ---- legal holds and deletion --------------------------------------------------------------------------


@app.command("hold")
def hold(
    name: Name,
    version: Version,
    reason: Annotated[str, typer.Option("--reason", help="Why the version is held (required; audited).")],
) -> None:
    """Put a version on legal hold: it cannot be deleted, nor its files purged by retention."""
    h = Client().registry.set_legal_hold(name, version, reason)
    render.print_message(f"{name} v{h.version} is on legal hold: {h.reason}", "green")


@app.command("release")
def release(name: Name, version: Version, reason: Reason = None) -> None:
    """Release a version's legal hold."""
    h = Client().registry.release_legal_hold(name, version, reason)
    render.print_message(f"{name} v{h.version}: legal hold released", "green")


@app.command("holds")
def holds(
    name: Annotated[str | None, typer.Argument(help="One model's holds (default: every model's).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Released holds too.")] = False,
    as_json: render.JsonFlag = False,
) -> None:
    """List legal holds."""
    found = Client().registry.legal_holds(name, active_only=not show_all)
    if as_json:
        render.print_json(found)
        return
    t = render.table("model", "version", "reason", "by", "since", "released", fixed=("version", "since", "released"))
    for h in found:
        t.add_row(render.cell(h.name), render.cell(h.version), render.cell(h.reason), render.cell(h.created_by),
                  render.cell(render.iso(h.creation_time)), render.cell(render.iso(h.released_at)))
    render.show(t)


@app.command("delete-version")
def delete_version(name: Name, version: Version, reason: Reason = None) -> None:
    """Delete a version for good; refused while an alias, a deployment or a legal hold needs it."""
    Client().registry.delete_model_version(name, version, reason)
    render.print_message(f"deleted {name} v{version}", "green")


# ---- lineage, diff, history ----------------------------------------------------------------------------


def _label(kind: str, text: str, style: str = "") -> Text:
    return Text.assemble((f"{kind} ", "bold"), (text, style))


def _pairs_node(tree: Tree, kind: str, values: dict[str, Any]) -> None:
    if values:
        node = tree.add(Text(kind, style="bold"))
        for key, value in sorted(values.items()):
            node.add(Text(f"{key} = {render.number(value) if isinstance(value, float) else value}"))


def lineage_tree(lin: Lineage) -> Tree:
    """model → run → data → code and environment."""
    tree = Tree(_label("model", f"{lin.model} v{lin.version}", "bold cyan")
                + Text(f"  ({lin.source})", "dim"))
    parent = tree
    if lin.run is not None:
        run = lin.run
        if run.get("missing"):
            parent = tree.add(_label("run", f"{run['run_id']} (deleted or missing)", "red"))
        else:
            parent = tree.add(_label("run", f"{run.get('run_name') or ''} {run['run_id']}", "green")
                              + Text(f"  {run.get('status', '')}", "dim"))
            if lin.experiment:
                exp = lin.experiment.get("name") or lin.experiment.get("experiment_id")
                parent.add(_label("experiment", str(exp)))
            _pairs_node(parent, "params", run.get("params") or {})
            _pairs_node(parent, "metrics", run.get("metrics") or {})
    data = parent.add(Text("data", style="bold"))
    for d in lin.data:
        if d.get("kind") in ("dataset", "feature"):
            data.add(_label(str(d["kind"]), f"{d.get('name')}@{d.get('version')}", "yellow"))
        else:
            rows = f", {d['rows']} rows" if d.get("rows") is not None else ""
            data.add(_label(str(d.get("kind")), f"{d.get('fingerprint')}{rows}", "yellow"))
    if not lin.data:
        data.add(Text(render.MISSING, style="dim"))
    _pairs_node(data, "code", lin.code)
    _pairs_node(data, "environment", lin.environment)
    return tree


@app.command("lineage")
def lineage(name: Name, version: Version, as_json: render.JsonFlag = False) -> None:
    """Where a version came from: its run, the run's data, code and environment."""
    lin = Client().registry.lineage(name, version)
    if as_json:
        render.print_json(lin)
    else:
        render.show(lineage_tree(lin))


def diff_rows(d: VersionDiff) -> list[tuple[str, str, Any, Any]]:
    """(kind, key, value in A, value in B) for everything that differs."""
    rows: list[tuple[str, str, Any, Any]] = []
    rows += [("param", k, a, b) for k, (a, b) in d.params.items()]
    rows += [("metric", k, a, b) for k, (a, b) in d.metrics.items()]
    if d.data:
        rows.append(("data", "inputs", ", ".join(d.data.get("only_in_a", [])) or None,
                     ", ".join(d.data.get("only_in_b", [])) or None))
    c = d.contract
    rows += [("contract", f"column {col}", "present", None) for col in c.get("removed_columns", [])]
    rows += [("contract", f"column {col}", None, "present") for col in c.get("added_columns", [])]
    rows += [("contract", f"type of {col}", a, b) for col, (a, b) in c.get("changed_types", {}).items()]
    if d.flavor:
        rows.append(("flavor", "flavor", d.flavor[0], d.flavor[1]))
    return rows


@app.command("diff")
def diff(
    name: Name,
    a: Annotated[int, typer.Argument(help="The first version.")],
    b: Annotated[int, typer.Argument(help="The second version.")],
    as_json: render.JsonFlag = False,
) -> None:
    """What changed between two versions: params, metrics, data and the input contract."""
    d = Client().registry.diff(name, a, b)
    if as_json:
        render.print_json(d)
        return
    rows = diff_rows(d)
    if not rows:
        render.print_message(f"v{d.a} and v{d.b} of {name!r} do not differ in params, metrics, data "
                             f"or contract")
        return
    t = render.table("", "key", f"v{d.a}", f"v{d.b}")
    for kind, key, va, vb in rows:
        shown = [render.number(v) if isinstance(v, float) else v for v in (va, vb)]
        t.add_row(render.cell(kind, "dim"), render.cell(key, "bold"), *(render.cell(v) for v in shown))
    render.show(t)


def describe_event(e: ModelEvent) -> str:
    if e.kind == "register":
        return f"registered v{e.version}"
    if e.kind == "stage":
        return f"v{e.version}: {e.from_stage} {ARROW} {e.to_stage}"
    if e.kind == "alias_removed":
        return f"@{e.alias} removed (was {_v(e.from_version)})"
    if e.kind in ("alias", "alias_undo"):
        undo = " (undo)" if e.kind == "alias_undo" else ""
        return f"@{e.alias}: {_v(e.from_version)} {ARROW} {_v(e.version) if e.version else 'removed'}{undo}"
    if e.kind in ("legal_hold", "legal_hold_released", "delete"):
        what = {"legal_hold": "legal hold", "legal_hold_released": "legal hold released", "delete": "deleted"}
        return f"v{e.version}: {what[e.kind]}"
    return f"{e.kind} {_v(e.version)}"


@app.command("history")
def history(
    name: Name,
    limit: Annotated[int, typer.Option(
        "--limit", min=1, max=10_000, help="At most this many, newest first.")] = 200,
    as_json: render.JsonFlag = False,
) -> None:
    """Who moved what when: registrations, alias moves and stage transitions, newest first."""
    events = Client().registry.events(name, limit)
    if as_json:
        render.print_json(events)
        return
    if not events:
        render.print_message("no history")
        return
    t = render.table("time", "actor", "change", "reason", fixed=("time",))
    for e in events:
        t.add_row(render.cell(render.iso(e.timestamp)), render.cell(e.actor),
                  render.cell(describe_event(e), "bold"), render.cell(e.reason))
    render.show(t)
