"""Deployments (model serving) in the dashboard: who answers each deployment, how it served, how it changed.

    install(app)   adds the pages below; `dashboard.install` calls it.

Pages: `/deployments` every deployment with the versions that answer (and their share of traffic), its
shadows, its canary's state, revision and last change; `/deployments/{name}` one deployment: the current
policy (routes, shadows, sticky key, the canary plan with its step progress and thresholds), charts of the
last hour per version (requests, error rate, p99 latency, from `timeline`), the traffic split over time
(each revision's route weights as a step chart, from `history`), the canary controller's decisions with
their reasons and evidence, the revision history, and a Rollback button.

`POST /deployments/{name}/rollback` calls `deployments.rollback` and answers 303 back to the page, which
then names the revision the rollback wrote. When there is nothing to roll back to, the page itself shows
the Conflict (409) in place of the notice. The form is accepted only from the dashboard's own origin (a
browser sends `Origin` and `Sec-Fetch-Site` with every form post), so another site cannot roll back
production from a visitor's browser.

Handlers stay thin: parse, call the deployment service, shape for the template, render. A deployment that
does not exist, or whose name cannot exist, is a 404 page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from arsenale.errors import Conflict, Forbidden, InvalidInput, NotFound
from arsenale.server.dashboard import DashboardRoute, fmt_value, render, root_of
from arsenale.serving.models import Decision, Deployment, ModelRef, PolicyChange, TimelinePoint
from arsenale.serving.service import DeploymentAPI
from arsenale.tracking.models import now_ms

__all__ = ["install", "split_chart", "timeline_charts", "version_colours"]

WINDOW_MS = 60 * 60 * 1000  # the charts show the last hour
BUCKET_S = 60.0  # in one-minute buckets
MAX_DECISIONS = 100
MAX_REVISIONS = 100
ROLLBACK_REASON = "rolled back from the dashboard"

T = TypeVar("T")


def deployments(request: Request) -> DeploymentAPI:
    return request.app.state.client.deployments  # type: ignore[no-any-return]


def find(fetch: Callable[..., T], *args: Any) -> T:
    """A deployment name in a URL that cannot exist names nothing: 404, like one that does not exist."""
    try:
        return fetch(*args)
    except InvalidInput as exc:
        if exc.field != "name":
            raise
        raise NotFound(exc.message, field=exc.field) from None


def same_origin(request: Request) -> None:
    """Refuse a form post that another site made a visitor's browser send (cross-site request forgery)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("the dashboard accepts changes only from its own pages", field="origin")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("the dashboard accepts changes only from its own pages", field="origin")


# ---- shaping for the templates ----------------------------------------------------------------------------


def label(ref: ModelRef | TimelinePoint) -> str:
    return f"{ref.model} v{ref.version}"


def version_colours(refs: Iterable[ModelRef | TimelinePoint]) -> dict[str, int]:
    """`model/version` → a palette index, the same in every chart and swatch of a page."""
    keys = sorted({(r.model, r.version) for r in refs})
    return {f"{m}/{v}": i for i, (m, v) in enumerate(keys)}


def _finite(v: float | None, digits: int = 4) -> float | None:
    return round(v, digits) if v is not None and math.isfinite(v) else None


def timeline_charts(points: Sequence[TimelinePoint], since: int, now: int, bucket_s: float,
                    colours: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Requests, error rate (%) and p99 latency (ms) per version and role, one value per time bucket.

    Buckets start at `since` (where `timeline` aligns them); a bucket without traffic counts 0 requests and
    has no error rate or latency (null, which the chart draws as a gap)."""
    width = int(bucket_s * 1000)
    grid = [since + i * width for i in range(max(1, math.ceil((now - since) / width)))]
    starts = sorted(set(grid) | {p.t for p in points})  # a point off the grid must not vanish from the chart
    series: dict[tuple[str, int, str], dict[int, TimelinePoint]] = {}
    for p in points:
        series.setdefault((p.model, p.version, p.role), {})[p.t] = p

    def chart(unit: str, value: Callable[[TimelinePoint | None], float | int | None]) -> dict[str, Any]:
        out = []
        for (model, version, role), by_t in sorted(series.items()):
            shadow = role == "shadow"
            key = f"{model}/{version}"
            out.append({"label": f"{model} v{version}" + (" (shadow)" if shadow else ""), "key": key,
                        "role": role, "colour": colours.get(key, 0), "dash": shadow,
                        "values": [value(by_t.get(t)) for t in starts]})
        return {"x": [t / 1000 for t in starts], "series": out, "unit": unit, "kind": "line"}

    return {
        "requests": chart("", lambda p: p.requests if p is not None else 0),
        "error_rate": chart("%", lambda p: _finite(100 * p.errors / p.requests) if p and p.requests
                            else None),
        "p99": chart(" ms", lambda p: _finite(p.p99_ms) if p is not None else None),
    }


def split_chart(history: Sequence[PolicyChange], now: int, colours: Mapping[str, int]) -> dict[str, Any]:
    """Each revision's route weights (%) from the moment it was written, held until the next one (a step
    chart); the last revision holds until now. `history` comes newest first, as the service returns it."""
    changes = sorted(history, key=lambda c: (c.timestamp, c.revision))
    keys: dict[str, str] = {}
    for c in changes:
        for r in c.policy.routes:
            keys.setdefault(r.key, label(r))
    x = [c.timestamp / 1000 for c in changes]
    series = []
    for key, text in keys.items():
        values = [next((r.weight for r in c.policy.routes if r.key == key), 0.0) for c in changes]
        series.append({"label": text, "key": key, "role": "route", "colour": colours.get(key, 0),
                       "dash": False, "values": values + values[-1:]})
    last = changes[-1].timestamp if changes else now
    return {"x": x + [max(now, last) / 1000], "series": series, "unit": "%", "kind": "step", "min": 0,
            "max": 100, "revisions": [c.revision for c in changes]}


def evidence_items(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The evidence of a decision as (name, text) pairs; numbers formatted, structures as compact JSON."""
    items = []
    for k, v in evidence.items():
        if isinstance(v, (dict, list)):
            text = json.dumps(v, default=str, separators=(", ", ": "))
        elif isinstance(v, bool) or v is None:
            text = json.dumps(v)
        else:
            text = fmt_value(v)
        items.append((str(k), text))
    return items


