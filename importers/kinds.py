"""One parser per ledger kind: a row's cell texts in, the request the API would have received
out — the very schema its route validates (``RentalCreate``, ``ArrivalIn``, …) — so an imported
row passes the same rules as a typed one. What the API has no field for rides along in
``extra`` (a residency that has ended, a last check-in, a placement).

Cells are normalised by :mod:`importers.values` first (full-width digits, ``x`` → ``X``, Excel's
damage to ID numbers, the common date spellings, +86 phones, Chinese enum words); a schema's
own refusal is translated into the same :class:`Invalid`, naming the ledger column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from importers import values as v
from importers.columns import REQUIRED, SPELLINGS, Kind
from registry.coordinators.schemas import CoordinatorIn
from registry.corrections.schemas import CaseCreate
from registry.errors import Invalid, RegistryError
from registry.jurisdictions.schemas import JurisdictionIn
from registry.releases.schemas import PlacementIn, PlacementStatus, ReleaseCreate
from registry.rentals.schemas import RentalCreate
from registry.residents.schemas import ArrivalIn
from registry.validation import IdNumber


@dataclass
class Parsed:
    """A row ready for the gate: the API request, what the API has no field for, and the
    person's ID number (for matching) when the row is about a person."""

    request: BaseModel
    extra: dict[str, Any] = field(default_factory=dict)
    id_number: IdNumber | None = None


class _Cells:
    """Typed access to one row's cells; blank optional cells come back as ``None``."""

    def __init__(self, values: dict[str, str], row: int, required: frozenset[str]) -> None:
        self.values, self.row, self.required = values, row, required

    def __contains__(self, name: str) -> bool:
        """Whether the cell is filled in; a blank required cell is an error here."""
        if v.present(self.values.get(name)) is not None:
            return True
        if name in self.required:
            raise Invalid("is required", "不能为空", field=name, row=self.row)
        return False

    def text(self, name: str) -> str | None:
        return v.present(self.values.get(name))

    def need(self, name: str) -> str:
        return v.text(self.values.get(name), field=name, row=self.row)

    def date(self, name: str) -> date | None:
        return v.date(self.values[name], field=name, row=self.row) if name in self else None

    def integer(self, name: str, **bounds) -> int | None:
        return (v.integer(self.values[name], field=name, row=self.row, **bounds)
                if name in self else None)

    def choice(self, name: str, table) -> Any:
        if name not in self:
            return None
        return v.choice(self.values[name], table, field=name, row=self.row)

    def phone(self, name: str = "phone") -> str | None:
        return v.phone(self.values[name], field=name, row=self.row) if name in self else None

    def id_number(self, name: str = "id_number") -> IdNumber:
        return v.id_number(self.values.get(name), field=name, row=self.row)


def _person(c: _Cells, today: date) -> tuple[IdNumber, dict]:
    """Name, ID number and phone; sex and birth date, when the ledger has them, must agree with
    what the ID number says (they are never stored apart from it)."""
    number = c.id_number()
    sex = c.choice("sex", v.SEX)
    if sex is not None and sex != number.sex:
        raise Invalid("does not match the ID number", "与身份证号不符", field="sex", row=c.row)
    born = c.date("birth_date")
    if born is not None and born != number.birth_date:
        raise Invalid("does not match the ID number", "与身份证号不符", field="birth_date",
                      row=c.row)
    if number.birth_date > today:
        raise Invalid("has a birth date in the future", "出生日期晚于今天", field="id_number",
                      row=c.row)
    return number, {"name": c.need("name"), "id_number": number.value, "phone": c.phone()}


def _jurisdictions(c: _Cells, today: date) -> Parsed:
    return Parsed(JurisdictionIn(
        code=c.need("code"), name=c.need("name"), parent_code=c.text("parent_code"),
        registration_deadline_days=c.integer("registration_deadline_days", minimum=0,
                                             maximum=365)))


def _rentals(c: _Cells, today: date) -> Parsed:
    landlord_id = v.id_number(c.values.get("landlord_id_number"), field="landlord_id_number",
                              row=c.row)
    signed, until = c.date("pledge_signed_on"), c.date("pledge_valid_until")
    if (signed is None) != (until is None):
        missing = "pledge_valid_until" if until is None else "pledge_signed_on"
        raise Invalid("is needed with the other pledge date", "保证书签订日期与有效期须同时填写",
                      field=missing, row=c.row)
    return Parsed(RentalCreate(
        jurisdiction_code=c.need("jurisdiction_code"), address=c.need("address"),
        units=c.integer("units", minimum=1, maximum=10_000),
        status=c.choice("status", v.RENTAL_STATUS) or "active",
        registered_on=c.date("registered_on"),
        landlord={"name": c.need("landlord_name"), "id_number": landlord_id.value,
                  "phone": c.phone("landlord_phone")},
        pledge={"signed_on": signed, "valid_until": until} if signed else None,
    ), id_number=landlord_id)


