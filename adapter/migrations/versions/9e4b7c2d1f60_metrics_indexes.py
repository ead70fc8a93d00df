"""metrics indexes: /metrics reads its counts from covering indexes

The scrape groups every delivery by status, site and target (with its attempts and due
time) and every message by conversation, direction and status (with its accepted and
sent times); these indexes hold all it reads, so neither table's rows are visited
(SQLite) and the open deliveries are found by status (both databases).

Revision ID: 9e4b7c2d1f60
Revises: 8d2e3f4a5b6c
Create Date: 2026-12-03 14:20:00

"""
from alembic import op

revision = '9e4b7c2d1f60'
down_revision = '8d2e3f4a5b6c'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_status_site_metrics',
                              ['status', 'site', 'target', 'attempts', 'due_at', 'created_at'],
                              unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_conversation_metrics',
                              ['conversation_id', 'direction', 'status', 'created_at',
                               'sent_at'], unique=False)


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_conversation_metrics')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_status_site_metrics')
