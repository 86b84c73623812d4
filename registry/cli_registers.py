"""The registers from the command line: ``registry rentals|residents|corrections|releases …``.

Every command acts as a signed-in user, ``--as USERNAME`` on the register (``registry rentals
--as police_a show ID``); the password comes from ``REGISTRY_PASSWORD``, else a hidden prompt
(a line of standard input when that is not a terminal). A command then runs exactly as an API
request does: one sign-in (an audit event), one vault over one unit of work, the same service
function, one commit, and the answer printed as JSON (UTF-8, Chinese as written). Without
``--purpose`` personal data comes masked, as over the API without ``X-Purpose``; with it, the
purpose is written into the audit event.

Input is checked before the sign-in, so a malformed file costs no login. Errors go to standard
error and exit 2, never as a traceback: domain errors as ``error: <field>: <English> /
<Chinese>``, schema errors as the offending field names with pydantic's message — never the
submitted values. Destructive commands (deregister, move-out, ending a corrections case,
closing a release case) without ``--yes`` say what they would do and touch nothing, not even
the sign-in.

The token a command signs in with lives only in this process; it is not written anywhere, so
it is not revoked afterwards (a logout would add an audit event and protect nothing).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import pydantic_core
import typer
from pydantic import BaseModel, ValidationError

from registry.cli_kit import PASSWORD_ENV, fail, load_settings, open_registry, sign_in
from registry.config import Settings
from registry.corrections import service as corrections
from registry.corrections.schemas import (
    CaseCreate,
    CaseStatus,
    CaseUpdate,
    Category,
    CheckInIn,
    Method,
    ReportIn,
    SanctionIn,
    StatusChange,
)
from registry.errors import Invalid, PayloadTooLarge, RegistryError, SetupError
from registry.releases import service as releases
from registry.releases.schemas import (
    AssistanceIn,
    AssistanceKind,
    CloseIn,
    CloseReason,
    PlacementIn,
    PlacementKind,
    PlacementStatus,
    ReleaseCreate,
    ReleaseUpdate,
)
from registry.rentals import service as rentals
from registry.rentals.schemas import (
    Deregistration,
    PledgeIn,
    PledgeState,
    RentalCreate,
    RentalSearch,
    RentalStatus,
    RentalUpdate,
)
from registry.residents import service as residents
from registry.residents.schemas import (
    ArrivalIn,
    MoveIn,
    MoveOut,
    ResidentSearch,
    ResidentUpdate,
)
from registry.validation import parse_purpose
from registry.vault.base import Actor
from registry.vault.gate import Vault
from registry.vault.runtime import Registry

M = TypeVar("M", bound=BaseModel)

_CODE = re.compile(r"\d{6}(\d{3}(\d{3}(\d{3})?)?)?")
_DESTRUCTIVE_STATUSES = (CaseStatus.ended, CaseStatus.terminated)
_MESSAGES_ZH = {"missing": "缺少必填字段", "extra_forbidden": "不允许的字段",
                "json_invalid": "JSON 格式错误"}


def _register_app(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, pretty_exceptions_enable=False)


rentals_app = _register_app("Rental properties, landlords and pledges (出租房屋). "
                            "Run as a user: rentals --as USERNAME COMMAND …")
residents_app = _register_app("Migrant residents (流动人口). "
                              "Run as a user: residents --as USERNAME COMMAND …")
corrections_app = _register_app("Community-corrections cases (社区矫正). "
                                "Run as a user: corrections --as USERNAME COMMAND …")
releases_app = _register_app("Released persons: resettlement and aftercare (安置帮教). "
                             "Run as a user: releases --as USERNAME COMMAND …")
_APPS = {"rentals": rentals_app, "residents": residents_app, "corrections": corrections_app,
         "releases": releases_app}


def mount(app: typer.Typer) -> None:
    """Add the four registers to ``app``; calling it again changes nothing."""
    present = {info.typer_instance for info in app.registered_groups}
    for name, sub in _APPS.items():
        if sub not in present:
            app.add_typer(sub, name=name)


# --- who is acting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Caller:
    username: str | None
    request_id: str  # ties the sign-in event to the command's events


def _as_user(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option(
        "--as", metavar="USERNAME",
        help=f"act as this user (required); the password comes from ${PASSWORD_ENV} or a "
             "hidden prompt")] = None,
) -> None:
    # Checked in each command rather than by click, so `COMMAND --help` works without it.
    ctx.obj = _Caller(username, f"cli-{secrets.token_hex(8)}")


for _sub in _APPS.values():
    _sub.callback()(_as_user)


def _caller(ctx: typer.Context) -> _Caller:
    caller = ctx.find_object(_Caller)
    if caller is None or not caller.username:
        fail(Invalid("is required: the registers are used as a signed-in user "
                      "(e.g. `registry rentals --as police_a list`)",
                      "必须指定用户：登记簿须以登录用户身份使用", field="--as"))
    return caller


def _sign_in(registry: Registry, caller: _Caller) -> Actor:
    return sign_in(registry, caller.username or "", request_id=caller.request_id)


# --- the one way a command runs --------------------------------------------------------------


def _purpose(text: str | None, settings: Settings) -> str | None:
    """The same rule as the API's X-Purpose (:func:`registry.validation.parse_purpose`)."""
    try:
        return parse_purpose(text, max_length=settings.purpose_max_length, field="--purpose")
    except Invalid as exc:
        fail(exc)


