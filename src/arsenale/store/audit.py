"""SQL for the hash-chained audit log.

`append` runs inside the caller's write transaction, so an audited change and
its audit entry commit together or not at all.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Sequence

import blake3
from sqlalchemy import Connection, func, select, text

from arsenale.store.tables import audit_log

GENESIS = "0" * 64
# Who the current request acts as (set by the server's authentication): it overrides the service's own
# actor in every entry the request appends, so the trail names the token, not the server.
acting_as: ContextVar[str | None] = ContextVar("arsenale_acting_as", default=None)
_PG_AUDIT_LOCK = 4242002


@dataclass(frozen=True)
class AuditRecord:
    """What happened, before it has a place in the chain."""

    actor: str
    action: str
    entity_type: str
    entity_id: str
    details: dict[str, Any] = field(default_factory=dict)


def entry_hash(seq: int, timestamp: int, actor: str, action: str, entity_type: str, entity_id: str,
               details: str, prev_hash: str) -> str:
    canonical = json.dumps([seq, timestamp, actor, action, entity_type, entity_id, details, prev_hash],
                           separators=(",", ":"), ensure_ascii=False)
    return blake3.blake3(canonical.encode()).hexdigest()


def append(conn: Connection, record: AuditRecord, timestamp: int) -> dict[str, Any]:
    if conn.dialect.name == "postgresql":
        # Serialise appenders so two transactions cannot chain onto the same head.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    head = conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)).first()
    seq = 1 if head is None else head.seq + 1
    prev = GENESIS if head is None else head.hash
    details = json.dumps(record.details, sort_keys=True, separators=(",", ":"), default=str)
    actor = acting_as.get() or record.actor
    digest = entry_hash(seq, timestamp, actor, record.action, record.entity_type, record.entity_id,
                        details, prev)
    row = {"seq": seq, "timestamp": timestamp, "actor": actor, "action": record.action,
           "entity_type": record.entity_type, "entity_id": record.entity_id, "details": details,
           "prev_hash": prev, "hash": digest}
    conn.execute(audit_log.insert().values(**row))
    return row


def entries(conn: Connection, *, entity_type: str | None = None, entity_id: str | None = None,
            action: str | None = None, after_seq: int = 0, limit: int | None = None) -> Sequence[Any]:
    q = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
    if entity_type is not None:
        q = q.where(audit_log.c.entity_type == entity_type)
    if entity_id is not None:
        q = q.where(audit_log.c.entity_id == entity_id)
    if action is not None:
        q = q.where(audit_log.c.action == action)
    if limit is not None:
        q = q.limit(limit)
    return conn.execute(q).all()


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
