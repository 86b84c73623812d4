from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlmodel import Field, SQLModel

from registry.models._types import timestamp


class SurveyBaseline(SQLModel, table=True):
    """A count from a door-to-door survey (入户普查) for one metric's denominator at one node:
    where it is larger than what the registry holds, the report uses it and says so."""

    __tablename__ = "survey_baseline"

    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", primary_key=True,
                                   max_length=15)
    metric: str = Field(primary_key=True, max_length=32)
    count: int
    surveyed_on: date
    recorded_by: uuid.UUID | None = None
    recorded_at: datetime = timestamp()
