"""security: named secrets, stored encrypted; webhook URLs and signing secrets widened for ciphertext

Existing webhook rows stay readable in plain text; `arsenale secrets rotate` encrypts them (a data migration
here would need the encryption key at migration time).

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('secrets',
    sa.Column('project', sa.String(length=256), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('update_time', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('project', 'name', name=op.f('pk_secrets'))
    )
    # SQLite never enforces a VARCHAR length, and rebuilding `webhooks` there (batch mode) would drop the old
    # table with foreign keys on, cascading into webhook_deliveries: only PostgreSQL needs the wider type.
    if op.get_bind().dialect.name != 'sqlite':
        op.alter_column('webhooks', 'url', existing_type=sa.String(length=2000), type_=sa.Text(),
                        existing_nullable=False)
        op.alter_column('webhooks', 'secret', existing_type=sa.String(length=256), type_=sa.Text(),
                        existing_nullable=False)


def downgrade() -> None:
    # Values encrypted since 0015 may not fit the old widths: narrowing would fail, so the columns stay Text.
    op.drop_table('secrets')
