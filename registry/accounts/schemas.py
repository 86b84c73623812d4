from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from registry.schemas import JurisdictionCode, Printable, Strict
from registry.security.authz import Role

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{3,64}$")]
# Passwords are taken exactly as typed: never stripped, so every entry point agrees.
Password = Annotated[str, StringConstraints(min_length=10, max_length=256,
                                            strip_whitespace=False)]


class UserCreate(Strict):
    username: Username
    password: Password
    role: Role
    jurisdiction_code: JurisdictionCode


class PasswordReset(Strict):
    password: Password


class UserRead(BaseModel):
    id: uuid.UUID
    username: str
    role: str
    jurisdiction_code: str
    disabled: bool
    locked: bool


class Login(Strict):
    username: Annotated[Printable, StringConstraints(min_length=1)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256,
                                               strip_whitespace=False)]


class PasswordChange(Strict):
    username: Annotated[Printable, StringConstraints(min_length=1)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256,
                                               strip_whitespace=False)]
    new_password: Password


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: str
    idle_timeout_minutes: int


class Me(BaseModel):
    username: str
    role: str
    jurisdiction_code: str
