"""LLMOps: prompts, prompt labels, traces, spans, scores and model prices

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('llm_prices',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('input_per_million', sa.Float(), nullable=False),
    sa.Column('output_per_million', sa.Float(), nullable=False),
    sa.Column('update_time', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('model', name=op.f('pk_llm_prices'))
    )
    op.create_table('llm_traces',
    sa.Column('trace_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=True),
    sa.Column('session', sa.String(length=256), nullable=True),
    sa.Column('user_id', sa.String(length=256), nullable=True),
    sa.Column('start_ns', sa.BigInteger(), nullable=True),
    sa.Column('end_ns', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('spans', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=True),
    sa.Column('prompt', sa.String(length=256), nullable=True),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('trace_id', name=op.f('pk_llm_traces'))
    )
    op.create_index('ix_llm_traces_session', 'llm_traces', ['session', 'start_ns'], unique=False)
    op.create_index('ix_llm_traces_start', 'llm_traces', ['start_ns'], unique=False)
    op.create_table('prompts',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_prompts'))
    )
    op.create_table('llm_scores',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('trace_id', sa.String(length=32), nullable=False),
    sa.Column('span_id', sa.String(length=16), nullable=True),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['llm_traces.trace_id'], name=op.f('fk_llm_scores_trace_id_llm_traces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_scores'))
    )
    op.create_index('ix_llm_scores_trace', 'llm_scores', ['trace_id'], unique=False)
    op.create_table('llm_spans',
    sa.Column('trace_id', sa.String(length=32), nullable=False),
    sa.Column('span_id', sa.String(length=16), nullable=False),
    sa.Column('parent_span_id', sa.String(length=16), nullable=True),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('start_ns', sa.BigInteger(), nullable=False),
    sa.Column('end_ns', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('model', sa.String(length=256), nullable=True),
    sa.Column('input_tokens', sa.BigInteger(), nullable=True),
    sa.Column('output_tokens', sa.BigInteger(), nullable=True),
    sa.Column('cost', sa.Float(), nullable=True),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['llm_traces.trace_id'], name=op.f('fk_llm_spans_trace_id_llm_traces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trace_id', 'span_id', name=op.f('pk_llm_spans'))
    )
    op.create_table('prompt_labels',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('label', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('update_time', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['name'], ['prompts.name'], name=op.f('fk_prompt_labels_name_prompts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'label', name=op.f('pk_prompt_labels'))
    )
    op.create_table('prompt_versions',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=True),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('variables', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['name'], ['prompts.name'], name=op.f('fk_prompt_versions_name_prompts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'version', name=op.f('pk_prompt_versions'))
    )


def downgrade() -> None:
    op.drop_table('prompt_versions')
    op.drop_table('prompt_labels')
    op.drop_table('llm_spans')
    op.drop_index('ix_llm_scores_trace', table_name='llm_scores')
    op.drop_table('llm_scores')
    op.drop_table('prompts')
    op.drop_index('ix_llm_traces_start', table_name='llm_traces')
    op.drop_index('ix_llm_traces_session', table_name='llm_traces')
    op.drop_table('llm_traces')
    op.drop_table('llm_prices')