def _run(ctx: typer.Context, purpose: str | None,
         work: Callable[[Vault, str | None], Any]) -> None:
    """Sign in, do ``work`` in one vault, commit (with its audit events), print the answer."""
    caller = _caller(ctx)
    registry = open_registry()
    purpose = _purpose(purpose, registry.settings)
    actor = _sign_in(registry, caller)
    try:
        with registry.vault(actor, request_id=caller.request_id) as vault:
            result = work(vault, purpose)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    _emit(result.model_dump_json(indent=2) if isinstance(result, BaseModel)
          else pydantic_core.to_json(result, indent=2).decode())


def _emit(text: str) -> None:
    """Print as UTF-8 whatever the locale says, so Chinese stays readable."""
    stream = typer.get_text_stream("stdout")
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if encoding != "utf8" and hasattr(stream, "buffer"):
        stream.flush()
        stream.buffer.write((text + "\n").encode("utf-8"))
        stream.buffer.flush()
        return
    typer.echo(text)


def _dry_run(ctx: typer.Context, yes: bool, what: str) -> bool:
    """Without --yes: say what would happen and change nothing (not even a sign-in)."""
    _caller(ctx)
    if yes:
        return False
    typer.echo(f"dry run: would {what}; nothing was changed. Re-run with --yes to do it.")
    return True


# --- input -----------------------------------------------------------------------------------


