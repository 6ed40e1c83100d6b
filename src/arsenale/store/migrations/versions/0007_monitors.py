"""monitors

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monitors',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('deployment', sa.String(length=256), nullable=False),
    sa.Column('reference', sa.String(length=256), nullable=False),
    sa.Column('window_s', sa.Integer(), nullable=False),
    sa.Column('schedule', sa.String(length=256), nullable=True),
    sa.Column('settings', sa.Text(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_monitors'))
    )
    op.create_table('monitor_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('monitor', sa.String(length=256), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('window_end', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('values', sa.Text(), nullable=False),
    sa.Column('report', sa.Text(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['monitor'], ['monitors.name'],
                            name=op.f('fk_monitor_runs_monitor_monitors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_runs'))
    )
    op.create_index('ix_monitor_runs_monitor_end', 'monitor_runs', ['monitor', 'window_end'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_monitor_runs_monitor_end', table_name='monitor_runs')
    op.drop_table('monitor_runs')
    op.drop_table('monitors')
