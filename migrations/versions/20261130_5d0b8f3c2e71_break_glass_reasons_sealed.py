"""break-glass reasons and review notes sealed

Revision ID: 5d0b8f3c2e71
Revises: a7c3e91d5b20
Create Date: 2026-11-30 01:20:00.000000

``break_glass_grant``: ``reason`` and ``review_note`` become sealed columns under a data key of
the grant's own (``key_id``). Sealing needs the key provider, which a migration does not hold
(an HSM, a key file named only at run time), so the clear text of existing grants moves to
``legacy_reason`` / ``legacy_review_note`` and the registry's next start-up seals it and
empties those columns (registry.vault.access.seal_legacy_grants), in one transaction,
idempotently, with an audit event.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.security.sealed

revision: str = '5d0b8f3c2e71'
down_revision: str | None = 'a7c3e91d5b20'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('break_glass_grant', schema=None) as batch_op:
        batch_op.alter_column('reason', new_column_name='legacy_reason',
                              existing_type=sa.String(length=500),
                              nullable=True)
        batch_op.alter_column('review_note', new_column_name='legacy_review_note',
                              existing_type=sa.String(length=500),
                              existing_nullable=True)
    with op.batch_alter_table('break_glass_grant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('reason', registry.security.sealed.Sealed(),
                                      nullable=True))
        batch_op.add_column(sa.Column('review_note', registry.security.sealed.Sealed(),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_break_glass_grant_key_id'), ['key_id'],
                              unique=False)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM break_glass_grant WHERE key_id IS NOT NULL "
                            "LIMIT 1")).first() is not None:
        raise RuntimeError("break-glass reasons are sealed; downgrading would lose them")
    with op.batch_alter_table('break_glass_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_break_glass_grant_key_id'))
        batch_op.drop_column('review_note')
        batch_op.drop_column('reason')
        batch_op.drop_column('key_id')
    with op.batch_alter_table('break_glass_grant', schema=None) as batch_op:
        batch_op.alter_column('legacy_reason', new_column_name='reason',
                              existing_type=sa.String(length=500),
                              nullable=False)
        batch_op.alter_column('legacy_review_note', new_column_name='review_note',
                              existing_type=sa.String(length=500),
                              existing_nullable=True)
