"""Residents in bulk: the importers' fast path through the gate.

A resident ledger can hold a county's whole migrant population, so rows are not registered one
at a time. A batch is checked as a whole (role, scope and jurisdiction once per code), matched
against the registry, and written with one multi-row statement per table; the rules are the
registry's own (:func:`registry.residents.service.arrival`, :func:`missing_facts`, the
registration deadline), and the batch lands with one audit event naming every record it read or
wrote.

Finding a person by ID number through a truncated blind index means decrypting every candidate
in the number's bucket. Done per row, a large import would decrypt each bucket over and over;
:class:`PersonIndex` decrypts each bucket at most once per import and keeps what it learnt in a
temporary table of the import's own connection — keyed by an HMAC under a key that lives only
in this process, so nothing it holds outlives the import or links to anything else — which keeps
the importer's memory flat however large the file. While an index rebuild is under way a
person may sit in the bucket of either index-root version, so it learns both buckets of each
number; what it learnt stays right when the rebuild moves a row to its other bucket, since it
maps the number (not the bucket) to the person.
"""

from __future__ import annotations

import hmac
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

from sqlalchemy import (
    Column,
    LargeBinary,
    MetaData,
    Table,
    Uuid,
    bindparam,
    select,
    text,
)

from registry.db import insert_many
from registry.errors import Conflict, Forbidden, Invalid, RegistryError
from registry.models import Jurisdiction, Person, Residency
from registry.models._types import new_id
from registry.residents.schemas import Reason
from registry.security.authz import in_scope
from registry.vault.base import RESIDENT
from registry.vault.persons import TABLE as PERSON_TABLE
from registry.vault.residents import (
    SEALED_FACTS,
    Arrival,
    Facts,
    missing_facts,
    registered_late,
)

_TEMP = Table("import_person", MetaData(),
              Column("digest", LargeBinary, primary_key=True),
              Column("person_id", Uuid, nullable=False),
              Column("first_row", LargeBinary),  # set once a row of this import named them
              prefixes=["TEMPORARY"])
_MARK = "registry.import_person"
# Compared when a ledger row meets the registered residency with its arrival date.
COMPARED = ("jurisdiction_code", "address", "left_on", *(f.name for f in fields(Facts)))


@dataclass
class Outcome:
    """What became of one row: ``imported``, ``updated``, ``unchanged`` or ``rejected``."""

    status: str
    refs: list[str] = field(default_factory=list)
    error: RegistryError | None = None


def differs_error(differs: list[str], what: str, what_zh: str) -> Conflict:
    return Conflict(
        f"differs from the registered {what} in: {', '.join(differs)} (run with --update to "
        "replace them)", f"与已登记的{what_zh}不一致：{'、'.join(differs)}（如需以本文件为准，"
        "请使用 --update）", field=differs[0])


