"""`arsenale gate`: decide in CI whether a candidate may replace the champion, and act on it.

    arsenale gate run --candidate models:/fraud/7 --against models:/fraud@champion \\
        --data dataset:transactions@4 --policy gates.toml --report gate.md --junit gate.xml --html gate.html
    arsenale gate list --model fraud
    arsenale gate show 12 --format markdown

`run` exits 0 when every check passed and 1 when one failed; an error (a bad policy, a missing column, an
unknown model) exits with its own code (2 bad input, 3 not found, …), so a CI job can tell the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.platform import Client

if TYPE_CHECKING:
    from arsenale.gates.results import CheckResult

app = typer.Typer(help="CI gates: a candidate against the champion, with statistics; promotion on a pass.",
                  no_args_is_help=True)

FORMATS = ("text", "markdown", "junit", "html", "json")


def _write(path: Path | None, text: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _print_results(title: str, results: Sequence[CheckResult], passed: bool, notes: Sequence[str]) -> None:
    t = render.table("check", "result", "candidate", "champion", "detail", title=title)
    for r in results:
        t.add_row(render.cell(r.name, "bold"), render.cell("pass" if r.passed else "FAIL",
                                                           "green" if r.passed else "red"),
                  render.cell(render.number(r.candidate)), render.cell(render.number(r.champion)),
                  render.cell(r.message))
    render.show(t)
    for note in notes:
        render.print_message(note)
    failed = sum(not r.passed for r in results)
    render.print_message(f"gate passed: {len(results)} checks" if passed
                         else f"gate failed: {failed} of {len(results)} checks", "green" if passed else "red")


@app.command("run")
def run(candidate: Annotated[str, typer.Option("--candidate", help="models:/NAME/VERSION (or @alias, /latest).")],
        data: Annotated[str, typer.Option("--data", help="dataset:NAME[@VERSION] or a Parquet/CSV file.")],
        policy: Annotated[Path, typer.Option("--policy", help="The gates.toml to apply.")] = Path("gates.toml"),
        against: Annotated[str | None, typer.Option(
            "--against", help="The champion, e.g. models:/NAME@champion; an alias not set yet means a first "
            "model (absolute thresholds only).")] = None,
        report: Annotated[Path | None, typer.Option("--report", help="Write the Markdown report here.")] = None,
        junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
        html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
        promote: Annotated[bool, typer.Option("--promote/--no-promote",
                                              help="Act on a pass as the policy's [promote] table says.")] = True,
        trusted: Annotated[bool, typer.Option("--trusted", help="Allow model formats that run code (pickle, "
                                              "pyfunc); only for models you trust.")] = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
        as_json: render.JsonFlag = False) -> None:
    """Run every check of the policy; exit 0 on pass, 1 on fail."""
    from arsenale.gates.html import render_html
    from arsenale.gates.report import junit_xml, markdown
    from arsenale.gates.runner import run_gate

    if not policy.is_file():
        raise InvalidInput(f"no policy file at {policy}", field="policy")
    outcome = run_gate(policy, candidate, against, data, client=Client(), promote=promote, trusted=trusted,
                       seed=seed)
    ev = outcome.evaluation
    notes = [*ev.notes, f"{ev.rows} rows; stored as gate run {outcome.run.id}"]
    if outcome.run.promotion:
        notes.append("promoted: " + ", ".join(f"{k} {v}" for k, v in outcome.run.promotion.items()))
    _write(report, markdown(ev.title, ev.results) + "".join(f"\n> {n}\n" for n in notes))
    _write(junit, junit_xml(ev.title, ev.results))
    _write(html, render_html(ev.title, ev.results, notes=notes))
    if as_json:
        render.print_json(outcome.run)
    else:
        _print_results(ev.title, ev.results, outcome.passed, notes)
    raise typer.Exit(0 if outcome.passed else 1)


@app.command("list")
def list_runs(model: Annotated[str | None, typer.Option("--model", help="Only this model's runs.")] = None,
              version: Annotated[int | None, typer.Option("--version", help="Only this version's runs.")] = None,
              limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
              as_json: render.JsonFlag = False) -> None:
    """Gate runs, newest first."""
    runs = Client().gates.list(model, version, limit)
    if as_json:
        render.print_json(runs)
        return
    if not runs:
        render.print_message("no gate runs yet: arsenale gate run --candidate models:/NAME/VERSION …")
        return
    t = render.table("id", "model", "champion", "data", "result", "failed", "promotion", "when")
    for r in runs:
        t.add_row(render.cell(r.id), render.cell(r.uri, "bold"),
                  render.cell("—" if r.champion_version is None else f"v{r.champion_version}"),
                  render.cell(r.dataset), render.cell("pass" if r.passed else "FAIL", "green" if r.passed else "red"),
                  render.cell(", ".join(r.failures)), render.cell(render.pairs(r.promotion or {})),
                  render.cell(render.iso(r.creation_time)))
    render.show(t)


@app.command("show")
def show(run_id: Annotated[int, typer.Argument(help="The gate run's id.")],
         fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "text",
         out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead.")] = None) -> None:
    """One gate run, as a table or as any of the reports `run` writes."""
    from arsenale.gates.html import render_html
    from arsenale.gates.report import junit_xml, markdown

    if fmt not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}", field="format")
    run = Client().gates.get(run_id)
    against = f"v{run.champion_version}" if run.champion_version else "no champion"
    title = f"Gate run {run.id}: {run.uri} vs {against} on {run.dataset}"
    checks = run.checks
    if fmt == "text" and out is None:
        _print_results(title, checks, run.passed, [])
        return
    text = {"text": lambda: markdown(title, checks), "markdown": lambda: markdown(title, checks),
            "junit": lambda: junit_xml(title, checks), "html": lambda: render_html(title, checks),
            "json": lambda: run.model_dump_json(indent=2)}[fmt]()
    if out is None:
        typer.echo(text)
    else:
        _write(out, text)
        render.print_message(f"wrote {out}")
