"""`arsenale runs`: list, show, compare and search runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from arsenale.cli import render
from arsenale.cli.experiments import resolve_experiment
from arsenale.errors import InvalidInput
from arsenale.platform import Client
from arsenale.tracking.models import ArtifactInfo, Run, RunPage

app = typer.Typer(help="List, show, compare and search runs.", no_args_is_help=True)

OrderBy = Annotated[list[str] | None, typer.Option(
    "--order-by", help="e.g. 'metrics.loss ASC' or 'attributes.start_time DESC'; repeat for tie-breakers.")]
MaxResults = Annotated[int, typer.Option("--max-results", min=1, help="At most this many runs.")]
PageToken = Annotated[str | None, typer.Option("--page-token", help="Continue from a previous --json page.")]

MAX_KEY_COLUMNS = 8  # params and metrics each; the rest is in `runs show` and --json
DIFFERS = "≠"


def _duration(run: Run) -> str:
    if run.info.end_time is None:
        return ""
    seconds = (run.info.end_time - run.info.start_time) / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}min"


def runs_table(runs: list[Run], show_experiment: bool) -> Table:
    param_keys = sorted({k for r in runs for k in r.data.params})
    metric_keys = sorted({k for r in runs for k in r.data.metrics})
    shown_params, shown_metrics = param_keys[:MAX_KEY_COLUMNS], metric_keys[:MAX_KEY_COLUMNS]
    columns = ["run_id", "name", "status", *(["experiment"] if show_experiment else []), "start", "duration",
               *(f"params.{k}" for k in shown_params), *(f"metrics.{k}" for k in shown_metrics)]
    t = render.table(*columns, fixed=("run_id", "start"))
    for r in runs:
        t.add_row(render.cell(r.info.run_id), render.cell(r.info.run_name, "bold"),
                  render.cell(r.info.status.value),
                  *([render.cell(r.info.experiment_id)] if show_experiment else []),
                  render.cell(render.iso(r.info.start_time)), render.cell(_duration(r)),
                  *(render.cell(r.data.params.get(k)) for k in shown_params),
                  *(render.cell(render.number(r.data.metrics[k]) if k in r.data.metrics else None)
                    for k in shown_metrics))
    hidden = len(param_keys) - len(shown_params) + len(metric_keys) - len(shown_metrics)
    if hidden:
        t.caption = f"{hidden} more params/metrics not shown: use `runs show` or --json"
    return t


def _print_page(page: RunPage, as_json: bool, show_experiment: bool) -> None:
    if as_json:
        render.print_json(page)
        return
    if not page.runs:
        render.print_message("no runs match")
        return
    render.show(runs_table(page.runs, show_experiment))
    if page.next_page_token:
        render.print_message(f"showing the first {len(page.runs)} runs; more match "
                             f"(raise --max-results, or page with --json and --page-token)", "yellow")


@app.command("list")
def list_runs(
    experiment: Annotated[str, typer.Argument(help="Experiment id or name.")],
    filter_: Annotated[str | None, typer.Option(
        "--filter", help="e.g. \"metrics.loss < 0.1 and params.model = 'rf'\"")] = None,
    order_by: OrderBy = None,
    max_results: MaxResults = 1000,
    page_token: PageToken = None,
    as_json: render.JsonFlag = False,
) -> None:
    """List the runs of one experiment."""
    api = Client().tracking
    exp = resolve_experiment(api, experiment)
    page = api.search_runs([exp.experiment_id], filter=filter_, order_by=order_by or None,
                           max_results=max_results, page_token=page_token)
    _print_page(page, as_json, show_experiment=False)


@app.command("search")
def search(
    experiments: Annotated[list[str], typer.Argument(metavar="EXPERIMENT...", help="Ids or names.")],
    filter_: Annotated[str, typer.Option(
        "--filter", help="e.g. \"metrics.loss < 0.1 and params.model = 'rf'\"")],
    order_by: OrderBy = None,
    max_results: MaxResults = 1000,
    page_token: PageToken = None,
    as_json: render.JsonFlag = False,
) -> None:
    """Search the runs of one or more experiments with a filter."""
    api = Client().tracking
    ids = list(dict.fromkeys(resolve_experiment(api, e).experiment_id for e in experiments))
    page = api.search_runs(ids, filter=filter_, order_by=order_by or None, max_results=max_results,
                           page_token=page_token)
    _print_page(page, as_json, show_experiment=True)


def _artifacts_table(artifacts: list[ArtifactInfo]) -> Table:
    t = render.table("path", "size", title="artifacts")
    for a in artifacts:
        t.add_row(render.cell(a.path + "/" if a.is_dir else a.path), render.cell(render.size(a.size)))
    return t


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run's 32-character id.")],
    as_json: render.JsonFlag = False,
) -> None:
    """A run's info, params, tags, latest metrics and top-level artifacts."""
    api = Client().tracking
    run = api.get_run(run_id)
    artifacts = api.list_artifacts(run.info.run_id)
    if as_json:
        render.print_json({**run.model_dump(mode="json"), "artifacts": artifacts})
        return
    i = run.info
    info = [("run_id", i.run_id), ("run_name", i.run_name), ("experiment_id", i.experiment_id),
            ("status", i.status.value), ("start_time", render.iso(i.start_time)),
            ("end_time", render.iso(i.end_time) if i.end_time is not None else None),
            ("duration", _duration(run) or None), ("user_id", i.user_id), ("parent_run_id", i.parent_run_id),
            ("lifecycle_stage", i.lifecycle_stage)]
    parts: list[Any] = [render.key_value_table(info, "run")]
    if run.data.params:
        parts.append(render.key_value_table(sorted(run.data.params.items()), "params"))
    if run.data.tags:
        parts.append(render.key_value_table(sorted(run.data.tags.items()), "tags"))
    if run.data.metrics:
        parts.append(render.key_value_table(
            [(k, render.number(v)) for k, v in sorted(run.data.metrics.items())], "metrics", "latest"))
    if artifacts:
        parts.append(_artifacts_table(artifacts))
    render.show(*parts)


