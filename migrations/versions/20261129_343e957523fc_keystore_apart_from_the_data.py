"""The keystore apart from the data: wrapped data keys move to their own schema (an attached
SQLite file beside the data file, or the PostgreSQL schema ``keystore``), and the foreign keys
from the data to them go (none can cross SQLite files).

Revision ID: 343e957523fc
Revises: 9ee104616c59
Create Date: 2026-11-29 21:41:05.020653
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.models._types

revision: str = '343e957523fc'
down_revision: str | None = '9ee104616c59'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYED = ('coordinator', 'corrections_case', 'person', 'release_case', 'rental_property',
         'residency')
COLUMNS = 'id, kek_id, wrapped, created_at, destroyed_at'


def _data_key_table(schema: str | None) -> None:
    op.create_table('data_key',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kek_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('destroyed_at', registry.models._types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_key')),
    schema=schema
    )
    with op.batch_alter_table('data_key', schema=schema) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_key_kek_id'), ['kek_id'], unique=False)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE SCHEMA IF NOT EXISTS keystore')
    _data_key_table('keystore')
    op.execute(f'INSERT INTO keystore.data_key ({COLUMNS}) SELECT {COLUMNS} FROM data_key')
    for table in KEYED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_key_id_data_key'),
                                     type_='foreignkey')
    # Dropped, not merely emptied: on SQLite secure_delete zeroes the pages it held.
    with op.batch_alter_table('data_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_key_kek_id'))
    op.drop_table('data_key')


def downgrade() -> None:
    _data_key_table(None)
    op.execute(f'INSERT INTO data_key ({COLUMNS}) SELECT {COLUMNS} FROM keystore.data_key')
    for table in KEYED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_key_id_data_key'), 'data_key',
                                        ['key_id'], ['id'])
    with op.batch_alter_table('data_key', schema='keystore') as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_key_kek_id'))
    op.drop_table('data_key', schema='keystore')
