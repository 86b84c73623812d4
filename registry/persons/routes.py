"""Restricted persons (限制查阅): limiting every record of a person to named users."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from registry.deps import VaultDep
from registry.persons.schemas import RestrictionIn, RestrictionRead

router = APIRouter(prefix="/persons", tags=["persons 人员"])


@router.get("/{person_id}/restriction", response_model=RestrictionRead)
def read_restriction(person_id: uuid.UUID, vault: VaultDep) -> RestrictionRead:
    """Whether the person is restricted, and to whom."""
    return vault.access.restriction(person_id)


@router.put("/{person_id}/restriction", response_model=RestrictionRead)
def restrict_person(person_id: uuid.UUID, data: RestrictionIn,
                    vault: VaultDep) -> RestrictionRead:
    """Limit every record of the person to these users (and you), replacing any list."""
    return vault.access.restrict(person_id, data.users)


@router.delete("/{person_id}/restriction", response_model=RestrictionRead)
def lift_restriction(person_id: uuid.UUID, vault: VaultDep) -> RestrictionRead:
    """Lift the restriction: the person's records follow scope alone again."""
    return vault.access.lift(person_id)
