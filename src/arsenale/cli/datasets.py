"""`arsenale datasets`: registered datasets, their versions, and validation against a data schema.

    arsenale datasets register NAME FILE [--policy reject|quarantine|allow] [--schema schema.json]
    arsenale datasets validate DATASET_OR_FILE --schema schema.json     exit 2 when the data fails
    arsenale datasets infer-schema DATASET_OR_FILE [--output schema.json]
    arsenale datasets list | versions NAME | show NAME[@VERSION]

A DATASET_OR_FILE that names an existing file is read from disk (CSV or Parquet); anything else is a
registered dataset, `name` (its latest version) or `name@version`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.platform import Client

if TYPE_CHECKING:  # pandas and pyarrow load only when a datasets command runs
    from arsenale.data.models import DatasetVersion
    from arsenale.data.validation import ValidationReport

app = typer.Typer(help="Versioned datasets and data validation.", no_args_is_help=True)

EXIT_INVALID_DATA = 2

Name = Annotated[str, typer.Argument(help="The dataset's name.")]
Target = Annotated[str, typer.Argument(metavar="DATASET_OR_FILE",
                                       help="A CSV/Parquet file, or a dataset as name or name@version.")]
SchemaOpt = Annotated[Path | None, typer.Option("--schema", help="A validation schema (JSON file).",
                                                dir_okay=False)]


def _split(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition("@")
    return name, version or "latest"


def _load(target: str) -> tuple[Any, str]:
    """(data, what it is) for a file on disk or a registered dataset."""
    from arsenale.data.datasets import load_table

    if Path(target).is_file():
        return load_table(target)[0], target
    name, version = _split(target)
    client = Client()
    dv = client.datasets.get(name, version)
    return client.datasets.read(dv.name, dv.version), dv.uri


def _status(ok: bool) -> Text:
    return Text("pass", style="green") if ok else Text("FAIL", style="bold red")


def report_table(report: ValidationReport, title: str) -> Any:
    t = render.table("check", "column", "result", "failing rows", "examples", "message", title=title,
                     fixed=("check", "result"))
    for c in report.checks:
        examples = ", ".join(json.dumps(e, ensure_ascii=False) for e in c.examples)
        t.add_row(render.cell(c.check), render.cell(c.column), _status(c.passed),
                  render.cell(c.failing_rows if c.level == "row" else None), render.cell(examples),
                  render.cell(c.message))
    return t


def _summary(report: ValidationReport) -> Text:
    if report.passed:
        return Text(f"passed: {len(report.checks)} checks on {report.rows} rows", style="green")
    return Text(f"failed: {len(report.failures)} of {len(report.checks)} checks; {report.failing_rows} of "
                f"{report.rows} rows fail a row check", style="bold red")


def versions_table(versions: list[DatasetVersion]) -> Any:
    t = render.table("version", "status", "rows", "columns", "digest", "source", "created", "by",
                     fixed=("version", "digest", "created"))
    for v in versions:
        style = {"published": "green", "quarantined": "yellow", "rejected": "red"}[v.status.value]
        t.add_row(render.cell(v.version, "bold"), render.cell(v.status.value, style), render.cell(v.rows),
                  render.cell(v.columns), render.cell(v.digest[:12]), render.cell(v.source),
                  render.cell(render.iso(v.creation_time)), render.cell(v.created_by))
    return t


@app.command("list")
def list_datasets(as_json: render.JsonFlag = False) -> None:
    """List registered datasets."""
    found = Client().datasets.list()
    if as_json:
        render.print_json(found)
        return
    if not found:
        render.print_message("no datasets")
        return
    t = render.table("name", "latest", "versions", "updated", "description", fixed=("updated",))
    for d in found:
        t.add_row(render.cell(d.name, "bold"), render.cell(None if d.latest_version is None
                                                           else f"v{d.latest_version}"),
                  render.cell(d.versions), render.cell(render.iso(d.last_update_time)), render.cell(d.description))
    render.show(t)


@app.command("versions")
def versions(name: Name, as_json: render.JsonFlag = False) -> None:
    """A dataset's versions, newest first (rejected ones included)."""
    found = Client().datasets.versions(name)
    if as_json:
        render.print_json(found)
    else:
        render.show(versions_table(found))


