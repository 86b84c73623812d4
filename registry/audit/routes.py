from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry.audit.schemas import EventFilter, EventRead, VerificationRead
from registry.deps import VaultDep
from registry.schemas import Page

router = APIRouter(prefix="/audit", tags=["audit 审计"])


@router.get("/events", response_model=Page[EventRead])
def list_events(
    vault: VaultDep,
    query: Annotated[EventFilter, Query()],
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[EventRead]:
    """Access events, newest first, filtered by actor, kind, record, outcome and time."""
    return vault.audit.events(query, page=page, page_size=page_size)


@router.get("/verify", response_model=VerificationRead)
def verify_chain(vault: VaultDep) -> VerificationRead:
    """Walk the hash chain; name the first broken event."""
    return vault.audit.verify()
