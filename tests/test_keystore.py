"""The keystore apart from the data: on SQLite a file of its own, which the runtime attaches
read-only, every key written in a keystore transaction committed before the data that needs
it (registry.db, registry.security.keys). On PostgreSQL one transaction holds both."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from registry.clock import Clock
from registry.db import Database, keystore_engine
from registry.errors import Conflict
from registry.migrate import upgrade
from registry.models import DataKey, Person, RentalProperty
from registry.rentals import service as rentals
from registry.rentals.schemas import RentalCreate
from registry.security.crypto import LocalKeyFile
from registry.vault.accounts import system_actor
from registry.vault.runtime import Registry
from tests.conftest import FIXED_NOW, TREE, make_user, rental_body
from tests.conftest import test_settings as make_settings

PURPOSE = "keystore test"


@pytest.fixture
def on_disk(tmp_path):
    """A registry as the CLI and the server open it: its own files, its own engines."""
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    upgrade(url)
    LocalKeyFile.create(tmp_path / "registry.key")
    registry = Registry(make_settings(tmp_path, database_url=url), clock=Clock(fixed=FIXED_NOW))
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.upsert(TREE)
        vault.commit()
    yield registry
    registry.db.dispose()


def counts(db: Database) -> tuple[int, int, int]:
    with db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (DataKey, Person, RentalProperty))


def register(registry: Registry, police, seed: int):
    with registry.vault(police) as vault:
        rental = rentals.register(vault, RentalCreate(**rental_body(seed)), purpose=PURPOSE)
        vault.commit()
    return rental


def test_a_data_transaction_cannot_write_the_keystore(on_disk):
    assert keystore_engine(on_disk.db.engine) is not None
    with on_disk.db.engine.connect() as conn, pytest.raises(OperationalError,
                                                            match="readonly"):
        conn.exec_driver_sql("INSERT INTO keystore.data_key (id, kek_id, created_at) "
                             "VALUES (x'00', 'x', '2026-01-01')")


def test_keys_commit_before_the_data_so_a_failed_commit_leaves_only_an_orphan_key(on_disk):
    police = make_user(on_disk, None, "police", TREE[0][0]).actor
    before = counts(on_disk.db)

    def refuse(_connection) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error (simulated)"))

    event.listen(on_disk.db.engine, "commit", refuse)
    try:
        with pytest.raises(Exception, match=r"simulated|unavailable"):
            register(on_disk, police, 1)
    finally:
        event.remove(on_disk.db.engine, "commit", refuse)
    keys, persons, rentals_ = counts(on_disk.db)
    # The data did not land; its keys did (already committed): harmless orphans.
    assert (persons, rentals_) == before[1:]
    assert keys == before[0] + 2  # the landlord's and the rental's

    # Nothing is stuck: the same registration now succeeds and opens.
    rental = register(on_disk, police, 1)
    with on_disk.vault(police) as vault:
        assert rentals.get(vault, rental.id, purpose=PURPOSE).landlord.name == "王二明"
        vault.commit()


def test_a_refused_write_leaves_no_key(on_disk):
    police = make_user(on_disk, None, "police", TREE[0][0]).actor
    register(on_disk, police, 2)
    before = counts(on_disk.db)
    with pytest.raises(Conflict):
        register(on_disk, police, 2)  # the same address again
    assert counts(on_disk.db) == before


def test_keystore_writes_leave_the_data_file_unlocked(on_disk):
    """Re-wrapping holds the keystore's write lock only: a data write goes on meanwhile."""
    police = make_user(on_disk, None, "police", TREE[0][0]).actor
    writer = keystore_engine(on_disk.db.engine)
    with writer.begin() as conn:
        conn.execute(text("UPDATE keystore.data_key SET kek_id = kek_id WHERE 0"))
        raw = on_disk.db.engine.raw_connection()
        try:
            data = raw.driver_connection
            data.execute("PRAGMA busy_timeout=0")  # no waiting: a lock would fail at once
            data.execute("BEGIN IMMEDIATE")
            data.execute("UPDATE audit_head SET seq = seq WHERE 0")
            data.execute("ROLLBACK")
        finally:
            raw.close()
    assert register(on_disk, police, 3).id
