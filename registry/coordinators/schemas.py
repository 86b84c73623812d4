from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from registry.schemas import JurisdictionCode, Name, PhoneText, Strict


class CoordinatorIn(Strict):
    staff_number: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z._-]+$",
                              description="工号: the roster's key")
    name: Name
    jurisdiction_code: JurisdictionCode
    phone: PhoneText | None = None


class CoordinatorRead(BaseModel):
    id: uuid.UUID
    staff_number: str
    jurisdiction_code: str
    name: str | None = None
    phone: str | None = None
    masked: list[str] = []
