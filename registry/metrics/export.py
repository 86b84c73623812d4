"""The targets report as tables for people: CSV, an XLSX workbook for the assessment office
(a summary sheet, then one sheet per metric, Chinese headers), and an SVG chart of rate against
target by child jurisdiction. pandas shapes the tables; the chart is plain SVG, drawn here so
that it needs nothing from outside the county network."""

from __future__ import annotations

import io
from html import escape

import pandas as pd

from registry.metrics.schemas import MetricRow, Report

HEADERS = {
    "name_zh": "指标", "code": "辖区代码", "name": "辖区名称", "numerator": "分子",
    "denominator": "分母", "rate": "比率", "target": "目标", "met": "是否达标",
    "gap": "差额（还需）", "note": "说明",
}


def frame(rows: list[MetricRow]) -> pd.DataFrame:
    data = pd.DataFrame([r.model_dump() for r in rows], columns=[*HEADERS, "metric", "node"])
    data["met"] = data["met"].map({True: "达标", False: "未达标"}).fillna("")
    data["rate"] = data["rate"].map(lambda r: "" if pd.isna(r) else f"{r:.1%}")
    data["target"] = data["target"].map(lambda t: "—" if pd.isna(t) else f"≥{t:.0%}")
    data["gap"] = data["gap"].map(lambda g: "" if pd.isna(g) else int(g))
    return data


def to_csv(report: Report) -> str:
    return frame(report.rows)[list(HEADERS)].rename(columns=HEADERS).to_csv(index=False)


def to_xlsx(report: Report) -> bytes:
    data = frame(report.rows)
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as book:
        title = pd.DataFrame({"": [f"{report.name}（{report.code}） 截至 {report.as_of}"]})
        summary = data[data["node"]][list(HEADERS)].rename(columns=HEADERS)
        title.to_excel(book, sheet_name="汇总", index=False, header=False)
        summary.to_excel(book, sheet_name="汇总", index=False, startrow=2)
        for _, rows in data.groupby("metric", sort=False):
            sheet = rows.iloc[0]["name_zh"][:31]
            rows[list(HEADERS)].rename(columns=HEADERS).to_excel(book, sheet_name=sheet,
                                                                 index=False)
        for sheet in book.sheets.values():
            for column in sheet.columns:
                sheet.column_dimensions[column[0].column_letter].width = 16
    return out.getvalue()


def chart_svg(report: Report, metric: str) -> str:
    """Bars of each child's rate, with the target as a line (suppressed rates left blank)."""
    rows = [r for r in report.rows if r.metric == metric and not r.node]
    head = next(r for r in report.rows if r.metric == metric and r.node)
    top = max([1.0, *(r.rate for r in rows if r.rate is not None)])
    bar, gap, left = 28, 10, 180
    height = 16 + (bar + gap) * max(len(rows), 1)
    width = left + 420
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
             f'font-family="sans-serif" font-size="12" role="img" '
             f'aria-label="{escape(head.name_zh)} {escape(report.name)}">',
             f'<text x="8" y="14" font-weight="bold">{escape(head.name_zh)} — '
             f'{escape(report.name)} {report.as_of}</text>']
    for i, r in enumerate(rows):
        y = 24 + i * (bar + gap)
        label = escape(f"{r.name} ({r.code})")
        parts.append(f'<text x="8" y="{y + bar * 0.65:.0f}">{label}</text>')
        if r.rate is None:
            text = "<5" if r.suppressed else "—"
            parts.append(f'<text x="{left + 4}" y="{y + bar * 0.65:.0f}">{escape(text)}</text>')
            continue
        length = 400 * r.rate / top
        colour = "#2e7d32" if r.met or r.target is None else "#c62828"
        parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" '
                     f'fill="{colour}"><title>{r.rate:.1%}</title></rect>')
        parts.append(f'<text x="{left + length + 4:.1f}" y="{y + bar * 0.65:.0f}">'
                     f'{r.rate:.1%}</text>')
    if head.target is not None:
        x = left + 400 * head.target / top
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height + 10}" '
                     f'stroke="#000" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="{height + 26}">目标 {head.target:.0%}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
