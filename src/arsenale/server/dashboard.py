"""The web dashboard: server-rendered pages (Jinja2, autoescaped) with htmx swaps and uPlot charts.

    install(app)   mounts /static and adds the HTML pages; the platform client is `app.state.client`.

Pages: `/` experiments, `/experiments/{id}` runs (filter, sort, page, select to compare),
`/runs/{run_id}` one run (info, params, tags, artifacts, one chart per metric), `/compare?runs=a,b`.
Charts read `/runs/{run_id}/metrics.json`, a downsampled history (min/max per bucket) with
non-finite values sent as `null`, which the chart draws as gaps.

Handlers stay thin: parse, call the tracking service, render. Every `ArsenaleError` becomes an HTML page
(or fragment, for htmx) with its own status, so bad ids are 404s and bad filters 400s, never 500s.
Vendored: htmx 2.0.11 (0BSD) and uPlot 1.6.32 (MIT), in static/vendor/ with their licenses.
"""

from __future__ import annotations

import math
import mimetypes
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from arsenale.errors import ArsenaleError, InvalidInput, NotFound
from arsenale.server.auth import csrf_token
from arsenale.tracking.models import Run
from arsenale.tracking.search import OrderKey, parse_order_by
from arsenale.tracking.service import TrackingAPI
from arsenale.tracking.source import TAG_PREFIX as SOURCE_TAG_PREFIX
from arsenale.units import human_duration, human_size

__all__ = ["install"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"

PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
CHART_POINTS = 2000
MAX_COMPARE = 20
API_CONTENT_PREFIX = "/api/v1/runs/{run_id}/artifacts/content"

T = TypeVar("T")


# ---- rendering ---------------------------------------------------------------------------------------------


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(start: int | None, end: int | None) -> str:
    """How long a run took (or has been running), from its start and end in ms."""
    if start is None:
        return "—"
    ms = (end if end is not None else int(time.time() * 1000)) - start
    return "—" if ms < 0 else human_duration(ms / 1000)


def fmt_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}"
    return str(v)


def fmt_size(n: int | None) -> str:
    return human_size(n)


def query(**params: Any) -> str:
    """`?a=1&b=2` from the non-empty params (lists repeat the key); '' when none are left."""
    pairs = [(k, v) for k, v in params.items() if v not in (None, "", [])]
    return "?" + urlencode(pairs, doseq=True) if pairs else ""


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(time=fmt_time, value=fmt_value, size=fmt_size, urlpath=lambda p: quote(p, safe="/"))
_env.globals.update(duration=fmt_duration, query=query, csrf_token=csrf_token)


def root_of(request: Request) -> str:
    """The prefix the app is mounted under ('' at the top), for links that survive a reverse proxy."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(request=request, root=root_of(request), **context)
    return HTMLResponse(html, status_code=status_code)


def is_htmx(request: Request) -> bool:
    """A swap asks for a fragment; a history restore asks for the whole page again."""
    return "hx-request" in request.headers and "hx-history-restore-request" not in request.headers


# ---- errors: every ArsenaleError is a page with its status -------------------------------------------------


class DashboardRoute(APIRoute):
    """Renders `ArsenaleError`s as the error page (or JSON, for JSON routes) instead of a 500."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        wants_json = self.response_class is JSONResponse

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ArsenaleError as exc:
                if wants_json:
                    return JSONResponse(exc.to_dict(), status_code=exc.http_status)
                template = "partials/error.html" if is_htmx(request) else "error.html"
                return render(request, template, exc.http_status, status=exc.http_status, message=exc.message)

        return guarded


def lookup(fetch: Callable[[str], T], ident: str, what: str) -> T:
    """A malformed id in a URL names nothing: 404, like an id that does not exist."""
    try:
        return fetch(ident)
    except InvalidInput as exc:
        if exc.field not in ("run_id", "experiment_id"):
            raise
        raise NotFound(f"there is no {what} {ident!r}", field=exc.field) from None


def int_param(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}", field=name) from None
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}, got {value}", field=name)
    return value


# ---- the runs table -----------------------------------------------------------------------------------------


def entity(prefix: str, key: str) -> str:
    """`metrics.acc`, or metrics.`my key` when the key needs quoting (the search grammar's rule)."""
    if key and all(ch.isalnum() or ch in "_-./:" for ch in key):
        return f"{prefix}.{key}"
    return prefix + ".`" + key.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass(frozen=True)
class Column:
    label: str
    group: str  # "run", "params" or "metrics"
    key: str  # the param/metric key; the attribute name for run columns
    sort: str | None  # the order-by entity, or None when the column is not sortable
    direction: str | None  # "asc" / "desc" when the table is sorted by this column
    next_order: str | None  # the order_by a click on the header asks for


def make_column(label: str, group: str, key: str, sort: str | None, current: OrderKey | None,
                desc_first: bool) -> Column:
    if sort is None:
        return Column(label, group, key, None, None, None)
    kind = {"metrics": "metric", "params": "param"}.get(group, "attribute")
    direction = None
    if current is not None and current.kind == kind and current.key == key:
        direction = "asc" if current.ascending else "desc"
    if direction is None:
        nxt = "DESC" if desc_first else "ASC"
    else:
        nxt = "ASC" if direction == "desc" else "DESC"
    return Column(label, group, key, sort, direction, f"{sort} {nxt}")


