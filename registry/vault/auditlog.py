"""The auditors' queries. Auditors see events — who, what kind, which record ids and field
names — never personal data; their own queries are audit events too."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from registry.audit.schemas import EventFilter, EventRead, VerificationRead
from registry.models import AuditEvent
from registry.schemas import Page
from registry.security import audit
from registry.vault.base import AUDIT, Store


def _read(row: AuditEvent) -> EventRead:
    return EventRead(
        seq=row.seq, at=row.at, actor=row.actor, actor_id=row.actor_id, role=row.role,
        action=row.action, kind=row.kind, record_id=row.record_id,
        jurisdiction_code=row.jurisdiction_code,
        fields=[f for f in row.fields.split(",") if f], refs=[r for r in row.refs.split(",") if r],
        purpose=row.purpose, outcome=row.outcome, detail=row.detail,
        request_id=row.request_id, hash=row.hash,
    )


class AuditStore(Store):
    def events(self, query: EventFilter, *, page: int, page_size: int) -> Page[EventRead]:
        self.vault.require(AUDIT, "read")
        # An auditor sees the events of their own area; events tied to no area (the CLI
        # operator, sign-ins under unknown names) only a county-level auditor sees.
        scope = self.vault.actor.scope
        where = [self.vault.scope_filter(AuditEvent.jurisdiction_code)]
        if len(scope) <= 6:
            where = [or_(where[0], AuditEvent.jurisdiction_code.is_(None))]
        if query.actor:
            where.append(AuditEvent.actor == query.actor)
        if query.kind:
            where.append(AuditEvent.kind == query.kind)
        if query.outcome:
            where.append(AuditEvent.outcome == query.outcome)
        if query.record_id:
            where.append(or_(AuditEvent.record_id == query.record_id,
                             AuditEvent.refs.contains(query.record_id, autoescape=True)))
        if query.since:
            where.append(AuditEvent.at >= query.since)
        if query.until:
            where.append(AuditEvent.at < query.until)
        total = self.session.scalar(select(func.count()).select_from(AuditEvent).where(*where))
        rows = self.session.scalars(
            select(AuditEvent).where(*where).order_by(AuditEvent.seq.desc())
            .offset((page - 1) * page_size).limit(page_size)
        ).all()
        self.vault.record(AUDIT, "read", detail=query.model_dump_json(exclude_none=True),
                          refs=[f"audit:{r.seq}" for r in rows])
        return Page(items=[_read(r) for r in rows], total=total or 0, page=page,
                    page_size=page_size)

    def verify(self, kept: list[audit.Note] = ()) -> VerificationRead:
        """Walk the chain, and hold it against the signed checkpoints — the stored ones and
        ``kept`` ones from outside — which must carry this registry's key."""
        self.vault.require(AUDIT, "verify")
        result = audit.verify(self.session)
        stored = audit.stored_notes(self.session)
        problems = audit.check_notes(self.session, [*stored, *kept],
                                     trusted=self.vault.registry.checkpoints.public_key)
        ok = result.ok and not problems
        detail = ";".join([result.describe(), f"checkpoints={len(stored) + len(kept)}",
                           *problems])
        self.vault.record(AUDIT, "verify", outcome="ok" if ok else "broken", detail=detail)
        return VerificationRead(ok=ok, checked=result.checked, head_seq=result.head_seq,
                                broken_seq=result.broken_seq, reason=result.reason,
                                checkpoints=len(stored) + len(kept),
                                checkpoint_problems=problems)

    def checkpoints(self) -> list[audit.Note]:
        """The stored checkpoints, to export; the export is itself an audit event."""
        self.vault.require(AUDIT, "verify")
        notes = audit.stored_notes(self.session)
        self.vault.record(AUDIT, "export", detail=f"checkpoints={len(notes)}")
        return notes
