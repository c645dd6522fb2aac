"""indexing pipeline: claims, failure kinds, collections per model version

Revision ID: 0002_indexing_pipeline
Revises: 0001_initial

"""
from alembic import op
import sqlalchemy as sa

revision = '0002_indexing_pipeline'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('product_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
    op.create_table('index_collections',
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('model_version', sa.String(length=80), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('switched_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_index_collections'))
    )
    op.create_index('uq_index_collections_one_active', 'index_collections', ['state'], unique=True,
                    sqlite_where=sa.text("state = 'active'"), postgresql_where=sa.text("state = 'active'"))


def downgrade():
    op.drop_index('uq_index_collections_one_active', table_name='index_collections',
                  sqlite_where=sa.text("state = 'active'"), postgresql_where=sa.text("state = 'active'"))
    op.drop_table('index_collections')
    with op.batch_alter_table('product_images', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('failure_kind')
