"""Monitors in the dashboard: is each deployed model still seeing the data it was trained on?

    install(app)   adds the pages below; `dashboard.install` calls it.

Pages: `/monitors` every monitor with its deployment, window, schedule and newest window (when, rows, drift
share with a dataset-drift badge, accuracy; for an LLM monitor, traces, p95 latency and cost) and, where the
platform has alert rules, how many fire; an LLM monitor's page charts its traces and errors, latency
percentiles, cost and score means over its windows, with the recent windows and the alerts;
`/monitors/{name}` one monitor over its last `runs` windows (50 by default): drift share, each feature's
drift statistic (the ten highest), data-quality issues and accuracy as time series; the newest window's
per-feature tests, the reference and current distributions of one feature (`?feature=`; an htmx request
gets that fragment alone, so picking a feature swaps only the chart), its data-quality issues, the recent
windows, and the alerts. `/monitors/{name}/report.html` is the newest window as the self-contained HTML
report of `monitoring.report`, for mailing or attaching to a ticket. `/monitoring/{name}` (the link alert
notifications carry) redirects to the monitor's page.

Where the numbers come from: the charts from each run's stored `values` (the names alert rules use), the
tests and issues from the newest run's stored report. A stored report keeps no distributions, so they are
read again: the reference from the contract profile of the version that answered (the histogram or top
categories the drift test compared against), the current values from the inference log over the newest
window (a row logged late into that window is included, so the counts can exceed the run's).

Handlers stay thin: parse, call the monitor service, shape for the template, render. A monitor that does
not exist, or whose name cannot exist, is a 404 page; a monitor without runs is a page that says so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from arsenale.errors import ArsenaleError, NotFound
from arsenale.monitoring import stattests
from arsenale.monitoring.models import Monitor, MonitorRun
from arsenale.server.dashboard import DashboardRoute, fmt_time, int_param, is_htmx, render, root_of
from arsenale.server.dashboard_deployments import find
from arsenale.units import format_duration as fmt_window  # a window as monitors are created: '1h', '90m'

__all__ = ["categorical_bins", "distribution", "drift_charts", "feature_rows", "fmt_window", "install",
           "llm_charts", "numeric_bins", "top_features"]

DEFAULT_RUNS = 50  # windows charted
MAX_RUNS = 1000
TOP_FEATURES = 10  # one line each in the statistic chart: more are unreadable
RECENT_RUNS = 20  # rows of the recent-windows table
MAX_ALERTS = 100
TOP_CATEGORIES = 10  # bars of a categorical distribution; the rest are summed into one
GREY, BLUE, GREEN, RED, ORANGE = 8, 0, 2, 4, 6  # palette indices (ArsenaleCharts.PALETTE)
STAT_PREFIX, STAT_SUFFIX = "drift.", ".statistic"
SCORE_PREFIX = "score."  # an LLM monitor's score means


def monitors(request: Request) -> Any:
    """The client's `MonitorService` (over HTTP there is none yet: the service says so, as a 400 page)."""
    return request.app.state.client.monitors


# ---- formatting ------------------------------------------------------------------------------------------


def num(v: float | None, digits: int = 4) -> str:
    if v is None or not isinstance(v, (int, float)):
        return "—"
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return format(v, f".{digits}g")


def pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{100 * v:.{digits}f}%"


def example(v: Any) -> str:
    """A quality issue's example, floats without their binary noise (30.869999999999997 → 30.87)."""
    return num(v, 10) if isinstance(v, float) else str(v)


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


# ---- the time series -------------------------------------------------------------------------------------


def feature_statistics(runs: Sequence[MonitorRun]) -> dict[str, list[float | None]]:
    """`drift.<feature>.statistic` of every run (oldest first) per feature; None where a run lacks it."""
    names: dict[str, None] = {}
    for r in runs:
        for key in r.values:
            if key.startswith(STAT_PREFIX) and key.endswith(STAT_SUFFIX):
                name = key[len(STAT_PREFIX):-len(STAT_SUFFIX)]
                if name:
                    names.setdefault(name, None)
    return {n: [_finite(r.values.get(f"{STAT_PREFIX}{n}{STAT_SUFFIX}")) for r in runs] for n in names}


