"""Gate runs over HTTP, under /api/v1/gates: what `client.gates` does.

    POST /gates/runs                  record a gate run of a model version (201; audited)
    GET  /gates/runs?model=&version=&limit=   gate runs, newest first
    GET  /gates/runs/{id}             one gate run with every check's result
    POST /gates/runs/{id}/promote     a passing run's promotion: an alias and/or a canary (409 if it failed)

The checks run where the models and the data are (a CI job with `arsenale gate run`); the server keeps
their outcome with the model version and acts on a pass.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from arsenale.gates.models import GateRun
from arsenale.gates.service import GateService
from arsenale.server.routers import API_PREFIX, render

router = APIRouter(prefix=f"{API_PREFIX}/gates", tags=["gates"])


def _gates(request: Request) -> GateService:
    return request.app.state.client.gates  # type: ignore[no-any-return]


Gates = Annotated[GateService, Depends(_gates)]


class RecordRun(BaseModel):
    # Closed and strict: a misspelt field is refused rather than dropped, "2" is not a version. Results are
    # checked by the service, which gives the same messages to local callers.
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(description="the candidate's model name")
    version: int = Field(description="the candidate's version")
    dataset: str = Field(description="the evaluation data")
    results: list[Any] = Field(description="one object per check: name, passed, message, values, details")
    policy: str = Field(description="the policy's TOML")
    champion_version: int | None = None


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    alias: str | None = Field(None, description="the alias the candidate gets, e.g. challenger")
    canary: str | None = Field(None, description="the deployment to start a canary of the candidate in")


@router.post("/runs", status_code=201, response_model=GateRun)
def record(body: RecordRun, gates: Gates) -> Response:
    return render(gates.record(body.name, body.version, dataset=body.dataset, results=body.results,
                               policy=body.policy, champion_version=body.champion_version), 201)


@router.get("/runs", response_model=list[GateRun])
def list_runs(gates: Gates, model: str | None = Query(None), version: int | None = Query(None),
              limit: int = Query(100, ge=1, le=1000)) -> Response:
    return render(gates.list(model, version, limit))


@router.get("/runs/{id}", response_model=GateRun)
def get_run(id: int, gates: Gates) -> Response:
    return render(gates.get(id))


@router.post("/runs/{id}/promote", response_model=GateRun)
def promote(id: int, body: Promote, gates: Gates) -> Response:
    return render(gates.promote(id, alias=body.alias, canary=body.canary))
