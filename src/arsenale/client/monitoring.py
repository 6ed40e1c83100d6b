"""`MonitorClient`: monitors managed on a remote `arsenale server`, the same methods as `MonitorService`.

Evaluations read the inference log, which lives next to the store, so `run` asks the server to evaluate
and answers what it stored. `report_html` fetches the rendered report, since the reports a client reads
with `runs(..., with_report=True)` carry no distributions to draw a different one from.
"""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, segment
from arsenale.monitoring.models import Monitor, MonitorRun, check_monitor_name

__all__ = ["MonitorClient"]

_PATH = "/api/v1/monitors"
_MONITORS = TypeAdapter(builtins.list[Monitor])
_RUNS = TypeAdapter(builtins.list[MonitorRun])


def _one(name: str) -> str:
    return f"{_PATH}/{segment(check_monitor_name(name))}"


class MonitorClient:
    """What `Client("http://…").monitors` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"MonitorClient({self.transport.base_url!r})"

    def create(self, name: str, deployment: str, *, reference: str = "model-contract", window: Any = "1h",
               schedule: str | None = None, drift_share: float = 0.5) -> Monitor:
        check_monitor_name(name)
        body = {"name": name, "deployment": deployment, "reference": reference, "window": window,
                "schedule": schedule, "drift_share": drift_share}
        return Monitor.model_validate_json(self.transport.request("POST", _PATH, json=body).content)

    def get(self, name: str) -> Monitor:
        return Monitor.model_validate_json(self.transport.request("GET", _one(name)).content)

    def list(self) -> builtins.list[Monitor]:
        return _MONITORS.validate_json(self.transport.request("GET", _PATH).content)

    def delete(self, name: str) -> None:
        self.transport.request("DELETE", _one(name))

    def runs(self, name: str, limit: int = 100, with_report: bool = False) -> builtins.list[MonitorRun]:
        params = {"limit": limit, "with_report": "true" if with_report else "false"}
        return _RUNS.validate_json(self.transport.request("GET", f"{_one(name)}/runs", params=params).content)

    def run(self, name: str, *, now: int | None = None) -> MonitorRun:
        """Evaluate the window ending now (the server's clock) or at `now` (ms), on the server."""
        content = self.transport.request("POST", f"{_one(name)}/run", json={"now": now}).content
        return MonitorRun.model_validate_json(content)

    def report_html(self, name: str, run_id: int | None = None) -> str:
        """The newest evaluation's (or run `run_id`'s) report as one self-contained HTML page."""
        response = self.transport.request("GET", f"{_one(name)}/report", params={"run_id": run_id},
                                          headers={"Accept": "text/html"})
        return response.text
