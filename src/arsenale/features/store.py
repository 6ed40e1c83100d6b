"""`FeatureStore`: one set of definitions, served identically to training (offline) and to inference (online).

    fs = ars.FeatureStore()
    fs.apply([customer, txn_stats, amount_ratio])
    train = fs.get_historical_features(entity_df, ["txn_stats:amount_7d", "amount_ratio"])
    fs.materialize(end="now")
    fs.get_online_features(["txn_stats:amount_7d"], [{"customer_id": 42}])

Training/serving consistency is by construction: materialization *is* a point-in-time retrieval, for the
entities whose values changed, as of the materialization's end time; the online store keeps the latest row
per entity. So an online read right after `materialize(end=t)` equals `get_historical_features` at t.
Over HTTP (`Client("http://…")`) definitions live on the server, and materialization and online reads run
there too (the online store is the server's); historical retrieval runs here, reading the sources through
the client.
"""

from __future__ import annotations

import builtins
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from arsenale.errors import InvalidInput, NotFound
from arsenale.features.definitions import (
    Definition,
    FeatureRef,
    FeatureService,
    FeatureView,
    OnDemandFeature,
    parse_feature_ref,
)
from arsenale.features.models import DefinitionInfo, Materialization

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from arsenale.features.online import OnlineStore
    from arsenale.platform import Client

__all__ = ["FeatureStore", "RetrievalPlan", "online_table"]

ENTITY_TS = "event_timestamp"
PLAN_TTL_S = 5.0  # how long a resolved feature list is reused before definitions are read again
MAX_ONLINE_ROWS = 10_000
# On-demand features applied in this process keep their function object, which may live in a script's
# __main__; one loaded from the store is imported by name instead.
_APPLIED: dict[tuple[str, int], OnDemandFeature] = {}


def online_table(view: str, version: int) -> str:
    return f"{view}@{version}"


@dataclass
class _ViewPart:
    view: FeatureView
    version: int
    features: builtins.list[str] = field(default_factory=list)
    outputs: builtins.list[str] = field(default_factory=list)
    hidden: builtins.list[bool] = field(default_factory=list)  # fetched only as an on-demand feature's input


@dataclass
class RetrievalPlan:
    """A feature list resolved to view versions and on-demand features, with the output column names."""

    views: dict[str, _ViewPart]
    on_demand: builtins.list[tuple[OnDemandFeature, int]]
    columns: builtins.list[str]  # the requested features' output names, in request order
    refs: builtins.list[str]  # "view@version:feature" / "name@version" of everything requested, for lineage
    created: float = field(default_factory=time.monotonic)


