from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from registry.deps import PurposeDep, VaultDep
from registry.errors import Invalid
from registry.metrics import export, service
from registry.metrics.schemas import BaselineIn, Report, ShortfallPage, TrendPoint
from registry.schemas import JurisdictionCode

router = APIRouter(prefix="/metrics", tags=["metrics 考核指标"])

At = Annotated[JurisdictionCode | None, Query(description="a node (default: your own)")]
AsOf = Annotated[date | None, Query(description="default: today")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("", response_model=Report)
def read_metrics(vault: VaultDep, at: At = None, as_of: AsOf = None) -> Report:
    """Every metric you may see for a node and each of its children, as of a date: numerator,
    denominator, rate, target, met or not, and the gap. Aggregates only: small counts come
    suppressed unless you may list the register's records."""
    return service.report(vault, at=at, as_of=as_of)


@router.get("/report.xlsx", response_class=Response,
            responses={200: {"content": {XLSX: {}}}})
def export_metrics(vault: VaultDep, at: At = None, as_of: AsOf = None) -> Response:
    """The same report as a workbook: a summary sheet and one sheet per metric."""
    report = service.report(vault, at=at, as_of=as_of, export="xlsx")
    return Response(export.to_xlsx(report), media_type=XLSX, headers={
        "content-disposition": f'attachment; filename="metrics-{report.code}-{report.as_of}.xlsx"'})


@router.get("/trend", response_model=list[TrendPoint])
def read_trend(vault: VaultDep, start: Annotated[date, Query(alias="from")],
               end: Annotated[date, Query(alias="to")], at: At = None) -> list[TrendPoint]:
    """The node's metrics at each month end between two dates (at most five years)."""
    if end < start or (end - start).days > 366 * 5:
        raise Invalid("must follow 'from', at most five years later", "须晚于起始日期且不超过五年",
                      field="to")
    return service.trend(vault, at=at, start=start, end=end)


@router.put("/baselines/{code}/{metric}", status_code=204)
def put_baseline(code: JurisdictionCode, metric: str, data: BaselineIn,
                 vault: VaultDep) -> None:
    """A door-to-door survey's count for a node: where larger than the registry's, it stands
    in for the metric's denominator (rental_registration, pledge_signing, resident_entry)."""
    service.set_baseline(vault, code, metric, data)


@router.delete("/baselines/{code}/{metric}", status_code=204)
def delete_baseline(code: JurisdictionCode, metric: str, vault: VaultDep) -> None:
    """Remove a survey baseline."""
    service.set_baseline(vault, code, metric, None)


@router.get("/{metric}/shortfall", response_model=ShortfallPage)
def read_shortfall(
    metric: str, vault: VaultDep, purpose: PurposeDep, at: At = None, as_of: AsOf = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ShortfallPage:
    """The records that keep the node below the metric's target, each with its reasons — as
    the register's own list shows them to you (masked without X-Purpose). Aggregate-only roles
    get 403: they see counts, never records."""
    return service.shortfall(vault, metric, at=at, as_of=as_of, page=page,
                             page_size=page_size, purpose=purpose)


@router.get("/{metric}/chart.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def chart(metric: str, vault: VaultDep, at: At = None, as_of: AsOf = None) -> Response:
    """Rate against target for each child of the node, as an SVG bar chart."""
    return Response(service.chart(vault, metric, at=at, as_of=as_of),
                    media_type="image/svg+xml")
