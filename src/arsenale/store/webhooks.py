"""SQL for registry webhooks and the record of their deliveries.

Each function runs inside the caller's transaction (`store.db.write` / `read`),
so a webhook and its deliveries can be changed together. Subscribed events are
kept as a JSON list; matching an event against it is the service's business.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy import Connection, delete, insert, or_, select, update

from arsenale.store.tables import webhook_deliveries, webhooks


def insert_webhook(conn: Connection, *, webhook_id: str, url: str, events: Sequence[str], model_name: str | None,
                   secret: str, active: bool, creation_time: int) -> None:
    conn.execute(insert(webhooks).values(webhook_id=webhook_id, url=url, events=json.dumps(list(events)),
                                         model_name=model_name, secret=secret, active=active,
                                         creation_time=creation_time))


def list_webhooks(conn: Connection) -> Sequence[Any]:
    """Every webhook, oldest first (rows include the secret: never hand them out as they are)."""
    return conn.execute(select(webhooks).order_by(webhooks.c.creation_time, webhooks.c.webhook_id)).all()


def get_webhook(conn: Connection, webhook_id: str) -> Any | None:
    return conn.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id)).first()


def active_webhooks_for_model(conn: Connection, model_name: str) -> Sequence[Any]:
    """Active webhooks on every model or on this one; the caller filters by event."""
    return conn.execute(
        select(webhooks)
        .where(webhooks.c.active.is_(True))
        .where(or_(webhooks.c.model_name.is_(None), webhooks.c.model_name == model_name))
        .order_by(webhooks.c.creation_time, webhooks.c.webhook_id)).all()


def delete_webhook(conn: Connection, webhook_id: str) -> bool:
    """Delete a webhook and its deliveries; False when there was no such webhook."""
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    return bool(conn.execute(delete(webhooks).where(webhooks.c.webhook_id == webhook_id)).rowcount)


def insert_delivery(conn: Connection, *, webhook_id: str, event: str, payload: str, timestamp: int) -> int:
    """A delivery about to be attempted: status "pending", no attempts yet. Returns its id."""
    return int(conn.execute(
        insert(webhook_deliveries)
        .values(webhook_id=webhook_id, event=event, payload=payload, status="pending", attempts=0,
                response_code=None, last_error=None, timestamp=timestamp)
        .returning(webhook_deliveries.c.id)).scalar_one())


def update_delivery(conn: Connection, delivery_id: int, *, status: str, attempts: int, response_code: int | None,
                    last_error: str | None) -> bool:
    """Record the outcome of an attempt; False when the delivery is gone (its webhook was deleted)."""
    return bool(conn.execute(
        update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
        .values(status=status, attempts=attempts, response_code=response_code, last_error=last_error)).rowcount)


def list_deliveries(conn: Connection, webhook_id: str, limit: int) -> Sequence[Any]:
    """A webhook's deliveries, newest first."""
    return conn.execute(
        select(webhook_deliveries.c.id, webhook_deliveries.c.webhook_id, webhook_deliveries.c.event,
               webhook_deliveries.c.status, webhook_deliveries.c.attempts, webhook_deliveries.c.response_code,
               webhook_deliveries.c.last_error, webhook_deliveries.c.timestamp)
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit)).all()
