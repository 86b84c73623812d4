"""Small shared pieces of the gate: who acts, what kind of record, the store base class."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.vault.gate import Vault


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, or the operator of the CLI (role ``system``, which has
    no right to personal data)."""

    id: uuid.UUID | None
    username: str
    role: str
    scope: str


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    label_zh: str


RENTAL = Kind("rental", "rental", "出租房屋")
JURISDICTION = Kind("jurisdiction", "jurisdiction", "辖区")
USER = Kind("user", "user", "用户")
AUDIT = Kind("audit", "audit event", "审计事件")


class Store:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.session = vault.session
