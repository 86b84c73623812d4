"""Retention behind the gate: which records the retention rules say must go, legal holds that
stop them, and erasure by crypto-shredding.

Erasing a record deletes its row (and its children: pledges, assistance records), destroys its
data key in the keystore — every copy of its ciphertext, in this database and in every data
backup, is then noise — and leaves a tombstone (:class:`Erasure`: kind, id, area, rule, key
id; no personal data). The key is destroyed only once the deletion has committed
(:meth:`RetentionStore.shred` destroys the key of every tombstone whose key is still live): on
SQLite the keystore is a file of its own, committed apart, and a crash in between leaves a key
without data, which the next run shreds. A person goes once no record of theirs is left; their
row carried the ID number's blind index, which goes with it. Corrections cases are never
erased: past their period they are archived read-only. Nothing here opens personal data; the
operator who runs it (role ``system``) has no right to.

Holds: a hold on a record keeps that record (and so its person); a hold on a person keeps the
person and every record of theirs.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, func, select, update

from registry.corrections.schemas import CaseStatus
from registry.db import chunks
from registry.errors import Invalid, NotFound
from registry.models import (
    AssistanceRecord,
    AuditEvent,
    CorrectionsCase,
    DataKey,
    Erasure,
    LegalHold,
    Person,
    PersonRestriction,
    Pledge,
    ReleaseCase,
    RentalProperty,
    Residency,
)
from registry.models._types import new_id
from registry.rentals.schemas import RentalStatus
from registry.vault.auditlog import audit_cutoff
from registry.vault.base import CORRECTIONS, PERSON, RELEASE, RENTAL, RESIDENT, Kind, Store

RETENTION = Kind("retention", "retention", "保存期限")
# The kinds retention acts on, by the name their refs use ("resident:<id>", ...), in the order
# they are erased: records first, their persons after them.
KINDS = {k.name: k for k in (RESIDENT, RELEASE, RENTAL, CORRECTIONS, PERSON)}
# The records that keep a person.
PERSON_LINKS = ((Residency, Residency.person_id), (ReleaseCase, ReleaseCase.person_id),
                (RentalProperty, RentalProperty.landlord_id),
                (CorrectionsCase, CorrectionsCase.person_id))
ORDER = {RESIDENT.name: 0, RELEASE.name: 0, RENTAL.name: 0, CORRECTIONS.name: 0, PERSON.name: 1}


@dataclass(frozen=True)
class Due:
    """One record the rules say must go (or, for a corrections case, be archived)."""

    kind: str
    record_id: uuid.UUID
    jurisdiction_code: str | None
    rule: str
    due_on: date
    key_id: uuid.UUID
    person_id: uuid.UUID | None
    held: str | None = None  # the reference of the hold that keeps it

    @property
    def action(self) -> str:
        return "archive" if self.kind == CORRECTIONS.name else "erase"

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.record_id}"


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def years_after(day: date, years: int) -> date:
    return years_before(day, -years)


class RetentionStore(Store):
    kind = RETENTION

    # --- the plan ---------------------------------------------------------------------------

    def plan(self, today: date) -> list[Due]:
        """Everything due on ``today``, held items included (with the hold's reference), in
        the order it would be erased. An audit event records the run."""
        self.vault.require(RETENTION, "plan")
        items = self._due(today)
        counts = Counter((i.kind, i.action, bool(i.held)) for i in items)
        self.vault.record(RETENTION, "plan", detail=f"as_of={today};" + ",".join(
            f"{k}:{a}{':held' if h else ''}={n}" for (k, a, h), n in sorted(counts.items())))
        return items

    def audit_past_retention(self, today: date) -> int:
        """Audit events older than their online period (``registry audit archive``, and
        ``apply``'s command after the erasure, move them into archive files)."""
        cutoff = audit_cutoff(today, self.vault.settings.retention_audit_months)
        return self.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.at < cutoff)) or 0

    def _due(self, today: date) -> list[Due]:
        settings = self.vault.settings
        holds = self._holds()
        records: list[Due] = []

        def add(kind: Kind, rule: str, years: int, model, ended, person, *where) -> None:
            """The records of ``model`` whose period ended (``ended``) ``years`` ago."""
            rows = self.session.execute(
                select(model.id, model.jurisdiction_code.label("code"), ended.label("ended"),
                       model.key_id, person.label("person"))
                .where(ended <= years_before(today, years), *where)).all()
            for row in rows:
                held = holds.get(f"{kind.name}:{row.id}") or holds.get(f"person:{row.person}")
                records.append(Due(kind.name, row.id, row.code, rule,
                                   years_after(row.ended, years), row.key_id, row.person, held))

        add(RESIDENT, "resident_left", settings.retention_residency_years,
            Residency, Residency.left_on, Residency.person_id)
        add(RELEASE, "aftercare_ended", settings.retention_release_years,
            ReleaseCase, ReleaseCase.aftercare_until, ReleaseCase.person_id)
        add(RENTAL, "rental_deregistered", settings.retention_rental_years,
            RentalProperty, RentalProperty.deregistered_on, RentalProperty.landlord_id,
            RentalProperty.status == RentalStatus.deregistered.value)
        add(CORRECTIONS, "corrections_ended", settings.retention_corrections_archive_years,
            CorrectionsCase, CorrectionsCase.ended_on, CorrectionsCase.person_id,
            CorrectionsCase.status == CaseStatus.ended.value,
            CorrectionsCase.archived_on.is_(None))
        going = [i for i in records if i.action == "erase" and not i.held]
        return records + self._persons(today, going, holds)

    def _persons(self, today: date, going: list[Due], holds: dict[str, str]) -> list[Due]:
        """Persons left with no record once ``going`` is erased, and any with none at all."""
        candidates = {i.person_id for i in going} - self._kept(
            {i.person_id for i in going}, {i.record_id for i in going})
        orphans = select(Person.id, Person.key_id).where(
            *(~select(model.id).where(column == Person.id).exists()
              for model, column in PERSON_LINKS))
        rows = self.session.execute(orphans).all()
        for chunk in chunks(sorted(candidates), 500):
            rows += self.session.execute(select(Person.id, Person.key_id).where(
                Person.id.in_(chunk))).all()
        return [Due(PERSON.name, row.id, None, "person_unreferenced", today, row.key_id,
                    row.id, holds.get(f"person:{row.id}"))
                for row in sorted(set(rows))]

    def _kept(self, persons: set[uuid.UUID], going: set[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``persons`` who keep a record once ``going`` is erased."""
        kept = set()
        for chunk in chunks(sorted(persons), 500):
            for model, column in PERSON_LINKS:
                kept.update(person for person, record in self.session.execute(
                    select(column, model.id).where(column.in_(chunk)))
                    if record not in going)
        return kept

    def _holds(self) -> dict[str, str]:
        return dict(self.session.execute(
            select(LegalHold.ref, LegalHold.reference).where(LegalHold.lifted_at.is_(None))
            .order_by(LegalHold.placed_at.desc())).all())

    # --- applying it --------------------------------------------------------------------------

    def apply(self, today: date, limit: int) -> Counter:
        """Erase (or archive) up to ``limit`` of the items due and not held, in one
        transaction with their tombstones and audit events (the caller commits; run again
        until nothing is left). Returns counts per (kind, action)."""
        self.vault.require(RETENTION, "apply")
        items = sorted((i for i in self._due(today) if not i.held),
                       key=lambda i: ORDER[i.kind])[:limit]
        # A person goes only in the batch that takes the last of their records.
        kept = self._kept({i.record_id for i in items if i.kind == PERSON.name},
                          {i.record_id for i in items})
        items = [i for i in items if i.record_id not in kept]
        now = self.vault.clock.now()
        by_kind: dict[str, list[Due]] = {}
        for item in items:
            by_kind.setdefault(item.kind, []).append(item)
        ids = {kind: [i.record_id for i in group] for kind, group in by_kind.items()}
        session = self.session
        if ids.get(CORRECTIONS.name):
            session.execute(update(CorrectionsCase).where(
                CorrectionsCase.id.in_(ids[CORRECTIONS.name])).values(archived_on=today))
        if ids.get(RESIDENT.name):
            session.execute(delete(Residency).where(Residency.id.in_(ids[RESIDENT.name])))
        if ids.get(RELEASE.name):
            session.execute(delete(AssistanceRecord).where(
                AssistanceRecord.case_id.in_(ids[RELEASE.name])))
            session.execute(delete(ReleaseCase).where(ReleaseCase.id.in_(ids[RELEASE.name])))
        if ids.get(RENTAL.name):
            session.execute(update(Residency).where(Residency.rental_id.in_(ids[RENTAL.name]))
                            .values(rental_id=None))
            session.execute(delete(Pledge).where(Pledge.rental_id.in_(ids[RENTAL.name])))
            session.execute(delete(RentalProperty).where(
                RentalProperty.id.in_(ids[RENTAL.name])))
        if ids.get(PERSON.name):
            session.execute(delete(PersonRestriction).where(
                PersonRestriction.person_id.in_(ids[PERSON.name])))
            session.execute(delete(Person).where(Person.id.in_(ids[PERSON.name])))
        erased = [i for i in items if i.action == "erase"]
        if erased:
            # The keys go after this commits (:meth:`shred`), named by the tombstones.
            session.add_all(Erasure(id=new_id(), kind=i.kind, record_id=i.record_id,
                                    jurisdiction_code=i.jurisdiction_code, rule=i.rule,
                                    due_on=i.due_on, key_id=i.key_id, erased_at=now,
                                    erased_by=self.vault.actor.username) for i in erased)
        for item in items:
            refs = [item.ref] + ([f"person:{item.person_id}"]
                                 if item.person_id and item.kind != PERSON.name else [])
            self.vault.record(KINDS[item.kind], item.action, record_id=item.record_id,
                              code=item.jurisdiction_code, refs=refs,
                              detail=f"rule={item.rule};due_on={item.due_on}")
        session.flush()
        return Counter((i.kind, i.action) for i in items)

    def shred(self) -> int:
        """Crypto-shredding: destroy the data key of every tombstone whose key is still live
        — the wrapped key is overwritten (zeroed on disk on SQLite; :meth:`compact` then
        folds the WAL) and its row kept as a marker. Run after the erasures' commit (and
        again after a crash: it finishes what an interrupted run left). Returns how many."""
        self.vault.require(RETENTION, "apply")
        live = list(self.session.scalars(
            select(Erasure.key_id).join(DataKey, DataKey.id == Erasure.key_id)
            .where(DataKey.wrapped.is_not(None))))
        destroyed = (self.vault.registry.keyring.destroy(self.session, live,
                                                         self.vault.clock.now())
                     if live else 0)
        if destroyed:
            self.vault.record(RETENTION, "shred", detail=f"keys={destroyed}")
        return destroyed

    def compact(self) -> bool:
        """After a committed erasure: leave no copy of a shredded key where the database
        keeps old versions (SQLite's WAL; PostgreSQL's dead tuples in the keystore). False
        if a transaction older than the erasure kept one for now."""
        self.vault.require(RETENTION, "apply")
        return self.vault.registry.db.compact_keystore()

    # --- legal holds --------------------------------------------------------------------------

    def hold(self, kind: str, record_id: uuid.UUID, reference: str) -> LegalHold:
        self.vault.require(RETENTION, "hold")
        if kind not in KINDS:
            raise Invalid(f"kind must be one of {', '.join(sorted(KINDS))}",
                          f"类型必须是 {', '.join(sorted(KINDS))} 之一", field="kind")
        reference = reference.strip()
        if not 1 <= len(reference) <= 64 or not reference.isprintable():
            raise Invalid("give the order's reference (1-64 printable characters)",
                          "请填写法律保全的文号（1–64 个可打印字符）", field="reference")
        if not self._exists(kind, record_id):
            raise NotFound.of(KINDS[kind].label, KINDS[kind].label_zh)
        row = LegalHold(id=new_id(), ref=f"{kind}:{record_id}", reference=reference,
                        placed_by=self.vault.actor.username, placed_at=self.vault.clock.now())
        self.session.add(row)
        self.session.flush()
        # The reference is typed text: it stays on the hold row, out of the audit log (which
        # is archived and kept apart from the gate), like every other value.
        self.vault.record(RETENTION, "hold", record_id=row.id, refs=[row.ref])
        return row

    def lift(self, hold_id: uuid.UUID) -> LegalHold:
        self.vault.require(RETENTION, "hold")
        row = self.session.get(LegalHold, hold_id)
        if row is None or row.lifted_at is not None:
            raise NotFound.of("legal hold", "法律保全")
        row.lifted_at, row.lifted_by = self.vault.clock.now(), self.vault.actor.username
        self.session.flush()
        self.vault.record(RETENTION, "lift", record_id=row.id, refs=[row.ref])
        return row

    def holds(self) -> list[LegalHold]:
        self.vault.require(RETENTION, "plan")
        rows = list(self.session.scalars(select(LegalHold).where(LegalHold.lifted_at.is_(None))
                                         .order_by(LegalHold.placed_at)))
        self.vault.record(RETENTION, "read", refs=[r.ref for r in rows])
        return rows

    def _exists(self, kind: str, record_id: uuid.UUID) -> bool:
        model = {RESIDENT.name: Residency, RELEASE.name: ReleaseCase,
                 RENTAL.name: RentalProperty, CORRECTIONS.name: CorrectionsCase,
                 PERSON.name: Person}[kind]
        return self.session.get(model, record_id) is not None
