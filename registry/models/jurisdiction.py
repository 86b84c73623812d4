from __future__ import annotations

from sqlmodel import Field, SQLModel


class Jurisdiction(SQLModel, table=True):
    """A node of the division-code tree: county (6 digits) > township/street (9) >
    community/village (12) > grid (15). Scope tests are prefix tests on the code."""

    __tablename__ = "jurisdiction"

    code: str = Field(primary_key=True, max_length=15)
    name: str = Field(max_length=100)
    level: str = Field(max_length=16)
    parent_code: str | None = Field(
        default=None, foreign_key="jurisdiction.code", index=True, max_length=15
    )
    # Days after arrival within which a resident must be registered; None inherits the
    # nearest ancestor's value, then the setting.
    registration_deadline_days: int | None = None
