from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from registry.schemas import (
    Count,
    Day,
    IdNumberText,
    JurisdictionCode,
    LongText,
    Moment,
    Name,
    PersonRead,
    PhoneText,
    ShortText,
    Strict,
)


class Category(StrEnum):
    control = "control"  # 管制
    probation = "probation"  # 缓刑
    parole = "parole"  # 假释
    outside_custody = "outside_custody"  # 暂予监外执行


class CaseStatus(StrEnum):
    awaiting_report = "awaiting_report"  # 待报到
    active = "active"  # 在矫
    absconded = "absconded"  # 脱管
    ended = "ended"  # 解除矫正
    terminated = "terminated"  # 终止矫正


class Method(StrEnum):
    in_person = "in_person"
    phone = "phone"
    video = "video"


class SanctionKind(StrEnum):
    admonition = "admonition"  # 训诫
    warning = "warning"  # 警告
    penalty_proposal = "penalty_proposal"  # 提请治安管理处罚
    revocation_proposal = "revocation_proposal"  # 提请撤销缓刑、假释
    custody_proposal = "custody_proposal"  # 提请收监执行 (暂予监外执行)


class Grounds(StrEnum):
    conduct = "conduct"  # a violation, described in the reason
    two_admonitions = "two_admonitions"  # 受到训诫两次仍不改正
    two_warnings = "two_warnings"  # 受到警告两次仍不改正


class CaseCreate(Strict):
    name: Name
    id_number: IdNumberText
    jurisdiction_code: JurisdictionCode
    category: Category
    deciding_body: ShortText = Field(description="the court or authority that decided")
    judgment_ref: ShortText = Field(description="judgment or decision number")
    effective_on: Day
    supervision_start: Day
    supervision_end: Day
    reported_on: Day | None = Field(default=None, description="due within 10 days of effect")
    check_in_interval_days: Count = Field(default=7, ge=1, le=90)
    grace_days: Count = Field(default=2, ge=0, le=30)
    officer: str | None = Field(default=None, max_length=64,
                                description="username of the supervising officer")
    juvenile: bool = Field(default=False, description="a minor at the offence: sealed")
    phone: PhoneText | None = None


class CaseUpdate(Strict):
    officer: str | None = Field(default=None, max_length=64)
    check_in_interval_days: Count | None = Field(default=None, ge=1, le=90)
    grace_days: Count | None = Field(default=None, ge=0, le=30)
    supervision_end: Day | None = None
    phone: PhoneText | None = None


class ReportIn(Strict):
    reported_on: Day


class CheckInIn(Strict):
    at: Moment | None = Field(default=None, description="default: now")
    method: Method = Method.in_person


class SanctionIn(Strict):
    kind: SanctionKind
    grounds: Grounds = Grounds.conduct
    decided_on: Day
    reason: LongText
    decision_ref: ShortText | None = None


class StatusChange(Strict):
    status: CaseStatus = Field(description="absconded, active (returned), ended or terminated")
    on: Day
    reason: ShortText | None = None


class CheckInRead(BaseModel):
    at: datetime
    method: Method


class SanctionRead(BaseModel):
    kind: SanctionKind
    grounds: Grounds
    decided_on: date
    reason: str | None
    decision_ref: str | None


class CaseRead(BaseModel):
    id: uuid.UUID
    person: PersonRead
    jurisdiction_code: str
    category: Category
    deciding_body: str | None
    judgment_ref: str | None
    effective_on: date
    supervision_start: date
    supervision_end: date
    reported_on: date | None
    report_due_on: date
    late_report: bool
    check_in_interval_days: int
    grace_days: int
    officer: str | None
    status: CaseStatus
    ended_on: date | None
    end_reason: str | None
    juvenile: bool
    phone: str | None
    last_check_in_at: datetime | None
    next_due_on: date | None
    check_ins: list[CheckInRead] = Field(default_factory=list, description="latest first")
    sanctions: list[SanctionRead] = Field(default_factory=list)
    masked: list[str]
    hidden: list[str]


class BoardEntry(BaseModel):
    id: uuid.UUID
    name: str | None
    jurisdiction_code: str
    category: Category
    status: CaseStatus
    officer: str | None
    due_on: date
    days_late: int = Field(description="days past the due date (negative: not yet due)")
    overdue: bool = Field(description="no check-in by the due date plus grace")


class Board(BaseModel):
    as_of: date
    counts: dict[str, int] = Field(description="every section in full")
    limit: int = Field(description="entries listed per section, most urgent first")
    overdue: list[BoardEntry] = Field(description="most days late first")
    due_today: list[BoardEntry]
    awaiting_report: list[BoardEntry] = Field(description="not yet reported; due 10 days "
                                                          "after the effective date")
    supervision_ended: list[BoardEntry] = Field(description="past the end date: close them")
