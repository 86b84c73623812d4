"""Alembic environment: the models' metadata is the target; SQLite gets batch mode."""

from alembic import context
from sqlalchemy import pool

from registry.db import is_sqlite, make_engine
from registry.migrate import COMPARE_OPTIONS
from registry.models import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from registry.config import get_settings

    return get_settings().resolved_database_url


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), create_keystore=True, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=is_sqlite(connection.engine),
        **COMPARE_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