def _comparison(runs: list[Run]) -> dict[str, dict[str, list[Any]]]:
    """{"params": {key: [value per run]}, "metrics": {...}}; None where a run lacks the key."""
    return {
        "params": {k: [r.data.params.get(k) for r in runs]
                   for k in sorted({k for r in runs for k in r.data.params})},
        "metrics": {k: [r.data.metrics.get(k) for r in runs]
                    for k in sorted({k for r in runs for k in r.data.metrics})},
    }


def _differs(values: list[Any]) -> bool:
    # Compare what the user sees, so NaN equals NaN and 1 equals 1.0.
    return len({render.number(v) if isinstance(v, float) else v for v in values}) > 1


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN_ID RUN_ID...", help="Two or more run ids.")],
    as_json: render.JsonFlag = False,
) -> None:
    """Params and metrics of several runs side by side; values that differ are highlighted."""
    ids = list(dict.fromkeys(run_ids))
    if len(ids) < 2:
        raise InvalidInput("compare needs at least two different run ids", field="run_ids")
    api = Client().tracking
    runs = [api.get_run(r) for r in ids]
    table_data = _comparison(runs)
    if as_json:
        render.print_json({
            "run_ids": ids,
            "run_names": [r.info.run_name for r in runs],
            **table_data,
            "differing": {kind: [k for k, vals in rows.items() if _differs(vals)]
                          for kind, rows in table_data.items()},
        })
        return
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
              caption=f"{DIFFERS} marks values that differ between the runs")
    t.add_column("", width=1)
    t.add_column("key", overflow="fold")
    for r in runs:
        t.add_column(r.info.run_name, overflow="fold")
    t.add_row("", render.cell("run_id", "dim"), *(render.cell(r.info.run_id, "dim") for r in runs))
    t.add_row("", render.cell("status", "dim"), *(render.cell(r.info.status.value, "dim") for r in runs))
    for kind, rows in table_data.items():
        for key, values in rows.items():
            differs = _differs(values)
            style = "bold yellow" if differs else ""
            shown = [render.number(v) if isinstance(v, float) else v for v in values]
            t.add_row(DIFFERS if differs else "", render.cell(f"{kind}.{key}", style),
                      *(render.cell(v, style) for v in shown))
    render.show(t)
