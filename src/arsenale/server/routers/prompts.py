"""The prompt registry over HTTP, under /api/v1/prompts: what `client.prompts` does.

    POST   /prompts                          register a version (201; the existing one for identical content)
    GET    /prompts                          every prompt with its newest version and labels
    GET    /prompts/{name}                   one prompt
    GET    /prompts/{name}/versions          its versions, newest first
    GET    /prompts/{name}/versions/{v}      one version (a number or `latest`)
    GET    /prompts/{name}/labels/{label}    the version a label points at
    PUT    /prompts/{name}/labels/{label}    move a label to a version (audited; 404 for a missing version)
    DELETE /prompts/{name}/labels/{label}    remove a label (audited)
    GET    /prompts/{name}/diff?a=&b=        what changed from a to b (versions, `latest` or labels)

Names travel as one percent-encoded path segment (they never contain '/' or '@'). Rendering happens where the
values are: `PromptVersion.render` in the SDK, `arsenale prompts render` in the shell.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.llm.prompts import Prompt, PromptDiff, PromptService, PromptVersion
from arsenale.server.routers import API_PREFIX, no_content, render

router = APIRouter(prefix=f"{API_PREFIX}/prompts", tags=["prompts"])


def _prompts(request: Request) -> PromptService:
    return request.app.state.client.prompts  # type: ignore[no-any-return]


Prompts = Annotated[PromptService, Depends(_prompts)]


class Register(BaseModel):
    # Closed and strict: a misspelt field is refused rather than dropped. The service checks the values and
    # gives local callers the same messages.
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    template: str = Field(description="a Jinja2 template, e.g. 'Answer using {{ context }}: {{ question }}'")
    model: str | None = Field(None, description="the model it was written for")
    params: dict[str, Any] | None = Field(None, description="call parameters, e.g. {\"temperature\": 0.2}")
    description: str | None = None


class SetLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: int
    reason: str | None = None


@router.post("", status_code=201, response_model=PromptVersion)
def register(body: Register, prompts: Prompts) -> Response:
    return render(prompts.register(body.name, body.template, model=body.model, params=body.params,
                                   description=body.description), 201)


@router.get("", response_model=list[Prompt])
def list_prompts(prompts: Prompts) -> Response:
    return render(prompts.list())


@router.get("/{name}", response_model=Prompt)
def get_prompt(name: str, prompts: Prompts) -> Response:
    return render(prompts.get_prompt(name))


@router.get("/{name}/versions", response_model=list[PromptVersion])
def versions(name: str, prompts: Prompts) -> Response:
    return render(prompts.versions(name))


@router.get("/{name}/versions/{version}", response_model=PromptVersion)
def get_version(name: str, version: str, prompts: Prompts) -> Response:
    return render(prompts.get(name, version=version))


@router.get("/{name}/labels/{label}", response_model=PromptVersion)
def get_label(name: str, label: str, prompts: Prompts) -> Response:
    return render(prompts.get(name, label=label))


@router.put("/{name}/labels/{label}", response_model=PromptVersion)
def set_label(name: str, label: str, body: SetLabel, prompts: Prompts) -> Response:
    return render(prompts.set_label(name, label, body.version, reason=body.reason))


@router.delete("/{name}/labels/{label}", status_code=204)
def delete_label(name: str, label: str, prompts: Prompts) -> Response:
    prompts.delete_label(name, label)
    return no_content()


@router.get("/{name}/diff", response_model=PromptDiff)
def diff(name: str, prompts: Prompts, a: str = Query(description="from: a version, `latest` or a label"),
         b: str = Query(description="to: a version, `latest` or a label")) -> Response:
    return render(prompts.diff(name, a, b))
