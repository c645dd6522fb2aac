"""reindex progress on the collection being built

Revision ID: 0003_reindex_progress
Revises: 0002_indexing_pipeline

"""
from alembic import op
import sqlalchemy as sa

revision = '0003_reindex_progress'
down_revision = '0002_indexing_pipeline'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('index_collections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photos_total', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('photos_done', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('index_collections', schema=None) as batch_op:
        batch_op.drop_column('progress_at')
        batch_op.drop_column('photos_done')
        batch_op.drop_column('photos_total')
