"""Migrant and temporary residents behind the gate. A residency runs from arrival to leaving;
a move closes one and opens the next, so history is never overwritten. Police and coordinators
see residents only: nothing here reads or reveals the corrections or release registers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import date

from sqlalchemy import func, or_, select

from registry.errors import Conflict, Invalid
from registry.models import Residency
from registry.models._types import new_id
from registry.residents.schemas import Reason, ResidentRead
from registry.schemas import Page
from registry.security.authz import View
from registry.validation import IdNumber, mask_address, mask_phone
from registry.vault.base import RESIDENT, Reveal, Store

GROUPS = ("name", "id_number", "birth", "phone", "address", "work", "permit")
SEALED_FACTS = {"occupation": "work", "workplace": "work", "phone": "phone",
                "hukou_address": "address", "permit_number": "permit"}


@dataclass(frozen=True)
class Place:
    rental_id: uuid.UUID | None
    jurisdiction_code: str | None
    address: str | None


@dataclass(frozen=True)
class Facts:
    """Resident facts as given; ``None`` means "not given" (on amend: unchanged)."""

    reason: Reason | None = None
    occupation: str | None = None
    workplace: str | None = None
    phone: str | None = None
    hukou_address: str | None = None
    permit_number: str | None = None
    permit_issued_on: date | None = None
    permit_endorsed_on: date | None = None


@dataclass(frozen=True)
class Arrival:
    """A validated arrival, as the API's and the importers' services hand it to the gate."""

    id_number: IdNumber
    name: str
    place: Place
    facts: Facts
    arrived_on: date
    registered_on: date
    left_on: date | None = None


def registered_late(arrived_on: date, registered_on: date, deadline_days: int) -> bool:
    """Registered after the jurisdiction's deadline (days after arrival)."""
    return (registered_on - arrived_on).days > deadline_days


def missing_facts(row: Residency) -> list[str]:
    """The required facts (entry-rate metric) this residency still lacks."""
    missing = []
    if row.rental_id is None and row.address is None:
        missing.append("address")
    for column in ("phone", "hukou_address", "occupation"):
        if getattr(row, column) is None:
            missing.append(column)
    if row.reason in (Reason.work, Reason.business) and row.workplace is None:
        missing.append("workplace")
    return missing


