"""`arsenale pipeline`: run, list, show, graph and schedule pipelines; `arsenale scheduler` runs schedules.

    arsenale pipeline run flows.fraud:fraud_training --executor ray --param C=0.5
    arsenale pipeline graph flows.fraud:fraud_training
    arsenale pipeline schedule flows.fraud:fraud_training --cron "0 3 * * *" --on-dataset transactions
    arsenale scheduler --once

`--param KEY=VALUE` values are read as JSON when they parse (`C=0.5` is a number), else as text. A run whose
steps fail prints its report and exits with status 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.pipelines.models import PipelineRun, StepStatus

app = typer.Typer(help="Run, inspect and schedule pipelines.", no_args_is_help=True)

Ref = Annotated[str, typer.Argument(metavar="MODULE:FUNCTION", help="The @pipeline, e.g. flows.fraud:training.")]
Params = Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE (JSON or text); repeat for more.")]
ExecutorOpt = Annotated[str | None, typer.Option(
    "--executor", help="local, ray, or ray://host:port (default: ARSENALE_EXECUTOR, else local).")]

STATUS_STYLE = {"succeeded": "green", "cached": "cyan", "failed": "red", "not_run": "dim", "running": "yellow",
                "pending": "dim"}


def parse_params(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"--param must look like KEY=VALUE, got {item!r}", field="param")
        if key in out:
            raise InvalidInput(f"--param {key!r} is given more than once", field="param")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _service() -> Any:
    from arsenale.pipelines.service import PipelineService
    from arsenale.platform import Client

    return PipelineService.from_client(Client())


def _steps_table(run: PipelineRun) -> Any:
    t = render.table("step", "status", "layer", "attempts", "duration", "cache key", "output", "error",
                     title=f"{run.name} · {run.pipeline_run_id}", fixed=("cache key",))
    for s in run.steps:
        ms = s.duration_ms
        t.add_row(render.cell(s.name, "bold"), render.cell(s.status.value, STATUS_STYLE.get(s.status.value, "")),
                  render.cell(s.layer), render.cell(s.attempts),
                  render.cell(None if ms is None or s.status is StepStatus.CACHED else f"{ms / 1000:.2f}s"),
                  render.cell(s.cache_key), render.cell(f"{s.output_format} {render.size(s.output_size)}"
                                                        if s.output_digest else None),
                  render.cell(s.error))
    return t


@app.command("run")
def run(ref: Ref, executor: ExecutorOpt = None, param: Params = None, as_json: render.JsonFlag = False) -> None:
    """Run a pipeline now and print its report."""
    from arsenale.pipelines.runner import run_pipeline
    from arsenale.pipelines.schedules import load_pipeline

    result = run_pipeline(load_pipeline(ref), executor, parse_params(param), service=_service())
    if as_json:
        render.print_json(result)
    else:
        render.print_message(result.report())
    if result.status.value != "succeeded":
        raise typer.Exit(1)


@app.command("list")
def list_runs(
    name: Annotated[str | None, typer.Option("--name", help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many runs.")] = 50,
    as_json: render.JsonFlag = False,
) -> None:
    """List pipeline runs, newest first."""
    runs = _service().list_runs(name, limit)
    if as_json:
        render.print_json([{**r.model_dump(mode="json", exclude={"steps"}), "step_counts": c} for r, c in runs])
        return
    if not runs:
        render.print_message("no pipeline runs")
        return
    t = render.table("pipeline run", "pipeline", "status", "executor", "started", "succeeded", "cached", "failed",
                     "not run", "trigger", fixed=("pipeline run", "started"))
    for r, c in runs:
        t.add_row(render.cell(r.pipeline_run_id), render.cell(r.name, "bold"),
                  render.cell(r.status.value, STATUS_STYLE.get(r.status.value, "")), render.cell(r.executor),
                  render.cell(render.iso(r.start_time)), *(render.cell(c.get(k, 0)) for k in
                                                           ("succeeded", "cached", "failed", "not_run")),
                  render.cell(r.trigger))
    render.show(t)


@app.command("show")
def show(run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="A pipeline run id.")],
         as_json: render.JsonFlag = False) -> None:
    """Show one pipeline run: every step's status, timing, cache key and output."""
    result = _service().get_run(run_id)
    if as_json:
        render.print_json(result)
        return
    render.show(_steps_table(result))
    render.print_message(result.report().splitlines()[-1])


