"""The audit trail over HTTP: list entries, record a decision, verify the hash chain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from arsenale.audit.models import AuditEntry, VerifyReport
from arsenale.server.routers import API_PREFIX, Audit, render

router = APIRouter(prefix=API_PREFIX, tags=["audit"])

MAX_PAGE = 10_000
"""The most entries one request returns; clients page with `after_seq`."""


class RecordEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str
    entity_type: str
    entity_id: str
    details: dict[str, Any] | None = None


@router.get("/audit", response_model=list[AuditEntry])
def list_entries(audit: Audit, entity_type: str | None = None, entity_id: str | None = None,
                 action: str | None = None, after_seq: int = Query(0, ge=0),
                 limit: int = Query(1000, ge=0, le=MAX_PAGE)) -> Response:
    return render(audit.entries(entity_type=entity_type, entity_id=entity_id, action=action,
                                after_seq=after_seq, limit=limit))


@router.post("/audit", status_code=201, response_model=AuditEntry)
def record(body: RecordEntry, audit: Audit) -> Response:
    return render(audit.record(body.action, body.entity_type, body.entity_id, body.details), 201)


@router.get("/audit/verify", response_model=VerifyReport)
def verify(audit: Audit) -> Response:
    return render(audit.verify())
