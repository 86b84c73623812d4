from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, status

from registry.deps import PurposeDep, VaultDep
from registry.residents import service
from registry.residents.schemas import (
    ArrivalIn,
    MoveIn,
    MoveOut,
    ResidentRead,
    ResidentSearch,
    ResidentUpdate,
)
from registry.schemas import JurisdictionCode, Page

router = APIRouter(prefix="/residents", tags=["residents 流动人口"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ResidentRead)
def register_arrival(data: ArrivalIn, vault: VaultDep, purpose: PurposeDep) -> ResidentRead:
    """Register an arrival: at a registered rental, or another address in a jurisdiction."""
    return service.register_arrival(vault, data, purpose=purpose)


@router.get("", response_model=Page[ResidentRead])
def list_residents(
    vault: VaultDep,
    purpose: PurposeDep,
    jurisdiction: Annotated[JurisdictionCode | None, Query()] = None,
    present_on: Annotated[date | None, Query(description="living here on this date")] = None,
    person_id: Annotated[uuid.UUID | None, Query(description="one person's history")] = None,
    late: bool | None = None,
    incomplete: bool | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ResidentRead]:
    """Residencies in the caller's area, newest arrival first; masked without a purpose."""
    return service.list_residents(vault, jurisdiction=jurisdiction, present_on=present_on,
                                  person_id=person_id, late=late, incomplete=incomplete,
                                  page=page, page_size=page_size, purpose=purpose)


@router.post("/search", response_model=list[ResidentRead])
def search_residents(data: ResidentSearch, vault: VaultDep,
                     purpose: PurposeDep) -> list[ResidentRead]:
    """Find residents by ID number or phone (POST keeps them out of URLs and logs)."""
    return service.search(vault, data, purpose=purpose)


@router.get("/at-rental/{rental_id}", response_model=list[ResidentRead])
def residents_at_rental(
    rental_id: uuid.UUID, vault: VaultDep, purpose: PurposeDep,
    on: Annotated[date | None, Query(description="default: today")] = None,
) -> list[ResidentRead]:
    """Who lives at a rental now, or on a past date."""
    return service.at_rental(vault, rental_id, on=on, purpose=purpose)


@router.get("/{residency_id}", response_model=ResidentRead)
def read_resident(residency_id: uuid.UUID, vault: VaultDep,
                  purpose: PurposeDep) -> ResidentRead:
    """One residency; clear fields need a purpose (X-Purpose)."""
    return service.get(vault, residency_id, purpose=purpose)


@router.patch("/{residency_id}", response_model=ResidentRead)
def amend_resident(residency_id: uuid.UUID, data: ResidentUpdate, vault: VaultDep,
                   purpose: PurposeDep) -> ResidentRead:
    """Amend a current residency's facts (phone, work, permit, …)."""
    return service.amend(vault, residency_id, data, purpose=purpose)


@router.post("/{residency_id}/move", status_code=status.HTTP_201_CREATED,
             response_model=ResidentRead)
def move_resident(residency_id: uuid.UUID, data: MoveIn, vault: VaultDep,
                  purpose: PurposeDep) -> ResidentRead:
    """Move to another rental or address: ends this residency and opens the next."""
    return service.move(vault, residency_id, data, purpose=purpose)


@router.post("/{residency_id}/move-out", response_model=ResidentRead)
def move_out(residency_id: uuid.UUID, data: MoveOut, vault: VaultDep,
             purpose: PurposeDep) -> ResidentRead:
    """Record that the resident has left."""
    return service.move_out(vault, residency_id, data, purpose=purpose)
