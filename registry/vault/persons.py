"""Persons: one row per natural person, shared by every register, found by the truncated blind
index of the ID number and confirmed by decrypting the few candidates in its bucket. Because the
index is not unique, uniqueness is enforced here, inside the write transaction (SQLite
serialises writers; PostgreSQL takes a transaction-scoped advisory lock on the bucket — on each
bucket, in order, while an index rebuild has two index-root versions in use).

A person holds only what the ID number itself says: the number, sex and birth date. Names and
phones are facts each office records on its own records, under its own data key. So nothing one
office writes ever shows in another office's view, and the check that a name agrees with the
one already recorded for the same number looks only at records the caller may see: a police
officer never learns, from a conflict, that a number is known to the justice bureau.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select

from registry.errors import Conflict, Forbidden
from registry.models import CorrectionsCase, Person, ReleaseCase, RentalProperty, Residency
from registry.models._types import new_id
from registry.schemas import PersonRead
from registry.security.authz import View
from registry.validation import IdNumber, mask_birth_date, mask_id_number, mask_name, mask_phone
from registry.vault.base import CORRECTIONS, PERSON, RELEASE, RENTAL, RESIDENT, Kind, Store

TABLE = "person"


@dataclass(frozen=True)
class NameSource:
    """Where a register records the name of the person a record is about."""

    kind: Kind
    model: Any
    person: str
    name: str


NAME_SOURCES = (
    NameSource(RENTAL, RentalProperty, "landlord_id", "landlord_name"),
    NameSource(RESIDENT, Residency, "person_id", "name"),
    NameSource(CORRECTIONS, CorrectionsCase, "person_id", "name"),
    NameSource(RELEASE, ReleaseCase, "person_id", "name"),
)


class PersonStore(Store):
    def _lock_buckets(self, buckets: list[int]) -> None:
        if not self.vault.registry.db.sqlite:
            for bucket in sorted(buckets):  # one order everywhere: no deadlock
                self.session.execute(select(func.pg_advisory_xact_lock(bucket)))

    def _open(self, person: Person, column: str) -> str | None:
        return self.vault.open(getattr(person, column), TABLE, column, person.id)

    def find(self, id_number: IdNumber, *, for_write: bool = False) -> Person | None:
        buckets = self.vault.blind_indexes(TABLE, "id_number", id_number.value)
        if for_write:
            self._lock_buckets(buckets)
        candidates = self.session.scalars(select(Person).where(
            Person.id_bidx.in_(buckets))).all()
        self.vault.load_keys(p.key_id for p in candidates)
        for person in candidates:
            if self._open(person, "id_number") == id_number.value:
                return person
        return None

    def by_id(self, person_ids) -> dict[uuid.UUID, Person]:
        """Persons by id, their data keys loaded (for answering about many records)."""
        people = {p.id: p for p in self.session.scalars(
            select(Person).where(Person.id.in_(set(person_ids))))}
        self.vault.load_keys(p.key_id for p in people.values())
        return people

    def ensure(self, *, id_number: IdNumber, name: str, field: str = "id_number") -> Person:
        """The person with this ID number (created if new), once the name agrees with every
        name recorded for them on records the caller may see; a different one is a conflict
        on ``field``, never an overwrite. A restricted person the caller is not named for
        takes no new record from them (403, audited): it would be hidden from its author."""
        person = self.find(id_number, for_write=True)
        if person is None:
            return self._create(id_number)
        if not self.vault.access.sees(person.id):
            raise self.vault.refuse(PERSON, "use", Forbidden(
                "records about this person are restricted to named users; ask one of them",
                "该人员的记录仅限指定人员查阅，请联系指定人员", field=field),
                record_id=person.id)
        for recorded in self.names_seen(person.id):
            if recorded != name:
                raise Conflict("this ID number is already registered under a different name",
                               "该身份证号已登记在另一姓名下，请核对", field=field)
        return person

    def names_seen(self, person_id: uuid.UUID) -> set[str]:
        """The names recorded for a person on records the caller may read, in their scope
        (sealed juvenile cases excluded)."""
        return self.names_seen_many([person_id]).get(person_id, set())

    def names_seen_many(self, person_ids) -> dict[uuid.UUID, set[str]]:
        vault, names = self.vault, {}
        person_ids = list(set(person_ids))
        for source in NAME_SOURCES:
            if not vault.allowed(source.kind, "read"):
                continue
            model = source.model
            person = getattr(model, source.person)
            for start in range(0, len(person_ids), 2000):
                where = [person.in_(person_ids[start:start + 2000]),
                         vault.scope_filter(model.jurisdiction_code)]
                if hasattr(model, "juvenile"):
                    where.append(model.juvenile.is_(False))
                columns = (person, model.id, model.key_id, getattr(model, source.name))
                rows = self.session.execute(select(*columns).where(*where)).all()
                vault.load_keys(r.key_id for r in rows)
                for r in rows:
                    names.setdefault(r[0], set()).add(
                        vault.open(r[3], model.__tablename__, source.name, r.id))
        return names

    def _create(self, id_number: IdNumber) -> Person:
        person_id = new_id()
        key_id = self.vault.new_key()

        def seal(column: str, value: str):
            return self.vault.seal(key_id, TABLE, column, person_id, value)

        now = self.vault.clock.now()
        person = Person(
            id=person_id, key_id=key_id,
            id_bidx=self.vault.blind_index(TABLE, "id_number", id_number.value),
            id_number=seal("id_number", id_number.value), sex=seal("sex", id_number.sex),
            birth_date=seal("birth_date", id_number.birth_date.isoformat()),
            created_at=now, updated_at=now,
        )
        self.session.add(person)
        self.session.flush()  # before any record that refers to them (no ORM relationship)
        return person

    def view(self, person: Person, views: dict[str, View], *, name: str | None,
             phone: str | None = None) -> tuple[PersonRead, list[str]]:
        """The person as the views allow, with the name (and phone) the record holds; and
        the names of the fields shown, for the audit."""
        values: dict[str, object] = {"id": person.id}
        shown = []

        def show(field: str, group: str, value: str | None, mask) -> None:
            view = views.get(group, View.hidden)
            if view is View.hidden or value is None or (view is View.masked and mask is None):
                return
            values[field] = value if view is View.clear else mask(value)
            shown.append(field if view is View.clear else f"{field}~masked")

        show("name", "name", name, mask_name)
        show("id_number", "id_number", self._open(person, "id_number"), mask_id_number)
        show("sex", "birth", self._open(person, "sex"), None)
        birth = self._open(person, "birth_date")
        show("birth_date", "birth", birth, mask_birth_date)
        if values.get("birth_date") == birth and birth is not None:
            values["birth_date"] = date.fromisoformat(birth)
        show("phone", "phone", phone, mask_phone)
        return PersonRead(**values), shown
