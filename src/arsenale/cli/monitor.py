"""`arsenale monitor`: watch a deployment's live traffic against its model's contract, or LLM traces.

    arsenale monitor create fraud-api --reference model-contract --window 1h --schedule "*/10 * * * *"
    arsenale monitor create-llm support-bot --trace-name answer --prompt support --window 1h
    arsenale monitor run fraud-api                 # one evaluation now
    arsenale monitor history fraud-api
    arsenale monitor report fraud-api --out drift.html
    arsenale alerts rule add --monitor fraud-api --when "drift_share > 0.3 for 2 windows" --notify log
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.platform import Client

app = typer.Typer(help="Monitors: drift, data quality and accuracy of a deployment's live traffic; latency, "
                       "cost, errors and scores of LLM traces.",
                  no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The monitor's name (usually the deployment's).")]


@app.command("create")
def create(name: Name,
           deployment: Annotated[str | None, typer.Option("--deployment", help="Default: the monitor's name.")]
           = None,
           reference: Annotated[str, typer.Option("--reference", help="What live data is compared with.")]
           = "model-contract",
           window: Annotated[str, typer.Option("--window", help="Each evaluation's window: 10m, 1h, 1d…")] = "1h",
           schedule: Annotated[str | None, typer.Option(
               "--schedule", help="Cron expression (UTC) for runs by `arsenale scheduler`.")]
           = None,
           drift_share: Annotated[float, typer.Option("--drift-share", min=0, max=1, help="Share of drifted "
                                                      "features that flags the dataset.")] = 0.5,
           as_json: render.JsonFlag = False) -> None:
    """Watch a deployment: each evaluation compares a window of its logged traffic with the contract."""
    mon = Client().monitors.create(name, deployment or name, reference=reference, window=window,
                                   schedule=schedule, drift_share=drift_share)
    if as_json:
        render.print_json(mon)
    else:
        render.print_message(f"monitor {mon.name}: deployment {mon.deployment}, window {mon.window_s} s, "
                             f"reference {mon.reference}" + (f", schedule {mon.schedule}" if mon.schedule else ""),
                             "green")


@app.command("create-llm")
def create_llm(name: Name,
               trace_name: Annotated[str | None, typer.Option("--trace-name", help="Only traces of this name.")]
               = None,
               prompt: Annotated[str | None, typer.Option("--prompt", help="Only traces of this prompt: NAME (any "
                                                          "version) or NAME/VERSION.")] = None,
               tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE the trace's root span must "
                                                             "hold; repeat for more.")] = None,
               feedback: Annotated[str, typer.Option("--feedback", help="The score name of human feedback.")]
               = "thumbs",
               window: Annotated[str, typer.Option("--window", help="Each evaluation's window: 10m, 1h, 1d…")]
               = "1h",
               schedule: Annotated[str | None, typer.Option(
                   "--schedule", help="Cron expression (UTC) for runs by `arsenale scheduler`.")] = None,
               as_json: render.JsonFlag = False) -> None:
    """Watch LLM traces: each evaluation measures a window's count, errors, latency, cost, tokens and scores."""
    from arsenale.errors import InvalidInput

    tags: dict[str, str] = {}
    for entry in tag or []:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--tag takes KEY=VALUE, got {entry!r:.80}", field="tags")
        tags[key] = value
    mon = Client().monitors.create_llm(name, trace_name=trace_name, prompt=prompt, tags=tags, feedback=feedback,
                                       window=window, schedule=schedule)
    if as_json:
        render.print_json(mon)
    else:
        render.print_message(f"LLM monitor {mon.name}: window {mon.window_s} s"
                             + (f", schedule {mon.schedule}" if mon.schedule else ""), "green")


@app.command("list")
def list_monitors(as_json: render.JsonFlag = False) -> None:
    """Every monitor."""
    monitors = Client().monitors.list()
    if as_json:
        render.print_json(monitors)
        return
    if not monitors:
        render.print_message("no monitors yet: arsenale monitor create DEPLOYMENT --window 1h")
        return
    t = render.table("name", "deployment", "window s", "schedule", "next run", "reference", "created")
    for m in monitors:
        t.add_row(render.cell(m.name, "bold"), render.cell(m.deployment or f"({m.kind})"), render.cell(m.window_s),
                  render.cell(m.schedule or ""),
                  render.cell(render.iso(m.next_run_time) if m.schedule else ""),
                  render.cell(m.reference), render.cell(render.iso(m.creation_time)))
    render.show(t)


NOTIFY_WAIT_SECONDS = 30.0

