"""SQL for the model registry: models, versions, aliases, stages and their history.

Version numbers come from `registered_models.next_version`, incremented with
UPDATE … RETURNING inside the registering transaction: the row lock (PostgreSQL)
or the write lock (SQLite) serialises concurrent registrations, so two processes
never get the same number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from arsenale.errors import Conflict, NotFound
from arsenale.security.projects import current, home, in_scope, visible, visible_row
from arsenale.store import audit as audit_sql
from arsenale.store.audit import AuditRecord
from arsenale.store.db import read, write
from arsenale.store.tables import (
    deployments,
    experiments,
    legal_holds,
    model_aliases,
    model_events,
    model_version_tags,
    model_versions,
    registered_model_tags,
    registered_models,
    runs,
)

_JSON_COLUMNS = ("flavor_meta", "files", "contract")


def _upsert(conn: Connection, table: Any) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def _version_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    for col in _JSON_COLUMNS:
        d[col] = json.loads(d[col])
    return d


class SqlRegistryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- helpers -----------------------------------------------------------------------

    def _model_row(self, conn: Connection, name: str) -> Any:
        """The model, or NotFound: also when it belongs to a project outside the scope, so every path
        that names a model (its versions, aliases, stages, holds, events) answers as for a missing one."""
        row = visible_row(conn.execute(select(registered_models).where(registered_models.c.name == name)).first())
        if row is None:
            raise NotFound(f"registered model {name!r} does not exist", field="name")
        return row

    def _check_model(self, conn: Connection, name: str) -> None:
        """Before reading a child row found by the model's name: a confined scope must see the model first
        (unconfined, the child's own lookup is the only query, as before)."""
        if current().confined:
            self._model_row(conn, name)

    def _version_row(self, conn: Connection, name: str, version: int) -> Any:
        self._check_model(conn, name)
        row = conn.execute(select(model_versions).where(model_versions.c.name == name,
                                                        model_versions.c.version == version)).first()
        if row is None:
            self._model_row(conn, name)
            raise NotFound(f"model {name!r} has no version {version}", field="version")
        return row

    def _event(self, conn: Connection, now: int, **values: Any) -> None:
        conn.execute(insert(model_events).values(timestamp=now, **values))

    # ---- models ------------------------------------------------------------------------

    def create_model(self, name: str, description: str | None, tags: dict[str, str], now: int,
                     audit: AuditRecord) -> None:
        with write(self.engine) as conn:
            if conn.execute(select(registered_models.c.name).where(registered_models.c.name == name)).first():
                raise Conflict(f"registered model {name!r} already exists", field="name")
            conn.execute(insert(registered_models).values(name=name, description=description, creation_time=now,
                                                          last_update_time=now, next_version=1, project=home()))
            if tags:
                conn.execute(insert(registered_model_tags), [{"name": name, "key": k, "value": v}
                                                             for k, v in tags.items()])
            audit_sql.append(conn, audit, now)

    def get_model(self, name: str) -> dict[str, Any]:
        with read(self.engine) as conn:
            return self._model_dicts(conn, [self._model_row(conn, name)])[0]

    def list_models(self, name_like: str | None, limit: int) -> list[dict[str, Any]]:
        q = (select(registered_models).where(in_scope(registered_models.c.project))
             .order_by(registered_models.c.name).limit(limit))
        if name_like:
            q = q.where(registered_models.c.name.like(name_like))
        with read(self.engine) as conn:
            return self._model_dicts(conn, conn.execute(q).all())

    def _model_dicts(self, conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
        names = [r.name for r in rows]
        if not names:
            return []
        tags: dict[str, dict[str, str]] = {n: {} for n in names}
        aliases: dict[str, dict[str, int]] = {n: {} for n in names}
        latest: dict[str, int] = {}
        stages: dict[str, dict[str, int]] = {n: {} for n in names}
        for t in conn.execute(select(registered_model_tags).where(registered_model_tags.c.name.in_(names))):
            tags[t.name][t.key] = t.value
        for a in conn.execute(select(model_aliases).where(model_aliases.c.name.in_(names))):
            aliases[a.name][a.alias] = a.version
        for n, v in conn.execute(select(model_versions.c.name, func.max(model_versions.c.version))
                                 .where(model_versions.c.name.in_(names)).group_by(model_versions.c.name)):
            latest[n] = v
        for n, st, v in conn.execute(select(model_versions.c.name, model_versions.c.stage,
                                            func.max(model_versions.c.version))
                                     .where(model_versions.c.name.in_(names), model_versions.c.stage != "None")
                                     .group_by(model_versions.c.name, model_versions.c.stage)):
            stages[n][st] = v
        return [{"name": r.name, "project": r.project, "description": r.description, "creation_time": r.creation_time,
                 "last_update_time": r.last_update_time, "tags": tags[r.name], "aliases": aliases[r.name],
                 "latest_version": latest.get(r.name), "stages": stages[r.name]} for r in rows]

    # ---- versions ----------------------------------------------------------------------

    def create_version(self, name: str, row: dict[str, Any], tags: dict[str, str], now: int,
                       audit: AuditRecord) -> int:
        """Allocate the next number and store the version, its tags, history and audit entry at once."""
        with write(self.engine) as conn:
            conn.execute(_upsert(conn, registered_models).values(
                name=name, description=None, creation_time=now, last_update_time=now, next_version=1,
                project=home()).on_conflict_do_nothing())
            _refuse_foreign(conn, name)
            version = conn.execute(
                update(registered_models).where(registered_models.c.name == name)
                .values(next_version=registered_models.c.next_version + 1, last_update_time=now)
                .returning(registered_models.c.next_version)).scalar_one() - 1
            values = {**row, "name": name, "version": version, "creation_time": now, "last_update_time": now}
            for col in _JSON_COLUMNS:
                values[col] = json.dumps(values[col], separators=(",", ":"))
            conn.execute(insert(model_versions).values(**values))
            if tags:
                conn.execute(insert(model_version_tags), [{"name": name, "version": version, "key": k, "value": v}
                                                          for k, v in tags.items()])
            self._event(conn, now, name=name, kind="register", version=version, actor=audit.actor, reason=None)
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, audit.entity_type, f"{name}/{version}",
                                               {**audit.details, "version": version}), now)
            return int(version)

    def get_version(self, name: str, version: int) -> dict[str, Any]:
        with read(self.engine) as conn:
            return self._version_dicts(conn, [self._version_row(conn, name, version)])[0]

    def list_versions(self, name: str, stages: Sequence[str] | None = None) -> list[dict[str, Any]]:
        q = select(model_versions).where(model_versions.c.name == name).order_by(model_versions.c.version.desc())
        if stages:
            q = q.where(model_versions.c.stage.in_(list(stages)))
        with read(self.engine) as conn:
            self._model_row(conn, name)
            return self._version_dicts(conn, conn.execute(q).all())

    def versions_of_run(self, run_id: str) -> list[dict[str, Any]]:
        q = select(model_versions).where(model_versions.c.run_id == run_id)
        if current().confined:  # versions of the scope's models, from a run the scope sees
            q = (q.join(registered_models, registered_models.c.name == model_versions.c.name)
                 .where(in_scope(registered_models.c.project))
                 .where(select(runs.c.run_id).join(experiments, experiments.c.experiment_id == runs.c.experiment_id)
                        .where(runs.c.run_id == run_id, in_scope(experiments.c.project)).exists()))
        with read(self.engine) as conn:
            return self._version_dicts(conn, conn.execute(q).all())

    def _version_dicts(self, conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
        if not rows:
            return []
        names = list({r.name for r in rows})
        tags: dict[tuple[str, int], dict[str, str]] = {}
        aliases: dict[tuple[str, int], list[str]] = {}
        for t in conn.execute(select(model_version_tags).where(model_version_tags.c.name.in_(names))):
            tags.setdefault((t.name, t.version), {})[t.key] = t.value
        for a in conn.execute(select(model_aliases).where(model_aliases.c.name.in_(names))
                              .order_by(model_aliases.c.alias)):
            aliases.setdefault((a.name, a.version), []).append(a.alias)
        out = []
        for r in rows:
            d = _version_dict(r)
            d["tags"] = tags.get((r.name, r.version), {})
            d["aliases"] = aliases.get((r.name, r.version), [])
            out.append(d)
        return out

    def update_version(self, name: str, version: int, description: str | None, tags: dict[str, str],
                       now: int) -> None:
        with write(self.engine) as conn:
            self._version_row(conn, name, version)
            if description is not None:
                conn.execute(update(model_versions).where(model_versions.c.name == name,
                                                          model_versions.c.version == version)
                             .values(description=description, last_update_time=now))
            if tags:
                stmt = _upsert(conn, model_version_tags)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[model_version_tags.c.name, model_version_tags.c.version, model_version_tags.c.key],
                    set_={"value": stmt.excluded.value}),
                    [{"name": name, "version": version, "key": k, "value": v} for k, v in tags.items()])

    # ---- aliases -----------------------------------------------------------------------

    def resolve_alias(self, name: str, alias: str) -> int:
        with read(self.engine) as conn:
            self._check_model(conn, name)
            v = conn.execute(select(model_aliases.c.version).where(model_aliases.c.name == name,
                                                                   model_aliases.c.alias == alias)).scalar()
            if v is None:
                self._model_row(conn, name)
                raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")
            return int(v)

    def latest_in_stage(self, name: str, stage: str) -> int:
        with read(self.engine) as conn:
            self._check_model(conn, name)
            v = conn.execute(select(func.max(model_versions.c.version)).where(
                model_versions.c.name == name, model_versions.c.stage == stage)).scalar()
            if v is None:
                self._model_row(conn, name)
                raise NotFound(f"model {name!r} has no version in stage {stage}", field="stage")
            return int(v)

    def set_alias(self, name: str, alias: str, version: int | None, now: int, actor: str, reason: str | None,
                  kind: str, audit: AuditRecord) -> int | None:
        """Point `alias` at `version` (None removes it); returns the version it pointed at before."""
        with write(self.engine) as conn:
            if version is not None:
                self._version_row(conn, name, version)
            else:
                self._model_row(conn, name)
            before = conn.execute(select(model_aliases.c.version).where(
                model_aliases.c.name == name, model_aliases.c.alias == alias)).scalar()
            if version is None:
                if before is None:
                    raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")
                conn.execute(delete(model_aliases).where(model_aliases.c.name == name,
                                                         model_aliases.c.alias == alias))
            else:
                stmt = _upsert(conn, model_aliases)
                conn.execute(stmt.values(name=name, alias=alias, version=version, updated_at=now)
                             .on_conflict_do_update(index_elements=[model_aliases.c.name, model_aliases.c.alias],
                                                    set_={"version": version, "updated_at": now}))
            self._event(conn, now, name=name, kind=kind, version=version, alias=alias, from_version=before,
                        actor=actor, reason=reason)
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, audit.entity_type, name,
                                               {**audit.details, "alias": alias, "version": version,
                                                "previous_version": before, "reason": reason}), now)
            return None if before is None else int(before)

    def last_alias_move(self, name: str, alias: str) -> dict[str, Any] | None:
        """The latest move of `alias` that has not itself been undone."""
        with read(self.engine) as conn:
            self._model_row(conn, name)
            rows = conn.execute(select(model_events).where(
                model_events.c.name == name, model_events.c.alias == alias,
                model_events.c.kind.in_(["alias", "alias_removed", "alias_undo"]))
                .order_by(model_events.c.id.desc())).all()
        skip = 0
        for r in rows:  # each undo cancels the move before it
            if r.kind == "alias_undo":
                skip += 1
            elif skip:
                skip -= 1
            else:
                return dict(r._mapping)
        return None

    # ---- stages ------------------------------------------------------------------------

    def transition(self, name: str, version: int, stage: str, archive_existing: bool, now: int, actor: str,
                   reason: str | None, audit: AuditRecord) -> list[tuple[int, str]]:
        """Move a version to `stage`; returns [(version, old stage)] for every version that moved."""
        with write(self.engine) as conn:
            row = self._version_row(conn, name, version)
            moved = [(version, row.stage)]
            if archive_existing and stage in ("Staging", "Production"):
                others = conn.execute(select(model_versions.c.version, model_versions.c.stage).where(
                    model_versions.c.name == name, model_versions.c.stage == stage,
                    model_versions.c.version != version)).all()
                for v, old in others:
                    conn.execute(update(model_versions).where(and_(model_versions.c.name == name,
                                                                   model_versions.c.version == v))
                                 .values(stage="Archived", last_update_time=now))
                    self._event(conn, now, name=name, kind="stage", version=v, from_stage=old, to_stage="Archived",
                                actor=actor, reason=f"archived by the transition of version {version} to {stage}")
                    moved.append((v, old))
            conn.execute(update(model_versions).where(model_versions.c.name == name,
                                                      model_versions.c.version == version)
                         .values(stage=stage, last_update_time=now))
            self._event(conn, now, name=name, kind="stage", version=version, from_stage=row.stage, to_stage=stage,
                        actor=actor, reason=reason)
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, audit.entity_type, f"{name}/{version}",
                                               {**audit.details, "from_stage": row.stage, "to_stage": stage,
                                                "archived": [v for v, _ in moved[1:]], "reason": reason}), now)
            return moved

    def events(self, name: str, limit: int) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            self._model_row(conn, name)
            rows = conn.execute(select(model_events).where(model_events.c.name == name)
                                .order_by(model_events.c.id.desc()).limit(limit)).all()
            return [dict(r._mapping) for r in rows]

    # ---- legal holds and deletion ------------------------------------------------------

    def active_hold(self, conn: Connection, name: str, version: int) -> Any:
        return conn.execute(select(legal_holds).where(legal_holds.c.name == name, legal_holds.c.version == version,
                                                      legal_holds.c.released_at.is_(None))).first()

    def set_legal_hold(self, name: str, version: int, reason: str, now: int, audit: AuditRecord) -> dict[str, Any]:
        """Put a version on legal hold; a second hold on a held version is a Conflict (one active hold each)."""
        with write(self.engine) as conn:
            self._version_row(conn, name, version)
            held = self.active_hold(conn, name, version)
            if held is not None:
                raise Conflict(f"model {name!r} version {version} is already on legal hold ({held.reason})",
                               field="version")
            actor = audit_sql.acting_as.get() or audit.actor  # the token a server request acts as
            hold_id = conn.execute(insert(legal_holds).values(
                name=name, version=version, reason=reason, created_by=actor, creation_time=now)
                .returning(legal_holds.c.id)).scalar_one()
            self._event(conn, now, name=name, kind="legal_hold", version=version, actor=actor, reason=reason)
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, "model_version", f"{name}/{version}",
                                               {"reason": reason, "hold_id": int(hold_id)}), now)
            return dict(conn.execute(select(legal_holds).where(legal_holds.c.id == hold_id)).one()._mapping)

    def release_legal_hold(self, name: str, version: int, reason: str | None, now: int,
                           audit: AuditRecord) -> dict[str, Any]:
        with write(self.engine) as conn:
            self._version_row(conn, name, version)
            held = self.active_hold(conn, name, version)
            if held is None:
                raise Conflict(f"model {name!r} version {version} is not on legal hold", field="version")
            actor = audit_sql.acting_as.get() or audit.actor
            conn.execute(update(legal_holds).where(legal_holds.c.id == held.id, legal_holds.c.released_at.is_(None))
                         .values(released_at=now, released_by=actor))
            self._event(conn, now, name=name, kind="legal_hold_released", version=version, actor=actor,
                        reason=reason)
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, "model_version", f"{name}/{version}",
                                               {"reason": reason, "hold_id": int(held.id)}), now)
            return dict(conn.execute(select(legal_holds).where(legal_holds.c.id == held.id)).one()._mapping)

    def legal_holds(self, name: str | None, active_only: bool) -> list[dict[str, Any]]:
        q = select(legal_holds).order_by(legal_holds.c.id)
        if name is not None:
            q = q.where(legal_holds.c.name == name)
        elif current().confined:  # holds of the scope's models only
            q = q.where(legal_holds.c.name.in_(select(registered_models.c.name)
                                               .where(in_scope(registered_models.c.project))))
        if active_only:
            q = q.where(legal_holds.c.released_at.is_(None))
        with read(self.engine) as conn:
            if name is not None:
                self._model_row(conn, name)
            return [dict(r._mapping) for r in conn.execute(q)]

    def delete_version(self, name: str, version: int, now: int, reason: str | None, audit: AuditRecord) -> None:
        """Delete a version's row, tags and manifest reference, in one transaction, unless something still
        needs it: an alias, a deployment serving or shadowing it, or a legal hold (each a Conflict)."""
        with write(self.engine) as conn:
            row = self._version_row(conn, name, version)
            held = self.active_hold(conn, name, version)
            if held is not None:
                raise Conflict(f"model {name!r} version {version} is on legal hold ({held.reason}); release the "
                               "hold before deleting it", field="version")
            aliases = sorted(a for (a,) in conn.execute(select(model_aliases.c.alias).where(
                model_aliases.c.name == name, model_aliases.c.version == version)))
            if aliases:
                raise Conflict(f"model {name!r} version {version} is the target of alias(es) "
                               f"{', '.join(aliases)}; move or delete them first", field="version")
            serving = [d for d, policy in conn.execute(select(deployments.c.name, deployments.c.policy))
                       if (name, version) in _policy_versions(policy)]
            if serving:
                raise Conflict(f"model {name!r} version {version} is served by deployment(s) "
                               f"{', '.join(sorted(serving))}; route traffic away first", field="version")
            conn.execute(delete(model_version_tags).where(model_version_tags.c.name == name,
                                                          model_version_tags.c.version == version))
            conn.execute(delete(model_versions).where(model_versions.c.name == name,
                                                      model_versions.c.version == version))
            conn.execute(update(registered_models).where(registered_models.c.name == name)
                         .values(last_update_time=now))
            self._event(conn, now, name=name, kind="delete", version=version, from_stage=row.stage,
                        actor=audit_sql.acting_as.get() or audit.actor, reason=reason)
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, "model_version", f"{name}/{version}",
                                               {"run_id": row.run_id, "stage": row.stage, "reason": reason,
                                                "files": len(json.loads(row.files))}), now)


def _policy_versions(policy: str) -> set[tuple[str, int]]:
    """Every (model, version) a stored traffic policy names: routes, shadows and a canary's two sides."""
    try:
        p = json.loads(policy)
    except ValueError:
        return set()
    refs = [*p.get("routes", []), *p.get("shadows", [])]
    canary = p.get("canary") or {}
    if canary.get("state", "running") == "running":
        refs += [canary.get("canary") or {}, canary.get("baseline") or {}]
    return {(r["model"], int(r["version"])) for r in refs if isinstance(r, dict) and "model" in r and "version" in r}


def _refuse_foreign(conn: Connection, name: str) -> None:
    """Names are global: registering a version under a name another project holds is refused, as creating
    it would be (only a confined caller can meet one: unconfined, every registered model is visible)."""
    if current().confined:
        owner = conn.execute(select(registered_models.c.project).where(registered_models.c.name == name)).scalar()
        if owner is not None and not visible(owner):
            raise Conflict(f"registered model name {name!r} is already taken", field="name")