def _invalid_fields(error: ValidationError, heading: str,
                    names: Callable[[str], str]) -> NoReturn:
    """Name each offending field with pydantic's message; drop its input and context, which
    could carry the submitted (personal) value."""
    typer.secho(f"error: {heading}:", fg=typer.colors.RED, err=True)
    for item in error.errors(include_input=False, include_context=False, include_url=False):
        if item["type"] == "json_invalid":  # the message gives line and column, no text
            where = "(JSON)"
        else:
            where = names(".".join(str(part) for part in item["loc"]) or "(body)")
        message_zh = _MESSAGES_ZH.get(item["type"], "字段无效")
        typer.secho(f"  {where}: {item['msg']} / {message_zh}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _body(source: str, schema: type[M]) -> M:
    """A JSON body from a file, or from standard input when ``source`` is '-'."""
    limit = load_settings().max_request_bytes
    if source == "-":
        if not os.environ.get(PASSWORD_ENV) and not sys.stdin.isatty():
            fail(SetupError(f"the body and the password cannot both come from standard input; "
                             f"set {PASSWORD_ENV} or give a file",
                             f"正文和密码不能都从标准输入读取；请设置 {PASSWORD_ENV} 或指定文件"))
        raw = typer.get_binary_stream("stdin").read(limit + 1)
        label, label_zh = "standard input", "标准输入"
    else:
        path = Path(source)
        if not path.is_file():
            fail(SetupError(f"{source}: no such file", f"{source}：文件不存在"))
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
        label = label_zh = source
    if len(raw) > limit:
        fail(PayloadTooLarge(f"{label} is larger than {limit} bytes",
                              f"{label_zh} 超过 {limit} 字节"))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        fail(SetupError(f"{label} is not UTF-8 text", f"{label_zh} 不是 UTF-8 文本"))
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        _invalid_fields(exc, f"{label} does not fit the expected body / {label_zh}内容不符合要求",
                        lambda field: field)


def _options(schema: type[M], renamed: dict[str, str] | None = None, **values: Any) -> M:
    """A body built from command-line options; errors name the options."""
    renamed = renamed or {}
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        _invalid_fields(exc, "invalid options / 选项无效", lambda field: renamed.get(
            field, "--" + field.replace("_", "-")))


def _parse_date(value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("expected a date as YYYY-MM-DD") from exc


def _parse_code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise typer.BadParameter("expected a division code of 6, 9, 12 or 15 digits")
    return value


def _exactly_one(id_number: str | None, phone: str | None) -> None:
    if (id_number is None) == (phone is None):
        fail(Invalid("give exactly one of --id-number and --phone",
                      "须且只能提供身份证号或电话之一", field="--id-number"))


# --- shared option types ---------------------------------------------------------------------

FileArg = Annotated[str, typer.Argument(
    metavar="FILE", help="a UTF-8 JSON file with the request body, as for the API ('-': stdin)")]
Purpose = Annotated[str | None, typer.Option(
    help="why you need the personal data in clear (a case number or reason); it is recorded "
         "in the audit log. Without it, personal data comes masked")]
Yes = Annotated[bool, typer.Option("--yes", help="really do it (otherwise: a dry run)")]
Jurisdiction = Annotated[str | None, typer.Option(
    parser=_parse_code, metavar="CODE", help="only this area (within yours)")]
PageOpt = Annotated[int, typer.Option(min=1, max=100_000)]
PageSizeOpt = Annotated[int, typer.Option(min=1, max=500)]
IdNumberOpt = Annotated[str | None, typer.Option(
    "--id-number", help="national ID number (note: command lines are kept in shell history)")]
PhoneOpt = Annotated[str | None, typer.Option("--phone", help="mobile number")]


def _date_option(help_text: str, *names: str) -> Any:
    return typer.Option(*names, parser=_parse_date, metavar="YYYY-MM-DD", help=help_text)


OnRequired = Annotated[date, _date_option("the date", "--on")]
OnOptional = Annotated[date | None, _date_option("the date (default: today)", "--on")]


# --- rentals ---------------------------------------------------------------------------------


@rentals_app.command("register")
def rentals_register(ctx: typer.Context, file: FileArg, purpose: Purpose = None) -> None:
    """Register a rental with its landlord (and optionally the signed pledge)."""
    data = _body(file, RentalCreate)
    _run(ctx, purpose, lambda vault, p: rentals.register(vault, data, purpose=p))


@rentals_app.command("show")
def rentals_show(ctx: typer.Context, rental_id: uuid.UUID, purpose: Purpose = None) -> None:
    """One rental."""
    _run(ctx, purpose, lambda vault, p: rentals.get(vault, rental_id, purpose=p))


@rentals_app.command("list")
def rentals_list(
    ctx: typer.Context,
    jurisdiction: Jurisdiction = None,
    status: Annotated[RentalStatus | None, typer.Option()] = None,
    pledge_state: Annotated[PledgeState | None, typer.Option()] = None,
    page: PageOpt = 1,
    page_size: PageSizeOpt = 50,
    purpose: Purpose = None,
) -> None:
    """Rentals in your area, newest first."""
    _run(ctx, purpose, lambda vault, p: rentals.list_rentals(
        vault, jurisdiction=jurisdiction, status=status, pledge_state=pledge_state, page=page,
        page_size=page_size, purpose=p))


@rentals_app.command("find")
def rentals_find(ctx: typer.Context, id_number: IdNumberOpt = None, phone: PhoneOpt = None,
                 purpose: Purpose = None) -> None:
    """Rentals by the landlord's ID number or phone (exactly one)."""
    _exactly_one(id_number, phone)
    data = _options(RentalSearch, {"landlord_id_number": "--id-number",
                                   "landlord_phone": "--phone"},
                    landlord_id_number=id_number, landlord_phone=phone)
    _run(ctx, purpose, lambda vault, p: rentals.search(vault, data, purpose=p))


@rentals_app.command("amend")
def rentals_amend(ctx: typer.Context, rental_id: uuid.UUID, file: FileArg,
                  purpose: Purpose = None) -> None:
    """Amend address, units, status (active/vacant), jurisdiction or landlord (RentalUpdate)."""
    data = _body(file, RentalUpdate)
    _run(ctx, purpose, lambda vault, p: rentals.amend(vault, rental_id, data, purpose=p))


@rentals_app.command("pledge")
def rentals_pledge(
    ctx: typer.Context,
    rental_id: uuid.UUID,
    signed_on: Annotated[date, _date_option("date signed", "--signed-on")],
    valid_until: Annotated[date, _date_option("valid until", "--valid-until")],
    signed_by: Annotated[str | None, typer.Option(help="default: the landlord")] = None,
    purpose: Purpose = None,
) -> None:
    """Record a signed or renewed security-responsibility pledge (治安责任保证书)."""
    data = _options(PledgeIn, signed_on=signed_on, valid_until=valid_until, signed_by=signed_by)
    _run(ctx, purpose, lambda vault, p: rentals.sign_pledge(vault, rental_id, data, purpose=p))


@rentals_app.command("deregister")
def rentals_deregister(ctx: typer.Context, rental_id: uuid.UUID, on: OnOptional = None,
                       yes: Yes = False, purpose: Purpose = None) -> None:
    """End a rental's registration (注销). Asks for --yes."""
    data = _options(Deregistration, {"deregistered_on": "--on"}, deregistered_on=on)
    when = f"on {on.isoformat()}" if on else "today"
    if _dry_run(ctx, yes, f"deregister rental {rental_id} {when}"):
        return
    _run(ctx, purpose, lambda vault, p: rentals.deregister(vault, rental_id, data, purpose=p))


# --- residents -------------------------------------------------------------------------------


@residents_app.command("arrive")
def residents_arrive(ctx: typer.Context, file: FileArg, purpose: Purpose = None) -> None:
    """Register an arrival at a rental or another address (ArrivalIn)."""
    data = _body(file, ArrivalIn)
    _run(ctx, purpose, lambda vault, p: residents.register_arrival(vault, data, purpose=p))


@residents_app.command("show")
def residents_show(ctx: typer.Context, residency_id: uuid.UUID,
                   purpose: Purpose = None) -> None:
    """One residency."""
    _run(ctx, purpose, lambda vault, p: residents.get(vault, residency_id, purpose=p))


@residents_app.command("list")
def residents_list(
    ctx: typer.Context,
    jurisdiction: Jurisdiction = None,
    present_on: Annotated[date | None, _date_option("living here on this date",
                                                    "--present-on")] = None,
    person_id: Annotated[uuid.UUID | None, typer.Option(help="one person's history")] = None,
    late: Annotated[bool | None, typer.Option(
        "--late/--on-time", help="registered after the deadline, or in time")] = None,
    incomplete: Annotated[bool | None, typer.Option(
        "--incomplete/--complete", help="required facts missing, or all recorded")] = None,
    page: PageOpt = 1,
    page_size: PageSizeOpt = 50,
    purpose: Purpose = None,
) -> None:
    """Residencies in your area, newest arrival first."""
    _run(ctx, purpose, lambda vault, p: residents.list_residents(
        vault, jurisdiction=jurisdiction, present_on=present_on, person_id=person_id,
        late=late, incomplete=incomplete, page=page, page_size=page_size, purpose=p))


@residents_app.command("find")
def residents_find(ctx: typer.Context, id_number: IdNumberOpt = None, phone: PhoneOpt = None,
                   purpose: Purpose = None) -> None:
    """Residents by ID number or phone (exactly one)."""
    _exactly_one(id_number, phone)
    data = _options(ResidentSearch, id_number=id_number, phone=phone)
    _run(ctx, purpose, lambda vault, p: residents.search(vault, data, purpose=p))


@residents_app.command("at-rental")
def residents_at_rental(ctx: typer.Context, rental_id: uuid.UUID, on: OnOptional = None,
                        purpose: Purpose = None) -> None:
    """Who lives at a rental now, or on a past date."""
    _run(ctx, purpose, lambda vault, p: residents.at_rental(vault, rental_id, on=on, purpose=p))


@residents_app.command("move")
def residents_move(ctx: typer.Context, residency_id: uuid.UUID, file: FileArg,
                   purpose: Purpose = None) -> None:
    """Move to another rental or address: ends this residency and opens the next (MoveIn)."""
    data = _body(file, MoveIn)
    _run(ctx, purpose, lambda vault, p: residents.move(vault, residency_id, data, purpose=p))


@residents_app.command("move-out")
def residents_move_out(ctx: typer.Context, residency_id: uuid.UUID, on: OnRequired,
                       yes: Yes = False, purpose: Purpose = None) -> None:
    """Record that the resident has left. Asks for --yes."""
    data = _options(MoveOut, {"left_on": "--on"}, left_on=on)
    if _dry_run(ctx, yes, f"record that resident {residency_id} left on {on.isoformat()}"):
        return
    _run(ctx, purpose, lambda vault, p: residents.move_out(vault, residency_id, data,
                                                           purpose=p))


@residents_app.command("amend")
def residents_amend(ctx: typer.Context, residency_id: uuid.UUID, file: FileArg,
                    purpose: Purpose = None) -> None:
    """Amend a current residency's facts: phone, work, permit, … (ResidentUpdate)."""
    data = _body(file, ResidentUpdate)
    _run(ctx, purpose, lambda vault, p: residents.amend(vault, residency_id, data, purpose=p))


# --- corrections -----------------------------------------------------------------------------


@corrections_app.command("open")
def corrections_open(ctx: typer.Context, file: FileArg, purpose: Purpose = None) -> None:
    """Open a case on a court or authority's decision (CaseCreate)."""
    data = _body(file, CaseCreate)
    _run(ctx, purpose, lambda vault, p: corrections.open_case(vault, data, purpose=p))


@corrections_app.command("show")
def corrections_show(ctx: typer.Context, case_id: uuid.UUID, purpose: Purpose = None) -> None:
    """One case with its latest check-ins and every sanction (juvenile: needs --purpose)."""
    _run(ctx, purpose, lambda vault, p: corrections.get(vault, case_id, purpose=p))


@corrections_app.command("list")
def corrections_list(
    ctx: typer.Context,
    jurisdiction: Jurisdiction = None,
    status: Annotated[CaseStatus | None, typer.Option()] = None,
    category: Annotated[Category | None, typer.Option()] = None,
    page: PageOpt = 1,
    page_size: PageSizeOpt = 50,
    purpose: Purpose = None,
) -> None:
    """Cases in your area; juvenile cases only with --purpose."""
    _run(ctx, purpose, lambda vault, p: corrections.list_cases(
        vault, jurisdiction=jurisdiction, status=status, category=category, page=page,
        page_size=page_size, purpose=p))


@corrections_app.command("board")
def corrections_board(
    ctx: typer.Context,
    mine: Annotated[bool, typer.Option("--mine", help="only my cases")] = False,
    purpose: Purpose = None,
) -> None:
    """The morning list: overdue, due today, yet to report, past the end."""
    _run(ctx, purpose, lambda vault, p: corrections.board(vault, purpose=p, mine=mine))


@corrections_app.command("report")
def corrections_report(ctx: typer.Context, case_id: uuid.UUID, on: OnRequired,
                       purpose: Purpose = None) -> None:
    """Record the initial report (报到)."""
    data = _options(ReportIn, {"reported_on": "--on"}, reported_on=on)
    _run(ctx, purpose, lambda vault, p: corrections.record_report(vault, case_id, data,
                                                                  purpose=p))


@corrections_app.command("check-in")
def corrections_check_in(
    ctx: typer.Context,
    case_id: uuid.UUID,
    method: Annotated[Method, typer.Option()] = Method.in_person,
    at: Annotated[str | None, typer.Option(
        metavar="DATETIME", help="ISO 8601 with a time zone, e.g. 2026-06-15T09:30+08:00 "
                                 "(default: now)")] = None,
    purpose: Purpose = None,
) -> None:
    """Record a check-in (in person, phone or video)."""
    data = _options(CheckInIn, at=at, method=method)
    _run(ctx, purpose, lambda vault, p: corrections.record_check_in(vault, case_id, data,
                                                                    purpose=p))


@corrections_app.command("sanction")
def corrections_sanction(ctx: typer.Context, case_id: uuid.UUID, file: FileArg,
                         purpose: Purpose = None) -> None:
    """Record a sanction or proposal (SanctionIn)."""
    data = _body(file, SanctionIn)
    _run(ctx, purpose, lambda vault, p: corrections.add_sanction(vault, case_id, data,
                                                                 purpose=p))


@corrections_app.command("status")
def corrections_status(
    ctx: typer.Context,
    case_id: uuid.UUID,
    to: Annotated[CaseStatus, typer.Option("--to", help="absconded, active (returned), ended "
                                                        "(解除) or terminated (终止)")],
    on: OnRequired,
    reason: Annotated[str | None, typer.Option(help="required to end a case")] = None,
    yes: Yes = False,
    purpose: Purpose = None,
) -> None:
    """Change a case's status. Ending or terminating it asks for --yes."""
    data = _options(StatusChange, {"status": "--to"}, status=to, on=on, reason=reason)
    if to in _DESTRUCTIVE_STATUSES and _dry_run(
            ctx, yes, f"set corrections case {case_id} to {to.value} on {on.isoformat()}"):
        return
    _run(ctx, purpose, lambda vault, p: corrections.change_status(vault, case_id, data,
                                                                  purpose=p))


@corrections_app.command("amend")
def corrections_amend(ctx: typer.Context, case_id: uuid.UUID, file: FileArg,
                      purpose: Purpose = None) -> None:
    """Change the officer, check-in interval, grace, end date or phone (CaseUpdate)."""
    data = _body(file, CaseUpdate)
    _run(ctx, purpose, lambda vault, p: corrections.amend(vault, case_id, data, purpose=p))


# --- releases --------------------------------------------------------------------------------


@releases_app.command("register")
def releases_register(ctx: typer.Context, file: FileArg, purpose: Purpose = None) -> None:
    """Register a handover, pre-release notice or release (ReleaseCreate)."""
    data = _body(file, ReleaseCreate)
    _run(ctx, purpose, lambda vault, p: releases.register(vault, data, purpose=p))


@releases_app.command("show")
def releases_show(ctx: typer.Context, case_id: uuid.UUID, purpose: Purpose = None) -> None:
    """One case with its assistance records (juvenile: needs --purpose)."""
    _run(ctx, purpose, lambda vault, p: releases.get(vault, case_id, purpose=p))


@releases_app.command("list")
def releases_list(
    ctx: typer.Context,
    jurisdiction: Jurisdiction = None,
    open_only: Annotated[bool | None, typer.Option(
        "--open/--closed", help="only open, or only closed, cases")] = None,
    placement_status: Annotated[PlacementStatus | None, typer.Option()] = None,
    measures_in_place: Annotated[bool | None, typer.Option(
        "--measures/--no-measures", help="aftercare measures in place, or not")] = None,
    needs_action: Annotated[bool, typer.Option(
        "--needs-action", help="open cases without measures, unplaced, or awaiting escort")
    ] = False,
    page: PageOpt = 1,
    page_size: PageSizeOpt = 50,
    purpose: Purpose = None,
) -> None:
    """Release cases in your area; juvenile cases only with --purpose."""
    _run(ctx, purpose, lambda vault, p: releases.list_cases(
        vault, jurisdiction=jurisdiction, open_only=open_only,
        placement_status=placement_status, measures_in_place=measures_in_place,
        needs_action=needs_action, page=page, page_size=page_size, purpose=p))


@releases_app.command("amend")
def releases_amend(ctx: typer.Context, case_id: uuid.UUID, file: FileArg,
                   purpose: Purpose = None) -> None:
    """Measures, aftercare group, escort, consent, phone (ReleaseUpdate)."""
    data = _body(file, ReleaseUpdate)
    _run(ctx, purpose, lambda vault, p: releases.amend(vault, case_id, data, purpose=p))


@releases_app.command("place")
def releases_place(
    ctx: typer.Context,
    case_id: uuid.UUID,
    status: Annotated[PlacementStatus, typer.Option()],
    kind: Annotated[PlacementKind | None, typer.Option(help="needed when placed")] = None,
    on: Annotated[date | None, _date_option("placed on (needed when placed)", "--on")] = None,
    purpose: Purpose = None,
) -> None:
    """Record the placement status (安置) with its kind and date."""
    data = _options(PlacementIn, {"placed_on": "--on"}, status=status, kind=kind, placed_on=on)
    _run(ctx, purpose, lambda vault, p: releases.place(vault, case_id, data, purpose=p))


@releases_app.command("assist")
def releases_assist(
    ctx: typer.Context,
    case_id: uuid.UUID,
    kind: Annotated[AssistanceKind, typer.Option()],
    on: OnRequired,
    notes: Annotated[str | None, typer.Option(help="kept encrypted")] = None,
    purpose: Purpose = None,
) -> None:
    """Record a visit, call, job referral, training or allowance application."""
    data = _options(AssistanceIn, on=on, kind=kind, notes=notes)
    _run(ctx, purpose, lambda vault, p: releases.assist(vault, case_id, data, purpose=p))


@releases_app.command("close")
def releases_close(
    ctx: typer.Context,
    case_id: uuid.UUID,
    on: OnRequired,
    reason: Annotated[CloseReason, typer.Option()],
    yes: Yes = False,
    purpose: Purpose = None,
) -> None:
    """Close a case before its period ends (moved away, died, …). Asks for --yes."""
    data = _options(CloseIn, on=on, reason=reason)
    if _dry_run(ctx, yes, f"close release case {case_id} on {on.isoformat()} "
                          f"({reason.value})"):
        return
    _run(ctx, purpose, lambda vault, p: releases.close(vault, case_id, data, purpose=p))
