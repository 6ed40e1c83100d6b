"""SQL for gate runs. Each function runs inside the caller's transaction.

A gate run has no project of its own: it belongs to its model's. When the scope is confined, reads join
`registered_models` on the name, so another project's gate runs read as absent; unconfined reads are the
plain queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from arsenale.security.projects import current
from arsenale.store.tables import gate_runs, registered_models


def _scoped(q: Any) -> Any:
    scope = current()
    if not scope.confined:
        return q
    return (q.join_from(gate_runs, registered_models, registered_models.c.name == gate_runs.c.name)
            .where(registered_models.c.project == scope.home))


def insert_run(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(gate_runs).values(**row).returning(gate_runs.c.id)).scalar_one())


def get_run(conn: Connection, run_id: int) -> Any | None:
    return conn.execute(_scoped(select(gate_runs).where(gate_runs.c.id == run_id))).first()


def list_runs(conn: Connection, name: str | None, version: int | None, limit: int) -> Sequence[Any]:
    """Newest first."""
    q = _scoped(select(gate_runs)).order_by(gate_runs.c.id.desc()).limit(limit)
    if name is not None:
        q = q.where(gate_runs.c.name == name)
    if version is not None:
        q = q.where(gate_runs.c.version == version)
    return conn.execute(q).all()


def set_promotion(conn: Connection, run_id: int, promotion: str) -> None:
    conn.execute(update(gate_runs).where(gate_runs.c.id == run_id).values(promotion=promotion))
