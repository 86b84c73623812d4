from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from registry.schemas import Strict


class MetricRow(BaseModel):
    """One metric at one node: the node itself (``node``) or one of its children."""

    metric: str
    name_zh: str
    name_en: str
    code: str
    name: str
    node: bool
    numerator: int | str  # "<5" when suppressed
    denominator: int | str
    rate: float | None  # None: nothing to count, or suppressed
    target: float | None  # None: reported without a target
    met: bool | None
    gap: int | None  # how many more records must be brought up to reach the target
    suppressed: bool = False
    note: str = ""


class Report(BaseModel):
    code: str
    name: str
    level: str
    as_of: date
    rows: list[MetricRow]


class TrendPoint(BaseModel):
    as_of: date
    metric: str
    name_zh: str
    rate: float | None
    target: float | None


class ShortfallItem(BaseModel):
    """A record that keeps the node below target, as the caller may see it, and why."""

    reasons: list[str]
    record: dict


class ShortfallPage(BaseModel):
    metric: str
    name_zh: str
    code: str
    as_of: date
    total: int
    page: int
    page_size: int
    items: list[ShortfallItem]


class BaselineIn(Strict):
    count: int = Field(ge=0, le=10_000_000, description="how many the survey counted")
    surveyed_on: date
