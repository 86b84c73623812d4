"""The auditors' queries. Auditors see events — who, what kind, which record ids and field
names — never personal data; their own queries are audit events too. Each sees the events of
their own area (the event's jurisdiction code in their subtree).

The workbench reports (disclosure, one user's activity, denials, exports, anomalies) answer
one :class:`AuditReport` shape, so one CSV/XLSX writer serves them all. "Who has seen this
person" looks the person's records up in ``audit_ref`` — one row per record an event touches,
written with the event — rather than scanning every event's ``refs`` text: an index lookup
on a log of millions of events, where a ``LIKE '%id%'`` reads them all."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import and_, false, func, or_, select

from registry.audit.schemas import (
    AnomalyItem,
    AnomalyReport,
    AuditReport,
    AuditRow,
    DisclosureQuery,
    EventFilter,
    EventRead,
    Format,
    Period,
    ReviewRead,
    UserGroup,
    VerificationRead,
)
from registry.errors import Invalid
from registry.models import (
    AnomalyReview,
    AuditCheckpoint,
    AuditEvent,
    AuditHead,
    AuditRef,
    UserAccount,
)
from registry.models._types import new_id
from registry.schemas import Page
from registry.security import audit
from registry.validation import parse_id_number
from registry.vault.anomalies import Detector, local_bounds, period_of, thresholds
from registry.vault.base import AUDIT, Kind, Store
from registry.vault.persons import NAME_SOURCES

# The actions that take data out of the registry (audit reports and checkpoints today).
EXPORT_ACTIONS = ("export",)
ANOMALY = Kind("audit", "anomaly report item", "异常报告条目")
REVIEW_TABLE = "audit_anomaly_review"


def _read(row: AuditEvent) -> EventRead:
    return EventRead(
        seq=row.seq, at=row.at, actor=row.actor, actor_id=row.actor_id, role=row.role,
        action=row.action, kind=row.kind, record_id=row.record_id,
        jurisdiction_code=row.jurisdiction_code,
        fields=[f for f in row.fields.split(",") if f], refs=[r for r in row.refs.split(",") if r],
        purpose=row.purpose, outcome=row.outcome, detail=row.detail,
        request_id=row.request_id, hash=row.hash,
    )


def _row(row: AuditEvent, touching: set[tuple[str, str]] = frozenset()) -> AuditRow:
    touched = audit.touched({"kind": row.kind, "record_id": row.record_id, "refs": row.refs})
    return AuditRow(
        seq=row.seq, at=row.at, actor=row.actor, role=row.role, action=row.action,
        kind=row.kind, record_id=row.record_id, jurisdiction_code=row.jurisdiction_code,
        fields=[f for f in row.fields.split(",") if f], purpose=row.purpose,
        outcome=row.outcome, detail=row.detail,
        touched=sorted(f"{kind}:{record_id}" for kind, record_id in touched & touching))


def _by_kind(records: set[tuple[str, str]]) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for kind, record_id in sorted(records):
        kinds.setdefault(kind, []).append(record_id)
    return kinds


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
        if query.record_id:  # the refs index holds the record each event names, too
            where.append(AuditEvent.seq.in_(select(AuditRef.seq).where(
                AuditRef.record_id == query.record_id)))
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

    # --- the workbench: reports over the log ------------------------------------------------

    def _scope(self) -> list:
        # An auditor sees the events of their own area; events tied to no area (the CLI
        # operator, sign-ins under unknown names) only a county-level auditor sees.
        scope = self.vault.actor.scope
        where = self.vault.scope_filter(AuditEvent.jurisdiction_code)
        if len(scope) <= 6:
            where = or_(where, AuditEvent.jurisdiction_code.is_(None))
        return [where]

    def period(self, start: date | None, end: date | None, *,
               default_days: int | None = 30) -> Period | None:
        """Whole local days, both included: by default the last ``default_days`` up to today
        (None: no period unless one is given); longer than the setting allows is a 422."""
        if start is None and end is None and default_days is None:
            return None
        longest = self.vault.settings.audit_report_max_days
        end = end or self.vault.clock.today()
        start = start or end - timedelta(days=(default_days or longest) - 1)
        if end < start:
            raise Invalid("must not be before 'from'", "不得早于起始日期", field="to")
        if (end - start).days + 1 > longest:
            raise Invalid(f"the period may cover at most {longest} days",
                          f"查询期间不得超过{longest}天", field="to")
        return Period(start=start, end=end)

    def _within(self, period: Period | None) -> list:
        if period is None:
            return []
        since, until = local_bounds(period, self.vault.clock.tz)
        return [AuditEvent.at >= since, AuditEvent.at < until]

    def _report(self, name: str, where: list, *, period: Period | None,
                subject: str | None = None, grouped: bool = False,
                touching: set[tuple[str, str]] = frozenset()) -> AuditReport:
        """The events matching ``where`` in the caller's area, newest first (at most the
        setting's number), with counts over all of them."""
        where = [*self._scope(), *self._within(period), *where]
        total = self.session.scalar(select(func.count()).select_from(AuditEvent).where(*where))
        counts = {}
        for column in ("action", "kind", "outcome", "actor"):
            col = getattr(AuditEvent, column)
            counts[column] = dict(self.session.execute(
                select(col, func.count()).where(*where).group_by(col).order_by(col)).all())
        limit = self.vault.settings.audit_report_max_events
        rows = self.session.scalars(select(AuditEvent).where(*where)
                                    .order_by(AuditEvent.seq.desc()).limit(limit)).all()
        groups = []
        if grouped:
            by_actor: dict[tuple[str, str], list[int]] = {}
            for row in rows:
                by_actor.setdefault((row.actor, row.role), []).append(row.seq)
            groups = [UserGroup(actor=actor, role=role, count=counts["actor"][actor],
                                seqs=seqs) for (actor, role), seqs in sorted(by_actor.items())]
        return AuditReport(report=name, subject=subject, period=period, total=total or 0,
                           truncated=(total or 0) > len(rows), counts=counts, groups=groups,
                           events=[_row(r, touching) for r in rows])

    def _answered(self, report: AuditReport, *, export: Format | None, action: str = "read",
                  refs: list[str] = (), record_id: object = None, detail: str = "") -> None:
        """The one audit event of an auditor's query: what was asked, how many events it
        showed and the head of the log then (the log only grows, so that says exactly what
        was shown); an export is an ``export``."""
        if export not in (None, Format.json):
            self.vault.require(AUDIT, "export")
            action, detail = "export", f"format={export};{detail}"
        head = self.session.scalar(select(AuditHead.seq).where(AuditHead.id == 1))
        period = (f"from={report.period.start};to={report.period.end};"
                  if report.period else "")
        self.vault.record(AUDIT, action, record_id=record_id, refs=refs, detail=(
            f"{detail}report={report.report};{period}total={report.total};head={head}"))

    def disclosure(self, query: DisclosureQuery, *,
                   export: Format | None = None) -> AuditReport:
        """Who has seen this person: every event in the caller's area touching the person
        or any of their records (the records they are the subject or landlord of), found in
        the refs index. A person known only by an ID number is found through the blind index
        here, inside the gate; the answer names the person's id only when the report shows
        something, so a number outside the caller's area answers as an unknown one."""
        self.vault.require(AUDIT, "disclosure")
        if (query.person_id is None) == (query.id_number is None):
            raise Invalid("give exactly one of person_id and id_number",
                          "须且只能提供 person_id 或 id_number 之一", field="person_id")
        period = self.period(query.start, query.end, default_days=None)
        person_id = query.person_id
        if query.id_number is not None:
            number = parse_id_number(query.id_number, today=self.vault.clock.today())
            person = self.vault.persons.find(number)
            person_id = person.id if person is not None else None
        records = self._records_of(person_id) if person_id is not None else set()
        where = [AuditEvent.seq.in_(select(AuditRef.seq).where(or_(*(
            and_(AuditRef.kind == kind, AuditRef.record_id.in_(ids))
            for kind, ids in _by_kind(records).items())))) if records else false()]
        report = self._report("disclosure", where, period=period, touching=records)
        if report.total:
            report.subject = f"person:{person_id}"
        by = "id_number" if query.id_number is not None else "person_id"
        self._answered(report, export=export, action="disclosure", detail=f"by={by};",
                       refs=[report.subject] if report.subject else [])
        return report

    def _records_of(self, person_id: uuid.UUID) -> set[tuple[str, str]]:
        """The person and every record about them, as (kind, id): ids only, nothing opened."""
        records = {("person", str(person_id))}
        for source in NAME_SOURCES:
            model = source.model
            records.update((source.kind.name, str(record_id)) for record_id in
                           self.session.scalars(select(model.id).where(
                               getattr(model, source.person) == person_id)))
        return records

    def activity(self, username: str, start: date | None = None, end: date | None = None, *,
                 export: Format | None = None) -> AuditReport:
        """One user's events in a period (those in the caller's area), with counts per
        action, kind and outcome."""
        self.vault.require(AUDIT, "read")
        period = self.period(start, end)
        user_id = self.session.scalar(select(UserAccount.id).where(
            UserAccount.username == username.strip().lower()))
        if user_id is None:
            raise Invalid("no account has this username", "无此用户名的账户", field="user")
        report = self._report("activity", [AuditEvent.actor_id == user_id], period=period,
                              subject=f"user:{username.strip().lower()}")
        self._answered(report, export=export, refs=[f"user:{user_id}"])
        return report

    def denied(self, start: date | None = None, end: date | None = None, *,
               export: Format | None = None) -> AuditReport:
        """Denied attempts in a period, grouped by user."""
        self.vault.require(AUDIT, "read")
        report = self._report("denied", [AuditEvent.outcome == "denied"],
                              period=self.period(start, end), grouped=True)
        self._answered(report, export=export)
        return report

    def exports(self, start: date | None = None, end: date | None = None, *,
                export: Format | None = None) -> AuditReport:
        """Who exported what, when: the ``export`` events (audit reports, checkpoints)."""
        self.vault.require(AUDIT, "read")
        report = self._report("exports", [AuditEvent.action.in_(EXPORT_ACTIONS)],
                              period=self.period(start, end))
        self._answered(report, export=export)
        return report

    def _anomalies(self, period: Period) -> AnomalyReport:
        since, until = local_bounds(period, self.vault.clock.tz)
        items = Detector(self.session, self.vault.settings, self.vault.clock.tz,
                         self._scope()).run(period, since, until)
        marks = {r.item_id: r for r in self.session.scalars(select(AnomalyReview).where(
            AnomalyReview.item_id.in_([i.id for i in items])))} if items else {}
        for item in items:
            if (mark := marks.get(item.id)) is not None:
                item.review = self._review_read(mark)
        return AnomalyReport(period=period, thresholds=thresholds(self.vault.settings),
                             items=items)

    def anomalies(self, start: date | None = None, end: date | None = None, *,
                  export: Format | None = None) -> AnomalyReport:
        """Users whose period looks wrong (see :mod:`registry.vault.anomalies`), each with
        the figures and events behind it and its review mark; by default the last 7 days."""
        self.vault.require(AUDIT, "read")
        report = self._anomalies(self.period(start, end, default_days=7))
        action = "export" if export not in (None, Format.json) else "read"
        if action == "export":
            self.vault.require(AUDIT, "export")
        self.vault.record(AUDIT, action,
                          refs=sorted({f"user:{i.actor_id}" for i in report.items}),
                          detail=";".join(filter(None, (
                              f"format={export}" if action == "export" else "",
                              f"report=anomalies;from={report.period.start};"
                              f"to={report.period.end};items={len(report.items)}"))))
        return report

    def review(self, item: str, note: str) -> AnomalyItem:
        """Mark an item of the anomaly report reviewed, with a note (sealed; marking again
        replaces it). An item the caller's report does not hold is a 404, audited."""
        self.vault.require(AUDIT, "review")
        period = period_of(item)
        found = None
        if period is not None and (period.end - period.start).days < \
                self.vault.settings.audit_report_max_days:
            found = next((i for i in self._anomalies(period).items if i.id == item), None)
        if found is None:
            raise self.vault.hide(ANOMALY, "review", item[:64])
        mark = self.session.scalar(select(AnomalyReview).where(AnomalyReview.item_id == item))
        if mark is None:
            mark = AnomalyReview(id=new_id(), item_id=item, key_id=self.vault.new_key())
            self.session.add(mark)
        mark.note = self.vault.seal(mark.key_id, REVIEW_TABLE, "note", mark.id, note)
        mark.reviewed_by = self.vault.actor.username
        mark.reviewed_at = self.vault.clock.now()
        self.session.flush()
        found.review = self._review_read(mark)
        self.vault.record(ANOMALY, "review", record_id=item, refs=[f"user:{found.actor_id}"],
                          fields=["note"], detail=f"rule={found.rule}")
        return found

    def _review_read(self, mark: AnomalyReview) -> ReviewRead:
        return ReviewRead(note=self.vault.open(mark.note, REVIEW_TABLE, "note", mark.id),
                          reviewed_by=mark.reviewed_by, reviewed_at=mark.reviewed_at)

    def last_checkpoint(self) -> audit.Note | None:
        """The latest stored signed checkpoint (sequence, time), to show beside the chain's
        status: a read of the audit chain, not an export of its checkpoints."""
        self.vault.require(AUDIT, "read")
        row = self.session.scalars(select(AuditCheckpoint)
                                   .order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
        self.vault.record(AUDIT, "read", detail="checkpoint=last"
                          + (f";seq={row.seq}" if row is not None else ""))
        return None if row is None else audit.Note(row.seq, row.hash, row.at, row.public_key,
                                                   row.signature)
