"""Exceptions to scope, inside the gate: break-glass grants and restricted persons.

* **Restricted persons.** A person may be limited to named users (a witness, a staff member's
  relative, a public figure). Every record of theirs — residencies, rentals they let, cases —
  then answers 404 to everyone else, exactly as an absent record: :meth:`Store.load` asks
  :meth:`AccessStore.sees`, and every list and search adds :meth:`AccessStore.unrestricted`
  to its SQL (a ``NOT EXISTS`` on ``person_restriction``), so no route can forget it. A role
  granted ``person, bypass-restriction`` sees them, and each such read is flagged in its audit
  event (``restriction-bypass``). Metrics count them (aggregates name no one).
* **Break-glass.** An officer whose role may read a kind, and holds ``break-glass`` on it, may
  open one record outside their scope by stating a reason. The grant is read only, lasts
  ``break_glass_minutes``, widens no list or search, and waits in the auditors' queue until
  signed off; opening it and every read under it are audited with ``break-glass=<grant>`` in
  the detail. Only the single-record read (:meth:`Store.get`) honours a grant, so no write
  path can. A restricted person's record stays closed unless the role may also bypass.
  The officer's reason and the reviewer's note are free text (a name may be typed in them):
  sealed under the grant's own data key, opened only for the queue and the answers, and every
  read of them is in an audit event's fields. Grants from before sealing are sealed at
  start-up (:func:`seal_legacy_grants`).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, true
from sqlalchemy.orm import Session

from registry.breakglass.schemas import GrantKind, GrantRead, QueueStatus
from registry.errors import Conflict, Invalid
from registry.models import (
    BreakGlassGrant,
    CorrectionsCase,
    Person,
    PersonRestriction,
    ReleaseCase,
    RentalProperty,
    Residency,
    UserAccount,
)
from registry.models._types import new_id
from registry.persons.schemas import RestrictionRead
from registry.schemas import Page
from registry.security import audit
from registry.security.keys import Keyring
from registry.vault.base import BREAK_GLASS, CORRECTIONS, PERSON, RELEASE, RENTAL, RESIDENT, Store

KINDS = {k.name: k for k in (RENTAL, RESIDENT, CORRECTIONS, RELEASE)}
# Where each register names the person its records are about.
PERSON_OF = {RENTAL: RentalProperty.landlord_id, RESIDENT: Residency.person_id,
             CORRECTIONS: CorrectionsCase.person_id, RELEASE: ReleaseCase.person_id}
BYPASS = "bypass-restriction"
GRANT_TABLE = BreakGlassGrant.__tablename__
GRANT_TEXT = ("reason", "review_note")  # the sealed free-text columns of a grant


class AccessStore(Store):
    kind = PERSON

    # --- restricted persons: what every read asks ------------------------------------------

    @property
    def bypasses(self) -> bool:
        return self.vault.allowed(PERSON, BYPASS)

    def unrestricted(self, person_column) -> ColumnElement[bool]:
        """SQL: the rows whose person the caller may see — not restricted, or restricted with
        the caller on the list (a role that bypasses sees all; :meth:`bypassed` flags them)."""
        if self.bypasses:
            return true()
        r = PersonRestriction
        return or_(~exists().where(r.person_id == person_column),
                   exists().where(r.person_id == person_column,
                                  r.user_id == self.vault.actor.id))

    def sees(self, person_id: uuid.UUID, record_id: object = None) -> bool:
        """Whether the caller may see records of this person; a bypass flags ``record_id``'s
        audit events."""
        users = set(self.session.scalars(select(PersonRestriction.user_id).where(
            PersonRestriction.person_id == person_id)))
        if not users or self.vault.actor.id in users:
            return True
        if self.bypasses:
            if record_id is not None:
                self.vault.flag(record_id, "restriction-bypass")
            return True
        return False

    def bypassed(self, person_ids) -> str:
        """For a list's audit event: ``restriction-bypass=person:…`` naming the restricted
        persons it shows only by the role's bypass (empty when none)."""
        if not self.bypasses:
            return ""
        hidden = sorted(str(p) for p in self._not_listed(person_ids))
        return "restriction-bypass=" + ",".join(f"person:{p}" for p in hidden) if hidden else ""

    def hidden_persons(self, person_ids) -> set[uuid.UUID]:
        """The persons among these whose records the caller may not see (the importers)."""
        return set() if self.bypasses else self._not_listed(person_ids)

    def _not_listed(self, person_ids) -> set[uuid.UUID]:
        """The restricted persons among these whose list does not name the caller."""
        ids = set(person_ids)
        if not ids:
            return set()
        r = PersonRestriction
        rows = self.session.execute(select(r.person_id, r.user_id).where(
            r.person_id.in_(ids))).all()
        return {p for p, _ in rows} - {p for p, u in rows if u == self.vault.actor.id}

    # --- restricted persons: setting and lifting -------------------------------------------

    def _person(self, person_id: uuid.UUID, action: str) -> Person:
        """The person, if the caller may see a record of theirs in a register their role
        reads, in scope (restriction permitting); else 404. Lacking the right: 403."""
        vault = self.vault
        person = self.session.get(Person, person_id)
        seen = person is not None and any(
            self.session.scalar(select(column).where(
                column == person_id,
                vault.scope_filter(column.class_.jurisdiction_code)).limit(1)) is not None
            for kind, column in PERSON_OF.items() if vault.allowed(kind, "read"))
        if not seen or not self.sees(person_id):
            raise vault.hide(PERSON, action, person_id)
        if not vault.allowed(PERSON, "restrict"):
            raise vault.forbid(PERSON, action, person_id)
        return person

    def restriction(self, person_id: uuid.UUID) -> RestrictionRead:
        self._person(person_id, "read")
        read = self._read(person_id)
        self.vault.record(PERSON, "read", record_id=person_id, refs=[f"person:{person_id}"],
                          fields=["restriction"])
        return read

    def restrict(self, person_id: uuid.UUID, usernames: list[str]) -> RestrictionRead:
        """Limit the person's records to these users and the caller (replacing any list)."""
        vault = self.vault
        self._person(person_id, "restrict")
        wanted = [u.strip().lower() for u in usernames]
        found = dict(self.session.execute(select(UserAccount.username, UserAccount.id).where(
            UserAccount.username.in_(set(wanted)))).all())
        if unknown := [str(i) for i, u in enumerate(wanted) if u not in found]:
            raise Invalid(f"no such user at position {', '.join(unknown)}",
                          f"第{'、'.join(unknown)}项用户不存在（从0起计）", field="users")
        users = set(found.values()) | {vault.actor.id}
        self.session.execute(delete(PersonRestriction).where(
            PersonRestriction.person_id == person_id))
        now = vault.clock.now()
        self.session.add_all(PersonRestriction(person_id=person_id, user_id=u,
                                               set_by=vault.actor.id, set_at=now)
                             for u in users)
        self.session.flush()
        read = self._read(person_id)
        vault.record(PERSON, "restrict", record_id=person_id, refs=[f"person:{person_id}"],
                     fields=["restriction"], detail="users=" + ",".join(read.users))
        return read

    def lift(self, person_id: uuid.UUID) -> RestrictionRead:
        self._person(person_id, "lift")
        lifted = self.session.execute(delete(PersonRestriction).where(
            PersonRestriction.person_id == person_id)).rowcount
        self.vault.record(PERSON, "lift", record_id=person_id, refs=[f"person:{person_id}"],
                          fields=["restriction"], detail="lifted" if lifted else "unrestricted")
        return RestrictionRead(person_id=person_id, restricted=False)

    def _read(self, person_id: uuid.UUID) -> RestrictionRead:
        rows = self.session.execute(
            select(UserAccount.username, PersonRestriction.set_at)
            .join(UserAccount, UserAccount.id == PersonRestriction.user_id)
            .where(PersonRestriction.person_id == person_id)
            .order_by(UserAccount.username)).all()
        return RestrictionRead(person_id=person_id, restricted=bool(rows),
                               users=[u for u, _ in rows],
                               set_at=max((t for _, t in rows), default=None))

    # --- break-glass -----------------------------------------------------------------------

    def live_grant(self, kind, record_id: uuid.UUID) -> uuid.UUID | None:
        """The caller's grant on this record that has not expired, if any."""
        g = BreakGlassGrant
        return self.session.scalar(select(g.id).where(
            g.user_id == self.vault.actor.id, g.kind == kind.name, g.record_id == record_id,
            g.expires_at > self.vault.clock.now()).order_by(g.expires_at.desc()).limit(1))

    def open_grant(self, *, kind: GrantKind, record_id: uuid.UUID, reason: str) -> GrantRead:
        vault = self.vault
        target = KINDS[kind.value]
        if not (vault.allowed(target, "break-glass") and vault.allowed(target, "read")):
            raise vault.forbid(target, "break-glass", record_id)
        reason = reason.strip()
        least = vault.settings.break_glass_reason_min_length
        if len(reason) < least:
            raise Invalid(f"state the reason in at least {least} characters",
                          f"须说明理由，至少{least}个字符", field="reason")
        model = PERSON_OF[target].class_
        row = self.session.get(model, record_id)
        person_id = getattr(row, PERSON_OF[target].key) if row is not None else None
        if row is None or not self.sees(person_id, record_id):
            raise vault.hide(target, "break-glass", record_id)
        now = vault.clock.now()
        grant = BreakGlassGrant(
            id=new_id(), user_id=vault.actor.id, officer_scope=vault.actor.scope,
            kind=target.name, record_id=row.id, jurisdiction_code=row.jurisdiction_code,
            key_id=vault.new_key(), opened_at=now,
            expires_at=now + timedelta(minutes=vault.settings.break_glass_minutes))
        grant.reason = vault.seal(grant.key_id, GRANT_TABLE, "reason", grant.id, reason)
        self.session.add(grant)
        self.session.flush()
        vault.record(target, "break-glass", record_id=row.id, code=row.jurisdiction_code,
                     refs=[f"{target.name}:{row.id}", f"person:{person_id}",
                           f"break-glass:{grant.id}"], fields=["reason"],
                     detail=f"break-glass={grant.id};expires_at={grant.expires_at.isoformat()}")
        return self._grant(grant)

    def queue(self, *, status: QueueStatus, page: int, page_size: int) -> Page[GrantRead]:
        """The grants of the auditor's area (the record's, or the officer's), newest first."""
        vault = self.vault
        vault.require(BREAK_GLASS, "list")
        g = BreakGlassGrant
        where = [or_(vault.scope_filter(g.jurisdiction_code), vault.scope_filter(g.officer_scope))]
        if status is QueueStatus.pending:
            where.append(g.reviewed_at.is_(None))
        elif status is QueueStatus.reviewed:
            where.append(g.reviewed_at.is_not(None))
        total = self.session.scalar(select(func.count()).select_from(g).where(*where)) or 0
        rows = self.session.scalars(select(g).where(*where)
                                    .order_by(g.opened_at.desc(), g.id.desc())
                                    .offset((page - 1) * page_size).limit(page_size)).all()
        vault.load_keys({r.key_id for r in rows if r.key_id is not None})
        vault.record(BREAK_GLASS, "list", refs=[f"break-glass:{r.id}" for r in rows],
                     fields=list(GRANT_TEXT) if rows else [],
                     detail=f"status={status.value};page={page};total={total}")
        return Page(items=[self._grant(r) for r in rows], total=total, page=page,
                    page_size=page_size)

    def review(self, grant_id: uuid.UUID, *, note: str) -> GrantRead:
        """Sign a grant off (once), as an auditor of its record's or officer's area."""
        vault = self.vault
        if not vault.allowed(BREAK_GLASS, "review"):
            raise vault.forbid(BREAK_GLASS, "review", grant_id)
        grant = self.session.get(BreakGlassGrant, grant_id)
        if grant is None or not (vault.visible(BREAK_GLASS, "review", grant.jurisdiction_code)
                                 or vault.visible(BREAK_GLASS, "review", grant.officer_scope)):
            raise vault.hide(BREAK_GLASS, "review", grant_id)
        if grant.reviewed_at is not None:
            raise Conflict("this grant has already been reviewed", "该授权已审核",
                           field="grant_id")
        grant.reviewed_at = vault.clock.now()
        grant.reviewed_by = vault.actor.id
        grant.review_note = vault.seal(grant.key_id, GRANT_TABLE, "review_note", grant.id,
                                       note.strip())
        self.session.flush()
        vault.record(BREAK_GLASS, "review", record_id=grant.id, code=grant.jurisdiction_code,
                     refs=[f"break-glass:{grant.id}", f"{grant.kind}:{grant.record_id}"],
                     fields=["review_note"], detail="signed-off;shown=reason,review_note")
        return self._grant(grant)

    def _grant(self, grant: BreakGlassGrant) -> GrantRead:
        """The grant as its reader sees it, reason and note opened (the caller's audit event
        names them in its fields)."""
        return GrantRead(
            id=grant.id, kind=grant.kind, record_id=grant.record_id,
            jurisdiction_code=grant.jurisdiction_code, officer_id=grant.user_id,
            officer_scope=grant.officer_scope, reason=self._text(grant, "reason") or "",
            opened_at=grant.opened_at, expires_at=grant.expires_at,
            live=grant.expires_at > self.vault.clock.now(), reviewed_at=grant.reviewed_at,
            reviewed_by=grant.reviewed_by, review_note=self._text(grant, "review_note"))

    def _text(self, grant: BreakGlassGrant, column: str) -> str | None:
        if grant.key_id is None:  # not sealed yet: only between a migration and a start-up
            return getattr(grant, f"legacy_{column}")
        return self.vault.open(getattr(grant, column), GRANT_TABLE, column, grant.id)


