"""The model registry in the dashboard: models, one model's versions and history, one version's contract.

    install(app)   adds the pages below; `dashboard.install` calls it.

Pages: `/models` registered models (latest version, aliases, stages), `/models/{name}` its versions, aliases
and history (who moved which alias or stage, when and why), `/models/{name}/versions/{version}` the contract
(schemas, metrics, slices, the reference profile with a histogram per feature), the files and the lineage
graph (version → run → data, code, environment). The run page lists the versions registered from the run
through the `registered_versions` template global.

Handlers stay thin: parse, call the registry service, shape for the template, render. A model or version that
does not exist (or whose name or number cannot exist) is a 404 page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from arsenale.errors import ArsenaleError, InvalidInput, NotFound
from arsenale.registry.contract import Contract, FeatureProfile
from arsenale.registry.models import ModelEvent, ModelVersion
from arsenale.registry.service import RegistryAPI
from arsenale.server.dashboard import DashboardRoute, _env, render
from arsenale.tracking.models import Run
from arsenale.tracking.service import TrackingAPI

__all__ = ["install", "registered_versions"]

MAX_MODELS = 1000
MAX_EVENTS = 200
MAX_GATE_RUNS = 50
MAX_METRIC_COLUMNS = 6
MAX_SCAN_MODELS = 200  # the remote fallback of `registered_versions` looks at this many models at most
MAX_FREQUENCY_BARS = 12
SPARK_WIDTH = 120
SPARK_HEIGHT = 28

T = TypeVar("T")


# ---- lookups -------------------------------------------------------------------------------------------


def registry(request: Request) -> RegistryAPI:
    return request.app.state.client.registry  # type: ignore[no-any-return]


def tracking(request: Request) -> TrackingAPI:
    return request.app.state.client.tracking  # type: ignore[no-any-return]


def find(fetch: Callable[..., T], *args: Any) -> T:
    """A model name or version in a URL that cannot exist names nothing: 404, like one that does not exist."""
    try:
        return fetch(*args)
    except InvalidInput as exc:
        if exc.field not in ("name", "version"):
            raise
        raise NotFound(exc.message, field=exc.field) from None


def registered_versions(request: Request, run_id: str) -> list[ModelVersion]:
    """The model versions registered from `run_id`, newest first; [] when the registry cannot say.

    In-process the store answers with one query; against a remote registry this scans the versions of up to
    `MAX_SCAN_MODELS` models through the public interface."""
    api = registry(request)
    try:
        store = getattr(api, "store", None)
        if store is not None and hasattr(store, "versions_of_run"):
            found = [ModelVersion(**v) for v in store.versions_of_run(run_id)]
        else:
            found = [v for m in api.list_models(limit=MAX_SCAN_MODELS) for v in api.list_versions(m.name)
                     if v.run_id == run_id]
    except ArsenaleError:  # a side panel must not take the run page down
        return []
    return sorted(found, key=lambda v: (-v.creation_time, v.name, -v.version))


def run_names(api: TrackingAPI, run_ids: Sequence[str | None]) -> dict[str, str | None]:
    """run id → run name, or None when the run is gone (deleted runs keep their versions)."""
    out: dict[str, str | None] = {}
    for rid in dict.fromkeys(r for r in run_ids if r):
        try:
            run: Run = api.get_run(rid)
            out[rid] = run.info.run_name
        except (NotFound, InvalidInput):
            out[rid] = None
    return out


# ---- shaping for the templates ----------------------------------------------------------------------------


def metric_columns(versions: Sequence[ModelVersion], limit: int = MAX_METRIC_COLUMNS) -> list[str]:
    """The contract metrics most versions share (then alphabetical), at most `limit` of them."""
    counts = Counter(k for v in versions for k in (v.contract.get("metrics") or {}))
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


@dataclass(frozen=True)
class AliasRow:
    alias: str
    version: int
    moved_at: int | None
    actor: str | None
    reason: str | None


def alias_rows(aliases: Mapping[str, int], events: Sequence[ModelEvent]) -> list[AliasRow]:
    """Each alias with its last move (events come newest first)."""
    rows = []
    for alias, version in sorted(aliases.items()):
        last = next((e for e in events if e.alias == alias and e.kind in ("alias", "alias_undo")), None)
        rows.append(AliasRow(alias, version, last.timestamp if last else None, last.actor if last else None,
                             last.reason if last else None))
    return rows


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    bars: list[Bar]
    label: str


def _bars(values: Sequence[float], labels: Sequence[str], label: str) -> Sparkline | None:
    if not values or max(values) <= 0:
        return None
    top = max(values)
    step = SPARK_WIDTH / len(values)
    gap = 1.0 if step > 3 else 0.0
    bars = []
    for i, (v, text) in enumerate(zip(values, labels)):
        h = 0.0 if v <= 0 else max(1.0, v / top * (SPARK_HEIGHT - 1))
        x, y = round(i * step, 2), round(SPARK_HEIGHT - h, 2)
        bars.append(Bar(x, y, round(step - gap, 2), round(h, 2), text))
    return Sparkline(SPARK_WIDTH, SPARK_HEIGHT, bars, label)


def histogram_sparkline(edges: Sequence[float], counts: Sequence[int]) -> Sparkline | None:
    """One bar per bin of a stored histogram; each bar's tooltip names its bin and count."""
    if len(edges) != len(counts) + 1:
        return None
    labels = [f"{edges[i]:.4g} – {edges[i + 1]:.4g}: {c}" for i, c in enumerate(counts)]
    return _bars([float(c) for c in counts], labels, f"histogram of {len(counts)} bins")


