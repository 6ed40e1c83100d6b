"""Vector indexes and LLM evaluations in the dashboard.

    install(app)   adds the pages below; `dashboard_prompts.install` calls it.

Pages: `/indexes` every index (dimension, metric, embedder, newest version, row count); `/indexes/{name}?version=
&q=&k=` one index: its versions with counts, digests and times, and for the selected version (the newest by
default) a search box: by text when the server can embed for that index (`arsenale.client.indexes.can_embed`),
else a note that the search needs the caller's embedder. `/evaluations?prompt=` the runs that `llm.eval.evaluate` and
`compare` record (tagged `ars.eval`), newest first, with their score means; the prompt page shows the same table
for its prompt. Every piece of user text is escaped by the templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from arsenale.client.indexes import can_embed
from arsenale.server.dashboard import DashboardRoute, int_param, render

__all__ = ["EvalRun", "evaluation_runs", "install"]

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)

MAX_EVALUATIONS = 200
EVAL_TAG = "ars.eval"  # what llm.eval puts on its runs: "llm" for one evaluation, "compare" for a comparison
_INFO_METRIC = re.compile(r"eval\.|.*\.(diff_low|diff_high)$")


@dataclass(frozen=True)
class EvalRun:
    """One evaluation run as the table shows it: what was evaluated and its score means."""

    run_id: str
    run_name: str
    kind: str  # "llm" or "compare"
    prompts: list[str]  # one version, or A and B of a comparison
    dataset: str
    model: str
    status: str
    start_time: int | None
    scores: dict[str, float] = field(default_factory=dict)
    rows: int | None = None


def evaluation_runs(client: Any, prompt: str | None = None, limit: int = MAX_EVALUATIONS) -> list[EvalRun]:
    """The newest evaluation runs of every experiment (of one prompt's versions, when `prompt` is given)."""
    tracking = client.tracking
    ids = [e.experiment_id for e in tracking.list_experiments()]
    if not ids:
        return []
    query = f"tags.`{EVAL_TAG}` IN ('llm', 'compare')"
    if prompt is not None:
        # Narrowed in the store; characters special to LIKE or to quoting become one-character wildcards (an
        # over-match that the exact check below removes), so no user text is ever read as syntax.
        pattern = "".join("_" if ch in "%_\\'" else ch for ch in prompt) + "/%"
        query += " AND (" + " OR ".join(f"params.{key} LIKE '{pattern}'" for key in ("prompt", "prompt_a",
                                                                                       "prompt_b")) + ")"
    page = tracking.search_runs(ids, filter=query, order_by=["attributes.start_time DESC"], max_results=limit)
    out = []
    for run in page.runs:
        params, metrics = run.data.params, run.data.metrics
        kind = run.data.tags.get(EVAL_TAG, "")
        refs = [params["prompt"]] if "prompt" in params else [params.get("prompt_a", ""), params.get("prompt_b", "")]
        if prompt is not None and not any(r.rsplit("/", 1)[0] == prompt for r in refs):
            continue
        scores = {k: v for k, v in sorted(metrics.items()) if not _INFO_METRIC.match(k)}
        rows = metrics.get("eval.rows")
        out.append(EvalRun(run_id=run.info.run_id, run_name=run.info.run_name or "", kind=kind,
                           prompts=[r for r in refs if r], dataset=params.get("dataset", ""),
                           model=params.get("model", ""),
                           status=str(getattr(run.info.status, "value", run.info.status)),
                           start_time=run.info.start_time,
                           scores=scores, rows=None if rows is None else int(rows)))
    return out


def _indexes(request: Request) -> Any:
    return request.app.state.client.indexes


@router.get("/indexes")
def indexes_page(request: Request) -> Response:
    return render(request, "indexes.html", indexes=_indexes(request).list())


@router.get("/evaluations")
def evaluations_page(request: Request, prompt: str = "") -> Response:
    return render(request, "evaluations.html", prompt=prompt,
                  evaluations=evaluation_runs(request.app.state.client, prompt or None))


@router.get("/indexes/{name:path}")
def index_page(request: Request, name: str, version: str = "", q: str = "", k: str = "") -> Response:
    api = _indexes(request)
    info = api.get(name)
    versions = api.versions(name)
    selected = api.version(name, version or None) if versions else None
    searchable = can_embed(info.embedder, info.dim)
    top = int_param(k, "k", 5, 1, 100)
    hits = api.search(name, q, top, selected.version) if q and searchable and selected is not None else None
    return render(request, "index.html", index=info, versions=list(reversed(versions)), selected=selected,
                  searchable=searchable, q=q, k=top, hits=hits)


def install(app: FastAPI) -> None:
    app.include_router(router)