def _to_datetime(value: Any, *, field: str) -> datetime:
    if isinstance(value, str) and value.strip().lower() == "now":
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if hasattr(value, "to_pydatetime"):
        return _to_datetime(value.to_pydatetime(), field=field)
    raise InvalidInput(f"{field} must be 'now', a datetime or an ISO 8601 time; got {value!r}", field=field)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class FeatureStore:
    """The feature store of one platform client (`ars.Client()` by default) and one online store
    (`online=` or ARSENALE_ONLINE_STORE; the embedded default is `<home>/online.db`)."""

    def __init__(self, client: Client | None = None, *, online: str | None = None,
                 memory_limit: str | None = None) -> None:
        from arsenale.config import get_settings

        if client is None:
            from arsenale.tracking.fluent import get_client

            client = get_client()
        self.client = client
        self.registry = client.features
        self.remote = client.uri.startswith(("http://", "https://"))
        settings = get_settings()
        self.online_uri = online or settings.online_store or f"sqlite:///{settings.resolved_home() / 'online.db'}"
        self.memory_limit = memory_limit
        self._online: OnlineStore | None = None
        self._plans: dict[tuple[str, ...], RetrievalPlan] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeatureStore({self.client!r}, online={self.online_uri!r})"

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            from arsenale.features.online import open_online_store

            self._online = open_online_store(self.online_uri)
        return self._online

    def forget_plans(self) -> None:
        """Resolve feature lists afresh on next use (after definitions changed elsewhere)."""
        with self._lock:
            self._plans.clear()

    def close(self) -> None:
        if self._online is not None:
            self._online.close()
            self._online = None

    # ---- definitions -------------------------------------------------------------------

    def apply(self, definitions: Iterable[Definition] | Definition) -> builtins.list[DefinitionInfo]:
        """Store the definitions (a new version for each changed one) in one transaction."""
        if hasattr(definitions, "kind"):  # one definition rather than a list of them
            definitions = [definitions]  # type: ignore[list-item]
        objs = list(definitions)  # type: ignore[arg-type]
        infos = self.registry.apply(objs)
        self.forget_plans()
        local = {o.name: o for o in objs if isinstance(o, OnDemandFeature)}
        _APPLIED.update({(i.name, i.version): local[i.name] for i in infos if i.kind == "on_demand"
                         and i.name in local})
        return infos

    def list(self, kind: str | None = None) -> builtins.list[DefinitionInfo]:
        return self.registry.list(kind)

    def get_view(self, name: str, version: int | None = None) -> FeatureView:
        view = self.registry.definition("view", name, version)
        assert isinstance(view, FeatureView)
        return view

    def _view_version(self, name: str, version: int | None) -> tuple[FeatureView, int]:
        info = self.registry.get("view", name, version)
        view = info.definition()
        assert isinstance(view, FeatureView)
        return view, info.version

    def _on_demand(self, name: str) -> tuple[OnDemandFeature, int]:
        info = self.registry.get("on_demand", name)
        odf = _APPLIED.get((name, info.version))
        if odf is None:
            odf = info.definition()  # type: ignore[assignment]
        assert isinstance(odf, OnDemandFeature)
        return odf, info.version

    # ---- resolution --------------------------------------------------------------------

    def _features(self, features: Any) -> builtins.list[str]:
        if isinstance(features, FeatureService):
            return list(features.features)
        if isinstance(features, str):
            if ":" in features or "." in features:
                return [features]
            try:  # a feature service's name
                service = self.registry.definition("service", features)
            except NotFound:
                return [features]
            assert isinstance(service, FeatureService)
            return list(service.features)
        if not isinstance(features, Sequence) or not features:
            raise InvalidInput("features must be a non-empty list of 'view:feature' references or a feature "
                               "service", field="features")
        if len(features) > 10_000:
            raise InvalidInput("at most 10000 features per request", field="features")
        return list(features)

    def plan(self, features: Any, *, full_feature_names: bool = False) -> RetrievalPlan:
        """Resolve a feature list (or a service) to view versions; reused for a few seconds."""
        names = self._features(features)
        key = (*names, f"full={full_feature_names}")
        with self._lock:
            cached = self._plans.get(key)
        if cached is not None and time.monotonic() - cached.created < PLAN_TTL_S:
            return cached
        refs = [parse_feature_ref(n) for n in names]
        parts: dict[str, _ViewPart] = {}
        on_demand: builtins.list[tuple[OnDemandFeature, int]] = []
        columns: builtins.list[str] = []
        lineage: builtins.list[str] = []

        def part_for(ref: FeatureRef) -> _ViewPart:
            assert ref.view is not None
            view, version = self._view_version(ref.view, ref.version)
            key_ = online_table(ref.view, version)
            if key_ not in parts:
                parts[key_] = _ViewPart(view, version)
            return parts[key_]

        def add(ref: FeatureRef, hidden: bool) -> str:
            part = part_for(ref)
            part.view.feature(ref.feature)  # NotFound-like InvalidInput for an unknown feature
            out = f"{ref.view}__{ref.feature}" if full_feature_names else ref.feature
            if ref.feature in part.features:
                i = part.features.index(ref.feature)
                part.hidden[i] = part.hidden[i] and hidden
                return part.outputs[i]
            part.features.append(ref.feature)
            part.outputs.append(out if not hidden else f"__in__{ref.view}__{ref.feature}")
            part.hidden.append(hidden)
            return part.outputs[-1]

        for ref in refs:
            if ref.view is None:
                odf, version = self._on_demand(ref.feature)
                for inp in odf.input_refs():
                    if inp.view is not None:
                        add(inp, hidden=True)
                on_demand.append((odf, version))
                columns.append(odf.name)
                lineage.append(f"{odf.name}@{version}")
            else:
                out = add(ref, hidden=False)
                columns.append(out)
                lineage.append(f"{ref.view}@{part_for(ref).version}:{ref.feature}")
        # A feature asked for by name after being fetched as a hidden input gets its public name back.
        for part in parts.values():
            for i, hidden in enumerate(part.hidden):
                if not hidden and part.outputs[i].startswith("__in__"):
                    part.outputs[i] = (f"{part.view.name}__{part.features[i]}" if full_feature_names
                                       else part.features[i])
        if len(set(columns)) != len(columns):
            dup = sorted({c for c in columns if columns.count(c) > 1})
            raise InvalidInput(f"two requested features share the name {dup}; ask for full_feature_names=True "
                               "(columns named view__feature)", field="features")
        result = RetrievalPlan(parts, on_demand, columns, lineage)
        with self._lock:
            self._plans[key] = result
        return result

    # ---- offline -----------------------------------------------------------------------

    def _source(self, view: FeatureView, read: dict[str, Any] | None = None) -> tuple[Any, str]:
        """The view's events (an Arrow table or a Parquet path) and how lineage names them. Views over one
        dataset version share one read through `read` (and retrieval then merges their queries)."""
        src = view.source
        if src.dataset is not None:
            dv = self.client.datasets.get(src.dataset, src.version)
            label = f"dataset:{dv.name}@{dv.version}"
            table = read.get(label) if read is not None else None
            if table is None:
                table = self.client.datasets.read(dv.name, dv.version)
                if read is not None:
                    read[label] = table
            missing = [c for c in view.source_columns if c not in table.column_names]
            if missing:
                raise InvalidInput(f"feature view {view.name!r}: dataset {dv.name}@{dv.version} has no column "
                                   f"{', '.join(missing)}", field="source")
            return table, label
        assert src.path is not None
        from pathlib import Path

        if not Path(src.path).exists():
            raise NotFound(f"feature view {view.name!r}: source {src.path} does not exist", field="source")
        return src.path, src.path

    def get_historical_features(self, entity_df: Any, features: Any, *, timestamp_column: str = ENTITY_TS,
                                full_feature_names: bool = False) -> pd.DataFrame:
        """Every entity row, in order, with each feature's value as of the row's timestamp (point in time
        correct; TTL respected; null where nothing is known). Inside an active run, the run records the
        feature versions and the source datasets it trained on."""
        from arsenale.features.offline import ViewRequest, retrieve

        plan = self.plan(features, full_feature_names=full_feature_names)
        requests, sources, read = [], [], {}  # type: ignore[var-annotated]
        for part in plan.views.values():
            source, label = self._source(part.view, read)
            sources.append((part, label))
            requests.append(ViewRequest(view=part.view, source=source, features=tuple(part.features),
                                        output_names=tuple(part.outputs)))
        frame = retrieve(entity_df, requests, [odf for odf, _ in plan.on_demand],
                         timestamp_column=timestamp_column, memory_limit=self.memory_limit)
        hidden = [o for p in plan.views.values() for o, h in zip(p.outputs, p.hidden) if h]
        if hidden:
            frame = frame.drop(columns=hidden)
        frame.attrs["arsenale.features"] = plan.refs
        frame.attrs["arsenale.sources"] = [label for _, label in sources]
        self._record_lineage(plan, sources)
        return frame

    def _record_lineage(self, plan: RetrievalPlan, sources: builtins.list[tuple[_ViewPart, str]]) -> None:
        from arsenale.tracking.fluent import active_run

        run = active_run()
        if run is None:
            return
        run.set_tags({"ars.features": json.dumps(plan.refs)[:8000]})
        if getattr(run, "_client", None) is not None and run._client.uri != self.client.uri:
            return  # the run lives in another store, which does not know these datasets
        for _, label in sources:
            if label.startswith("dataset:"):
                name, _, version = label[len("dataset:"):].rpartition("@")
                self.client.datasets.record_input(run.run_id, name, int(version))

    # ---- materialization ---------------------------------------------------------------

    def materialize(self, end: Any = "now", *, start: Any = None, views: Sequence[str] | None = None,
                    entities: Any = None) -> builtins.list[Materialization]:
        """Bring the online store up to `end`: for each view (the newest version of each, or `views`), the
        entities with events since its watermark (or since `start`) get their values as of `end`.
        Incremental and idempotent: a run that stops halfway leaves whole rows and the old watermark, and the
        next run redoes the rest. `entities` (a DataFrame or list of dicts of join keys) limits it to those."""
        end_dt = _to_datetime(end, field="end")
        start_dt = None if start is None else _to_datetime(start, field="start")
        if start_dt is not None and start_dt >= end_dt:
            raise InvalidInput("start must be before end", field="start")
        if self.remote:
            return self.registry.materialize(end=end_dt.isoformat(), start=None if start_dt is None else
                                             start_dt.isoformat(), views=views, entities=entities)
        if views is not None and (isinstance(views, str) or not isinstance(views, Sequence)):
            raise InvalidInput("views must be a list of feature view names", field="views")
        infos = [self.registry.get("view", v) for v in views] if views else self.registry.list("view")
        return [self._materialize_view(info, start_dt, end_dt, entities) for info in infos]

    def _materialize_view(self, info: DefinitionInfo, start: datetime | None, end: datetime, entities: Any
                          ) -> Materialization:
        from arsenale.features.offline import as_of

        view = info.definition()
        assert isinstance(view, FeatureView)
        table = online_table(view.name, info.version)
        lo = start if start is not None else self.online.watermark(table)
        source, label = self._source(view)
        mat_id = self.registry.start_materialization(view.name, info.version, self.online.uri,
                                                     None if lo is None else _ms(lo), _ms(end), label)
        rows = 0
        try:
            if lo is None or lo < end:  # else: already materialized this far, nothing can have changed
                subset = None if entities is None else _entity_table(entities)
                frame = as_of(view, source, end, since=lo, entities=subset, memory_limit=self.memory_limit)
                rows = self.online.write(table, list(view.join_keys), frame, columns=view.feature_names,
                                         watermark=end)
        except Exception as exc:
            self.registry.finish_materialization(mat_id, rows=rows, error=f"{type(exc).__name__}: {exc}"[:4000])
            raise
        return self.registry.finish_materialization(mat_id, rows=rows)

    # ---- online ------------------------------------------------------------------------

    def get_online_features(self, features: Any, entity_rows: Sequence[Mapping[str, Any]], *,
                            full_feature_names: bool = False) -> dict[str, builtins.list[Any]]:
        """The latest materialized values for each entity row, columnar: the rows' own columns, then one
        list per feature. Plain features older than their view's TTL read as null; on-demand features run
        on the request's columns and the fetched values."""
        rows = _check_rows(entity_rows)
        if self.remote:
            return self.registry.online(features, rows, full_feature_names=full_feature_names)
        plan = self.plan(features, full_feature_names=full_feature_names)
        out: dict[str, builtins.list[Any]] = {}
        for name in rows[0]:
            out[name] = [r.get(name) for r in rows]
        now = time.time()
        for part in plan.views.values():
            keys = list(part.view.join_keys)
            try:
                entity_keys = [tuple(r[k] for k in keys) for r in rows]
            except KeyError as exc:
                raise InvalidInput(f"every entity row needs {keys} for feature view {part.view.name!r}; one lacks "
                                   f"{exc.args[0]!r}", field="entity_rows") from None
            found = self.online.read(online_table(part.view.name, part.version), keys, entity_keys,
                                     columns=part.features)
            ttl = part.view.ttl_seconds
            # Plain features older than the TTL read as null; an unknown entity's counts read 0.
            stale = [ttl is not None and vals is not None and ts is not None and now - ts.timestamp() > ttl
                     for ts, vals in found]
            for feature, output in zip(part.features, part.outputs):
                aggregation = part.view.feature(feature).aggregation
                absent = 0 if aggregation is not None and aggregation.function == "count" else None
                expire = aggregation is None
                out[output] = [absent if vals is None else (None if expire and old else vals.get(feature))
                               for (_, vals), old in zip(found, stale)]
        if plan.on_demand:
            _run_on_demand(plan, out, len(rows))
        hidden = {o for p in plan.views.values() for o, h in zip(p.outputs, p.hidden) if h}
        return {k: v for k, v in out.items() if k not in hidden}

    def serving_skew(self, deployment: str, *, since_ms: int | None = None, until_ms: int | None = None,
                     tolerance: float = 1e-9) -> Any:
        """What `deployment` served against the offline values at each request's time (a `SkewReport`)."""
        from arsenale.features.skew import serving_skew

        return serving_skew(self, deployment, since_ms=since_ms, until_ms=until_ms, tolerance=tolerance)

    def freshness(self) -> builtins.list[dict[str, Any]]:
        """Per view (newest version): the online watermark, its age in seconds, and the last materialization."""
        if self.remote:
            return self.registry.freshness()  # type: ignore[no-any-return]
        out = []
        for info in self.registry.list("view"):
            last = self.registry.last_materialization(info.name, info.version, self.online.uri)
            wm = self.online.watermark(online_table(info.name, info.version))
            out.append({"view": info.name, "version": info.version,
                        "watermark": None if wm is None else wm.isoformat(),
                        "age_seconds": None if wm is None else max(0.0, time.time() - wm.timestamp()),
                        "last_materialization": None if last is None else last.model_dump()})
        return out


