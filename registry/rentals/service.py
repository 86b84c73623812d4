"""Rental workflows: validate and normalise, then hand to the gate. No database, no FastAPI."""

from __future__ import annotations

import uuid
from datetime import date

from registry.errors import Invalid
from registry.rentals.schemas import (
    Deregistration,
    PledgeIn,
    PledgeState,
    RentalCreate,
    RentalRead,
    RentalSearch,
    RentalStatus,
    RentalUpdate,
)
from registry.schemas import Page, PersonIn
from registry.validation import clean_text, not_future, parse_id_number, parse_mobile
from registry.vault.gate import Vault
from registry.vault.rentals import Landlord, PledgeFacts


def _landlord(person: PersonIn, *, field: str, today: date) -> Landlord:
    return Landlord(
        id_number=parse_id_number(person.id_number, field=f"{field}.id_number", today=today),
        name=clean_text(person.name, field=f"{field}.name", max_length=50),
        phone=parse_mobile(person.phone, field=f"{field}.phone") if person.phone else None,
    )


def _pledge(pledge: PledgeIn, *, today: date, prefix: str) -> PledgeFacts:
    """``prefix`` is where the pledge sits in the request ("pledge." inside a registration)."""
    not_future(pledge.signed_on, today, f"{prefix}signed_on")
    if pledge.valid_until <= pledge.signed_on:
        raise Invalid("must be after the signing date", "须晚于签订日期",
                      field=f"{prefix}valid_until")
    signer = (clean_text(pledge.signed_by, field=f"{prefix}signed_by", max_length=50)
              if pledge.signed_by else None)
    return PledgeFacts(pledge.signed_on, pledge.valid_until, signer)


def register(vault: Vault, data: RentalCreate, *, purpose: str | None = None) -> RentalRead:
    today = vault.clock.today()
    if data.status == RentalStatus.deregistered:
        raise Invalid("a new rental is active or vacant", "新登记房屋须为在租或空置",
                      field="status")
    registered_on = not_future(data.registered_on or today, today, "registered_on")
    pledge = _pledge(data.pledge, today=today, prefix="pledge.") if data.pledge else None
    return vault.rentals.register(
        jurisdiction_code=data.jurisdiction_code,
        address=clean_text(data.address, field="address", max_length=200, min_length=2),
        units=data.units, status=data.status, registered_on=registered_on,
        landlord=_landlord(data.landlord, field="landlord", today=today), pledge=pledge,
        purpose=purpose,
    )


def get(vault: Vault, rental_id: uuid.UUID, *, purpose: str | None) -> RentalRead:
    return vault.rentals.get(rental_id, purpose=purpose)


def amend(vault: Vault, rental_id: uuid.UUID, data: RentalUpdate, *,
          purpose: str | None = None) -> RentalRead:
    today = vault.clock.today()
    return vault.rentals.amend(
        rental_id,
        jurisdiction_code=data.jurisdiction_code,
        address=clean_text(data.address, field="address", max_length=200, min_length=2)
        if data.address is not None else None,
        units=data.units, status=data.status,
        landlord=_landlord(data.landlord, field="landlord", today=today)
        if data.landlord is not None else None,
        landlord_phone=parse_mobile(data.landlord_phone, field="landlord_phone")
        if data.landlord_phone is not None else None,
        purpose=purpose,
    )


def deregister(vault: Vault, rental_id: uuid.UUID, data: Deregistration, *,
               purpose: str | None = None) -> RentalRead:
    today = vault.clock.today()
    on = not_future(data.deregistered_on or today, today, "deregistered_on")
    return vault.rentals.deregister(rental_id, on=on, purpose=purpose)


def sign_pledge(vault: Vault, rental_id: uuid.UUID, data: PledgeIn, *,
                purpose: str | None = None) -> RentalRead:
    return vault.rentals.sign_pledge(rental_id,
                                     _pledge(data, today=vault.clock.today(), prefix=""),
                                     purpose=purpose)


def list_rentals(vault: Vault, *, jurisdiction: str | None = None,
                 status: RentalStatus | None = None, pledge_state: PledgeState | None = None,
                 page: int = 1, page_size: int = 50,
                 purpose: str | None = None) -> Page[RentalRead]:
    return vault.rentals.list(jurisdiction=jurisdiction, status=status,
                              pledge_state=pledge_state, page=page, page_size=page_size,
                              purpose=purpose)


def search(vault: Vault, data: RentalSearch, *, purpose: str | None = None) -> list[RentalRead]:
    if (data.landlord_id_number is None) == (data.landlord_phone is None):
        raise Invalid("give exactly one of landlord_id_number and landlord_phone",
                      "须且只能提供房东身份证号或房东电话之一", field="landlord_id_number")
    if data.landlord_id_number is not None:
        id_number = parse_id_number(data.landlord_id_number, field="landlord_id_number",
                                    today=vault.clock.today())
        return vault.rentals.search(id_number=id_number, phone=None, purpose=purpose)
    return vault.rentals.search(id_number=None, purpose=purpose,
                                phone=parse_mobile(data.landlord_phone, field="landlord_phone"))
