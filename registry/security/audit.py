"""The audit chain.

Every access to personal data appends one event naming the actor, the action, the record and
field names — never values. Each event stores ``prev_hash`` and
``hash = SHA-256(prev_hash ‖ canonical(event))`` where the canonical form is sorted-key JSON of
every column but ``hash``, including the sequence number, so editing, deleting, inserting or
reordering events breaks the chain at the first affected event. Appends lock the one-row chain
head (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE``), so
the chain stays linear under concurrent writers. Events are buffered by the vault and appended
just before commit, which keeps the head lock short.

A superuser can rebuild a whole chain; signed checkpoints held outside the database are what
stop that. At intervals (every N events, and at least every M minutes while events come) the
registry signs (origin, sequence, chain hash, time) with an Ed25519 key kept with the key
provider, stores the checkpoint, and ``registry audit checkpoint export`` writes them as signed
notes an outside party keeps. ``verify`` against kept notes then names the first one the log
no longer matches: an edited or reordered event changes the hash at its sequence, a deletion
shifts it, and a cut-back log ends before the checkpoint.

Past their online period, events are archived (:mod:`registry.security.auditarchive`,
``registry audit archive``): a prefix of the chain that ends at a signed checkpoint is written
to an encrypted, checksummed file and then deleted, leaving an anchor (:class:`AuditAnchor`)
with the sequence and chain hash where the online chain now starts. ``verify`` walks the online
chain from the newest anchor, and the anchor's hash must be the one the checkpoint at its
boundary signed; the archive files, when given, are walked too and must join up with the
anchors, each with the next.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring as _quote  # json's own string encoder

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from registry.models import AuditAnchor, AuditCheckpoint, AuditEvent, AuditHead, AuditRef

GENESIS_HASH = "0" * 64
# Refs not indexed in ``audit_ref``: an auditor's query names the events it showed, which
# touch no person (and would double the index for every page of the log read).
UNINDEXED_KINDS = frozenset({"audit"})


@dataclass
class Event:
    actor_id: uuid.UUID | None
    actor: str
    role: str
    action: str
    kind: str
    outcome: str = "ok"
    record_id: str | None = None
    jurisdiction_code: str | None = None
    fields: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    purpose: str | None = None
    detail: str = ""
    request_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _timestamp(at: datetime | str) -> str:
    if isinstance(at, str):  # already canonical (an archive file's event)
        return at
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


canonical_time = _timestamp  # how the chain hash spells a time


def _row(event: Event, seq: int, prev_hash: str) -> dict:
    row = asdict(event)
    row.update(
        seq=seq,
        prev_hash=prev_hash,
        fields=",".join(event.fields),
        refs=",".join(event.refs),
        at=event.at.astimezone(UTC) if event.at.tzinfo else event.at.replace(tzinfo=UTC),
    )
    return row


# The columns the canonical form covers (every one but ``hash``), in table order.
_CANONICAL = ("seq", "at", "actor_id", "actor", "role", "action", "kind", "record_id",
              "jurisdiction_code", "fields", "refs", "purpose", "outcome", "detail",
              "request_id", "prev_hash")


def canonical(row: dict) -> bytes:
    """The bytes an event's hash covers: sorted-key, compact JSON of every column but
    ``hash``, non-ASCII kept as UTF-8."""
    return _canonical(*(row[name] for name in _CANONICAL))


def _canonical(seq, at, actor_id, actor, role, action, kind, record_id, jurisdiction_code,
               fields, refs, purpose, outcome, detail, request_id, prev_hash) -> bytes:
    # Byte for byte ``json.dumps(body, sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False)`` of the body below — every value is a string, None or an int, and
    # strings go through json's own encoder — spelled out in sorted key order, because
    # verification does this for every event and json.dumps costs three times as much.
    # tests/test_audit.py holds the two forms against each other.
    q = _quote
    return (
        f'{{"action":{"null" if action is None else q(action)}'
        f',"actor":{"null" if actor is None else q(actor)}'
        f',"actor_id":{q(str(actor_id)) if actor_id else "null"}'
        f',"at":{q(_timestamp(at))}'
        f',"detail":{"null" if detail is None else q(detail)}'
        f',"fields":{"null" if fields is None else q(fields)}'
        f',"jurisdiction_code":{"null" if jurisdiction_code is None else q(jurisdiction_code)}'
        f',"kind":{"null" if kind is None else q(kind)}'
        f',"outcome":{"null" if outcome is None else q(outcome)}'
        f',"prev_hash":{"null" if prev_hash is None else q(prev_hash)}'
        f',"purpose":{"null" if purpose is None else q(purpose)}'
        f',"record_id":{"null" if record_id is None else q(record_id)}'
        f',"refs":{"null" if refs is None else q(refs)}'
        f',"request_id":{"null" if request_id is None else q(request_id)}'
        f',"role":{"null" if role is None else q(role)}'
        f',"seq":{int(seq)!r}}}'
    ).encode()


def chain_hash(prev_hash: str, row: dict) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(row)).hexdigest()


def walked_hash(prev_hash: str, values: Sequence) -> str:
    """The chain hash of an event given as the values of :data:`WALKED` but ``hash`` (as the
    walk and the archive files hold them); ``at`` may be a time or its canonical text."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + _canonical(*values[:16])).hexdigest()


