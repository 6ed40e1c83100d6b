"""`arsenale prompts`: the prompt registry from the shell.

    arsenale prompts register support-answer --template-file answer.j2 --model gpt-x --param temperature=0.2
    arsenale prompts list
    arsenale prompts show support-answer@production        # or NAME, NAME/3
    arsenale prompts versions support-answer
    arsenale prompts label support-answer production 3     # --delete to remove the label
    arsenale prompts diff support-answer 2 production
    arsenale prompts render support-answer@production --var question="Why?" --var-file context=hits.txt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.platform import Client

app = typer.Typer(help="The prompt registry: immutable template versions, labels, diffs, rendering.",
                  no_args_is_help=True)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} takes KEY=VALUE, got {item!r}", field=option.lstrip("-"))
        out[key] = value
    return out


def _param_value(raw: str) -> Any:
    """`0.2` is a number, `true` a boolean, `[1, 2]` a list; anything that is not JSON stays a string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _read(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {option} {path}: {exc}", field=option.lstrip("-")) from None


@app.command("register")
def register(name: Annotated[str, typer.Argument(help="The prompt's name.")],
             template_file: Annotated[Path, typer.Option("--template-file", help="The Jinja2 template.")],
             model: Annotated[str | None, typer.Option("--model", help="The model it is written for.")] = None,
             param: Annotated[list[str] | None, typer.Option(
                 "--param", help="KEY=VALUE call parameter (VALUE read as JSON when it is); repeatable.")] = None,
             description: Annotated[str | None, typer.Option("--description")] = None,
             as_json: render.JsonFlag = False) -> None:
    """Register a version; identical content returns the existing version."""
    params = {k: _param_value(v) for k, v in _pairs(param, "--param").items()}
    pv = Client().prompts.register(name, _read(template_file, "--template-file"), model=model, params=params,
                                   description=description)
    if as_json:
        render.print_json(pv)
    else:
        render.print_message(f"{pv.uri}  variables: {', '.join(pv.variables) or 'none'}  digest {pv.digest[:12]}")


@app.command("list")
def list_prompts(as_json: render.JsonFlag = False) -> None:
    """Every prompt with its newest version and labels."""
    prompts = Client().prompts.list()
    if as_json:
        render.print_json(prompts)
        return
    if not prompts:
        render.print_message("no prompts yet: arsenale prompts register NAME --template-file FILE")
        return
    t = render.table("name", "latest", "labels", "created", "by")
    for p in prompts:
        t.add_row(render.cell(p.name, "bold"), render.cell(p.latest_version), render.cell(render.pairs(p.labels)),
                  render.cell(render.iso(p.creation_time)), render.cell(p.created_by))
    render.show(t)


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME, NAME@LABEL or NAME/VERSION.")],
         as_json: render.JsonFlag = False) -> None:
    """One version: its template, model, parameters and labels."""
    pv = Client().prompts.get(ref)
    if as_json:
        render.print_json(pv)
        return
    render.print_message(pv.uri, "bold")
    render.print_message(f"model: {pv.model or '—'}  params: {json.dumps(pv.params, sort_keys=True)}  "
                         f"labels: {', '.join(pv.labels) or '—'}")
    render.print_message(f"variables: {', '.join(pv.variables) or 'none'}  by {pv.created_by} at "
                         f"{render.iso(pv.creation_time)}")
    typer.echo(pv.template, nl=not pv.template.endswith("\n"))


@app.command("versions")
def versions(name: Annotated[str, typer.Argument(help="The prompt's name.")],
             as_json: render.JsonFlag = False) -> None:
    """A prompt's versions, newest first."""
    found = Client().prompts.versions(name)
    if as_json:
        render.print_json(found)
        return
    t = render.table("version", "labels", "model", "params", "variables", "digest", "created", "by")
    for v in found:
        t.add_row(render.cell(v.version, "bold"), render.cell(", ".join(v.labels)), render.cell(v.model),
                  render.cell(json.dumps(v.params, sort_keys=True)), render.cell(", ".join(v.variables)),
                  render.cell(v.digest[:12]), render.cell(render.iso(v.creation_time)), render.cell(v.created_by))
    render.show(t)


@app.command("label")
def label(name: Annotated[str, typer.Argument(help="The prompt's name.")],
          label_name: Annotated[str, typer.Argument(metavar="LABEL", help="e.g. production, staging.")],
          version: Annotated[int | None, typer.Argument(help="The version the label moves to.")] = None,
          delete: Annotated[bool, typer.Option("--delete", help="Remove the label instead.")] = False,
          reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the audit trail.")] = None,
          as_json: render.JsonFlag = False) -> None:
    """Move a label to a version (audited), or remove it with --delete."""
    api = Client().prompts
    if delete:
        if version is not None:
            raise InvalidInput("--delete takes no version", field="version")
        api.delete_label(name, label_name)
        render.print_message(f"removed label {label_name} of {name}")
        return
    if version is None:
        raise InvalidInput("name the version the label moves to (or --delete)", field="version")
    pv = api.set_label(name, label_name, version, reason=reason)
    if as_json:
        render.print_json(pv)
    else:
        render.print_message(f"{name}@{label_name} -> {pv.uri}")


@app.command("diff")
def diff(name: Annotated[str, typer.Argument(help="The prompt's name.")],
         a: Annotated[str, typer.Argument(help="From: a version, 'latest' or a label.")],
         b: Annotated[str, typer.Argument(help="To: a version, 'latest' or a label.")],
         as_json: render.JsonFlag = False) -> None:
    """What changed between two versions: the template as a unified diff, then model and params."""
    d = Client().prompts.diff(name, a, b)
    if as_json:
        render.print_json(d)
        return
    if not d.changed:
        render.print_message(f"{name} v{d.from_version} and v{d.to_version} are identical")
        return
    for line in d.template_diff.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        render.print_message(line, style)
    for key, (before, after) in d.changes.items():
        render.print_message(f"{key}: {json.dumps(before)} -> {json.dumps(after)}")


@app.command("render")
def render_prompt(ref: Annotated[str, typer.Argument(help="NAME, NAME@LABEL or NAME/VERSION.")],
                  var: Annotated[list[str] | None, typer.Option("--var", help="KEY=VALUE; repeatable.")] = None,
                  var_file: Annotated[list[str] | None, typer.Option(
                      "--var-file", help="KEY=PATH: the variable's value is the file's text; repeatable.")] = None,
                  strict: Annotated[bool, typer.Option("--strict/--no-strict",
                                                       help="Refuse variables the template does not use.")] = True
                  ) -> None:
    """Fill a version in and print it; a missing (or, with --strict, unknown) variable is an error."""
    values: dict[str, Any] = _pairs(var, "--var")
    for key, path in _pairs(var_file, "--var-file").items():
        values[key] = _read(Path(path), "--var-file")
    typer.echo(Client().prompts.get(ref).render(values, strict=strict), nl=False)
