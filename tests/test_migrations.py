"""The migrations build exactly the models' schema, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from registry.migrate import alembic_config
from registry.models import metadata


def test_migrations_match_the_models(connection):
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    assert compare_metadata(context, metadata) == []


def test_database_is_at_the_single_head(connection):
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    assert MigrationContext.configure(connection).get_current_heads() == tuple(heads)


def test_chain_head_is_seeded(connection):
    from sqlalchemy import text

    row = connection.execute(text("select seq, hash from audit_head where id = 1")).one()
    assert row.seq >= 0 and len(row.hash) == 64