class PersonIndex:
    """ID number → person, for one import (see the module docstring)."""

    def __init__(self, vault) -> None:
        self.vault = vault
        self._key = os.urandom(32)
        self._token = os.urandom(8).hex()
        self._loaded: set[int] = set()
        self._pending: set[int] = set()
        self._temp = "temp" if vault.registry.db.sqlite else "pg_temp"  # the schema

    def digest(self, id_number: str) -> bytes:
        return hmac.digest(self._key, id_number.encode(), "sha256")[:16]

    def begin(self) -> None:
        """Before each batch: make sure this connection holds the table (a pooled connection
        may change between batches; then everything is learnt again)."""
        conn = self.vault.session.connection()
        if conn.info.get(_MARK) == self._token:
            return
        conn.execute(text(f"DROP TABLE IF EXISTS {self._temp}.import_person"))
        _TEMP.create(conn)
        conn.info[_MARK] = self._token
        self._loaded.clear()

    def committed(self) -> None:
        self._loaded |= self._pending
        self._pending.clear()

    def close(self) -> None:
        """Drop the table: what it holds is useless without the key, but a pooled connection
        would keep it."""
        conn = self.vault.session.connection()
        if conn.info.pop(_MARK, None) == self._token:
            conn.execute(text(f"DROP TABLE IF EXISTS {self._temp}.import_person"))

    def rolled_back(self) -> None:
        self._pending.clear()
        self.vault.session.connection().info.pop(_MARK, None)

    def learn(self, buckets: Iterable[int]) -> None:
        """Decrypt the stored persons of the buckets not yet learnt."""
        vault = self.vault
        todo = sorted(set(buckets) - self._loaded - self._pending)
        for start in range(0, len(todo), 2000):
            chunk = todo[start:start + 2000]
            rows = vault.session.execute(select(Person.id, Person.key_id, Person.id_number)
                                         .where(Person.id_bidx.in_(chunk))).all()
            vault.load_keys(r.key_id for r in rows)
            entries = [{"digest": self.digest(vault.open(r.id_number, PERSON_TABLE, "id_number",
                                                         r.id)),
                        "person_id": r.id, "first_row": None} for r in rows]
            # A person learnt before may turn up again: an index rebuild that began during
            # the import moves rows to the new root's bucket.
            known = self.lookup([e["digest"] for e in entries])
            insert_many(vault.session, _TEMP, [e for e in entries if e["digest"] not in known])
        self._pending.update(todo)

    def lookup(self, digests: Sequence[bytes]) -> dict[bytes, tuple[uuid.UUID, bytes | None]]:
        found = {}
        for start in range(0, len(digests), 2000):
            chunk = digests[start:start + 2000]
            found.update((r.digest, (r.person_id, r.first_row)) for r in self.vault.session.execute(
                select(_TEMP.c.digest, _TEMP.c.person_id, _TEMP.c.first_row)
                .where(_TEMP.c.digest.in_(chunk))))
        return found

    def claim(self, digests_rows: list[tuple[bytes, int]]) -> None:
        """Mark pre-existing persons as named by a row of this import."""
        if digests_rows:
            self.vault.session.execute(
                _TEMP.update().where(_TEMP.c.digest == bindparam("d"))
                .values(first_row=bindparam("r")),
                [{"d": d, "r": row.to_bytes(8, "big")} for d, row in digests_rows])