def run_columns(runs: Sequence[Run], order_by: str) -> list[Column]:
    current = parse_order_by([order_by])[0] if order_by else None
    cols = [
        make_column("Run", "run", "run_name", "attributes.run_name", current, False),
        make_column("Status", "run", "status", "attributes.status", current, False),
        make_column("Started (UTC)", "run", "start_time", "attributes.start_time", current, True),
        make_column("Duration", "run", "duration", None, current, False),
    ]
    for key in sorted({k for r in runs for k in r.data.params}):
        cols.append(make_column(key, "params", key, entity("params", key), current, False))
    for key in sorted({k for r in runs for k in r.data.metrics}):
        cols.append(make_column(key, "metrics", key, entity("metrics", key), current, True))
    return cols


# ---- artifacts, compare ---------------------------------------------------------------------------------


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [(name, "/".join(parts[: i + 1])) for i, name in enumerate(parts)]


def download_prefix(request: Request, run_id: str) -> str:
    """The JSON API's content route when the app serves it, else the dashboard's own raw route."""
    root = root_of(request)
    if has_api_content_route(request.app):
        return root + API_CONTENT_PREFIX.format(run_id=run_id)
    return f"{root}/runs/{run_id}/artifacts/raw"


def has_api_content_route(app: FastAPI) -> bool:
    """Looked up once per app in its OpenAPI paths (included routers are not listed flat in `app.routes`)."""
    known = getattr(app.state, "dashboard_api_downloads", None)
    if known is None:
        try:
            paths = app.openapi().get("paths", {})
        except Exception:
            paths = {}
        known = any(p.startswith(API_CONTENT_PREFIX + "/") for p in paths)
        app.state.dashboard_api_downloads = known
    return bool(known)


@dataclass(frozen=True)
class CompareRow:
    group: str
    key: str
    cells: list[str]
    differs: bool


def compare_rows(runs: Sequence[Run]) -> list[CompareRow]:
    def rows(group: str, keys: Iterable[str], get: Callable[[Run, str], Any]) -> list[CompareRow]:
        out = []
        for key in keys:
            cells = [fmt_value(get(r, key)) for r in runs]
            out.append(CompareRow(group, key, cells, len(set(cells)) > 1))
        return out

    info: dict[str, Callable[[Run], Any]] = {
        "status": lambda r: r.info.status.value,
        "started (UTC)": lambda r: fmt_time(r.info.start_time),
        "duration": lambda r: fmt_duration(r.info.start_time, r.info.end_time),
        "experiment": lambda r: r.info.experiment_id,
        "user": lambda r: r.info.user_id,
    }
    params = sorted({k for r in runs for k in r.data.params})
    metrics = sorted({k for r in runs for k in r.data.metrics})
    return (rows("info", info, lambda r, k: info[k](r))
            + rows("params", params, lambda r, k: r.data.params.get(k))
            + rows("metrics", metrics, lambda r, k: r.data.metrics.get(k)))


def split_ids(raw: Sequence[str]) -> list[str]:
    ids: list[str] = []
    for item in raw:
        for part in item.split(","):
            if part.strip() and part.strip() not in ids:
                ids.append(part.strip())
    return ids


def finite_or_none(values: Iterable[float] | None) -> list[float | None] | None:
    if values is None:
        return None
    return [v if math.isfinite(v) else None for v in values]


# ---- routes ----------------------------------------------------------------------------------------------

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


def tracking(request: Request) -> TrackingAPI:
    return request.app.state.client.tracking  # type: ignore[no-any-return]


@router.get("/")
def experiments_page(request: Request) -> Response:
    experiments = tracking(request).list_experiments()
    return render(request, "experiments.html", experiments=experiments)


@router.get("/experiments/{experiment_id}")
def runs_page(
    request: Request,
    experiment_id: str,
    filter_: Annotated[str, Query(alias="filter")] = "",
    order_by: str = "",
    page_token: str = "",
    max_results: str = "",
) -> Response:
    api = tracking(request)
    experiment = lookup(api.get_experiment, experiment_id, "experiment")
    size = int_param(max_results, "max_results", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    state = {"filter": filter_.strip(), "order_by": order_by.strip(), "max_results": max_results}
    context: dict[str, Any] = {"experiment": experiment, "state": state, "error": None, "runs": [],
                               "columns": [], "next_token": None, "page_token": page_token}
    status = 200
    try:
        page = api.search_runs([experiment.experiment_id], filter=state["filter"] or None,
                               order_by=[state["order_by"]] if state["order_by"] else None,
                               max_results=size, page_token=page_token or None)
        context.update(runs=page.runs, next_token=page.next_page_token,
                       columns=run_columns(page.runs, state["order_by"]))
    except InvalidInput as exc:  # a malformed filter, order_by or page token: say so next to the box
        context["error"] = exc.message
        status = 400
    template = "partials/runs_table.html" if is_htmx(request) else "runs.html"
    return render(request, template, status, **context)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, artifact_path: str = "") -> Response:
    api = tracking(request)
    run = lookup(api.get_run, run_id, "run")
    experiment = api.get_experiment(run.info.experiment_id)
    source = {k[len(SOURCE_TAG_PREFIX):]: v for k, v in run.data.tags.items() if k.startswith(SOURCE_TAG_PREFIX)}
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith(SOURCE_TAG_PREFIX)}
    return render(request, "run.html", run=run, experiment=experiment, source=dict(sorted(source.items())),
                  tags=dict(sorted(tags.items())), metric_keys=sorted(run.data.metrics),
                  chart_points=CHART_POINTS, **artifact_context(request, api, run_id, artifact_path))