def top_features(stats: Mapping[str, Sequence[float | None]], k: int = TOP_FEATURES) -> list[str]:
    """The k features with the highest most recent statistic (ties by name). The most recent non-null, not
    the newest run's: an empty newest window tests nothing, and must not reshuffle the chart to arbitrary
    features; a feature never tested is left out."""
    def latest(values: Sequence[float | None]) -> float | None:
        return next((v for v in reversed(values) if v is not None), None)

    tested = {n: v for n in stats if (v := latest(stats[n])) is not None}  # never tested: nothing to draw
    return sorted(tested, key=lambda n: (-tested[n], n))[:k]


def drift_charts(runs: Sequence[MonitorRun], threshold: float) -> dict[str, dict[str, Any]]:
    """The charts' data (`data-timeseries`, see arsenale.js) for `runs` oldest first, one point per window
    end: drift share against the dataset-drift threshold, the top features' statistics, quality issues,
    and accuracy (only when some window had labels; None is a gap). A single window also gets its start,
    without values, so that the time axis spans the window instead of an arbitrary range around one point."""
    lead = [runs[0].window_start / 1000] if len(runs) == 1 else []
    x = lead + [r.window_end / 1000 for r in runs]

    def line(label: str, colour: int, values: list[float | None], dash: bool = False) -> dict[str, Any]:
        return {"label": label, "colour": colour, "dash": dash, "values": [None] * len(lead) + values}

    def values(key: str, scale: float = 1.0) -> list[float | None]:
        out = []
        for r in runs:
            v = _finite(r.values.get(key))
            out.append(None if v is None else round(v * scale, 6))
        return out

    stats = feature_statistics(runs)
    charts: dict[str, dict[str, Any]] = {
        "drift_share": {"x": x, "unit": "%", "kind": "line", "min": 0, "max": 100, "series": [
            line("drift share", BLUE, values("drift_share", 100)),
            line("dataset drift threshold", GREY, [round(threshold * 100, 6)] * len(runs), dash=True)]},
        "features": {"x": x, "unit": "", "kind": "line", "series": [
            line(name, i, [None if v is None else round(v, 6) for v in stats[name]])
            for i, name in enumerate(top_features(stats))]},
        "quality": {"x": x, "unit": "", "kind": "line", "series": [
            line("errors", RED, values("quality.errors")),
            line("warnings", ORANGE, values("quality.warnings"))]},
    }
    accuracy = values("accuracy", 100)
    if any(v is not None for v in accuracy):
        charts["accuracy"] = {"x": x, "unit": "%", "kind": "line", "min": 0, "max": 100,
                              "series": [line("accuracy", GREEN, accuracy)]}
    return charts


def llm_charts(runs: Sequence[MonitorRun]) -> dict[str, dict[str, Any]]:
    """An LLM monitor's charts, like `drift_charts`: traces and error rate, latency percentiles (ms), cost,
    and the mean of each score (only when some window had scores)."""
    lead = [runs[0].window_start / 1000] if len(runs) == 1 else []
    x = lead + [r.window_end / 1000 for r in runs]

    def line(label: str, colour: int, key: str, scale: float = 1.0) -> dict[str, Any]:
        values = []
        for r in runs:
            v = _finite(r.values.get(key))
            values.append(None if v is None else round(v * scale, 6))
        return {"label": label, "colour": colour, "dash": False, "values": [None] * len(lead) + values}

    charts: dict[str, dict[str, Any]] = {
        "traces": {"x": x, "unit": "", "kind": "line", "series": [line("traces", BLUE, "traces"),
                                                                   line("errors", RED, "errors")]},
        "latency": {"x": x, "unit": " ms", "kind": "line", "series": [
            line("p50", GREEN, "latency_p50"), line("p95", ORANGE, "latency_p95"),
            line("p99", RED, "latency_p99")]},
        "cost": {"x": x, "unit": "", "kind": "line", "series": [line("total cost ($)", BLUE, "cost_total")]},
    }
    names = sorted({k for r in runs for k in r.values if k.startswith(SCORE_PREFIX)})
    if names:
        charts["scores"] = {"x": x, "unit": "", "kind": "line", "series": [
            line(n[len(SCORE_PREFIX):], i, n) for i, n in enumerate(names)]}
    return charts


