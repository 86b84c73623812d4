from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from registry.deps import PurposeDep, VaultDep
from registry.releases import service
from registry.releases.schemas import (
    AssistanceIn,
    CloseIn,
    PlacementIn,
    PlacementStatus,
    ReleaseCreate,
    ReleaseRead,
    ReleaseUpdate,
)
from registry.schemas import JurisdictionCode, Page

router = APIRouter(prefix="/releases", tags=["releases 安置帮教"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ReleaseRead)
def register_release(data: ReleaseCreate, vault: VaultDep, purpose: PurposeDep) -> ReleaseRead:
    """Register a handover (pre-release notice or release) for resettlement and aftercare."""
    return service.register(vault, data, purpose=purpose)


@router.get("", response_model=Page[ReleaseRead])
def list_releases(
    vault: VaultDep, purpose: PurposeDep,
    jurisdiction: Annotated[JurisdictionCode | None, Query()] = None,
    open_only: Annotated[bool | None, Query(alias="open")] = None,
    placement_status: PlacementStatus | None = None,
    measures_in_place: bool | None = None,
    needs_action: Annotated[bool, Query(
        description="open cases without measures, unplaced, or awaiting escort")] = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ReleaseRead]:
    """Release cases in the caller's area; juvenile cases only with a purpose."""
    return service.list_cases(vault, jurisdiction=jurisdiction, open_only=open_only,
                              placement_status=placement_status,
                              measures_in_place=measures_in_place, needs_action=needs_action,
                              page=page, page_size=page_size, purpose=purpose)


@router.get("/{case_id}", response_model=ReleaseRead)
def read_release(case_id: uuid.UUID, vault: VaultDep, purpose: PurposeDep) -> ReleaseRead:
    """One case with its assistance records."""
    return service.get(vault, case_id, purpose=purpose)


@router.patch("/{case_id}", response_model=ReleaseRead)
def amend_release(case_id: uuid.UUID, data: ReleaseUpdate, vault: VaultDep,
                  purpose: PurposeDep) -> ReleaseRead:
    """Measures, aftercare group, escort, consent, phone."""
    return service.amend(vault, case_id, data, purpose=purpose)


@router.post("/{case_id}/placement", response_model=ReleaseRead)
def record_placement(case_id: uuid.UUID, data: PlacementIn, vault: VaultDep,
                     purpose: PurposeDep) -> ReleaseRead:
    """Placement status (安置) with kind and date."""
    return service.place(vault, case_id, data, purpose=purpose)


@router.post("/{case_id}/assistance", response_model=ReleaseRead)
def record_assistance(case_id: uuid.UUID, data: AssistanceIn, vault: VaultDep,
                      purpose: PurposeDep) -> ReleaseRead:
    """A visit, call, job referral, training or allowance application."""
    return service.assist(vault, case_id, data, purpose=purpose)


@router.post("/{case_id}/close", response_model=ReleaseRead)
def close_release(case_id: uuid.UUID, data: CloseIn, vault: VaultDep,
                  purpose: PurposeDep) -> ReleaseRead:
    """Close a case before its period ends (moved away, died, …)."""
    return service.close(vault, case_id, data, purpose=purpose)
