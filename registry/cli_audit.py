"""``registry audit disclosure|activity|denied|exports|anomalies|review … --as USER``: the
auditors' workbench from the command line, signed in as an auditor (the API's ``/audit/…``
reports, through the same store). ``--format table`` prints the events (or items) one a line;
``json``, ``csv`` (UTF-8 with a BOM) and ``xlsx`` (needs ``--out``) write the report, and
``csv``/``xlsx`` are exports, audited as such.

``registry audit archive [--dir DIR] [--as-of DAY] [--yes]``, run by the operator: the events
past their online period, up to the last signed checkpoint before the first younger one, into
an encrypted archive file, then out of the database (a dry run without ``--yes``)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from registry.audit import export
from registry.audit.schemas import (
    AnomalyReport,
    ArchivePlan,
    ArchiveRead,
    AuditReport,
    DisclosureQuery,
    Format,
    ReviewIn,
)
from registry.cli_kit import fail, open_registry, operator, sign_in
from registry.errors import Invalid, RegistryError
from registry.vault.gate import Vault
from registry.vault.runtime import Registry

AsUser = Annotated[str, typer.Option("--as", metavar="USERNAME",
                                     help="sign in as this user ($REGISTRY_PASSWORD)")]
FromOpt = Annotated[str | None, typer.Option("--from", help="first day, YYYY-MM-DD")]
ToOpt = Annotated[str | None, typer.Option("--to", help="last day, included (default: today)")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, json, csv or xlsx")]
OutOpt = Annotated[Path | None, typer.Option(help="write here (xlsx: required)")]


def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(Invalid("must be a date (YYYY-MM-DD)", "须为日期（YYYY-MM-DD）", field=name))


def _format(value: str, out: Path | None) -> str:
    if value not in ("table", *Format):
        fail(Invalid("must be table, json, csv or xlsx", "须为 table、json、csv 或 xlsx",
                     field="--format"))
    if value == "xlsx" and out is None:
        fail(Invalid("is required for xlsx", "导出xlsx须指定文件", field="--out"))
    return value


def _run(as_user: str, work: Callable[[Vault], object]):
    """Sign in, run ``work`` in one vault, commit; a domain error exits 2 naming the field."""
    registry = open_registry()
    request_id = f"cli-{secrets.token_hex(8)}"
    actor = sign_in(registry, as_user, request_id=request_id)
    try:
        with registry.vault(actor, request_id=request_id) as vault:
            result = work(vault)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    return result


def _write(report: AuditReport | AnomalyReport, fmt: str, out: Path | None) -> None:
    if fmt == "table":
        _table(report)
        return
    data = (export.to_csv(report) if fmt == "csv" else export.to_xlsx(report) if fmt == "xlsx"
            else report.model_dump_json(indent=2).encode())
    if out is None:
        typer.echo(data.decode("utf-8-sig"), nl=False)
    else:
        out.write_bytes(data)
        typer.echo(f"wrote {out}")


def _table(report: AuditReport | AnomalyReport) -> None:
    period = f"{report.period.start} – {report.period.end}" if report.period else "all time"
    if isinstance(report, AnomalyReport):
        typer.echo(f"anomalies {period}: {len(report.items)} items")
        for i in report.items:
            figures = ", ".join(f"{k}={v}" for k, v in i.figures.items())
            mark = f"  [reviewed by {i.review.reviewed_by}]" if i.review else ""
            typer.echo(f"{i.id}  {i.rule:<12} {i.actor:<16} {i.role:<12} {figures}"
                       f"  ({len(i.seqs)} events){mark}")
        return
    subject = f" {report.subject}" if report.subject else ""
    more = " (truncated)" if report.truncated else ""
    typer.echo(f"{report.report}{subject} {period}: {report.total} events{more}")
    for by, values in report.counts.items():
        typer.echo(f"  by {by}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    for e in report.events:
        record = f"{e.kind}:{e.record_id}" if e.record_id else e.kind
        typer.echo(f"{e.seq:>8} {e.at:%Y-%m-%d %H:%M:%S}Z {e.actor:<16} {e.role:<12} "
                   f"{e.action:<10} {e.outcome:<8} {record}  purpose={e.purpose or '-'}"
                   f"  fields={','.join(e.fields) or '-'}"
                   + (f"  touched={','.join(e.touched)}" if e.touched else ""))


def disclosure(
    as_user: AsUser,
    person: Annotated[str | None, typer.Option(help="a person id")] = None,
    id_number: Annotated[str | None, typer.Option(
        "--id-number", help="national ID number (note: command lines are kept in shell "
                            "history; it is never written to the audit log)")] = None,
    start: FromOpt = None, end: ToOpt = None, fmt: FormatOpt = "table", out: OutOpt = None,
) -> None:
    """Who has seen this person's records: every event touching the person or their records."""
    fmt = _format(fmt, out)
    person_id = None
    if person is not None:
        try:
            person_id = uuid.UUID(person)
        except ValueError:
            fail(Invalid("must be a person id (UUID)", "须为人员编号（UUID）", field="--person"))
    try:
        query = DisclosureQuery.model_validate({
            "person_id": person_id, "id_number": id_number,
            "from": _date(start, "--from"), "to": _date(end, "--to")})
    except ValidationError:
        fail(Invalid("must be 15 to 24 characters", "长度须为15至24个字符", field="--id-number"))
    report = _run(as_user, lambda v: v.audit.disclosure(query, export=_export(fmt)))
    _write(report, fmt, out)