@app.command("graph")
def graph(ref: Ref, param: Params = None) -> None:
    """Print a pipeline's DAG, layer by layer (nothing runs)."""
    from arsenale.pipelines.graph import build
    from arsenale.pipelines.schedules import load_pipeline

    pipeline = load_pipeline(ref)
    params = parse_params(param)
    # Inputs without a default are not needed to draw the graph: trace with placeholders.
    for pname, p in pipeline.signature.parameters.items():
        if pname not in params and (p.default is p.empty or p.default is Ellipsis):
            params[pname] = None
    typer.echo(build(pipeline, params).ascii())


@app.command("schedule")
def schedule(
    ref: Ref,
    cron: Annotated[str | None, typer.Option("--cron", help="Cron expression, UTC, e.g. \"0 3 * * *\".")] = None,
    on_dataset: Annotated[str | None, typer.Option("--on-dataset", help="Also run on each new version of this "
                                                                        "dataset.")] = None,
    executor: ExecutorOpt = "local",
    param: Params = None,
    as_json: render.JsonFlag = False,
) -> None:
    """Schedule a pipeline on a cron expression and/or on new versions of a dataset."""
    from arsenale.pipelines.schedules import load_pipeline, next_tick

    load_pipeline(ref)  # fail now, not at 3 a.m.
    if cron is not None:
        next_tick(cron, 0)
    s = _service().create_schedule(ref, cron, params=parse_params(param), executor=executor,
                                   trigger_dataset=on_dataset)
    if as_json:
        render.print_json(s)
        return
    when = f"next run {render.iso(s.next_run_time)}" if s.next_run_time else "no cron"
    watch = f"; runs on new versions of dataset {s.trigger_dataset!r}" if s.trigger_dataset else ""
    render.print_message(f"scheduled {ref} (schedule {s.schedule_id}): {when}{watch}", "green")


@app.command("schedules")
def schedules(as_json: render.JsonFlag = False) -> None:
    """List schedules."""
    items = _service().list_schedules()
    if as_json:
        render.print_json(items)
        return
    if not items:
        render.print_message("no schedules")
        return
    t = render.table("schedule", "pipeline", "cron", "dataset", "next run", "last run", "last pipeline run",
                     fixed=("schedule", "next run", "last run"))
    for s in items:
        t.add_row(render.cell(s.schedule_id), render.cell(s.pipeline_ref, "bold"), render.cell(s.cron),
                  render.cell(f"{s.trigger_dataset}@{s.last_dataset_version}" if s.trigger_dataset else None),
                  render.cell(render.iso(s.next_run_time)), render.cell(render.iso(s.last_run_time)),
                  render.cell(s.last_pipeline_run_id))
    render.show(t)


def scheduler(
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=1.0, help="Seconds between ticks.")] = 30.0,
) -> None:
    """Run scheduled pipelines when they are due (any number of schedulers may share a store)."""
    from arsenale.pipelines.schedules import Scheduler

    sched = Scheduler(_service())
    while True:
        for r in sched.tick():
            style = "green" if r.status == "succeeded" else "red"
            detail = f" ({r.error})" if r.error else ""
            render.print_message(f"{r.pipeline_ref} [{r.trigger}]: {r.status} {r.pipeline_run_id or ''}{detail}",
                                 style)
        if once:
            return
        import time

        time.sleep(interval)


def register(root: typer.Typer) -> None:
    """Add `arsenale pipeline …` and `arsenale scheduler` to the root command."""
    root.add_typer(app, name="pipeline")
    root.command("scheduler")(scheduler)
