"""`arsenale alerts`: rules over a monitor's values, and the alerts they fired.

    arsenale alerts rule add --monitor fraud-api --when "drift_share > 0.3 for 2 windows" \\
        --notify webhook:https://alertmanager.example/hook --notify log --trigger-pipeline flows.fraud:retrain
    arsenale alerts rule list --monitor fraud-api
    arsenale alerts rule delete 3
    arsenale alerts list --status firing

The same commands work against a server (`--uri http://…`): rules are stored and evaluated there.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from arsenale.cli import render
from arsenale.platform import Client

app = typer.Typer(help="Alerts: rules over monitored values (drift, quality, accuracy), notifications, "
                       "history.", no_args_is_help=True)
rule_app = typer.Typer(help="Alert rules: when a monitored value breaches, for how many windows, who is "
                            "told.", no_args_is_help=True)
app.add_typer(rule_app, name="rule")

MonitorOpt = Annotated[str | None, typer.Option("--monitor", help="Only this monitor's.")]


def _alerts() -> Any:
    """The store's alert rules: an `AlertService` next to a local store, an `AlertClient` for a server URI
    (the same methods)."""
    return Client().monitors.alerts


@rule_app.command("add")
def add(
    monitor: Annotated[str, typer.Option("--monitor", help="The monitor whose values the rule watches.")],
    when: Annotated[str, typer.Option("--when", help="METRIC OP NUMBER [for N windows], e.g. "
                                                     "\"drift_share > 0.3 for 2 windows\".")],
    name: Annotated[str | None, typer.Option("--name", help="Default: the rule's text.")] = None,
    notify: Annotated[list[str] | None, typer.Option("--notify", help="webhook:URL (Alertmanager format), "
                                                     "slack:URL or log (repeatable).")] = None,
    trigger_pipeline: Annotated[str | None, typer.Option(
        "--trigger-pipeline", help="MODULE:FUNCTION pipeline run when the rule fires, with the evidence.")]
    = None,
    severity: Annotated[str, typer.Option("--severity", help="warning or critical.")] = "warning",
    as_json: render.JsonFlag = False,
) -> None:
    """Add a rule to a monitor: it fires after N consecutive breaching windows and resolves at the first that
    does not breach."""
    client = Client()
    if trigger_pipeline is not None and not client.uri.startswith(("http://", "https://")):
        from arsenale.pipelines.schedules import load_pipeline

        # Fail now, not when the alert fires. Only next to a local store: against a server the pipeline is
        # imported by the server, whose modules are not this process's, so the server's check is the one.
        load_pipeline(trigger_pipeline)
    rule = client.monitors.alerts.add_rule(monitor, when, name=name, notify=notify or [],
                                           trigger_pipeline=trigger_pipeline, severity=severity)
    if as_json:
        render.print_json(rule)
        return
    extra = (f", notify {', '.join(rule.notify)}" if rule.notify else "") + \
        (f", triggers {rule.trigger_pipeline}" if rule.trigger_pipeline else "")
    render.print_message(f"rule {rule.id} on monitor {rule.monitor}: {rule.when} ({rule.severity}){extra}",
                         "green")


@rule_app.command("list")
def list_rules(monitor: MonitorOpt = None, as_json: render.JsonFlag = False) -> None:
    """Every rule (or one monitor's), with where it stands."""
    rules = _alerts().list_rules(monitor)
    if as_json:
        render.print_json(rules)
        return
    if not rules:
        render.print_message("no alert rules yet: "
                             "arsenale alerts rule add --monitor M --when \"drift_share > 0.3\"")
        return
    t = render.table("id", "monitor", "name", "when", "severity", "notify", "pipeline", "state",
                     fixed=("id",))
    for r in rules:
        state = (r.state or {}).get("status", "ok")
        t.add_row(render.cell(r.id), render.cell(r.monitor, "bold"), render.cell(r.name), render.cell(r.when),
                  render.cell(r.severity), render.cell(", ".join(r.notify)), render.cell(r.trigger_pipeline),
                  render.cell(state, "red" if state == "firing" else ""))
    render.show(t)


@rule_app.command("delete")
def delete_rule(rule_id: Annotated[int, typer.Argument(help="The rule's id (see `alerts rule list`).")],
                as_json: render.JsonFlag = False) -> None:
    """Delete a rule and its alerts (the audit trail keeps their record)."""
    _alerts().delete_rule(rule_id)
    if as_json:
        render.print_json({"deleted": rule_id})
    else:
        render.print_message(f"deleted alert rule {rule_id}", "green")


@app.command("list")
def list_alerts(
    monitor: MonitorOpt = None,
    status: Annotated[str | None, typer.Option("--status", help="firing or resolved.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: render.JsonFlag = False,
) -> None:
    """Alerts, newest first: when each fired, on what value, whether it resolved, how it was delivered."""
    alerts = _alerts().list_alerts(monitor, status, limit)
    if as_json:
        render.print_json(alerts)
        return
    if not alerts:
        render.print_message("no alerts")
        return
    t = render.table("id", "monitor", "rule", "status", "value", "started", "resolved", "deliveries",
                     "pipeline run", fixed=("id", "started", "resolved"))
    for a in alerts:
        delivered = sum(d.get("status") == "delivered" for d in a.deliveries)
        failed = sum(d.get("status") == "failed" for d in a.deliveries)
        sent = f"{delivered}/{len(a.deliveries)} delivered" + (f", {failed} failed" if failed else "")
        t.add_row(render.cell(a.id), render.cell(a.monitor, "bold"), render.cell(a.rule),
                  render.cell(a.status, "red" if a.status == "firing" else "green"),
                  render.cell(render.number(a.value)),
                  render.cell(render.iso(a.started_at)), render.cell(render.iso(a.resolved_at)),
                  render.cell(sent if a.deliveries else ""),
                  render.cell(a.pipeline_run_id or a.pipeline_error))
    render.show(t)
