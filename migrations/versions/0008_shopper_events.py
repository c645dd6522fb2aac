"""shopper events: impressions, clicks, add-to-cart and purchases of the look-alikes shown

Revision ID: 0008_shopper_events
Revises: 0007_product_url

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0008_shopper_events'
down_revision = '0007_product_url'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'shopper_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('query_product_id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=True),
        sa.Column('position', sa.Integer(), nullable=True),
        sa.Column('shown', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('shown_count', sa.Integer(), nullable=False),
        sa.Column('visitor', sa.String(length=64), nullable=False),
        sa.Column('model_version', sa.String(length=80), nullable=False),
        sa.Column('arm', sa.String(length=40), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_shopper_events_at', 'shopper_events', ['at'], unique=False)


def downgrade():
    op.drop_index('ix_shopper_events_at', table_name='shopper_events')
    op.drop_table('shopper_events')
