"""The leadership's targets dashboard: each metric for the node and per child jurisdiction, a
bar against the target line, the gap counts, drill-down by clicking a child, and the same
report as an XLSX workbook. Aggregates only — the metrics service through the gate, which
suppresses small counts for those who may not list the records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from registry.metrics import export
from registry.metrics import service as metrics
from registry.metrics.schemas import MetricRow, Report
from registry.web.kit import PageDep

router = APIRouter()

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
At = Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}(\d{3}(\d{3})?)?)?$")]


def _panels(report: Report) -> list[dict]:
    """Per metric: the node's own row, its children's rows, and the scale of the bars (rates
    above 1, as a staffing ratio can be, widen it)."""
    panels: dict[str, dict] = {}
    for row in report.rows:
        panel = panels.setdefault(row.metric, {"node": None, "children": [], "metric": row})
        if row.node:
            panel["node"] = row
        else:
            panel["children"].append(row)
    for panel in panels.values():
        rates = [r.rate for r in [panel["node"], *panel["children"]] if r and r.rate]
        target = panel["metric"].target or 0
        panel["scale"] = max([1.0, target, *rates])
    return list(panels.values())


def bar(row: MetricRow | None, scale: float) -> dict:
    """A bar's geometry in a 0-100 box: its length and the target line's place."""
    if row is None:
        return {"width": 0, "target": None}
    width = 0 if row.rate is None else round(100 * row.rate / scale, 1)
    target = None if row.target is None else round(100 * row.target / scale, 1)
    return {"width": width, "target": target}


@router.get("/dashboard")
def dashboard(page: PageDep, at: At = None):
    with page.vault() as vault:
        report = metrics.report(vault, at=at, as_of=None)
        vault.commit()
    parent = report.code[:-3] if len(report.code) > 6 else None
    if parent and page.actor.scope and not parent.startswith(page.actor.scope):
        parent = None
    return page.render("dashboard.html", report=report, panels=_panels(report), bar=bar,
                       parent=parent)


@router.get("/dashboard.xlsx")
def dashboard_xlsx(page: PageDep, at: At = None):
    with page.vault() as vault:
        report = metrics.report(vault, at=at, as_of=None, export="xlsx")
        vault.commit()
    return Response(export.to_xlsx(report), media_type=XLSX, headers={
        "content-disposition":
            f'attachment; filename="metrics-{report.code}-{report.as_of}.xlsx"'})
