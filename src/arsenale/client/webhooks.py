"""`WebhookClient`: the registry's webhooks managed on a remote `arsenale server`."""

from __future__ import annotations

import builtins
from urllib.parse import quote

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport
from arsenale.registry.webhooks import Delivery, Webhook, WebhookCreated

__all__ = ["WebhookClient"]

_PATH = "/api/v1/webhooks"
_WEBHOOKS = TypeAdapter(list[Webhook])
_DELIVERIES = TypeAdapter(list[Delivery])


class WebhookClient:
    """What `Client("http://…").webhooks` is: the same methods as the server's `WebhookService`."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def create(self, url: str, events: builtins.list[str], model_name: str | None = None,
               secret: str | None = None) -> WebhookCreated:
        body = {"url": url, "events": events, "model_name": model_name, "secret": secret}
        return WebhookCreated.model_validate_json(self.transport.request("POST", _PATH, json=body).content)

    def list(self) -> builtins.list[Webhook]:
        return _WEBHOOKS.validate_json(self.transport.request("GET", _PATH).content)

    def delete(self, webhook_id: str) -> None:
        self.transport.request("DELETE", f"{_PATH}/{quote(webhook_id, safe='')}")

    def deliveries(self, webhook_id: str, limit: int = 50) -> builtins.list[Delivery]:
        content = self.transport.request("GET", f"{_PATH}/{quote(webhook_id, safe='')}/deliveries",
                                         params={"limit": limit}).content
        return _DELIVERIES.validate_json(content)