def _export(fmt: str) -> Format | None:
    return Format(fmt) if fmt in ("csv", "xlsx") else None


def activity(
    as_user: AsUser,
    user: Annotated[str, typer.Option("--user", help="whose activity")],
    start: FromOpt = None, end: ToOpt = None, fmt: FormatOpt = "table", out: OutOpt = None,
) -> None:
    """One user's events in a period (default: the last 30 days), with counts."""
    fmt = _format(fmt, out)
    first, last = _date(start, "--from"), _date(end, "--to")
    _write(_run(as_user, lambda v: v.audit.activity(user, first, last, export=_export(fmt))),
           fmt, out)


def denied(as_user: AsUser, start: FromOpt = None, end: ToOpt = None, fmt: FormatOpt = "table",
           out: OutOpt = None) -> None:
    """Denied attempts in a period (default: the last 30 days), grouped by user."""
    fmt = _format(fmt, out)
    first, last = _date(start, "--from"), _date(end, "--to")
    _write(_run(as_user, lambda v: v.audit.denied(first, last, export=_export(fmt))), fmt, out)


def exports(as_user: AsUser, start: FromOpt = None, end: ToOpt = None,
            fmt: FormatOpt = "table", out: OutOpt = None) -> None:
    """Who exported what, when (default: the last 30 days)."""
    fmt = _format(fmt, out)
    first, last = _date(start, "--from"), _date(end, "--to")
    _write(_run(as_user, lambda v: v.audit.exports(first, last, export=_export(fmt))), fmt, out)


def anomalies(as_user: AsUser, start: FromOpt = None, end: ToOpt = None,
              fmt: FormatOpt = "table", out: OutOpt = None) -> None:
    """Users far above their baseline or peers, at odd hours, without purposes, or often
    refused (default: the last 7 days)."""
    fmt = _format(fmt, out)
    first, last = _date(start, "--from"), _date(end, "--to")
    _write(_run(as_user, lambda v: v.audit.anomalies(first, last, export=_export(fmt))),
           fmt, out)


def review(
    item: Annotated[str, typer.Argument(help="the item id, from `registry audit anomalies`")],
    as_user: AsUser,
    note: Annotated[str, typer.Option(help="what the review found")],
) -> None:
    """Mark an anomaly-report item reviewed, with a note."""
    try:
        text = ReviewIn(note=note).note
    except ValidationError:
        fail(Invalid("must be 1 to 2000 characters", "须为1至2000个字符", field="--note"))
    found = _run(as_user, lambda v: v.audit.review(item, text))
    typer.echo(f"reviewed {found.id} ({found.rule}, {found.actor})")


def archive(
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="where to write (default: the setting audit_archive_dir, or "
                      "data_dir/audit-archive)")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="the day the online period is counted back from (YYYY-MM-DD, not in "
                        "the future; default today)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="really archive (without it: what would "
                                                     "go)")] = False,
) -> None:
    """Move the audit events past their online period (REGISTRY_RETENTION_AUDIT_MONTHS) into
    an encrypted, checksummed archive file, up to the last signed checkpoint before the first
    younger event, then delete them from the database, leaving an anchor where the online
    chain now starts. Interrupted, run it again."""
    registry = open_registry()
    day = archive_day(registry, as_of)
    directory = directory or registry.settings.resolved_audit_archive_dir
    if not yes:
        try:
            with registry.vault(operator()) as vault:
                plan = vault.audit.archive_plan(day)
        except RegistryError as exc:
            fail(exc)
        typer.echo(describe_plan(plan, directory))
        typer.echo("dry run: nothing was archived. Re-run with --yes to do it.")
        return
    done = archive_audit(registry, day, directory)
    typer.echo(describe_archive(done) if done else "nothing to archive")


def archive_day(registry: Registry, value: str | None) -> date:
    today = registry.clock.today()
    day = _date(value, "--as-of") or today
    if day > today:
        fail(Invalid("may not be in the future (that would archive early)",
                     "不能是未来日期（否则会提前归档）", field="--as-of"))
    return day


def archive_audit(registry: Registry, day: date, directory: Path) -> ArchiveRead | None:
    """One archive run as the operator, committed; a domain error exits 2 naming it."""
    try:
        with registry.vault(operator()) as vault:
            done = vault.audit.archive(day, directory)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    return done


def describe_plan(plan: ArchivePlan, directory: Path) -> str:
    past = (f"{plan.past} audit events are past their online period (before "
            f"{plan.cutoff:%Y-%m-%d})")
    if plan.last_seq is None:
        return f"{past}; none can be archived yet (no signed checkpoint among them)"
    return (f"{past}; events {plan.first_seq}..{plan.last_seq} ({plan.first_at:%Y-%m-%d} – "
            f"{plan.last_at:%Y-%m-%d}, {plan.events} events, up to the signed checkpoint at "
            f"{plan.last_seq}) would be archived into {directory} and deleted from the "
            "database")


def describe_archive(done: ArchiveRead) -> str:
    again = " (the file of an earlier run, taken up)" if done.reused else ""
    return (f"archived events {done.first_seq}..{done.last_seq} ({done.events} events, "
            f"{done.first_at:%Y-%m-%d} – {done.last_at:%Y-%m-%d}) into {done.file}{again}; "
            f"the online chain now starts at event {done.last_seq + 1}. Keep the file offline "
            "as the county's rules require; `registry audit verify --archive FILE` checks it")


def mount(audit_app: typer.Typer) -> None:
    for command in (disclosure, activity, denied, exports, anomalies, review, archive):
        audit_app.command(command.__name__)(command)
