"""SQL for the dataset registry: datasets, versions and the runs that read them.

Version numbers come from `datasets.next_version`, incremented with UPDATE … RETURNING
inside the registering transaction (as for models): the row lock (PostgreSQL) or the
write lock (SQLite) serialises concurrent registrations, so two processes never get the
same number. The same transaction first looks for a version with the same data digest
and status, which is returned instead: registering identical data twice yields one version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from arsenale.errors import Conflict, NotFound
from arsenale.security.projects import current, home, in_scope, visible, visible_row
from arsenale.store import audit as audit_sql
from arsenale.store.audit import AuditRecord
from arsenale.store.db import read, write
from arsenale.store.tables import dataset_versions, datasets, experiments, run_inputs, runs, tags

_JSON_COLUMNS = ("files", "schema", "profile", "validation")
REJECTED = "rejected"
INPUT_TAG = "ars.input."


def _upsert(conn: Connection, table: Any) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def _version_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    for col in _JSON_COLUMNS:
        d[col] = None if d[col] is None else json.loads(d[col])
    d["data_schema"] = d.pop("schema")
    return d


class SqlDatasetStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _dataset_row(self, conn: Connection, name: str) -> Any:
        """The dataset, or NotFound: also when it belongs to a project outside the scope, so its versions
        and consumers read as those of a missing one."""
        row = visible_row(conn.execute(select(datasets).where(datasets.c.name == name)).first())
        if row is None:
            raise NotFound(f"dataset {name!r} does not exist", field="name")
        return row

    def _check_dataset(self, conn: Connection, name: str) -> None:
        """Before reading a version found by the dataset's name: only a confined scope pays for the look-up."""
        if current().confined:
            self._dataset_row(conn, name)

    def _check_run(self, conn: Connection, run_id: str) -> None:
        """NotFound unless the run exists in an experiment the scope sees (a run id can come in a body)."""
        q = select(runs.c.run_id).where(runs.c.run_id == run_id)
        if current().confined:
            q = q.join(experiments, experiments.c.experiment_id == runs.c.experiment_id).where(
                in_scope(experiments.c.project))
        if conn.execute(q).first() is None:
            raise NotFound(f"run {run_id} does not exist", field="run_id")

    def create_version(self, name: str, row: dict[str, Any], description: str | None, now: int,
                       audit: AuditRecord) -> tuple[int, bool]:
        """Store a version (or find the one with the same digest and status); returns (version, created)."""
        with write(self.engine) as conn:
            conn.execute(_upsert(conn, datasets).values(
                name=name, description=description, creation_time=now, last_update_time=now, next_version=1,
                project=home()).on_conflict_do_nothing())
            _refuse_foreign(conn, name)
            # Lock the dataset's row before looking for an identical version: two writers of the same data
            # would otherwise both find none and allocate two numbers (PostgreSQL; SQLite writes one at a time).
            conn.execute(select(datasets.c.name).where(datasets.c.name == name).with_for_update())
            existing = conn.execute(select(dataset_versions.c.version).where(
                dataset_versions.c.name == name, dataset_versions.c.digest == row["digest"],
                dataset_versions.c.status == row["status"]).order_by(dataset_versions.c.version).limit(1)).scalar()
            if existing is not None:
                return int(existing), False
            values: dict[str, Any] = {"last_update_time": now, "next_version": datasets.c.next_version + 1}
            if description is not None:
                values["description"] = description
            version = conn.execute(update(datasets).where(datasets.c.name == name).values(**values)
                                   .returning(datasets.c.next_version)).scalar_one() - 1
            stored = {**row, "name": name, "version": version, "creation_time": now}
            for col in _JSON_COLUMNS:
                if stored.get(col) is not None:
                    stored[col] = json.dumps(stored[col], separators=(",", ":"))
            conn.execute(insert(dataset_versions).values(**stored))
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, audit.entity_type, f"{name}/{version}",
                                               {**audit.details, "version": version}), now)
            return int(version), True

    def get_version(self, name: str, version: int | None) -> dict[str, Any]:
        """One version; None means the newest version that is not rejected."""
        with read(self.engine) as conn:
            self._check_dataset(conn, name)
            q = select(dataset_versions).where(dataset_versions.c.name == name)
            if version is None:
                q = q.where(dataset_versions.c.status != REJECTED).order_by(dataset_versions.c.version.desc())
            else:
                q = q.where(dataset_versions.c.version == version)
            row = conn.execute(q.limit(1)).first()
            if row is None:
                self._dataset_row(conn, name)
                if version is None:
                    raise NotFound(f"dataset {name!r} has no published version", field="version")
                raise NotFound(f"dataset {name!r} has no version {version}", field="version")
            return _version_dict(row)

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            self._dataset_row(conn, name)
            rows = conn.execute(select(dataset_versions).where(dataset_versions.c.name == name)
                                .order_by(dataset_versions.c.version.desc())).all()
            return [_version_dict(r) for r in rows]

    def get_dataset(self, name: str) -> dict[str, Any]:
        with read(self.engine) as conn:
            return self._dataset_dicts(conn, [self._dataset_row(conn, name)])[0]

    def list_datasets(self, name_like: str | None, limit: int) -> list[dict[str, Any]]:
        q = select(datasets).where(in_scope(datasets.c.project)).order_by(datasets.c.name).limit(limit)
        if name_like:
            q = q.where(datasets.c.name.like(name_like))
        with read(self.engine) as conn:
            return self._dataset_dicts(conn, conn.execute(q).all())

    def _dataset_dicts(self, conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
        names = [r.name for r in rows]
        if not names:
            return []
        counts: dict[str, int] = dict(conn.execute(select(dataset_versions.c.name, func.count())
                                   .where(dataset_versions.c.name.in_(names))
                                   .group_by(dataset_versions.c.name)).all())
        latest: dict[str, int] = dict(conn.execute(select(dataset_versions.c.name, func.max(dataset_versions.c.version))
                                   .where(dataset_versions.c.name.in_(names),
                                          dataset_versions.c.status != REJECTED)
                                   .group_by(dataset_versions.c.name)).all())
        return [{"name": r.name, "project": r.project, "description": r.description, "creation_time": r.creation_time,
                 "last_update_time": r.last_update_time, "latest_version": latest.get(r.name),
                 "versions": int(counts.get(r.name, 0))} for r in rows]

    # ---- lineage -----------------------------------------------------------------------

    def record_input(self, run_id: str, name: str, version: int, now: int) -> dict[str, Any]:
        """Note that `run_id` read `name`@`version`: a run_inputs row and the run tag `ars.input.<name>`."""
        with write(self.engine) as conn:
            self._check_run(conn, run_id)
            self._check_dataset(conn, name)
            if conn.execute(select(dataset_versions.c.version).where(
                    dataset_versions.c.name == name, dataset_versions.c.version == version)).first() is None:
                self._dataset_row(conn, name)
                raise NotFound(f"dataset {name!r} has no version {version}", field="version")
            conn.execute(_upsert(conn, run_inputs).values(run_id=run_id, name=name, version=version,
                                                          creation_time=now).on_conflict_do_nothing())
            stmt = _upsert(conn, tags).values(run_id=run_id, key=f"{INPUT_TAG}{name}", value=str(version))
            conn.execute(stmt.on_conflict_do_update(index_elements=[tags.c.run_id, tags.c.key],
                                                    set_={"value": stmt.excluded.value}))
            row = conn.execute(select(run_inputs).where(run_inputs.c.run_id == run_id, run_inputs.c.name == name,
                                                        run_inputs.c.version == version)).one()
            return dict(row._mapping)

    def inputs_of_run(self, run_id: str) -> list[dict[str, Any]]:
        q = select(run_inputs).where(run_inputs.c.run_id == run_id)
        if current().confined:  # only the datasets the scope sees
            q = q.join(datasets, datasets.c.name == run_inputs.c.name).where(in_scope(datasets.c.project))
        with read(self.engine) as conn:
            self._check_run(conn, run_id)
            rows = conn.execute(q.order_by(run_inputs.c.name, run_inputs.c.version)).all()
            return [dict(r._mapping) for r in rows]

    def runs_of_version(self, name: str, version: int) -> list[dict[str, Any]]:
        q = select(run_inputs).where(run_inputs.c.name == name, run_inputs.c.version == version)
        if current().confined:  # only the runs the scope sees
            q = (q.join(runs, runs.c.run_id == run_inputs.c.run_id)
                 .join(experiments, experiments.c.experiment_id == runs.c.experiment_id)
                 .where(in_scope(experiments.c.project)))
        with read(self.engine) as conn:
            self._check_dataset(conn, name)
            rows = conn.execute(q.order_by(run_inputs.c.creation_time)).all()
            return [dict(r._mapping) for r in rows]


def _refuse_foreign(conn: Connection, name: str) -> None:
    """Names are global: registering a version under a name another project holds is refused, as creating
    it would be (only a confined caller can meet one: unconfined, every dataset is visible)."""
    if current().confined:
        owner = conn.execute(select(datasets.c.project).where(datasets.c.name == name)).scalar()
        if owner is not None and not visible(owner):
            raise Conflict(f"dataset name {name!r} is already taken", field="name")
