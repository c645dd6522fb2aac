"""a product's page on the shop's own site: the widget links each look-alike there

Revision ID: 0007_product_url
Revises: 0006_dead_work

"""
from alembic import op
import sqlalchemy as sa

revision = '0007_product_url'
down_revision = '0006_dead_work'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url', sa.String(length=2048), nullable=True))


def downgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('url')
