"""SQL for deployments: the current policy with its revision, the revision history, the canary
controller's decisions and lease, and the per-replica request statistics.

Each function runs inside the caller's transaction (`store.db.write` / `read`); policies and
evidence are stored as JSON text that the service validates on the way in and out.

Reads by name honour the project scope (`arsenale.security.projects`): another project's deployment reads
as absent, and its revisions, decisions and statistics as empty, exactly like a missing one's. The canary
controller and the statistics pruner run unconfined and see every project.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, and_, delete, insert, or_, select, true, update

from arsenale.security.projects import current, in_scope, visible_row
from arsenale.store.tables import deployment_decisions, deployment_revisions, deployment_stats, deployments


def _of_visible(column: Column[Any]) -> Any:
    """A child row's `deployment` limited to the scope's deployments (no clause at all when unconfined)."""
    if not current().confined:
        return true()
    return column.in_(select(deployments.c.name).where(in_scope(deployments.c.project)))


def insert_deployment(conn: Connection, *, name: str, description: str | None, policy: str, now: int,
                      project: str) -> None:
    conn.execute(insert(deployments).values(name=name, description=description, policy=policy, revision=1,
                                            creation_time=now, last_update_time=now, project=project))


def name_taken(conn: Connection, name: str) -> bool:
    """Whether any project has a deployment of this name: names are unique across projects."""
    return conn.execute(select(deployments.c.name).where(deployments.c.name == name)).first() is not None


def get_deployment(conn: Connection, name: str, *, for_update: bool = False) -> Any | None:
    """The deployment, or None when it is missing or outside the project scope."""
    query = select(deployments).where(deployments.c.name == name)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return visible_row(conn.execute(query).first())


def get_revision(conn: Connection, name: str) -> int | None:
    """The current revision alone: what every replica polls, one indexed lookup."""
    return conn.execute(select(deployments.c.revision)
                        .where(deployments.c.name == name, in_scope(deployments.c.project))).scalar_one_or_none()


def list_deployments(conn: Connection) -> Sequence[Any]:
    return conn.execute(select(deployments).where(in_scope(deployments.c.project))
                        .order_by(deployments.c.name)).all()


def set_policy(conn: Connection, name: str, *, policy: str, revision: int, now: int) -> None:
    conn.execute(update(deployments).where(deployments.c.name == name)
                 .values(policy=policy, revision=revision, last_update_time=now))


def delete_deployment(conn: Connection, name: str) -> bool:
    if current().confined and get_deployment(conn, name) is None:
        return False
    for table in (deployment_stats, deployment_decisions, deployment_revisions):
        conn.execute(delete(table).where(table.c.deployment == name))
    return bool(conn.execute(delete(deployments).where(deployments.c.name == name)).rowcount)


def insert_revision(conn: Connection, *, deployment: str, revision: int, action: str, policy: str, actor: str,
                    reason: str | None, now: int) -> None:
    conn.execute(insert(deployment_revisions).values(deployment=deployment, revision=revision, action=action,
                                                     policy=policy, actor=actor, reason=reason, timestamp=now))


def list_revisions(conn: Connection, deployment: str, limit: int) -> Sequence[Any]:
    """Newest first."""
    return conn.execute(select(deployment_revisions).where(deployment_revisions.c.deployment == deployment,
                                                           _of_visible(deployment_revisions.c.deployment))
                        .order_by(deployment_revisions.c.revision.desc()).limit(limit)).all()


def insert_decision(conn: Connection, *, deployment: str, timestamp: int, action: str, step: float, reason: str,
                    evidence: str) -> None:
    conn.execute(insert(deployment_decisions).values(deployment=deployment, timestamp=timestamp, action=action,
                                                     step=step, reason=reason, evidence=evidence))


def list_decisions(conn: Connection, deployment: str, limit: int) -> Sequence[Any]:
    """Newest first."""
    return conn.execute(select(deployment_decisions).where(deployment_decisions.c.deployment == deployment,
                                                           _of_visible(deployment_decisions.c.deployment))
                        .order_by(deployment_decisions.c.timestamp.desc(), deployment_decisions.c.id.desc())
                        .limit(limit)).all()


def take_controller_lease(conn: Connection, name: str, owner: str, now: int, until: int) -> bool:
    """Become (or stay) the one canary controller of a deployment; False when another holds a live lease."""
    free = or_(deployments.c.controller_until < now, deployments.c.controller_owner == owner,
               deployments.c.controller_owner.is_(None))
    result = conn.execute(update(deployments).where(and_(deployments.c.name == name, free,
                                                         in_scope(deployments.c.project)))
                          .values(controller_owner=owner, controller_until=until))
    return bool(result.rowcount)


def insert_stats(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(deployment_stats), list(rows))


def stats_since(conn: Connection, deployment: str, since: int) -> Sequence[Any]:
    return conn.execute(select(deployment_stats)
                        .where(deployment_stats.c.deployment == deployment, _of_visible(deployment_stats.c.deployment))
                        .where(deployment_stats.c.window_start >= since)).all()


def prune_stats(conn: Connection, before: int) -> int:
    return int(conn.execute(delete(deployment_stats).where(deployment_stats.c.window_start < before)).rowcount)
