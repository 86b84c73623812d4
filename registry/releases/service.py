"""Aftercare workflows: handover, measures, placement, assistance, closing."""

from __future__ import annotations

import uuid
from datetime import timedelta

from registry.errors import Invalid
from registry.releases.schemas import (
    AssistanceIn,
    CloseIn,
    PlacementIn,
    PlacementStatus,
    ReleaseCreate,
    ReleaseRead,
    ReleaseUpdate,
)
from registry.schemas import Page
from registry.validation import clean_text, not_future, parse_id_number, parse_mobile
from registry.vault.gate import Vault

NOTICE_HORIZON = timedelta(days=366)  # a pre-release notice may announce a release this far out


def register(vault: Vault, data: ReleaseCreate, *, purpose: str | None = None) -> ReleaseRead:
    today = vault.clock.today()
    if data.released_on > today + NOTICE_HORIZON:
        raise Invalid("is more than a year ahead", "释放日期超过一年以后", field="released_on")
    return vault.releases.register(
        id_number=parse_id_number(data.id_number, today=today),
        name=clean_text(data.name, field="name", max_length=50),
        jurisdiction_code=data.jurisdiction_code, source=data.source,
        released_on=data.released_on,
        releasing_institution=clean_text(data.releasing_institution,
                                         field="releasing_institution", max_length=100),
        notice_received_on=not_future(data.notice_received_on, today, "notice_received_on"),
        key_subject=data.key_subject, escort_required=data.escort_required,
        escorted_on=not_future(data.escorted_on, today, "escorted_on"),
        aftercare_years=data.aftercare_years,
        aftercare_group=clean_text(data.aftercare_group, field="aftercare_group",
                                   max_length=2000) if data.aftercare_group else None,
        measures_in_place=data.measures_in_place, consent_to_contact=data.consent_to_contact,
        phone=parse_mobile(data.phone) if data.phone else None, juvenile=data.juvenile,
        purpose=purpose)


def amend(vault: Vault, case_id: uuid.UUID, data: ReleaseUpdate, *,
          purpose: str | None) -> ReleaseRead:
    today = vault.clock.today()
    changes = data.model_dump(exclude_none=True)
    for field in ("notice_received_on", "escorted_on"):
        if field in changes:
            not_future(changes[field], today, field)
    if "phone" in changes:
        changes["phone"] = parse_mobile(changes["phone"])
    if "aftercare_group" in changes:
        changes["aftercare_group"] = clean_text(changes["aftercare_group"],
                                                field="aftercare_group", max_length=2000)
    return vault.releases.amend(case_id, changes, purpose=purpose)


def place(vault: Vault, case_id: uuid.UUID, data: PlacementIn, *,
          purpose: str | None) -> ReleaseRead:
    return vault.releases.place(
        case_id, status=data.status, kind=data.kind,
        placed_on=not_future(data.placed_on, vault.clock.today(), "placed_on"), purpose=purpose)


def assist(vault: Vault, case_id: uuid.UUID, data: AssistanceIn, *,
           purpose: str | None) -> ReleaseRead:
    return vault.releases.assist(
        case_id, on=not_future(data.on, vault.clock.today(), "on"), kind=data.kind,
        notes=clean_text(data.notes, field="notes", max_length=2000) if data.notes else None,
        purpose=purpose)


def close(vault: Vault, case_id: uuid.UUID, data: CloseIn, *,
          purpose: str | None) -> ReleaseRead:
    return vault.releases.close(case_id, on=not_future(data.on, vault.clock.today(), "on"),
                                reason=data.reason, purpose=purpose)


def get(vault: Vault, case_id: uuid.UUID, *, purpose: str | None) -> ReleaseRead:
    return vault.releases.get(case_id, purpose=purpose)


def list_cases(vault: Vault, *, jurisdiction: str | None = None, open_only: bool | None = None,
               placement_status: PlacementStatus | None = None,
               measures_in_place: bool | None = None, needs_action: bool = False,
               page: int = 1, page_size: int = 50,
               purpose: str | None = None) -> Page[ReleaseRead]:
    return vault.releases.list(jurisdiction=jurisdiction, open_only=open_only,
                               placement_status=placement_status,
                               measures_in_place=measures_in_place, needs_action=needs_action,
                               page=page, page_size=page_size, purpose=purpose)
