"""held after hours: when a conversation started while its site was closed and was held

``conversations.held_since`` is set when a start arrives outside the site's opening
hours (``[hours] outside = "hold"``) and cleared when the site opens and the
conversation goes to the helpline; while it is set, its wait is not counted
(``assignment_timeout``, ``still_waiting`` count from the opening).

Revision ID: b7e1c4d9a2f3
Revises: b7e1c4d2a9f3
Create Date: 2026-12-04 19:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'b7e1c4d9a2f3'
down_revision = 'b7e1c4d2a9f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_since', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_conversations_held', ['site'], unique=False,
                              postgresql_where=sa.text('held_since IS NOT NULL'),
                              sqlite_where=sa.text('held_since IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_held')
        batch_op.drop_column('held_since')
