"""Signed audit checkpoints: made every N events and every M minutes, signed notes that
round-trip and refuse any change, and held against the log they vouch for — an edited or
rebuilt chain, a cut-back log, a foreign key — in process and through the CLI."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, delete, select, text, update
from typer.testing import CliRunner

from registry.cli import app as cli_app
from registry.clock import Clock
from registry.config import get_settings
from registry.models import AuditCheckpoint, AuditEvent, AuditHead
from registry.security import audit
from registry.security.keys import Keyring
from registry.vault.accounts import system_actor
from registry.vault.base import AUDIT
from registry.vault.runtime import Registry
from tests.conftest import FIXED_NOW, database_owner_sql
from tests.conftest import test_settings as make_settings

EVENTS = AuditEvent.__table__
OPERATOR = system_actor("tests")


# --- helpers ------------------------------------------------------------------------------


def make_registry(key_dir, db, *, events: int = 1000, minutes: int = 60,
                  clock: Clock | None = None) -> Registry:
    settings = make_settings(key_dir, audit_checkpoint_events=events,
                             audit_checkpoint_minutes=minutes)
    return Registry(settings, db=db, keyring=Keyring.from_settings(settings),
                    clock=clock or Clock(fixed=FIXED_NOW))


def append_one(registry: Registry, label: str = "tick") -> None:
    """One audit event, in a unit of work of its own."""
    with registry.vault(OPERATOR) as vault:
        vault.record(AUDIT, "read", detail=label)
        vault.commit()


def checkpoint_seqs(registry: Registry) -> list[int]:
    with registry.db.session() as session:
        return [n.seq for n in audit.stored_notes(session)]


def head(registry: Registry) -> tuple[int, str]:
    with registry.db.session() as session:
        row = session.execute(select(AuditHead.seq, AuditHead.hash)).one()
    return row.seq, row.hash


def notes_of(registry: Registry) -> list[audit.Note]:
    with registry.db.session() as session:
        return audit.stored_notes(session)


@pytest.fixture
def owner(connection):
    """Play the database owner in the test's transaction: the append-only triggers off."""
    for sql in database_owner_sql(connection.dialect.name):
        connection.execute(text(sql))
    return connection


@pytest.fixture
def every3(key_dir, db) -> Registry:
    """A registry signing a checkpoint every 3 events, with 10 events appended one by one:
    checkpoints at 1, 4, 7, 10."""
    registry = make_registry(key_dir, db, events=3)
    for n in range(10):
        append_one(registry, f"event {n}")
    return registry


def rebuild_chain(connection, start: int) -> None:
    """What a superuser does after editing event ``start``: recompute every hash from it to
    the end and move the head, so the plain chain walk passes."""
    prev = (connection.scalar(select(EVENTS.c.hash).where(EVENTS.c.seq == start - 1))
            or audit.GENESIS_HASH)
    rows = connection.execute(select(EVENTS).where(EVENTS.c.seq >= start)
                              .order_by(EVENTS.c.seq)).mappings().all()
    for found in rows:
        row = dict(found)
        row["prev_hash"] = prev
        row["hash"] = prev = audit.chain_hash(prev, row)
        connection.execute(update(EVENTS).where(EVENTS.c.seq == row["seq"])
                           .values(prev_hash=row["prev_hash"], hash=row["hash"]))
    connection.execute(update(AuditHead.__table__).values(hash=prev))


# --- when checkpoints are made -----------------------------------------------------------


def test_a_checkpoint_every_n_events(every3):
    assert checkpoint_seqs(every3) == [1, 4, 7, 10]
    append_one(every3)
    append_one(every3)
    assert checkpoint_seqs(every3) == [1, 4, 7, 10]
    append_one(every3)
    assert checkpoint_seqs(every3) == [1, 4, 7, 10, 13]
    seq, chain = head(every3)
    last = notes_of(every3)[-1]
    assert (last.seq, last.hash, last.at) == (seq, chain, FIXED_NOW)


def test_a_batch_append_gets_one_checkpoint_at_its_end(key_dir, db):
    registry = make_registry(key_dir, db, events=3)
    with registry.vault(OPERATOR) as vault:
        for n in range(7):
            vault.record(AUDIT, "read", detail=f"batch {n}")
        vault.commit()
    assert checkpoint_seqs(registry) == [7]
    with registry.db.session() as session:
        stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == 7))
    assert notes_of(registry)[0].hash == stored


