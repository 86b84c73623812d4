"""The audit chain.

Every access to personal data appends one event naming the actor, the action, the record and
field names — never values. Each event stores ``prev_hash`` and
``hash = SHA-256(prev_hash ‖ canonical(event))`` where the canonical form is sorted-key JSON of
every column but ``hash``, including the sequence number, so editing, deleting, inserting or
reordering events breaks the chain at the first affected event. Appends lock the one-row chain
head (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE``), so
the chain stays linear under concurrent writers. Events are buffered by the vault and appended
just before commit, which keeps the head lock short.

A superuser can rebuild a whole chain; signed checkpoints held outside the database (a later
issue) are what stop that.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from registry.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64


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


def _timestamp(at: datetime) -> str:
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


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


def canonical(row: dict) -> bytes:
    body = {
        "seq": int(row["seq"]),
        "at": _timestamp(row["at"]),
        "actor_id": str(row["actor_id"]) if row["actor_id"] else None,
        "actor": row["actor"],
        "role": row["role"],
        "action": row["action"],
        "kind": row["kind"],
        "outcome": row["outcome"],
        "record_id": row["record_id"],
        "jurisdiction_code": row["jurisdiction_code"],
        "fields": row["fields"],
        "refs": row["refs"],
        "purpose": row["purpose"],
        "detail": row["detail"],
        "request_id": row["request_id"],
        "prev_hash": row["prev_hash"],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, row: dict) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(row)).hexdigest()


def append(session: Session, events: Iterable[Event]) -> int:
    """Append events in order under the head lock; returns the new head sequence."""
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
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))
    return seq


@dataclass
class Verification:
    ok: bool
    checked: int
    head_seq: int
    broken_seq: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} events, head at {self.head_seq}"
        return f"audit chain BROKEN at event {self.broken_seq}: {self.reason}"


_COLUMNS = [c for c in AuditEvent.__table__.columns]


class _Broken(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        self.seq, self.reason = seq, reason


def _walk(session: Session, expected_seq: int, prev: str, chunk: int) -> tuple[int, str]:
    """Check events from ``expected_seq`` on, each against the one before; returns the next
    expected sequence and the last hash, or raises :class:`_Broken` at the first misfit."""
    while True:
        rows = session.execute(
            select(*_COLUMNS).where(AuditEvent.seq >= expected_seq).order_by(AuditEvent.seq)
            .limit(chunk)).mappings().all()
        if not rows:
            return expected_seq, prev
        for row in rows:
            if row["seq"] != expected_seq:
                raise _Broken(expected_seq, f"event {expected_seq} is missing "
                                            f"(next is {row['seq']})")
            if row["prev_hash"] != prev:
                raise _Broken(row["seq"], "prev_hash does not match the event before it")
            if chain_hash(prev, row) != row["hash"]:
                raise _Broken(row["seq"], "content does not match its hash (edited)")
            prev = row["hash"]
            expected_seq += 1


def verify(session: Session, *, chunk: int = 5000) -> Verification:
    """Walk the chain from the start; name the first event that does not fit.

    The walk runs unlocked, so appends go on meanwhile; then the head is locked as an append
    would lock it (appends wait, briefly; the verification event appended afterwards in the
    same transaction needs that lock anyway), the events appended since are walked too, and
    the log must end exactly at the head: none missing, none forged past it, none numbered
    below 1."""
    head_seq = None
    try:
        expected, prev = _walk(session, 1, GENESIS_HASH, chunk)
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
        below = session.scalar(select(func.min(AuditEvent.seq)).where(AuditEvent.seq < 1))
        if below is not None:
            raise _Broken(below, "an event numbered below 1 (forged)")
    except _Broken as broken:
        if head_seq is None:
            head_seq = session.scalar(select(AuditHead.seq).where(AuditHead.id == 1))
        return Verification(False, max(broken.seq - 1, 0), head_seq, broken.seq, broken.reason)
    return Verification(True, head.seq, head.seq)