@app.command("show")
def show(ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="A dataset, e.g. tx or tx@3.")],
         as_json: render.JsonFlag = False) -> None:
    """One version: where it came from, its columns, and its validation report."""
    name, version = _split(ref)
    dv = Client().datasets.get(name, version)
    if as_json:
        render.print_json(dv)
        return
    info = [("dataset", dv.uri), ("status", dv.status.value), ("rows", dv.rows), ("columns", dv.columns),
            ("digest", dv.digest), ("source", dv.source), ("created", render.iso(dv.creation_time)),
            ("by", dv.created_by), ("files", ", ".join(f"{f.path} ({render.size(f.size)})" for f in dv.files))]
    parts: list[Any] = [render.key_value_table(info, "version")]
    cols = render.table("column", "dtype", "nullable", "min", "max", "categories", title="schema")
    for c in dv.data_schema.get("columns", []):
        cats = c.get("categories")
        cols.add_row(render.cell(c["name"], "bold"), render.cell(c["dtype"]), render.cell(c.get("nullable")),
                     render.cell(c.get("min")), render.cell(c.get("max")),
                     render.cell(None if cats is None else ", ".join(cats[:10]) + (" …" if len(cats) > 10 else "")))
    parts.append(cols)
    if dv.validation is not None:
        from arsenale.data.validation import ValidationReport

        report = ValidationReport.model_validate(dv.validation)
        parts += [report_table(report, "validation"), _summary(report)]
    render.show(*parts)


@app.command("register")
def register(
    name: Name,
    file: Annotated[Path, typer.Argument(help="A CSV or Parquet file.", dir_okay=False)],
    policy: Annotated[str, typer.Option("--policy", help="When the data fails its schema: reject (keep the "
                                                         "version, never latest), quarantine (publish the "
                                                         "clean rows) or allow.")] = "reject",
    schema: SchemaOpt = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    as_json: render.JsonFlag = False,
) -> None:
    """Register a file as the next version of NAME (identical data returns the existing version).
    Exits 2 when the version is rejected."""
    from arsenale.data.datasets import parse_schema
    from arsenale.data.validation import ValidationReport

    rules = parse_schema(schema)
    dv = Client().datasets.register(name, file, description=description, schema=rules, policy=policy)
    if as_json:
        render.print_json(dv)
    else:
        parts: list[Any] = [versions_table([dv])]
        if dv.validation is not None:
            report = ValidationReport.model_validate(dv.validation)
            if not report.passed:
                parts += [report_table(report, "validation"), _summary(report)]
        render.show(*parts)
    if dv.status.value == "rejected":
        raise typer.Exit(EXIT_INVALID_DATA)


@app.command("validate")
def validate_cmd(target: Target,
                 schema: Annotated[Path, typer.Option("--schema", help="A validation schema (JSON file).",
                                                      dir_okay=False)],
                 as_json: render.JsonFlag = False) -> None:
    """Check a file or a dataset version against a schema; exits 2 when a check fails."""
    from arsenale.data.datasets import parse_schema
    from arsenale.data.validation import validate

    rules = parse_schema(schema)
    assert rules is not None
    data, what = _load(target)
    report = validate(data, rules)
    if as_json:
        render.print_json(report)
    else:
        render.show(report_table(report, what), _summary(report))
    if not report.passed:
        raise typer.Exit(EXIT_INVALID_DATA)


@app.command("infer-schema")
def infer_schema_cmd(
    target: Target,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the schema here (default: "
                                                                       "print it).", dir_okay=False)] = None,
    unique: Annotated[list[str] | None, typer.Option("--unique", help="A column that must be unique; "
                                                                      "repeatable.")] = None,
) -> None:
    """A validation schema that the data passes, to edit and keep next to the pipeline."""
    from arsenale.data.validation import infer_data_schema

    data, _ = _load(target)
    text = infer_data_schema(data, unique=unique or None).to_json()
    if output is None:
        typer.echo(text)
        return
    try:
        output.write_text(text + "\n")
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}", field="output") from None
    render.print_message(f"wrote {output}")
