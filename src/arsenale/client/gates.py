"""`GateClient`: gate runs kept by a remote `arsenale server`, the same methods as `GateService`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport
from arsenale.gates.models import GateRun
from arsenale.gates.results import CheckResult
from arsenale.gates.service import MAX_ID, check_record

__all__ = ["GateClient"]

_PATH = "/api/v1/gates/runs"
_RUNS = TypeAdapter(builtins.list[GateRun])


def _id(value: Any) -> int:
    # Checked before it becomes part of a URL path, with the local service's message.
    from arsenale.errors import InvalidInput

    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < MAX_ID:
        raise InvalidInput(f"run_id must be a positive integer, got {value!r:.60}", field="run_id")
    return value


class GateClient:
    """What `Client("http://…").gates` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"GateClient({self.transport.base_url!r})"

    def record(self, name: str, version: int, *, dataset: str, results: Sequence[CheckResult | Mapping[str, Any]],
               policy: str, champion_version: int | None = None) -> GateRun:
        version, stored, dataset, policy, champion_version = check_record(version, results, dataset, policy,
                                                                          champion_version)
        body = {"name": name, "version": version, "dataset": dataset, "results": stored, "policy": policy,
                "champion_version": champion_version}
        return GateRun.model_validate_json(self.transport.request("POST", _PATH, json=body).content)

    def promote(self, run_id: int, *, alias: str | None = None, canary: str | None = None) -> GateRun:
        body = {"alias": alias, "canary": canary}
        return GateRun.model_validate_json(
            self.transport.request("POST", f"{_PATH}/{_id(run_id)}/promote", json=body).content)

    def get(self, run_id: int) -> GateRun:
        return GateRun.model_validate_json(self.transport.request("GET", f"{_PATH}/{_id(run_id)}").content)

    def list(self, name: str | None = None, version: int | None = None, limit: int = 100) -> builtins.list[GateRun]:
        params = {"model": name, "version": version, "limit": limit}
        return _RUNS.validate_json(self.transport.request("GET", _PATH, params=params).content)