class ResidentStore(Store):
    kind = RESIDENT
    model = Residency
    person_column = "person_id"

    # --- writes ----------------------------------------------------------------------------

    def register(self, *, id_number: IdNumber, name: str, place: Place, facts: Facts,
                 arrived_on: date, registered_on: date,
                 purpose: str | None = None) -> ResidentRead:
        vault = self.vault
        vault.require(RESIDENT, "create")
        code, rental_id = self._resolve(place)
        person = vault.persons.ensure(id_number=id_number, name=name)
        self._refuse_second_home(person.id)
        row = self._open_residency(person.id, name, code, rental_id, place.address, facts,
                                   arrived_on=arrived_on, registered_on=registered_on)
        return self.respond(row, "create", purpose=purpose, changed=self._given(facts, place))

    def move(self, residency_id: uuid.UUID, *, place: Place, facts: Facts, moved_on: date,
             purpose: str | None = None) -> ResidentRead:
        vault = self.vault
        old = self.load(residency_id, "move")
        if old.left_on is not None:
            raise Conflict("this residency has ended; register a new arrival",
                           "该居住登记已结束，请重新登记来本地", field="residency_id")
        if moved_on < old.arrived_on:
            raise Invalid("is before the arrival date", "早于来本地日期", field="moved_on")
        code, rental_id = self._resolve(place)
        old.left_on = moved_on
        old.updated_at = vault.clock.now()
        carried = Facts(**{f.name: getattr(facts, f.name) if getattr(facts, f.name) is not None
                           else self._fact(old, f.name) for f in fields(Facts)})
        row = self._open_residency(old.person_id, self.open(old, "name"), code, rental_id,
                                   place.address, carried, arrived_on=moved_on,
                                   registered_on=vault.clock.today())
        return self.respond(row, "move", purpose=purpose, changed=self._given(facts, place),
                            detail=f"from={old.id}", also=[f"resident:{old.id}"])

    def move_out(self, residency_id: uuid.UUID, *, left_on: date,
                 purpose: str | None = None) -> ResidentRead:
        row = self.load(residency_id, "move")
        if row.left_on is not None:
            raise Conflict("this resident has already moved out", "该人员已登记离开")
        if left_on < row.arrived_on:
            raise Invalid("is before the arrival date", "早于来本地日期", field="left_on")
        row.left_on = left_on
        row.updated_at = self.vault.clock.now()
        self.session.flush()
        return self.respond(row, "move-out", purpose=purpose, changed=["left_on"])

    def amend(self, residency_id: uuid.UUID, facts: Facts, *,
              purpose: str | None = None) -> ResidentRead:
        row = self.load(residency_id, "update")
        if row.left_on is not None:
            raise Conflict("an ended residency cannot be amended", "已结束的居住登记不能修改")
        self._apply(row, facts)
        row.missing = ",".join(missing_facts(row))
        row.updated_at = self.vault.clock.now()
        self.session.flush()
        return self.respond(row, "update", purpose=purpose, changed=self._given(facts, None))

    def _resolve(self, place: Place) -> tuple[str, uuid.UUID | None]:
        vault = self.vault
        if place.rental_id is not None:
            rental = vault.rentals.load(place.rental_id, "read")
            if rental.status == "deregistered":
                raise Invalid("this rental is deregistered", "该出租房屋已注销",
                              field="rental_id")
            if place.jurisdiction_code not in (None, rental.jurisdiction_code):
                raise Invalid("differs from the rental's jurisdiction", "与出租房屋所属辖区不一致",
                              field="jurisdiction_code")
            return rental.jurisdiction_code, rental.id
        if place.address is None or place.jurisdiction_code is None:
            raise Invalid("give a rental_id, or an address with its jurisdiction_code",
                          "须提供出租房屋编号，或提供地址及所属辖区代码", field="rental_id")
        vault.jurisdictions.require_writable(place.jurisdiction_code, RESIDENT)
        return place.jurisdiction_code, None

    def _refuse_second_home(self, person_id: uuid.UUID) -> None:
        """One open residency per person within the caller's area (record a move instead).
        Outside it the caller learns nothing."""
        other = self.session.scalar(select(Residency.id).where(
            Residency.person_id == person_id, Residency.left_on.is_(None),
            self.vault.scope_filter(Residency.jurisdiction_code)))
        if other is not None:
            raise Conflict("this person is already registered as living in your area; record "
                           "a move instead", "该人员已在本辖区登记居住，请办理迁移",
                           field="id_number", extra={"existing_id": str(other)})

    def _open_residency(self, person_id, name: str, code, rental_id, address, facts: Facts, *,
                        arrived_on: date, registered_on: date) -> Residency:
        vault = self.vault
        if registered_on < arrived_on:
            raise Invalid("is before the arrival date", "早于来本地日期", field="registered_on")
        now = vault.clock.now()
        row = Residency(
            id=new_id(), key_id=vault.new_key(), person_id=person_id, jurisdiction_code=code,
            rental_id=rental_id, arrived_on=arrived_on, registered_on=registered_on,
            reason=(facts.reason or Reason.other).value, created_by=vault.actor.id,
            created_at=now, updated_at=now,
            late=registered_late(arrived_on, registered_on,
                                 vault.jurisdictions.deadline_days(code)),
        )
        row.name = self.seal(row, "name", name)
        row.address = self.seal(row, "address", address)
        self._apply(row, facts)
        row.missing = ",".join(missing_facts(row))
        self.session.add(row)
        self.session.flush()
        return row

    def _apply(self, row: Residency, facts: Facts) -> None:
        for column in SEALED_FACTS:
            value = getattr(facts, column)
            if value is not None:
                setattr(row, column, self.seal(row, column, value))
                if column == "phone":
                    row.phone_bidx = self.vault.blind_index(self.table, "phone", value)
        if facts.reason is not None:
            row.reason = facts.reason.value
        for column in ("permit_issued_on", "permit_endorsed_on"):
            if getattr(facts, column) is not None:
                setattr(row, column, getattr(facts, column))
        if (row.permit_issued_on and row.permit_endorsed_on
                and row.permit_endorsed_on < row.permit_issued_on):
            raise Invalid("is before the permit's issue date", "早于居住证签发日期",
                          field="permit_endorsed_on")

    def _fact(self, row: Residency, name: str):
        if name in SEALED_FACTS:
            return self.open(row, name)
        if name == "reason":
            return Reason(row.reason)
        return getattr(row, name)

    @staticmethod
    def _given(facts: Facts, place: Place | None) -> list[str]:
        given = [f.name for f in fields(Facts) if getattr(facts, f.name) is not None]
        if place is not None:
            given.append("rental_id" if place.rental_id else "address")
        return given

    # --- reads -----------------------------------------------------------------------------

    def list(self, *, jurisdiction: str | None = None, present_on: date | None = None,
             person_id: uuid.UUID | None = None, rental_id: uuid.UUID | None = None,
             late: bool | None = None, incomplete: bool | None = None, page: int = 1,
             page_size: int = 50, purpose: str | None = None,
             action: str = "list") -> Page[ResidentRead]:
        vault = self.vault
        vault.require(RESIDENT, "list")
        where = self.scoped()
        if jurisdiction:
            where.append(vault.jurisdictions.narrow(Residency.jurisdiction_code, jurisdiction))
        if present_on is not None:
            where += [Residency.arrived_on <= present_on,
                      or_(Residency.left_on.is_(None), Residency.left_on > present_on)]
        if person_id is not None:
            where.append(Residency.person_id == person_id)
        if rental_id is not None:
            where.append(Residency.rental_id == rental_id)
        if late is not None:
            where.append(Residency.late.is_(late))
        if incomplete is not None:
            where.append(Residency.missing != "" if incomplete else Residency.missing == "")
        total = self.session.scalar(select(func.count()).select_from(Residency).where(*where))
        rows = self.session.scalars(
            select(Residency).where(*where)
            .order_by(Residency.arrived_on.desc(), Residency.id.desc())
            .offset((page - 1) * page_size).limit(page_size)).all()
        items = self.listing(rows, action, purpose=purpose, detail=f"page={page};total={total}")
        return Page(items=items, total=total or 0, page=page, page_size=page_size)

    def at_rental(self, rental_id: uuid.UUID, *, on: date,
                  purpose: str | None) -> list[ResidentRead]:
        """Who lives at a rental on a date (today: now)."""
        self.vault.rentals.load(rental_id, "read")
        return self.list(rental_id=rental_id, present_on=on, page_size=500, purpose=purpose,
                         action="list").items

    def search(self, *, id_number: IdNumber | None, phone: str | None,
               purpose: str | None) -> list[ResidentRead]:
        vault = self.vault
        vault.require(RESIDENT, "search")
        if id_number is not None:
            person = vault.persons.find(id_number)
            match = Residency.person_id == (person.id if person else None)
            by = "id_number"
        else:
            match = Residency.phone_bidx.in_(vault.blind_indexes(self.table, "phone", phone))
            by = "phone"
        rows = self.session.scalars(select(Residency).where(match, *self.scoped())
            .order_by(Residency.arrived_on.desc()).limit(200)).all()
        if phone is not None:
            vault.load_keys(r.key_id for r in rows)
            rows = [r for r in rows if self.open(r, "phone") == phone]
        return self.listing(rows, "search", purpose=purpose, detail=f"by={by}")

    def refs(self, row: Residency) -> list[str]:
        refs = [f"resident:{row.id}", f"person:{row.person_id}"]
        if row.rental_id:
            refs.append(f"rental:{row.rental_id}")
        return refs

    def views(self, rows, purpose: str | None, *,
              history: bool = False) -> list[tuple[ResidentRead, list[str]]]:
        if not rows:
            return []
        vault = self.vault
        views = vault.views(RESIDENT, GROUPS, purpose)
        people = vault.persons.by_id(r.person_id for r in rows)
        vault.load_keys(r.key_id for r in rows)
        result = []
        for row in rows:
            person, person_fields = vault.persons.view(
                people[row.person_id], views,
                name=self.open(row, "name") if views["name"] else None)
            reveal = Reveal(self, views)
            read = ResidentRead(
                id=row.id, person=person, jurisdiction_code=row.jurisdiction_code,
                rental_id=row.rental_id, address=reveal(row, "address", "address", mask_address),
                arrived_on=row.arrived_on, registered_on=row.registered_on, left_on=row.left_on,
                reason=row.reason, occupation=reveal(row, "occupation", "work"),
                workplace=reveal(row, "workplace", "work"),
                phone=reveal(row, "phone", "phone", mask_phone),
                hukou_address=reveal(row, "hukou_address", "address", mask_address),
                permit_number=reveal(row, "permit_number", "permit"),
                permit_issued_on=row.permit_issued_on,
                permit_endorsed_on=row.permit_endorsed_on, late=row.late,
                missing=[m for m in row.missing.split(",") if m],
                masked=sorted(g for g, v in views.items() if v is View.masked),
                hidden=sorted(g for g, v in views.items() if v is View.hidden),
            )
            result.append((read, [f"person.{f}" for f in person_fields] + reveal.fields))
        return result
