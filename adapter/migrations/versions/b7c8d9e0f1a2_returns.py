"""returns: a child who writes again soon after a close reopens the conversation

Revision ID: b7c8d9e0f1a2
Revises: 9e4b7c2d1f60
Create Date: 2026-12-04 19:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'b7c8d9e0f1a2'
down_revision = '9e4b7c2d1f60'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reopen_count', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('reopened_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('previous_id', sa.String(length=36), nullable=True))
        batch_op.create_index('ix_conversations_previous_id', ['previous_id'], unique=False)


def downgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_previous_id')
        batch_op.drop_column('previous_id')
        batch_op.drop_column('reopened_at')
        batch_op.drop_column('reopen_count')
