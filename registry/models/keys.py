from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from registry.db import KEYSTORE
from registry.models._types import timestamp


class DataKey(SQLModel, table=True):
    """A wrapped data key: one per person and per case, in the keystore (its own SQLite file
    or PostgreSQL schema, apart from the data it opens; no foreign key crosses over). Deleting
    the wrapped bytes crypto-shreds everything sealed under it."""

    __tablename__ = "data_key"
    __table_args__ = {"schema": KEYSTORE}

    id: uuid.UUID = Field(primary_key=True)
    kek_id: str = Field(max_length=32, index=True)
    wrapped: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = timestamp()
    destroyed_at: datetime | None = timestamp(nullable=True)


class KeyCheck(SQLModel, table=True):
    """Check values that tie the key file to this database: a value wrapped under each KEK and
    the fingerprint of each blind-index root version in use (``index``, ``index:<n>``).
    Start-up refuses a key file that does not match. While an index rotation runs, its
    progress per table sits here too (``reindex:<table>``, registry/vault/indexadmin.py)."""

    __tablename__ = "key_check"

    name: str = Field(primary_key=True, max_length=64)
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
