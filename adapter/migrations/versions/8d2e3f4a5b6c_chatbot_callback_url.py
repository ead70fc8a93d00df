"""chatbot callback url: where a conversation's chatbot is called back

A Weni generic ticketer gives, with each open, the base URL its callbacks go to
(``metadata.webhook_base_url``): kept with the conversation, never hard-coded.

Revision ID: 8d2e3f4a5b6c
Revises: 9e4f6a7b8c2d
Create Date: 2026-12-03 14:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '8d2e3f4a5b6c'
down_revision = '9e4f6a7b8c2d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chatbot_callback_url', sa.String(length=2048),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('chatbot_callback_url')
