"""admin pages sessions kept on the server, so that logging out ends them

Revision ID: 0005_admin_sessions
Revises: 0004_feeds_duplicates

"""
from alembic import op
import sqlalchemy as sa

revision = '0005_admin_sessions'
down_revision = '0004_feeds_duplicates'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'admin_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_sessions_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_sessions_expires_at'))
    op.drop_table('admin_sessions')
