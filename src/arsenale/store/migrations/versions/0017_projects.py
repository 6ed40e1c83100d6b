"""projects: experiments, models, datasets, deployments, monitors, prompts, indexes and traces belong to one

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

TABLES = ('experiments', 'registered_models', 'datasets', 'deployments', 'monitors', 'prompts',
          'vector_indexes', 'llm_traces')


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column('project', sa.String(length=128), server_default='default',
                                       nullable=False))
        op.create_index(op.f(f'ix_{table}_project'), table, ['project'], unique=False)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(op.f(f'ix_{table}_project'), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column('project')
