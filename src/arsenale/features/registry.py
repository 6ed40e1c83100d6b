"""Where feature definitions live: versioned by fingerprint, applied atomically, audited.

`apply` takes a whole set (entities, views, on-demand features, services) and writes it in one transaction
after checking that every reference resolves — a view's entities, an on-demand feature's view inputs, a
service's features — against the set itself and what is already stored. Re-applying an unchanged
definition returns its existing version, so `apply` is idempotent and cheap to run on every deploy.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.features.definitions import (
    Definition,
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeature,
    fingerprint,
    from_spec,
)
from arsenale.features.models import KINDS, DefinitionInfo, Materialization
from arsenale.store import features as sql
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.store.db import read, write
from arsenale.tracking.models import now_ms

__all__ = ["FeatureRegistry", "as_definition"]

MAX_APPLY = 1000
_KIND_WORD = {"entity": "entity", "view": "feature view", "on_demand": "on-demand feature",
              "service": "feature service"}


def as_definition(obj: Any) -> Definition:
    """A definition object, or its JSON form `{"kind": ..., **spec}` as the REST API receives it."""
    if isinstance(obj, (Entity, FeatureView, OnDemandFeature, FeatureService)):
        return obj
    if isinstance(obj, Mapping) and isinstance(obj.get("kind"), str):
        try:
            return from_spec(obj["kind"], obj)
        except ValueError as exc:  # pydantic's ValidationError
            raise InvalidInput(f"bad {obj['kind']} definition: {exc}", field="definitions") from None
    raise InvalidInput(f"cannot apply {type(obj).__name__}: expected Entity, FeatureView, OnDemandFeature or "
                       "FeatureService", field="definitions")


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}; got {kind!r}", field="kind")
    return str(kind)


def _info(row: Any, created: bool = False) -> DefinitionInfo:
    return DefinitionInfo(kind=row.kind, name=row.name, version=row.version, fingerprint=row.fingerprint,
                          spec=json.loads(row.spec), creation_time=row.creation_time, created_by=row.created_by,
                          created=created)


def _materialization(row: Any) -> Materialization:
    return Materialization(**row._mapping)


class FeatureRegistry:
    """The definitions of the feature store (`Client().features`)."""

    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor

    def __repr__(self) -> str:
        return f"FeatureRegistry({self.engine.url.render_as_string(hide_password=True)!r})"

    # ---- definitions -------------------------------------------------------------------

    def apply(self, definitions: Iterable[Any]) -> builtins.list[DefinitionInfo]:
        if isinstance(definitions, (str, bytes, Mapping)) or not isinstance(definitions, Iterable):
            raise InvalidInput("apply takes a list of definitions", field="definitions")
        objs = [as_definition(d) for d in definitions]
        if not objs or len(objs) > MAX_APPLY:
            raise InvalidInput(f"apply takes 1 to {MAX_APPLY} definitions", field="definitions")
        seen: set[tuple[str, str]] = set()
        for obj in objs:
            if (obj.kind, obj.name) in seen:
                raise InvalidInput(f"{_KIND_WORD[obj.kind]} {obj.name!r} appears twice", field="definitions")
            seen.add((obj.kind, obj.name))
        for attempt in range(5):
            try:
                return self._apply(objs)
            except SqlIntegrityError:  # another process took the same version number: count again
                if attempt == 4:
                    raise Conflict("feature definitions are being applied concurrently; try again",
                                   field="definitions") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply(self, objs: builtins.list[Definition]) -> builtins.list[DefinitionInfo]:
        out: builtins.list[DefinitionInfo] = []
        now = now_ms()
        with write(self.engine) as conn:
            batch: dict[tuple[str, str], Definition] = {(o.kind, o.name): o for o in objs}
            for obj in objs:
                self._check_references(conn, obj, batch)
            for obj in objs:
                fp = fingerprint(obj)
                existing = sql.find_fingerprint(conn, obj.kind, obj.name, fp)
                if existing is not None:
                    out.append(_info(existing))
                    continue
                version = sql.next_version(conn, obj.kind, obj.name)
                spec = obj.model_dump(mode="json")
                sql.insert_definition(conn, kind=obj.kind, name=obj.name, version=version, fingerprint=fp,
                                      spec=json.dumps(spec, sort_keys=True), creation_time=now,
                                      created_by=self.actor)
                audit_append(conn, AuditRecord(self.actor, f"features.{obj.kind}.apply", f"feature_{obj.kind}",
                                               f"{obj.name}@{version}", {"fingerprint": fp,
                                                                          "definition": obj.definition()}), now)
                row = sql.get_definition(conn, obj.kind, obj.name, version)
                out.append(_info(row, created=True))
        return out

    def _check_references(self, conn: Connection, obj: Definition, batch: Mapping[tuple[str, str], Definition]
                          ) -> None:
        def lookup(kind: str, name: str, version: int | None = None) -> Definition | None:
            if version is None and (kind, name) in batch:
                return batch[(kind, name)]
            row = sql.get_definition(conn, kind, name, version)
            return None if row is None else from_spec(kind, json.loads(row.spec))

        if isinstance(obj, FeatureView):
            keys: builtins.list[str] = []
            for entity_name in obj.entities:
                entity = lookup("entity", entity_name)
                if entity is None:
                    raise NotFound(f"feature view {obj.name!r} uses entity {entity_name!r}, which is neither "
                                   "applied nor in this set", field="entities")
                assert isinstance(entity, Entity)
                keys.extend(k for k in entity.join_keys if k not in keys)
            if tuple(keys) != obj.join_keys:
                raise InvalidInput(f"feature view {obj.name!r} joins on {list(obj.join_keys)} but its entities' "
                                   f"join keys are {keys}", field="join_keys")
        elif isinstance(obj, OnDemandFeature):
            for ref in obj.input_refs():
                if ref.view is not None:
                    self._feature_of(lookup, ref.view, ref.version, ref.feature, f"on-demand feature {obj.name!r}")
        elif isinstance(obj, FeatureService):
            for ref in obj.refs():
                if ref.view is None:
                    if lookup("on_demand", ref.feature) is None:
                        raise NotFound(f"feature service {obj.name!r} lists {ref.feature!r}: no on-demand feature "
                                       "of that name (write 'view:feature' for a view's feature)",
                                       field="features")
                else:
                    self._feature_of(lookup, ref.view, ref.version, ref.feature, f"feature service {obj.name!r}")

    @staticmethod
    def _feature_of(lookup: Any, view_name: str, version: int | None, feature: str, who: str) -> None:
        view = lookup("view", view_name, version)
        if view is None:
            at = "" if version is None else f" version {version}"
            raise NotFound(f"{who} reads {view_name!r}{at}: no such feature view", field="features")
        if feature not in view.feature_names:
            raise NotFound(f"{who} reads {view_name}:{feature}, but {view_name!r} has "
                           f"{', '.join(view.feature_names)}", field="features")

    def get(self, kind: str, name: str, version: int | None = None) -> DefinitionInfo:
        """One version of a definition (the newest without `version`)."""
        _check_kind(kind)
        if not isinstance(name, str) or not name:
            raise InvalidInput("name must be a non-empty string", field="name")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise InvalidInput(f"version must be a positive integer; got {version!r}", field="version")
        with read(self.engine) as conn:
            row = sql.get_definition(conn, kind, name, version)
        if row is None:
            at = "" if version is None else f" version {version}"
            raise NotFound(f"no {_KIND_WORD[kind]} named {name!r}{at}", field="name")
        return _info(row)

    def definition(self, kind: str, name: str, version: int | None = None) -> Definition:
        return self.get(kind, name, version).definition()

    def list(self, kind: str | None = None) -> builtins.list[DefinitionInfo]:
        """The newest version of every definition (of `kind`)."""
        if kind is not None:
            _check_kind(kind)
        with read(self.engine) as conn:
            return [_info(r) for r in sql.latest_definitions(conn, kind)]

    def versions(self, kind: str, name: str) -> builtins.list[DefinitionInfo]:
        _check_kind(kind)
        with read(self.engine) as conn:
            rows = sql.versions(conn, kind, name)
        if not rows:
            raise NotFound(f"no {_KIND_WORD[kind]} named {name!r}", field="name")
        return [_info(r) for r in rows]

    # ---- materializations --------------------------------------------------------------

    def start_materialization(self, view: str, version: int, online_store: str, start_time: int | None,
                              end_time: int, source: str) -> int:
        now = now_ms()
        with write(self.engine) as conn:
            if sql.get_definition(conn, "view", view, version) is None:
                raise NotFound(f"no feature view {view!r} version {version}", field="view")
            return sql.insert_materialization(conn, view=view, version=version, online_store=online_store,
                                              start_time=start_time, end_time=end_time, rows=0, source=source,
                                              status="running", error=None, started=now, finished=None,
                                              created_by=self.actor)

    def finish_materialization(self, mat_id: int, *, rows: int, error: str | None = None) -> Materialization:
        now = now_ms()
        status = "failed" if error else "succeeded"
        with write(self.engine) as conn:
            sql.finish_materialization(conn, mat_id, rows=rows, status=status, error=error, finished=now)
            row = sql.get_materialization(conn, mat_id)
            if row is None:
                raise NotFound(f"no materialization with id {mat_id}", field="id")
            audit_append(conn, AuditRecord(self.actor, f"features.materialize.{status}", "feature_view",
                                           f"{row.view}@{row.version}",
                                           {"materialization": mat_id, "rows": rows, "end_time": row.end_time,
                                            "start_time": row.start_time, "source": row.source,
                                            "online_store": row.online_store, "error": error}), now)
        return _materialization(row)

    def materializations(self, view: str | None = None, version: int | None = None, limit: int = 100
                         ) -> builtins.list[Materialization]:
        """Newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", field="limit")
        with read(self.engine) as conn:
            return [_materialization(r) for r in sql.list_materializations(conn, view, version, limit)]

    def last_materialization(self, view: str, version: int, online_store: str) -> Materialization | None:
        """The newest successful materialization of a view version into one online store."""
        with read(self.engine) as conn:
            row = sql.last_success(conn, view, version, online_store)
        return None if row is None else _materialization(row)
