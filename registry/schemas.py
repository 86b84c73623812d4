"""Schema pieces shared by the registers: bounded strings, the person views, pages."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, StringConstraints


def _date_from_text(value: object) -> object:
    """Dates (and times) come as ISO text: a number (which pydantic would read as a Unix
    timestamp) is refused rather than turned into 1970-01-01."""
    if isinstance(value, int | float | bool):
        raise ValueError("a date is written as YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_date_from_text)]
Moment = Annotated[datetime, BeforeValidator(_date_from_text)]
Count = Annotated[int, Strict()]  # JSON true is not 1
Name = Annotated[str, StringConstraints(min_length=1, max_length=50)]
# Free identifiers from outside (a username at sign-in, a filter value): printable only.
Printable = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=64)]
IdNumberText = Annotated[str, StringConstraints(min_length=15, max_length=24)]
PhoneText = Annotated[str, StringConstraints(min_length=11, max_length=20)]
AddressText = Annotated[str, StringConstraints(min_length=2, max_length=200)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=100)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
JurisdictionCode = Annotated[str, StringConstraints(pattern=r"^\d{6}(\d{3}(\d{3}(\d{3})?)?)?$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PersonIn(Strict):
    name: Name
    id_number: IdNumberText
    phone: PhoneText | None = None


class PersonRead(BaseModel):
    """A person as the caller's role may see them: clear, masked, or ``None`` when hidden."""

    id: uuid.UUID
    name: str | None = None
    id_number: str | None = None
    sex: str | None = None
    birth_date: date | str | None = None
    phone: str | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
