"""pipelines

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pipeline_runs',
    sa.Column('pipeline_run_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('ref', sa.String(length=1000), nullable=False),
    sa.Column('executor', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('trigger', sa.String(length=1000), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('pipeline_run_id', name=op.f('pk_pipeline_runs'))
    )
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.create_index('ix_pipeline_runs_name_start', ['name', 'start_time'], unique=False)
        batch_op.create_index('ix_pipeline_runs_start', ['start_time'], unique=False)

    op.create_table('schedules',
    sa.Column('schedule_id', sa.String(length=32), nullable=False),
    sa.Column('pipeline_ref', sa.String(length=1000), nullable=False),
    sa.Column('cron', sa.String(length=256), nullable=True),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('executor', sa.String(length=256), nullable=False),
    sa.Column('trigger_dataset', sa.String(length=256), nullable=True),
    sa.Column('last_dataset_version', sa.Integer(), nullable=True),
    sa.Column('next_run_time', sa.BigInteger(), nullable=True),
    sa.Column('last_run_time', sa.BigInteger(), nullable=True),
    sa.Column('last_pipeline_run_id', sa.String(length=32), nullable=True),
    sa.Column('lease_owner', sa.String(length=256), nullable=True),
    sa.Column('lease_until', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('schedule_id', name=op.f('pk_schedules'))
    )
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.create_index('ix_schedules_due', ['enabled', 'next_run_time'], unique=False)

    op.create_table('step_runs',
    sa.Column('pipeline_run_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('step_ref', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('layer', sa.Integer(), nullable=False),
    sa.Column('upstream', sa.Text(), nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=True),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('output_digest', sa.String(length=64), nullable=True),
    sa.Column('output_format', sa.String(length=32), nullable=True),
    sa.Column('output_size', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('cached_from', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['pipeline_run_id'], ['pipeline_runs.pipeline_run_id'], name=op.f('fk_step_runs_pipeline_run_id_pipeline_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pipeline_run_id', 'name', name=op.f('pk_step_runs'))
    )
    with op.batch_alter_table('step_runs', schema=None) as batch_op:
        batch_op.create_index('ix_step_runs_cache', ['cache_key', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('step_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_step_runs_cache')

    op.drop_table('step_runs')
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.drop_index('ix_schedules_due')

    op.drop_table('schedules')
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_pipeline_runs_start')
        batch_op.drop_index('ix_pipeline_runs_name_start')

    op.drop_table('pipeline_runs')