def append(session: Session, events: Iterable[Event], *,
           checkpoints: Checkpointer | None = None) -> int:
    """Append events in order under the head lock (and sign a checkpoint when one is due);
    returns the new head sequence."""
    events = list(events)
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    ).one()
    seq, prev = head.seq, head.hash
    if not events:
        return seq
    rows = []
    for event in events:
        seq += 1
        row = _row(event, seq, prev)
        row["hash"] = prev = chain_hash(prev, row)
        rows.append(row)
    session.execute(insert(AuditEvent), rows)
    refs = [{"seq": row["seq"], "kind": kind, "record_id": record_id}
            for row in rows for kind, record_id in touched(row)]
    if refs:
        session.execute(insert(AuditRef), refs)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))
    if checkpoints is not None:
        checkpoints.after_append(session, seq, prev, rows[-1]["at"])
    return seq


def touched(row: dict) -> set[tuple[str, str]]:
    """The (kind, record id) pairs an event row touches: its refs, and the record it names
    (a denial names the record it refused and has no refs)."""
    pairs = set()
    for ref in filter(None, row["refs"].split(",")):
        kind, _, record_id = ref.partition(":")
        pairs.add((kind, record_id))
    if row["record_id"]:
        pairs.add((row["kind"], row["record_id"]))
    return {(k, r) for k, r in pairs if k not in UNINDEXED_KINDS and r and len(r) <= 64}


@dataclass(frozen=True)
class Archived:
    """A segment of the chain moved into an archive file, as its anchor records it."""

    first_seq: int
    last_seq: int
    file: str


@dataclass
class Verification:
    ok: bool
    checked: int
    head_seq: int
    broken_seq: int | None = None
    reason: str | None = None
    first_seq: int = 1  # where the online chain starts (after the archived events)
    archived: list[Archived] = field(default_factory=list)

    def describe(self) -> str:
        if not self.ok:
            return f"audit chain BROKEN at event {self.broken_seq}: {self.reason}"
        if not self.archived:
            return f"audit chain intact: {self.checked} events, head at {self.head_seq}"
        return (f"audit chain intact: verified events {self.first_seq}..{self.head_seq}; "
                + ", ".join(f"events {a.first_seq}..{a.last_seq} archived in {a.file}"
                            for a in self.archived))


def anchors(session: Session) -> list[AuditAnchor]:
    """The archive anchors, oldest first; the last is where the online chain starts."""
    return list(session.scalars(select(AuditAnchor).order_by(AuditAnchor.seq)))


def archived(session: Session) -> list[Archived]:
    return [Archived(a.first_seq, a.seq - 1, a.archive_file) for a in anchors(session)]


# What the walk reads: the canonical columns in ``_canonical``'s order, then ``hash``.
WALKED = (*_CANONICAL, "hash")
WALKED_COLUMNS = _WALKED = [AuditEvent.__table__.c[name] for name in WALKED]


