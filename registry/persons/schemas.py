from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from registry.schemas import Printable, Strict


class RestrictionIn(Strict):
    """The users allowed to see the person's records; the one setting it is always one of
    them."""

    users: Annotated[list[Printable], Field(min_length=1, max_length=100)]


class RestrictionRead(BaseModel):
    person_id: uuid.UUID
    restricted: bool
    users: list[str] = []
    set_at: datetime | None = None
