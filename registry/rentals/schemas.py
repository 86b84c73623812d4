from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from registry.schemas import (
    AddressText,
    Count,
    Day,
    JurisdictionCode,
    Name,
    PersonIn,
    PersonRead,
    PhoneText,
    Strict,
)


class RentalStatus(StrEnum):
    active = "active"  # 在租
    vacant = "vacant"  # 空置
    deregistered = "deregistered"  # 注销


class PledgeState(StrEnum):
    valid = "valid"
    expired = "expired"
    missing = "missing"


class PledgeIn(Strict):
    signed_on: Day
    valid_until: Day
    signed_by: Name | None = Field(default=None, description="default: the landlord")


class RentalCreate(Strict):
    jurisdiction_code: JurisdictionCode
    address: AddressText
    units: Count = Field(ge=1, le=10_000, description="rental units / households")
    status: RentalStatus = RentalStatus.active
    registered_on: Day | None = Field(default=None, description="default: today")
    landlord: PersonIn
    pledge: PledgeIn | None = None


class RentalUpdate(Strict):
    jurisdiction_code: JurisdictionCode | None = None
    address: AddressText | None = None
    units: Count | None = Field(default=None, ge=1, le=10_000)
    status: RentalStatus | None = Field(default=None, description="active or vacant")
    landlord: PersonIn | None = Field(default=None, description="a different landlord")
    landlord_phone: PhoneText | None = None


class Deregistration(Strict):
    deregistered_on: Day | None = Field(default=None, description="default: today")


class RentalSearch(Strict):
    landlord_id_number: str | None = Field(default=None, min_length=15, max_length=24)
    landlord_phone: PhoneText | None = None


class PledgeRead(BaseModel):
    signed_on: date
    valid_until: date
    signed_by: str | None = None


class RentalRead(BaseModel):
    id: uuid.UUID
    jurisdiction_code: str
    status: RentalStatus
    status_since: date
    registered_on: date
    deregistered_on: date | None
    units: int
    address: str | None
    landlord: PersonRead
    pledge: PledgeRead | None
    pledge_state: PledgeState
    missing: list[str] = Field(description="required facts not yet recorded")
    masked: list[str] = Field(description="fields shown masked; a purpose reveals them")
    hidden: list[str] = Field(description="fields this role may not see")
