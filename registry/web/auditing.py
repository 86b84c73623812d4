"""The auditors' pages: event search, the disclosure report for a person (who has seen them),
the anomaly list with review marks, the chain's status, and the break-glass review queue.
Events name records and fields, never values; the audit store through the gate, as the API
routes call it, so each of these queries is itself an audit event."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from registry.audit.schemas import DisclosureQuery, EventFilter, Format, ReviewIn
from registry.breakglass.schemas import GrantReview, QueueStatus
from registry.errors import Invalid, NotFound
from registry.schemas import Printable
from registry.web.kit import (
    PREFIX,
    FormDep,
    FormErrors,
    Page,
    PageDep,
    pager_base,
    parse,
    redirect,
)

router = APIRouter()


@router.get("/audit")
def events(
    page: PageDep,
    actor: Annotated[Printable | None, Query()] = None,
    kind: Annotated[Printable | None, Query()] = None,
    record_id: Annotated[Printable | None, Query()] = None,
    outcome: Annotated[Printable | None, Query()] = None,
    n: Annotated[int, Query(ge=1, le=100_000, alias="page")] = 1,
):
    values = {"actor": actor or "", "kind": kind or "", "record_id": record_id or "",
              "outcome": outcome or ""}
    query = EventFilter(**{k: v for k, v in values.items() if v})
    with page.vault() as vault:
        listing = vault.audit.events(query, page=n, page_size=50)
        vault.commit()
    base = pager_base(values)
    return page.render("audit_events.html", listing=listing, values=values, errors={},
                       base=base, outcomes=[("", page.t("all")), ("ok", "ok"),
                                            ("denied", "denied"), ("locked", "locked")])


@router.get("/audit/chain")
def chain(page: PageDep):
    with page.vault() as vault:
        result = vault.audit.verify()
        last = vault.audit.last_checkpoint()
        vault.commit()
    at = (last.at.astimezone(page.registry.clock.tz).strftime("%Y-%m-%d %H:%M:%S")
          if last else None)
    return page.render("audit_chain.html", result=result, last=last, last_at=at)


@router.get("/audit/disclosure")
def disclosure_form(page: PageDep):
    return page.render("audit_disclosure.html", values={}, errors={}, report=None)


@router.post("/audit/disclosure")
def disclosure(page: PageDep, form: FormDep):
    values = {k: form.get(k, "").strip() for k in ("id_number", "person_id", "from", "to")}
    try:
        if bool(values["id_number"]) == bool(values["person_id"]):
            raise FormErrors({"id_number": page.t("audit.one_of")})
        query = parse(DisclosureQuery, values, lang=page.lang)
        with page.vault() as vault:
            report = vault.audit.disclosure(query, export=Format.json)
            vault.commit()
    except FormErrors as exc:
        return page.render("audit_disclosure.html", status=422, values=values,
                           errors=exc.errors, report=None)
    except Invalid as exc:
        return page.render("audit_disclosure.html", status=422, values=values, report=None,
                           errors={exc.field if exc.field in values else "": page.message(exc)})
    return page.render("audit_disclosure.html", values=values, errors={}, report=report)


def _anomalies(page: Page, *, errors: dict | None = None, status: int = 200,
               done: str | None = None):
    with page.vault() as vault:
        report = vault.audit.anomalies(None, None, export=Format.json)
        vault.commit()
    return page.render("audit_anomalies.html", status=status, report=report,
                       errors=errors or {}, done=done if done == "review.saved" else None)


@router.get("/audit/anomalies")
def anomalies(page: PageDep, done: str | None = None):
    return _anomalies(page, done=done)


@router.post("/audit/anomalies/{item_id}/review")
def review_anomaly(page: PageDep, form: FormDep, item_id: str):
    try:
        data = parse(ReviewIn, {"note": form.get("note", "")}, lang=page.lang)
        with page.vault() as vault:
            vault.audit.review(item_id, data.note)
            vault.commit()
    except FormErrors as exc:
        return _anomalies(page, errors={f"{item_id}.note": exc.errors.get("note", "")},
                          status=422)
    return redirect(f"{PREFIX}/audit/anomalies?done=review.saved")


def _queue(page: Page, *, errors: dict | None = None, status: int = 200,
           done: str | None = None, which: QueueStatus = QueueStatus.pending):
    with page.vault() as vault:
        queue = vault.access.queue(status=which, page=1, page_size=100)
        vault.commit()
    return page.render("audit_breakglass.html", status=status, queue=queue, which=which.value,
                       errors=errors or {}, done=done if done == "review.saved" else None)


@router.get("/audit/break-glass")
def break_glass(page: PageDep, status: QueueStatus = QueueStatus.pending,
                done: str | None = None):
    return _queue(page, done=done, which=status)


@router.post("/audit/break-glass/{grant_id}/review")
def review_grant(page: PageDep, form: FormDep, grant_id: uuid.UUID):
    try:
        data = parse(GrantReview, {"note": form.get("note", "")}, lang=page.lang)
        with page.vault() as vault:
            vault.access.review(grant_id, note=data.note)
            vault.commit()
    except FormErrors as exc:
        return _queue(page, errors={f"{grant_id}.note": exc.errors.get("note", "")},
                      status=422)
    except (Invalid, NotFound) as exc:
        if isinstance(exc, NotFound):
            raise
        return _queue(page, errors={f"{grant_id}.note": page.message(exc)},
                      status=exc.status)
    return redirect(f"{PREFIX}/audit/break-glass?done=review.saved")
