"""The division-code tree. Public reference data, but every record's scope hangs on it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from registry.errors import Invalid, NotFound
from registry.models import Jurisdiction
from registry.security.authz import in_scope
from registry.vault.base import JURISDICTION, Kind, Store

LEVELS = {6: "county", 9: "township", 12: "community", 15: "grid"}


@dataclass(frozen=True)
class JurisdictionRead:
    code: str
    name: str
    level: str
    parent_code: str | None


def _read(row: Jurisdiction) -> JurisdictionRead:
    return JurisdictionRead(row.code, row.name, row.level, row.parent_code)


class JurisdictionStore(Store):
    def require_writable(self, code: str, kind: Kind, action: str = "create", *,
                         field: str = "jurisdiction_code") -> None:
        """A record may be filed only under an existing node inside the caller's scope; an
        attempt outside it is a denial, and audited as one."""
        if self.session.get(Jurisdiction, code) is None:
            raise Invalid("is not a known jurisdiction code", "不是已登记的辖区代码", field=field)
        if not in_scope(self.vault.actor.scope, code):
            raise self.vault.refuse(
                kind, action, Invalid("is outside your jurisdiction", "不在您的管辖范围内",
                                      field=field), code=code)

    def _require_managed(self, code: str, *, row: int | None = None) -> None:
        """An administrator manages their own node and the tree below it (the CLI operator,
        scoped to everything, the whole tree); anything else is a denial, audited."""
        if not in_scope(self.vault.actor.scope, code):
            raise self.vault.refuse(JURISDICTION, "manage", Invalid(
                "is outside your jurisdiction", "不在您的管辖范围内",
                field="code", row=row), code=code)

    def narrow(self, column, code: str, *, field: str = "jurisdiction"):
        """A list filter by node, intersected with the caller's scope."""
        scope = self.vault.actor.scope
        if not (code.startswith(scope) or scope.startswith(code)):
            raise Invalid("is outside your jurisdiction", "不在您的管辖范围内", field=field)
        return column.startswith(code if code.startswith(scope) else scope, autoescape=True)

    def deadline_days(self, code: str) -> int:
        """The registration deadline for residents in ``code``: its own, the nearest
        ancestor's, or the setting."""
        prefixes = [code[:n] for n in (15, 12, 9, 6) if n <= len(code)]
        rows = dict(self.session.execute(
            select(Jurisdiction.code, Jurisdiction.registration_deadline_days)
            .where(Jurisdiction.code.in_(prefixes),
                   Jurisdiction.registration_deadline_days.is_not(None))).all())
        for prefix in prefixes:
            if prefix in rows:
                return rows[prefix]
        return self.vault.settings.registration_deadline_days

    def set_deadline(self, code: str, days: int | None) -> None:
        self.vault.require(JURISDICTION, "manage")
        self._require_managed(code)
        row = self.session.get(Jurisdiction, code)
        if row is None:
            raise NotFound.of("jurisdiction", "辖区")
        if days is not None and not 0 <= days <= 365:
            raise Invalid("must be 0 to 365 days", "须为0至365天", field="days")
        row.registration_deadline_days = days
        self.vault.record(JURISDICTION, "manage", record_id=code,
                          fields=["registration_deadline_days"])

    def get(self, code: str) -> JurisdictionRead:
        self.vault.require(JURISDICTION, "read")
        row = self.session.get(Jurisdiction, code)
        if row is None:
            raise NotFound.of("jurisdiction", "辖区")
        return _read(row)

    def children(self, code: str | None) -> list[JurisdictionRead]:
        self.vault.require(JURISDICTION, "read")
        where = (Jurisdiction.parent_code == code if code else Jurisdiction.parent_code.is_(None))
        return [_read(r) for r in self.session.scalars(
            select(Jurisdiction).where(where).order_by(Jurisdiction.code))]

    def subtree(self, code: str, *, depth: int) -> list[JurisdictionRead]:
        """``code`` and the nodes up to ``depth`` levels below it, level by level, each in
        code order: one query, where walking ``children`` would take one per node."""
        self.vault.require(JURISDICTION, "read")
        return [_read(r) for r in self.session.scalars(
            select(Jurisdiction)
            .where(Jurisdiction.code.startswith(code, autoescape=True),
                   func.length(Jurisdiction.code) <= len(code) + 3 * depth)
            .order_by(func.length(Jurisdiction.code), Jurisdiction.code))]

    def upsert(self, rows: list[tuple[str, str, str | None]]) -> tuple[int, int]:
        """Load (code, name, parent code) rows, parents before children; returns
        (added, renamed). Validates every row before writing any."""
        self.vault.require(JURISDICTION, "manage")
        for number, (code, _, _) in enumerate(rows, start=2):
            self._require_managed(code, row=number)
        known = {r.code: r for r in self.session.scalars(select(Jurisdiction))}
        pending: dict[str, tuple[str, str | None]] = {}
        for number, (code, name, parent) in enumerate(rows, start=2):
            if len(code) not in LEVELS or not code.isdigit():
                raise Invalid("must be 6, 9, 12 or 15 digits", "须为6、9、12或15位数字",
                              field="code", row=number)
            if not name or len(name) > 100:
                raise Invalid("must be 1 to 100 characters", "须为1至100个字符", field="name",
                              row=number)
            expected_parent = None if len(code) == 6 else code[: len(code) - 3]
            if (parent or None) != expected_parent:
                raise Invalid(f"must be {expected_parent or 'empty'} for this code",
                              f"应为 {expected_parent or '空'}", field="parent_code", row=number)
            if expected_parent and expected_parent not in known and expected_parent not in pending:
                raise Invalid("parent is neither loaded nor earlier in the file",
                              "上级辖区未登记，且未在文件中先出现", field="parent_code", row=number)
            pending[code] = (name, expected_parent)
        added = renamed = 0
        for code, (name, parent) in pending.items():
            row = known.get(code)
            if row is None:
                self.session.add(Jurisdiction(code=code, name=name, level=LEVELS[len(code)],
                                              parent_code=parent))
                self.session.flush()
                added += 1
            elif row.name != name:
                row.name = name
                renamed += 1
        self.vault.record(JURISDICTION, "manage", fields=["code", "name", "parent_code"],
                          detail=f"added={added};renamed={renamed}")
        return added, renamed
