from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class Coordinator(SQLModel, table=True):
    """A migrant-population coordinator (流动人口协管员) on the staff roster, counted by the
    staffing ratio. The staff number is the roster's key; name and phone are sealed."""

    __tablename__ = "coordinator"

    id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # keystore.data_key
    staff_number: str = Field(max_length=32, unique=True)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", index=True, max_length=15)
    name: bytes | None = sealed(nullable=False)
    phone: bytes | None = sealed()
    created_by: uuid.UUID | None = None
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()
