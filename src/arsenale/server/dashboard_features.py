"""The feature store in the dashboard: which features exist, how fresh they are online, what they look like.

    install(app)   adds the pages below; `dashboard.install` calls it.

Pages: `/features` every feature view (newest version: keys, source, feature count, TTL, online watermark and
its age, the last materialization), then the entities, on-demand features and feature services;
`/features/{view}` one view: its features and expressions, its versions, its materializations, and per
feature the statistics of its input column in the source (count, nulls, mean, min, max), read with pyarrow
from the same source retrieval reads. A view that does not exist is a 404 page.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from arsenale.errors import ArsenaleError
from arsenale.features.definitions import FeatureView
from arsenale.server.dashboard import DashboardRoute, render
from arsenale.server.dashboard_deployments import find
from arsenale.server.routers.features import feature_store
from arsenale.units import format_duration

__all__ = ["install", "source_statistics"]

MAX_STAT_ROWS = 5_000_000  # larger sources are not scanned on a page load
MAX_MATERIALIZATIONS = 50

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never materialized"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def ttl(seconds: float | None) -> str:
    return "—" if not seconds else format_duration(seconds)


def source_statistics(store: Any, view: FeatureView) -> tuple[list[dict[str, Any]], str | None]:
    """Per feature: its input column's count, nulls, mean, min and max in the source; or why there are none."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        source, _ = store._source(view)
        table = source if isinstance(source, pa.Table) else pq.read_table(source, columns=view.source_columns)
    except ArsenaleError as exc:
        return [], exc.message
    if table.num_rows > MAX_STAT_ROWS:
        return [], f"the source holds {table.num_rows:,} rows; statistics are computed up to {MAX_STAT_ROWS:,}"
    out = []
    for f in view.features:
        column = f.source_column
        row: dict[str, Any] = {"feature": f.name, "expression": f.expression, "column": column or "*",
                               "count": table.num_rows, "nulls": 0, "mean": None, "min": None, "max": None}
        if column is not None:
            values = table.column(column)
            row["nulls"] = values.null_count
            row["count"] = len(values) - values.null_count
            if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
                row["mean"] = pc.mean(values).as_py()
                bounds = pc.min_max(values).as_py()
                row["min"], row["max"] = bounds["min"], bounds["max"]
        out.append(row)
    return out, None


def num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else format(value, ".4g")
    return f"{value:,}" if isinstance(value, int) else str(value)


@router.get("/features")
def features_page(request: Request) -> Response:
    store = feature_store(request)
    fresh = {(f["view"], f["version"]): f for f in store.freshness()}
    everything = store.list()
    views = []
    for info in (i for i in everything if i.kind == "view"):
        view = info.definition()
        views.append({"info": info, "view": view, "fresh": fresh.get((info.name, info.version), {})})
    others = {kind: [i for i in everything if i.kind == kind] for kind in ("entity", "on_demand", "service")}
    return render(request, "features.html", views=views, others=others, age=age, ttl=ttl)


@router.get("/features/{name}")
def feature_view_page(request: Request, name: str) -> Response:
    store = feature_store(request)
    info = find(store.registry.get, "view", name)
    view = info.definition()
    versions = store.registry.versions("view", info.name)
    mats = store.registry.materializations(info.name, None, MAX_MATERIALIZATIONS)
    fresh = next((f for f in store.freshness() if f["view"] == info.name), {})
    stats, why = source_statistics(store, view)
    return render(request, "feature_view.html", info=info, view=view, versions=versions, mats=mats, fresh=fresh,
                  stats=stats, stats_missing=why, age=age, ttl=ttl, num=num)


def install(app: FastAPI) -> None:
    """Add the feature pages to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)
