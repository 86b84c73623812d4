"""What the registry already holds for a ledger row: the importers' lookups behind the gate.

Each row of a small register is matched by its natural key, always inside the caller's area —
a jurisdiction by code, a rental by address within its jurisdiction, a corrections case by
person and judgment number, a release case by person and release date, a coordinator by staff
number. A match comes back as the record's id, the references its audit event names and its
facts decrypted in the ledger's own terms, so the importer compares without holding a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from registry.models import CorrectionsCase, Jurisdiction, ReleaseCase, UserAccount
from registry.validation import IdNumber
from registry.vault.persons import TABLE as PERSON_TABLE


@dataclass(frozen=True)
class Match:
    id: Any
    refs: list[str]
    stored: dict[str, Any]


class Ledgers:
    def __init__(self, vault) -> None:
        self.vault = vault

    def jurisdiction(self, code: str) -> Match | None:
        row = self.vault.session.get(Jurisdiction, code)
        if row is None:
            return None
        return Match(code, [f"jurisdiction:{code}"], {
            "name": row.name, "parent_code": row.parent_code,
            "registration_deadline_days": row.registration_deadline_days})

    def rental(self, code: str, address: str) -> Match | None:
        vault = self.vault
        store = vault.rentals
        row = store.at_address(code, address, live=False)
        if row is None:
            return None
        landlord = vault.persons.by_id([row.landlord_id])[row.landlord_id]
        return Match(row.id, [f"rental:{row.id}", f"person:{row.landlord_id}"], {
            "units": row.units, "status": row.status, "registered_on": row.registered_on,
            "landlord_name": store.open(row, "landlord_name"),
            "landlord_id_number": vault.open(landlord.id_number, PERSON_TABLE, "id_number",
                                             landlord.id),
            "landlord_phone": store.open(row, "landlord_phone"),
            "pledge_signed_on": row.pledge_signed_on,
            "pledge_valid_until": row.pledge_valid_until})

    def corrections_case(self, id_number: IdNumber, judgment_ref: str) -> Match | None:
        vault = self.vault
        store = vault.corrections
        case = next((c for c in self._about(CorrectionsCase, id_number)
                     if store.open(c, "judgment_ref") == judgment_ref), None)
        if case is None:
            return None
        officer = vault.session.scalar(select(UserAccount.username).where(
            UserAccount.id == case.officer_id)) if case.officer_id else None
        last = case.last_check_in_at
        return Match(case.id, [f"corrections:{case.id}", f"person:{case.person_id}"], {
            "name": store.open(case, "name"), "category": case.category,
            "deciding_body": store.open(case, "deciding_body"),
            "effective_on": case.effective_on, "supervision_start": case.supervision_start,
            "supervision_end": case.supervision_end, "reported_on": case.reported_on,
            "check_in_interval_days": case.check_in_interval_days, "officer": officer,
            "juvenile": case.juvenile, "phone": store.open(case, "phone"),
            "last_check_in_on": last.astimezone(vault.clock.tz).date() if last else None})

    def release_case(self, id_number: IdNumber, released_on: date) -> Match | None:
        store = self.vault.releases
        case = next((c for c in self._about(ReleaseCase, id_number)
                     if c.released_on == released_on), None)
        if case is None:
            return None
        return Match(case.id, [f"release:{case.id}", f"person:{case.person_id}"], {
            "name": store.open(case, "name"), "source": case.source,
            "releasing_institution": store.open(case, "releasing_institution"),
            "key_subject": case.key_subject, "measures_in_place": case.measures_in_place,
            "phone": store.open(case, "phone"), "placement_status": case.placement_status,
            "placement_kind": case.placement_kind, "placed_on": case.placed_on})

    def coordinator(self, staff_number: str) -> Match | None:
        store = self.vault.coordinators
        row = store.by_staff_number(staff_number)
        if row is None:
            return None
        return Match(row.id, [f"coordinator:{row.id}"], {
            "name": store.open(row, "name"), "jurisdiction_code": row.jurisdiction_code,
            "phone": store.open(row, "phone")})

    def _about(self, model, id_number: IdNumber) -> list:
        """The caller's records of ``model`` about the person with this ID number (sealed
        juvenile cases included: a ledger row about one must match it, not duplicate it)."""
        vault = self.vault
        person = vault.persons.find(id_number)
        if person is None:
            return []
        rows = vault.session.scalars(select(model).where(
            model.person_id == person.id, vault.scope_filter(model.jurisdiction_code),
            vault.access.unrestricted(model.person_id))).all()
        vault.load_keys(r.key_id for r in rows)
        return rows

