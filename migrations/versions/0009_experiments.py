"""model A/B tests: the experiments and their arms

Revision ID: 0009_experiments
Revises: 0008_shopper_events

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0009_experiments'
down_revision = '0008_shopper_events'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'experiments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('arms', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('kept', sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('uq_experiments_one_running', 'experiments', ['state'], unique=True,
                    sqlite_where=sa.text("state = 'running'"), postgresql_where=sa.text("state = 'running'"))


def downgrade():
    op.drop_index('uq_experiments_one_running', table_name='experiments')
    op.drop_table('experiments')
