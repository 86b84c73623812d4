"""Small shared pieces of the gate: who acts, what kind of record, the store base class."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.errors import Conflict
from registry.security.authz import View
from registry.validation import mask_text

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
RESIDENT = Kind("resident", "resident", "流动人口")
CORRECTIONS = Kind("corrections", "corrections case", "社区矫正对象")
RELEASE = Kind("release", "release case", "刑满释放人员")
JURISDICTION = Kind("jurisdiction", "jurisdiction", "辖区")
USER = Kind("user", "user", "用户")
AUDIT = Kind("audit", "audit event", "审计事件")
COORDINATOR = Kind("coordinator", "coordinator", "协管员")
KEY = Kind("key", "key", "密钥")
PERSON = Kind("person", "person", "人员")
BREAK_GLASS = Kind("break-glass", "break-glass grant", "紧急查阅授权")
BACKUP = Kind("backup", "backup", "备份")


class Store:
    """Base of the stores: loading a record through the gate, and sealing and opening its
    columns under its own data key, bound to its table, column and row."""

    kind: Kind
    model: Any = None
    # The column naming the person a record is about (restricted persons); None: no person.
    person_column: str | None = None

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.session = vault.session

    @property
    def table(self) -> str:
        return self.model.__tablename__

    def load(self, record_id: uuid.UUID, action: str, *, purpose: str | None = None,
             glass: bool = False):
        """The record, if the caller may see it and do ``action``; else 404 (or 403 when they
        may see it but not do this). Sealed juvenile cases open only with a purpose; a
        restricted person's records only to those named (or a role that bypasses). With
        ``glass`` (a plain read, :meth:`get`), a live break-glass grant stands in for scope."""
        vault = self.vault
        row = self.session.get(self.model, record_id)
        code = row.jurisdiction_code if row is not None else None
        if row is None or (getattr(row, "juvenile", False) and not purpose):
            raise vault.hide(self.kind, action, record_id, code)
        grant = None
        if not vault.visible(self.kind, "read", code):
            if glass and action == "read" and vault.allowed(self.kind, "read"):
                grant = vault.access.live_grant(self.kind, row.id)
            if grant is None:
                raise vault.hide(self.kind, action, record_id, code)
        if self.person_column and not vault.access.sees(getattr(row, self.person_column),
                                                        row.id):
            raise vault.hide(self.kind, action, record_id, code)
        if grant is not None:
            vault.flag(row.id, f"break-glass={grant}")
        if action != "read" and not vault.allowed(self.kind, action):
            raise vault.forbid(self.kind, action, record_id, code)
        if action != "read" and getattr(row, "archived_on", None) is not None:
            raise vault.refuse(self.kind, action, Conflict(
                "this case is archived under the retention rules and is read-only",
                "该案件已按保存期限归档，只读"), record_id=record_id, code=code)
        return row

    def get(self, record_id: uuid.UUID, *, purpose: str | None):
        """One record, as the caller may see it: the one path a break-glass grant opens."""
        row = self.load(record_id, "read", purpose=purpose, glass=True)
        return self.respond(row, "read", purpose=purpose)

    def scoped(self) -> list:
        """SQL conditions of every list and search: the caller's scope, and no restricted
        person the caller is not named for."""
        conditions = [self.vault.scope_filter(self.model.jurisdiction_code)]
        if self.person_column:
            conditions.append(self.vault.access.unrestricted(
                getattr(self.model, self.person_column)))
        return conditions

    def seal(self, row, column: str, value: str | None, *, table: str | None = None,
             key_id: uuid.UUID | None = None):
        """Seal under the row's data key (or a parent's: ``key_id``), bound to the row."""
        return self.vault.seal(key_id or row.key_id, table or self.table, column, row.id, value)

    # --- answering: the read schema and its one audit event ---------------------------------

    def views(self, rows, purpose: str | None, *, history: bool = False) -> list[tuple]:
        """(read schema, field names shown) per row, as the caller's views allow."""
        raise NotImplementedError

    def refs(self, row) -> list[str]:
        """The records an event about ``row`` touches (the row and its person)."""
        return [f"{self.kind.name}:{row.id}", f"person:{row.person_id}"]

    def respond(self, row, action: str, *, purpose: str | None,
                changed: list[str] | None = None, detail: str = "", also: list[str] = ()):
        """The record as the caller may see it, and the one audit event of ``action``: for a
        read, the fields shown; for a write, the fields changed (and, in ``detail``, those
        shown in the answer); ``also`` names further records the operation read or wrote."""
        [(read, shown)] = self.views([row], purpose, history=True)
        if changed is not None:
            detail = ";".join(filter(None, (detail, "shown=" + ",".join(shown))))
        self.vault.record(self.kind, action, record_id=row.id, code=row.jurisdiction_code,
                          fields=shown if changed is None else changed,
                          refs=[*self.refs(row), *also],
                          purpose=purpose, detail=detail)
        return read

    def listing(self, rows, action: str, *, purpose: str | None, detail: str = "") -> list:
        """Rows as the caller may see them, and one audit event naming every record shown."""
        items = self.views(rows, purpose)
        if self.person_column:
            detail = ";".join(filter(None, (detail, self.vault.access.bypassed(
                getattr(row, self.person_column) for row in rows))))
        self.vault.record(self.kind, action, fields=sorted({f for _, fs in items for f in fs}),
                          refs=[ref for row in rows for ref in self.refs(row)],
                          purpose=purpose, detail=detail)
        return [read for read, _ in items]

    def open(self, row, column: str, *, table: str | None = None,
             row_id: uuid.UUID | None = None) -> str | None:
        return self.vault.open(getattr(row, column), table or self.table, column,
                               row_id or row.id)


class Reveal:
    """Opens a record's sealed fields as far as the caller's views allow, and keeps the list of
    field names shown (``name~masked`` for masked ones) for the audit event."""

    def __init__(self, store: Store, views: dict[str, View], *, prefix: str = "") -> None:
        self.store = store
        self.views = views
        self.prefix = prefix
        self.fields: list[str] = []

    def __call__(self, row, column: str, group: str,
                 mask: Callable[[str], str] = mask_text, *, table: str | None = None,
                 name: str | None = None) -> str | None:
        view = self.views.get(group, View.hidden)
        if view is View.hidden or getattr(row, column) is None:
            return None
        value = self.store.open(row, column, table=table)
        label = f"{self.prefix}{name or column}"
        if view is View.masked:
            self.fields.append(f"{label}~masked")
            return mask(value)
        self.fields.append(label)
        return value
