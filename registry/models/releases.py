from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class ReleaseCase(SQLModel, table=True):
    """A person released from prison or discharged from corrections, in resettlement and
    aftercare (安置帮教) until ``aftercare_until``."""

    __tablename__ = "release_case"

    id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # keystore.data_key
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    name: bytes | None = sealed(nullable=False)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", index=True, max_length=15)
    source: str = Field(max_length=16)
    released_on: date
    releasing_institution: bytes | None = sealed(nullable=False)
    notice_received_on: date | None = None
    key_subject: bool = False
    escort_required: bool = False
    escorted_on: date | None = None
    aftercare_until: date = Field(index=True)
    aftercare_group: bytes | None = sealed()
    measures_in_place: bool = False
    placement_status: str = Field(max_length=16, index=True)
    placement_kind: str | None = Field(default=None, max_length=24)
    placed_on: date | None = None
    consent_to_contact: bool = False
    phone: bytes | None = sealed()
    closed_on: date | None = Field(default=None, index=True)
    close_reason: str | None = Field(default=None, max_length=24)
    juvenile: bool = False
    created_by: uuid.UUID | None = None
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()


class AssistanceRecord(SQLModel, table=True):
    """A visit, call, job referral, training or allowance application for a release case."""

    __tablename__ = "assistance_record"

    id: uuid.UUID = Field(primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="release_case.id", index=True)
    on: date
    kind: str = Field(max_length=24)
    notes: bytes | None = sealed()
    worker_id: uuid.UUID | None = None
    created_at: datetime = timestamp()
