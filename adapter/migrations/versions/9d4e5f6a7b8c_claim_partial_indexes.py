"""claim partial indexes: the claim's cost follows the backlog, not the history

The claim looked for lane heads by walking the primary key from the first delivery ever
made, and checked each lane's older rows through (lane, id), done ones included: 19-25 ms
a claim at ~106k rows of history, growing with the deployment's age. Two partial indexes
hold only unfinished rows.

Revision ID: 9d4e5f6a7b8c
Revises: 7c1d2e3f4a5b
Create Date: 2026-12-03 14:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = '9d4e5f6a7b8c'
down_revision = '7c1d2e3f4a5b'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
ACTIVE = sa.text("status IN ('pending', 'sending', 'held')")


def upgrade():
    op.create_index('ix_deliveries_pending_id', 'deliveries', ['id'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index('ix_deliveries_active_lane_id', 'deliveries', ['lane', 'id'],
                    postgresql_where=ACTIVE, sqlite_where=ACTIVE)


def downgrade():
    op.drop_index('ix_deliveries_active_lane_id', table_name='deliveries')
    op.drop_index('ix_deliveries_pending_id', table_name='deliveries')
