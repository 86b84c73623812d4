from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel


class DueRead(BaseModel):
    """A record the retention rules say must go (or be archived); ids only."""

    kind: str
    record_id: uuid.UUID
    action: str  # erase | archive
    rule: str
    due_on: date
    jurisdiction_code: str | None
    held: str | None  # the legal hold's reference, if one keeps it


class PlanRead(BaseModel):
    as_of: date
    items: list[DueRead]
    audit_events_past_retention: int
