"""Break-glass and restricted persons from the command line, as a signed-in user like the
registers (``--as USERNAME``, password from ``REGISTRY_PASSWORD`` or a prompt)::

    registry break-glass --as police_b open rental ID --reason "…"
    registry break-glass --as auditor_a queue [--status pending|reviewed|all]
    registry break-glass --as auditor_a review GRANT_ID --note "…"
    registry persons --as police_a restrict PERSON_ID --user police_a --user justice_a
    registry persons --as police_a restriction PERSON_ID
    registry persons --as police_a lift PERSON_ID --yes

Options are checked before the sign-in; errors name the option, never a value."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from registry.breakglass.schemas import GrantKind, GrantOpen, GrantReview, QueueStatus
from registry.cli_registers import (
    PageOpt,
    PageSizeOpt,
    Yes,
    _as_user,
    _dry_run,
    _options,
    _register_app,
    _run,
)
from registry.persons.schemas import RestrictionIn

break_glass_app = _register_app("Break-glass (紧急查阅): open one record outside your scope, "
                                "read only, by stating why; auditors review the grants. "
                                "Run as a user: break-glass --as USERNAME COMMAND …")
persons_app = _register_app("Restricted persons (限制查阅): limit a person's records to named "
                            "users. Run as a user: persons --as USERNAME COMMAND …")
for _sub in (break_glass_app, persons_app):
    _sub.callback()(_as_user)


def mount(app: typer.Typer) -> None:
    present = {info.typer_instance for info in app.registered_groups}
    for name, sub in (("break-glass", break_glass_app), ("persons", persons_app)):
        if sub not in present:
            app.add_typer(sub, name=name)


@break_glass_app.command("open")
def break_glass_open(
    ctx: typer.Context, kind: GrantKind, record_id: uuid.UUID,
    reason: Annotated[str, typer.Option(help="why you need this record (kept for the auditors)")],
) -> None:
    """Open one record outside your scope for reading, for a while (audited and flagged)."""
    data = _options(GrantOpen, kind=kind, record_id=record_id, reason=reason)
    _run(ctx, None, lambda vault, _: vault.access.open_grant(
        kind=data.kind, record_id=data.record_id, reason=data.reason))


@break_glass_app.command("queue")
def break_glass_queue(ctx: typer.Context, status: QueueStatus = QueueStatus.pending,
                      page: PageOpt = 1, page_size: PageSizeOpt = 50) -> None:
    """Auditors: the grants of your area, newest first."""
    _run(ctx, None, lambda vault, _: vault.access.queue(status=status, page=page,
                                                        page_size=page_size))


@break_glass_app.command("review")
def break_glass_review(
    ctx: typer.Context, grant_id: uuid.UUID,
    note: Annotated[str, typer.Option(help="the reviewer's note")],
) -> None:
    """Auditors: sign a grant off."""
    data = _options(GrantReview, note=note)
    _run(ctx, None, lambda vault, _: vault.access.review(grant_id, note=data.note))


@persons_app.command("restrict")
def persons_restrict(
    ctx: typer.Context, person_id: uuid.UUID,
    user: Annotated[list[str], typer.Option(
        "--user", help="a user allowed to see the person's records (repeat; you are added)")],
) -> None:
    """Limit every record of the person to these users and you (replacing any list)."""
    data = _options(RestrictionIn, {"users": "--user"}, users=user)
    _run(ctx, None, lambda vault, _: vault.access.restrict(person_id, data.users))


@persons_app.command("restriction")
def persons_restriction(ctx: typer.Context, person_id: uuid.UUID) -> None:
    """Whether the person is restricted, and to whom."""
    _run(ctx, None, lambda vault, _: vault.access.restriction(person_id))


@persons_app.command("lift")
def persons_lift(ctx: typer.Context, person_id: uuid.UUID, yes: Yes = False) -> None:
    """Lift the restriction: the person's records follow scope alone again."""
    if _dry_run(ctx, yes, f"lift the restriction on person {person_id}"):
        return
    _run(ctx, None, lambda vault, _: vault.access.lift(person_id))
