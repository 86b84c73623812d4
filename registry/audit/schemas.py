from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class EventFilter(BaseModel):
    actor: str | None = Field(default=None, max_length=64)
    kind: str | None = Field(default=None, max_length=32)
    record_id: str | None = Field(default=None, max_length=64,
                                  description="a record id; also matches list and search "
                                              "events that returned the record")
    outcome: str | None = Field(default=None, max_length=16)
    since: datetime | None = None
    until: datetime | None = None


class EventRead(BaseModel):
    seq: int
    at: datetime
    actor: str
    actor_id: uuid.UUID | None
    role: str
    action: str
    kind: str
    record_id: str | None
    jurisdiction_code: str | None
    fields: list[str]
    refs: list[str]
    purpose: str | None
    outcome: str
    detail: str
    request_id: str | None
    hash: str


class VerificationRead(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    broken_seq: int | None
    reason: str | None
