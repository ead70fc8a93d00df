"""operators: accounts of the operations console (/console)

Revision ID: 9e4f6a7b8c2d
Revises: a1b2c3d4e5f6
Create Date: 2026-12-03 14:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = '9e4f6a7b8c2d'
down_revision = 'a1b2c3d4e5f6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'operators',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('sites', sa.JSON(), nullable=True),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('disabled_at', sa.DateTime(), nullable=True),
        sa.Column('sessions_valid_after', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_operators')),
        sa.UniqueConstraint('name', name=op.f('uq_operators_name')),
    )


def downgrade():
    op.drop_table('operators')
