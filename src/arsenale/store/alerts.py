"""SQL for alert rules and alerts. Each function runs inside the caller's transaction.

`lock_rules` is `SELECT … FOR UPDATE`: on PostgreSQL it serialises evaluations of one monitor's rules row by
row; on SQLite the clause is dropped and the write transaction (BEGIN IMMEDIATE) already serialises writers.

Rules and alerts have no project of their own: they are their monitor's. The reads a person asks for carry the
monitor's `project` (for `visible_row`) and the lists keep to the scope's monitors; evaluation and delivery
bookkeeping go by id, after their monitor was checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from arsenale.security.projects import current, in_scope
from arsenale.store.tables import alert_rules, alerts, monitors

# The monitor a rule (or an alert, through its rule) belongs to: where its project comes from.
_MONITOR = monitors.c.name == alert_rules.c.monitor


def _in_scope(q: Any) -> Any:
    """`q` (over alert_rules) kept to the scope's monitors; as it is when unconfined."""
    return q.join(monitors, _MONITOR).where(in_scope(monitors.c.project)) if current().confined else q


def insert_rule(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(alert_rules).values(**row).returning(alert_rules.c.id)).scalar_one())


def get_rule(conn: Connection, rule_id: int) -> Any | None:
    """The rule with its monitor's `project`."""
    return conn.execute(select(alert_rules, monitors.c.project).outerjoin(monitors, _MONITOR)
                        .where(alert_rules.c.id == rule_id)).first()


def find_rule(conn: Connection, monitor: str, name: str) -> Any | None:
    return conn.execute(select(alert_rules).where(alert_rules.c.monitor == monitor,
                                                  alert_rules.c.name == name)).first()


def list_rules(conn: Connection, monitor: str | None = None) -> Sequence[Any]:
    """The rules of the scope's monitors (every rule when unconfined)."""
    q = _in_scope(select(alert_rules)).order_by(alert_rules.c.monitor, alert_rules.c.id)
    if monitor is not None:
        q = q.where(alert_rules.c.monitor == monitor)
    return conn.execute(q).all()


def lock_rules(conn: Connection, monitor: str) -> Sequence[Any]:
    """The monitor's enabled rules, locked until the transaction ends, in a fixed order (no deadlocks)."""
    return conn.execute(select(alert_rules)
                        .where(alert_rules.c.monitor == monitor, alert_rules.c.enabled.is_(True))
                        .order_by(alert_rules.c.id).with_for_update()).all()


def set_rule_state(conn: Connection, rule_id: int, state: str) -> None:
    conn.execute(update(alert_rules).where(alert_rules.c.id == rule_id).values(state=state))


def delete_rule(conn: Connection, rule_id: int) -> bool:
    """The rule and its alerts."""
    conn.execute(delete(alerts).where(alerts.c.rule_id == rule_id))
    return bool(conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount)


def insert_alert(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(alerts).values(**row).returning(alerts.c.id)).scalar_one())


def _with_rule() -> Any:
    return select(alerts, alert_rules.c.name.label("rule"), alert_rules.c.severity) \
        .join(alert_rules, alert_rules.c.id == alerts.c.rule_id)


def get_alert(conn: Connection, alert_id: int, *, lock: bool = False) -> Any | None:
    """The alert with its rule's name and severity (and, unless locking it to update, its monitor's
    `project`)."""
    q = _with_rule().where(alerts.c.id == alert_id)
    if lock:
        return conn.execute(q.with_for_update(of=alerts)).first()
    return conn.execute(q.add_columns(monitors.c.project).outerjoin(monitors, _MONITOR)).first()


def open_alert(conn: Connection, rule_id: int) -> Any | None:
    """The rule's firing alert (there is at most one: a rule fires again only after it resolved)."""
    return conn.execute(select(alerts).where(alerts.c.rule_id == rule_id, alerts.c.status == "firing")
                        .order_by(alerts.c.id.desc()).limit(1).with_for_update()).first()


def list_alerts(conn: Connection, monitor: str | None, status: str | None, limit: int) -> Sequence[Any]:
    """Newest first."""
    q = _in_scope(_with_rule()).order_by(alerts.c.id.desc()).limit(limit)
    if monitor is not None:
        q = q.where(alerts.c.monitor == monitor)
    if status is not None:
        q = q.where(alerts.c.status == status)
    return conn.execute(q).all()


def update_alert(conn: Connection, alert_id: int, **values: Any) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))
