"""Schema migrations (alembic), callable from the CLI and the tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from registry.config import REPO_ROOT
from registry.db import KEYSTORE, sqlite_file


def _our_schemas(name, type_, _parent) -> bool:
    return type_ != "schema" or name in (None, "main", KEYSTORE)


# How models and database are compared (autogenerate, and the test that they agree): the
# keystore schema counts as ours, SQLite's temp schema and anything else on a server do not.
COMPARE_OPTIONS = {"compare_type": True, "include_schemas": True, "include_name": _our_schemas}


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.set_main_option("file_template",
                           "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def holds_keyed_data(url: str) -> bool:
    """Whether the database exists and was initialised with a key file (key check values
    recorded) — without creating anything if it does not exist."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return False
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("key_check"):
                return False
            return conn.execute(text("SELECT 1 FROM key_check")).first() is not None
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