def test_a_checkpoint_after_m_minutes_while_events_come(key_dir, db):
    clock = Clock(fixed=FIXED_NOW)
    registry = make_registry(key_dir, db, events=1000, minutes=5, clock=clock)
    append_one(registry)
    assert checkpoint_seqs(registry) == [1]
    clock.fixed = FIXED_NOW + timedelta(minutes=4, seconds=59)
    append_one(registry)
    assert checkpoint_seqs(registry) == [1]
    clock.fixed = FIXED_NOW + timedelta(minutes=5)
    append_one(registry)
    assert checkpoint_seqs(registry) == [1, 3]
    assert notes_of(registry)[-1].at == FIXED_NOW + timedelta(minutes=5)
    clock.fixed = FIXED_NOW + timedelta(hours=2)  # a long quiet spell: one checkpoint, not many
    append_one(registry)
    append_one(registry)
    assert checkpoint_seqs(registry) == [1, 3, 4]


def test_checkpointer_directly(db):
    signer = audit.Checkpointer(Ed25519PrivateKey.generate(), every_events=2,
                                every=timedelta(minutes=10))
    with db.session() as session:
        for n in range(5):
            at = FIXED_NOW + timedelta(seconds=n)
            seq = audit.append(session, [audit.Event(None, "cli:t", "system", "read", "audit",
                                                     detail=str(n), at=at)],
                               checkpoints=signer)
            assert seq == n + 1
        assert [n.seq for n in audit.stored_notes(session)] == [1, 3, 5]
        assert all(n.valid() and n.public_key == signer.public_key
                   for n in audit.stored_notes(session))
        # A second call at the same head makes no duplicate.
        signer.after_append(session, 5, audit.stored_notes(session)[-1].hash,
                            FIXED_NOW + timedelta(days=1))
        assert [n.seq for n in audit.stored_notes(session)] == [1, 3, 5]
        session.rollback()


def test_the_signing_key_comes_from_the_key_file(registry, key_dir):
    provider = Keyring.from_settings(make_settings(key_dir)).provider
    expected = provider.checkpoint_key().public_key().public_bytes_raw().hex()
    assert registry.checkpoints.public_key == expected
    notes = notes_of(registry)
    assert notes and all(n.public_key == expected for n in notes)


# --- the signed notes --------------------------------------------------------------------


def test_a_note_round_trips_and_verifies(every3):
    notes = notes_of(every3)
    exported = "\n".join(n.text() for n in notes)
    parsed = audit.parse_notes(exported)
    assert parsed == notes
    assert all(n.valid() for n in parsed)
    first = notes[0].text()
    assert first.startswith("registry audit checkpoint\norigin: registry/audit\nsize: 1\n")
    assert f"hash: {notes[0].hash}\n" in first
    assert "time: 2026-06-15T10:00:00.000000Z\n" in first
    assert audit.parse_notes("") == []


def _change_one(line_start: str, note_text: str, index: int) -> str:
    lines = note_text.split("\n")
    for n, line in enumerate(lines):
        if line.startswith(line_start):
            chars = list(line)
            old = chars[index]
            chars[index] = {"0": "1", "A": "B"}.get(old, "0" if old != "0" else "1")
            lines[n] = "".join(chars)
            return "\n".join(lines)
    raise AssertionError(f"no line starting {line_start!r}")


@pytest.mark.parametrize(("line", "index"), [
    ("hash: ", 6), ("hash: ", -1), ("size: ", 6), ("time: ", 20), ("time: ", -2),
    ("— ", 20), ("— ", -12),
], ids=["hash-first", "hash-last", "size", "time-minute", "time-microsecond",
        "public-key", "signature"])
def test_a_note_with_one_character_changed_fails(every3, line, index):
    note = notes_of(every3)[1]
    changed = _change_one(line, note.text(), index)
    assert changed != note.text()
    (parsed,) = audit.parse_notes(changed)
    assert parsed != note
    assert not parsed.valid()


def test_parse_notes_refuses_garbage_naming_the_checkpoint(every3):
    good = notes_of(every3)[0].text()
    with pytest.raises(ValueError, match="checkpoint 1 is not a signed note"):
        audit.parse_notes("hello, auditor\n")
    with pytest.raises(ValueError, match="checkpoint 2 is not a signed note"):
        audit.parse_notes(good + "\nregistry audit checkpoint\nsize: many\n\n— x y\n")
    other_origin = good.replace("origin: registry/audit", "origin: elsewhere")
    with pytest.raises(ValueError, match="checkpoint 3 is not a signed note"):
        audit.parse_notes(good + "\n" + good + "\n" + other_origin)
    unsigned = good.split("\n\n")[0] + "\n"
    with pytest.raises(ValueError, match="checkpoint 1 is not a signed note"):
        audit.parse_notes(unsigned)


