"""The migrations build exactly the models' schema, on both databases."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from registry.migrate import COMPARE_OPTIONS, alembic_config
from registry.models import metadata
from registry.vault.accounts import system_actor


def test_migrations_match_the_models(connection):
    context = MigrationContext.configure(connection, opts=COMPARE_OPTIONS)
    assert compare_metadata(context, metadata) == []


def test_database_is_at_the_single_head(connection):
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    assert MigrationContext.configure(connection).get_current_heads() == tuple(heads)


def test_chain_head_is_seeded(connection):
    row = connection.execute(text("select seq, hash from audit_head where id = 1")).one()
    assert row.seq >= 0 and len(row.hash) == 64


def test_audit_events_are_append_only(registry, connection):
    """The database itself refuses to change or delete an audit event."""
    with registry.vault(system_actor("tests")) as vault:  # at least one event exists
        vault.users.list()
        vault.commit()
    for sql in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event"):
        savepoint = connection.begin_nested()
        try:
            with pytest.raises(DBAPIError, match="append-only"):
                connection.execute(text(sql))
        finally:
            savepoint.rollback()
