"""Platform metrics over HTTP, under /api/v1/metrics: what `client.metrics` does.

    GET /metrics/delivery?since=&until=&model=   lead time, deployment frequency, rollback rate, monitoring
                                                 coverage and drift-alert-to-promotion time, from the audit trail

`since` and `until` are ISO 8601 times or durations (`30d`: before `until`; for `until`, before now). A
malformed or future time is a 400 naming the field; a model the registry does not know is a 404.
(Prometheus figures are at the server's `/metrics`, not here.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from arsenale.audit.delivery import MetricsAPI
from arsenale.audit.models import DeliveryReport
from arsenale.server.routers import API_PREFIX, render

router = APIRouter(prefix=f"{API_PREFIX}/metrics", tags=["metrics"])


def _metrics(request: Request) -> MetricsAPI:
    return request.app.state.client.metrics  # type: ignore[no-any-return]


Metrics = Annotated[MetricsAPI, Depends(_metrics)]


@router.get("/delivery", response_model=DeliveryReport)
def delivery(metrics: Metrics,
             since: str | None = Query(None, max_length=64, description="ISO 8601 time or duration, e.g. 30d "
                                       "(default: the audit trail's first entry)"),
             until: str | None = Query(None, max_length=64, description="ISO 8601 time or duration before "
                                       "now (default: now)"),
             model: str | None = Query(None, max_length=256, description="one model's metrics")) -> Response:
    return render(metrics.delivery(since=since, until=until, model=model))
