"""break-glass grants and person restrictions

Revision ID: 6ab345d7193d
Revises: 7f110c0a8650
Create Date: 2026-11-29 21:43:40.114447
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.models._types


revision: str = '6ab345d7193d'
down_revision: str | None = '7f110c0a8650'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('break_glass_grant',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('officer_scope', sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=False),
    sa.Column('jurisdiction_code', sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('opened_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reviewed_at', registry.models._types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.Uuid(), nullable=True),
    sa.Column('review_note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.ForeignKeyConstraint(['reviewed_by'], ['user_account.id'], name=op.f('fk_break_glass_grant_reviewed_by_user_account')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_break_glass_grant_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_break_glass_grant'))
    )
    with op.batch_alter_table('break_glass_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_break_glass_grant_jurisdiction_code'), ['jurisdiction_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_break_glass_grant_record_id'), ['record_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_break_glass_grant_reviewed_at'), ['reviewed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_break_glass_grant_user_id'), ['user_id'], unique=False)

    op.create_table('person_restriction',
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('set_by', sa.Uuid(), nullable=True),
    sa.Column('set_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_person_restriction_person_id_person')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_person_restriction_user_id_user_account')),
    sa.PrimaryKeyConstraint('person_id', 'user_id', name=op.f('pk_person_restriction'))
    )


def downgrade() -> None:
    op.drop_table('person_restriction')
    with op.batch_alter_table('break_glass_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_break_glass_grant_user_id'))
        batch_op.drop_index(batch_op.f('ix_break_glass_grant_reviewed_at'))
        batch_op.drop_index(batch_op.f('ix_break_glass_grant_record_id'))
        batch_op.drop_index(batch_op.f('ix_break_glass_grant_jurisdiction_code'))

    op.drop_table('break_glass_grant')
