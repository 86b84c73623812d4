from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel

from registry.deps import VaultDep
from registry.schemas import JurisdictionCode

router = APIRouter(prefix="/jurisdictions", tags=["jurisdictions 辖区"])


class JurisdictionOut(BaseModel):
    code: str
    name: str
    level: str
    parent_code: str | None


@router.get("", response_model=list[JurisdictionOut])
def list_jurisdictions(vault: VaultDep,
                       parent: JurisdictionCode | None = Query(default=None)) -> list:
    """Children of a node (top level without ``parent``)."""
    return [JurisdictionOut(**vars(j)) for j in vault.jurisdictions.children(parent)]


@router.get("/{code}", response_model=JurisdictionOut)
def read_jurisdiction(code: JurisdictionCode, vault: VaultDep) -> JurisdictionOut:
    """One node of the tree."""
    return JurisdictionOut(**vars(vault.jurisdictions.get(code)))
