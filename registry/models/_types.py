"""Column helpers shared by the tables."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC

from sqlalchemy import Column, DateTime
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

from registry.security.sealed import Sealed


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): time-ordered, so inserts stay local in B-tree indexes. Ids are
    allocated before insert so ciphertexts can be bound to their row."""
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return uuid.UUID(bytes=bytes(raw))


def sealed(*, nullable: bool = True):
    return Field(default=None, sa_column=Column(Sealed(), nullable=nullable))


class UTCDateTime(TypeDecorator):
    """A point in time, stored as UTC and read back aware in UTC on both databases (SQLite
    keeps no offset, so anything else would store wall-clock times that read back wrong)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp(*, nullable: bool = False, index: bool = False):
    return Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )
