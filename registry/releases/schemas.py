from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from registry.schemas import (
    Count,
    Day,
    IdNumberText,
    JurisdictionCode,
    LongText,
    Name,
    PersonRead,
    PhoneText,
    ShortText,
    Strict,
)


class Source(StrEnum):
    prison = "prison"  # 刑满释放
    corrections = "corrections"  # 社区矫正期满解除


class PlacementStatus(StrEnum):
    placed = "placed"  # 已安置
    not_yet = "not_yet"  # 未安置
    not_needed = "not_needed"  # 无需安置


class PlacementKind(StrEnum):
    employment = "employment"  # 就业
    self_employment = "self_employment"  # 自主创业
    farming = "farming"  # 务农
    study = "study"  # 就学
    subsistence_allowance = "subsistence_allowance"  # 低保
    transitional_base = "transitional_base"  # 过渡性安置基地
    family_support = "family_support"  # 亲属供养


class AssistanceKind(StrEnum):
    visit = "visit"  # 走访
    call = "call"  # 电话
    job_referral = "job_referral"  # 就业推荐
    training = "training"  # 技能培训
    allowance_application = "allowance_application"  # 申请救助


class CloseReason(StrEnum):
    period_ended = "period_ended"  # 帮教期满
    moved_away = "moved_away"  # 迁出
    died = "died"  # 死亡
    reoffended = "reoffended"  # 重新犯罪
    other = "other"


class ReleaseCreate(Strict):
    name: Name
    id_number: IdNumberText
    jurisdiction_code: JurisdictionCode
    source: Source
    released_on: Day = Field(description="may be ahead of today when a notice comes first")
    releasing_institution: ShortText
    notice_received_on: Day | None = Field(default=None, description="pre-release notice")
    key_subject: bool = Field(default=False, description="重点帮教对象")
    escort_required: bool = Field(default=False, description="必接必送")
    escorted_on: Day | None = None
    aftercare_years: Count | None = Field(default=None, ge=1, le=20,
                                        description="default: the setting (5)")
    aftercare_group: LongText | None = Field(default=None, description="帮教小组")
    measures_in_place: bool = False
    consent_to_contact: bool = False
    phone: PhoneText | None = None
    juvenile: bool = Field(default=False, description="a minor at the offence: sealed")


class ReleaseUpdate(Strict):
    notice_received_on: Day | None = None
    key_subject: bool | None = None
    escort_required: bool | None = None
    escorted_on: Day | None = None
    aftercare_group: LongText | None = None
    measures_in_place: bool | None = None
    consent_to_contact: bool | None = None
    phone: PhoneText | None = None


class PlacementIn(Strict):
    status: PlacementStatus
    kind: PlacementKind | None = None
    placed_on: Day | None = None


class AssistanceIn(Strict):
    on: Day
    kind: AssistanceKind
    notes: LongText | None = None


class CloseIn(Strict):
    on: Day
    reason: CloseReason


class AssistanceRead(BaseModel):
    on: date
    kind: AssistanceKind
    notes: str | None
    worker: str | None


class ReleaseRead(BaseModel):
    id: uuid.UUID
    person: PersonRead
    jurisdiction_code: str
    source: Source
    released_on: date
    releasing_institution: str | None
    notice_received_on: date | None
    key_subject: bool | None = Field(description="shown only while aftercare is open")
    escort_required: bool
    escorted_on: date | None
    aftercare_until: date
    aftercare_group: str | None
    measures_in_place: bool
    placement_status: PlacementStatus
    placement_kind: PlacementKind | None
    placed_on: date | None
    consent_to_contact: bool
    phone: str | None
    open: bool
    closed_on: date | None
    close_reason: CloseReason | None
    juvenile: bool
    assistance: list[AssistanceRead] = Field(default_factory=list, description="latest first")
    masked: list[str]
    hidden: list[str]
