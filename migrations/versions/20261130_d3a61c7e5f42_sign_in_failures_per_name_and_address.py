"""sign-in failures per name and address

Revision ID: d3a61c7e5f42
Revises: b8e4f0a2c913
Create Date: 2026-11-30 02:30:00.000000

``sign_in_failure``: failed sign-ins counted per normalised username, existing or not, and per
client address, each under a keyed hash (registry.vault.accounts). The lockout moves there from
``user_account.failed_logins`` / ``locked_until``, which are dropped: counting only real
accounts told anyone which usernames exist. A lockout in force at the upgrade is lifted.
The columns go with a plain ``ALTER TABLE … DROP COLUMN`` on SQLite too (3.35+): rebuilding
``user_account`` would trip the foreign keys that point at it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.models._types

revision: str = 'd3a61c7e5f42'
down_revision: str | None = 'b8e4f0a2c913'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sign_in_failure',
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', registry.models._types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'digest', name=op.f('pk_sign_in_failure'))
    )
    op.create_index(op.f('ix_sign_in_failure_expires_at'), 'sign_in_failure', ['expires_at'],
                    unique=False)
    op.drop_column('user_account', 'locked_until')
    op.drop_column('user_account', 'failed_logins')


def downgrade() -> None:
    op.add_column('user_account', sa.Column('failed_logins', sa.Integer(), nullable=False,
                                            server_default='0'))
    op.add_column('user_account', sa.Column(
        'locked_until', registry.models._types.UTCDateTime(timezone=True), nullable=True))
    op.drop_index(op.f('ix_sign_in_failure_expires_at'), table_name='sign_in_failure')
    op.drop_table('sign_in_failure')
