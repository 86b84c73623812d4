"""Domain errors. Services raise these; one handler in ``api.py`` (and one in ``cli.py``)
renders them. Every message exists in English and Chinese and names the field (and, for
importers, the row); none ever carries a personal-data value.

    RegistryError                      500  (never raised directly)
    ├── Invalid                        422  a field's value breaks a rule
    ├── NotFound                       404  absent, or outside the caller's scope
    ├── Conflict                       409  would duplicate or contradict a record
    ├── Unauthenticated                401  no, expired or revoked credentials
    ├── Forbidden                      403  the role may not do this (collections only)
    │   └── PasswordChangeRequired     403  a reset password must be changed before sign-in
    ├── Locked                         423  account locked after failed logins
    ├── TooManyAttempts                429  too many failed sign-ins from one address
    ├── PayloadTooLarge                413
    ├── Unavailable                    503  the database is unreachable or busy
    └── SetupError                     --   start-up problems: keys, database, settings
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class RegistryError(Exception):
    message: str
    message_zh: str
    field: str | None = None
    row: int | None = None
    status = 500
    code = "error"
    extra: dict = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        row = f"row {self.row}: " if self.row is not None else ""
        return f"{row}{where}{self.message} / {self.message_zh}"

    def to_dict(self) -> dict:
        where = f"{self.field}: " if self.field else ""
        where_zh = f"{self.field}：" if self.field else ""
        body = {"code": self.code, "message": where + self.message,
                "message_zh": where_zh + self.message_zh}
        if self.field is not None:
            body["field"] = self.field
        if self.row is not None:
            body["row"] = self.row
        body.update(self.extra)
        return body


class Invalid(RegistryError):
    status = 422
    code = "invalid"


class Conflict(RegistryError):
    status = 409
    code = "conflict"


class Unreadable(RegistryError):
    """A sealed value that does not open: its data key was destroyed by erasure (a record
    brought back by restoring an older data backup), or the stored bytes were altered."""

    status = 410
    code = "unreadable"


class Unauthenticated(RegistryError):
    status = 401
    code = "unauthenticated"


class Forbidden(RegistryError):
    status = 403
    code = "forbidden"


class PasswordChangeRequired(Forbidden):
    code = "password_change_required"


class Locked(RegistryError):
    status = 423
    code = "locked"


class TooManyAttempts(RegistryError):
    status = 429
    code = "throttled"


class PayloadTooLarge(RegistryError):
    status = 413
    code = "too_large"


class Unavailable(RegistryError):
    status = 503
    code = "unavailable"


class SetupError(RegistryError):
    code = "setup"


class NotFound(RegistryError):
    status = 404
    code = "not_found"

    @classmethod
    def of(cls, label: str, label_zh: str) -> NotFound:
        return cls(f"{label} not found", f"未找到{label_zh}")
