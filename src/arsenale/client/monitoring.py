"""`MonitorClient`: monitors managed on a remote `arsenale server`, the same methods as `MonitorService`.

Evaluations read the inference log (or, for an LLM monitor made with `create_llm`, the traces), which live
next to the store, so `run` asks the server to evaluate and answers what it stored. `report_html` fetches the rendered report, since the reports a client reads
with `runs(..., with_report=True)` carry no distributions to draw a different one from.

`MonitorClient.alerts` is an `AlertClient`: the rule and alert methods of `AlertService`. Rules are
evaluated by the server as it stores each window (there is no remote `evaluate`), so notifications and
trigger pipelines leave from the server; the client reads back what they did on each alert.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, segment
from arsenale.errors import InvalidInput
from arsenale.monitoring.models import Alert, AlertRuleInfo, Monitor, MonitorRun, check_monitor_name

__all__ = ["AlertClient", "MonitorClient"]

_PATH = "/api/v1/monitors"
_ALERTS_PATH = "/api/v1/alerts"
_MONITORS = TypeAdapter(builtins.list[Monitor])
_RUNS = TypeAdapter(builtins.list[MonitorRun])
_RULES = TypeAdapter(builtins.list[AlertRuleInfo])
_ALERT_LIST = TypeAdapter(builtins.list[Alert])
_MAX_ID = 2**31  # ids are 32-bit integer columns on both stores


def _one(name: str) -> str:
    return f"{_PATH}/{segment(check_monitor_name(name))}"


def _check_id(value: Any, what: str, field: str) -> int:
    """An id checked before it becomes part of a URL path (where `"1/../x"` would name another resource),
    with the local service's message and field."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < _MAX_ID:
        raise InvalidInput(f"{what} must be a positive integer, got {value!r:.60}", field=field)
    return value


def _optional_text(value: Any, field: str) -> str | None:
    # Checked here so that a value JSON cannot carry fails as the local service would, not in the encoder.
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    return value


class MonitorClient:
    """What `Client("http://…").monitors` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport
        self.alerts = AlertClient(transport)

    def __repr__(self) -> str:
        return f"MonitorClient({self.transport.base_url!r})"

    def create(self, name: str, deployment: str, *, reference: str = "model-contract", window: Any = "1h",
               schedule: str | None = None, drift_share: float = 0.5) -> Monitor:
        check_monitor_name(name)
        body = {"name": name, "deployment": deployment, "reference": reference, "window": window,
                "schedule": schedule, "drift_share": drift_share}
        return Monitor.model_validate_json(self.transport.request("POST", _PATH, json=body).content)

    def create_llm(self, name: str, *, trace_name: str | None = None, prompt: str | None = None,
                   tags: Mapping[str, Any] | None = None, feedback: str = "thumbs", window: Any = "1h",
                   schedule: str | None = None) -> Monitor:
        """A monitor over the server's stored LLM traces (see `MonitorService.create_llm`)."""
        from arsenale.monitoring.llm import check_filter

        check_monitor_name(name)
        traces = check_filter(trace_name, prompt, tags, feedback)  # refused here as the server would
        body = {"name": name, "trace_name": traces.trace_name, "prompt": traces.prompt, "tags": traces.tags,
                "feedback": traces.feedback, "window": window, "schedule": schedule}
        return Monitor.model_validate_json(self.transport.request("POST", f"{_PATH}/llm", json=body).content)

    def get(self, name: str) -> Monitor:
        return Monitor.model_validate_json(self.transport.request("GET", _one(name)).content)

    def list(self) -> builtins.list[Monitor]:
        return _MONITORS.validate_json(self.transport.request("GET", _PATH).content)

    def delete(self, name: str) -> None:
        self.transport.request("DELETE", _one(name))

    def runs(self, name: str, limit: int = 100, with_report: bool = False) -> builtins.list[MonitorRun]:
        params = {"limit": limit, "with_report": "true" if with_report else "false"}
        return _RUNS.validate_json(self.transport.request("GET", f"{_one(name)}/runs", params=params).content)

    def get_run(self, name: str, run_id: int, with_report: bool = True) -> MonitorRun:
        """One past evaluation by id, with its full report unless `with_report=False`."""
        path = f"{_one(name)}/runs/{_check_id(run_id, 'run_id', 'run_id')}"
        if not isinstance(with_report, bool):
            raise InvalidInput(f"with_report must be true or false, got {with_report!r:.40}",
                               field="with_report")
        params = {"with_report": "true" if with_report else "false"}
        return MonitorRun.model_validate_json(self.transport.request("GET", path, params=params).content)

    def run(self, name: str, *, now: int | None = None) -> MonitorRun:
        """Evaluate the window ending now (the server's clock) or at `now` (ms), on the server."""
        content = self.transport.request("POST", f"{_one(name)}/run", json={"now": now}).content
        return MonitorRun.model_validate_json(content)

    def report_html(self, name: str, run_id: int | None = None) -> str:
        """The newest evaluation's (or run `run_id`'s) report as one self-contained HTML page."""
        response = self.transport.request("GET", f"{_one(name)}/report", params={"run_id": run_id},
                                          headers={"Accept": "text/html"})
        return response.text


