from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.models._types import timestamp


class UserAccount(SQLModel, table=True):
    """A local account with one department role inside one jurisdiction subtree."""

    __tablename__ = "user_account"

    id: uuid.UUID = Field(primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=200)
    role: str = Field(max_length=16)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", max_length=15)
    disabled: bool = False
    # Set when an administrator resets the password: sign-in then needs a new one first.
    must_change_password: bool = False
    created_at: datetime = timestamp()


class AuthToken(SQLModel, table=True):
    """An opaque bearer token, stored only as its SHA-256."""

    __tablename__ = "auth_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    created_at: datetime = timestamp()
    last_used_at: datetime = timestamp()
    expires_at: datetime = timestamp()
    revoked_at: datetime | None = timestamp(nullable=True)


class SignInFailure(SQLModel, table=True):
    """Failed sign-ins counted per normalised username — an account's or not, so the lockout
    cannot tell which names exist — and per client address. Each is named only by an HMAC under
    a key derived from the index root (``registry.vault.accounts``): neither the names people
    typed nor the addresses they came from are stored. A row is dead from ``expires_at`` on
    and pruned by the next failure."""

    __tablename__ = "sign_in_failure"

    scope: str = Field(primary_key=True, max_length=8)  # "name" or "address"
    digest: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    # Refused until then: the name's lockout, or the address's throttle.
    locked_until: datetime | None = timestamp(nullable=True)
    expires_at: datetime = timestamp(index=True)
