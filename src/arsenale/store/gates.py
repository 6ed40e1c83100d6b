"""SQL for gate runs. Each function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from arsenale.store.tables import gate_runs


def insert_run(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(gate_runs).values(**row).returning(gate_runs.c.id)).scalar_one())


def get_run(conn: Connection, run_id: int) -> Any | None:
    return conn.execute(select(gate_runs).where(gate_runs.c.id == run_id)).first()


def list_runs(conn: Connection, name: str | None, version: int | None, limit: int) -> Sequence[Any]:
    """Newest first."""
    q = select(gate_runs).order_by(gate_runs.c.id.desc()).limit(limit)
    if name is not None:
        q = q.where(gate_runs.c.name == name)
    if version is not None:
        q = q.where(gate_runs.c.version == version)
    return conn.execute(q).all()


def set_promotion(conn: Connection, run_id: int, promotion: str) -> None:
    conn.execute(update(gate_runs).where(gate_runs.c.id == run_id).values(promotion=promotion))
