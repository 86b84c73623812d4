"""The corrections office's pages: the morning check-in board (overdue first, with the days),
a check-in in two taps (the button, then how), and a case page with its check-ins and
sanctions. The corrections service through the gate; police and coordinators get the gate's
refusal, never a glimpse."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from registry.corrections import service as corrections
from registry.corrections.schemas import CheckInIn, Method, SanctionIn, SanctionKind
from registry.errors import Conflict, Invalid
from registry.web.kit import (
    PREFIX,
    FormDep,
    FormErrors,
    Page,
    PageDep,
    check_purpose,
    parse,
    redirect,
)

router = APIRouter()

SECTIONS = ("overdue", "due_today", "awaiting_report", "supervision_ended")


def _board(page: Page, *, purpose: str | None = None, errors: dict | None = None,
           status: int = 200, done: str | None = None):
    with page.vault() as vault:
        board = corrections.board(vault, purpose=purpose, limit=100)
        vault.commit()
    return page.render("board.html", status=status, board=board, sections=SECTIONS,
                       purpose=purpose, errors=errors or {}, methods=list(Method),
                       done=done if done == "checkin.saved" else None)


@router.get("/corrections/board")
def board(page: PageDep, done: str | None = None):
    return _board(page, done=done)


@router.post("/corrections/board")
def board_reveal(page: PageDep, form: FormDep):
    try:
        purpose = check_purpose(page, form.get("purpose"))
    except FormErrors as exc:
        return _board(page, errors=exc.errors, status=422)
    return _board(page, purpose=purpose)


@router.post("/corrections/{case_id}/check-in")
def check_in(page: PageDep, form: FormDep, case_id: uuid.UUID):
    try:
        data = parse(CheckInIn, {"method": form.get("method", "")}, lang=page.lang)
        with page.vault() as vault:
            corrections.record_check_in(vault, case_id, data, purpose=None)
            vault.commit()
    except FormErrors as exc:
        return _board(page, errors={"": next(iter(exc.errors.values()))}, status=422)
    except (Invalid, Conflict) as exc:
        return _board(page, errors={"": page.message(exc)}, status=exc.status)
    back = ("/corrections/board" if form.get("back") != "case"
            else f"/corrections/{case_id}")
    return redirect(f"{PREFIX}{back}?done=checkin.saved")


def _case(page: Page, case_id: uuid.UUID, *, purpose: str | None = None,
          errors: dict | None = None, values: dict | None = None, status: int = 200,
          done: str | None = None):
    with page.vault() as vault:
        case = corrections.get(vault, case_id, purpose=purpose)
        vault.commit()
    return page.render("case.html", status=status, case=case, purpose=purpose,
                       errors=errors or {}, values=values or {}, methods=list(Method),
                       kinds=[(k.value, page.t(f"sanction.{k.value}")) for k in SanctionKind],
                       done=done if done in ("checkin.saved", "sanction.saved") else None)


@router.get("/corrections/{case_id}")
def case_page(page: PageDep, case_id: uuid.UUID, done: str | None = None):
    return _case(page, case_id, done=done)


@router.post("/corrections/{case_id}/reveal")
def case_reveal(page: PageDep, form: FormDep, case_id: uuid.UUID):
    try:
        purpose = check_purpose(page, form.get("purpose"))
    except FormErrors as exc:
        return _case(page, case_id, errors=exc.errors, status=422)
    return _case(page, case_id, purpose=purpose)


@router.post("/corrections/{case_id}/sanctions")
def add_sanction(page: PageDep, form: FormDep, case_id: uuid.UUID):
    values = {k: v for k, v in form.items() if k.startswith("sanction.")}
    try:
        data = parse(SanctionIn, {k.removeprefix("sanction."): v for k, v in values.items()},
                     lang=page.lang)
        with page.vault() as vault:
            corrections.add_sanction(vault, case_id, data, purpose=None)
            vault.commit()
    except FormErrors as exc:
        errors = {f"sanction.{k}" if k else "": v for k, v in exc.errors.items()}
        return _case(page, case_id, errors=errors, values=values, status=422)
    except (Invalid, Conflict) as exc:
        errors = {f"sanction.{exc.field}" if exc.field else "": page.message(exc)}
        return _case(page, case_id, errors=errors, values=values, status=exc.status)
    return redirect(f"{PREFIX}/corrections/{case_id}?done=sanction.saved")
