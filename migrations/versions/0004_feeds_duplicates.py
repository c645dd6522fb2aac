"""catalog feed imports and duplicate photos

Revision ID: 0004_feeds_duplicates
Revises: 0003_reindex_progress

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004_feeds_duplicates'
down_revision = '0003_reindex_progress'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    op.create_table(
        'photo_duplicates',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('other_id', sa.Integer(), nullable=False),
        sa.Column('distance', sa.Float(), nullable=False),
        sa.Column('same_file', sa.Boolean(), nullable=False),
        sa.Column('found_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['product_images.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['other_id'], ['product_images.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id', 'other_id'),
    )
    with op.batch_alter_table('photo_duplicates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_photo_duplicates_other_id'), ['other_id'], unique=False)
    op.create_table(
        'imports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('feed_name', sa.String(length=255), nullable=False),
        sa.Column('photos_from', sa.String(length=16), nullable=False),
        sa.Column('dry_run', sa.Boolean(), nullable=False),
        sa.Column('rows_total', sa.Integer(), nullable=True),
        sa.Column('rows_done', sa.Integer(), nullable=False),
        sa.Column('summary', JSON, nullable=False),
        sa.Column('errors', JSON, nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('imports')
    with op.batch_alter_table('photo_duplicates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_photo_duplicates_other_id'))
    op.drop_table('photo_duplicates')
