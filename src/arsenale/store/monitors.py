"""SQL for monitors and their evaluations. Each function runs inside the caller's transaction.

Reads by name and lists honour the project scope (`arsenale.security.projects`): another project's monitor
reads as absent. Runs and alert rules are reached through their monitor. The scheduling queries serve the
background scheduler, which runs unconfined over every project."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from arsenale.security.projects import current, in_scope, visible_row
from arsenale.store.tables import alert_rules, alerts, monitor_runs, monitors


def insert_monitor(conn: Connection, **row: Any) -> None:
    conn.execute(insert(monitors).values(**row))


def name_taken(conn: Connection, name: str) -> bool:
    """Whether any project has a monitor of this name: names are unique across projects."""
    return conn.execute(select(monitors.c.name).where(monitors.c.name == name)).first() is not None


def get_monitor(conn: Connection, name: str) -> Any | None:
    """The monitor, or None when it is missing or outside the project scope."""
    return visible_row(conn.execute(select(monitors).where(monitors.c.name == name)).first())


def list_monitors(conn: Connection) -> Sequence[Any]:
    return conn.execute(select(monitors).where(in_scope(monitors.c.project)).order_by(monitors.c.name)).all()


def delete_monitor(conn: Connection, name: str) -> bool:
    """The monitor, its evaluations, its alert rules and their alerts (explicitly: SQLite enforces the foreign
    keys' ON DELETE CASCADE only on connections that turned them on). False, deleting nothing, when it is
    missing or outside the project scope."""
    if current().confined and get_monitor(conn, name) is None:
        return False
    rule_ids = select(alert_rules.c.id).where(alert_rules.c.monitor == name).scalar_subquery()
    conn.execute(delete(alerts).where(alerts.c.rule_id.in_(rule_ids)))
    conn.execute(delete(alert_rules).where(alert_rules.c.monitor == name))
    conn.execute(delete(monitor_runs).where(monitor_runs.c.monitor == name))
    return bool(conn.execute(delete(monitors).where(monitors.c.name == name)).rowcount)


def insert_run(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(monitor_runs).values(**row).returning(monitor_runs.c.id)).scalar_one())


def _run_columns(with_report: bool) -> list[Any]:
    """A run's columns; the report (the full drift and quality reports, most of a row) only when asked."""
    return [c for c in monitor_runs.c if with_report or c.name != "report"]


def get_run(conn: Connection, monitor: str, run_id: int, with_report: bool = True) -> Any | None:
    """Run `run_id` of `monitor` (None when that monitor has no such run, including another monitor's run)."""
    return conn.execute(select(*_run_columns(with_report)).where(monitor_runs.c.monitor == monitor,
                                                                 monitor_runs.c.id == run_id)).first()


def list_runs(conn: Connection, monitor: str, limit: int, with_report: bool = False) -> Sequence[Any]:
    """Newest first (latest window end, then latest id); the (large) report column only when asked for."""
    return conn.execute(select(*_run_columns(with_report)).where(monitor_runs.c.monitor == monitor)
                        .order_by(monitor_runs.c.window_end.desc(), monitor_runs.c.id.desc())
                        .limit(limit)).all()


def newest_runs(conn: Connection) -> Sequence[Any]:
    """(name, deployment, values, timestamp) of the newest run of every monitor that has run, by name.

    One query for all monitors (what a /metrics scrape needs), through the index on (monitor, window_end)
    and without the report column. "Newest" is what `list_runs(conn, name, 1)` answers, so the gauges
    describe the run the report shows."""
    newest_id = (select(monitor_runs.c.id).where(monitor_runs.c.monitor == monitors.c.name)
                 .order_by(monitor_runs.c.window_end.desc(), monitor_runs.c.id.desc()).limit(1)
                 .correlate(monitors).scalar_subquery())
    return conn.execute(select(monitors.c.name, monitors.c.deployment, monitor_runs.c["values"],
                               monitor_runs.c.timestamp)
                        .join(monitor_runs, monitor_runs.c.id == newest_id).where(in_scope(monitors.c.project))
                        .order_by(monitors.c.name)).all()


# ---- scheduling ------------------------------------------------------------------------------

def _free(now: int) -> Any:
    return or_(monitors.c.lease_owner.is_(None), monitors.c.lease_expires.is_(None),
               monitors.c.lease_expires < now)


def due_monitors(conn: Connection, now: int) -> Sequence[Any]:
    """Scheduled monitors whose next tick has come and that no live lease holds, oldest tick first."""
    return conn.execute(select(monitors.c.name, monitors.c.schedule, monitors.c.next_run_time)
                        .where(monitors.c.schedule.is_not(None), monitors.c.next_run_time <= now, _free(now))
                        .order_by(monitors.c.next_run_time, monitors.c.name)).all()


def claim_monitor(conn: Connection, name: str, due: int, next_run_time: int, owner: str, now: int,
                  lease_expires: int) -> bool:
    """Take the lease on the tick due at `due` and move the monitor to `next_run_time`, in one conditional
    UPDATE; False when another scheduler took this tick first (or holds a live lease)."""
    stmt = (update(monitors)
            .where(monitors.c.name == name, monitors.c.next_run_time == due, monitors.c.next_run_time <= now,
                   _free(now))
            .values(next_run_time=next_run_time, lease_owner=owner, lease_expires=lease_expires))
    return conn.execute(stmt).rowcount == 1


def release_monitor(conn: Connection, name: str, owner: str) -> None:
    """Give the lease back, only if it is still ours (an expired one may have been taken over)."""
    conn.execute(update(monitors).where(monitors.c.name == name, monitors.c.lease_owner == owner)
                 .values(lease_owner=None, lease_expires=None))
