"""gate runs

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gate_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('champion_version', sa.Integer(), nullable=True),
    sa.Column('dataset', sa.String(length=1000), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('results', sa.Text(), nullable=False),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('promotion', sa.Text(), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gate_runs'))
    )
    op.create_index('ix_gate_runs_version', 'gate_runs', ['name', 'version', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_gate_runs_version', table_name='gate_runs')
    op.drop_table('gate_runs')
