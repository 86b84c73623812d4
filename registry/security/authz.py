"""Authorisation: casbin decides (role, resource, action) from the small policy in
``policies/``; the jurisdiction subtree is a code-prefix test done here and, for lists, pushed
into SQL as ``code LIKE 'prefix%'`` — never one policy line per user or place, and never an
``enforce()`` per row. Decisions are cached: the policy is loaded once and never edited at run
time, so a (role, resource, action) always gets the same answer.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from functools import cache
from pathlib import Path

import casbin

# casbin logs every decision at INFO; the audit chain is the record of decisions, and a server's
# log configuration (uvicorn's) would otherwise switch those lines back on.
logging.getLogger("casbin").setLevel(logging.WARNING)


class Role(StrEnum):
    police = "police"
    coordinator = "coordinator"
    justice = "justice"
    corrections = "corrections"
    auditor = "auditor"
    leadership = "leadership"
    admin = "admin"


class View(StrEnum):
    clear = "clear"
    masked = "masked"
    hidden = "hidden"

    def __bool__(self) -> bool:
        """True when the field is shown at all (clear or masked)."""
        return self is not View.hidden


class Policy:
    def __init__(self, policy_dir: Path) -> None:
        self._enforcer = casbin.Enforcer(
            str(policy_dir / "model.conf"), str(policy_dir / "policy.csv")
        )
        self.allows = cache(self._allows)
        self.view = cache(self._view)

    def _allows(self, role: str, resource: str, action: str) -> bool:
        return bool(self._enforcer.enforce(role, resource, action))

    def _view(self, role: str, kind: str, group: str) -> View:
        if self._allows(role, f"{kind}:{group}", "clear"):
            return View.clear
        if self._allows(role, f"{kind}:{group}", "masked"):
            return View.masked
        return View.hidden


def in_scope(scope: str, code: str | None) -> bool:
    """A user's grant holds in their own jurisdiction and everything below it."""
    return code is not None and code.startswith(scope)
