"""SQL for the prompt registry. Each function runs inside the caller's transaction.

A version number is allocated inside the registering transaction after the prompt's row is locked
(`lock_prompt`: a row lock on PostgreSQL; SQLite writes one transaction at a time), so concurrent
registrations of one prompt get distinct numbers and identical content is found, not stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from arsenale.security.projects import current, home, in_scope, visible_row
from arsenale.store.tables import prompt_labels, prompt_versions, prompts


def _upsert(conn: Connection, table: Any) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def ensure_prompt(conn: Connection, name: str, description: str | None, now: int, actor: str) -> None:
    conn.execute(_upsert(conn, prompts).values(name=name, description=description, creation_time=now,
                                               created_by=actor, project=home()).on_conflict_do_nothing())


def lock_prompt(conn: Connection, name: str) -> str | None:
    """Lock the prompt's row; its project, so a writer can tell whether the name is its own."""
    found = conn.execute(select(prompts.c.project).where(prompts.c.name == name).with_for_update()).scalar()
    return None if found is None else str(found)


def get_prompt(conn: Connection, name: str) -> Any | None:
    """The prompt's row; None for a missing one and for one outside the project scope alike."""
    return visible_row(conn.execute(select(prompts).where(prompts.c.name == name)).first())


def find_digest(conn: Connection, name: str, digest: str) -> int | None:
    found = conn.execute(select(prompt_versions.c.version).where(
        prompt_versions.c.name == name, prompt_versions.c.digest == digest)
        .order_by(prompt_versions.c.version).limit(1)).scalar()
    return None if found is None else int(found)


def latest(conn: Connection, name: str) -> int | None:
    found = conn.execute(select(func.max(prompt_versions.c.version)).where(prompt_versions.c.name == name)).scalar()
    return None if found is None else int(found)


def next_version(conn: Connection, name: str) -> int:
    return (latest(conn, name) or 0) + 1


def insert_version(conn: Connection, **row: Any) -> None:
    conn.execute(insert(prompt_versions).values(**row))


def get_version(conn: Connection, name: str, version: int | None) -> Any | None:
    """One version; the newest when `version` is None."""
    q = select(prompt_versions).where(prompt_versions.c.name == name)
    q = q.where(prompt_versions.c.version == version) if version is not None \
        else q.order_by(prompt_versions.c.version.desc()).limit(1)
    return conn.execute(q).first()


def list_versions(conn: Connection, name: str) -> Sequence[Any]:
    return conn.execute(select(prompt_versions).where(prompt_versions.c.name == name)
                        .order_by(prompt_versions.c.version.desc())).all()


def list_prompts(conn: Connection) -> Sequence[Any]:
    """Every prompt with its newest version number as `latest`, by name."""
    newest = select(prompt_versions.c.name, func.max(prompt_versions.c.version).label("latest")) \
        .group_by(prompt_versions.c.name).subquery()
    return conn.execute(select(prompts, newest.c.latest).join(newest, newest.c.name == prompts.c.name,
                                                              isouter=True)
                        .where(in_scope(prompts.c.project)).order_by(prompts.c.name)).all()


def get_label(conn: Connection, name: str, label: str) -> int | None:
    found = conn.execute(select(prompt_labels.c.version).where(prompt_labels.c.name == name,
                                                               prompt_labels.c.label == label)).scalar()
    return None if found is None else int(found)


def labels(conn: Connection, name: str) -> dict[str, int]:
    return {r.label: int(r.version) for r in conn.execute(
        select(prompt_labels.c.label, prompt_labels.c.version).where(prompt_labels.c.name == name)
        .order_by(prompt_labels.c.label))}


def labels_of(conn: Connection, name: str, version: int) -> list[str]:
    return list(conn.execute(select(prompt_labels.c.label).where(
        prompt_labels.c.name == name, prompt_labels.c.version == version).order_by(prompt_labels.c.label))
        .scalars())


def all_labels(conn: Connection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    q = select(prompt_labels).order_by(prompt_labels.c.name, prompt_labels.c.label)
    if current().confined:  # another project's labels are not read at all
        q = q.join(prompts, prompts.c.name == prompt_labels.c.name).where(in_scope(prompts.c.project))
    for r in conn.execute(q):
        out.setdefault(r.name, {})[r.label] = int(r.version)
    return out


def set_label(conn: Connection, name: str, label: str, version: int, now: int, actor: str) -> None:
    stmt = _upsert(conn, prompt_labels).values(name=name, label=label, version=version, update_time=now,
                                               updated_by=actor)
    conn.execute(stmt.on_conflict_do_update(index_elements=[prompt_labels.c.name, prompt_labels.c.label],
                                            set_={"version": version, "update_time": now, "updated_by": actor}))


def delete_label(conn: Connection, name: str, label: str) -> None:
    conn.execute(delete(prompt_labels).where(prompt_labels.c.name == name, prompt_labels.c.label == label))