class ResidentImport:
    """One import of a resident ledger, batch by batch, as the vault's actor."""

    def __init__(self, vault, *, update: bool) -> None:
        self.vault = vault
        self.update = update
        self.index = PersonIndex(vault)
        self._known: set[str] | None = None  # the jurisdiction codes in the caller's area
        self._deadlines: dict[str, int] = {}  # code → its registration deadline (days)
        self._moved: dict[int, uuid.UUID] = {}  # row number → the residency its move ends

    # --- one batch -------------------------------------------------------------------------

    def run(self, rows: list[tuple[int, Arrival]]) -> dict[int, Outcome]:
        """Write the batch (the caller commits); an :class:`Outcome` per row number."""
        vault = self.vault
        vault.require(RESIDENT, "create")
        self.index.begin()
        out: dict[int, Outcome] = {}
        ready = []
        for number, a in rows:
            try:
                self._check_place(a)
                ready.append((number, a, self.index.digest(a.id_number.value)))
            except RegistryError as exc:
                out[number] = Outcome("rejected", error=exc)
        self.index.learn(bucket for _, a, _ in ready  # every version in use: see indexadmin
                         for bucket in vault.blind_indexes(PERSON_TABLE, "id_number",
                                                           a.id_number.value))
        known = self.index.lookup([d for _, _, d in ready])
        first_seen: dict[bytes, int] = {}
        fresh, existing, claims = [], [], []
        for number, a, digest in ready:
            person_id, first_row = known.get(digest, (None, None))
            earlier = first_seen.get(digest) or (
                int.from_bytes(first_row, "big") if first_row is not None else None)
            if earlier is not None and earlier != number:
                out[number] = Outcome("rejected", error=Conflict(
                    f"the same person (ID number) is already in row {earlier} of this file: "
                    "one residency per person per ledger", f"同一人（身份证号）已在本文件第"
                    f"{earlier}行出现：每份台账每人只登记一条居住信息", field="id_number"))
                continue
            first_seen[digest] = number
            if person_id is None:
                fresh.append((number, a, None, digest))
            else:
                existing.append((number, a, person_id))
                claims.append((digest, number))
        self.index.claim(claims)
        out.update(self._match(existing))
        out.update(self._create(fresh))
        return out

    def committed(self) -> None:
        self.index.committed()

    def rolled_back(self) -> None:
        self.index.rolled_back()

    def finish(self) -> None:
        self.index.close()

    # --- checks ----------------------------------------------------------------------------

    def _check_place(self, a: Arrival) -> None:
        """The arrival's jurisdiction exists and lies in the caller's area (else a denial);
        its registration deadline is looked up once per code."""
        if self._known is None:
            self._known = set(self.vault.session.scalars(select(Jurisdiction.code).where(
                self.vault.scope_filter(Jurisdiction.code))))
        code = a.place.jurisdiction_code
        if code is None or a.place.address is None:
            raise Invalid("give an address with its jurisdiction code", "须提供地址及所属辖区代码",
                          field="address")
        if code not in self._known:
            if in_scope(self.vault.actor.scope, code):
                raise Invalid("is not a known jurisdiction code", "不是已登记的辖区代码",
                              field="jurisdiction_code")
            raise self.vault.refuse(RESIDENT, "create", Invalid(
                "is outside your jurisdiction", "不在您的管辖范围内", field="jurisdiction_code"),
                code=code)
        if code not in self._deadlines:
            self._deadlines[code] = self.vault.jurisdictions.deadline_days(code)

    # --- rows whose person is registered ---------------------------------------------------

    def _match(self, rows: list[tuple[int, Arrival, uuid.UUID]]) -> dict[int, Outcome]:
        if not rows:
            return {}
        vault = self.vault
        person_ids = {p for _, _, p in rows}
        names = vault.persons.names_seen_many(person_ids)
        hidden = vault.access.hidden_persons(person_ids)
        homes: dict[uuid.UUID, list[Residency]] = {}
        for r in vault.session.scalars(select(Residency).where(
                Residency.person_id.in_(person_ids),
                vault.scope_filter(Residency.jurisdiction_code))):
            homes.setdefault(r.person_id, []).append(r)
        vault.load_keys(r.key_id for rs in homes.values() for r in rs)
        out, new = {}, []
        for number, a, person_id in rows:
            if person_id in hidden:  # as PersonStore.ensure: no new record from them
                out[number] = Outcome("rejected", error=vault.refuse(RESIDENT, "create", Forbidden(
                    "records about this person are restricted to named users; ask one of them",
                    "该人员的记录仅限指定人员查阅，请联系指定人员", field="id_number"),
                    record_id=person_id))
                continue
            if names.get(person_id, {a.name}) - {a.name}:
                out[number] = Outcome("rejected", error=Conflict(
                    "this ID number is already registered under a different name",
                    "该身份证号已登记在另一姓名下，请核对", field="id_number"))
                continue
            try:
                outcome = vault.attempt(lambda n=number, a=a, p=person_id: self._against(
                    n, a, p, homes.get(p, [])))
            except RegistryError as exc:
                outcome = Outcome("rejected", error=exc)
            if outcome is None:
                new.append((number, a, person_id, None))
            else:
                out[number] = outcome
        out.update(self._create(new))
        return out

    def _against(self, number: int, a: Arrival, person_id: uuid.UUID,
                 homes: list[Residency]) -> Outcome | None:
        """Compare with the person's residencies in the caller's area: the same arrival is
        unchanged or (with ``update``) amended; a new arrival while another is open is a move
        (with ``update``) or a conflict; ``None`` means create."""
        same = next((h for h in homes if h.arrived_on == a.arrived_on), None)
        if same is not None:
            differs = self._differences(same, a)
            refs = [f"resident:{same.id}", f"person:{person_id}"]
            if not differs:
                return Outcome("unchanged", refs)
            if {"jurisdiction_code", "address"} & set(differs):
                # History is never rewritten: living elsewhere is a move, with its own date.
                raise Conflict(
                    f"differs from the address registered for the arrival on {a.arrived_on}: "
                    "a move has its own arrival date (or correct the address in the registry)",
                    f"与{a.arrived_on}来本地登记的地址不一致：迁移须填写新的来本地日期"
                    "（或在系统中更正地址）", field=differs[0])
            if not self.update:
                raise differs_error(differs, "residency", "居住信息")
            self._amend(same, a)
            return Outcome("updated", refs)
        current = next((h for h in homes if h.left_on is None), None)
        if current is None:
            return None
        if not self.update or a.arrived_on <= current.arrived_on:
            raise Conflict(
                f"this person is registered as living in your area since "
                f"{current.arrived_on}; a later arrival is a move (run with --update)",
                f"该人员自{current.arrived_on}起已在本辖区登记居住；如为迁移，请使用 --update",
                field="arrived_on")
        current.left_on = a.arrived_on  # a move: the new residency is created with the rest
        current.updated_at = self.vault.clock.now()
        self._moved[number] = current.id
        return None

    def _differences(self, row: Residency, a: Arrival) -> list[str]:
        """The facts the row gives (blank cells give none) that the residency has otherwise."""
        store = self.vault.residents
        given = {"jurisdiction_code": a.place.jurisdiction_code, "address": a.place.address,
                 "left_on": a.left_on, **{f.name: getattr(a.facts, f.name) for f in fields(Facts)}}
        differs = []
        for name in COMPARED:
            if given[name] is None:
                continue
            if name in ("jurisdiction_code", "left_on"):
                stored = getattr(row, name)
            elif name == "address":
                stored = store.open(row, "address")
            else:
                stored = store._fact(row, name)
            if given[name] != stored:
                differs.append(name)
        return differs

    def _amend(self, row: Residency, a: Arrival) -> None:
        store = self.vault.residents
        store._apply(row, a.facts)
        if a.left_on is not None:
            row.left_on = a.left_on
        row.missing = ",".join(missing_facts(row))
        row.updated_at = self.vault.clock.now()
        self.vault.session.flush()

    # --- new residencies (and persons) -----------------------------------------------------

    def _create(self, rows: list[tuple[int, Arrival, uuid.UUID | None, bytes | None]]
                ) -> dict[int, Outcome]:
        """New residencies; rows without a person id (but with a digest) get a new person."""
        if not rows:
            return {}
        vault = self.vault
        now = vault.clock.now()
        keys = iter(vault.new_keys(len(rows) + sum(r[2] is None for r in rows)))
        persons, residencies, index, out = [], [], [], {}
        for number, a, person_id, digest in rows:
            if person_id is None:
                person_id, key_id = new_id(), next(keys)
                seal = vault.sealer(key_id)
                value = a.id_number.value
                persons.append({
                    "id": person_id, "key_id": key_id,
                    "id_bidx": vault.blind_index(PERSON_TABLE, "id_number", value),
                    "id_number": seal(PERSON_TABLE, "id_number", person_id, value),
                    "sex": seal(PERSON_TABLE, "sex", person_id, a.id_number.sex),
                    "birth_date": seal(PERSON_TABLE, "birth_date", person_id,
                                       a.id_number.birth_date.isoformat()),
                    "created_at": now, "updated_at": now})
                index.append({"digest": digest, "person_id": person_id,
                              "first_row": number.to_bytes(8, "big")})
            residencies.append(self._residency(a, person_id, next(keys), now))
            refs = [f"resident:{residencies[-1]['id']}", f"person:{person_id}"]
            moved_from = self._moved.pop(number, None)
            if moved_from is None:
                out[number] = Outcome("imported", refs)
            else:
                out[number] = Outcome("updated", [*refs, f"resident:{moved_from}"])
        session = vault.session
        session.flush()  # moves and amendments first
        if persons:
            insert_many(session, Person.__table__, persons)
        insert_many(session, Residency.__table__, residencies)
        insert_many(session, _TEMP, index)
        return out

    def _residency(self, a: Arrival, person_id: uuid.UUID, key_id: uuid.UUID, now) -> dict:
        vault = self.vault
        sealer = vault.sealer(key_id)
        row_id, code, facts = new_id(), a.place.jurisdiction_code, a.facts
        table = Residency.__tablename__

        def seal(column: str, value: str | None):
            return None if value is None else sealer(table, column, row_id, value)

        row = {
            "id": row_id, "key_id": key_id, "person_id": person_id, "jurisdiction_code": code,
            "rental_id": None, "arrived_on": a.arrived_on, "registered_on": a.registered_on,
            "left_on": a.left_on, "reason": (facts.reason or Reason.other).value,
            "name": seal("name", a.name), "address": seal("address", a.place.address),
            "phone_bidx": (vault.blind_index(table, "phone", facts.phone)
                           if facts.phone is not None else None),
            "permit_issued_on": facts.permit_issued_on,
            "permit_endorsed_on": facts.permit_endorsed_on,
            "late": registered_late(a.arrived_on, a.registered_on, self._deadlines[code]),
            "created_by": vault.actor.id, "created_at": now, "updated_at": now,
        }
        for column in SEALED_FACTS:
            row[column] = seal(column, getattr(facts, column))
        row["missing"] = ",".join(missing_facts(_Facts(row)))
        return row


class _Facts:
    """A row dict seen as the attributes :func:`missing_facts` reads."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)

