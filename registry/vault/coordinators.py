"""The coordinators' roster (协管员) behind the gate: staff, not subjects, but their names and
phones are personal data all the same — sealed, scoped and audited like the registers'."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from registry.coordinators.schemas import CoordinatorIn, CoordinatorRead
from registry.errors import Conflict
from registry.models import Coordinator
from registry.models._types import new_id
from registry.schemas import Page
from registry.security.authz import View
from registry.validation import mask_name, mask_phone
from registry.vault.base import COORDINATOR, Reveal, Store

GROUPS = ("name", "phone")


class CoordinatorStore(Store):
    kind = COORDINATOR
    model = Coordinator

    def add(self, data: CoordinatorIn, *, purpose: str | None = None) -> CoordinatorRead:
        vault = self.vault
        vault.require(COORDINATOR, "create")
        vault.jurisdictions.require_writable(data.jurisdiction_code, COORDINATOR)
        if self.by_staff_number(data.staff_number) is not None:
            raise Conflict("a coordinator with this staff number is on the roster",
                           "该工号的协管员已在名册中", field="staff_number")
        now = vault.clock.now()
        row = Coordinator(id=new_id(), key_id=vault.new_key(), staff_number=data.staff_number,
                          jurisdiction_code=data.jurisdiction_code, created_by=vault.actor.id,
                          created_at=now, updated_at=now)
        row.name = self.seal(row, "name", data.name)
        row.phone = self.seal(row, "phone", data.phone)
        self.session.add(row)
        self.session.flush()
        return self.respond(row, "create", purpose=purpose,
                            changed=["staff_number", "name", "jurisdiction_code", "phone"])

    def by_staff_number(self, staff_number: str) -> Coordinator | None:
        """The roster entry with this staff number; one held outside the caller's area is a
        conflict that names nothing of it."""
        row = self.session.scalar(select(Coordinator).where(
            Coordinator.staff_number == staff_number))
        if row is not None and not self.vault.visible(COORDINATOR, "read", row.jurisdiction_code):
            raise Conflict("this staff number is on another area's roster",
                           "该工号已在其他辖区的名册中", field="staff_number")
        return row

    def stored(self, row: Coordinator) -> dict:
        return {"name": self.open(row, "name"), "jurisdiction_code": row.jurisdiction_code,
                "phone": self.open(row, "phone")}

    def change(self, coordinator_id: uuid.UUID, changes: dict, *,
               purpose: str | None = None) -> CoordinatorRead:
        vault = self.vault
        row = self.load(coordinator_id, "update")
        if "jurisdiction_code" in changes:
            vault.jurisdictions.require_writable(changes["jurisdiction_code"], COORDINATOR,
                                                 "update")
            row.jurisdiction_code = changes["jurisdiction_code"]
        for column in ("name", "phone"):
            if column in changes:
                setattr(row, column, self.seal(row, column, changes[column]))
        row.updated_at = vault.clock.now()
        self.session.flush()
        return self.respond(row, "update", purpose=purpose, changed=sorted(changes))

    def list(self, *, jurisdiction: str | None, page: int, page_size: int,
             purpose: str | None) -> Page[CoordinatorRead]:
        vault = self.vault
        vault.require(COORDINATOR, "list")
        where = [vault.scope_filter(Coordinator.jurisdiction_code)]
        if jurisdiction:
            where.append(vault.jurisdictions.narrow(Coordinator.jurisdiction_code, jurisdiction))
        total = self.session.scalar(select(func.count()).select_from(Coordinator).where(*where))
        rows = self.session.scalars(select(Coordinator).where(*where).order_by(
            Coordinator.jurisdiction_code, Coordinator.staff_number)
            .offset((page - 1) * page_size).limit(page_size)).all()
        items = self.listing(rows, "list", purpose=purpose, detail=f"page={page};total={total}")
        return Page(items=items, total=total or 0, page=page, page_size=page_size)

    def refs(self, row: Coordinator) -> list[str]:
        return [f"coordinator:{row.id}"]

    def views(self, rows, purpose: str | None, *, history: bool = False):
        views = self.vault.views(COORDINATOR, GROUPS, purpose)
        self.vault.load_keys(r.key_id for r in rows)
        result = []
        for row in rows:
            reveal = Reveal(self, views)
            read = CoordinatorRead(
                id=row.id, staff_number=row.staff_number,
                jurisdiction_code=row.jurisdiction_code,
                name=reveal(row, "name", "name", mask_name),
                phone=reveal(row, "phone", "phone", mask_phone),
                masked=sorted(g for g, v in views.items() if v is View.masked))
            result.append((read, reveal.fields))
        return result

