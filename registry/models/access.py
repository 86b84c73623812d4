from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.models._types import sealed, timestamp


class BreakGlassGrant(SQLModel, table=True):
    """An officer's stated need to read one record outside their scope (break-glass): read
    only, until ``expires_at``, and pending in the auditors' queue until signed off. The
    reason is the officer's statement for the reviewers, and the review note the reviewer's:
    free text an officer may put a name in, so both are sealed under the grant's own data key
    (like an anomaly review's note) — not the person's, so erasing the person leaves the grant
    readable and untouched.

    ``legacy_reason`` and ``legacy_review_note`` hold the clear text of grants opened before
    sealing, until the next start-up seals them (:func:`registry.vault.access.seal_legacy_grants`)
    and empties them; new grants never write them."""

    __tablename__ = "break_glass_grant"

    id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    officer_scope: str = Field(max_length=15)
    kind: str = Field(max_length=16)
    record_id: uuid.UUID = Field(index=True)
    jurisdiction_code: str = Field(max_length=15, index=True)
    key_id: uuid.UUID | None = Field(default=None, index=True)  # keystore.data_key
    reason: bytes | None = sealed()  # None only on a legacy row not sealed yet
    legacy_reason: str | None = Field(default=None, max_length=500)
    opened_at: datetime = timestamp()
    expires_at: datetime = timestamp()
    reviewed_at: datetime | None = timestamp(nullable=True, index=True)
    reviewed_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    review_note: bytes | None = sealed()
    legacy_review_note: str | None = Field(default=None, max_length=500)


class PersonRestriction(SQLModel, table=True):
    """A restricted person (a witness, a staff member's relative, a public figure): one row
    per user allowed to see their records. A person with no row is not restricted; everyone
    not listed gets 404 on every record of a person with rows."""

    __tablename__ = "person_restriction"

    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True)
    set_by: uuid.UUID | None = None
    set_at: datetime = timestamp()
