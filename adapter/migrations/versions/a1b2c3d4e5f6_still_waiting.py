"""still_waiting: when a waiting child was last told they are still waiting

Revision ID: a1b2c3d4e5f6
Revises: 9d4e5f6a7b8c
Create Date: 2026-12-03 14:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'a1b2c3d4e5f6'
down_revision = '9d4e5f6a7b8c'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('still_waiting_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('still_waiting_at')
