"""`AuditClient`: `AuditAPI` over HTTP. Long listings are fetched in pages, following `after_seq`."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from arsenale.audit.models import AuditEntry, VerifyReport
from arsenale.client.http import HttpTransport
from arsenale.tracking.models import to_int

__all__ = ["AuditClient"]

PAGE = 10_000
"""The most entries the server returns per request."""
_ENTRIES = TypeAdapter(list[AuditEntry])
_PATH = "/api/v1/audit"


class AuditClient:
    """The audit trail on a remote `arsenale server`; what `Client("http://…").audit` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"AuditClient({self.transport.base_url!r})"

    def record(self, action: str, entity_type: str, entity_id: str,
               details: dict[str, Any] | None = None) -> AuditEntry:
        body = {"action": action, "entity_type": entity_type, "entity_id": entity_id, "details": details}
        return AuditEntry.model_validate_json(self.transport.request("POST", _PATH, json=body).content)

    def entries(self, entity_type: str | None = None, entity_id: str | None = None, action: str | None = None,
                after_seq: int = 0, limit: int | None = 1000) -> list[AuditEntry]:
        """Entries after `after_seq` in chain order; `limit=None` means all of them."""
        after = to_int(after_seq, "after_seq")
        remaining = None if limit is None else to_int(limit, "limit")
        out: list[AuditEntry] = []
        while True:
            page = PAGE if remaining is None else min(PAGE, remaining)
            params = {"entity_type": entity_type, "entity_id": entity_id, "action": action,
                      "after_seq": after, "limit": page}
            batch = _ENTRIES.validate_json(self.transport.request("GET", _PATH, params=params).content)
            out.extend(batch)
            if remaining is not None:
                remaining -= len(batch)
            if len(batch) < page or not batch or remaining == 0:
                return out
            after = batch[-1].seq

    def verify(self) -> VerifyReport:
        return VerifyReport.model_validate_json(self.transport.request("GET", f"{_PATH}/verify").content)
