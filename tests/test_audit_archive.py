"""Audit events past their online period, archived: a prefix of the chain ending at a signed
checkpoint goes into an encrypted, checksummed file, then out of the database, leaving an
anchor. The online chain verifies from the anchor, the archive with it; a damaged, foreign or
wrongly keyed archive is named; a run stopped before its delete commits leaves the log whole
and the next run finishes; the database still refuses every other UPDATE or DELETE."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from registry.cli import app as cli_app
from registry.clock import Clock
from registry.config import get_settings
from registry.errors import Conflict, SetupError
from registry.models import AuditAnchor, AuditEvent, AuditRef
from registry.security import audit, auditarchive
from registry.security.backupfile import MAGIC, Writer
from registry.security.crypto import LocalKeyFile
from registry.security.keys import Keyring
from registry.vault.accounts import system_actor
from registry.vault.auditlog import AuditStore, audit_cutoff
from registry.vault.base import AUDIT, RENTAL
from registry.vault.runtime import Registry
from tests.conftest import FIXED_NOW
from tests.conftest import test_settings as make_settings

OPERATOR = system_actor("tests")
LONG_AGO = datetime(2023, 3, 1, 9, 0, tzinfo=UTC)  # well past any online period


# --- helpers ------------------------------------------------------------------------------


def make_registry(key_dir, db, archive_dir: Path, clock: Clock) -> Registry:
    settings = make_settings(key_dir, audit_checkpoint_events=3, retention_audit_months=6,
                             audit_archive_dir=archive_dir)
    return Registry(settings, db=db, keyring=Keyring.from_settings(settings), clock=clock)


def append(registry: Registry, count: int, label: str = "tick") -> None:
    for n in range(count):
        with registry.vault(OPERATOR) as vault:
            vault.record(RENTAL, "read", record_id=f"r-{label}-{n}", refs=[f"person:p-{n}"])
            vault.commit()


def archive(registry: Registry):
    with registry.vault(OPERATOR) as vault:
        done = vault.audit.archive(registry.clock.today(),
                                   registry.settings.resolved_audit_archive_dir)
        vault.commit()
    return done


def verify(registry: Registry, *, kept=(), archives=()):
    with registry.vault(OPERATOR) as vault:
        result = vault.audit.verify(list(kept), list(archives))
        vault.commit()
    return result


def seqs(registry: Registry) -> list[int]:
    with registry.db.session() as session:
        return list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))


def refs_below(registry: Registry, seq: int) -> int:
    with registry.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditRef)
                              .where(AuditRef.seq < seq))


@pytest.fixture
def aged(key_dir, db, tmp_path) -> Registry:
    """Ten events from long ago (checkpoints at 1, 4, 7, 10), then two of today's."""
    clock = Clock(fixed=LONG_AGO)
    registry = make_registry(key_dir, db, tmp_path / "archive", clock)
    append(registry, 10, "old")
    clock.fixed = FIXED_NOW
    append(registry, 2, "new")
    return registry


# --- archiving and verifying ---------------------------------------------------------------


def test_the_plan_stops_at_the_last_checkpoint_before_the_first_young_event(aged):
    with aged.vault(OPERATOR) as vault:
        plan = vault.audit.archive_plan(FIXED_NOW.date())
    assert plan.cutoff == datetime(2025, 12, 15, tzinfo=UTC)
    assert (plan.first_seq, plan.last_seq, plan.events, plan.past) == (1, 10, 10, 10)
    assert plan.first_at == plan.last_at == LONG_AGO
    # Nothing is written by a plan.
    assert seqs(aged) == list(range(1, 13)) and not list(
        aged.settings.resolved_audit_archive_dir.glob("*"))


def test_audit_cutoff_counts_calendar_months():
    assert audit_cutoff(FIXED_NOW.date(), 36) == datetime(2023, 6, 15, tzinfo=UTC)
    assert audit_cutoff(datetime(2026, 8, 31).date(), 6) == datetime(2026, 2, 28, tzinfo=UTC)