# ---- the newest window's report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureRow:
    name: str
    kind: str
    method: str | None
    method_title: str
    statistic: str
    p_value: str
    threshold: str
    verdict: str  # "drifted", "ok" or "skipped"
    reason: str | None
    counts: str
    notes: list[str]
    colour: int | None  # its line's palette index in the statistic chart, None when not charted
    value: float  # the statistic, for sorting


def feature_rows(drift: Mapping[str, Any], colours: Mapping[str, int]) -> list[FeatureRow]:
    """One row per tested feature of a stored drift report: drifted first, then the highest statistic,
    so what moved most is at the top; skipped features last."""
    rows = []
    for name, col in (drift.get("columns") or {}).items():
        m = stattests.method(col["method"]) if col.get("method") else None
        stat = _finite(col.get("statistic"))
        statistic = num(stat)
        if col.get("approximate") and stat is not None:
            statistic = f"≈{statistic} ± {num(_finite(col.get('error_bound')), 2)}"
        threshold = "—"
        if m is not None and _finite(col.get("threshold")) is not None:
            op = "<" if m.kind == "p_value" else ("≥" if m.inclusive else ">")
            threshold = f"{'p' if m.kind == 'p_value' else 'statistic'} {op} {num(col['threshold'])}"
        verdict = "skipped" if col.get("status") == "skipped" else "drifted" if col.get("drifted") else "ok"
        ref, cur = int(col.get("reference_count") or 0), int(col.get("current_count") or 0)
        rows.append(FeatureRow(
            name=name, kind=str(col.get("kind", "")), method=col.get("method"),
            method_title=m.title if m else "", statistic=statistic,
            p_value=num(_finite(col.get("p_value")), 3), threshold=threshold, verdict=verdict,
            reason=col.get("reason"),
            counts=f"{ref:,} reference / {cur:,} current" if ref or cur else "",
            notes=[str(n) for n in col.get("notes") or []], colour=colours.get(name),
            value=stat if stat is not None else -math.inf))
    rank = {"drifted": 0, "ok": 1, "skipped": 2}
    return sorted(rows, key=lambda r: (rank[r.verdict], -r.value, r.name))


