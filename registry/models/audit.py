from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Text
from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class AuditEvent(SQLModel, table=True):
    """One access, hash-chained to the one before. Names records and fields, never values."""

    __tablename__ = "audit_event"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: datetime = timestamp(index=True)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor: str = Field(max_length=64)
    role: str = Field(max_length=16)
    action: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    record_id: str | None = Field(default=None, max_length=64, index=True)
    jurisdiction_code: str | None = Field(default=None, max_length=15)
    fields: str = Field(default="", sa_column=Column(Text, nullable=False))
    refs: str = Field(default="", sa_column=Column(Text, nullable=False))
    purpose: str | None = Field(default=None, max_length=200)
    outcome: str = Field(max_length=16, index=True)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    request_id: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain head, one row. Appenders lock it, so the chain stays linear."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement that the chain had this hash at this sequence number, made at
    intervals and meant to be exported: anyone holding one can later show that the log was
    not rewritten or cut back behind it."""

    __tablename__ = "audit_checkpoint"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=64)
    at: datetime = timestamp()
    public_key: str = Field(max_length=64)  # Ed25519, hex
    signature: str = Field(max_length=128)  # hex


class AuditRef(SQLModel, table=True):
    """The records an event touches, one row each: its ``refs`` and the record it names,
    written with the event. "Who has seen this person" becomes an index lookup instead of a
    scan of every event's ``refs`` text. Derived from the chain (a migration backfills it from
    ``audit_event``), and append-only like it."""

    __tablename__ = "audit_ref"

    record_id: str = Field(max_length=64, primary_key=True)
    kind: str = Field(max_length=32, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))


class AuditAnchor(SQLModel, table=True):
    """Where the online chain starts after an archive: the events before ``seq`` were moved
    into the archive file named here, and ``prev_hash`` is the chain hash of the last of them
    — the hash the signed checkpoint at ``checkpoint_seq`` (= ``seq`` - 1) vouches for, and the
    ``prev_hash`` of event ``seq``. Append-only; the newest anchor (the highest ``seq``) is the
    one in force. The database lets events and their refs below it be deleted, and nothing
    else (migration ``audit_archive``)."""

    __tablename__ = "audit_anchor"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    prev_hash: str = Field(max_length=64)
    # Loaded before the anchors by a restore (a foreign key orders the tables), and the
    # boundary of an archive must be a signed checkpoint.
    checkpoint_seq: int = Field(sa_column=Column(
        BigInteger, ForeignKey("audit_checkpoint.seq"), nullable=False, unique=True))
    first_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    archive_id: uuid.UUID
    archive_file: str = Field(max_length=255)
    archived_at: datetime = timestamp()
    archived_by: str = Field(max_length=64)


class AnomalyReview(SQLModel, table=True):
    """An auditor's mark on an anomaly-report item: reviewed, with a note (sealed: free text).
    Keyed by the item's id (period, rule and user), so the mark holds when the report is run
    again."""

    __tablename__ = "audit_anomaly_review"

    id: uuid.UUID = Field(primary_key=True)
    item_id: str = Field(max_length=64, unique=True)
    key_id: uuid.UUID = Field(index=True)  # keystore.data_key
    note: bytes | None = sealed(nullable=False)
    reviewed_by: str = Field(max_length=64)
    reviewed_at: datetime = timestamp()