class AlertClient:
    """What `Client("http://…").monitors.alerts` is: `AlertService`'s rule and alert methods, answered by
    the server. Argument checks that keep a request well-formed happen here; the rest (rule syntax,
    channels, the monitor's existence) is the server's, so local and remote refuse the same things."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"AlertClient({self.transport.base_url!r})"

    # ---- rules -----------------------------------------------------------------------------------

    def add_rule(self, monitor: str, when: str, *, name: str | None = None, notify: Iterable[str] = (),
                 trigger_pipeline: str | None = None, severity: str = "warning") -> AlertRuleInfo:
        """A rule on `monitor`: `when` is `metric op threshold [for N windows]`; `name` defaults to it."""
        check_monitor_name(monitor)
        if isinstance(notify, str) or not isinstance(notify, Iterable):
            raise InvalidInput("notify must be a list of channels (webhook:URL, slack:URL or log)",
                               field="notify")
        body = {"monitor": monitor, "when": _optional_text(when, "when"),
                "name": _optional_text(name, "name"),
                "notify": [_optional_text(entry, "notify") for entry in notify],
                "trigger_pipeline": _optional_text(trigger_pipeline, "trigger_pipeline"),
                "severity": _optional_text(severity, "severity")}
        content = self.transport.request("POST", f"{_ALERTS_PATH}/rules", json=body).content
        return AlertRuleInfo.model_validate_json(content)

    def get_rule(self, rule_id: int) -> AlertRuleInfo:
        path = f"{_ALERTS_PATH}/rules/{_check_id(rule_id, 'a rule id', 'id')}"
        return AlertRuleInfo.model_validate_json(self.transport.request("GET", path).content)

    def list_rules(self, monitor: str | None = None) -> builtins.list[AlertRuleInfo]:
        """Every rule, or `monitor`'s (NotFound for a monitor that does not exist)."""
        if monitor is not None:
            check_monitor_name(monitor)
        content = self.transport.request("GET", f"{_ALERTS_PATH}/rules", params={"monitor": monitor}).content
        return _RULES.validate_json(content)

    def delete_rule(self, rule_id: int) -> None:
        """The rule and its alerts (the audit trail keeps their record)."""
        self.transport.request("DELETE", f"{_ALERTS_PATH}/rules/{_check_id(rule_id, 'a rule id', 'id')}")

    # ---- alerts ----------------------------------------------------------------------------------

    def get_alert(self, alert_id: int) -> Alert:
        path = f"{_ALERTS_PATH}/{_check_id(alert_id, 'an alert id', 'id')}"
        return Alert.model_validate_json(self.transport.request("GET", path).content)

    def list_alerts(self, monitor: str | None = None, status: str | None = None,
                    limit: int = 100) -> builtins.list[Alert]:
        """Newest first, optionally of one monitor and/or one status ("firing" or "resolved")."""
        if monitor is not None:
            check_monitor_name(monitor)
        if isinstance(limit, bool) or not isinstance(limit, int):  # "10" or True would be sent as text
            raise InvalidInput(f"limit must be an integer in 1..10000, got {limit!r}", field="limit")
        params = {"monitor": monitor, "status": _optional_text(status, "status"), "limit": limit}
        return _ALERT_LIST.validate_json(self.transport.request("GET", _ALERTS_PATH, params=params).content)
