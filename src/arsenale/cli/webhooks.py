"""`arsenale models webhooks`: who is told when a model is registered, aliased or moves stage."""

from __future__ import annotations

from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.platform import Client

app = typer.Typer(help="Webhooks called on registry events (JSON POST, HMAC-SHA256 signed, retried).",
                  no_args_is_help=True)

WebhookId = Annotated[str, typer.Argument(help="The webhook's id.")]


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http(s) endpoint that receives the JSON POST.")],
    event: Annotated[list[str] | None, typer.Option("--event", help="An event name, or * (repeatable).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model's events.")] = None,
    secret: Annotated[str | None, typer.Option("--secret", help="Signing secret (default: generated).")] = None,
    as_json: render.JsonFlag = False,
) -> None:
    """Register a webhook; prints its signing secret once."""
    hook = Client().webhooks.create(url, event or ["*"], model_name=model, secret=secret)
    if as_json:
        render.print_json(hook)
        return
    render.print_message(f"webhook {hook.webhook_id} → {hook.url} on {', '.join(hook.events)}"
                         + (f" for model {hook.model_name}" if hook.model_name else ""))
    render.print_message(f"signing secret (shown once): {hook.secret}", "bold")


@app.command("list")
def list_webhooks(as_json: render.JsonFlag = False) -> None:
    """List webhooks (secrets are never shown again)."""
    hooks = Client().webhooks.list()
    if as_json:
        render.print_json(hooks)
        return
    t = render.table("id", "url", "events", "model", "active", "created", fixed=("id", "created"))
    for h in hooks:
        t.add_row(render.cell(h.webhook_id), render.cell(h.url), render.cell(", ".join(h.events)),
                  render.cell(h.model_name or "all"), render.cell("yes" if h.active else "no"),
                  render.cell(render.iso(h.creation_time)))
    render.show(t)


@app.command("delete")
def delete(webhook_id: WebhookId) -> None:
    """Delete a webhook and its delivery log."""
    Client().webhooks.delete(webhook_id)
    render.print_message(f"deleted webhook {webhook_id}")


@app.command("deliveries")
def deliveries(webhook_id: WebhookId, limit: Annotated[int, typer.Option("--limit")] = 50,
               as_json: render.JsonFlag = False) -> None:
    """A webhook's deliveries, newest first: status, attempts, response code, last error."""
    rows = Client().webhooks.deliveries(webhook_id, limit)
    if as_json:
        render.print_json(rows)
        return
    t = render.table("id", "event", "status", "attempts", "code", "error", "time", fixed=("id", "time"))
    for d in rows:
        t.add_row(render.cell(d.id), render.cell(d.event), render.cell(d.status), render.cell(d.attempts),
                  render.cell(d.response_code), render.cell(d.last_error), render.cell(render.iso(d.timestamp)))
    render.show(t)
