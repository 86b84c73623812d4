"""Retention: legal holds, erasure tombstones (no personal data), and corrections cases
archived read-only.

Revision ID: 13ed179fe4ed
Revises: 6ab345d7193d
Create Date: 2026-11-29 22:16:43.785912
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.models._types

revision: str = '13ed179fe4ed'
down_revision: str | None = '6ab345d7193d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('erasure',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=False),
    sa.Column('jurisdiction_code', sqlmodel.sql.sqltypes.AutoString(length=15), nullable=True),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('key_id', sa.Uuid(), nullable=False),
    sa.Column('erased_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('erased_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erasure'))
    )
    with op.batch_alter_table('erasure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasure_jurisdiction_code'), ['jurisdiction_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_erasure_record_id'), ['record_id'], unique=False)

    op.create_table('legal_hold',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('placed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('placed_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lifted_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('lifted_at', registry.models._types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_hold'))
    )
    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legal_hold_ref'), ['ref'], unique=False)

    with op.batch_alter_table('corrections_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived_on', sa.Date(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('corrections_case', schema=None) as batch_op:
        batch_op.drop_column('archived_on')

    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legal_hold_ref'))

    op.drop_table('legal_hold')
    with op.batch_alter_table('erasure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasure_record_id'))
        batch_op.drop_index(batch_op.f('ix_erasure_jurisdiction_code'))

    op.drop_table('erasure')
