"""search order index

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_experiment_start')
    op.create_index('ix_runs_experiment_order', 'runs',
                    ['experiment_id', sa.text('start_time DESC'), 'run_id', 'lifecycle_stage'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_runs_experiment_order', table_name='runs')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_experiment_start', ['experiment_id', 'start_time'], unique=False)
