"""Community-corrections cases behind the gate. Only the corrections role reads them; juvenile
cases are sealed (they open only with a purpose and appear in no list without one). There is
no location data: supervision is check-ins, and the board is computed from ``next_due_on``,
kept current by every report and check-in, so it is one indexed query however many check-ins
there are."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, tzinfo

from sqlalchemy import and_, func, select
from sqlalchemy import case as case_

from registry.corrections.schemas import (
    Board,
    BoardEntry,
    CaseRead,
    CaseStatus,
    Category,
    CheckInRead,
    Grounds,
    Method,
    SanctionKind,
    SanctionRead,
)
from registry.errors import Conflict, Invalid
from registry.models import CheckIn, CorrectionsCase, Sanction, UserAccount
from registry.models._types import new_id
from registry.schemas import Page
from registry.security.authz import View
from registry.validation import IdNumber, mask_name, mask_phone
from registry.vault.base import CORRECTIONS, Reveal, Store

GROUPS = ("name", "id_number", "birth", "phone", "case", "sanction")
REPORT_DAYS = 10  # 社区矫正法 Art. 21: report within ten days of the judgment taking effect
OPEN = (CaseStatus.awaiting_report, CaseStatus.active, CaseStatus.absconded)
CLOSED = (CaseStatus.ended, CaseStatus.terminated)
ALLOWED_GROUNDS = {
    SanctionKind.admonition: {Grounds.conduct},
    SanctionKind.warning: {Grounds.conduct, Grounds.two_admonitions},
    SanctionKind.penalty_proposal: {Grounds.conduct},
    SanctionKind.revocation_proposal: {Grounds.conduct, Grounds.two_warnings},
    SanctionKind.custody_proposal: {Grounds.conduct, Grounds.two_warnings},
}
# Which sanction a repeated-sanction ground counts, and how many it needs.
PRIOR = {Grounds.two_admonitions: (SanctionKind.admonition, 2),
         Grounds.two_warnings: (SanctionKind.warning, 2)}
TRANSITIONS = {
    CaseStatus.absconded: {CaseStatus.active},
    CaseStatus.active: {CaseStatus.absconded},
    CaseStatus.ended: {CaseStatus.active, CaseStatus.absconded},
    CaseStatus.terminated: {CaseStatus.awaiting_report, CaseStatus.active, CaseStatus.absconded},
}


def report_due(case: CorrectionsCase) -> date:
    return case.effective_on + timedelta(days=REPORT_DAYS)


def _due(r, today: date) -> tuple:
    """(row, due date, days late, overdue) of a board row."""
    awaiting = r.status == CaseStatus.awaiting_report
    due = r.effective_on + timedelta(days=REPORT_DAYS) if awaiting else r.next_due_on
    late = (today - due).days
    return r, due, late, late > (0 if awaiting else r.grace_days)


def _schedule(case: CorrectionsCase, tz: tzinfo) -> None:
    """Keep the clear due dates the board runs on: the next check-in is due an interval
    after the last one (its local date, in the offices' time zone) or the initial report;
    it is overdue once the grace has passed."""
    base = (case.last_check_in_at.astimezone(tz).date() if case.last_check_in_at
            else case.reported_on)
    if base is None or case.status in CLOSED:
        case.next_due_on = case.overdue_on = None
        return
    case.next_due_on = base + timedelta(days=case.check_in_interval_days)
    case.overdue_on = case.next_due_on + timedelta(days=case.grace_days)


class CorrectionsStore(Store):
    kind = CORRECTIONS
    model = CorrectionsCase
    person_column = "person_id"

    # --- writes ----------------------------------------------------------------------------

    def open_case(self, *, id_number: IdNumber, name: str, jurisdiction_code: str,
                  category: Category, deciding_body: str, judgment_ref: str, effective_on: date,
                  supervision_start: date, supervision_end: date, reported_on: date | None,
                  check_in_interval_days: int, grace_days: int, officer: str | None,
                  juvenile: bool, phone: str | None, purpose: str | None = None) -> CaseRead:
        vault = self.vault
        vault.require(CORRECTIONS, "create")
        vault.jurisdictions.require_writable(jurisdiction_code, CORRECTIONS)
        if supervision_end <= supervision_start:
            raise Invalid("must be after the supervision start", "须晚于矫正起始日期",
                          field="supervision_end")
        if reported_on is not None and reported_on < effective_on:
            raise Invalid("is before the effective date", "早于生效日期", field="reported_on")
        officer_id = self._officer(officer, jurisdiction_code) if officer else None
        person = vault.persons.ensure(id_number=id_number, name=name)
        now = vault.clock.now()
        case = CorrectionsCase(
            id=new_id(), key_id=vault.new_key(), person_id=person.id,
            jurisdiction_code=jurisdiction_code, category=category.value,
            effective_on=effective_on, supervision_start=supervision_start,
            supervision_end=supervision_end, check_in_interval_days=check_in_interval_days,
            grace_days=grace_days, officer_id=officer_id, juvenile=juvenile,
            status=CaseStatus.awaiting_report.value, created_by=vault.actor.id,
            created_at=now, updated_at=now,
        )
        case.name = self.seal(case, "name", name)
        case.deciding_body = self.seal(case, "deciding_body", deciding_body)
        case.judgment_ref = self.seal(case, "judgment_ref", judgment_ref)
        case.phone = self.seal(case, "phone", phone)
        if reported_on is not None:
            self._reported(case, reported_on)
        self.session.add(case)
        self.session.flush()
        return self.respond(case, "create", purpose=purpose, changed=[
            "person", "category", "deciding_body", "judgment_ref", "dates"])

    def _officer(self, username: str, code: str) -> uuid.UUID:
        user = self.session.scalar(select(UserAccount).where(UserAccount.username == username))
        if (user is None or user.disabled or user.role != "corrections"
                or not code.startswith(user.jurisdiction_code)):
            raise Invalid("is not an active corrections officer for this jurisdiction",
                          "不是该辖区在职的社区矫正工作人员", field="officer")
        return user.id

    def _reported(self, case: CorrectionsCase, reported_on: date) -> None:
        case.reported_on = reported_on
        case.late_report = reported_on > report_due(case)
        case.status = CaseStatus.active.value
        _schedule(case, self.vault.clock.tz)

    def amend(self, case_id: uuid.UUID, *, purpose: str | None, officer: str | None,
              check_in_interval_days: int | None, grace_days: int | None,
              supervision_end: date | None, phone: str | None) -> CaseRead:
        case = self.load(case_id, "update", purpose=purpose)
        self._require_open(case)
        changed = []
        if officer is not None:
            case.officer_id = self._officer(officer, case.jurisdiction_code)
            changed.append("officer")
        if check_in_interval_days is not None:
            case.check_in_interval_days = check_in_interval_days
            changed.append("check_in_interval_days")
        if grace_days is not None:
            case.grace_days = grace_days
            changed.append("grace_days")
        _schedule(case, self.vault.clock.tz)
        if supervision_end is not None:
            if supervision_end <= case.supervision_start:
                raise Invalid("must be after the supervision start", "须晚于矫正起始日期",
                              field="supervision_end")
            case.supervision_end = supervision_end
            changed.append("supervision_end")
        if phone is not None:
            case.phone = self.seal(case, "phone", phone)
            changed.append("phone")
        return self._write(case, "update", changed, purpose)

    def record_report(self, case_id: uuid.UUID, *, reported_on: date,
                      purpose: str | None) -> CaseRead:
        case = self.load(case_id, "check_in", purpose=purpose)
        if case.status != CaseStatus.awaiting_report:
            raise Conflict("the report has already been recorded", "已登记报到")
        if reported_on < case.effective_on:
            raise Invalid("is before the effective date", "早于生效日期", field="reported_on")
        self._reported(case, reported_on)
        return self._write(case, "report", ["reported_on"], purpose)

    def record_check_in(self, case_id: uuid.UUID, *, at: datetime, method: Method,
                        purpose: str | None) -> CaseRead:
        vault = self.vault
        case = self.load(case_id, "check_in", purpose=purpose)
        self._require_open(case)
        if case.status == CaseStatus.awaiting_report:
            raise Conflict("record the initial report first", "请先登记报到")
        if at.astimezone(vault.clock.tz).date() < case.reported_on:
            raise Invalid("is before the initial report", "早于报到日期", field="at")
        self.session.add(CheckIn(id=new_id(), case_id=case.id, at=at, method=method.value,
                                 recorded_by=vault.actor.id))
        last = case.last_check_in_at
        if last is None or at > last:
            case.last_check_in_at = at
            _schedule(case, self.vault.clock.tz)
        detail = ""
        if case.status == CaseStatus.absconded:
            case.status = CaseStatus.active.value
            detail = "returned"
        return self._write(case, "check_in", ["check_in"], purpose, detail=detail)

    def add_sanction(self, case_id: uuid.UUID, *, kind: SanctionKind, grounds: Grounds,
                     decided_on: date, reason: str, decision_ref: str | None,
                     purpose: str | None) -> CaseRead:
        case = self.load(case_id, "sanction", purpose=purpose)
        if case.status not in (CaseStatus.active, CaseStatus.absconded):
            raise Conflict("sanctions apply only to cases under supervision",
                           "仅在矫对象可给予处罚或提请")
        if decided_on < case.supervision_start:
            raise Invalid("is before the supervision start", "早于矫正起始日期",
                          field="decided_on")
        if grounds not in ALLOWED_GROUNDS[kind]:
            raise Invalid(f"{grounds.value} is not a ground for {kind.value}",
                          "该理由不适用于此类处罚", field="grounds")
        if kind is SanctionKind.revocation_proposal and case.category not in (
                Category.probation, Category.parole):
            raise Invalid("revocation applies only to probation and parole",
                          "仅缓刑、假释可提请撤销", field="kind")
        if kind is SanctionKind.custody_proposal and case.category != Category.outside_custody:
            raise Invalid("custody proposals apply only to execution outside prison",
                          "仅暂予监外执行可提请收监执行", field="kind")
        if grounds in PRIOR:
            # Sanctions already used as grounds do not count again: the same two
            # admonitions ground one warning, not two.
            prior_kind, needed = PRIOR[grounds]

            def counted(kind_: SanctionKind, *extra) -> int:
                return self.session.scalar(select(func.count()).select_from(Sanction).where(
                    Sanction.case_id == case.id, Sanction.kind == kind_.value, *extra))

            used = counted(kind, Sanction.grounds == grounds.value)
            count = counted(prior_kind) - needed * used
            if count < needed:
                raise Invalid(f"needs {needed} prior {prior_kind.value}s not yet used as grounds; "
                              f"the case has {max(count, 0)}",
                              f"需此前受到{needed}次未被引用的同类处罚，现有{max(count, 0)}次",
                              field="grounds")
        sanction = Sanction(id=new_id(), case_id=case.id, kind=kind.value,
                            grounds=grounds.value, decided_on=decided_on,
                            recorded_by=self.vault.actor.id, created_at=self.vault.clock.now())
        # Sealed under the case's key (erasing the case erases its sanctions), bound to the row.
        sanction.reason = self.seal(sanction, "reason", reason, table="sanction",
                                    key_id=case.key_id)
        sanction.decision_ref = self.seal(sanction, "decision_ref", decision_ref,
                                          table="sanction", key_id=case.key_id)
        self.session.add(sanction)
        return self._write(case, "sanction", [f"sanction.{kind.value}"], purpose)

    def change_status(self, case_id: uuid.UUID, *, status: CaseStatus, on: date,
                      reason: str | None, purpose: str | None) -> CaseRead:
        case = self.load(case_id, "update", purpose=purpose)
        if status not in TRANSITIONS or case.status not in TRANSITIONS[status]:
            raise Conflict(f"a case that is {case.status} cannot become {status.value}",
                           "当前状态不允许此变更", field="status")
        if on < case.supervision_start:
            raise Invalid("is before the supervision start", "早于矫正起始日期", field="on")
        case.status = status.value
        if status in CLOSED:
            if not reason:
                raise Invalid("is required to end a case", "解除或终止须说明原因",
                              field="reason")
            case.ended_on = on
            case.end_reason = self.seal(case, "end_reason", reason)
            _schedule(case, self.vault.clock.tz)
        return self._write(case, "status", ["status"], purpose, detail=status.value)

    def _require_open(self, case: CorrectionsCase) -> None:
        if case.status in CLOSED:
            raise Conflict("the case is closed", "该矫正案件已结束", field="status")

    def _write(self, case, action: str, changed: list[str], purpose: str | None,
               detail: str = "") -> CaseRead:
        case.updated_at = self.vault.clock.now()
        self.session.flush()
        return self.respond(case, action, purpose=purpose, changed=changed, detail=detail)

    # --- reads -----------------------------------------------------------------------------

    def _visible_cases(self, purpose: str | None) -> list:
        where = self.scoped()
        if not purpose:
            where.append(CorrectionsCase.juvenile.is_(False))
        return where

    def list(self, *, jurisdiction: str | None, status: CaseStatus | None,
             category: Category | None, page: int, page_size: int,
             purpose: str | None) -> Page[CaseRead]:
        vault = self.vault
        vault.require(CORRECTIONS, "list")
        where = self._visible_cases(purpose)
        if jurisdiction:
            where.append(vault.jurisdictions.narrow(CorrectionsCase.jurisdiction_code,
                                                    jurisdiction))
        if status:
            where.append(CorrectionsCase.status == status.value)
        if category:
            where.append(CorrectionsCase.category == category.value)
        total = self.session.scalar(select(func.count()).select_from(CorrectionsCase)
                                    .where(*where))
        rows = self.session.scalars(
            select(CorrectionsCase).where(*where)
            .order_by(CorrectionsCase.effective_on.desc(), CorrectionsCase.id.desc())
            .offset((page - 1) * page_size).limit(page_size)).all()
        items = self.listing(rows, "list", purpose=purpose, detail=f"page={page};total={total}")
        return Page(items=items, total=total or 0, page=page, page_size=page_size)

    def board(self, *, purpose: str | None, officer_only: bool, limit: int = 50) -> Board:
        """Who is overdue, due, yet to report, or past the end of supervision, most urgent
        first: every section counted in full, the first ``limit`` of each listed. A count and
        one short indexed query per section over the clear columns (``next_due_on`` and
        ``overdue_on`` are kept current by every check-in, so the check-in history is never
        scanned); names are decrypted only for the entries listed, and only those are named
        in the audit event."""
        vault = self.vault
        vault.require(CORRECTIONS, "list")
        today = vault.clock.today()
        where = self._visible_cases(purpose)
        if officer_only:
            where.append(CorrectionsCase.officer_id == vault.actor.id)
        case = CorrectionsCase
        under = case.status.in_([CaseStatus.active.value, CaseStatus.absconded.value])
        supervised = and_(under, case.supervision_end >= today)
        conditions = {
            "overdue": and_(supervised, case.overdue_on < today),
            "due_today": and_(supervised, case.next_due_on <= today, case.overdue_on >= today),
            "awaiting_report": case.status == CaseStatus.awaiting_report.value,
            "supervision_ended": and_(under, case.supervision_end < today),
        }
        order = {"overdue": case.next_due_on, "due_today": case.next_due_on,
                 "awaiting_report": case.effective_on, "supervision_ended": case.supervision_end}
        counted = self.session.execute(select(*(
            func.coalesce(func.sum(case_((cond, 1), else_=0)), 0).label(name)
            for name, cond in conditions.items())).where(*where)).one()
        counts = dict(counted._mapping)
        columns = (case.id, case.person_id, case.key_id, case.name, case.jurisdiction_code,
                   case.category, case.status,
                   case.effective_on, case.next_due_on, case.grace_days, UserAccount.username)
        sections: dict[str, list] = {}
        for name, cond in conditions.items():
            rows = self.session.execute(
                select(*columns).outerjoin(UserAccount, UserAccount.id == case.officer_id)
                .where(*where, cond).order_by(order[name], case.jurisdiction_code, case.id)
                .limit(limit)).all()
            sections[name] = [_due(r, today) for r in rows]
        shown = [e for entries in sections.values() for e in entries]
        names = self._names([e[0] for e in shown], purpose)

        def entry(r, due, late, overdue) -> BoardEntry:
            return BoardEntry(id=r.id, name=names.get(r.id), category=r.category,
                              jurisdiction_code=r.jurisdiction_code, status=r.status,
                              officer=r.username, due_on=due, days_late=late, overdue=overdue)

        board = Board(as_of=today, limit=limit, counts=counts,
                      **{name: [entry(*e) for e in entries] for name, entries in sections.items()})
        vault.record(CORRECTIONS, "board",
                     fields=["person.name" + ("" if purpose else "~masked")],
                     refs=[ref for e in shown for ref in (f"corrections:{e[0].id}",
                                                          f"person:{e[0].person_id}")],
                     purpose=purpose, detail=";".join(filter(None, (
                         f"counts={counts}",
                         vault.access.bypassed(e[0].person_id for e in shown)))))
        return board

    def _names(self, rows, purpose: str | None) -> dict:
        """Board names, opened under each case's key, masked without a purpose."""
        view = self.vault.views(CORRECTIONS, ("name",), purpose)["name"]
        if not view:
            return {}
        self.vault.load_keys(r.key_id for r in rows)
        names = {r.id: self.vault.open(r.name, self.table, "name", r.id) for r in rows}
        return {k: (v if view is View.clear else mask_name(v)) for k, v in names.items()}

    def views(self, cases, purpose: str | None, *, history: bool = False):
        if not cases:
            return []
        vault = self.vault
        views = vault.views(CORRECTIONS, GROUPS, purpose)
        people = vault.persons.by_id(c.person_id for c in cases)
        officers = dict(self.session.execute(
            select(UserAccount.id, UserAccount.username).where(
                UserAccount.id.in_({c.officer_id for c in cases if c.officer_id}))).all())
        vault.load_keys(c.key_id for c in cases)
        result = []
        for case in cases:
            person, person_fields = vault.persons.view(
                people[case.person_id], views,
                name=self.open(case, "name") if views["name"] else None)
            reveal = Reveal(self, views)
            check_ins, sanctions = [], []
            if history:
                check_ins = [CheckInRead(at=c.at, method=c.method) for c in self.session.scalars(
                    select(CheckIn).where(CheckIn.case_id == case.id)
                    .order_by(CheckIn.at.desc()).limit(20))]
                for s in self.session.scalars(select(Sanction).where(Sanction.case_id == case.id)
                                              .order_by(Sanction.decided_on,
                                                        Sanction.created_at)):
                    sanctions.append(SanctionRead(
                        kind=s.kind, grounds=s.grounds, decided_on=s.decided_on,
                        reason=reveal(s, "reason", "sanction", table="sanction",
                                      name="sanction.reason"),
                        decision_ref=reveal(s, "decision_ref", "sanction", table="sanction",
                                            name="sanction.decision_ref")))
            read = CaseRead(
                id=case.id, person=person, jurisdiction_code=case.jurisdiction_code,
                category=case.category,
                deciding_body=reveal(case, "deciding_body", "case"),
                judgment_ref=reveal(case, "judgment_ref", "case"),
                effective_on=case.effective_on, supervision_start=case.supervision_start,
                supervision_end=case.supervision_end, reported_on=case.reported_on,
                report_due_on=report_due(case), late_report=case.late_report,
                check_in_interval_days=case.check_in_interval_days,
                grace_days=case.grace_days, officer=officers.get(case.officer_id),
                status=case.status, ended_on=case.ended_on,
                end_reason=reveal(case, "end_reason", "case"), juvenile=case.juvenile,
                phone=reveal(case, "phone", "phone", mask_phone),
                last_check_in_at=case.last_check_in_at, next_due_on=case.next_due_on,
                check_ins=check_ins, sanctions=sanctions,
                masked=sorted(g for g, v in views.items() if v is View.masked),
                hidden=sorted(g for g, v in views.items() if v is View.hidden),
            )
            result.append((read, [f"person.{f}" for f in person_fields] + reveal.fields))
        return result
