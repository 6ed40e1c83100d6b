"""feature store definitions and materializations

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feature_definitions',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'name', 'version', name=op.f('pk_feature_definitions')),
    sa.UniqueConstraint('kind', 'name', 'fingerprint', name='uq_feature_definitions_fingerprint')
    )
    op.create_table('feature_materializations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('view', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('online_store', sa.String(length=1000), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=True),
    sa.Column('end_time', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started', sa.BigInteger(), nullable=False),
    sa.Column('finished', sa.BigInteger(), nullable=True),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feature_materializations'))
    )
    op.create_index('ix_feature_materializations_view', 'feature_materializations', ['view', 'version', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_feature_materializations_view', table_name='feature_materializations')
    op.drop_table('feature_materializations')
    op.drop_table('feature_definitions')
