"""`arsenale experiments`: list, create, delete and restore experiments."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from arsenale.cli import render
from arsenale.errors import InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.tracking.models import Experiment, ViewType
from arsenale.tracking.service import TrackingAPI

app = typer.Typer(help="Create, list, delete and restore experiments.", no_args_is_help=True)


def resolve_experiment(api: TrackingAPI, ref: str) -> Experiment:
    """An experiment named by id (all digits) or by name; an id wins when both exist."""
    ref = ref.strip()
    if ref.isascii() and ref.isdigit():
        try:
            return api.get_experiment(ref)
        except (NotFound, InvalidInput):  # no such id (or too large for one): try it as a name
            pass
    exp = api.get_experiment_by_name(ref)
    if exp is None:
        raise NotFound(f"no experiment with id or name {ref!r}", field="experiment")
    return exp


def parse_tags(items: list[str] | None) -> dict[str, str]:
    """`--tag KEY=VALUE` options as a mapping; a key given twice is an error, not a silent overwrite."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--tag must look like KEY=VALUE, got {item!r}", field="tag")
        key = key.strip()
        if key in out:
            raise InvalidInput(f"--tag {key!r} is given more than once", field="tag")
        out[key] = value
    return out


def experiments_table(experiments: list[Experiment]) -> Table:
    t = render.table("id", "name", "stage", "created", "updated", "tags", "description",
                     fixed=("id", "created", "updated"))
    for e in experiments:
        t.add_row(render.cell(e.experiment_id), render.cell(e.name, "bold"), render.cell(e.lifecycle_stage),
                  render.cell(render.iso(e.creation_time)), render.cell(render.iso(e.last_update_time)),
                  render.cell(render.pairs(e.tags)), render.cell(e.description))
    return t


@app.command("list")
def list_experiments(
    view: Annotated[ViewType, typer.Option("--view", help="Which experiments to list.")] = ViewType.ACTIVE,
    as_json: render.JsonFlag = False,
) -> None:
    """List experiments."""
    experiments = Client().tracking.list_experiments(view.value)
    if as_json:
        render.print_json(experiments)
    elif not experiments:
        render.print_message(f"no {view.value} experiments" if view is not ViewType.ALL else "no experiments")
    else:
        render.show(experiments_table(experiments))


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The experiment's name, unique in the store.")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeat for more tags.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What it is for.")] = None,
    as_json: render.JsonFlag = False,
) -> None:
    """Create an experiment."""
    exp = Client().tracking.create_experiment(name, tags=parse_tags(tag), description=description)
    if as_json:
        render.print_json(exp)
    else:
        render.print_message(f"created experiment {exp.name!r} (id {exp.experiment_id})", "green")


@app.command("delete")
def delete(ref: Annotated[str, typer.Argument(metavar="ID_OR_NAME", help="Experiment id or name.")]) -> None:
    """Delete an experiment and its runs (they can be restored)."""
    api = Client().tracking
    exp = resolve_experiment(api, ref)
    api.delete_experiment(exp.experiment_id)
    render.print_message(f"deleted experiment {exp.name!r} (id {exp.experiment_id})")


@app.command("restore")
def restore(ref: Annotated[str, typer.Argument(metavar="ID_OR_NAME", help="Experiment id or name.")]) -> None:
    """Restore a deleted experiment and its runs."""
    api = Client().tracking
    exp = resolve_experiment(api, ref)
    api.restore_experiment(exp.experiment_id)
    render.print_message(f"restored experiment {exp.name!r} (id {exp.experiment_id})")