# --- holding the log against the notes ---------------------------------------------------


def test_an_intact_log_holds_against_kept_notes(every3):
    kept = audit.parse_notes("\n".join(n.text() for n in notes_of(every3)))
    with every3.db.session() as session:
        assert audit.check_notes(session, kept) == []
        assert audit.check_notes(session, kept, trusted=every3.checkpoints.public_key) == []
    with every3.vault(OPERATOR) as vault:
        result = vault.audit.verify(kept)
        vault.commit()
    assert result.ok and result.checkpoint_problems == []
    assert result.checkpoints == 2 * len(kept)  # the stored ones and the kept ones


def test_a_rebuilt_chain_is_named_at_the_first_checkpoint_after_the_edit(every3, owner):
    kept = notes_of(every3)
    owner.execute(update(EVENTS).where(EVENTS.c.seq == 2).values(detail="nothing happened"))
    rebuild_chain(owner, 2)
    # A superuser who rebuilt the chain removes the stored checkpoints too.
    owner.execute(delete(AuditCheckpoint.__table__))
    with every3.db.session() as session:
        assert audit.verify(session).ok  # the plain walk is fooled
        problems = audit.check_notes(session, kept)
    assert len(problems) == 3  # 4, 7, 10; the checkpoint at 1 still holds
    assert problems[0].startswith("checkpoint at event 4 (2026-06-15T10:00:00.000000):")
    assert "event 4 no longer has the signed hash" in problems[0]
    with every3.vault(OPERATOR) as vault:
        result = vault.audit.verify(kept)
        vault.commit()
    assert not result.ok
    assert result.broken_seq is None
    assert "checkpoint at event 4" in result.checkpoint_problems[0]


def test_an_edit_is_caught_by_the_stored_checkpoints_too(every3, owner):
    owner.execute(update(EVENTS).where(EVENTS.c.seq == 8).values(detail="rewritten"))
    rebuild_chain(owner, 8)
    with every3.vault(OPERATOR) as vault:
        result = vault.audit.verify()
        vault.commit()
    assert not result.ok and result.broken_seq is None
    assert result.checkpoint_problems == [
        p for p in result.checkpoint_problems if "checkpoint at event 10" in p]
    assert len(result.checkpoint_problems) == 1


def test_a_cut_back_log_is_named(every3, owner):
    kept = notes_of(every3)
    last = kept[-1].seq  # 10
    owner.execute(delete(EVENTS).where(EVENTS.c.seq >= last))
    new_head = owner.scalar(select(EVENTS.c.hash).where(EVENTS.c.seq == last - 1))
    owner.execute(update(AuditHead.__table__).values(seq=last - 1, hash=new_head))
    owner.execute(delete(AuditCheckpoint.__table__).where(AuditCheckpoint.seq >= last))
    with every3.db.session() as session:
        assert audit.verify(session).ok
        problems = audit.check_notes(session, kept)
    assert problems == [f"checkpoint at event {last} (2026-06-15T10:00:00.000000): "
                        f"the log now ends at event {last - 1} (cut back)"]


def test_a_note_signed_by_another_key_is_refused_as_not_this_registrys(every3, owner):
    seq, chain = head(every3)
    forger = audit.Checkpointer(Ed25519PrivateKey.generate(), every_events=1,
                                every=timedelta(minutes=1))
    forged = forger.sign(seq, chain, FIXED_NOW)
    assert forged.valid()  # its signature is fine: only the key is wrong
    mine = every3.checkpoints.public_key
    with every3.db.session() as session:
        assert audit.check_notes(session, [forged]) == []
        (problem,) = audit.check_notes(session, [forged], trusted=mine)
    assert problem.endswith("signed by a key this registry does not hold")
    assert f"checkpoint at event {seq}" in problem
    # Stored checkpoints must carry this registry's key.
    owner.execute(update(AuditCheckpoint.__table__).where(AuditCheckpoint.seq == seq)
                  .values(public_key=forged.public_key, signature=forged.signature))
    with every3.vault(OPERATOR) as vault:
        result = vault.audit.verify()
        vault.commit()
    assert not result.ok
    assert result.checkpoint_problems == [
        f"checkpoint at event {seq} (2026-06-15T10:00:00.000000): "
        "signed by a key this registry does not hold"]


def test_a_stored_checkpoint_with_a_bad_signature_is_named(every3, owner):
    owner.execute(update(AuditCheckpoint.__table__).where(AuditCheckpoint.seq == 4)
                  .values(signature="00" * 64))
    with every3.vault(OPERATOR) as vault:
        result = vault.audit.verify()
        vault.commit()
    assert not result.ok
    assert result.checkpoint_problems == [
        "checkpoint at event 4 (2026-06-15T10:00:00.000000): its signature does not verify"]


