"""``registry retention``: what the retention rules say must go (plan), erasing it by
crypto-shredding (apply), and legal holds that stop it. Run by the operator (role ``system``,
which opens no personal data: erasure deletes rows and destroys keys); every step is audited."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import date
from typing import Annotated

import typer

from registry.cli_audit import archive_audit, describe_archive
from registry.cli_kit import fail, open_registry, operator
from registry.errors import Invalid, RegistryError
from registry.retention.schemas import DueRead, PlanRead
from registry.vault.runtime import Registry

retention_app = typer.Typer(help="Retention: plan, apply (crypto-shredding), legal holds.",
                            no_args_is_help=True)

AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="evaluate the rules on this day (YYYY-MM-DD, not in the future)")]


def _day(registry, value: str | None) -> date:
    today = registry.clock.today()
    if value is None:
        return today
    try:
        day = date.fromisoformat(value)
    except ValueError:
        fail(Invalid("use YYYY-MM-DD", "日期格式应为 YYYY-MM-DD", field="as_of"))
    if day > today:
        fail(Invalid("may not be in the future (that would erase early)",
                     "不能是未来日期（否则会提前删除）", field="as_of"))
    return day


@retention_app.command("plan")
def plan(as_of: AsOf = None,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print what would be erased (or archived) and why, and what a legal hold keeps."""
    registry = open_registry()
    day = _day(registry, as_of)
    try:
        with registry.vault(operator()) as vault:
            items = vault.retention.plan(day)
            audit_old = vault.retention.audit_past_retention(day)
            audit_plan = vault.audit.archive_plan(day)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    if as_json:
        typer.echo(PlanRead(as_of=day, items=[
            DueRead(kind=i.kind, record_id=i.record_id, action=i.action, rule=i.rule,
                    due_on=i.due_on, jurisdiction_code=i.jurisdiction_code, held=i.held)
            for i in items], audit_events_past_retention=audit_old).model_dump_json(indent=2))
        return
    for item in items:
        held = f"  HELD ({item.held})" if item.held else ""
        typer.echo(f"{item.action:8} {item.kind:12} {item.record_id}  {item.rule:20} "
                   f"due {item.due_on}  {item.jurisdiction_code or ''}{held}")
    counts = Counter((i.action, bool(i.held)) for i in items)
    typer.echo(f"as of {day}: {counts[('erase', False)]} to erase, "
               f"{counts[('archive', False)]} to archive, "
               f"{counts[('erase', True)] + counts[('archive', True)]} kept by legal holds; "
               f"{audit_old} audit events are past their online period, "
               f"{audit_plan.events} of them to archive (up to the last signed checkpoint)")


@retention_app.command("apply")
def apply(
    as_of: AsOf = None,
    yes: Annotated[bool, typer.Option("--yes", help="really erase (without it: the plan)")]
    = False,
    vacuum: Annotated[bool, typer.Option(
        help="afterwards, leave no old copy of a destroyed key in the database's files")] = True,
) -> None:
    """Erase what the plan lists: delete the rows, destroy their data keys (crypto-shredding),
    leave tombstones; archive ended corrections cases read-only. In batches, each committed
    with its audit events; interrupted, run it again. Then move the audit events past their
    online period into an archive file (as `registry audit archive --yes`)."""
    if not yes:
        plan(as_of=as_of, as_json=False)
        typer.echo("nothing erased: add --yes to apply the plan")
        raise typer.Exit(code=1)
    registry = open_registry()
    day = _day(registry, as_of)
    done: Counter = Counter()
    shredded = 0
    try:
        while True:
            with registry.vault(operator()) as vault:
                batch = vault.retention.apply(day, registry.settings.retention_batch)
                vault.commit()
            with registry.vault(operator()) as vault:  # their keys, once the rows are gone
                shredded += vault.retention.shred()
                vault.commit()
            if not batch:
                break
            done.update(batch)
        if vacuum and shredded:
            _compact(registry)
    except RegistryError as exc:
        fail(exc)
    archived = archive_audit(registry, day, registry.settings.resolved_audit_archive_dir)
    if archived is not None:
        done[("audit", "archive")] = archived.events
    typer.echo(json.dumps({f"{kind}:{action}": n for (kind, action), n in sorted(done.items())}
                          or {}, ensure_ascii=False))
    if archived is not None:
        typer.echo(describe_archive(archived))


@retention_app.command("compact")
def compact() -> None:
    """Leave no old copy of a destroyed data key in the database's files (what `apply` does
    after an erasure; run it again when `apply` said a long transaction stopped it)."""
    registry = open_registry()
    try:
        _compact(registry)
    except RegistryError as exc:
        fail(exc)
    typer.echo("compacted")


def _compact(registry: Registry) -> None:
    with registry.vault(operator()) as vault:
        clean = vault.retention.compact()
    if not clean:
        typer.secho(
            "warning: a transaction older than the erasure is still open on the database "
            "server, so old copies of the destroyed keys may remain in its files for now: run "
            "`registry retention compact` once it has ended\n"
            "警告：数据库服务器上仍有早于删除操作的事务未结束，已销毁密钥的旧副本可能暂留在数据库文件中；"
            "待其结束后请运行 `registry retention compact`",
            fg=typer.colors.YELLOW, err=True)


@retention_app.command("hold")
def hold(kind: str, record_id: uuid.UUID,
         reference: Annotated[str, typer.Option(help="the order's number (文号)")]) -> None:
    """Place a legal hold on a record (kind: resident, release, rental, corrections) or on a
    person (kind: person) and all their records: retention will not erase it."""
    registry = open_registry()
    try:
        with registry.vault(operator()) as vault:
            row = vault.retention.hold(kind, record_id, reference)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"hold {row.id} on {row.ref}")


@retention_app.command("lift")
def lift(hold_id: uuid.UUID) -> None:
    """Lift a legal hold."""
    registry = open_registry()
    try:
        with registry.vault(operator()) as vault:
            row = vault.retention.lift(hold_id)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"lifted hold {row.id} on {row.ref}")


@retention_app.command("holds")
def holds() -> None:
    """The legal holds in force."""
    registry = open_registry()
    try:
        with registry.vault(operator()) as vault:
            rows = vault.retention.holds()
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    for row in rows:
        typer.echo(f"{row.id}  {row.ref}  {row.reference}  by {row.placed_by} "
                   f"at {row.placed_at:%Y-%m-%d %H:%M}")