class _Broken(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        self.seq, self.reason = seq, reason


def _walk(session: Session, expected_seq: int, prev: str, chunk: int) -> tuple[int, str]:
    """Check events from ``expected_seq`` on, each against the one before; returns the next
    expected sequence and the last hash, or raises :class:`_Broken` at the first misfit.

    The hot loop of ``registry audit verify``: chunks of plain Core tuples by ``seq`` range
    (no ORM rows, no per-row key lookups), the canonical form from positional values."""
    connection = session.connection()
    sha256, fromhex = hashlib.sha256, bytes.fromhex
    while True:
        rows = connection.execute(
            select(*_WALKED).where(AuditEvent.seq >= expected_seq).order_by(AuditEvent.seq)
            .limit(chunk)).all()
        if not rows:
            return expected_seq, prev
        for row in rows:
            seq, prev_hash, stored = row[0], row[15], row[16]
            if seq != expected_seq:
                raise _Broken(expected_seq, f"event {expected_seq} is missing "
                                            f"(next is {seq})")
            if prev_hash != prev:
                raise _Broken(seq, "prev_hash does not match the event before it")
            if sha256(fromhex(prev) + _canonical(*row[:16])).hexdigest() != stored:
                raise _Broken(seq, "content does not match its hash (edited)")
            prev = stored
            expected_seq += 1


def verify(session: Session, *, chunk: int = 5000) -> Verification:
    """Walk the online chain from its start (event 1, or the newest archive anchor's
    sequence and hash); name the first event that does not fit.

    The walk runs unlocked, so appends go on meanwhile; then the head is locked as an append
    would lock it (appends wait, briefly; the verification event appended afterwards in the
    same transaction needs that lock anyway), the events appended since are walked too, and
    the log must end exactly at the head: none missing, none forged past it, none numbered
    below 1."""
    head_seq = None
    segments = archived(session)
    start = segments[-1].last_seq + 1 if segments else 1
    try:
        prev = session.scalar(select(AuditAnchor.prev_hash).where(AuditAnchor.seq == start)) \
            if segments else GENESIS_HASH
        expected, prev = _walk(session, start, prev, chunk)
        head = session.execute(select(AuditHead.seq, AuditHead.hash)
                               .where(AuditHead.id == 1).with_for_update()).one()
        head_seq = head.seq
        expected, prev = _walk(session, expected, prev, chunk)
        last = expected - 1
        if last < head.seq:
            raise _Broken(last + 1, f"log ends at {last} but the chain head is at {head.seq}")
        if last > head.seq:
            raise _Broken(head.seq + 1, f"events past the chain head ({head.seq})")
        if prev != head.hash:
            raise _Broken(head.seq, "the last event does not match the chain head")
        below = session.scalar(select(func.min(AuditEvent.seq)).where(AuditEvent.seq < start))
        if below is not None:
            raise _Broken(below, f"an event numbered below {start}, where the online chain "
                                 "starts (forged)")
    except _Broken as broken:
        if head_seq is None:
            head_seq = session.scalar(select(AuditHead.seq).where(AuditHead.id == 1))
        return Verification(False, max(broken.seq - start, 0), head_seq, broken.seq,
                            broken.reason, start, segments)
    return Verification(True, head.seq - start + 1, head.seq, first_seq=start,
                        archived=segments)


# --- signed checkpoints ---------------------------------------------------------------------

ORIGIN = "registry/audit"
_NOTE_HEAD = "registry audit checkpoint"


@dataclass(frozen=True)
class Note:
    """A checkpoint as signed text: the body lines, a blank line, then the signature line."""

    seq: int
    hash: str
    at: datetime
    public_key: str
    signature: str

    def body(self) -> bytes:
        return (f"{_NOTE_HEAD}\norigin: {ORIGIN}\nsize: {self.seq}\nhash: {self.hash}\n"
                f"time: {_timestamp(self.at)}Z\n").encode()

    def text(self) -> str:
        signature = base64.b64encode(bytes.fromhex(self.signature)).decode()
        return f"{self.body().decode()}\n— {self.public_key} {signature}\n"

    def valid(self) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key)).verify(
                bytes.fromhex(self.signature), self.body())
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_notes(text: str) -> list[Note]:
    """Notes as ``registry audit checkpoint export`` writes them; ValueError names the first
    that is not one."""
    notes = []
    text = text.replace("\r\n", "\n")  # a file that went through a Windows editor
    for number, block in enumerate(filter(None, (b.strip() for b in
                                                   text.split(f"{_NOTE_HEAD}\n"))), start=1):
        try:
            body, signed = block.split("\n\n", 1)
            values = dict(line.split(": ", 1) for line in body.splitlines())
            dash, public_key, signature = signed.strip().split(" ")
            if dash != "—" or values["origin"] != ORIGIN or not (
                    values["size"].isascii() and values["size"].isdigit()):
                raise ValueError
            notes.append(Note(
                seq=int(values["size"]), hash=values["hash"],
                at=datetime.fromisoformat(values["time"].rstrip("Z")).replace(tzinfo=UTC),
                public_key=public_key.lower(), signature=base64.b64decode(signature).hex()))
        except (ValueError, KeyError):
            raise ValueError(f"checkpoint {number} is not a signed note") from None
    return notes