@dataclass(frozen=True)
class ListRow:
    deployment: Deployment
    last_change: PolicyChange | None


@dataclass(frozen=True)
class CanaryView:
    done: int  # steps completed (the current one counts once the canary is promoted)
    total: int
    share: float  # the canary's share of traffic now


def canary_view(dep: Deployment) -> CanaryView | None:
    plan = dep.policy.canary
    if plan is None:
        return None
    share = next((r.weight for r in dep.policy.routes if r.key == plan.canary.key), 0.0)
    done = len(plan.steps) if plan.state == "promoted" else plan.step_index
    return CanaryView(done=done, total=len(plan.steps), share=share)


def restored_by(history: Sequence[PolicyChange], revision: int | None) -> PolicyChange | None:
    """The rollback revision a redirect names, when it is one (for the notice on the page)."""
    if revision is None:
        return None
    return next((c for c in history if c.revision == revision and c.action.startswith("rollback")), None)


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


# ---- routes ----------------------------------------------------------------------------------------------

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


@router.get("/deployments")
def deployments_page(request: Request) -> Response:
    api = deployments(request)
    rows = []
    for dep in api.list():
        last = api.history(dep.name, 1)
        rows.append(ListRow(dep, last[0] if last else None))
    return render(request, "deployments.html", rows=rows, canary_view=canary_view)


def detail(request: Request, name: str, status_code: int = 200, conflict: str | None = None,
           rolled_back: int | None = None) -> Response:
    api = deployments(request)
    dep = find(api.get, name)
    now = now_ms()
    since = now - WINDOW_MS
    points = api.timeline(dep.name, since, BUCKET_S)
    history = api.history(dep.name, MAX_REVISIONS)
    decisions: list[Decision] = api.decisions(dep.name, MAX_DECISIONS)
    policy = dep.policy
    refs: list[Any] = [*policy.routes, *policy.shadows, *points,
                       *(r for c in history for r in c.policy.routes)]
    if policy.canary is not None:
        refs += [policy.canary.canary, policy.canary.baseline]
    colours = version_colours(refs)
    charts = timeline_charts(points, since, now, BUCKET_S, colours)
    return render(request, "deployment.html", status_code, dep=dep, policy=policy, plan=policy.canary,
                  canary=canary_view(dep), charts=charts, split=split_chart(history, now, colours),
                  decisions=decisions, history=history, colours=colours, since=since, bucket_s=BUCKET_S,
                  has_traffic=bool(points), evidence_items=evidence_items, conflict=conflict,
                  restored=restored_by(history, rolled_back))


@router.get("/deployments/{name}")
def deployment_page(request: Request, name: str, rolled_back: str = "") -> Response:
    return detail(request, name, rolled_back=_int_or_none(rolled_back))


@router.post("/deployments/{name}/rollback")
def rollback(request: Request, name: str) -> Response:
    same_origin(request)
    api = deployments(request)
    try:
        dep = find(lambda n: api.rollback(n, reason=ROLLBACK_REASON), name)
    except Conflict as exc:  # nothing earlier to restore: say so on the page itself
        return detail(request, name, exc.http_status, conflict=exc.message)
    url = f"{root_of(request)}/deployments/{quote(dep.name, safe='')}?rolled_back={dep.revision}"
    return RedirectResponse(url, status_code=303)


def install(app: FastAPI) -> None:
    """Add the deployment pages to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)
