"""conversation language: the child's language (ISO 639-3), for the texts they are sent

Revision ID: b7e1c4d2a9f3
Revises: b7c8d9e0f1a2
Create Date: 2026-12-04 19:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'b7e1c4d2a9f3'
down_revision = 'b7c8d9e0f1a2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=3), nullable=True))


def downgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('language')
