"""`RetentionClient`: retention policies managed and applied through a server (an admin token), the same
methods as `RetentionService`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport
from arsenale.errors import InvalidInput
from arsenale.security.retention import ApplyReport, RetentionPolicy

__all__ = ["RetentionClient"]

_PATH = "/api/v1/retention"
_POLICIES = TypeAdapter(list[RetentionPolicy])


def _kind_path(kind: Any) -> str:
    if not isinstance(kind, str) or not kind:
        raise InvalidInput(f"kind must be a string; got {kind!r}", field="kind")
    return f"{_PATH}/policies/{quote(kind, safe='')}"


class RetentionClient:
    """What `Client("http://…").retention` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"RetentionClient({self.transport.base_url!r})"

    def set_policy(self, kind: str, max_age: Any, project: str = "*") -> RetentionPolicy:
        r = self.transport.request("PUT", _kind_path(kind), json={"max_age": max_age, "project": project})
        return RetentionPolicy.model_validate_json(r.content)

    def get_policy(self, kind: str, project: str = "*") -> RetentionPolicy:
        r = self.transport.request("GET", _kind_path(kind), params={"project": project})
        return RetentionPolicy.model_validate_json(r.content)

    def list_policies(self) -> list[RetentionPolicy]:
        return _POLICIES.validate_json(self.transport.request("GET", f"{_PATH}/policies").content)

    def delete_policy(self, kind: str, project: str = "*") -> None:
        self.transport.request("DELETE", _kind_path(kind), params={"project": project})

    def apply(self, now: int | datetime | None = None, dry_run: bool = False) -> ApplyReport:
        at = int(now.timestamp() * 1000) if isinstance(now, datetime) else now
        r = self.transport.request("POST", f"{_PATH}/apply", json={"now": at, "dry_run": dry_run})
        return ApplyReport.model_validate_json(r.content)
