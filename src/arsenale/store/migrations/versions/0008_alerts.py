"""alerts

Revision ID: 0008
Revises: 0007
"""
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('monitors', sa.Column('next_run_time', sa.BigInteger(), nullable=True))
    op.add_column('monitors', sa.Column('lease_owner', sa.String(length=256), nullable=True))
    op.add_column('monitors', sa.Column('lease_expires', sa.BigInteger(), nullable=True))
    op.create_index('ix_monitors_due', 'monitors', ['next_run_time'], unique=False)
    op.create_table('alert_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('monitor', sa.String(length=256), nullable=False),
    sa.Column('expression', sa.Text(), nullable=False),
    sa.Column('notify', sa.Text(), nullable=False),
    sa.Column('trigger_pipeline', sa.String(length=1000), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['monitor'], ['monitors.name'],
                            name=op.f('fk_alert_rules_monitor_monitors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules')),
    sa.UniqueConstraint('monitor', 'name', name='uq_alert_rules_monitor_name')
    )
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('monitor', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Text(), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=False),
    sa.Column('resolved_at', sa.BigInteger(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('resolved_run_id', sa.Integer(), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('pipeline_run_id', sa.String(length=32), nullable=True),
    sa.Column('pipeline_error', sa.Text(), nullable=True),
    sa.Column('deliveries', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'],
                            name=op.f('fk_alerts_rule_id_alert_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_alerts_rule_status', 'alerts', ['rule_id', 'status'], unique=False)
    op.create_index('ix_alerts_monitor_id', 'alerts', ['monitor', 'id'], unique=False)
    _schedule_existing_monitors()


def _schedule_existing_monitors() -> None:
    """Monitors created with a cron schedule before this revision get their next tick, so the scheduler
    picks them up like new ones (an invalid stored expression is left unscheduled rather than failing)."""
    from croniter import croniter

    monitors = sa.table('monitors', sa.column('name', sa.String()), sa.column('schedule', sa.String()),
                        sa.column('next_run_time', sa.BigInteger()))
    conn = op.get_bind()
    now = datetime.fromtimestamp(time.time(), tz=UTC)
    for name, cron in conn.execute(sa.select(monitors.c.name, monitors.c.schedule)
                                   .where(monitors.c.schedule.is_not(None))).all():
        if not croniter.is_valid(cron):
            continue
        nxt = int(croniter(cron, now).get_next(datetime).timestamp() * 1000)
        conn.execute(sa.update(monitors).where(monitors.c.name == name).values(next_run_time=nxt))


def downgrade() -> None:
    op.drop_index('ix_alerts_monitor_id', table_name='alerts')
    op.drop_index('ix_alerts_rule_status', table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('alert_rules')
    op.drop_index('ix_monitors_due', table_name='monitors')
    with op.batch_alter_table('monitors') as batch:
        batch.drop_column('lease_expires')
        batch.drop_column('lease_owner')
        batch.drop_column('next_run_time')
