"""Alert rules and alerts over HTTP, under /api/v1/alerts: what `client.monitors.alerts` does.

    POST   /alerts/rules              add a rule to a monitor (201)
    GET    /alerts/rules?monitor=     every rule, or one monitor's
    GET    /alerts/rules/{id}         one rule, with the evaluator's state
    DELETE /alerts/rules/{id}         the rule and its alerts (204; the audit trail keeps their record)
    GET    /alerts?monitor=&status=&limit=   alerts, newest first
    GET    /alerts/{id}               one alert, with its evidence and deliveries

Rules are evaluated where windows are stored, i.e. in this server (`POST /monitors/{name}/run` or the
scheduler), so there is no evaluate route: notifications and trigger pipelines leave from the server that
owns the store, and a remote client reads back what they did.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.monitoring.alerting import MAX_LIMIT, AlertService
from arsenale.monitoring.models import Alert, AlertRuleInfo
from arsenale.server.routers import API_PREFIX, no_content, render

router = APIRouter(prefix=f"{API_PREFIX}/alerts", tags=["alerts"])


def _alerts(request: Request) -> AlertService:
    return request.app.state.client.monitors.alerts  # type: ignore[no-any-return]


Alerts = Annotated[AlertService, Depends(_alerts)]


class CreateRule(BaseModel):
    # Strict and closed, as the monitor bodies: a JSON number is not a rule's text, and a misspelt field
    # ("notfy") is refused instead of being dropped, so the rule is never stored without its channels.
    model_config = ConfigDict(extra="forbid", strict=True)

    monitor: str = Field(description="the monitor whose values the rule watches")
    when: str = Field(description="METRIC OP NUMBER [for N windows], e.g. 'drift_share > 0.3 for 2 windows'")
    name: str | None = Field(None, description="default: the rule's text")
    notify: list[str] = Field(default_factory=list, description="webhook:URL, slack:URL or log")
    trigger_pipeline: str | None = Field(None, description="MODULE:FUNCTION, run on this server when the "
                                         "rule fires")
    severity: str = Field("warning", description="warning or critical")


# The /rules routes come first: `/alerts/{id}` would otherwise take GET /alerts/rules and answer 400.

@router.post("/rules", status_code=201, response_model=AlertRuleInfo)
def add_rule(body: CreateRule, alerts: Alerts) -> Response:
    return render(alerts.add_rule(body.monitor, body.when, name=body.name, notify=body.notify,
                                  trigger_pipeline=body.trigger_pipeline, severity=body.severity), 201)


@router.get("/rules", response_model=list[AlertRuleInfo])
def list_rules(alerts: Alerts, monitor: str | None = Query(None)) -> Response:
    """Every rule (by monitor, then id), or `monitor`'s (404 for a monitor that does not exist)."""
    return render(alerts.list_rules(monitor))


@router.get("/rules/{id}", response_model=AlertRuleInfo)
def get_rule(id: int, alerts: Alerts) -> Response:
    return render(alerts.get_rule(id))


@router.delete("/rules/{id}", status_code=204)
def delete_rule(id: int, alerts: Alerts) -> Response:
    alerts.delete_rule(id)
    return no_content()


@router.get("", response_model=list[Alert])
def list_alerts(alerts: Alerts, monitor: str | None = Query(None), status: str | None = Query(None),
                limit: int = Query(100, ge=1, le=MAX_LIMIT)) -> Response:
    """Alerts, newest first, optionally of one monitor and/or one status (firing or resolved)."""
    return render(alerts.list_alerts(monitor, status, limit))


@router.get("/{id}", response_model=Alert)
def get_alert(id: int, alerts: Alerts) -> Response:
    return render(alerts.get_alert(id))
