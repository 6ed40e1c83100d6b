"""Pipelines in the dashboard: recent pipeline runs and schedules, and one run's DAG.

    install(app)   adds the pages below; `dashboard.install` calls it.

Pages: `/pipelines` the newest pipeline runs (with step counts by status) and the schedules;
`/pipelines/runs/{id}` one run: its DAG as inline SVG (one column per topological layer, one box per step,
coloured by status, with its timing), and a table of steps with cache keys, outputs and errors. Each step
links to its tracking run. Pipelines live in the metadata store, so against a remote client the pages say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from arsenale.errors import InvalidInput, NotFound
from arsenale.pipelines.models import StepRun
from arsenale.pipelines.service import PipelineService
from arsenale.server.dashboard import DashboardRoute, render

__all__ = ["install", "layout"]

MAX_RUNS = 200
BOX_W, BOX_H = 190, 58
GAP_X, GAP_Y = 70, 22
PAD = 12

# fill, stroke, text colour per step status
COLOURS = {
    "succeeded": ("#e3f4e8", "#1f8a4c", "#14532d"),
    "cached": ("#e0efff", "#2563eb", "#1e3a8a"),
    "failed": ("#fde8e8", "#c62828", "#7f1d1d"),
    "not_run": ("#f1f1f1", "#9e9e9e", "#555555"),
    "running": ("#fff6db", "#b7791f", "#744210"),
    "pending": ("#ffffff", "#9e9e9e", "#555555"),
}


def service(request: Request) -> PipelineService:
    state = request.app.state
    svc = getattr(state, "pipelines_service", None)
    if svc is None:
        svc = state.pipelines_service = PipelineService.from_client(state.client)
    return svc  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Box:
    name: str
    status: str
    x: int
    y: int
    fill: str
    stroke: str
    ink: str
    timing: str
    run_id: str | None


@dataclass(frozen=True)
class Edge:
    path: str


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    boxes: list[Box]
    edges: list[Edge]


def timing(step: StepRun) -> str:
    if step.status.value == "cached":
        return "cached"
    ms = step.duration_ms
    if ms is None:
        return step.status.value.replace("_", " ")
    text = f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
    return text + (f" · {step.attempts} tries" if step.attempts > 1 else "")


def layout(steps: Sequence[StepRun]) -> Layout:
    """Boxes in columns by topological layer (rows in definition order), edges as curves between them."""
    columns: dict[int, list[StepRun]] = {}
    for s in steps:
        columns.setdefault(s.layer, []).append(s)
    pos: dict[str, tuple[int, int]] = {}
    boxes = []
    for layer in sorted(columns):
        for row, s in enumerate(columns[layer]):
            x, y = PAD + layer * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y)
            pos[s.name] = (x, y)
            fill, stroke, ink = COLOURS.get(s.status.value, COLOURS["pending"])
            boxes.append(Box(s.name, s.status.value, x, y, fill, stroke, ink, timing(s), s.run_id))
    edges = []
    for s in steps:
        for up in s.upstream:
            if up not in pos:
                continue
            x1, y1 = pos[up][0] + BOX_W, pos[up][1] + BOX_H // 2
            x2, y2 = pos[s.name][0], pos[s.name][1] + BOX_H // 2
            mid = (x1 + x2) // 2
            edges.append(Edge(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}"))
    width = max((x for x, _ in pos.values()), default=PAD) + BOX_W + PAD
    height = max((y for _, y in pos.values()), default=PAD) + BOX_H + PAD
    return Layout(width, height, boxes, edges)


router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


@router.get("/pipelines")
def pipelines_page(request: Request) -> Response:
    svc = service(request)
    runs = svc.list_runs(limit=MAX_RUNS)
    return render(request, "pipelines.html", runs=runs, schedules=svc.list_schedules(),
                  capped=len(runs) == MAX_RUNS, colours=COLOURS)


@router.get("/pipelines/runs/{pipeline_run_id}")
def pipeline_run_page(request: Request, pipeline_run_id: str) -> Response:
    try:
        run = service(request).get_run(pipeline_run_id)
    except InvalidInput as exc:
        raise NotFound(f"there is no pipeline run {pipeline_run_id!r}", field=exc.field) from None
    return render(request, "pipeline_run.html", run=run, dag=layout(run.steps), box_w=BOX_W, box_h=BOX_H,
                  colours=COLOURS)


def install(app: FastAPI) -> None:
    """Add the pipeline pages to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)
