"""`MetricsClient`: platform metrics computed by a remote `arsenale server`, the same methods as
`MetricsService`. The server replays its own audit trail, so the client sends one request, not every page
of the trail."""

from __future__ import annotations

from datetime import UTC, datetime

from arsenale.audit.delivery import Instant
from arsenale.audit.models import DeliveryReport
from arsenale.client.http import HttpTransport
from arsenale.errors import InvalidInput

__all__ = ["MetricsClient"]

_PATH = "/api/v1/metrics"


def _param(value: Instant, field: str) -> str | None:
    """A datetime as ISO 8601 (UTC when naive, as the local service reads it); text as it is, for the
    server to parse and refuse exactly as the local service would."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()
    raise InvalidInput(f"{field} must be a datetime, an ISO 8601 time like 2024-05-01T00:00:00Z or a duration "
                       f"like 30d, 12h; got {value!r:.80}", field=field)


class MetricsClient:
    """What `Client("http://…").metrics` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"MetricsClient({self.transport.base_url!r})"

    def delivery(self, since: Instant = None, until: Instant = None,
                 model: str | None = None) -> DeliveryReport:
        """See `arsenale.audit.delivery.delivery_metrics`."""
        if model is not None and not isinstance(model, str):
            raise InvalidInput(f"model must be a model's name, got {type(model).__name__}", field="model")
        params = {"since": _param(since, "since"), "until": _param(until, "until"), "model": model}
        content = self.transport.request("GET", f"{_PATH}/delivery", params=params).content
        return DeliveryReport.model_validate_json(content)
