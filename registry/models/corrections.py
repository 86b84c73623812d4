from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class CorrectionsCase(SQLModel, table=True):
    """A community-corrections case (社区矫正). ``next_due_on`` is kept with every check-in so
    the check-in board is one indexed query; there is no location data of any kind."""

    __tablename__ = "corrections_case"

    id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # keystore.data_key
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    name: bytes | None = sealed(nullable=False)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", index=True, max_length=15)
    category: str = Field(max_length=24)
    deciding_body: bytes | None = sealed(nullable=False)
    judgment_ref: bytes | None = sealed(nullable=False)
    effective_on: date
    supervision_start: date
    supervision_end: date
    reported_on: date | None = None
    late_report: bool = False
    check_in_interval_days: int
    grace_days: int
    officer_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id",
                                         index=True)
    status: str = Field(max_length=16, index=True)
    ended_on: date | None = None
    end_reason: bytes | None = sealed()
    juvenile: bool = False
    phone: bytes | None = sealed()
    last_check_in_at: datetime | None = timestamp(nullable=True)
    next_due_on: date | None = Field(default=None, index=True)
    overdue_on: date | None = Field(default=None, index=True,
                                    description="next_due_on + grace_days")
    archived_on: date | None = None  # retention: kept read-only, never deleted
    created_by: uuid.UUID | None = None
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()


class CheckIn(SQLModel, table=True):
    """One reporting event: in person, by phone or by video. Never a location."""

    __tablename__ = "check_in"

    id: uuid.UUID = Field(primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="corrections_case.id", index=True)
    at: datetime = timestamp()
    method: str = Field(max_length=16)
    recorded_by: uuid.UUID | None = None


class Sanction(SQLModel, table=True):
    """A sanction or proposal (训诫, 警告, …). Appended, never edited."""

    __tablename__ = "sanction"

    id: uuid.UUID = Field(primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="corrections_case.id", index=True)
    kind: str = Field(max_length=24)
    grounds: str = Field(max_length=24)
    decided_on: date
    reason: bytes | None = sealed(nullable=False)
    decision_ref: bytes | None = sealed()
    recorded_by: uuid.UUID | None = None
    created_at: datetime = timestamp()
