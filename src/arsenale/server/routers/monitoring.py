"""Monitors over HTTP: create, list, evaluate a window, read past evaluations and their HTML report.

`POST /monitors/llm` creates an LLM monitor over the stored traces; everything else (run, runs, alert rules)
is the same for both kinds. An LLM monitor keeps no drift report, so its `/report` is a 404.

A monitor's evaluation reads the inference log next to the store, so it always runs here, in the server
that owns the store; remote clients ask for it and get the stored result back. The report is the same
self-contained HTML file `arsenale monitor report` writes, served with a Content-Security-Policy that
matches the file's own, so opening it from the API origin fetches nothing either.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from arsenale.errors import NotFound
from arsenale.monitoring.models import Monitor, MonitorRun
from arsenale.monitoring.service import MonitorService
from arsenale.server.routers import API_PREFIX, no_content, render

router = APIRouter(prefix=API_PREFIX, tags=["monitoring"])

# The report file forbids every fetch (inline styles only, no script); the header says the same to browsers
# that open it straight from the API.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _monitors(request: Request) -> MonitorService:
    return request.app.state.client.monitors  # type: ignore[no-any-return]


Monitors = Annotated[MonitorService, Depends(_monitors)]


def _duration(value: Any) -> Any:
    # Without this a wrong type is reported once per union member ("window.str", "window.int", …).
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a duration like '1h' or a number of seconds")  # noqa: TRY004 - pydantic wants it
    return value


class _Body(BaseModel):
    # Strict: a JSON `true` is neither a 1 s window nor a drift share of 1.0, as in the local service.
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateMonitor(_Body):
    name: str = Field(max_length=128)
    deployment: str = Field(max_length=256)
    reference: str = Field("model-contract", max_length=64)
    window: str | int | float = Field("1h", description="'10m', '1h', '1d' … or a number of seconds")
    schedule: str | None = Field(None, max_length=256, description="cron expression for scheduled runs")
    drift_share: float = 0.5

    @field_validator("window", mode="before")
    @classmethod
    def _duration_shaped(cls, value: Any) -> Any:
        return _duration(value)


class CreateLlmMonitor(_Body):
    name: str = Field(max_length=128)
    trace_name: str | None = Field(None, max_length=256, description="only traces of this name")
    prompt: str | None = Field(None, max_length=256, description="only traces of this prompt: 'name' (any "
                               "version) or 'name/version'")
    tags: dict[str, Any] | None = Field(None, description="attributes the trace's root span must hold "
                                        "(string, number or boolean values; checked by the service)")
    feedback: str = Field("thumbs", max_length=256, description="the score name of human feedback")
    window: str | int | float = Field("1h", description="'10m', '1h', '1d' … or a number of seconds")
    schedule: str | None = Field(None, max_length=256, description="cron expression for scheduled runs")

    @field_validator("window", mode="before")
    @classmethod
    def _duration_shaped(cls, value: Any) -> Any:
        return _duration(value)


class RunMonitor(_Body):
    now: int | None = Field(None, ge=0, description="end of the window, epoch ms (default: now)")


@router.get("/monitors", response_model=list[Monitor])
def list_monitors(monitors: Monitors) -> Response:
    return render(monitors.list())


@router.post("/monitors", status_code=201, response_model=Monitor)
def create(body: CreateMonitor, monitors: Monitors) -> Response:
    return render(monitors.create(body.name, body.deployment, reference=body.reference, window=body.window,
                                  schedule=body.schedule, drift_share=body.drift_share), 201)


@router.post("/monitors/llm", status_code=201, response_model=Monitor)
def create_llm(body: CreateLlmMonitor, monitors: Monitors) -> Response:
    """An LLM monitor over stored traces; run, alert on and schedule it like any other monitor."""
    return render(monitors.create_llm(body.name, trace_name=body.trace_name, prompt=body.prompt,
                                      tags=body.tags, feedback=body.feedback, window=body.window,
                                      schedule=body.schedule), 201)


@router.get("/monitors/{name}", response_model=Monitor)
def get(name: str, monitors: Monitors) -> Response:
    return render(monitors.get(name))


@router.delete("/monitors/{name}", status_code=204)
def delete(name: str, monitors: Monitors) -> Response:
    monitors.delete(name)
    return no_content()


@router.post("/monitors/{name}/run", response_model=MonitorRun)
def run(name: str, monitors: Monitors, body: RunMonitor | None = None) -> Response:
    """Evaluates the window ending at `now` (default: the server's clock) and answers what was stored."""
    return render(monitors.run(name, now=body.now if body else None))


@router.get("/monitors/{name}/runs", response_model=list[MonitorRun])
def runs(name: str, monitors: Monitors, limit: int = Query(100, ge=1, le=10_000),
         with_report: bool = Query(False)) -> Response:
    """Past evaluations, newest first (404 for a monitor that does not exist)."""
    return render(monitors.runs(name, limit, with_report))


@router.get("/monitors/{name}/runs/{run_id}", response_model=MonitorRun)
def get_run(name: str, run_id: int, monitors: Monitors, with_report: bool = Query(True)) -> Response:
    """One past evaluation by id, with its full report unless `with_report=false`."""
    return render(monitors.get_run(name, run_id, with_report))


@router.get("/monitors/{name}/report", response_class=Response,
            responses={200: {"content": {"text/html": {}}, "description": "a self-contained HTML page"}})
def report(name: str, monitors: Monitors, run_id: int | None = Query(None, ge=1)) -> Response:
    """The newest evaluation's report, or run `run_id`'s, as one HTML page that opens offline."""
    if run_id is None:
        newest = monitors.runs(name, 1, with_report=True)  # NotFound names an unknown monitor
        if not newest or newest[0].report is None:
            raise NotFound(f"monitor {name!r} has not run yet", field="name")
        found = newest[0]
    else:
        found = monitors.get_run(name, run_id, with_report=True)
        if found.report is None:
            raise NotFound(f"run {run_id} of monitor {name!r} has no report", field="run_id")
    return Response(report_html(name, found), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": REPORT_CSP})


def report_html(name: str, run: MonitorRun) -> str:
    """The HTML `arsenale monitor report` writes for one evaluation (the same inputs, the same bytes)."""
    from arsenale.monitoring.drift import DriftReport
    from arsenale.monitoring.quality import QualityReport
    from arsenale.monitoring.report import render_report

    assert run.report is not None
    if "drift" not in run.report:  # an LLM monitor's window: its values are the whole story
        raise NotFound(f"monitor {name!r} keeps no drift report (an LLM monitor): read its runs instead",
                       field="name")
    drift = DriftReport.model_validate(run.report["drift"])
    quality = QualityReport.model_validate(run.report["quality"]) if run.report.get("quality") else None
    return render_report(drift, quality=quality, title=f"{name} · {run.model}/{run.version}",
                         generated_at_ms=run.timestamp)
