"""Release cases (安置帮教) behind the gate: the justice bureau only. A case is open from its
handover until the aftercare period ends or it is closed; after that it takes no new records
and its key-subject marker leaves every view. Juvenile cases are sealed as in corrections."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import and_, func, or_, select

from registry.errors import Conflict, Invalid
from registry.models import AssistanceRecord, ReleaseCase, UserAccount
from registry.models._types import new_id
from registry.releases.schemas import (
    AssistanceKind,
    AssistanceRead,
    CloseReason,
    PlacementKind,
    PlacementStatus,
    ReleaseRead,
    Source,
)
from registry.schemas import Page
from registry.security.authz import View
from registry.validation import IdNumber, mask_phone
from registry.vault.base import RELEASE, Reveal, Store

GROUPS = ("name", "id_number", "birth", "phone", "case", "notes")


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def is_open(case: ReleaseCase, today: date) -> bool:
    return case.closed_on is None and case.aftercare_until >= today


class ReleaseStore(Store):
    kind = RELEASE
    model = ReleaseCase
    person_column = "person_id"

    def register(self, *, id_number: IdNumber, name: str, jurisdiction_code: str,
                 source: Source, released_on: date, releasing_institution: str,
                 notice_received_on: date | None, key_subject: bool, escort_required: bool,
                 escorted_on: date | None, aftercare_years: int | None,
                 aftercare_group: str | None, measures_in_place: bool,
                 consent_to_contact: bool, phone: str | None, juvenile: bool,
                 purpose: str | None = None) -> ReleaseRead:
        vault = self.vault
        vault.require(RELEASE, "create")
        vault.jurisdictions.require_writable(jurisdiction_code, RELEASE)
        if escorted_on is not None and escorted_on < released_on:
            raise Invalid("is before the release date", "早于释放日期", field="escorted_on")
        person = vault.persons.ensure(id_number=id_number, name=name)
        now = vault.clock.now()
        years = aftercare_years or vault.settings.aftercare_years
        case = ReleaseCase(
            id=new_id(), key_id=vault.new_key(), person_id=person.id,
            jurisdiction_code=jurisdiction_code, source=source.value, released_on=released_on,
            notice_received_on=notice_received_on, key_subject=key_subject,
            escort_required=escort_required, escorted_on=escorted_on,
            aftercare_until=add_years(released_on, years), measures_in_place=measures_in_place,
            placement_status=PlacementStatus.not_yet.value,
            consent_to_contact=consent_to_contact, juvenile=juvenile,
            created_by=vault.actor.id, created_at=now, updated_at=now,
        )
        case.name = self.seal(case, "name", name)
        case.releasing_institution = self.seal(case, "releasing_institution",
                                               releasing_institution)
        case.aftercare_group = self.seal(case, "aftercare_group", aftercare_group)
        case.phone = self.seal(case, "phone", phone)
        self.session.add(case)
        self.session.flush()
        return self.respond(case, "create", purpose=purpose, changed=[
            "person", "source", "released_on", "releasing_institution"])

    def _open_case(self, case_id: uuid.UUID, action: str, purpose: str | None) -> ReleaseCase:
        case = self.load(case_id, action, purpose=purpose)
        if not is_open(case, self.vault.clock.today()):
            raise Conflict("the aftercare case is closed", "该帮教案件已结束", field="case")
        return case

    def amend(self, case_id: uuid.UUID, changes: dict, *, purpose: str | None) -> ReleaseRead:
        case = self._open_case(case_id, "update", purpose)
        escorted_on = changes.get("escorted_on")
        if escorted_on is not None and escorted_on < case.released_on:
            raise Invalid("is before the release date", "早于释放日期", field="escorted_on")
        for column, value in changes.items():
            if column in ("aftercare_group", "phone"):
                value = self.seal(case, column, value)
            setattr(case, column, value)
        return self._write(case, "update", sorted(changes), purpose)

    def place(self, case_id: uuid.UUID, *, status: PlacementStatus,
              kind: PlacementKind | None, placed_on: date | None,
              purpose: str | None) -> ReleaseRead:
        case = self._open_case(case_id, "update", purpose)
        if status is PlacementStatus.placed:
            if kind is None or placed_on is None:
                raise Invalid("a placement needs its kind and date", "安置须填写方式和日期",
                              field="kind" if kind is None else "placed_on")
            if placed_on < case.released_on:
                raise Invalid("is before the release date", "早于释放日期", field="placed_on")
        elif kind is not None or placed_on is not None:
            raise Invalid("only a placed case has a kind and date",
                          "未安置时不应填写安置方式和日期",
                          field="kind" if kind is not None else "placed_on")
        case.placement_status = status.value
        case.placement_kind = kind.value if kind else None
        case.placed_on = placed_on
        return self._write(case, "placement", ["placement"], purpose)

    def assist(self, case_id: uuid.UUID, *, on: date, kind: AssistanceKind,
               notes: str | None, purpose: str | None) -> ReleaseRead:
        case = self._open_case(case_id, "assist", purpose)
        if on < case.released_on:
            raise Invalid("is before the release date", "早于释放日期", field="on")
        record = AssistanceRecord(id=new_id(), case_id=case.id, on=on, kind=kind.value,
                                  worker_id=self.vault.actor.id,
                                  created_at=self.vault.clock.now())
        record.notes = self.seal(record, "notes", notes, table="assistance_record",
                                 key_id=case.key_id)
        self.session.add(record)
        return self._write(case, "assist", [f"assistance.{kind.value}"], purpose)

    def close(self, case_id: uuid.UUID, *, on: date, reason: CloseReason,
              purpose: str | None) -> ReleaseRead:
        case = self._open_case(case_id, "update", purpose)
        if on < case.released_on:
            raise Invalid("is before the release date", "早于释放日期", field="on")
        case.closed_on = on
        case.close_reason = reason.value
        return self._write(case, "close", ["closed_on"], purpose)

    def _write(self, case, action: str, changed: list[str], purpose: str | None) -> ReleaseRead:
        case.updated_at = self.vault.clock.now()
        self.session.flush()
        return self.respond(case, action, purpose=purpose, changed=changed)

    # --- reads -----------------------------------------------------------------------------

    def list(self, *, jurisdiction: str | None, open_only: bool | None,
             placement_status: PlacementStatus | None, measures_in_place: bool | None,
             needs_action: bool, page: int, page_size: int,
             purpose: str | None) -> Page[ReleaseRead]:
        vault = self.vault
        vault.require(RELEASE, "list")
        today = vault.clock.today()
        is_open_sql = and_(ReleaseCase.closed_on.is_(None), ReleaseCase.aftercare_until >= today)
        where = self.scoped()
        if not purpose:
            where.append(ReleaseCase.juvenile.is_(False))
        if jurisdiction:
            where.append(vault.jurisdictions.narrow(ReleaseCase.jurisdiction_code, jurisdiction))
        if open_only is not None:
            where.append(is_open_sql if open_only else ~is_open_sql)
        if placement_status:
            where.append(ReleaseCase.placement_status == placement_status.value)
        if measures_in_place is not None:
            where.append(ReleaseCase.measures_in_place.is_(measures_in_place))
        if needs_action:
            where += [is_open_sql, or_(
                ReleaseCase.measures_in_place.is_(False),
                ReleaseCase.placement_status == PlacementStatus.not_yet.value,
                and_(ReleaseCase.escort_required.is_(True), ReleaseCase.escorted_on.is_(None)))]
        total = self.session.scalar(select(func.count()).select_from(ReleaseCase).where(*where))
        rows = self.session.scalars(
            select(ReleaseCase).where(*where)
            .order_by(ReleaseCase.released_on.desc(), ReleaseCase.id.desc())
            .offset((page - 1) * page_size).limit(page_size)).all()
        items = self.listing(rows, "list", purpose=purpose, detail=f"page={page};total={total}")
        return Page(items=items, total=total or 0, page=page, page_size=page_size)

    def views(self, cases, purpose: str | None, *, history: bool = False):
        if not cases:
            return []
        vault = self.vault
        today = vault.clock.today()
        views = vault.views(RELEASE, GROUPS, purpose)
        people = vault.persons.by_id(c.person_id for c in cases)
        vault.load_keys(c.key_id for c in cases)
        result = []
        for case in cases:
            person, person_fields = vault.persons.view(
                people[case.person_id], views,
                name=self.open(case, "name") if views["name"] else None)
            reveal = Reveal(self, views)
            assistance = []
            if history:
                records = self.session.execute(
                    select(AssistanceRecord, UserAccount.username)
                    .outerjoin(UserAccount, UserAccount.id == AssistanceRecord.worker_id)
                    .where(AssistanceRecord.case_id == case.id)
                    .order_by(AssistanceRecord.on.desc()).limit(50)).all()
                assistance = [AssistanceRead(
                    on=r.on, kind=r.kind, worker=username,
                    notes=reveal(r, "notes", "notes", table="assistance_record",
                                 name="assistance.notes")) for r, username in records]
            open_now = is_open(case, today)
            close_reason = case.close_reason
            if close_reason is None and not open_now:
                close_reason = CloseReason.period_ended
            read = ReleaseRead(
                id=case.id, person=person, jurisdiction_code=case.jurisdiction_code,
                source=case.source, released_on=case.released_on,
                releasing_institution=reveal(case, "releasing_institution", "case"),
                notice_received_on=case.notice_received_on,
                key_subject=case.key_subject if open_now else None,
                escort_required=case.escort_required, escorted_on=case.escorted_on,
                aftercare_until=case.aftercare_until,
                aftercare_group=reveal(case, "aftercare_group", "case"),
                measures_in_place=case.measures_in_place,
                placement_status=case.placement_status, placement_kind=case.placement_kind,
                placed_on=case.placed_on, consent_to_contact=case.consent_to_contact,
                phone=reveal(case, "phone", "phone", mask_phone), open=open_now,
                closed_on=case.closed_on or (None if open_now else case.aftercare_until),
                close_reason=close_reason, juvenile=case.juvenile, assistance=assistance,
                masked=sorted(g for g, v in views.items() if v is View.masked),
                hidden=sorted(g for g, v in views.items() if v is View.hidden),
            )
            result.append((read, [f"person.{f}" for f in person_fields] + reveal.fields))
        return result
