from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from registry.deps import PurposeDep, VaultDep
from registry.rentals import service
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
from registry.schemas import JurisdictionCode, Page

router = APIRouter(prefix="/rentals", tags=["rentals 出租房屋"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RentalRead)
def register_rental(data: RentalCreate, vault: VaultDep, purpose: PurposeDep) -> RentalRead:
    """Register a rental property with its landlord (and optionally the signed pledge).
    Like every answer, it comes masked unless X-Purpose is given."""
    return service.register(vault, data, purpose=purpose)


@router.get("", response_model=Page[RentalRead])
def list_rentals(
    vault: VaultDep,
    purpose: PurposeDep,
    jurisdiction: Annotated[JurisdictionCode | None, Query()] = None,
    rental_status: Annotated[RentalStatus | None, Query(alias="status")] = None,
    pledge_state: PledgeState | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[RentalRead]:
    """Rentals in the caller's area, newest first; masked without a purpose."""
    return service.list_rentals(vault, jurisdiction=jurisdiction, status=rental_status,
                                pledge_state=pledge_state, page=page, page_size=page_size,
                                purpose=purpose)


@router.post("/search", response_model=list[RentalRead])
def search_rentals(data: RentalSearch, vault: VaultDep,
                   purpose: PurposeDep) -> list[RentalRead]:
    """Find rentals by the landlord's ID number or phone (POST keeps them out of URLs/logs)."""
    return service.search(vault, data, purpose=purpose)


@router.get("/{rental_id}", response_model=RentalRead)
def read_rental(rental_id: uuid.UUID, vault: VaultDep, purpose: PurposeDep) -> RentalRead:
    """One rental. Fields the role sees in clear need a purpose (X-Purpose); else masked."""
    return service.get(vault, rental_id, purpose=purpose)


@router.patch("/{rental_id}", response_model=RentalRead)
def amend_rental(rental_id: uuid.UUID, data: RentalUpdate, vault: VaultDep,
                 purpose: PurposeDep) -> RentalRead:
    """Amend address, units, status (active/vacant), jurisdiction or landlord."""
    return service.amend(vault, rental_id, data, purpose=purpose)


@router.post("/{rental_id}/deregister", response_model=RentalRead)
def deregister_rental(rental_id: uuid.UUID, vault: VaultDep, purpose: PurposeDep,
                      data: Deregistration | None = None) -> RentalRead:
    """End a rental's registration (注销); the date defaults to today."""
    return service.deregister(vault, rental_id, data or Deregistration(), purpose=purpose)


@router.post("/{rental_id}/pledge", response_model=RentalRead)
def sign_pledge(rental_id: uuid.UUID, data: PledgeIn, vault: VaultDep,
                purpose: PurposeDep) -> RentalRead:
    """Record a signed or renewed security-responsibility pledge (治安责任保证书)."""
    return service.sign_pledge(vault, rental_id, data, purpose=purpose)
