"""Delivery metrics in the dashboard: how fast and how safely models reach production.

    install(app)   adds the page below; `dashboard.install` calls it.

Page: `/delivery?since=30d&until=&model=` the five metrics of `client.metrics.delivery` as cards (lead
time from a run's start to production, deployment frequency, rollback rate, share of production models
monitored, drift alert to next promotion), then the lead time of each version, the rollbacks, the
coverage per model and the drift alerts with the promotion that followed each. A malformed or future
time comes back as the page with the message beside the form (400), an unknown model likewise (404).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from arsenale.audit.delivery import MetricsAPI, describe_window
from arsenale.errors import InvalidInput, NotFound
from arsenale.server.dashboard import DashboardRoute, render
from arsenale.units import human_duration

__all__ = ["install"]

DEFAULT_SINCE = "30d"

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


def metrics(request: Request) -> MetricsAPI:
    return request.app.state.client.metrics  # type: ignore[no-any-return]


def pct(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f}%"


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


@router.get("/delivery")
def delivery_page(request: Request, since: str = DEFAULT_SINCE, until: str = "", model: str = "") -> Response:
    state = {"since": since.strip(), "until": until.strip(), "model": model.strip()}
    context: dict[str, Any] = {"state": state, "report": None, "error": None, "window": None,
                               "duration": human_duration, "pct": pct, "rate": rate}
    status = 200
    try:
        report = metrics(request).delivery(since=state["since"] or None, until=state["until"] or None,
                                           model=state["model"] or None)
        context.update(report=report, window=describe_window(report))
    except (InvalidInput, NotFound) as exc:  # a bad time or an unknown model: say so beside the form
        context["error"] = exc.message
        status = exc.http_status
    return render(request, "delivery.html", status, **context)


def install(app: FastAPI) -> None:
    """Add the delivery page to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)
