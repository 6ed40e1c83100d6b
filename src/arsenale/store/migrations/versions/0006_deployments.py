"""deployments

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deployments',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('controller_owner', sa.String(length=256), nullable=True),
    sa.Column('controller_until', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_update_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_deployments'))
    )
    op.create_table('deployment_revisions',
    sa.Column('deployment', sa.String(length=256), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['deployment'], ['deployments.name'],
                            name=op.f('fk_deployment_revisions_deployment_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('deployment', 'revision', name=op.f('pk_deployment_revisions'))
    )
    op.create_table('deployment_decisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('deployment', sa.String(length=256), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('step', sa.Float(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['deployment'], ['deployments.name'],
                            name=op.f('fk_deployment_decisions_deployment_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployment_decisions'))
    )
    op.create_index('ix_deployment_decisions_deployment_time', 'deployment_decisions',
                    ['deployment', 'timestamp'], unique=False)
    op.create_table('deployment_stats',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('deployment', sa.String(length=256), nullable=False),
    sa.Column('replica', sa.String(length=256), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('errors', sa.BigInteger(), nullable=False),
    sa.Column('latency_counts', sa.Text(), nullable=False),
    sa.Column('latency_sum_ms', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['deployment'], ['deployments.name'],
                            name=op.f('fk_deployment_stats_deployment_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployment_stats'))
    )
    op.create_index('ix_deployment_stats_deployment_window', 'deployment_stats',
                    ['deployment', 'window_start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_deployment_stats_deployment_window', table_name='deployment_stats')
    op.drop_table('deployment_stats')
    op.drop_index('ix_deployment_decisions_deployment_time', table_name='deployment_decisions')
    op.drop_table('deployment_decisions')
    op.drop_table('deployment_revisions')
    op.drop_table('deployments')