def test_archive_then_verify_online_and_with_the_archive(aged):
    done = archive(aged)
    assert (done.first_seq, done.last_seq, done.events, done.reused) == (1, 10, 10, False)
    path = Path(done.file)
    assert path.name == "registry-audit-000000000001-000000000010.audit.rba"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700

    # Gone from the database, refs too; the anchor says where the chain starts and why.
    assert seqs(aged)[0] == 11
    assert refs_below(aged, 11) == 0
    with aged.db.session() as session:
        (anchor,) = session.execute(select(AuditAnchor.seq, AuditAnchor.checkpoint_seq,
                                           AuditAnchor.first_seq, AuditAnchor.archive_file,
                                           AuditAnchor.archive_id, AuditAnchor.prev_hash)).all()
        last = session.execute(select(AuditEvent.seq, AuditEvent.action, AuditEvent.record_id,
                                      AuditEvent.detail)
                               .order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert (anchor.seq, anchor.checkpoint_seq, anchor.first_seq) == (11, 10, 1)
    assert anchor.archive_file == path.name and str(anchor.archive_id) == done.archive_id
    assert (last.action, last.record_id) == ("archive", done.archive_id)  # itself an event
    assert "events=1..10" in last.detail and path.name in last.detail

    # The manifest: in the clear, what the file holds and the signed boundary.
    manifest = auditarchive.read_manifest(path)
    note = manifest.note()
    assert (manifest.first_seq, manifest.last_seq, manifest.events) == (1, 10, 10)
    assert manifest.prev_hash == audit.GENESIS_HASH
    assert (note.seq, note.hash) == (10, manifest.last_hash) and note.valid()
    assert note.hash == anchor.prev_hash

    online = verify(aged)
    assert online.ok, online
    assert (online.first_seq, online.head_seq) == (11, last.seq)
    assert online.describe().startswith(f"audit chain intact: verified events 11..{last.seq}; "
                                        f"events 1..10 archived in {path.name}")
    both = verify(aged, archives=[path])
    assert both.ok, both.archive_problems
    assert [(a.first_seq, a.last_seq) for a in both.archives_checked] == [(1, 10)]
    assert "joined to the chain" in both.describe()


def test_a_second_archive_follows_the_first(aged):
    first = archive(aged)
    assert archive(aged) is None  # nothing else is past its period
    # Time passes: today's events age too (and a few more come meanwhile).
    aged.clock.fixed = FIXED_NOW + timedelta(days=400)
    append(aged, 4, "later")
    second = archive(aged)
    assert second.first_seq == first.last_seq + 1
    with aged.db.session() as session:
        anchors = [(a.first_seq, a.seq) for a in audit.anchors(session)]
    assert anchors == [(1, 11), (11, second.last_seq + 1)]
    result = verify(aged, archives=[Path(second.file), Path(first.file)])
    assert result.ok, (result.archive_problems, result.checkpoint_problems)
    assert len(result.archived) == 2 and len(result.archives_checked) == 2


def test_checkpoints_kept_outside_still_hold_across_an_archive(aged):
    with aged.vault(OPERATOR) as vault:
        kept = vault.audit.checkpoints()
        vault.commit()
    assert [n.seq for n in kept][:4] == [1, 4, 7, 10]
    done = archive(aged)
    plain = verify(aged, kept=kept)
    assert plain.ok and not plain.checkpoint_problems
    with_archive = verify(aged, kept=kept, archives=[Path(done.file)])
    assert with_archive.ok and not with_archive.checkpoint_problems
    # Exported again after the archive: the archived checkpoints are still there.
    with aged.vault(OPERATOR) as vault:
        assert [n.seq for n in vault.audit.checkpoints()][:4] == [1, 4, 7, 10]


def test_a_tampered_archive_is_named(aged, tmp_path):
    done = archive(aged)
    bad = tmp_path / "tampered.audit.rba"
    data = bytearray(Path(done.file).read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    result = verify(aged, archives=[bad])
    assert not result.ok
    assert result.archive_problems == [
        f"audit archive {bad}: checksum mismatch: the file is damaged or incomplete (take it "
        "from another copy)"]
    cut = tmp_path / "cut.audit.rba"
    cut.write_bytes(Path(done.file).read_bytes()[:-100])
    assert "checksum mismatch" in verify(aged, archives=[cut]).archive_problems[0]
    junk = tmp_path / "junk.audit.rba"
    junk.write_bytes(b"not an archive at all")
    assert verify(aged, archives=[junk]).archive_problems == [
        f"audit archive {junk}: not a registry audit archive, or its header is damaged"]


def test_an_archive_from_another_registry_or_under_a_wrong_key_is_refused(aged, tmp_path):
    done = archive(aged)
    path = Path(done.file)
    stranger = LocalKeyFile.create(tmp_path / "stranger.key")
    other = Keyring(stranger, make_settings(tmp_path))
    with pytest.raises(SetupError, match="was made by another registry"):
        auditarchive.read(path, other)

    # The same registry's index key, but another key-encryption key under the same id.
    body = json.loads(aged.settings.resolved_key_file.read_text())
    body["keks"] = {kek: base64.b64encode(os.urandom(32)).decode() for kek in body["keks"]}
    wrong = tmp_path / "wrong.key"
    wrong.write_text(json.dumps(body))
    wrong.chmod(0o600)
    keyring = Keyring(LocalKeyFile.load(wrong), make_settings(tmp_path))
    with pytest.raises(SetupError, match="does not open with key-encryption key"):
        auditarchive.read(path, keyring)


def test_a_backup_file_is_not_an_archive(aged, tmp_path):
    done = archive(aged)
    manifest = auditarchive.read_manifest(Path(done.file))
    assert manifest.kind == "audit-archive"
    notes = tmp_path / "notes.txt"
    notes.write_text(manifest.checkpoint)  # a file that is no archive at all
    with pytest.raises(SetupError, match="not a registry audit archive"):
        auditarchive.read_manifest(notes)


def test_nothing_to_archive_without_a_checkpoint_past_the_start(key_dir, db, tmp_path):
    registry = make_registry(key_dir, db, tmp_path / "archive", Clock(fixed=FIXED_NOW))
    append(registry, 5)
    with registry.vault(OPERATOR) as vault:
        plan = vault.audit.archive_plan(FIXED_NOW.date())
    assert plan.last_seq is None and plan.events == 0
    assert archive(registry) is None


# --- crashes ----------------------------------------------------------------------------------


def test_stopped_before_the_delete_commits_the_log_is_whole_and_a_rerun_finishes(
        aged, monkeypatch):
    def crash(self, manifest, file):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(AuditStore, "_delete_before", crash)
        with pytest.raises(RuntimeError):
            archive(aged)
    # Nothing deleted, the chain verifies from event 1; the written archive is complete.
    assert seqs(aged)[:3] == [1, 2, 3] and verify(aged).ok
    (left,) = aged.settings.resolved_audit_archive_dir.glob("*.rba")
    auditarchive.read(left, aged.keyring)

    done = archive(aged)
    assert done.reused and Path(done.file) == left
    assert seqs(aged)[0] == 11
    result = verify(aged, archives=[left])
    assert result.ok, result.archive_problems


def test_stopped_while_writing_the_file_nothing_is_left_half_written(aged, monkeypatch):
    def crash(self):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(Writer, "finish", crash)
        with pytest.raises(OSError):
            archive(aged)
    directory = aged.settings.resolved_audit_archive_dir
    # No partial file, no finished-looking one: only the runs' lock.
    assert [p.name for p in directory.iterdir()] == [".archive.lock"]
    assert seqs(aged)[0] == 1 and verify(aged).ok
    assert archive(aged).events == 10 and verify(aged).ok


def test_one_run_at_a_time_writes_into_the_directory(aged):
    directory = aged.settings.resolved_audit_archive_dir
    directory.mkdir(mode=0o700)
    fd = os.open(directory / ".archive.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(Conflict, match="another archive run is writing"):
            archive(aged)
    finally:
        os.close(fd)
    assert seqs(aged)[0] == 1 and archive(aged).events == 10


# --- the database's own guard -----------------------------------------------------------------


def refused(connection, sql: str, **params) -> bool:
    savepoint = connection.begin_nested()
    try:
        connection.execute(text(sql), params)
    except DBAPIError:
        savepoint.rollback()
        return True
    savepoint.rollback()
    return False


def test_ordinary_updates_and_deletes_are_still_refused(aged, connection):
    assert refused(connection, "DELETE FROM audit_event WHERE seq = 1")  # before any archive
    done = archive(aged)
    head = seqs(aged)[-1]
    assert refused(connection, "DELETE FROM audit_event WHERE seq = :s", s=head)
    assert refused(connection, "DELETE FROM audit_event")
    assert refused(connection, "UPDATE audit_event SET detail = 'x' WHERE seq = 11")
    assert refused(connection, "DELETE FROM audit_ref WHERE seq >= 11")
    assert refused(connection, "UPDATE audit_anchor SET prev_hash = :h", h="0" * 64)
    assert refused(connection, "DELETE FROM audit_anchor")
    assert seqs(aged)[-1] == head and seqs(aged)[0] == done.last_seq + 1


def test_an_anchor_must_sit_on_a_signed_checkpoint_and_cannot_open_recent_events(
        aged, connection):
    archive(aged)
    aged.clock.fixed = datetime.now(UTC)  # recent by the database's own clock
    append(aged, 3, "more")  # a checkpoint lands on one of these
    with aged.db.session() as session:
        checkpoint = max(n.seq for n in audit.stored_notes(session))
        chash = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == checkpoint))
    insert = ("INSERT INTO audit_anchor (seq, prev_hash, checkpoint_seq, first_seq, archive_id,"
              " archive_file, archived_at, archived_by) VALUES (:seq, :h, :c, :f, :id, 'x', "
              ":at, 'x')")
    values = dict(id="00000000-0000-0000-0000-000000000001", at=FIXED_NOW)
    # Not at a checkpoint, a wrong hash, or not following the anchor before it: refused.
    assert refused(connection, insert, seq=checkpoint, h=chash, c=checkpoint - 1, f=11,
                   **values)
    assert refused(connection, insert, seq=checkpoint + 1, h="0" * 64, c=checkpoint, f=11,
                   **values)
    assert refused(connection, insert, seq=checkpoint + 1, h=chash, c=checkpoint, f=1,
                   **values)
    # A well-formed anchor over today's events: it goes in, but those events stay.
    savepoint = connection.begin_nested()
    connection.execute(text(insert), dict(seq=checkpoint + 1, h=chash, c=checkpoint, f=11,
                                          **values))
    assert refused(connection, "DELETE FROM audit_event WHERE seq = :s", s=checkpoint)
    savepoint.rollback()


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REGISTRY_ENVIRONMENT", "test")
    monkeypatch.setenv("REGISTRY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("REGISTRY_ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("REGISTRY_AUDIT_CHECKPOINT_EVENTS", "3")
    monkeypatch.setenv("REGISTRY_RETENTION_AUDIT_MONTHS", "6")
    monkeypatch.setenv("REGISTRY_TIMEZONE", "UTC")
    for name in ("REGISTRY_DATABASE_URL", "REGISTRY_KEY_FILE", "REGISTRY_AUDIT_ARCHIVE_DIR"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(cli_app, list(args))


def test_cli_archive_dry_run_then_yes_then_verify(cli_env):
    assert invoke("init").exit_code == 0
    registry = Registry(get_settings(), clock=Clock(fixed=LONG_AGO))
    for n in range(8):
        with registry.vault(OPERATOR) as vault:
            vault.record(AUDIT, "read", detail=f"old {n}")
            vault.commit()
    registry.db.dispose()

    kept = cli_env / "kept.notes"
    assert invoke("audit", "checkpoint", "export", "--out", str(kept)).exit_code == 0

    dry = invoke("audit", "archive")
    assert dry.exit_code == 0, dry.output
    assert "would be archived" in dry.stdout and "nothing was archived" in dry.stdout
    assert not (cli_env / "audit-archive").exists()

    done = invoke("audit", "archive", "--yes")
    assert done.exit_code == 0, done.output
    (path,) = (cli_env / "audit-archive").glob("*.rba")
    assert f"into {path}" in done.stdout and "Keep the file offline" in done.stdout

    online = invoke("audit", "verify")
    assert online.exit_code == 0, online.output
    assert "verified events" in online.stdout and f"archived in {path.name}" in online.stdout
    both = invoke("audit", "verify", "--archive", str(path))
    assert both.exit_code == 0, both.output
    assert "joined to the chain" in both.stdout
    # Checkpoints exported before the archive still hold, with the archive and without it.
    for extra in ([], ["--archive", str(path)]):
        held = invoke("audit", "verify", "--checkpoints", str(kept), *extra)
        assert held.exit_code == 0, held.output
        assert "signed checkpoints hold" in held.stdout

    copy = cli_env / "copy.audit.rba"
    shutil.copy(path, copy)
    with copy.open("r+b") as handle:
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    broken = invoke("audit", "verify", "--archive", str(copy))
    assert broken.exit_code == 1
    assert f"audit archive {copy}" in broken.stderr

    assert invoke("audit", "archive", "--as-of", "2999-01-01").exit_code == 2


def test_cli_retention_apply_archives_the_audit_log_too(cli_env):
    assert invoke("init").exit_code == 0
    registry = Registry(get_settings(), clock=Clock(fixed=LONG_AGO))
    for n in range(7):
        with registry.vault(OPERATOR) as vault:
            vault.record(AUDIT, "read", detail=f"old {n}")
            vault.commit()
    registry.db.dispose()
    plan = invoke("retention", "plan")
    assert plan.exit_code == 0, plan.output
    assert "to archive (up to the last signed checkpoint)" in plan.stdout
    applied = invoke("retention", "apply", "--yes")
    assert applied.exit_code == 0, applied.output
    assert '"audit:archive"' in applied.stdout
    assert list((cli_env / "audit-archive").glob("*.rba"))
    assert "verified events" in invoke("audit", "verify").stdout


def test_an_archived_log_backs_up_and_restores(cli_env, tmp_path):
    """The anchors go into the backup and come back after the checkpoints they sit on; the
    restored chain verifies from its anchor."""
    assert invoke("init").exit_code == 0
    registry = Registry(get_settings(), clock=Clock(fixed=LONG_AGO))
    for n in range(7):
        with registry.vault(OPERATOR) as vault:
            vault.record(AUDIT, "read", detail=f"old {n}")
            vault.commit()
    registry.db.dispose()
    assert invoke("audit", "archive", "--yes").exit_code == 0
    assert invoke("backup", "--dir", str(tmp_path / "backups")).exit_code == 0
    data, keys = (next((tmp_path / "backups").glob(f"*{suffix}"))
                  for suffix in (".data.rbk", ".keys.rbk"))
    target = tmp_path / "restored" / "registry.sqlite3"
    target.parent.mkdir()
    restored = invoke("restore", str(data), str(keys), "--database-url", f"sqlite:///{target}")
    assert restored.exit_code == 0, restored.output
    settings = get_settings().model_copy(update={"database_url": f"sqlite:///{target}"})
    again = Registry(settings)
    try:
        with again.vault(OPERATOR) as vault:
            result = vault.audit.verify()
    finally:
        again.db.dispose()
    assert result.ok and result.first_seq > 1, result


def test_an_archive_still_opens_after_an_index_key_rotation(aged, tmp_path):
    """Its owner is known by the checkpoint key, which index-key rotation keeps (the index
    fingerprint in its manifest is the old root's)."""
    done = archive(aged)
    copy = tmp_path / "rotated.key"
    shutil.copy(aged.settings.resolved_key_file, copy)  # the session's key file stays as is
    rotated = Keyring(LocalKeyFile.load(copy), aged.settings)
    rotated.provider.new_index_root()
    assert rotated.index.fingerprint() != aged.keyring.index.fingerprint()
    segment = auditarchive.read(Path(done.file), rotated)
    assert segment.manifest.last_seq == done.last_seq


@pytest.mark.parametrize("checkpoint", [5, None, ["x"]])
def test_an_archive_header_with_a_checkpoint_of_the_wrong_type_is_named(tmp_path, checkpoint):
    fields = dict(archive_id="a", created_at="x", index_fingerprint="f", first_seq=1,
                  last_seq=2, first_at="", last_at="", prev_hash="", last_hash="",
                  checkpoint=checkpoint, events=1)
    body = json.dumps(fields).encode()
    path = tmp_path / "odd.audit.rba"
    path.write_bytes(MAGIC + struct.pack(">I", len(body)) + body)
    with pytest.raises(SetupError, match="not a registry audit archive"):
        auditarchive.read_manifest(path)
