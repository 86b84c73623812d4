from __future__ import annotations

from pydantic import BaseModel


class KekVersion(BaseModel):
    kek_id: str
    active: bool
    data_keys: int  # live data keys wrapped under this version


class KeyStatus(BaseModel):
    """The key-encryption key versions and what refers to them; no key material."""

    active: str
    versions: list[KekVersion]
    stale: int  # live data keys under an older version: a rotation still to finish
    destroyed: int  # data keys shredded by erasure
    missing: list[str]  # versions data keys refer to that the provider lacks (restore them!)
    index_fingerprint: str
