"""The tamper-evident audit trail: record decisions, list them, verify the chain.

Editing an entry breaks its hash; removing one breaks the link (or the
sequence) of the next; both are reported by `verify` with the first bad entry.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from sqlalchemy import Engine

from arsenale.audit.models import AuditEntry, VerifyReport
from arsenale.errors import InvalidInput
from arsenale.store import audit as audit_sql
from arsenale.store.audit import GENESIS, AuditRecord, entry_hash
from arsenale.store.db import read, write
from arsenale.tracking.models import check_name, now_ms


class AuditAPI(Protocol):
    def record(self, action: str, entity_type: str, entity_id: str,
               details: dict[str, Any] | None = None) -> AuditEntry: ...
    def entries(self, entity_type: str | None = None, entity_id: str | None = None, action: str | None = None,
                after_seq: int = 0, limit: int | None = 1000) -> list[AuditEntry]: ...
    def verify(self) -> VerifyReport: ...


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(seq=row.seq, timestamp=row.timestamp, actor=row.actor, action=row.action,
                      entity_type=row.entity_type, entity_id=row.entity_id, details=json.loads(row.details),
                      prev_hash=row.prev_hash, hash=row.hash)


class AuditService:
    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor

    def record(self, action: str, entity_type: str, entity_id: str,
               details: dict[str, Any] | None = None) -> AuditEntry:
        for value, field in ((action, "action"), (entity_type, "entity_type"), (entity_id, "entity_id")):
            check_name(value, field)
        if details is not None and not isinstance(details, dict):
            raise InvalidInput("details must be a JSON object", field="details")
        with write(self.engine) as conn:
            row = audit_sql.append(conn, AuditRecord(self.actor, action, entity_type, entity_id, details or {}),
                                   now_ms())
        return AuditEntry(**{**row, "details": json.loads(row["details"])})

    def entries(self, entity_type: str | None = None, entity_id: str | None = None, action: str | None = None,
                after_seq: int = 0, limit: int | None = 1000) -> list[AuditEntry]:
        with read(self.engine) as conn:
            return [_entry(r) for r in audit_sql.entries(conn, entity_type=entity_type, entity_id=entity_id,
                                                         action=action, after_seq=after_seq, limit=limit)]

    def verify(self) -> VerifyReport:
        prev, expected_seq, checked = GENESIS, 1, 0
        with read(self.engine) as conn:
            for r in audit_sql.entries(conn):
                if r.seq != expected_seq:
                    return VerifyReport(ok=False, checked=checked, first_bad_seq=expected_seq,
                                        problem=f"entry {expected_seq} is missing (next present is {r.seq})")
                if r.prev_hash != prev:
                    return VerifyReport(ok=False, checked=checked, first_bad_seq=r.seq,
                                        problem=f"entry {r.seq} does not link to entry {r.seq - 1}")
                if entry_hash(r.seq, r.timestamp, r.actor, r.action, r.entity_type, r.entity_id, r.details,
                              r.prev_hash) != r.hash:
                    return VerifyReport(ok=False, checked=checked, first_bad_seq=r.seq,
                                        problem=f"entry {r.seq} was altered: its content no longer matches "
                                                f"its hash")
                prev, expected_seq, checked = r.hash, expected_seq + 1, checked + 1
        return VerifyReport(ok=True, checked=checked)
