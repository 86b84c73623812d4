"""Resident workflows: arrival, move, move-out, amend, find, who lives where and when."""

from __future__ import annotations

import uuid
from datetime import date

from registry.errors import Invalid
from registry.residents.schemas import (
    ArrivalIn,
    MoveIn,
    MoveOut,
    ResidentFacts,
    ResidentRead,
    ResidentSearch,
    Where,
)
from registry.schemas import Page
from registry.validation import (
    IdNumber,
    clean_text,
    not_future,
    parse_id_number,
    parse_mobile,
)
from registry.vault.gate import Vault
from registry.vault.residents import Arrival, Facts, Place


def _text(value: str | None, field: str, max_length: int) -> str | None:
    return clean_text(value, field=field, max_length=max_length) if value is not None else None


def _facts(data: ResidentFacts, today: date) -> Facts:
    issued = not_future(data.permit_issued_on, today, "permit_issued_on")
    endorsed = not_future(data.permit_endorsed_on, today, "permit_endorsed_on")
    return Facts(
        reason=data.reason,
        occupation=_text(data.occupation, "occupation", 100),
        workplace=_text(data.workplace, "workplace", 100),
        phone=parse_mobile(data.phone) if data.phone is not None else None,
        hukou_address=_text(data.hukou_address, "hukou_address", 200),
        permit_number=_text(data.permit_number, "permit_number", 100),
        permit_issued_on=issued, permit_endorsed_on=endorsed,
    )


def _place(data: Where) -> Place:
    return Place(rental_id=data.rental_id, jurisdiction_code=data.jurisdiction_code,
                 address=_text(data.address, "address", 200))


def arrival(data: ArrivalIn, *, today: date, left_on: date | None = None,
            id_number: IdNumber | None = None) -> Arrival:
    """An arrival checked as every entry point checks it (``left_on``: a ledger's residency
    that has already ended; ``id_number``: the request's, already parsed by the caller)."""
    arrived_on = not_future(data.arrived_on, today, "arrived_on")
    registered_on = not_future(data.registered_on or today, today, "registered_on")
    id_number = id_number or parse_id_number(data.id_number, today=today)
    if arrived_on < id_number.birth_date:
        raise Invalid("is before the person's birth date", "早于出生日期", field="arrived_on")
    if registered_on < arrived_on:
        raise Invalid("is before the arrival date", "早于来本地日期", field="registered_on")
    if left_on is not None and not_future(left_on, today, "left_on") < arrived_on:
        raise Invalid("is before the arrival date", "早于来本地日期", field="left_on")
    return Arrival(id_number=id_number, name=clean_text(data.name, field="name", max_length=50),
                   place=_place(data), facts=_facts(data, today), arrived_on=arrived_on,
                   registered_on=registered_on, left_on=left_on)


def register_arrival(vault: Vault, data: ArrivalIn, *,
                     purpose: str | None = None) -> ResidentRead:
    a = arrival(data, today=vault.clock.today())
    return vault.residents.register(
        id_number=a.id_number, name=a.name, place=a.place, facts=a.facts,
        arrived_on=a.arrived_on, registered_on=a.registered_on, purpose=purpose)


def move(vault: Vault, residency_id: uuid.UUID, data: MoveIn, *,
         purpose: str | None = None) -> ResidentRead:
    today = vault.clock.today()
    return vault.residents.move(residency_id, place=_place(data), facts=_facts(data, today),
                                moved_on=not_future(data.moved_on, today, "moved_on"),
                                purpose=purpose)


def move_out(vault: Vault, residency_id: uuid.UUID, data: MoveOut, *,
             purpose: str | None = None) -> ResidentRead:
    today = vault.clock.today()
    return vault.residents.move_out(residency_id, purpose=purpose,
                                    left_on=not_future(data.left_on, today, "left_on"))


def amend(vault: Vault, residency_id: uuid.UUID, data: ResidentFacts, *,
          purpose: str | None = None) -> ResidentRead:
    return vault.residents.amend(residency_id, _facts(data, vault.clock.today()),
                                 purpose=purpose)


def get(vault: Vault, residency_id: uuid.UUID, *, purpose: str | None) -> ResidentRead:
    return vault.residents.get(residency_id, purpose=purpose)


def list_residents(vault: Vault, **filters) -> Page[ResidentRead]:
    return vault.residents.list(**filters)


def at_rental(vault: Vault, rental_id: uuid.UUID, *, on: date | None,
              purpose: str | None) -> list[ResidentRead]:
    return vault.residents.at_rental(rental_id, on=on or vault.clock.today(), purpose=purpose)


def search(vault: Vault, data: ResidentSearch, *, purpose: str | None) -> list[ResidentRead]:
    if (data.id_number is None) == (data.phone is None):
        raise Invalid("give exactly one of id_number and phone", "须且只能提供身份证号或电话之一",
                      field="id_number")
    if data.id_number is not None:
        return vault.residents.search(
            id_number=parse_id_number(data.id_number, today=vault.clock.today()), phone=None,
            purpose=purpose)
    return vault.residents.search(id_number=None, phone=parse_mobile(data.phone),
                                  purpose=purpose)