def _check_rows(entity_rows: Any) -> builtins.list[dict[str, Any]]:
    if isinstance(entity_rows, Mapping) or isinstance(entity_rows, (str, bytes)) \
            or not isinstance(entity_rows, Sequence):
        raise InvalidInput("entity_rows must be a list of dicts, e.g. [{'customer_id': 42}]", field="entity_rows")
    if not entity_rows or len(entity_rows) > MAX_ONLINE_ROWS:
        raise InvalidInput(f"entity_rows must hold 1 to {MAX_ONLINE_ROWS} rows", field="entity_rows")
    rows = []
    for r in entity_rows:
        if not isinstance(r, Mapping) or not r:
            raise InvalidInput("each entity row must be a non-empty dict of join keys (and request columns)",
                               field="entity_rows")
        rows.append(dict(r))
    first = list(rows[0])
    if any(list(r) != first for r in rows[1:]) and any(set(r) != set(first) for r in rows[1:]):
        raise InvalidInput("every entity row must have the same keys", field="entity_rows")
    return rows


def _run_on_demand(plan: RetrievalPlan, out: dict[str, builtins.list[Any]], n: int) -> None:
    import pandas as pd

    for odf, _ in plan.on_demand:
        inputs = {}
        for ref in odf.input_refs():
            if ref.view is None:
                if ref.feature not in out:
                    raise InvalidInput(f"on-demand feature {odf.name!r} needs request column {ref.feature!r} in "
                                       "every entity row", field="entity_rows")
                inputs[ref.feature] = out[ref.feature]
            else:
                part = next(p for p in plan.views.values() if p.view.name == ref.view)
                inputs[ref.feature] = out[part.outputs[part.features.index(ref.feature)]]
        result = odf(pd.DataFrame(inputs))
        values = list(result) if not hasattr(result, "tolist") else result.tolist()
        if len(values) != n:
            raise InvalidInput(f"on-demand feature {odf.name!r} returned {len(values)} values for {n} rows",
                               field="features")
        out[odf.name] = [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def _entity_table(entities: Any) -> pa.Table:
    """The entity subset of a materialization (a DataFrame, an Arrow table or a list of dicts of keys)."""
    import pyarrow as pa

    if isinstance(entities, pa.Table):
        return entities
    if hasattr(entities, "columns") and hasattr(entities, "to_dict"):  # a DataFrame
        return pa.Table.from_pandas(entities, preserve_index=False)
    if isinstance(entities, Sequence) and not isinstance(entities, (str, bytes)) and entities \
            and all(isinstance(e, Mapping) for e in entities):
        try:
            return pa.Table.from_pylist([dict(e) for e in entities])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"entities: {exc}", field="entities") from None
    raise InvalidInput("entities must be a DataFrame or a non-empty list of dicts of join keys", field="entities")
