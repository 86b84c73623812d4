"""Persons: one row per natural person, shared by every register, found by the truncated blind
index of the ID number and confirmed by decrypting the few candidates in its bucket. Because the
index is not unique, uniqueness is enforced here, inside the write transaction (SQLite
serialises writers; PostgreSQL takes a transaction-scoped advisory lock on the bucket)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from registry.errors import Conflict
from registry.models import Person
from registry.models._types import new_id
from registry.schemas import PersonRead
from registry.security.authz import View
from registry.validation import (
    IdNumber,
    mask_birth_date,
    mask_id_number,
    mask_name,
    mask_phone,
)
from registry.vault.base import Store

TABLE = "person"
# field group of each person field, as the policy names them
GROUPS = {"name": "name", "id_number": "id_number", "phone": "phone", "sex": "birth",
          "birth_date": "birth"}
_MASKS = {"name": mask_name, "id_number": mask_id_number, "phone": mask_phone,
          "birth_date": mask_birth_date}


class PersonStore(Store):
    def _lock_bucket(self, bucket: int) -> None:
        if not self.vault.registry.db.sqlite:
            self.session.execute(select(func.pg_advisory_xact_lock(bucket)))

    def _open(self, person: Person, column: str) -> str | None:
        return self.vault.open(getattr(person, column), TABLE, column, person.id)

    def find(self, id_number: IdNumber, *, for_write: bool = False) -> Person | None:
        bucket = self.vault.blind_index(TABLE, "id_number", id_number.value)
        if for_write:
            self._lock_bucket(bucket)
        candidates = self.session.scalars(select(Person).where(Person.id_bidx == bucket)).all()
        self.vault.load_keys(p.key_id for p in candidates)
        for person in candidates:
            if self._open(person, "id_number") == id_number.value:
                return person
        return None

    def find_by_phone(self, phone: str) -> list[Person]:
        bucket = self.vault.blind_index(TABLE, "phone", phone)
        candidates = self.session.scalars(select(Person).where(Person.phone_bidx == bucket)).all()
        self.vault.load_keys(p.key_id for p in candidates)
        return [p for p in candidates if self._open(p, "phone") == phone]

    def ensure(self, *, id_number: IdNumber, name: str, phone: str | None = None,
               field: str = "id_number") -> Person:
        """The registered person with this ID number, or a new one. A different name for the
        same number is a conflict (on ``field``), never an overwrite; a new phone number
        replaces the old."""
        person = self.find(id_number, for_write=True)
        if person is None:
            return self._create(id_number=id_number, name=name, phone=phone)
        if self._open(person, "name") != name:
            raise Conflict(
                "this ID number is already registered under a different name",
                "该身份证号已登记在另一姓名下，请核对",
                field=field,
            )
        if phone is not None:
            self.set_phone(person, phone)
        return person

    def set_phone(self, person: Person, phone: str) -> bool:
        """Record a new phone number; False when it is the one already recorded."""
        if self._open(person, "phone") == phone:
            return False
        person.phone = self.vault.seal(person.key_id, TABLE, "phone", person.id, phone)
        person.phone_bidx = self.vault.blind_index(TABLE, "phone", phone)
        person.updated_at = self.vault.clock.now()
        return True

    def _create(self, *, id_number: IdNumber, name: str, phone: str | None) -> Person:
        person_id = new_id()
        key_id = self.vault.new_key()

        def seal(column: str, value: str | None):
            return self.vault.seal(key_id, TABLE, column, person_id, value)

        now = self.vault.clock.now()
        person = Person(
            id=person_id, key_id=key_id,
            id_bidx=self.vault.blind_index(TABLE, "id_number", id_number.value),
            phone_bidx=self.vault.blind_index(TABLE, "phone", phone) if phone else None,
            name=seal("name", name), id_number=seal("id_number", id_number.value),
            sex=seal("sex", id_number.sex), birth_date=seal("birth_date",
                                                           id_number.birth_date.isoformat()),
            phone=seal("phone", phone), created_at=now, updated_at=now,
        )
        self.session.add(person)
        return person

    def view(self, person: Person, views: dict[str, View]) -> tuple[PersonRead, list[str]]:
        """The person as the views allow, and the names of the fields shown (for the audit)."""
        values: dict[str, object] = {"id": person.id}
        shown = []
        for column, group in GROUPS.items():
            view = views.get(group, View.hidden)
            if view is View.hidden:
                continue
            value = self._open(person, column)
            if value is not None and view is View.masked:
                mask = _MASKS.get(column)
                if mask is None:  # sex has no masked form
                    continue
                value = mask(value)
            if column == "birth_date" and value is not None and view is View.clear:
                value = date.fromisoformat(value)
            values[column] = value
            shown.append(column if view is View.clear else f"{column}~masked")
        return PersonRead(**values), shown