class Checkpointer:
    """Signs the chain head at intervals: when ``every_events`` events have been appended since
    the last checkpoint, or ``every`` has passed since it (checked at each append)."""

    def __init__(self, key: Ed25519PrivateKey, *, every_events: int, every: timedelta) -> None:
        self._key = key
        self.public_key = key.public_key().public_bytes_raw().hex()
        self.every_events = every_events
        self.every = every

    def sign(self, seq: int, chain: str, at: datetime) -> Note:
        unsigned = Note(seq, chain, at, self.public_key, "")
        return Note(seq, chain, at, self.public_key, self._key.sign(unsigned.body()).hex())

    def after_append(self, session: Session, seq: int, chain: str, at: datetime) -> None:
        last = session.execute(select(AuditCheckpoint.seq, AuditCheckpoint.at)
                               .order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
        if last is not None and (last.seq >= seq or (  # >=: a log cut back is verify's to report
                seq - last.seq < self.every_events and at - last.at < self.every)):
            return
        self.checkpoint(session, seq, chain, at)

    def checkpoint(self, session: Session, seq: int, chain: str, at: datetime) -> Note:
        note = self.sign(seq, chain, at)
        session.execute(insert(AuditCheckpoint), [{
            "seq": seq, "hash": chain, "at": at, "public_key": note.public_key,
            "signature": note.signature}])
        return note


def stored_notes(session: Session) -> list[Note]:
    return [Note(r.seq, r.hash, r.at, r.public_key, r.signature) for r in session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.seq))]


def check_notes(session: Session, notes: Iterable[Note], *,
                trusted: str | None = None, archived_hashes: Mapping[int, str] = {}
                ) -> list[str]:
    """What is wrong with the log against checkpoints kept elsewhere (or stored): for each
    note whose signature fails, whose key is not ``trusted`` (when given), that lies past the
    log's end (cut back), or whose hash is not the event's at its sequence (edited, deleted,
    reordered or rebuilt). A note on an archived event is held against the anchor at the
    archive's boundary, or against ``archived_hashes`` (read from the archive files); without
    them it cannot be checked here and is no problem. Empty when all hold."""
    problems = []
    head = session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0
    boundaries = dict(session.execute(select(AuditAnchor.checkpoint_seq,
                                             AuditAnchor.prev_hash)).all())
    start = max(boundaries, default=0) + 1
    for note in notes:
        where = f"checkpoint at event {note.seq} ({_timestamp(note.at)})"
        if note.seq < start:
            found = boundaries.get(note.seq, archived_hashes.get(note.seq, note.hash))
        else:
            found = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == note.seq))
        if not note.valid():
            problems.append(f"{where}: its signature does not verify")
        elif trusted is not None and note.public_key != trusted:
            problems.append(f"{where}: signed by a key this registry does not hold")
        elif note.seq > head:
            problems.append(f"{where}: the log now ends at event {head} (cut back)")
        elif found != note.hash:
            problems.append(f"{where}: event {note.seq} no longer has the signed hash "
                            "(the log before it was edited, reordered, deleted or rebuilt)")
    return problems