def seal_legacy_grants(session: Session, keyring: Keyring,
                       checkpoints: audit.Checkpointer | None = None) -> int:
    """Seal the clear reasons and review notes of grants opened before they were sealed
    (the migration moved them to ``legacy_*``; a migration holds no key provider): each
    grant gets its data key, its text is sealed and the clear columns emptied, with one audit
    event naming the grants — in the caller's transaction, at start-up. Idempotent: a
    sealed grant has a key; rows are locked, so two processes starting at once seal each
    grant once. Returns how many were sealed."""
    rows = session.scalars(select(BreakGlassGrant).where(BreakGlassGrant.key_id.is_(None))
                           .order_by(BreakGlassGrant.id).with_for_update()).all()
    if not rows:
        return 0
    cache: dict[uuid.UUID, bytes] = {}
    for grant in rows:
        grant.key_id = keyring.new_data_key(session, cache)
        for column in GRANT_TEXT:
            clear = getattr(grant, f"legacy_{column}")
            if column == "reason" and clear is None:
                clear = ""
            setattr(grant, column, None if clear is None else keyring.seal(
                grant.key_id, cache[grant.key_id], GRANT_TABLE, column, grant.id, clear))
            setattr(grant, f"legacy_{column}", None)
    session.flush()
    audit.append(session, [audit.Event(
        actor_id=None, actor="system:start-up", role="system", action="seal",
        kind=BREAK_GLASS.name, fields=list(GRANT_TEXT),
        refs=[f"break-glass:{g.id}" for g in rows],
        detail=f"sealed the clear reasons and notes of {len(rows)} break-glass grants")],
        checkpoints=checkpoints)
    return len(rows)

