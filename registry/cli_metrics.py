"""``registry metrics --as USER [--at NODE] [--as-of DATE] [--format …]``: the county plan's
targets for a node and its children, as the signed-in user may see them (the API's
``GET /metrics``). The terminal table marks each rate met (green) or short (red) with the gap;
``--from/--to`` gives the node's rates at each month end instead; ``--shortfall METRIC`` lists
the records that are short of it, as the register's own list shows them to the user."""

from __future__ import annotations

import json
import secrets
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from registry.cli_kit import fail, open_registry, sign_in
from registry.errors import Invalid, RegistryError
from registry.metrics import export, service
from registry.metrics.schemas import BaselineIn, MetricRow, Report


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    xlsx = "xlsx"


def metrics(
    as_user: Annotated[str, typer.Option("--as", metavar="USERNAME",
                                         help="sign in as this user ($REGISTRY_PASSWORD)")],
    at: Annotated[str | None, typer.Option(help="a jurisdiction code (default: yours)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today)")]
    = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv, json or xlsx")]
    = Format.table,
    out: Annotated[Path | None, typer.Option(help="write here (xlsx: required)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="trend: first month")] = None,
    end: Annotated[str | None, typer.Option("--to", help="trend: last day")] = None,
    shortfall: Annotated[str | None, typer.Option(
        help="list the records short of this metric (e.g. pledge_signing), as JSON")] = None,
    purpose: Annotated[str | None, typer.Option(
        help="with --shortfall: why full personal data is needed (else masked)")] = None,
    page: Annotated[int, typer.Option(min=1, help="with --shortfall: the page")] = 1,
) -> None:
    """The county plan's targets (考核指标) for a node and its children."""
    on, first, last = (_date(v, name) for v, name in
                       ((as_of, "--as-of"), (start, "--from"), (end, "--to")))
    if fmt is Format.xlsx and out is None:
        fail(Invalid("is required for xlsx", "导出xlsx须指定文件", field="--out"))
    if (first is None) != (last is None) or (first and last and last < first):
        fail(Invalid("give both --from and --to, in order", "须同时给出 --from 与 --to，且先后有序",
                     field="--from"))
    registry = open_registry()
    request_id = f"cli-{secrets.token_hex(8)}"
    actor = sign_in(registry, as_user, request_id=request_id)
    try:
        with registry.vault(actor, request_id=request_id) as vault:
            if shortfall is not None:
                found = service.shortfall(vault, shortfall, at=at, as_of=on, page=page,
                                          page_size=100, purpose=purpose)
                vault.commit()
                typer.echo(found.model_dump_json(indent=2))
                return
            if first is not None:
                points = service.trend(vault, at=at, start=first, end=last)
                vault.commit()
                typer.echo(json.dumps([p.model_dump(mode="json") for p in points],
                                      ensure_ascii=False, indent=2))
                return
            # A file (or CSV on the terminal) leaves the system: an export in the audit log.
            leaves = fmt in (Format.xlsx, Format.csv) or out is not None
            report = service.report(vault, at=at, as_of=on,
                                    export=fmt.value if leaves else None)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    if fmt is Format.xlsx:
        out.write_bytes(export.to_xlsx(report))
        typer.echo(f"wrote {out}")
    elif fmt is Format.table:
        _table(report)
    else:
        text = (export.to_csv(report) if fmt is Format.csv
                else report.model_dump_json(indent=2))
        if out is not None:
            out.write_text(text, encoding="utf-8-sig" if fmt is Format.csv else "utf-8")
            typer.echo(f"wrote {out}")
        else:
            typer.echo(text)


def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(Invalid("must be a date (YYYY-MM-DD)", "须为日期（YYYY-MM-DD）", field=name))


def _table(report: Report) -> None:
    typer.echo(f"{report.name} ({report.code}) — as of {report.as_of} / 截至 {report.as_of}")
    current = None
    for row in report.rows:
        if row.metric != current:
            current = row.metric
            target = "—" if row.target is None else f"≥{row.target:.0%}"
            typer.secho(f"\n{row.name_zh} / {row.name_en}  (target {target})", bold=True)
        typer.secho(_line(row), fg=_colour(row))


def _line(row: MetricRow) -> str:
    rate = "" if row.rate is None else f"{row.rate:7.1%}"
    verdict = {True: "met 达标", False: f"short 未达标, {row.gap} more 还需{row.gap}",
               None: "suppressed 已隐藏" if row.suppressed else row.note}[row.met]
    if row.note and row.met is not None:
        verdict += f"  [{row.note}]"
    name = f"{'' if row.node else '  '}{row.name} {row.code}"
    return f"{name:<40} {row.numerator!s:>8} / {row.denominator!s:<8} {rate:>8}  {verdict}"


def _colour(row: MetricRow) -> str | None:
    if row.met is None or row.target is None:
        return None
    return typer.colors.GREEN if row.met else typer.colors.RED


def survey_baseline(
    code: Annotated[str, typer.Argument(help="the jurisdiction surveyed")],
    metric: Annotated[str, typer.Argument(
        help="rental_registration, pledge_signing or resident_entry")],
    count: Annotated[int | None, typer.Argument(min=0, help="how many the survey counted")]
    = None,
    as_user: Annotated[str, typer.Option("--as", metavar="USERNAME",
                                         help="sign in as this user ($REGISTRY_PASSWORD)")] = "",
    on: Annotated[str | None, typer.Option("--on", help="survey date (default: today)")]
    = None,
    remove: Annotated[bool, typer.Option("--remove", help="drop the baseline")] = False,
) -> None:
    """Record a door-to-door survey's count (入户普查基数): where larger than the registry's
    count, it stands in for the metric's denominator, and the report says so."""
    if not as_user:
        fail(Invalid("is required", "必须指定用户", field="--as"))
    if (count is None) != remove:
        fail(Invalid("give a COUNT, or --remove", "请给出数量，或使用 --remove", field="COUNT"))
    surveyed = _date(on, "--on")
    registry = open_registry()
    request_id = f"cli-{secrets.token_hex(8)}"
    actor = sign_in(registry, as_user, request_id=request_id)
    try:
        with registry.vault(actor, request_id=request_id) as vault:
            data = None if remove else BaselineIn(count=count,
                                                  surveyed_on=surveyed or vault.clock.today())
            service.set_baseline(vault, code, metric, data)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"{'removed' if remove else 'recorded'}: {code} {metric}")
