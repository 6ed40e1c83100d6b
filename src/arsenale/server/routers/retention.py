"""Retention over HTTP, under /api/v1/retention (admin only): what `client.retention` does.

    GET    /retention/policies                 every policy
    GET    /retention/policies/{kind}?project= one policy
    PUT    /retention/policies/{kind}          {"max_age": "30d", "project": "*"}: create or change it (audited)
    DELETE /retention/policies/{kind}?project= remove it (audited)
    POST   /retention/apply                    {"dry_run": false, "now": null}: apply every policy now; the
                                               answer holds each policy's counts (one audit entry per policy)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.security.retention import MAX_NOW_MS, ApplyReport, RetentionPolicy, RetentionService
from arsenale.server.auth import ADMIN
from arsenale.server.routers import API_PREFIX, no_content, render

router = APIRouter(prefix=f"{API_PREFIX}/retention", tags=["retention"])


def _retention(request: Request) -> RetentionService:
    return request.app.state.client.retention  # type: ignore[no-any-return]


Retention = Annotated[RetentionService, Depends(_retention)]


class SetPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_age: Any = Field(description="an age such as 30d, 12h, or a number of seconds")
    project: str = Field("*", description="the project it applies to; '*' for every project")


class Apply(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = Field(False, description="report what would be deleted, delete nothing")
    now: int | None = Field(None, ge=0, le=MAX_NOW_MS,
                            description="apply as of this time (ms since the epoch); default: now")


@router.get("/policies", response_model=list[RetentionPolicy], openapi_extra=ADMIN)
def list_policies(retention: Retention) -> Response:
    return render(retention.list_policies())


@router.get("/policies/{kind}", response_model=RetentionPolicy, openapi_extra=ADMIN)
def get_policy(kind: str, retention: Retention, project: str = "*") -> Response:
    return render(retention.get_policy(kind, project))


@router.put("/policies/{kind}", response_model=RetentionPolicy, openapi_extra=ADMIN)
def set_policy(kind: str, body: SetPolicy, retention: Retention) -> Response:
    return render(retention.set_policy(kind, body.max_age, body.project))


@router.delete("/policies/{kind}", status_code=204, openapi_extra=ADMIN)
def delete_policy(kind: str, retention: Retention, project: str = "*") -> Response:
    retention.delete_policy(kind, project)
    return no_content()


@router.post("/apply", response_model=ApplyReport, openapi_extra=ADMIN)
def apply(retention: Retention, body: Apply | None = None) -> Response:
    if body is None:
        return render(retention.apply())
    return render(retention.apply(now=body.now, dry_run=body.dry_run))
