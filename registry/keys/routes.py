from __future__ import annotations

from fastapi import APIRouter

from registry.deps import VaultDep
from registry.keys.schemas import KeyStatus

router = APIRouter(prefix="/keys", tags=["keys 密钥"])


@router.get("/status", response_model=KeyStatus)
def key_status(vault: VaultDep) -> KeyStatus:
    """Key-encryption key versions, the data keys each wraps, and any rotation left to finish;
    the blind-index key versions and the progress of an index rebuild (administrators; no key
    material). Rotation itself is `registry keys rotate` / `rotate-index`, run where the key
    file is."""
    return vault.keys.status()
