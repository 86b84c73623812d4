from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class Residency(SQLModel, table=True):
    """A migrant or temporary resident living at a registered rental or another address, from
    arrival until they leave. Moving creates a new residency; history is never overwritten.
    The tenant facts of 租赁房屋治安管理规定 Art. 7(3) are sealed under the record's data key."""

    __tablename__ = "residency"

    id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # keystore.data_key
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    name: bytes | None = sealed(nullable=False)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", index=True, max_length=15)
    rental_id: uuid.UUID | None = Field(default=None, foreign_key="rental_property.id",
                                        index=True)
    address: bytes | None = sealed()
    arrived_on: date
    registered_on: date
    left_on: date | None = Field(default=None, index=True)
    reason: str = Field(max_length=16)
    occupation: bytes | None = sealed()
    workplace: bytes | None = sealed()
    phone: bytes | None = sealed()
    phone_bidx: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    hukou_address: bytes | None = sealed()
    permit_number: bytes | None = sealed()
    permit_issued_on: date | None = None
    permit_endorsed_on: date | None = None
    late: bool = False
    missing: str = Field(default="", max_length=200)
    created_by: uuid.UUID | None = None
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()
