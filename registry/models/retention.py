from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlmodel import Field, SQLModel

from registry.models._types import timestamp


class LegalHold(SQLModel, table=True):
    """A legal hold: while it stands, retention erases neither the record it names nor (for a
    person) any record of theirs. ``reference`` is the order's number, never a personal value."""

    __tablename__ = "legal_hold"

    id: uuid.UUID = Field(primary_key=True)
    ref: str = Field(max_length=64, index=True)  # "person:<id>", "residency:<id>", ...
    reference: str = Field(max_length=64)
    placed_by: str = Field(max_length=64)
    placed_at: datetime = timestamp()
    lifted_by: str | None = Field(default=None, max_length=64)
    lifted_at: datetime | None = timestamp(nullable=True)


class Erasure(SQLModel, table=True):
    """A tombstone: a record erased by retention — its kind, id, area and the rule — with no
    personal data. The record's data key is destroyed (crypto-shredding); its row is gone."""

    __tablename__ = "erasure"

    id: uuid.UUID = Field(primary_key=True)
    kind: str = Field(max_length=16)
    record_id: uuid.UUID = Field(index=True)
    jurisdiction_code: str | None = Field(default=None, max_length=15, index=True)
    rule: str = Field(max_length=32)
    due_on: date
    key_id: uuid.UUID
    erased_at: datetime = timestamp()
    erased_by: str = Field(max_length=64)