_HEADLINE = ("rows", "drift_share", "dataset_drift", "drifted_columns", "quality.errors", "quality.warnings",
             "labelled", "accuracy")
_LLM_HEADLINE = ("traces", "error_rate", "latency_p50", "latency_p95", "latency_p99", "cost_total", "cost_mean",
                 "tokens_in", "tokens_out", "negative_feedback_share")
_LLM_HISTORY = ("traces", "error_rate", "latency_p95", "cost_total")


def _headline(values: dict[str, float | None]) -> tuple[str, ...]:
    """The values a table shows: an LLM window's (with its score means), or a model window's."""
    if "traces" in values:
        return _LLM_HEADLINE + tuple(sorted(k for k in values if k.startswith("score.")))
    return _HEADLINE


@app.command("run")
def run(name: Name, as_json: render.JsonFlag = False) -> None:
    """Evaluate the window that ends now, store the result, evaluate its alert rules, and show it."""
    monitors = Client().monitors
    result = monitors.run(name)
    notifier = getattr(getattr(monitors, "alerts", None), "notifier", None)
    if result.alerts and notifier is not None:
        notifier.flush(NOTIFY_WAIT_SECONDS)  # a short-lived process: let notifications (and retries) go out
    if as_json:
        render.print_json(result)
        return
    rows = [(k, render.number(result.values.get(k))) for k in _headline(result.values)]
    answering = f" ({result.model}/{result.version})" if result.model else ""
    render.show(render.key_value_table(rows, title=f"{name}: {render.iso(result.window_start)} → "
                                                   f"{render.iso(result.window_end)}{answering}"))
    drifted = [c for c, r in (result.report or {}).get("drift", {}).get("columns", {}).items() if r.get("drifted")]
    if drifted:
        render.print_message(f"drifted: {', '.join(drifted[:12])}{' …' if len(drifted) > 12 else ''}", "red")
    for alert in result.alerts:
        render.print_message(f"alert {alert.id} {alert.status}: {alert.rule} ({alert.threshold})",
                             "red" if alert.status == "firing" else "green")
    if result.alert_error:
        render.print_message(f"alert rules were not evaluated: {result.alert_error}", "red")


@app.command("history")
def history(name: Name, limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
            as_json: render.JsonFlag = False) -> None:
    """Past evaluations, newest first."""
    runs = Client().monitors.runs(name, limit)
    if as_json:
        render.print_json(runs)
        return
    headline = _headline(runs[0].values) if runs else _HEADLINE
    llm = headline is not _HEADLINE
    if llm:  # one line per window must fit a terminal: the figures an operator scans (all of them: --json)
        headline = tuple(k for k in headline if k in _LLM_HISTORY or k.startswith("score."))
    t = render.table("window end", *(() if llm else ("version",)), *headline)
    for r in runs:
        version = () if llm else (render.cell(f"{r.model}/{r.version}" if r.model else ""),)
        t.add_row(render.cell(render.iso(r.window_end)), *version,
                  *(render.cell(render.number(r.values.get(k))) for k in headline))
    render.show(t)


@app.command("report")
def report(name: Name, out: Annotated[Path, typer.Option("--out", help="Where to write the HTML file.")]
           = Path("drift.html")) -> None:
    """Write the latest evaluation as one self-contained HTML file (opens offline)."""
    from arsenale.errors import NotFound
    from arsenale.monitoring.drift import DriftReport
    from arsenale.monitoring.quality import QualityReport
    from arsenale.monitoring.report import render_report

    runs = Client().monitors.runs(name, 1, with_report=True)
    if not runs or runs[0].report is None:
        raise NotFound(f"monitor {name!r} has not run yet: arsenale monitor run {name}", field="name")
    latest = runs[0]
    if "drift" not in latest.report:
        raise NotFound(f"monitor {name!r} keeps no drift report (an LLM monitor): arsenale monitor history {name}",
                       field="name")
    drift = DriftReport.model_validate(latest.report["drift"])
    quality = QualityReport.model_validate(latest.report["quality"]) if latest.report.get("quality") else None
    html = render_report(drift, quality=quality, title=f"{name} · {latest.model}/{latest.version}",
                         generated_at_ms=latest.timestamp)
    out.write_text(html, encoding="utf-8")
    render.print_message(f"wrote {out} ({len(html.encode()) // 1024} KiB)", "green")


@app.command("delete")
def delete(name: Name) -> None:
    """Delete a monitor and its history (the audit trail keeps its record)."""
    Client().monitors.delete(name)
    render.print_message(f"deleted monitor {name}", "green")
