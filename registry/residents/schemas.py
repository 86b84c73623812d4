from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from registry.schemas import (
    AddressText,
    Day,
    IdNumberText,
    JurisdictionCode,
    Name,
    PersonRead,
    PhoneText,
    ShortText,
    Strict,
)


class Reason(StrEnum):
    work = "work"  # 务工
    business = "business"  # 经商
    study = "study"  # 就学
    family = "family"  # 投亲
    other = "other"  # 其他


class Where(Strict):
    """Where a resident lives: a registered rental, or another address in a jurisdiction."""

    rental_id: uuid.UUID | None = None
    jurisdiction_code: JurisdictionCode | None = Field(
        default=None, description="required with address; defaults to the rental's")
    address: AddressText | None = Field(default=None, description="when not at a rental")


class ResidentFacts(Strict):
    reason: Reason | None = None
    occupation: ShortText | None = Field(default=None, description="occupation or income source")
    workplace: ShortText | None = None
    phone: PhoneText | None = None
    hukou_address: AddressText | None = Field(default=None, description="户籍地址")
    permit_number: ShortText | None = Field(default=None, description="居住证号")
    permit_issued_on: Day | None = None
    permit_endorsed_on: Day | None = Field(default=None, description="last endorsement")


class ArrivalIn(Where, ResidentFacts):
    name: Name
    id_number: IdNumberText
    reason: Reason
    arrived_on: Day
    registered_on: Day | None = Field(default=None, description="default: today")


class MoveIn(Where, ResidentFacts):
    moved_on: Day


class MoveOut(Strict):
    left_on: Day


class ResidentUpdate(ResidentFacts):
    pass


class ResidentSearch(Strict):
    id_number: IdNumberText | None = None
    phone: PhoneText | None = None


class ResidentRead(BaseModel):
    id: uuid.UUID
    person: PersonRead
    jurisdiction_code: str
    rental_id: uuid.UUID | None
    address: str | None
    arrived_on: date
    registered_on: date
    left_on: date | None
    reason: Reason
    occupation: str | None
    workplace: str | None
    phone: str | None
    hukou_address: str | None
    permit_number: str | None
    permit_issued_on: date | None
    permit_endorsed_on: date | None
    late: bool = Field(description="registered after the jurisdiction's deadline")
    missing: list[str]
    masked: list[str]
    hidden: list[str]
