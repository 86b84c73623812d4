from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from registry.corrections import service
from registry.corrections.schemas import (
    Board,
    CaseCreate,
    CaseRead,
    CaseStatus,
    CaseUpdate,
    Category,
    CheckInIn,
    ReportIn,
    SanctionIn,
    StatusChange,
)
from registry.deps import PurposeDep, VaultDep
from registry.schemas import JurisdictionCode, Page

router = APIRouter(prefix="/corrections", tags=["corrections 社区矫正"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CaseRead)
def open_case(data: CaseCreate, vault: VaultDep, purpose: PurposeDep) -> CaseRead:
    """Open a case on a court or authority's decision (管制/缓刑/假释/暂予监外执行)."""
    return service.open_case(vault, data, purpose=purpose)


@router.get("", response_model=Page[CaseRead])
def list_cases(
    vault: VaultDep, purpose: PurposeDep,
    jurisdiction: Annotated[JurisdictionCode | None, Query()] = None,
    case_status: Annotated[CaseStatus | None, Query(alias="status")] = None,
    category: Category | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[CaseRead]:
    """Cases in the caller's area; juvenile cases only with a purpose."""
    return service.list_cases(vault, jurisdiction=jurisdiction, status=case_status,
                              category=category, page=page, page_size=page_size,
                              purpose=purpose)


@router.get("/board", response_model=Board)
def check_in_board(
    vault: VaultDep, purpose: PurposeDep,
    mine: Annotated[bool, Query(description="only my cases")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="entries per section")] = 50,
) -> Board:
    """The morning list: overdue (most days first), due now, yet to report, past the end;
    each section counted in full and its most urgent entries listed."""
    return service.board(vault, purpose=purpose, mine=mine, limit=limit)


@router.get("/{case_id}", response_model=CaseRead)
def read_case(case_id: uuid.UUID, vault: VaultDep, purpose: PurposeDep) -> CaseRead:
    """One case with its latest check-ins and every sanction."""
    return service.get(vault, case_id, purpose=purpose)


@router.patch("/{case_id}", response_model=CaseRead)
def amend_case(case_id: uuid.UUID, data: CaseUpdate, vault: VaultDep,
               purpose: PurposeDep) -> CaseRead:
    """Change the officer, check-in interval, grace, end date or phone."""
    return service.amend(vault, case_id, data, purpose=purpose)


@router.post("/{case_id}/report", response_model=CaseRead)
def record_report(case_id: uuid.UUID, data: ReportIn, vault: VaultDep,
                  purpose: PurposeDep) -> CaseRead:
    """Record the initial report (报到); late if more than 10 days after the effective date."""
    return service.record_report(vault, case_id, data, purpose=purpose)


@router.post("/{case_id}/check-ins", response_model=CaseRead)
def record_check_in(case_id: uuid.UUID, data: CheckInIn, vault: VaultDep,
                    purpose: PurposeDep) -> CaseRead:
    """Record a check-in (in person, phone or video)."""
    return service.record_check_in(vault, case_id, data, purpose=purpose)


@router.post("/{case_id}/sanctions", response_model=CaseRead)
def add_sanction(case_id: uuid.UUID, data: SanctionIn, vault: VaultDep,
                 purpose: PurposeDep) -> CaseRead:
    """Record a sanction or proposal; repeated-sanction grounds need the prior ones."""
    return service.add_sanction(vault, case_id, data, purpose=purpose)


@router.post("/{case_id}/status", response_model=CaseRead)
def change_status(case_id: uuid.UUID, data: StatusChange, vault: VaultDep,
                  purpose: PurposeDep) -> CaseRead:
    """Absconded, returned, ended (解除) or terminated (终止)."""
    return service.change_status(vault, case_id, data, purpose=purpose)
