"""security: retention policies, deleted-run bookkeeping and legal holds on model versions

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retention_policies',
    sa.Column('project', sa.String(length=256), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('max_age_seconds', sa.BigInteger(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('update_time', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=256), nullable=False),
    sa.Column('last_applied_at', sa.BigInteger(), nullable=True),
    sa.Column('lease_owner', sa.String(length=256), nullable=True),
    sa.Column('lease_until', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('project', 'kind', name=op.f('pk_retention_policies'))
    )
    op.create_table('retention_deleted_runs',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('seen_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_retention_deleted_runs'))
    )
    op.create_table('legal_holds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('released_at', sa.BigInteger(), nullable=True),
    sa.Column('released_by', sa.String(length=256), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_holds'))
    )
    op.create_index('ix_legal_holds_version', 'legal_holds', ['name', 'version'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_legal_holds_version', table_name='legal_holds')
    op.drop_table('legal_holds')
    op.drop_table('retention_deleted_runs')
    op.drop_table('retention_policies')
