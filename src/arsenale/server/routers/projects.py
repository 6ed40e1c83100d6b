"""The projects a caller can see, with what each holds: `GET /api/v1/projects` (a project's token sees its
own)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from arsenale.security.project_summary import ProjectSummary
from arsenale.server.routers import API_PREFIX, render

router = APIRouter(prefix=API_PREFIX, tags=["security"])


@router.get("/projects", response_model=list[ProjectSummary])
def list_projects(request: Request) -> Response:
    return render(request.app.state.client.projects())
