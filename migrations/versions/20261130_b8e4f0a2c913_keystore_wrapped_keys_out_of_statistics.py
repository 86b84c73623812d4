"""wrapped data keys kept out of PostgreSQL's planner statistics

Revision ID: b8e4f0a2c913
Revises: 5d0b8f3c2e71
Create Date: 2026-11-30 02:00:00.000000

PostgreSQL's ANALYZE (autovacuum runs it) copies sample values of every column into
``pg_statistic``: for ``keystore.data_key.wrapped`` about a hundred wrapped data keys, which
would outlive their erasure there. Statistics on that column serve no query, so none are
gathered (statistics target 0), and those gathered so far are dropped (re-declaring the
column's type removes its ``pg_statistic`` entry; no rewrite, since the type is the same).
SQLite keeps no sample values unless ``ANALYZE`` runs with SQLITE_ENABLE_STAT4, which the
registry never runs.
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'b8e4f0a2c913'
down_revision: str | None = '5d0b8f3c2e71'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE keystore.data_key ALTER COLUMN wrapped SET STATISTICS 0")
    op.execute("ALTER TABLE keystore.data_key ALTER COLUMN wrapped TYPE bytea")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE keystore.data_key ALTER COLUMN wrapped SET STATISTICS -1")
