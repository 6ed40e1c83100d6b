"""LLMOps: vector indexes and their immutable versions

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vector_indexes',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=16), nullable=False),
    sa.Column('embedder', sa.Text(), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_vector_indexes'))
    )
    op.create_table('vector_index_versions',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('parent_version', sa.Integer(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['name'], ['vector_indexes.name'], name=op.f('fk_vector_index_versions_name_vector_indexes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'version', name=op.f('pk_vector_index_versions'))
    )


def downgrade() -> None:
    op.drop_table('vector_index_versions')
    op.drop_table('vector_indexes')
