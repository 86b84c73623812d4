from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from registry.schemas import Printable


class EventFilter(BaseModel):
    actor: Printable | None = None
    kind: Printable | None = None
    record_id: Printable | None = Field(default=None,
                                  description="a record id; also matches list and search "
                                              "events that returned the record")
    outcome: Printable | None = None
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
    checkpoints: int = 0  # signed checkpoints checked against the log
    checkpoint_problems: list[str] = []
