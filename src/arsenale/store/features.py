"""SQL for feature definitions and materializations. Each function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from arsenale.store.tables import feature_definitions as defs
from arsenale.store.tables import feature_materializations as mats


def find_fingerprint(conn: Connection, kind: str, name: str, fingerprint: str) -> Any | None:
    return conn.execute(select(defs).where(defs.c.kind == kind, defs.c.name == name,
                                           defs.c.fingerprint == fingerprint)).first()


def next_version(conn: Connection, kind: str, name: str) -> int:
    current = conn.execute(select(func.max(defs.c.version)).where(defs.c.kind == kind, defs.c.name == name)
                           ).scalar_one()
    return int(current or 0) + 1


def insert_definition(conn: Connection, **row: Any) -> None:
    conn.execute(insert(defs).values(**row))


def get_definition(conn: Connection, kind: str, name: str, version: int | None) -> Any | None:
    q = select(defs).where(defs.c.kind == kind, defs.c.name == name)
    q = q.where(defs.c.version == version) if version is not None else q.order_by(defs.c.version.desc()).limit(1)
    return conn.execute(q).first()


def latest_definitions(conn: Connection, kind: str | None = None) -> Sequence[Any]:
    """The newest version of every definition (of one kind), by kind then name."""
    newest = select(defs.c.kind, defs.c.name, func.max(defs.c.version).label("version")) \
        .group_by(defs.c.kind, defs.c.name)
    if kind is not None:
        newest = newest.where(defs.c.kind == kind)
    sub = newest.subquery()
    return conn.execute(select(defs).join(sub, (defs.c.kind == sub.c.kind) & (defs.c.name == sub.c.name)
                                          & (defs.c.version == sub.c.version))
                        .order_by(defs.c.kind, defs.c.name)).all()


def versions(conn: Connection, kind: str, name: str) -> Sequence[Any]:
    return conn.execute(select(defs).where(defs.c.kind == kind, defs.c.name == name)
                        .order_by(defs.c.version)).all()


def insert_materialization(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(mats).values(**row).returning(mats.c.id)).scalar_one())


def finish_materialization(conn: Connection, mat_id: int, **values: Any) -> None:
    conn.execute(update(mats).where(mats.c.id == mat_id).values(**values))


def get_materialization(conn: Connection, mat_id: int) -> Any | None:
    return conn.execute(select(mats).where(mats.c.id == mat_id)).first()


def list_materializations(conn: Connection, view: str | None, version: int | None, limit: int) -> Sequence[Any]:
    """Newest first."""
    q = select(mats).order_by(mats.c.id.desc()).limit(limit)
    if view is not None:
        q = q.where(mats.c.view == view)
    if version is not None:
        q = q.where(mats.c.version == version)
    return conn.execute(q).all()


def last_success(conn: Connection, view: str, version: int, online_store: str) -> Any | None:
    return conn.execute(select(mats).where(mats.c.view == view, mats.c.version == version,
                                           mats.c.online_store == online_store, mats.c.status == "succeeded")
                        .order_by(mats.c.id.desc()).limit(1)).first()


def newest_materializations(conn: Connection) -> Sequence[Any]:
    """Per feature view (its newest version) and online store, the newest successful materialization."""
    newest_view = select(defs.c.name, func.max(defs.c.version).label("version")) \
        .where(defs.c.kind == "view").group_by(defs.c.name).subquery()
    newest_run = select(func.max(mats.c.id).label("id")).where(mats.c.status == "succeeded") \
        .group_by(mats.c.view, mats.c.version, mats.c.online_store).subquery()
    return conn.execute(select(mats).join(newest_run, mats.c.id == newest_run.c.id)
                        .join(newest_view, (mats.c.view == newest_view.c.name)
                              & (mats.c.version == newest_view.c.version))
                        .order_by(mats.c.view, mats.c.online_store)).all()
