"""namespaces: a chatbot's ids are its own; replays re-check the site

Conversations and cases are named by the chatbot within the namespace of the client
that opened them (by default the client's name), so one chatbot can never name, or
alias, another's. Existing rows get the namespace of the client that opened them.

Revision ID: 7c1d2e3f4a5b
Revises: 42600a1b8138
Create Date: 2026-12-02 16:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '7c1d2e3f4a5b'
down_revision = '42600a1b8138'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('namespace', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('reads_all', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site', sa.String(length=64), nullable=True))
    for table in ('conversations', 'cases'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('namespace', sa.String(length=120), nullable=True))
        op.execute(f"UPDATE {table} SET namespace = COALESCE(opened_by, '')")  # noqa: S608 (fixed names)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('namespace', existing_type=sa.String(length=120),
                                  nullable=False)
            batch_op.drop_constraint(f'uq_{table}_external_id', type_='unique')
            batch_op.create_unique_constraint(f'uq_{table}_namespace_external_id',
                                              ['namespace', 'external_id'])


def downgrade():
    for table in ('cases', 'conversations'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'uq_{table}_namespace_external_id', type_='unique')
            batch_op.create_unique_constraint(f'uq_{table}_external_id', ['external_id'])
            batch_op.drop_column('namespace')
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_column('site')
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_column('reads_all')
        batch_op.drop_column('namespace')
