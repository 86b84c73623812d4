"""The auditors' reports as files: CSV (UTF-8 with a BOM, so Excel reads the Chinese headers)
and an XLSX workbook (the events, then the counts). Events carry ids and field names, never
personal data, so neither does a file."""

from __future__ import annotations

import io

import pandas as pd

from registry.audit.schemas import AnomalyReport, AuditReport

EVENT_HEADERS = {
    "seq": "序号 seq", "at": "时间 at (UTC)", "actor": "用户 actor", "role": "角色 role",
    "action": "操作 action", "kind": "类别 kind", "record_id": "记录 record",
    "jurisdiction_code": "辖区 jurisdiction", "fields": "字段 fields", "purpose": "事由 purpose",
    "outcome": "结果 outcome", "touched": "涉及记录 touched", "detail": "说明 detail",
}
ITEM_HEADERS = {
    "id": "条目 item", "rule": "规则 rule", "actor": "用户 actor", "role": "角色 role",
    "figures": "数据 figures", "events": "事件数 events", "seqs": "事件序号 seqs",
    "reviewed_by": "复核人 reviewed by", "reviewed_at": "复核时间 reviewed at",
    "note": "复核意见 note",
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _events(report: AuditReport) -> pd.DataFrame:
    rows = [{**e.model_dump(include=set(EVENT_HEADERS)), "at": e.at.isoformat(),
             "fields": ",".join(e.fields), "touched": ",".join(e.touched)}
            for e in report.events]
    return pd.DataFrame(rows, columns=list(EVENT_HEADERS)).rename(columns=EVENT_HEADERS)


def _counts(report: AuditReport) -> pd.DataFrame:
    rows = [{"计数 by": by, "值 value": value, "数量 count": count}
            for by, values in report.counts.items() for value, count in values.items()]
    return pd.DataFrame(rows, columns=["计数 by", "值 value", "数量 count"])


def _items(report: AnomalyReport) -> pd.DataFrame:
    rows = [{"id": i.id, "rule": i.rule, "actor": i.actor, "role": i.role,
             "figures": "; ".join(f"{k}={v}" for k, v in i.figures.items()),
             "events": len(i.seqs), "seqs": " ".join(map(str, i.seqs)),
             "reviewed_by": i.review.reviewed_by if i.review else "",
             "reviewed_at": i.review.reviewed_at.isoformat() if i.review else "",
             "note": i.review.note if i.review else ""} for i in report.items]
    return pd.DataFrame(rows, columns=list(ITEM_HEADERS)).rename(columns=ITEM_HEADERS)


def _frame(report: AuditReport | AnomalyReport) -> pd.DataFrame:
    return _items(report) if isinstance(report, AnomalyReport) else _events(report)


def to_csv(report: AuditReport | AnomalyReport) -> bytes:
    return _frame(report).to_csv(index=False).encode("utf-8-sig")


def to_xlsx(report: AuditReport | AnomalyReport) -> bytes:
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as book:
        if isinstance(report, AnomalyReport):
            _items(report).to_excel(book, sheet_name="异常 anomalies", index=False)
        else:
            _events(report).to_excel(book, sheet_name="事件 events", index=False)
            _counts(report).to_excel(book, sheet_name="统计 counts", index=False)
        for sheet in book.sheets.values():
            for column in sheet.columns:
                sheet.column_dimensions[column[0].column_letter].width = 18
    return out.getvalue()


def filename(report: AuditReport | AnomalyReport, extension: str) -> str:
    name = "anomalies" if isinstance(report, AnomalyReport) else report.report
    period = f"-{report.period.start}-{report.period.end}" if report.period else ""
    return f"audit-{name}{period}.{extension}"
