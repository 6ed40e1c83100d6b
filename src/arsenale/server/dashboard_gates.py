"""Gate runs in the dashboard: each run's self-contained HTML report at `/gates/{id}`, linked from the model
version page's "Gate runs" card (`dashboard_registry.version_page`)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from arsenale.gates.html import render_html
from arsenale.server.dashboard import DashboardRoute, lookup

__all__ = ["install"]

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


@router.get("/gates/{run_id}")
def gate_report(request: Request, run_id: str) -> Response:
    gates = request.app.state.client.gates
    run = lookup(lambda ident: gates.get(int(ident) if ident.isdigit() else ident), run_id, "gate run")
    against = f"v{run.champion_version}" if run.champion_version else "no champion (first model)"
    title = f"Gate run {run.id}: {run.uri} vs {against} on {run.dataset}"
    promotion = ", ".join(f"{k} {v}" for k, v in (run.promotion or {}).items())
    return HTMLResponse(render_html(title, run.checks, subtitle=f"by {run.created_by}"
                                    + (f" · promoted: {promotion}" if promotion else "")))


def install(app: FastAPI) -> None:
    app.include_router(router)
