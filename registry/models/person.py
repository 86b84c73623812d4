from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class Person(SQLModel, table=True):
    """One natural person, shared by every register, found by the blind index of the national
    ID number. It holds only what the number says (the number, sex, birth date), sealed under
    the person's own data key; names and phones live on each office's records."""

    __tablename__ = "person"

    id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # keystore.data_key
    id_bidx: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    id_number: bytes | None = sealed(nullable=False)
    sex: bytes | None = sealed(nullable=False)
    birth_date: bytes | None = sealed(nullable=False)
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()
