"""Audit trail schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditEntry(BaseModel):
    seq: int
    timestamp: int
    actor: str
    action: str
    entity_type: str
    entity_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyReport(BaseModel):
    """The chain is intact when every entry's hash matches its content and links to the one before."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
