"""`arsenale metrics`: what the organisation measures its ML delivery by, read from the audit trail.

    arsenale metrics delivery                        # the last 30 days
    arsenale metrics delivery --since 2024-05-01 --until 2024-06-01 --model fraud --json

The definitions of the five metrics are in `arsenale.audit.delivery`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from arsenale.audit.delivery import describe_window
from arsenale.audit.models import DeliveryReport
from arsenale.cli import render
from arsenale.platform import Client
from arsenale.units import human_duration

app = typer.Typer(help="Platform metrics computed from the audit trail.", no_args_is_help=True)


def _pct(share: float | None) -> str:
    return render.MISSING if share is None else f"{100 * share:.1f}%"


def _rate(value: float | None) -> str:
    return render.MISSING if value is None else f"{value:.3g}"


def summary_rows(r: DeliveryReport) -> list[tuple[str, str, str]]:
    """(metric, value, detail or the reason it has no value): the table's rows, also used by tests."""
    lt, df, rb, mon, ap = r.lead_time, r.deployment_frequency, r.rollback_rate, r.monitoring, r.alert_to_promotion
    return [
        ("lead time (run start → production)",
         render.MISSING if lt.median_s is None else f"median {human_duration(lt.median_s)}, "
                                                    f"p90 {human_duration(lt.p90_s)}",
         lt.reason or f"{lt.count} version(s)"),
        ("deployment frequency",
         render.MISSING if df.per_week is None else f"{_rate(df.per_week)}/week, {_rate(df.per_day)}/day",
         df.reason or f"{df.changes} production change(s): " + render.pairs(df.by_action)),
        ("rollback rate", _pct(rb.rate), rb.reason or f"{rb.rollbacks} rollback(s) / {rb.changes} change(s)"),
        ("production models monitored", _pct(mon.share),
         mon.reason or f"{mon.monitored} of {mon.production_models}"
                       + (f"; unmonitored: {', '.join(mon.unmonitored)}" if mon.unmonitored else "")),
        ("drift alert → next promotion",
         render.MISSING if ap.median_s is None else f"median {human_duration(ap.median_s)}",
         ap.reason or f"{ap.promoted} of {ap.alerts} alert(s) followed by a promotion"),
    ]


@app.command("delivery")
def delivery(
    since: Annotated[str, typer.Option("--since", help="Start of the window: a duration before --until "
                                       "(30d, 12h) or an ISO 8601 time.")] = "30d",
    until: Annotated[str | None, typer.Option("--until", help="End of the window: an ISO 8601 time or a "
                                              "duration before now. Default: now.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    as_json: render.JsonFlag = False,
) -> None:
    """Lead time to production, deployment frequency, rollback rate, monitoring coverage, alert → promotion."""
    report = Client().metrics.delivery(since=since, until=until, model=model)
    if as_json:
        render.print_json(report)
        return
    title = f"delivery {describe_window(report)}" + (f", model {report.model}" if report.model else "")
    t = render.table("metric", "value", "detail", title=title)
    for name, value, detail in summary_rows(report):
        t.add_row(render.cell(name, "bold"), render.cell(value), render.cell(detail, "dim" if value ==
                                                                              render.MISSING else ""))
    tables: list[Any] = [t]
    if report.lead_time.versions:
        v = render.table("model", "version", "run", "run started", "serving since", "deployment", "via",
                         "lead time", title="lead time per version", fixed=("run started", "serving since"))
        for x in report.lead_time.versions:
            v.add_row(render.cell(x.model), render.cell(x.version), render.cell(x.run_id),
                      render.cell(render.iso(x.run_start)), render.cell(render.iso(x.serving_since)),
                      render.cell(x.deployment), render.cell(x.action),
                      render.cell(human_duration(x.lead_time_s) if x.lead_time_s is not None else x.reason))
        tables.append(v)
    if report.rollback_rate.events:
        b = render.table("time", "deployment", "by", "from", "to", "reason", title="rollbacks", fixed=("time",))
        for e in report.rollback_rate.events:
            b.add_row(render.cell(render.iso(e.timestamp)), render.cell(e.deployment),
                      render.cell("canary controller" if e.action == "canary_rollback" else e.actor),
                      render.cell(e.from_version), render.cell(e.to_version), render.cell(e.why))
        tables.append(b)
    if report.alert_to_promotion.items:
        a = render.table("alert", "fired", "monitor", "condition", "model", "promoted", "after",
                         title="drift alerts → next promotion", fixed=("fired",))
        for i in report.alert_to_promotion.items:
            a.add_row(render.cell(i.alert_id), render.cell(render.iso(i.fired_at)), render.cell(i.monitor),
                      render.cell(i.condition), render.cell(i.model),
                      render.cell(f"v{i.promoted_version} at {render.iso(i.promoted_at)}"
                                  if i.promoted_version is not None else None),
                      render.cell(human_duration(i.time_to_promotion_s) if i.time_to_promotion_s is not None
                                  else i.reason))
        tables.append(a)
    render.show(tables[0], *(part for t in tables[1:] for part in ("", t)))
