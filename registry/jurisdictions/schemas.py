from __future__ import annotations

from pydantic import Field

from registry.schemas import JurisdictionCode, Strict


class JurisdictionIn(Strict):
    """A node of the division-code tree, as a ledger row gives it."""

    code: JurisdictionCode
    name: str = Field(min_length=1, max_length=100)
    parent_code: JurisdictionCode | None = None
    registration_deadline_days: int | None = Field(default=None, ge=0, le=365)
