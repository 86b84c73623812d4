"""The auditors' view of the access log: events, the chain's integrity, and the workbench
reports (who has seen a person, one user's activity, denials, exports, anomalies), each as
JSON or, with ``format=csv|xlsx``, as a file — an export, audited as one."""
from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from registry.audit import export
from registry.audit.schemas import (
    AnomalyItem,
    AnomalyReport,
    AuditReport,
    DisclosureQuery,
    EventFilter,
    EventRead,
    Format,
    ReviewIn,
    VerificationRead,
)
from registry.deps import VaultDep
from registry.schemas import Page, Printable

router = APIRouter(prefix="/audit", tags=["audit 审计"])

From = Annotated[date | None, Query(alias="from", description="first day (local)")]
To = Annotated[date | None, Query(alias="to", description="last day, included (default: today)")]
FormatQuery = Annotated[Format, Query(alias="format", description="json, csv or xlsx")]
FILES = {200: {"content": {"text/csv": {}, export.XLSX: {}}}}


def _answer(report: AuditReport | AnomalyReport, fmt: Format):
    if fmt is Format.json:
        return report
    body, media = ((export.to_csv(report), "text/csv; charset=utf-8") if fmt is Format.csv
                   else (export.to_xlsx(report), export.XLSX))
    return Response(body, media_type=media, headers={
        "content-disposition": f'attachment; filename="{export.filename(report, fmt.value)}"'})


@router.get("/events", response_model=Page[EventRead])
def list_events(
    vault: VaultDep,
    query: Annotated[EventFilter, Query()],
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[EventRead]:
    """Access events, newest first, filtered by actor, kind, record, outcome and time."""
    return vault.audit.events(query, page=page, page_size=page_size)


@router.get("/verify", response_model=VerificationRead)
def verify_chain(vault: VaultDep) -> VerificationRead:
    """Walk the hash chain; name the first broken event."""
    return vault.audit.verify()


@router.post("/disclosure", response_model=AuditReport, responses=FILES)
def disclosure(vault: VaultDep, query: DisclosureQuery, fmt: FormatQuery = Format.json):
    """Who has seen this person's records (披露报告): every event touching the person or any
    record about them — reads, list and search appearances, writes, denials — by person id or
    by national ID number (in the body, never the URL); the whole log unless a period is
    given."""
    return _answer(vault.audit.disclosure(query, export=fmt), fmt)


@router.get("/activity", response_model=AuditReport, responses=FILES)
def activity(vault: VaultDep, user: Annotated[Printable, Query(description="a username")],
             start: From = None, end: To = None, fmt: FormatQuery = Format.json):
    """One user's events in a period (default: the last 30 days), counted per action, kind
    and outcome."""
    return _answer(vault.audit.activity(user, start, end, export=fmt), fmt)


@router.get("/denied", response_model=AuditReport, responses=FILES)
def denied(vault: VaultDep, start: From = None, end: To = None,
           fmt: FormatQuery = Format.json):
    """Denied attempts in a period (default: the last 30 days), grouped by user."""
    return _answer(vault.audit.denied(start, end, export=fmt), fmt)


@router.get("/exports", response_model=AuditReport, responses=FILES)
def exports(vault: VaultDep, start: From = None, end: To = None,
            fmt: FormatQuery = Format.json):
    """Who exported what, when (default: the last 30 days)."""
    return _answer(vault.audit.exports(start, end, export=fmt), fmt)


@router.get("/anomalies", response_model=AnomalyReport, responses=FILES)
def anomalies(vault: VaultDep, start: From = None, end: To = None,
              fmt: FormatQuery = Format.json):
    """Users whose reads in a period (default: the last 7 days) are far above their own
    baseline or their peers', at unusual hours, without a purpose outside their own cases,
    or often refused — each with its figures, its events and its review mark."""
    return _answer(vault.audit.anomalies(start, end, export=fmt), fmt)


@router.post("/anomalies/{item_id}/review", response_model=AnomalyItem)
def review(vault: VaultDep, item_id: Printable, data: ReviewIn) -> AnomalyItem:
    """Mark an anomaly-report item reviewed, with a note (marking again replaces it)."""
    return vault.audit.review(item_id, data.note)