def test_the_export_is_an_audit_event(every3):
    with every3.vault(OPERATOR) as vault:
        notes = vault.audit.checkpoints()
        vault.commit()
    assert [n.seq for n in notes] == [1, 4, 7, 10]
    with every3.db.session() as session:
        event = session.execute(select(EVENTS).order_by(EVENTS.c.seq.desc()).limit(1)
                                ).mappings().one()
    assert (event["seq"], event["action"], event["kind"], event["outcome"]) == \
        (11, "export", "audit", "ok")
    assert event["detail"] == "checkpoints=4"


# --- the CLI on an on-disk SQLite registry -----------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REGISTRY_ENVIRONMENT", "test")
    monkeypatch.setenv("REGISTRY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("REGISTRY_ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("REGISTRY_AUDIT_CHECKPOINT_EVENTS", "2")
    monkeypatch.delenv("REGISTRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("REGISTRY_KEY_FILE", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(cli_app, list(args))


def _tamper_sqlite(path, target: int) -> None:
    """Drop the append-only triggers, edit an event, rebuild the chain from it to the head and
    delete the stored checkpoints: the plain chain walk passes afterwards."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            for sql in database_owner_sql("sqlite"):
                conn.execute(text(sql))
            conn.execute(update(EVENTS).where(EVENTS.c.seq == target)
                         .values(detail="nothing to see"))
            rebuild_chain(conn, target)
            conn.execute(delete(AuditCheckpoint.__table__))
    finally:
        engine.dispose()


def test_cli_export_then_verify_with_kept_checkpoints(cli_env):
    assert invoke("init").exit_code == 0
    for _ in range(5):  # each verify is an audited event
        assert invoke("audit", "verify").exit_code == 0
    kept = cli_env / "kept.notes"
    exported = invoke("audit", "checkpoint", "export", "--out", str(kept))
    assert exported.exit_code == 0, exported.output
    notes = audit.parse_notes(kept.read_text(encoding="utf-8"))
    assert len(notes) >= 3 and all(n.valid() for n in notes)
    assert f"wrote {len(notes)} checkpoints to {kept}" in exported.stdout
    to_stdout = invoke("audit", "checkpoint", "export")
    assert to_stdout.exit_code == 0
    assert audit.parse_notes(to_stdout.stdout)[:len(notes)] == notes

    ok = invoke("audit", "verify", "--checkpoints", str(kept))
    assert ok.exit_code == 0, ok.output
    assert "audit chain intact" in ok.stdout and "signed checkpoints hold" in ok.stdout

    database = cli_env / "registry.sqlite3"
    conn = sqlite3.connect(database)
    try:
        export_events = conn.execute("SELECT kind, detail FROM audit_event "
                                     "WHERE action = 'export'").fetchall()
    finally:
        conn.close()
    assert export_events[0] == ("audit", f"checkpoints={len(notes)}")

    target = 2
    first_after = min(n.seq for n in notes if n.seq >= target)
    _tamper_sqlite(database, target)
    plain = invoke("audit", "verify")
    assert plain.exit_code == 0, plain.output  # the rebuilt chain fools the plain walk
    broken = invoke("audit", "verify", "--checkpoints", str(kept))
    assert broken.exit_code == 1, broken.output
    assert f"audit chain BROKEN: checkpoint at event {first_after} (" in broken.stderr
    assert "no longer has the signed hash" in broken.stderr
    assert "intact" not in broken.stdout


@pytest.mark.parametrize("content", [
    "not a checkpoint at all\n",
    "registry audit checkpoint\norigin: registry/audit\nsize: x\n\n— a b\n",
], ids=["garbage", "bad-size"])
def test_cli_verify_refuses_a_malformed_checkpoints_file(cli_env, content):
    assert invoke("init").exit_code == 0
    bad = cli_env / "bad.notes"
    bad.write_text(content, encoding="utf-8")
    result = invoke("audit", "verify", "--checkpoints", str(bad))
    assert result.exit_code == 2, result.output
    assert "--checkpoints" in result.stderr
    assert "checkpoint 1 is not a signed note" in result.stderr


def test_cli_verify_refuses_a_missing_checkpoints_file(cli_env):
    assert invoke("init").exit_code == 0
    result = invoke("audit", "verify", "--checkpoints", str(cli_env / "absent.notes"))
    assert result.exit_code == 2, result.output
    assert "--checkpoints" in result.stderr
