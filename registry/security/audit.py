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

from sqlalchemy import insert, select, update
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


def verify(session: Session, *, chunk: int = 5000) -> Verification:
    """Walk the chain from the start; name the first event that does not fit."""
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    expected_seq, prev, checked = 1, GENESIS_HASH, 0
    last_seq = 0
    while True:
        result = session.execute(
            select(*_COLUMNS).where(AuditEvent.seq >= expected_seq).order_by(AuditEvent.seq)
            .limit(chunk)
        ).mappings().all()
        if not result:
            break
        for row in result:
            if row["seq"] != expected_seq:
                return Verification(False, checked, head.seq, expected_seq,
                                    f"event {expected_seq} is missing (next is {row['seq']})")
            if row["prev_hash"] != prev:
                return Verification(False, checked, head.seq, row["seq"],
                                    "prev_hash does not match the event before it")
            if chain_hash(prev, row) != row["hash"]:
                return Verification(False, checked, head.seq, row["seq"],
                                    "content does not match its hash (edited)")
            prev = row["hash"]
            last_seq = row["seq"]
            expected_seq += 1
            checked += 1
    if last_seq != head.seq or prev != head.hash:
        where = last_seq + 1 if last_seq < head.seq else head.seq
        return Verification(False, checked, head.seq, where,
                            f"log ends at {last_seq} but the chain head is at {head.seq}")
    return Verification(True, checked, head.seq)
