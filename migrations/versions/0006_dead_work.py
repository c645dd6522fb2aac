"""who runs an import and who builds a collection, so that the sweep can tell when that process died

Revision ID: 0006_dead_work
Revises: 0005_admin_sessions

"""
from alembic import op
import sqlalchemy as sa

revision = '0006_dead_work'
down_revision = '0005_admin_sessions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('imports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('runner', sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('index_collections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('builder', sa.String(length=160), nullable=True))


def downgrade():
    with op.batch_alter_table('index_collections', schema=None) as batch_op:
        batch_op.drop_column('builder')
    with op.batch_alter_table('imports', schema=None) as batch_op:
        batch_op.drop_column('progress_at')
        batch_op.drop_column('runner')