def _residents(c: _Cells, today: date) -> Parsed:
    number, person = _person(c, today)
    return Parsed(ArrivalIn(
        **person, jurisdiction_code=c.need("jurisdiction_code"), address=c.need("address"),
        reason=c.choice("reason", v.REASON) or "other", arrived_on=c.date("arrived_on"),
        registered_on=c.date("registered_on"), occupation=c.text("occupation"),
        workplace=c.text("workplace"), hukou_address=c.text("hukou_address"),
        permit_number=c.text("permit_number"), permit_issued_on=c.date("permit_issued_on"),
        permit_endorsed_on=c.date("permit_endorsed_on"),
    ), extra={"left_on": c.date("left_on")}, id_number=number)


def _corrections(c: _Cells, today: date) -> Parsed:
    number, person = _person(c, today)
    juvenile = c.choice("juvenile", v.YES_NO)
    interval = c.integer("check_in_interval_days", minimum=1, maximum=90)
    request = CaseCreate(
        **person, jurisdiction_code=c.need("jurisdiction_code"),
        category=c.choice("category", v.CATEGORY), deciding_body=c.need("deciding_body"),
        judgment_ref=c.need("judgment_ref"), effective_on=c.date("effective_on"),
        supervision_start=c.date("supervision_start"), supervision_end=c.date("supervision_end"),
        reported_on=c.date("reported_on"), officer=c.text("officer"),
        juvenile=bool(juvenile), **({"check_in_interval_days": interval} if interval else {}))
    last = c.date("last_check_in_on")
    if last is not None and request.reported_on is None:
        raise Invalid("needs the report date (报到日期) first", "须先有报到日期",
                      field="last_check_in_on", row=c.row)
    if last is not None and (last < request.reported_on or last > today):
        raise Invalid("must be between the report date and today", "须在报到日期与今天之间",
                      field="last_check_in_on", row=c.row)
    return Parsed(request, extra={"last_check_in_on": last}, id_number=number)


def _releases(c: _Cells, today: date) -> Parsed:
    number, person = _person(c, today)
    status = c.choice("placement_status", v.PLACEMENT_STATUS)
    kind = c.choice("placement_kind", v.PLACEMENT_KIND)
    placed_on = c.date("placed_on")
    if status is None and (kind is not None or placed_on is not None):
        status = PlacementStatus.placed
    placement = None
    if status is not None:
        placed = status is PlacementStatus.placed
        if not placed and (kind is not None or placed_on is not None):
            raise Invalid("is given but the person is not placed",
                          "安置情况不是已安置，却填写了安置方式或日期",
                          field="placement_kind" if kind is not None else "placed_on", row=c.row)
        # A ledger seldom dates a placement; then the day it is recorded stands in for it.
        placement = PlacementIn(status=status, kind=kind,
                                placed_on=(placed_on or today) if placed else None)
    request = ReleaseCreate(
        **person, jurisdiction_code=c.need("jurisdiction_code"),
        source=c.choice("source", v.SOURCE) or "prison", released_on=c.date("released_on"),
        releasing_institution=c.need("releasing_institution"),
        key_subject=bool(c.choice("key_subject", v.YES_NO)),
        measures_in_place=bool(c.choice("measures_in_place", v.YES_NO)))
    return Parsed(request, extra={"placement": placement}, id_number=number)


def _coordinators(c: _Cells, today: date) -> Parsed:
    return Parsed(CoordinatorIn(
        staff_number=c.need("staff_number"), name=c.need("name"),
        jurisdiction_code=c.need("jurisdiction_code"), phone=c.phone()))


PARSERS: dict[Kind, Callable[[_Cells, date], Parsed]] = {
    Kind.jurisdictions: _jurisdictions, Kind.rentals: _rentals, Kind.residents: _residents,
    Kind.corrections: _corrections, Kind.releases: _releases, Kind.coordinators: _coordinators,
}

# A request's field path (as schemas and services name it) → the ledger column it came from.
_COLUMN = {"landlord.name": "landlord_name", "landlord.id_number": "landlord_id_number",
           "landlord.phone": "landlord_phone", "pledge.signed_on": "pledge_signed_on",
           "pledge.valid_until": "pledge_valid_until", "kind": "placement_kind",
           "status": "placement_status"}


def ledger_error(kind: Kind, exc: RegistryError, row: int) -> RegistryError:
    """``exc`` about ``row``, its field named as the ledger's column."""
    if exc.field in _COLUMN and exc.field not in SPELLINGS[kind]:
        exc.field = _COLUMN[exc.field]
    exc.row = row
    return exc


def parse(kind: Kind, values: dict[str, str], *, row: int, today: date) -> Parsed:
    """The row as its API request, or :class:`Invalid` naming the column and the row."""
    try:
        return PARSERS[kind](_Cells(values, row, REQUIRED[kind]), today)
    except Invalid as exc:
        exc.row = row
        raise
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join(str(p) for p in error["loc"]) or "row"
        raise ledger_error(kind, Invalid(*_reasons(error), field=path), row) from None


def _reasons(error: dict) -> tuple[str, str]:
    """A schema's refusal in English and Chinese (never quoting the value)."""
    kind = error["type"]
    if kind == "missing":
        return "is required", "不能为空"
    if kind in ("string_too_long", "too_long"):
        most = error["ctx"].get("max_length")
        return f"is too long (at most {most} characters)", f"过长（最多{most}个字符）"
    if kind == "string_pattern_mismatch":
        return "is not in the expected form", "格式不正确"
    return "is not valid here", "取值无效"

