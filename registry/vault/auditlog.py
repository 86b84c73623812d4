"""The auditors' queries. Auditors see events — who, what kind, which record ids and field
names — never personal data; their own queries are audit events too. Each sees the events of
their own area (the event's jurisdiction code in their subtree).

The workbench reports (disclosure, one user's activity, denials, exports, anomalies) answer
one :class:`AuditReport` shape, so one CSV/XLSX writer serves them all. "Who has seen this
person" looks the person's records up in ``audit_ref`` — one row per record an event touches,
written with the event — rather than scanning every event's ``refs`` text: an index lookup
on a log of millions of events, where a ``LIKE '%id%'`` reads them all."""

from __future__ import annotations

import calendar
import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import and_, delete, false, func, or_, select
from sqlalchemy.exc import DBAPIError

from registry.audit.schemas import (
    AnomalyItem,
    AnomalyReport,
    ArchivedSegment,
    ArchivePlan,
    ArchiveRead,
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
from registry.errors import Conflict, Invalid, SetupError
from registry.models import (
    AnomalyReview,
    AuditAnchor,
    AuditCheckpoint,
    AuditEvent,
    AuditHead,
    AuditRef,
    UserAccount,
)
from registry.models._types import new_id
from registry.schemas import Page
from registry.security import audit, auditarchive
from registry.validation import parse_id_number
from registry.vault.anomalies import Detector, local_bounds, period_of, thresholds
from registry.vault.base import AUDIT, Kind, Store
from registry.vault.persons import NAME_SOURCES

# The actions that take data out of the registry (audit reports and checkpoints today).
EXPORT_ACTIONS = ("export",)
ANOMALY = Kind("audit", "anomaly report item", "异常报告条目")
REVIEW_TABLE = "audit_anomaly_review"


def audit_cutoff(today: date, months: int) -> datetime:
    """The start of the day ``months`` calendar months before ``today`` (UTC): events before
    it are past their online period."""
    month = today.year * 12 + today.month - 1 - months
    year, month = divmod(month, 12)
    day = min(today.day, calendar.monthrange(year, month + 1)[1])
    return datetime.combine(date(year, month + 1, day), time(), tzinfo=UTC)


@contextmanager
def _writing(directory: Path) -> Iterator[None]:
    """One archive run at a time writes into ``directory`` (two would write the same partial
    file); another database's run is stopped by the anchors' trigger instead."""
    fd = os.open(directory / ".archive.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"another archive run is writing into {directory}: wait for it",
                           f"另一个归档进程正在写入 {directory}：请等待其完成") from None
        yield
    finally:
        os.close(fd)


def _broken(seq: int) -> Conflict:
    return Conflict(f"the audit chain does not verify at event {seq}: run `registry audit "
                    "verify`; nothing was archived",
                    f"审计链在事件 {seq} 处校验失败：请运行 `registry audit verify`；"
                    "未归档任何事件")


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

    def verify(self, kept: list[audit.Note] = (),
               archives: list[Path] = ()) -> VerificationRead:
        """Walk the online chain, and hold it against the signed checkpoints — the stored ones
        and ``kept`` ones from outside — which must carry this registry's key. Archive files
        given are walked too, each must join the chain where an anchor says it ends (and
        begin where the one before it ended), and the checkpoints on archived events are held
        against them."""
        self.vault.require(AUDIT, "verify")
        result = audit.verify(self.session)
        stored = audit.stored_notes(self.session)
        notes = [*stored, *kept]
        trusted = self.vault.registry.checkpoints.public_key
        segments, archive_problems = self._archives(archives, trusted, {n.seq for n in notes})
        hashes = {seq: h for segment in segments for seq, h in segment.hashes.items()}
        problems = audit.check_notes(self.session, notes, trusted=trusted,
                                     archived_hashes=hashes)
        ok = result.ok and not problems and not archive_problems
        checked = [ArchivedSegment(first_seq=g.manifest.first_seq, last_seq=g.manifest.last_seq,
                                   file=g.path.name) for g in segments]
        detail = ";".join([result.describe(), f"checkpoints={len(notes)}",
                           *(f"archive={a.file}:{a.first_seq}..{a.last_seq}" for a in checked),
                           *problems, *archive_problems])
        self.vault.record(AUDIT, "verify", outcome="ok" if ok else "broken", detail=detail)
        return VerificationRead(
            ok=ok, checked=result.checked, head_seq=result.head_seq,
            broken_seq=result.broken_seq, reason=result.reason, checkpoints=len(notes),
            checkpoint_problems=problems, first_seq=result.first_seq,
            archived=[ArchivedSegment(first_seq=a.first_seq, last_seq=a.last_seq, file=a.file)
                      for a in result.archived],
            archives_checked=checked, archive_problems=archive_problems)

    def _archives(self, paths: list[Path], trusted: str, want: set[int]
                  ) -> tuple[list[auditarchive.Segment], list[str]]:
        """The archive files that check out and join the chain, and what is wrong with the
        others: each must end where an anchor starts the chain after it, with the anchor's
        hash, and start at event 1 or where the anchor before it ended."""
        anchors = {a.seq: a for a in audit.anchors(self.session)}
        segments, problems = [], []
        for path in paths:
            try:
                segment = auditarchive.read(path, self.vault.registry.keyring, trusted=trusted,
                                            want=want)
            except SetupError as exc:
                problems.append(exc.message)
                continue
            m = segment.manifest
            after, before = anchors.get(m.last_seq + 1), anchors.get(m.first_seq)
            if after is None or after.prev_hash != m.last_hash:
                problems.append(f"audit archive {path}: does not join the online chain: no "
                                f"anchor starts the chain at event {m.last_seq + 1} with its "
                                "last hash (an archive of another log, or the anchors were "
                                "altered)")
            elif not ((m.first_seq == 1 and m.prev_hash == audit.GENESIS_HASH) or (
                    before is not None and before.prev_hash == m.prev_hash)):
                problems.append(f"audit archive {path}: its first event {m.first_seq} does "
                                "not follow the archive before it")
            else:
                segments.append(segment)
        return segments, problems

    def checkpoints(self) -> list[audit.Note]:
        """The stored checkpoints, to export; the export is itself an audit event."""
        self.vault.require(AUDIT, "verify")
        notes = audit.stored_notes(self.session)
        self.vault.record(AUDIT, "export", detail=f"checkpoints={len(notes)}")
        return notes

    # --- archiving events past their online period ------------------------------------------

    def archive_plan(self, today: date) -> ArchivePlan:
        """What an archive would move on ``today`` (nothing is written; no audit event: the
        caller's command records its own)."""
        self.vault.require(AUDIT, "archive")
        return self._plan(today)

    def _plan(self, today: date) -> ArchivePlan:
        cutoff = audit_cutoff(today, self.vault.settings.retention_audit_months)
        session = self.session
        segments = audit.archived(session)
        start = segments[-1].last_seq + 1 if segments else 1
        past = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.at < cutoff)) or 0
        young = session.scalar(select(func.min(AuditEvent.seq)).where(
            AuditEvent.seq >= start, AuditEvent.at >= cutoff))
        # The boundary: the last checkpoint of this registry's key, on the chain as it stands,
        # with every event up to it past the cutoff.
        where = [AuditCheckpoint.seq >= start] + (
            [AuditCheckpoint.seq < young] if young is not None else [])
        trusted = self.vault.registry.checkpoints.public_key
        last = None
        for row in session.scalars(select(AuditCheckpoint).where(*where)
                                   .order_by(AuditCheckpoint.seq.desc()).limit(20)):
            note = audit.Note(row.seq, row.hash, row.at, row.public_key, row.signature)
            if note.public_key == trusted and note.valid() and session.scalar(
                    select(AuditEvent.hash).where(AuditEvent.seq == row.seq)) == row.hash:
                last = row.seq
                break
        plan = ArchivePlan(cutoff=cutoff, past=past, first_seq=start, last_seq=last)
        if last is not None:
            plan.first_at, plan.last_at = (session.scalar(select(AuditEvent.at).where(
                AuditEvent.seq == seq)) for seq in (start, last))
        return plan

    def archive(self, today: date, directory: Path) -> ArchiveRead | None:
        """Move the events the plan names into an archive file in ``directory``, then delete
        them and their refs, leaving an anchor, in one transaction that the caller commits
        (with this operation's audit event). The reads before it end their transactions as they
        go: archived events never change, and on SQLite no write lock is held while the file is
        written.

        The file is written (hidden while partial), fsynced, renamed into place and read back
        in full before anything is deleted; a file a stopped run left (complete, for a segment
        starting here and ending at a checkpoint still on the chain) is taken up instead of
        written again. So a crash leaves nothing deleted, or the whole archive on disk: run it
        again. None when nothing is due."""
        self.vault.require(AUDIT, "archive")
        plan = self._plan(today)
        if plan.last_seq is None:
            return None
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        keyring = self.vault.registry.keyring
        trusted = self.vault.registry.checkpoints.public_key
        with _writing(directory):
            segment = self._left_over(directory, plan, trusted)
            reused = segment is not None
            if segment is None:
                path = directory / auditarchive.file_name(plan.first_seq, plan.last_seq)
                row = self.session.get(AuditCheckpoint, plan.last_seq)
                note = audit.Note(row.seq, row.hash, row.at, row.public_key, row.signature)
                prev = self._prev_hash(plan.first_seq)
                manifest = auditarchive.new_manifest(
                    keyring, first_seq=plan.first_seq, last_seq=plan.last_seq,
                    first_at=plan.first_at, last_at=plan.last_at, prev_hash=prev, note=note)
                auditarchive.write(path, manifest, keyring, self._segment(
                    plan.first_seq, plan.last_seq, prev, note.hash))
                segment = auditarchive.read(path, keyring, trusted=trusted)  # all of it, again
        m = segment.manifest
        self._delete_before(m, segment.path.name)
        self.vault.record(AUDIT, "archive", record_id=m.archive_id, detail=(
            f"events={m.first_seq}..{m.last_seq};first_at={m.first_at};last_at={m.last_at};"
            f"checkpoint={m.last_seq};file={segment.path.name};cutoff={plan.cutoff.date()}"
            f"{';reused' if reused else ''}"))
        return ArchiveRead(archive_id=m.archive_id, file=str(segment.path),
                           first_seq=m.first_seq, last_seq=m.last_seq, events=m.events,
                           first_at=datetime.fromisoformat(m.first_at).replace(tzinfo=UTC),
                           last_at=datetime.fromisoformat(m.last_at).replace(tzinfo=UTC),
                           reused=reused)

    def _prev_hash(self, first_seq: int) -> str:
        if first_seq == 1:
            return audit.GENESIS_HASH
        return self.session.scalar(select(AuditAnchor.prev_hash).where(
            AuditAnchor.seq == first_seq))

    def _left_over(self, directory: Path, plan: ArchivePlan,
                   trusted: str) -> auditarchive.Segment | None:
        """A complete archive file an earlier run wrote for a segment starting where the chain
        now starts, at a checkpoint it still holds, within the plan — its delete never
        committed. Files that do not check out are left alone (and written over when their
        name comes up)."""
        pattern = auditarchive.file_name(plan.first_seq, 0).replace(
            f"{0:012d}{auditarchive.SUFFIX}", f"*{auditarchive.SUFFIX}")
        prev = self._prev_hash(plan.first_seq)
        for path in sorted(directory.glob(pattern), reverse=True):
            self.session.rollback()  # no transaction (SQLite: no write lock) while reading files
            try:
                segment = auditarchive.read(path, self.vault.registry.keyring, trusted=trusted)
            except SetupError:
                continue
            m = segment.manifest
            held = self.session.scalar(select(AuditCheckpoint.hash).where(
                AuditCheckpoint.seq == m.last_seq))
            if (m.first_seq == plan.first_seq and m.last_seq <= plan.last_seq
                    and m.prev_hash == prev and held == m.last_hash
                    and self.session.scalar(select(AuditEvent.hash).where(
                        AuditEvent.seq == m.last_seq)) == m.last_hash):
                return segment
        return None

    def _segment(self, first: int, last: int, prev: str, boundary: str) -> Iterator[tuple]:
        """The events ``first``..``last`` as the archive holds them, each checked against the
        one before it on the way: a broken chain is not archived."""
        connection = self.session.connection()
        expected = first
        while expected <= last:
            rows = connection.execute(
                select(*audit.WALKED_COLUMNS).where(AuditEvent.seq >= expected,
                                                    AuditEvent.seq <= last)
                .order_by(AuditEvent.seq).limit(5000)).all()
            # Archived events never change, so no snapshot is needed across chunks: each
            # read ends its transaction, and writers (SQLite's lock) wait for no file.
            self.session.rollback()
            for row in rows:
                if row[0] != expected or row[15] != prev or audit.walked_hash(prev, row) \
                        != row[16]:
                    raise _broken(expected)
                prev = row[16]
                expected += 1
                yield tuple(row)
            if not rows:
                raise _broken(expected)
        if prev != boundary:
            raise _broken(last)

    def _delete_before(self, manifest: auditarchive.ArchiveManifest, file: str) -> None:
        """The anchor first — the database lets events below the newest anchor go, and
        nothing else — then the refs and the events, all of them or nothing."""
        seq = manifest.last_seq + 1
        session = self.session
        try:
            session.add(AuditAnchor(
                seq=seq, prev_hash=manifest.last_hash, checkpoint_seq=manifest.last_seq,
                first_seq=manifest.first_seq, archive_id=uuid.UUID(manifest.archive_id),
                archive_file=file, archived_at=self.vault.clock.now(),
                archived_by=self.vault.actor.username))
            session.flush()
            session.execute(delete(AuditRef.__table__).where(AuditRef.seq < seq))
            deleted = session.execute(
                delete(AuditEvent.__table__).where(AuditEvent.seq < seq)).rowcount
        except DBAPIError:
            raise Conflict(
                "the database refused to delete the archived events (another archive ran "
                "meanwhile, or an event is younger than the database allows); nothing was "
                "deleted and the archive file stays: run it again",
                "数据库拒绝删除已归档的事件（同时有另一次归档，或事件未到数据库允许的期限）；"
                "未删除任何事件，归档文件保留：请重新运行") from None
        if deleted != manifest.events:
            raise Conflict(
                f"{deleted} events were below event {seq}, the archive holds "
                f"{manifest.events}: nothing was deleted", f"待删除事件数 {deleted} 与归档中的 "
                f"{manifest.events} 不符：未删除任何事件")

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
