from __future__ import annotations

from pydantic import BaseModel


class KekVersion(BaseModel):
    kek_id: str
    active: bool
    data_keys: int  # live data keys wrapped under this version


class IndexVersion(BaseModel):
    version: int
    active: bool  # new blind indexes are computed under it
    in_use: bool  # the database may hold indexes under it (recorded in the key check)
    held: bool  # the key provider holds it


class IndexRebuild(BaseModel):
    """One table's rebuild under a new index-root version."""

    table: str
    version: int
    rows: int
    left: int  # rows after the last one rebuilt
    finished: bool
    unreadable: int  # rows whose data key was destroyed (erased): nothing to index


class IndexStatus(BaseModel):
    active: int
    versions: list[IndexVersion]
    rebuilding: bool  # a rebuild is under way: lookups search under every version in use
    rebuild: list[IndexRebuild]


class KeyStatus(BaseModel):
    """The key-encryption key versions and what refers to them, and the blind-index root
    versions; no key material."""

    active: str
    versions: list[KekVersion]
    stale: int  # live data keys under an older version: a rotation still to finish
    destroyed: int  # data keys shredded by erasure
    missing: list[str]  # versions data keys refer to that the provider lacks (restore them!)
    index_fingerprint: str  # the active index root's
    index: IndexStatus
