from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from registry.coordinators import service
from registry.coordinators.schemas import CoordinatorIn, CoordinatorRead
from registry.deps import PurposeDep, VaultDep
from registry.schemas import JurisdictionCode, Page

router = APIRouter(prefix="/coordinators", tags=["coordinators 协管员"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CoordinatorRead)
def add_coordinator(data: CoordinatorIn, vault: VaultDep,
                    purpose: PurposeDep) -> CoordinatorRead:
    """Put a coordinator on the roster (counted by the staffing ratio)."""
    return service.add(vault, data, purpose=purpose)


@router.get("", response_model=Page[CoordinatorRead])
def list_coordinators(
    vault: VaultDep,
    purpose: PurposeDep,
    jurisdiction: Annotated[JurisdictionCode | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[CoordinatorRead]:
    """The roster in the caller's area."""
    return service.list_coordinators(vault, jurisdiction=jurisdiction, page=page,
                                     page_size=page_size, purpose=purpose)
