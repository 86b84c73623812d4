"""Corrections workflows: open a case, record the report and check-ins, sanctions, status,
and the daily check-in board."""

from __future__ import annotations

import uuid

from registry.corrections.schemas import (
    Board,
    CaseCreate,
    CaseRead,
    CaseStatus,
    CaseUpdate,
    Category,
    CheckInIn,
    ReportIn,
    SanctionIn,
    StatusChange,
)
from registry.errors import Invalid
from registry.schemas import Page
from registry.validation import clean_text, not_future, parse_id_number, parse_mobile
from registry.vault.gate import Vault


def open_case(vault: Vault, data: CaseCreate, *, purpose: str | None = None) -> CaseRead:
    today = vault.clock.today()
    return vault.corrections.open_case(
        id_number=parse_id_number(data.id_number, today=today),
        name=clean_text(data.name, field="name", max_length=50),
        jurisdiction_code=data.jurisdiction_code, category=data.category,
        deciding_body=clean_text(data.deciding_body, field="deciding_body", max_length=100),
        judgment_ref=clean_text(data.judgment_ref, field="judgment_ref", max_length=100),
        effective_on=not_future(data.effective_on, today, "effective_on"),
        supervision_start=data.supervision_start, supervision_end=data.supervision_end,
        reported_on=not_future(data.reported_on, today, "reported_on"),
        check_in_interval_days=data.check_in_interval_days, grace_days=data.grace_days,
        officer=data.officer, juvenile=data.juvenile,
        phone=parse_mobile(data.phone) if data.phone else None, purpose=purpose)


def amend(vault: Vault, case_id: uuid.UUID, data: CaseUpdate, *,
          purpose: str | None) -> CaseRead:
    return vault.corrections.amend(
        case_id, purpose=purpose, officer=data.officer,
        check_in_interval_days=data.check_in_interval_days, grace_days=data.grace_days,
        supervision_end=data.supervision_end,
        phone=parse_mobile(data.phone) if data.phone else None)


def record_report(vault: Vault, case_id: uuid.UUID, data: ReportIn, *,
                  purpose: str | None) -> CaseRead:
    reported_on = not_future(data.reported_on, vault.clock.today(), "reported_on")
    return vault.corrections.record_report(case_id, reported_on=reported_on, purpose=purpose)


def record_check_in(vault: Vault, case_id: uuid.UUID, data: CheckInIn, *,
                    purpose: str | None) -> CaseRead:
    now = vault.clock.now()
    at = data.at or now
    if at.tzinfo is None:
        raise Invalid("needs a time zone (e.g. +08:00)", "须带时区（如 +08:00）", field="at")
    if at > now:
        raise Invalid("is in the future", "不能晚于当前时间", field="at")
    return vault.corrections.record_check_in(case_id, at=at, method=data.method,
                                             purpose=purpose)


def add_sanction(vault: Vault, case_id: uuid.UUID, data: SanctionIn, *,
                 purpose: str | None) -> CaseRead:
    return vault.corrections.add_sanction(
        case_id, kind=data.kind, grounds=data.grounds,
        decided_on=not_future(data.decided_on, vault.clock.today(), "decided_on"),
        reason=clean_text(data.reason, field="reason", max_length=2000),
        decision_ref=clean_text(data.decision_ref, field="decision_ref", max_length=100)
        if data.decision_ref else None,
        purpose=purpose)


def change_status(vault: Vault, case_id: uuid.UUID, data: StatusChange, *,
                  purpose: str | None) -> CaseRead:
    return vault.corrections.change_status(
        case_id, status=data.status, on=not_future(data.on, vault.clock.today(), "on"),
        reason=clean_text(data.reason, field="reason", max_length=100) if data.reason else None,
        purpose=purpose)


def get(vault: Vault, case_id: uuid.UUID, *, purpose: str | None) -> CaseRead:
    return vault.corrections.get(case_id, purpose=purpose)


def list_cases(vault: Vault, *, jurisdiction: str | None = None,
               status: CaseStatus | None = None, category: Category | None = None,
               page: int = 1, page_size: int = 50, purpose: str | None = None) -> Page[CaseRead]:
    return vault.corrections.list(jurisdiction=jurisdiction, status=status, category=category,
                                  page=page, page_size=page_size, purpose=purpose)


def board(vault: Vault, *, purpose: str | None, mine: bool = False, limit: int = 50) -> Board:
    return vault.corrections.board(purpose=purpose, officer_only=mine, limit=limit)
