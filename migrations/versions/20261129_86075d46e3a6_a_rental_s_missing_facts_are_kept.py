"""a rental's missing facts are kept

The registration-rate metric counts rentals whose ``missing`` column is empty; until now the
column was never written, and the landlord's phone (the one basic fact a rental may be
registered without) was worked out on reading. Fill it for the rentals already registered.

Revision ID: 86075d46e3a6
Revises: 51877695bea4
Create Date: 2026-11-29 20:08:53.134636
"""

from collections.abc import Sequence

from alembic import op

revision: str = '86075d46e3a6'
down_revision: str | None = '51877695bea4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE rental_property SET missing = 'landlord.phone' "
               "WHERE landlord_phone IS NULL")


def downgrade() -> None:
    op.execute("UPDATE rental_property SET missing = ''")
