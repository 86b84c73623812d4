"""Backup and restore end to end, on an on-disk registry per backend: ``registry backup``
writes an encrypted pair of files (data, keystore) from one snapshot; ``registry restore``
loads them into a fresh database — of either kind — where every record opens with the same
values and the audit chain verifies. Damaged, mismatched, foreign and undecryptable files, and
a target that holds data, are each refused with a clear message before the target is touched,
and re-running with good files finishes the job. Keystore backups are kept on their own, shorter
cycle, which is what lets an erasure reach the backups."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from registry.db import make_engine
from registry.models import metadata
from registry.security.keys import Keyring
from registry.vault import backups
from registry.vault.base import Actor
from tests.conftest import (
    Disk,
    assert_rentals_open,
    postgres_database,
)
from tests.conftest import test_settings as make_settings

RENTALS = 12
PURPOSE = "backup test"
TABLES = [t.fullname for t in metadata.sorted_tables]


@pytest.fixture
def filled(disk: Disk) -> tuple[Disk, Actor, dict[uuid.UUID, tuple[str, str, str]]]:
    """An initialised registry with RENTALS rentals, and what each shows in clear."""
    return disk, *disk.fill(RENTALS, PURPOSE)


@contextmanager
def fresh(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database that does not exist yet (SQLite) or is empty (PostgreSQL)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'target-{secrets.token_hex(3)}' / 'registry.sqlite3'}"
        return
    with postgres_database("registry_restore") as url:
        yield url


def counts(disk: Disk, url: str) -> dict[str, int]:
    reader = Disk(disk.env, disk.cwd, url)
    return {table: reader.scalar(f"select count(*) from {table}") for table in TABLES}


def untouched(disk: Disk, url: str) -> bool:
    """Nothing written: no database at all (SQLite), or no tables (PostgreSQL)."""
    if url.startswith("sqlite"):
        return not Path(url.removeprefix("sqlite:///")).exists()
    return Disk(disk.env, disk.cwd, url).scalar(
        "select count(*) from information_schema.tables "
        "where table_schema in ('public', 'keystore')") == 0


def take(disk: Disk, **env: str) -> tuple[Path, Path]:
    result = Disk({**disk.env, **env}, disk.cwd, disk.url).run("backup")
    assert result.returncode == 0, result.stderr
    written = [Path(line.removeprefix("wrote ")) for line in result.stdout.splitlines()
               if line.startswith("wrote ")]
    (data,) = [p for p in written if p.name.endswith(".data.rbk")]
    (keys,) = [p for p in written if p.name.endswith(".keys.rbk")]
    return data, keys


def restore(disk: Disk, data: Path, keys: Path, url: str):
    return disk.run("restore", str(data), str(keys), "--database-url", url)


@pytest.mark.parametrize("target", ["sqlite", "postgresql"])
def test_a_backup_restores_into_a_fresh_database_with_every_record(filled, tmp_path, target):
    disk, officer, shown = filled
    before = counts(disk, disk.url)
    data, keys = take(disk)

    # Private files in a private directory, with nothing personal — and no wrapped key — in
    # the clear.
    assert stat.S_IMODE(data.parent.stat().st_mode) == 0o700
    wrapped = [bytes(r["wrapped"]) for r in disk.rows("select wrapped from keystore.data_key")]
    assert len(wrapped) == 2 * RENTALS
    for path in (data, keys):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        body = path.read_bytes()
        for values in shown.values():
            for value in values:
                assert value.encode() not in body
        for key in wrapped:
            assert key not in body and base64.b64encode(key) not in body
        manifest = backups.read_manifest(path)
        assert manifest.revision and manifest.index_fingerprint
    assert sum(backups.read_manifest(keys).tables.values()) == 2 * RENTALS
    taken = disk.rows("select actor, role from audit_event where kind = 'backup' "
                      "and action = 'create'")
    assert len(taken) == 1 and taken[0]["role"] == "system"

    verified = disk.run("backup", "verify", str(data), str(keys))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count(": ok") == 2

    with fresh(target, tmp_path) as url:
        result = restore(disk, data, keys, url)
        assert result.returncode == 0, result.stderr
        assert "sealed values checked, 0 erased" in result.stdout
        after = counts(disk, url)
        # The restore's own event follows the restored chain (and the index of the record it
        # names, the backup).
        assert after == {**before, "audit_event": before["audit_event"] + 1,
                         "audit_ref": before["audit_ref"] + 1}
        last = Disk(disk.env, disk.cwd, url).rows(
            "select kind, action, record_id from audit_event order by seq desc limit 1")[0]
        assert (last["kind"], last["action"]) == ("backup", "restore")
        assert last["record_id"] == backups.read_manifest(data).backup_id

        restored = disk.open(url)  # the start-up check: the key file fits
        assert_rentals_open(restored, officer, shown, PURPOSE)
        restored.db.dispose()
        chain = Disk({**disk.env, "REGISTRY_DATABASE_URL": url}, disk.cwd, url).run(
            "audit", "verify")
        assert chain.returncode == 0, chain.stdout + chain.stderr


def rewrite(path: Path, body: bytes) -> Path:
    """``body`` with a correct trailing checksum (an attacker, not a bad disk)."""
    path.write_bytes(body + hashlib.sha256(body).digest())
    return path


def test_bad_backups_are_refused_clearly_with_nothing_written(filled, tmp_path):
    disk, officer, shown = filled
    data, keys = take(disk)
    other_data, other_keys = take(disk)
    body = data.read_bytes()
    middle = len(body) // 2
    flipped = body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1:]
    work = tmp_path / "bad"
    work.mkdir()
    cases = {
        "corrupted byte": ((work / "flipped.data.rbk", flipped), keys,
                           "checksum mismatch: the file is damaged"),
        "corrupted byte, checksum recomputed": (
            (work / "forged.data.rbk", None), keys, "does not decrypt"),
        "truncated": ((work / "cut.data.rbk", body[: len(body) - 100]), keys,
                      "checksum mismatch"),
        "truncated, checksum recomputed": (
            (work / "cut2.data.rbk", None), keys, "does not decrypt"),
        "keystore of another backup": (data, other_keys, "come from different backups"),
        "the two files swapped": (keys, data, "is not a data backup"),
        "not a backup": ((work / "notes.txt", b"hello"), keys, "not a registry backup"),
    }
    rewrite(work / "forged.data.rbk", flipped[:-32])
    rewrite(work / "cut2.data.rbk", body[: len(body) - 32 - 40])

    with fresh(disk_kind(disk), tmp_path) as url:
        for name, (data_file, keys_file, message) in cases.items():
            if isinstance(data_file, tuple):
                data_file, content = data_file
                if content is not None:
                    data_file.write_bytes(content)
            result = restore(disk, data_file, keys_file, url)
            assert result.returncode == 2, name
            assert message in result.stderr, (name, result.stderr)
            assert "Traceback" not in result.stderr
            assert untouched(disk, url), name
        checked = disk.run("backup", "verify", str(work / "forged.data.rbk"))
        assert checked.returncode == 2 and "does not decrypt" in checked.stderr

        # A target that holds data: the registry's own database.
        refused = restore(disk, data, keys, disk.url)
        assert refused.returncode == 2
        assert "already holds data" in refused.stderr

        # Re-running with the good pair finishes the job in the same target.
        result = restore(disk, data, keys, url)
        assert result.returncode == 0, result.stderr
        again = restore(disk, other_data, other_keys, url)
        assert again.returncode == 2 and "already holds data" in again.stderr
        restored = disk.open(url)
        assert_rentals_open(restored, officer, shown, PURPOSE)
        restored.db.dispose()


def disk_kind(disk: Disk) -> str:
    return "sqlite" if disk.url.startswith("sqlite") else "postgresql"


def test_a_backup_opens_only_with_its_own_registry_key_file(filled, tmp_path):
    disk, _, _ = filled
    data, keys = take(disk)

    # Another registry's key file (or another registry's backup: the same signal).
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    other = Disk({**disk.env, "REGISTRY_DATA_DIR": str(stranger)}, disk.cwd,
                 f"sqlite:///{stranger / 'registry.sqlite3'}")
    other.env.pop("REGISTRY_DATABASE_URL", None)
    assert other.run("init").returncode == 0
    with fresh("sqlite", tmp_path) as url:
        result = other.run("restore", str(data), str(keys), "--database-url", url)
        assert result.returncode == 2
        assert "was made by another registry" in result.stderr
        assert untouched(disk, url)
    verify = other.run("backup", "verify", str(data))
    assert verify.returncode == 2 and "another registry" in verify.stderr

    # The key-encryption key the backup was wrapped under, retired since.
    (old,) = json.loads((disk.data / "registry.key").read_text())["keks"]
    assert disk.run("keys", "rotate", "--retire").returncode == 0
    with fresh(disk_kind(disk), tmp_path) as url:
        result = restore(disk, data, keys, url)
        assert result.returncode == 2
        assert f"key-encryption key {old}, which the key file no longer holds" in result.stderr
        assert "retired" in result.stderr
        assert untouched(disk, url)
        # A backup taken now opens.
        new_data, new_keys = take(disk)
        assert restore(disk, new_data, new_keys, url).returncode == 0


def test_keystore_backups_are_kept_on_a_shorter_cycle(filled):
    disk, _, _ = filled
    pairs = [take(disk, REGISTRY_KEYSTORE_BACKUPS_KEEP="2", REGISTRY_DATA_BACKUPS_KEEP="3")
             for _ in range(4)]
    directory = pairs[0][0].parent
    assert sorted(directory.glob("*.keys.rbk")) == [keys for _, keys in pairs[-2:]]
    assert sorted(directory.glob("*.data.rbk")) == [data for data, _ in pairs[-3:]]
    assert not list(directory.glob(".*"))  # no partial files left behind


def test_an_erased_person_dies_with_the_last_keystore_backup_before_the_erasure(filled):
    """The contract in the README: a data backup holds ciphertext only; once the keystore
    backups from before an erasure are deleted, nothing left can open the erased person."""
    disk, _, _ = filled
    keep = {"REGISTRY_KEYSTORE_BACKUPS_KEEP": "1"}
    before_data, before_keys = take(disk, **keep)
    # Erasure as the keystore sees it: one wrapped key destroyed, its tombstone left.
    key_id = disk.scalar("select id from keystore.data_key order by id limit 1")
    engine = make_engine(disk.url, keystore_writable=True, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("update keystore.data_key set wrapped = null, "
                          "destroyed_at = created_at where id = :id"), {"id": key_id})
    engine.dispose()
    after_data, after_keys = take(disk, **keep)

    assert not before_keys.exists()  # rotated past the erasure
    assert before_data.exists()
    keyring = Keyring.from_settings(make_settings(disk.data, database_url=disk.url))
    surviving = backups.check(after_keys, keyring)
    live = {uuid.UUID(row["id"]) for _, _, row in backups._rows(
        after_keys, surviving.manifest, backups.open_key(after_keys, surviving.manifest,
                                                         keyring.provider))
        if row is not None and row["wrapped"] is not None}
    assert uuid.UUID(str(key_id)) not in live
    # The old data backup does not restore with the surviving keystore as a pair; paired
    # explicitly with the later keystore, it restores with the person erased.
    nowhere = f"sqlite:///{disk.cwd / 'nowhere' / 'registry.sqlite3'}"
    result = disk.run("restore", str(before_data), str(after_keys), "--database-url", nowhere)
    assert result.returncode == 2 and "different backups" in result.stderr
    with fresh("sqlite", disk.cwd) as url:
        restored = disk.run("restore", str(before_data), str(after_keys), "--later-keystore",
                            "--database-url", url)
        assert restored.returncode == 0, restored.stderr
        erased = [line for line in restored.stdout.splitlines() if "erased" in line]
        assert erased and " 0 erased" not in erased[0]
    with fresh("sqlite", disk.cwd) as url:
        late = disk.run("restore", str(after_data), str(after_keys), "--database-url", url)
        assert late.returncode == 0, late.stderr
    # A keystore backup older than the data is refused even when asked for.
    newest_data, _ = take(disk)
    with fresh("sqlite", disk.cwd) as url:
        early = disk.run("restore", str(newest_data), str(after_keys), "--later-keystore",
                         "--database-url", url)
        assert early.returncode == 2 and "was taken before" in early.stderr
        assert untouched(disk, url)
