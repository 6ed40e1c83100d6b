"""SQL for monitors and their evaluations. Each function runs inside the caller's transaction."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, delete, insert, select

from arsenale.store.tables import monitor_runs, monitors


def insert_monitor(conn: Connection, **row: Any) -> None:
    conn.execute(insert(monitors).values(**row))


def get_monitor(conn: Connection, name: str) -> Any | None:
    return conn.execute(select(monitors).where(monitors.c.name == name)).first()


def list_monitors(conn: Connection) -> Sequence[Any]:
    return conn.execute(select(monitors).order_by(monitors.c.name)).all()


def delete_monitor(conn: Connection, name: str) -> bool:
    conn.execute(delete(monitor_runs).where(monitor_runs.c.monitor == name))
    return bool(conn.execute(delete(monitors).where(monitors.c.name == name)).rowcount)


def insert_run(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(monitor_runs).values(**row).returning(monitor_runs.c.id)).scalar_one())


def list_runs(conn: Connection, monitor: str, limit: int, with_report: bool = False) -> Sequence[Any]:
    """Newest first; the (large) report column only when asked for."""
    columns = [c for c in monitor_runs.c if with_report or c.name != "report"]
    return conn.execute(select(*columns).where(monitor_runs.c.monitor == monitor)
                        .order_by(monitor_runs.c.window_end.desc(), monitor_runs.c.id.desc()).limit(limit)).all()
