"""the descriptors' definition each collection was built with: a stale one is named at start, a reindex moves it

Revision ID: 0010_collection_descriptors
Revises: 0009_experiments

"""
from alembic import op
import sqlalchemy as sa

revision = '0010_collection_descriptors'
down_revision = '0009_experiments'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('index_collections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('descriptors', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('index_collections', schema=None) as batch_op:
        batch_op.drop_column('descriptors')
