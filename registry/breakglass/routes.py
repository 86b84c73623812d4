"""Break-glass (紧急查阅): opening a grant on one record outside the caller's scope, and the
auditors' review queue. The gate does the work (:mod:`registry.vault.access`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from registry.breakglass.schemas import GrantOpen, GrantRead, GrantReview, QueueStatus
from registry.deps import VaultDep
from registry.schemas import Page

router = APIRouter(prefix="/break-glass", tags=["break-glass 紧急查阅"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GrantRead)
def open_grant(data: GrantOpen, vault: VaultDep) -> GrantRead:
    """Open one record outside your scope for reading, for a while, by stating why. The
    grant is flagged in the audit log and waits for an auditor's sign-off."""
    return vault.access.open_grant(kind=data.kind, record_id=data.record_id, reason=data.reason)


@router.get("", response_model=Page[GrantRead])
def review_queue(
    vault: VaultDep,
    status: QueueStatus = QueueStatus.pending,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[GrantRead]:
    """Auditors: the grants of your area (the record's or the officer's), newest first."""
    return vault.access.queue(status=status, page=page, page_size=page_size)


@router.post("/{grant_id}/review", response_model=GrantRead)
def review_grant(grant_id: uuid.UUID, data: GrantReview, vault: VaultDep) -> GrantRead:
    """Auditors: sign a grant off with a note."""
    return vault.access.review(grant_id, note=data.note)
