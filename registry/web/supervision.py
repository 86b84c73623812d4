"""The corrections office's pages: the morning check-in board (overdue first, with the days),
a check-in in two taps (the button, then how), opening a case on a court's decision, and a
case page with its check-ins and sanctions, the initial report and the status changes that
close it (解除, 终止) or mark it absconded. The corrections service through the gate;
police and coordinators get the gate's refusal, never a glimpse."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from registry.corrections import service as corrections
from registry.corrections.schemas import (
    CaseCreate,
    CaseStatus,
    Category,
    CheckInIn,
    Method,
    ReportIn,
    SanctionIn,
    SanctionKind,
    StatusChange,
)
from registry.errors import Conflict, Invalid
from registry.vault.base import CORRECTIONS
from registry.vault.corrections import TRANSITIONS
from registry.web.field import areas
from registry.web.kit import (
    PREFIX,
    FormDep,
    FormErrors,
    Page,
    PageDep,
    form_errors,
    parse,
    redirect,
    reveal,
    stated_purpose,
    write_on_page,
)

router = APIRouter()

SECTIONS = ("overdue", "due_today", "awaiting_report", "supervision_ended")


def _board(page: Page, *, purpose: str | None = None, errors: dict | None = None,
           status: int = 200, done: str | None = None):
    with page.vault() as vault:
        board = corrections.board(vault, purpose=purpose, limit=100)
        vault.commit()
    return page.render("board.html", status=status, board=board, sections=SECTIONS,
                       back=f"{PREFIX}/corrections/board",
                       purpose=purpose, errors=errors or {}, methods=list(Method),
                       done=done if done == "checkin.saved" else None)


@router.get("/corrections/board")
def board(page: PageDep, done: str | None = None):
    return _board(page, done=done)


@router.post("/corrections/board")
def board_reveal(page: PageDep, form: FormDep):
    return reveal(page, form, _board)


@router.post("/corrections/{case_id}/check-in")
def check_in(page: PageDep, form: FormDep, case_id: uuid.UUID):
    """A check-in from the board or the case page, under the purpose stated there (a sealed
    juvenile case opens only with one); then that page again, still under it."""
    on_case, purpose = form.get("back") == "case", None
    try:
        purpose = stated_purpose(page, form)
        data = parse(CheckInIn, {"method": form.get("method", "")}, lang=page.lang)
        with page.vault() as vault:
            corrections.record_check_in(vault, case_id, data, purpose=purpose)
            vault.commit()
    except FormErrors as exc:
        return _board(page, purpose=purpose, errors={"": next(iter(exc.errors.values()))},
                      status=422)
    except (Invalid, Conflict) as exc:
        if on_case:
            return _case(page, case_id, purpose=purpose, errors={"": page.message(exc)},
                         status=exc.status)
        return _board(page, purpose=purpose, errors={"": page.message(exc)},
                      status=exc.status)
    if purpose:
        return (_case(page, case_id, purpose=purpose, done="checkin.saved") if on_case
                else _board(page, purpose=purpose, done="checkin.saved"))
    back = f"/corrections/{case_id}" if on_case else "/corrections/board"
    return redirect(f"{PREFIX}{back}?done=checkin.saved")


def _case_form(page: Page, *, values: dict, errors: dict, status: int = 200):
    with page.vault() as vault:
        vault.require(CORRECTIONS, "create")  # the form is no use to other roles: refused
        choices = areas(vault, page.actor.scope)
    return page.render("case_form.html", status=status, values=values, errors=errors,
                       areas=choices,
                       categories=[(c.value, page.t(f"category.{c.value}")) for c in Category])


@router.get("/corrections/new")
def new_case(page: PageDep):
    return _case_form(page, values={"officer": page.actor.username,
                                    "check_in_interval_days": "7", "grace_days": "2"},
                      errors={})


@router.post("/corrections/new")
def open_case(page: PageDep, form: FormDep):
    """A new case; a juvenile one is sealed from the start, so it asks for the purpose under
    which the officer then sees it (audited with the creation)."""
    values = dict(form)
    try:
        errors: dict[str, str] = {}
        try:
            purpose = stated_purpose(page, form)
        except FormErrors as exc:
            errors.update(exc.errors)
            purpose = None
        unsealed = {"purpose": page.t("v.purpose.sealed")} if (
            form.get("juvenile") and not purpose and "purpose" not in errors) else {}
        try:
            data = parse(CaseCreate, form, lang=page.lang,
                         ints=("check_in_interval_days", "grace_days"), flags=("juvenile",))
        except FormErrors as exc:
            errors.update(exc.errors)
        if errors:
            raise FormErrors(errors | unsealed)
        with page.vault() as vault:
            case = corrections.open_case(vault, data, purpose=purpose)
            if unsealed:  # said once the rest is right; rolled back, so nothing is saved
                raise FormErrors(unsealed)
            vault.commit()
    except FormErrors as exc:
        return _case_form(page, values=values, errors=exc.errors, status=422)
    except (Invalid, Conflict) as exc:
        return _case_form(page, values=values, errors=form_errors(exc, page).errors,
                          status=exc.status)
    if purpose:
        return _case(page, case.id, purpose=purpose, done="case.saved")
    return redirect(f"{PREFIX}/corrections/{case.id}?done=case.saved")


def _next_statuses(page: Page, current: CaseStatus) -> list[tuple[str, str]]:
    """The changes the case's status allows (the vault's transitions), worded as actions."""
    return [(s.value, page.t(f"cstatus.to.{s.value}")) for s, sources in TRANSITIONS.items()
            if current in sources]


_CASE_DONE = ("checkin.saved", "sanction.saved", "case.saved", "case.reported",
              "case.status_saved")


def _case(page: Page, case_id: uuid.UUID, *, purpose: str | None = None,
          errors: dict | None = None, values: dict | None = None, status: int = 200,
          done: str | None = None):
    with page.vault() as vault:
        case = corrections.get(vault, case_id, purpose=purpose)
        vault.commit()
    # A sealed case has no page without a purpose: the language link goes to the board.
    return page.render("case.html", status=status, case=case, purpose=purpose,
                       back=f"{PREFIX}/corrections/board" if case.juvenile else None,
                       errors=errors or {}, values=values or {}, methods=list(Method),
                       kinds=[(k.value, page.t(f"sanction.{k.value}")) for k in SanctionKind],
                       next_statuses=_next_statuses(page, case.status),
                       done=done if done in _CASE_DONE else None)


@router.get("/corrections/{case_id}")
def case_page(page: PageDep, case_id: uuid.UUID, done: str | None = None):
    return _case(page, case_id, done=done)


@router.post("/corrections/{case_id}/reveal")
def case_reveal(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return reveal(page, form, _case, case_id)


@router.post("/corrections/{case_id}/sanctions")
def add_sanction(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _case_write(page, case_id, form, "sanction.", SanctionIn, corrections.add_sanction,
                       "sanction.saved", conflict_at_field=True)


def _case_write(page: Page, case_id: uuid.UUID, form: dict, prefix: str, schema, action,
                done: str, *, conflict_at_field: bool = False):
    """A form on the case page, written under the purpose stated on the page, if any."""
    return write_on_page(page, form, case_id, prefix=prefix, schema=schema, action=action,
                         show=_case, address=f"{PREFIX}/corrections/{case_id}", done=done,
                         purposed=True, conflict_at_field=conflict_at_field)


@router.post("/corrections/{case_id}/report")
def record_report(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _case_write(page, case_id, form, "report.", ReportIn, corrections.record_report,
                       "case.reported")


@router.post("/corrections/{case_id}/status")
def change_status(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _case_write(page, case_id, form, "status.", StatusChange,
                       corrections.change_status, "case.status_saved")