def frequency_sparkline(frequencies: Mapping[str, int]) -> Sparkline | None:
    """The most frequent values as bars, largest first."""
    top = sorted(frequencies.items(), key=lambda kv: -kv[1])[:MAX_FREQUENCY_BARS]
    return _bars([float(c) for _, c in top], [f"{k}: {c}" for k, c in top],
                 f"{len(top)} most frequent values")


def sparkline(feature: FeatureProfile) -> Sparkline | None:
    if feature.histogram is not None:
        return histogram_sparkline(feature.histogram.edges, feature.histogram.counts)
    if feature.frequencies:
        return frequency_sparkline(feature.frequencies)
    return None


def read_contract(raw: Mapping[str, Any]) -> tuple[Contract | None, str | None]:
    """The stored contract, typed; or None and why (the API stores any JSON object as a contract)."""
    try:
        return Contract.model_validate(dict(raw)), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"{where}: {first['msg']}"


# ---- routes ----------------------------------------------------------------------------------------------

router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


@router.get("/models")
def models_page(request: Request) -> Response:
    models = registry(request).list_models(limit=MAX_MODELS)
    return render(request, "models.html", models=models, capped=len(models) == MAX_MODELS)


@router.get("/models/{name}")
def model_page(request: Request, name: str) -> Response:
    api = registry(request)
    model = find(api.get_model, name)
    versions = api.list_versions(model.name)
    events = api.events(model.name, MAX_EVENTS)
    return render(request, "model.html", model=model, versions=versions, events=events,
                  aliases=alias_rows(model.aliases, events), metric_keys=metric_columns(versions),
                  runs=run_names(tracking(request), [v.run_id for v in versions]))


@router.get("/models/{name}/versions/{version}")
def version_page(request: Request, name: str, version: str) -> Response:
    api = registry(request)
    mv = find(api.get_version, name, version)
    contract, contract_error = read_contract(mv.contract)
    features = []
    if contract is not None and contract.profile is not None:
        features = [(f, sparkline(f), False) for f in contract.profile.features]
        if contract.profile.label is not None:
            features.append((contract.profile.label, sparkline(contract.profile.label), True))
    events = [e for e in api.events(mv.name, MAX_EVENTS) if mv.version in (e.version, e.from_version)]
    gate_runs = request.app.state.client.gates.list(mv.name, mv.version, MAX_GATE_RUNS)
    return render(request, "model_version.html", mv=mv, contract=contract, contract_error=contract_error,
                  features=features, lineage=api.lineage(mv.name, mv.version), events=events,
                  gate_runs=gate_runs)


def install(app: FastAPI) -> None:
    """Add the registry pages to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)


_env.globals["registered_versions"] = registered_versions