def quality_issues(quality: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issues, errors before warnings, each kept in the report's order within its severity."""
    issues = list(quality.get("issues") or [])
    return sorted(issues, key=lambda i: i.get("severity") != "error")


# ---- distributions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bin:
    label: str
    reference: float | None  # share of that side's values; None when the side has none to show
    current: float | None


@dataclass(frozen=True)
class Distribution:
    feature: str
    kind: str
    bins: list[Bin]
    reference_values: int
    current_values: int
    notes: list[str]
    axis: tuple[str, str] | None = None  # numbers: the labels under the first and the last bar

    @property
    def top(self) -> float:
        """The largest share, which the tallest bar reaches, so that both sides share one scale."""
        return max([s for b in self.bins for s in (b.reference, b.current) if s is not None] or [1.0]) or 1.0


def _shares(counts: Sequence[float], total: float) -> list[float | None]:
    return [c / total if total else None for c in counts]


def _edge(x: float) -> str:
    return format(x, ".4g")


def numeric_bins(edges: Sequence[float], counts: Sequence[int], current: np.ndarray) -> tuple[list[Bin], int]:
    """Reference counts on the contract histogram's bins and current values on the same bins (numpy's, the
    last one closed), plus a bin below its minimum and one above its maximum when current values fall
    there: the grid the drift test used. Returns the bins and the current values placed."""
    lo, hi = edges[0], edges[-1]
    below, above = int((current < lo).sum()), int((current > hi).sum())
    inside = np.histogram(current[(current >= lo) & (current <= hi)], bins=np.asarray(edges, dtype=float))[0]
    labels = [f"[{_edge(a)}, {_edge(b)}{']' if i == len(counts) - 1 else ')'}"
              for i, (a, b) in enumerate(itertools.pairwise(edges))]
    ref = [float(c) for c in counts]
    cur = [float(c) for c in inside]
    if below:
        labels, ref, cur = [f"< {_edge(lo)}", *labels], [0.0, *ref], [float(below), *cur]
    if above:
        labels, ref, cur = [*labels, f"> {_edge(hi)}"], [*ref, 0.0], [*cur, float(above)]
    r, c = _shares(ref, sum(ref)), _shares(cur, len(current))
    return [Bin(label, rs, cs) for label, rs, cs in zip(labels, r, c)], len(current)


def categorical_bins(reference: Mapping[str, int], current: Mapping[str, int],
                     other: str | None) -> list[Bin]:
    """Shares per category: the most common (by the larger of both shares) first, the rest summed. With a
    capped reference (`other` is its catch-all), an unknown current category counts as that catch-all."""
    cur: dict[str, int] = {}
    for k, n in current.items():
        key = other if other is not None and k not in reference else k
        cur[key] = cur.get(key, 0) + n
    r_total, c_total = sum(reference.values()), sum(cur.values())
    share = {k: ((reference.get(k, 0) / r_total) if r_total else None, (cur.get(k, 0) / c_total) if c_total
                 else None) for k in {*reference, *cur}}
    keys = sorted(share, key=lambda k: (-max(s or 0.0 for s in share[k]), k))
    bins = [Bin(k, *share[k]) for k in keys[:TOP_CATEGORIES]]
    rest = keys[TOP_CATEGORIES:]
    if rest:
        def summed(i: int) -> float | None:
            parts = [share[k][i] for k in rest]
            return None if parts[0] is None else sum(p or 0.0 for p in parts)

        bins.append(Bin(f"{len(rest)} others", summed(0), summed(1)))
    return bins


def distribution(feature: str, kind: str, profile: Any, current: Any) -> Distribution:
    """Reference vs current of one feature. `profile` is the contract's FeatureProfile (None when the
    contract has none for it), `current` the window's column (a pandas Series; None when the window lacks
    it). Nulls and non-finite numbers are left out of the shares and counted in the notes."""
    import pandas as pd

    notes: list[str] = []
    series = current if current is not None else pd.Series([], dtype=object)
    nulls = int(series.isna().sum())
    present = series[series.notna()]
    if current is None:
        notes.append("the window has no such column")
    elif nulls:
        notes.append(f"{nulls:,} null current value(s) left out")
    if profile is None:
        notes.append("the contract keeps no reference distribution of this feature")
    if kind == "numeric":
        values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        unreadable = int(np.isnan(values).sum())
        infinite = int(np.isinf(values).sum())
        values = values[np.isfinite(values)]
        if unreadable:
            notes.append(f"{unreadable:,} current value(s) are not numbers")
        if infinite:
            notes.append(f"{infinite:,} infinite current value(s) left out")
        hist = getattr(profile, "histogram", None)
        if hist is None or not sum(hist.counts):
            if profile is not None:
                notes.append("the reference has no histogram of this feature")
            return Distribution(feature, kind, [], 0, len(values), notes)
        bins, placed = numeric_bins(hist.edges, hist.counts, values)
        left = bins[0].label if bins[0].label.startswith("<") else _edge(hist.edges[0])
        right = bins[-1].label if bins[-1].label.startswith(">") else _edge(hist.edges[-1])
        return Distribution(feature, kind, bins, int(sum(hist.counts)), placed, notes, (left, right))
    reference = dict(getattr(profile, "frequencies", None) or {})
    from arsenale.registry.contract import OTHER

    counts = present.astype(str).value_counts()
    current_counts = {str(k): int(v) for k, v in counts.items()}
    bins = categorical_bins(reference, current_counts, OTHER if OTHER in reference else None)
    return Distribution(feature, kind, bins, sum(reference.values()), sum(current_counts.values()), notes)


def read_window(api: Any, monitor: Monitor, run: MonitorRun) -> tuple[Any, str | None]:
    """The logged rows of the run's window, or (None, why not) when the inference log cannot be read here."""
    root = getattr(api, "root", None)
    if root is None:
        return None, "the inference log is not reachable from this server"
    from arsenale.serving.inference_log import read_log

    try:
        return read_log(root, monitor.deployment, since_ms=run.window_start, until_ms=run.window_end,
                        role="route"), None
    except (OSError, ArsenaleError) as exc:  # an unreachable log must not take the monitor's page down
        return None, f"the inference log could not be read: {getattr(exc, 'message', exc)}"


def read_contract(request: Request, run: MonitorRun) -> tuple[Any, str | None]:
    """The contract of the version that answered in the run's window, or (None, why not)."""
    from arsenale.registry.contract import Contract

    if run.model is None or run.version is None:
        return None, "the run does not name the version that answered"
    try:
        mv = request.app.state.client.registry.get_version(run.model, run.version)
    except NotFound:
        return None, f"{run.model} v{run.version} no longer exists"
    return Contract.model_validate(mv.contract or {}), None


def pick_feature(rows: Sequence[FeatureRow], wanted: str) -> str | None:
    """The feature asked for when the newest window tested it; else the one that moved most."""
    names = [r.name for r in rows]
    if wanted in names:
        return wanted
    return next((r.name for r in rows if r.verdict != "skipped"), names[0] if names else None)


def distribution_of(request: Request, monitor: Monitor, run: MonitorRun, rows: Sequence[FeatureRow],
                    feature: str | None) -> Distribution | None:
    if feature is None:
        return None
    kind = next(r.kind for r in rows if r.name == feature)
    contract, why = read_contract(request, run)
    profile = None
    if contract is not None and contract.profile is not None:
        profile = next((f for f in contract.profile.features if f.name == feature), None)
    log, why_not_log = read_window(monitors(request), monitor, run)
    if log is not None and not len(log):
        import pandas as pd

        current, why_not_log = pd.Series([], dtype=float), "the window logged no rows"
    else:
        current = log[feature] if log is not None and feature in log.columns else None
    dist = distribution(feature, kind, profile, current)
    dist.notes[:0] = [reason for reason in (why, why_not_log) if reason]
    return dist


# ---- alerts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertView:
    rule: str
    status: str
    severity: str
    condition: str
    value: float | None
    since: int | None
    until: int | None
    pipeline_run_id: str | None
    pipeline_error: str | None


_MISSING = object()


def _get(item: Any, *names: str) -> Any:
    """The first of `names` that `item` (a model or a dict) has, or None; an enum reads as its value."""
    for name in names:
        value = item.get(name, _MISSING) if isinstance(item, Mapping) else getattr(item, name, _MISSING)
        if value is not _MISSING:
            return getattr(value, "value", value)
    return None


def alert_view(item: Any) -> AlertView:
    """An alert as the page shows it: a stored `Alert` (started_at, threshold…) or an `AlertEvent`
    (starts_at_ms, condition…), as a model or a dict, so the panel does not depend on which one it gets."""
    def text(*names: str) -> str:
        value = _get(item, *names)
        return "" if value is None else str(value)

    return AlertView(rule=text("rule", "name"), status=text("status"), severity=text("severity"),
                     condition=text("threshold", "condition"), value=_finite(_get(item, "value")),
                     since=_get(item, "started_at", "starts_at_ms"),
                     until=_get(item, "resolved_at", "ends_at_ms"),
                     pipeline_run_id=_get(item, "pipeline_run_id"),
                     pipeline_error=_get(item, "pipeline_error"))


@dataclass(frozen=True)
class Alerts:
    available: bool  # the platform has alert rules at all
    items: list[AlertView]
    error: str | None = None

    @property
    def firing(self) -> int:
        return sum(a.status == "firing" for a in self.items)


def read_alerts(api: Any, monitor: str, status: str | None = None) -> Alerts:
    """The monitor's alerts, newest first, when this platform keeps alert rules; a page without them, or
    whose alerts cannot be read, still renders and says so."""
    if not hasattr(api, "alerts"):
        return Alerts(False, [])
    kwargs: dict[str, Any] = {"monitor": monitor, "limit": MAX_ALERTS}
    if status is not None:
        kwargs["status"] = status
    try:
        items = api.alerts.list_alerts(**kwargs)
    except ArsenaleError as exc:
        return Alerts(True, [], exc.message)
    except TypeError as exc:  # an alerts API of another shape than this page knows
        return Alerts(True, [], f"the alerts could not be read: {exc}")
    return Alerts(True, [alert_view(i) for i in items])


# ---- routes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListRow:
    monitor: Monitor
    newest: MonitorRun | None
    alerts: Alerts


router = APIRouter(route_class=DashboardRoute, default_response_class=HTMLResponse, include_in_schema=False)


@router.get("/monitors")
def monitors_page(request: Request) -> Response:
    api = monitors(request)
    rows = []
    for m in api.list():
        try:
            newest = api.runs(m.name, 1)
        except NotFound:  # deleted since the list was read
            continue
        rows.append(ListRow(m, newest[0] if newest else None, read_alerts(api, m.name, "firing")))
    return render(request, "monitors.html", rows=rows, alerts_available=hasattr(api, "alerts"),
                  fmt_window=fmt_window, pct=pct, num=num)


@router.get("/monitors/{name}")
def monitor_page(request: Request, name: str, runs: str = "", feature: str = "") -> Response:
    api = monitors(request)
    monitor = find(api.get, name)
    limit = int_param(runs, "runs", DEFAULT_RUNS, 1, MAX_RUNS)
    latest = api.runs(monitor.name, 1, with_report=True)
    newest = latest[0] if latest else None
    if monitor.kind == "llm":  # traces, not a deployment's traffic: its values over time are the page
        history = list(reversed(api.runs(monitor.name, limit))) if newest is not None else []
        return render(request, "monitor.html", monitor=monitor, newest=newest, charts=llm_charts(history),
                      recent=list(reversed(history))[:RECENT_RUNS], charted=len(history), runs_param=runs,
                      alerts=read_alerts(api, monitor.name), fmt_window=fmt_window, pct=pct, num=num,
                      scores=sorted(k for k in (newest.values if newest else {}) if k.startswith(SCORE_PREFIX)))
    report = (newest.report or {}) if newest is not None else {}
    drift, quality = report.get("drift") or {}, report.get("quality") or {}
    if is_htmx(request):  # a feature picked on the page: its distribution alone
        rows = feature_rows(drift, {})
        chosen = pick_feature(rows, feature)
        dist = distribution_of(request, monitor, newest, rows, chosen) if newest is not None else None
        return render(request, "partials/monitor_distribution.html", monitor=monitor, rows=rows,
                      feature=chosen, dist=dist, runs_param=runs, pct=pct)
    history = list(reversed(api.runs(monitor.name, limit))) if newest is not None else []
    charts = drift_charts(history, monitor.drift_share)
    colours = {s["label"]: s["colour"] for s in charts["features"]["series"]}
    rows = feature_rows(drift, colours)
    chosen = pick_feature(rows, feature)
    dist = distribution_of(request, monitor, newest, rows, chosen) if newest is not None else None
    return render(request, "monitor.html", monitor=monitor, newest=newest, drift=drift, quality=quality,
                  issues=quality_issues(quality), charts=charts, rows=rows, feature=chosen, dist=dist,
                  recent=list(reversed(history))[:RECENT_RUNS], charted=len(history), runs_param=runs,
                  alerts=read_alerts(api, monitor.name), fmt_window=fmt_window, pct=pct, num=num,
                  example=example)


@router.get("/monitors/{name}/report.html")
def report_page(request: Request, name: str) -> Response:
    """The newest window as the self-contained report file, with its distributions drawn from the data."""
    from arsenale.monitoring.drift import DriftReport
    from arsenale.monitoring.quality import QualityReport
    from arsenale.monitoring.report import render_report

    api = monitors(request)
    monitor = find(api.get, name)
    latest = api.runs(monitor.name, 1, with_report=True)
    if not latest or not latest[0].report:
        raise NotFound(f"monitor {monitor.name!r} has no evaluated window yet", field="name")
    run = latest[0]
    stored: dict[str, Any] = run.report or {}
    if "drift" not in stored:
        raise NotFound(f"monitor {monitor.name!r} keeps no drift report (an LLM monitor)", field="name")
    drift = DriftReport.model_validate(stored["drift"])
    quality = QualityReport.model_validate(stored["quality"]) if stored.get("quality") else None
    contract, _ = read_contract(request, run)
    log, _ = read_window(api, monitor, run)
    current = log[[c for c in drift.columns if c in log.columns]] if log is not None and len(log) else None
    reference = contract.profile if contract is not None else None
    html = render_report(drift, quality=quality, reference=reference, current=current,
                         title=f"{monitor.name}: the window ending {fmt_time(run.window_end)} UTC",
                         generated_at_ms=run.timestamp)
    return HTMLResponse(html)


@router.get("/monitoring/{name}")
def alert_link(request: Request, name: str) -> Response:
    """Alert notifications link to /monitoring/<monitor> (their generatorURL): send them to its page."""
    return RedirectResponse(f"{root_of(request)}/monitors/{quote(name, safe='')}", status_code=307)


def install(app: FastAPI) -> None:
    """Add the monitor pages to an app that has the dashboard (`dashboard.install` calls this)."""
    app.include_router(router)
