"""The prompt registry in the dashboard.

    install(app)   adds the pages below; `dashboard.install` calls it.

Pages: `/prompts` every prompt (newest version, labels, author); `/prompts/{name}?version=&a=&b=` one prompt: its
versions with their labels, the template, model and parameters of the selected version (the newest by default),
and the diff between two chosen versions (`a` → `b`, by default the one before the newest → the newest), drawn as
a unified diff with added and removed lines marked. Every piece of user text is escaped by the templates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from arsenale.server.dashboard import DashboardRoute, render
from arsenale.server.dashboard_indexes import evaluation_runs

__all__ = ["diff_lines", "install"]

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del", "hunk", "file" or "ctx"
    text: str


def diff_lines(unified: str) -> list[DiffLine]:
    out = []
    for line in unified.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append(DiffLine(kind, line))
    return out


def _prompts(request: Request) -> Any:
    return request.app.state.client.prompts


@router.get("/prompts")
def prompts_page(request: Request) -> Response:
    return render(request, "prompts.html", prompts=_prompts(request).list())


@router.get("/prompts/{name}")
def prompt_page(request: Request, name: str, version: str = "", a: str = "", b: str = "") -> Response:
    api = _prompts(request)
    prompt = api.get_prompt(name)
    versions = api.versions(name)
    selected = api.get(name, version=version) if version else versions[0]
    numbers = [v.version for v in versions]
    a = a or (str(numbers[1]) if len(numbers) > 1 else str(numbers[0]))
    b = b or str(numbers[0])
    diff = api.diff(name, a, b)
    return render(request, "prompt.html", prompt=prompt, versions=versions, selected=selected,
                  params_json=json.dumps(selected.params, indent=2, sort_keys=True, ensure_ascii=False),
                  diff=diff, lines=diff_lines(diff.template_diff), a=a, b=b, dumps=json.dumps,
                  evaluations=evaluation_runs(request.app.state.client, prompt.name))


def install(app: FastAPI) -> None:
    app.include_router(router)
