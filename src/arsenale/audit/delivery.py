"""Delivery metrics: how fast and how safely models reach production, replayed from the audit trail.

    delivery_metrics(client, since="30d", model="fraud")  →  DeliveryReport

The facts all come from audit entries, read in chain order (paged by `after_seq`): `deployment.*`
(every policy revision carries the routes and their weights), `monitor.create`/`monitor.delete` (which
deployment a monitor watches) and `alert.fire`. The registry gives a version's run, tracking the run's
start. Replaying the entries rebuilds each deployment's routes at every change, so the report
describes what production looked like then, not what it looks like now.

Definitions (times in ms since the epoch, durations in seconds):

- **Serving production traffic.** Every deployment is production traffic (Arsenale has no other kind).
  A version *serves production* from the first deployment change after which it is a deployment's
  primary route: the route with the largest share of traffic, the rule monitors use to pick the version
  they compare against. On a tie the version already primary stays primary; among new versions the
  lowest model/version wins. So a deployment created with a version, a split giving it the largest
  share, a canary advanced to its last step (100%) or promoted all count; a canary's early steps, a
  shadow, or one side of an even A/B split that was not primary before do not.
- **Lead time** of a version: from its run's start (`RunInfo.start_time`) to the moment it first served
  production, for versions that first served within the window. Median and 90th percentile (linear
  interpolation between the closest ranks), and the per-version list; a version registered without a
  run (or whose run is gone) is listed with the reason and left out of the statistics.
- **Production change**: an audited `deployment.create`, `deployment.split` or `deployment.canary` (one
  attempt to put something new into production; a canary's advances and its promotion belong to the
  rollout it started). **Deployment frequency**: production changes in the window per day and per week
  (days = the window's length).
- **Rollback**: `deployment.rollback` (a person) or `deployment.canary_rollback` (the canary controller).
  **Rollback rate** = rollbacks / production changes, both counted in the window; it can pass 1 when
  changes made before the window are rolled back inside it.
- **Monitoring coverage**, at the end of the window: production models are the models answering any
  share of a live deployment's traffic; a model is monitored when at least one deployment it answers on
  has a monitor. Share = monitored / production models, with the unmonitored ones named.
- **Alert to promotion**: for each drift alert (`alert.fire` whose rule watches `drift_share`,
  `dataset_drift`, `drifted_columns` or `drift.<column>…`) fired in the window, the alert's model is the
  primary model of its monitor's deployment at that moment; the time runs to the next moment a version
  of that model serves production for the first time (a retrained or fixed version reaching users;
  rolling back to an old version does not count), up to the end of the window.

With `model`, only that model's versions, changes (a change involves a model answering before or after
it), rollbacks, coverage and alerts count; a model the registry does not know is `NotFound`, so a typo
is told apart from a model that was never deployed. A metric without data is None with a `reason`,
never 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from arsenale.audit.models import (
    AlertPromotion,
    AlertToPromotion,
    AuditEntry,
    DeliveryReport,
    DeploymentFrequency,
    LeadTime,
    ModelCoverage,
    MonitoringCoverage,
    RollbackEvent,
    RollbackRate,
    VersionLeadTime,
)
from arsenale.audit.service import AuditAPI
from arsenale.errors import InvalidInput, NotFound
from arsenale.registry.models import check_model_name
from arsenale.registry.service import RegistryAPI
from arsenale.tracking.models import now_ms
from arsenale.tracking.service import TrackingAPI
from arsenale.units import human_duration, parse_duration

__all__ = ["CHANGES", "ROLLBACKS", "MetricsAPI", "MetricsService", "delivery_metrics", "describe_window",
           "is_drift_metric"]

PAGE_SIZE = 10_000
"""Audit entries read per request (the most the server's `GET /audit` returns)."""
CHANGES = ("create", "split", "canary")
ROLLBACKS = ("rollback", "canary_rollback")
_DRIFT = re.compile(r"(drift_share|dataset_drift|drifted_columns|drift\.\S+)")
_DURATION = re.compile(r"\s*\d+(\.\d+)?\s*[a-zA-Z]+\s*")  # a unit is required: "2024" is no duration
DAY_MS = 86_400_000

Version = tuple[str, int]
"""(model, version)"""
Instant = datetime | str | None


class Sources(Protocol):
    """Where the facts come from: a `Client`, local or remote, has all three."""

    audit: AuditAPI
    registry: RegistryAPI
    tracking: TrackingAPI


class MetricsAPI(Protocol):
    def delivery(self, since: Instant = None, until: Instant = None,
                 model: str | None = None) -> DeliveryReport: ...


class MetricsService:
    """Platform metrics over a store's services: what `Client(...).metrics` is for a local store."""

    def __init__(self, audit: AuditAPI, registry: RegistryAPI, tracking: TrackingAPI) -> None:
        self.audit = audit
        self.registry = registry
        self.tracking = tracking

    def delivery(self, since: Instant = None, until: Instant = None,
                 model: str | None = None) -> DeliveryReport:
        """See `delivery_metrics`."""
        return delivery_metrics(self, since=since, until=until, model=model)


# ---- the window --------------------------------------------------------------------------------------


def _instant(value: Instant, field: str, relative_to: int) -> int | None:
    """A datetime, an ISO 8601 time (UTC unless it says otherwise), or a duration before `relative_to`;
    in ms, never before 1970 (the trail cannot start earlier)."""
    ms = _parse_instant(value, field, relative_to)
    if ms is not None and ms < 0:
        raise InvalidInput(f"{field} is before 1970-01-01, where no audit trail can start; got {value!r:.80}",
                           field=field)
    return ms


def _parse_instant(value: Instant, field: str, relative_to: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int((value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp() * 1000)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if _DURATION.fullmatch(text):
            return relative_to - int(parse_duration(text, field=field) * 1000)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return _parse_instant(parsed, field, relative_to)
    raise InvalidInput(f"{field} must be a datetime, an ISO 8601 time like 2024-05-01T00:00:00Z or a duration "
                       f"like 30d, 12h; got {value!r:.80}", field=field)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(sources: Sources, since: Instant, until: Instant, now: int) -> tuple[int, int]:
    """[since, until] in ms. A duration for `until` is before now, for `since` before `until`; `since`
    defaults to the audit trail's first entry, `until` to now."""
    end = _instant(until, "until", now)
    if end is not None and end > now:
        raise InvalidInput(f"until ({_iso(end)}) is in the future; the trail ends now ({_iso(now)})",
                           field="until")
    end = now if end is None else end
    start = _instant(since, "since", end)
    if start is None:
        first = sources.audit.entries(limit=1)
        start = min(first[0].timestamp, end) if first else end
    elif start > now:
        raise InvalidInput(f"since ({_iso(start)}) is in the future", field="since")
    elif start > end:
        raise InvalidInput(f"since ({_iso(start)}) is after until ({_iso(end)})", field="since")
    return start, end


def _check_model(sources: Sources, model: Any) -> str | None:
    if model is None:
        return None
    try:
        name = check_model_name(model)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="model") from None
    try:
        sources.registry.get_model(name)
    except NotFound:
        raise NotFound(f"no registered model named {name!r}", field="model") from None
    return name


# ---- reading the trail ----------------------------------------------------------------------------------


def _read(audit: AuditAPI, page_size: int, **where: str) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    after = 0
    while True:
        page = audit.entries(**where, after_seq=after, limit=page_size)
        out.extend(page)
        if len(page) < page_size:
            return out
        after = page[-1].seq


def _read_trail(audit: AuditAPI, page_size: int) -> list[AuditEntry]:
    """Every entry the metrics need, in chain order."""
    entries = [*_read(audit, page_size, entity_type="deployment"), *_read(audit, page_size, entity_type="monitor"),
               *_read(audit, page_size, action="alert.fire")]
    return sorted(entries, key=lambda e: e.seq)


def _ref(key: Any) -> Version | None:
    """'fraud/3' → ('fraud', 3); None for anything else."""
    if not isinstance(key, str):
        return None
    name, _, number = key.rpartition("/")
    if not name or not number.isdigit():
        return None
    return name, int(number)


def _routes(entry: AuditEntry) -> dict[Version, float] | None:
    """The routes after a deployment change, or None when the entry does not say (an entry made by hand)."""
    if entry.action == "deployment.create":
        ref = _ref(entry.details.get("model"))
        return None if ref is None else {ref: 100.0}
    raw = entry.details.get("routes")
    if not isinstance(raw, dict) or not raw:
        return None
    routes: dict[Version, float] = {}
    for key, weight in raw.items():
        ref = _ref(key)
        if ref is None or isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight):
            return None
        routes[ref] = float(weight)
    return routes


def _primary(routes: dict[Version, float], incumbent: Version | None) -> Version | None:
    top = max(routes.values(), default=0.0)
    if top <= 0:
        return None
    tied = sorted(ref for ref, weight in routes.items() if weight == top)
    return incumbent if incumbent in tied else tied[0]


def is_drift_metric(condition: Any) -> bool:
    """Whether an alert condition ('drift_share > 0.3 for 2 windows') watches a drift metric."""
    if not isinstance(condition, str) or not condition.split():
        return False
    return _DRIFT.fullmatch(condition.split()[0]) is not None


def _key(ref: Version | None) -> str | None:
    return None if ref is None else f"{ref[0]}/{ref[1]}"


@dataclass
class _FirstServing:
    ref: Version
    timestamp: int
    seq: int
    deployment: str
    action: str


@dataclass
class _Fired:
    entry: AuditEntry
    deployment: str | None
    primary: Version | None


@dataclass
class _Replay:
    """Production as the trail describes it, change by change, up to the window's end."""

    since: int
    until: int
    model: str | None
    routes: dict[str, dict[Version, float]]
    primaries: dict[str, Version | None]
    monitors: dict[str, str]  # monitor → deployment
    first: dict[Version, _FirstServing]
    changes: dict[str, int]
    rollbacks: list[RollbackEvent]
    fired: list[_Fired]
    ignored: int = 0

    def involves(self, *route_sets: dict[Version, float] | None) -> bool:
        return self.model is None or any(ref[0] == self.model for routes in route_sets for ref in routes or {})

    def deployment(self, e: AuditEntry) -> None:
        name, action = e.entity_id, e.action.removeprefix("deployment.")
        before = self.routes.get(name)
        if action == "delete":
            self.routes.pop(name, None)
            self.primaries.pop(name, None)
            return
        after = _routes(e)
        if after is None:
            self.ignored += 1
            return
        was = self.primaries.get(name)
        now = _primary(after, was)
        self.routes[name], self.primaries[name] = after, now
        if now is not None and now not in self.first:
            self.first[now] = _FirstServing(now, e.timestamp, e.seq, name, action)
        if not self.since <= e.timestamp <= self.until or not self.involves(before, after):
            return
        if action in CHANGES:
            self.changes[action] = self.changes.get(action, 0) + 1
        elif action in ROLLBACKS:
            why = e.details.get("reason")
            self.rollbacks.append(RollbackEvent(timestamp=e.timestamp, deployment=name, action=action, actor=e.actor,
                                                from_version=_key(was), to_version=_key(now),
                                                why=why if isinstance(why, str) else None))

    def monitor(self, e: AuditEntry) -> None:
        if e.action == "monitor.create":
            deployment = e.details.get("deployment")
            if isinstance(deployment, str):
                self.monitors[e.entity_id] = deployment
            else:
                self.ignored += 1
        elif e.action == "monitor.delete":
            self.monitors.pop(e.entity_id, None)

    def alert(self, e: AuditEntry) -> None:
        if not self.since <= e.timestamp <= self.until or not is_drift_metric(e.details.get("condition")):
            return
        monitor = e.details.get("monitor")
        deployment = self.monitors.get(monitor) if isinstance(monitor, str) else None
        primary = self.primaries.get(deployment) if deployment is not None else None
        if self.model is None or (primary is not None and primary[0] == self.model):
            self.fired.append(_Fired(e, deployment, primary))


def _replay(entries: list[AuditEntry], since: int, until: int, model: str | None) -> _Replay:
    r = _Replay(since, until, model, {}, {}, {}, {}, {}, [], [])
    for e in entries:
        if e.timestamp > until:  # stamped before the lock, so not strictly increasing along the chain
            continue
        if e.entity_type == "deployment" and e.action.startswith("deployment."):
            r.deployment(e)
        elif e.entity_type == "monitor":
            r.monitor(e)
        elif e.action == "alert.fire":
            r.alert(e)
    return r


# ---- the five metrics -----------------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted `values`, interpolating linearly between the closest ranks."""
    pos = (len(values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _seconds(ms: int) -> float:
    return ms / 1000.0


def _in(r: _Replay, what: str) -> str:
    scope = f" of model {r.model!r}" if r.model else ""
    return f"no {what}{scope} between {_iso(r.since)} and {_iso(r.until)}"


def _lead_time(sources: Sources, r: _Replay) -> LeadTime:
    starts: dict[str, int | None] = {}
    rows = []
    for f in sorted(r.first.values(), key=lambda f: f.seq):
        if not r.since <= f.timestamp <= r.until or (r.model is not None and f.ref[0] != r.model):
            continue
        run_id, start, why = None, None, None
        try:
            run_id = sources.registry.get_version(*f.ref).run_id
        except NotFound:
            why = "the version is no longer in the registry"
        if run_id is None and why is None:
            why = "registered without a run"
        if run_id is not None:
            if run_id not in starts:
                try:
                    starts[run_id] = sources.tracking.get_run(run_id).info.start_time
                except (NotFound, InvalidInput):
                    starts[run_id] = None
            start = starts[run_id]
            if start is None:
                why = f"run {run_id} is no longer in the tracking store"
            elif start > f.timestamp:
                why = "the run's recorded start is later than the version's first production traffic"
        lead = _seconds(f.timestamp - start) if start is not None and why is None else None
        rows.append(VersionLeadTime(model=f.ref[0], version=f.ref[1], run_id=run_id, run_start=start,
                                    serving_since=f.timestamp, deployment=f.deployment, action=f.action,
                                    lead_time_s=lead, reason=why))
    values = sorted(v.lead_time_s for v in rows if v.lead_time_s is not None)
    if not values:
        reason = _in(r, "version started serving production") if not rows else \
            "no version that started serving production has a run with a start time"
        return LeadTime(median_s=None, p90_s=None, count=0, reason=reason, versions=rows)
    return LeadTime(median_s=_quantile(values, 0.5), p90_s=_quantile(values, 0.9), count=len(values),
                    versions=rows)


def _frequency(r: _Replay) -> DeploymentFrequency:
    n = sum(r.changes.values())
    days = (r.until - r.since) / DAY_MS
    by_action = {a: r.changes[a] for a in CHANGES if a in r.changes}
    if r.until <= r.since:
        return DeploymentFrequency(changes=n, days=days, per_day=None, per_week=None, by_action=by_action,
                                   reason="the window is empty (since equals until)")
    if n == 0:
        return DeploymentFrequency(changes=0, days=days, per_day=None, per_week=None, by_action=by_action,
                                   reason=_in(r, "production changes"))
    return DeploymentFrequency(changes=n, days=days, per_day=n / days, per_week=7 * n / days, by_action=by_action)


def _rollback_rate(r: _Replay) -> RollbackRate:
    changes = sum(r.changes.values())
    if changes == 0:
        return RollbackRate(rollbacks=len(r.rollbacks), changes=0, rate=None, events=r.rollbacks,
                            reason=_in(r, "production changes") + " to divide by")
    return RollbackRate(rollbacks=len(r.rollbacks), changes=changes, rate=len(r.rollbacks) / changes,
                        events=r.rollbacks)


def _coverage(r: _Replay) -> MonitoringCoverage:
    answering: dict[str, list[str]] = {}
    for deployment, routes in sorted(r.routes.items()):
        for model in sorted({ref[0] for ref, weight in routes.items() if weight > 0}):
            if r.model is None or model == r.model:
                answering.setdefault(model, []).append(deployment)
    rows = []
    for model, deployments in sorted(answering.items()):
        monitors = sorted(m for m, d in r.monitors.items() if d in deployments)
        rows.append(ModelCoverage(model=model, deployments=deployments, monitors=monitors, monitored=bool(monitors)))
    unmonitored = [c.model for c in rows if not c.monitored]
    if not rows:
        who = f"model {r.model!r}" if r.model else "no model"
        reason = f"{who} answered {'no' if r.model else 'any'} deployment's traffic at {_iso(r.until)}"
        return MonitoringCoverage(production_models=0, monitored=0, share=None, unmonitored=[], models=[],
                                  reason=reason)
    monitored = len(rows) - len(unmonitored)
    return MonitoringCoverage(production_models=len(rows), monitored=monitored, share=monitored / len(rows),
                              unmonitored=unmonitored, models=rows)


def _alert_to_promotion(r: _Replay) -> AlertToPromotion:
    served = sorted(r.first.values(), key=lambda f: f.seq)
    items = []
    for a in r.fired:
        e = a.entry
        base: dict[str, Any] = {"alert_id": e.entity_id, "fired_at": e.timestamp,
                                "monitor": e.details.get("monitor") if isinstance(e.details.get("monitor"), str)
                                else None,
                                "condition": str(e.details.get("condition")), "deployment": a.deployment,
                                "model": a.primary[0] if a.primary else None}
        if a.primary is None:
            why = "the alert's monitor or its deployment is not in the trail" if a.deployment is None else \
                f"deployment {a.deployment!r} had no primary route when the alert fired"
            items.append(AlertPromotion(**base, promoted_version=None, promoted_at=None,
                                        time_to_promotion_s=None, reason=why))
            continue
        nxt = next((f for f in served if f.seq > e.seq and f.ref[0] == a.primary[0]), None)
        if nxt is None:
            items.append(AlertPromotion(**base, promoted_version=None, promoted_at=None, time_to_promotion_s=None,
                                        reason=f"no new version of {a.primary[0]!r} served production by "
                                               f"{_iso(r.until)}"))
            continue
        items.append(AlertPromotion(**base, promoted_version=nxt.ref[1], promoted_at=nxt.timestamp,
                                    time_to_promotion_s=_seconds(max(0, nxt.timestamp - e.timestamp))))
    values = sorted(i.time_to_promotion_s for i in items if i.time_to_promotion_s is not None)
    if not values:
        reason = _in(r, "drift alerts fired") if not items else \
            "no drift alert was followed by a new version serving production"
        return AlertToPromotion(alerts=len(items), promoted=0, median_s=None, reason=reason, items=items)
    return AlertToPromotion(alerts=len(items), promoted=len(values), median_s=_quantile(values, 0.5), items=items)


def delivery_metrics(sources: Sources, *, since: Instant = None, until: Instant = None, model: str | None = None,
                     page_size: int = PAGE_SIZE) -> DeliveryReport:
    """The five delivery metrics over [since, until] (the definitions are in this module's docstring).

    `since` and `until` are datetimes (naive ones are UTC), ISO 8601 times or durations ("30d": 30 days
    before `until`; for `until`, before now). `since` defaults to the trail's first entry, `until` to now;
    either in the future, or `since` after `until`, is `InvalidInput`. `sources` is a `Client` (or anything
    with its `audit`, `registry` and `tracking`); the trail is read in pages of `page_size` entries."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= PAGE_SIZE:
        raise InvalidInput(f"page_size must be an integer in 1..{PAGE_SIZE}, got {page_size!r:.40}",
                           field="page_size")
    name = _check_model(sources, model)
    start, end = _window(sources, since, until, now_ms())
    entries = _read_trail(sources.audit, page_size)
    r = _replay(entries, start, end, name)
    return DeliveryReport(since=start, until=end, model=name, entries_read=len(entries), ignored_entries=r.ignored,
                          lead_time=_lead_time(sources, r), deployment_frequency=_frequency(r),
                          rollback_rate=_rollback_rate(r), monitoring=_coverage(r),
                          alert_to_promotion=_alert_to_promotion(r))


def describe_window(report: DeliveryReport) -> str:
    """'2024-05-01T00:00:00Z – 2024-05-31T00:00:00Z (30d)', for headings."""
    return f"{_iso(report.since)} – {_iso(report.until)} ({human_duration((report.until - report.since) / 1000)})"

