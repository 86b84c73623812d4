from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from registry.schemas import Strict


class GrantKind(StrEnum):
    """The registers a break-glass grant can open a record of."""

    rental = "rental"
    resident = "resident"
    corrections = "corrections"
    release = "release"


class QueueStatus(StrEnum):
    pending = "pending"
    reviewed = "reviewed"
    all = "all"


Reason = Annotated[str, StringConstraints(min_length=1, max_length=500,
                                          pattern=r"^[^\x00-\x1f\x7f]*$")]


class GrantOpen(Strict):
    kind: GrantKind
    record_id: uuid.UUID
    reason: Reason


class GrantReview(Strict):
    note: Reason


class GrantRead(BaseModel):
    """A break-glass grant as the officer and the auditors see it: ids, kind, reason and
    times, never the record's contents."""

    id: uuid.UUID
    kind: GrantKind
    record_id: uuid.UUID
    jurisdiction_code: str
    officer_id: uuid.UUID
    officer_scope: str
    reason: str
    opened_at: datetime
    expires_at: datetime
    live: bool
    reviewed_at: datetime | None = None
    reviewed_by: uuid.UUID | None = None
    review_note: str | None = None