def artifact_context(request: Request, api: TrackingAPI, run_id: str, path: str) -> dict[str, Any]:
    entries = api.list_artifacts(run_id, path or None)
    path = path.strip("/")
    if len(entries) == 1 and not entries[0].is_dir and entries[0].path == path:  # a file: show its folder
        path = path.rpartition("/")[0]
        entries = api.list_artifacts(run_id, path or None)
    return {"run_id": run_id, "artifact_path": path, "entries": entries, "crumbs": breadcrumbs(path),
            "download": download_prefix(request, run_id)}


@router.get("/runs/{run_id}/artifacts")
def artifacts_fragment(request: Request, run_id: str, path: str = "") -> Response:
    api = tracking(request)
    lookup(api.get_run, run_id, "run")
    return render(request, "partials/artifacts.html", **artifact_context(request, api, run_id, path))


@router.get("/runs/{run_id}/artifacts/raw/{path:path}")
def artifact_raw(request: Request, run_id: str, path: str) -> Response:
    api = tracking(request)
    lookup(api.get_run, run_id, "run")
    data = api.read_artifact(run_id, path)
    name = path.rpartition("/")[2]
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(data, media_type=media, headers={
        # Served from the dashboard's origin: never let an uploaded HTML or SVG file run as a page.
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    })


@router.get("/runs/{run_id}/metrics.json", response_class=JSONResponse)
def metric_json(request: Request, run_id: str, key: str, max_points: str = "") -> Response:
    api = tracking(request)
    points = int_param(max_points, "max_points", CHART_POINTS, 2, 100_000)
    history = lookup(lambda rid: api.get_metric_history(rid, key, max_points=points), run_id, "run")
    values = finite_or_none(history.values) or []
    return JSONResponse({
        "key": history.key,
        "steps": history.steps,
        "values": values,
        "mins": finite_or_none(history.mins),
        "maxs": finite_or_none(history.maxs),
        "downsampled": history.downsampled,
        "total_points": history.total_points,
        "nonfinite": 0 if history.downsampled else sum(v is None for v in values),
    })


@router.get("/compare")
def compare_page(request: Request, runs: Annotated[list[str], Query()] = []) -> Response:
    api = tracking(request)
    ids = split_ids(runs)
    if not ids:
        raise InvalidInput("choose at least one run to compare: /compare?runs=<run id>,<run id>", field="runs")
    if len(ids) > MAX_COMPARE:
        raise InvalidInput(f"compare at most {MAX_COMPARE} runs at once; got {len(ids)}", field="runs")
    found = [lookup(api.get_run, i, "run") for i in ids]
    common = sorted(set.intersection(*(set(r.data.metrics) for r in found)))
    return render(request, "compare.html", runs=found, rows=compare_rows(found), common_metrics=common,
                  chart_points=CHART_POINTS)


def install(app: FastAPI) -> None:
    """Mount the dashboard's static files and pages on `app` (which must have `app.state.client`)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    from arsenale.server import dashboard_registry  # the model registry's pages; imported here, it imports us
    dashboard_registry.install(app)
    from arsenale.server import dashboard_pipelines  # the pipelines' pages, likewise
    dashboard_pipelines.install(app)
    from arsenale.server import dashboard_deployments  # the deployments' pages, likewise
    dashboard_deployments.install(app)
    from arsenale.server import dashboard_monitoring  # the monitors' pages, likewise
    dashboard_monitoring.install(app)
    from arsenale.server import dashboard_features  # the feature store's pages, likewise
    dashboard_features.install(app)
    from arsenale.server import dashboard_delivery  # the delivery metrics' page, likewise
    dashboard_delivery.install(app)
    from arsenale.server import dashboard_gates  # gate reports, likewise
    dashboard_gates.install(app)
    from arsenale.server import dashboard_traces  # LLM traces, likewise
    dashboard_traces.install(app)
    from arsenale.server import dashboard_prompts  # the prompt registry's pages, likewise
    dashboard_prompts.install(app)
    from arsenale.server import dashboard_indexes  # vector indexes and evaluation runs, likewise
    dashboard_indexes.install(app)
    from arsenale.server import dashboard_security  # tokens, secrets, retention, likewise
    dashboard_security.install(app)
