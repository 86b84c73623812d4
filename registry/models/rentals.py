from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class RentalProperty(SQLModel, table=True):
    """A let or lettable property. The address and the landlord's name and phone, as this
    office recorded them, are sealed under the rental's own data key; the latest pledge's
    dates are copied here so pledge state filters and metrics stay in SQL."""

    __tablename__ = "rental_property"

    id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # keystore.data_key
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", index=True, max_length=15)
    status: str = Field(max_length=16, index=True)
    status_since: date
    registered_on: date
    deregistered_on: date | None = None
    units: int
    address: bytes | None = sealed(nullable=False)
    address_bidx: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    landlord_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    landlord_name: bytes | None = sealed(nullable=False)
    landlord_phone: bytes | None = sealed()
    landlord_phone_bidx: int | None = Field(default=None,
                                            sa_column=Column(BigInteger, index=True))
    pledge_signed_on: date | None = None
    pledge_valid_until: date | None = Field(default=None, index=True)
    missing: str = Field(default="", max_length=200)
    created_by: uuid.UUID | None = None
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()


class Pledge(SQLModel, table=True):
    """A signed security-responsibility pledge (治安责任保证书). History is kept: renewing adds a
    row. The signer's name is sealed under the rental's data key."""

    __tablename__ = "pledge"

    id: uuid.UUID = Field(primary_key=True)
    rental_id: uuid.UUID = Field(foreign_key="rental_property.id", index=True)
    signed_on: date
    valid_until: date
    signed_by: bytes | None = sealed(nullable=False)
    recorded_by: uuid.UUID | None = None
    recorded_at: datetime = timestamp()
