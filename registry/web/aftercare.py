"""The justice bureau's pages: release cases due for aftercare action, registering a handover
(the notice or the release itself, the aftercare period, and the placement if already known),
a case with its placement and assistance record, recording a placement and an assistance
visit, and closing a case before its period ends. The releases
service through the gate; no other office sees these pages' records."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from registry.errors import Conflict, Invalid
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
    Source,
)
from registry.vault.base import RELEASE
from registry.web.field import areas
from registry.web.kit import (
    PREFIX,
    FormDep,
    FormErrors,
    Page,
    PageDep,
    check_purpose,
    choice,
    pager_base,
    parse,
    prefixed,
    redirect,
    reveal,
    stated_purpose,
    write_on_page,
)

router = APIRouter()


def _choices(page: Page, prefix: str, values) -> list[tuple[str, str]]:
    return [(v.value, page.t(f"{prefix}.{v.value}")) for v in values]


def _release_list(page: Page, *, needs_action: bool, placement_status: str | None, n: int,
                  purpose: str | None = None, errors: dict | None = None):
    errors = dict(errors or {})
    try:
        chosen = choice(PlacementStatus, placement_status, lang=page.lang,
                        field="placement_status")
    except FormErrors as exc:
        errors, chosen = errors | exc.errors, None
    with page.vault() as vault:
        listing = releases.list_cases(vault, open_only=True, needs_action=needs_action,
                                      placement_status=chosen, page=n, page_size=25,
                                      purpose=purpose)
        vault.commit()
    values = {"needs_action": "true" if needs_action else "false",
              "placement_status": placement_status or ""}
    return page.render(
        "releases.html", status=422 if errors else 200, listing=listing, values=values,
        errors=errors, base=pager_base(values), purpose=purpose,
        hidden=values | {"page": str(n)},
        actions=[("true", page.t("release.needs_action")), ("false", page.t("all"))],
        placements=[("", page.t("all")), *_choices(page, "placement", PlacementStatus)])


@router.get("/releases")
def release_list(
    page: PageDep,
    needs_action: Annotated[bool, Query()] = True,
    placement_status: Annotated[str | None, Query(max_length=20)] = None,
    n: Annotated[int, Query(ge=1, le=100_000, alias="page")] = 1,
):
    return _release_list(page, needs_action=needs_action, placement_status=placement_status,
                         n=n)


@router.post("/releases")
def release_list_reveal(page: PageDep, form: FormDep):
    """The list under a stated purpose: names in full, and the sealed juvenile cases too,
    each opened under the same purpose."""
    needs_action = form.get("needs_action", "true") != "false"
    placement_status = form.get("placement_status") or None
    raw_page = form.get("page", "1")
    n = int(raw_page) if raw_page.isascii() and raw_page.isdigit() and len(raw_page) < 7 else 1
    try:
        purpose = check_purpose(page, form.get("purpose"))
    except FormErrors as exc:
        return _release_list(page, needs_action=needs_action,
                             placement_status=placement_status, n=max(n, 1),
                             errors=exc.errors)
    return _release_list(page, needs_action=needs_action, placement_status=placement_status,
                         n=max(n, 1), purpose=purpose)


_FLAGS = ("key_subject", "escort_required", "measures_in_place", "consent_to_contact",
          "juvenile")


def _release_form(page: Page, *, values: dict, errors: dict, status: int = 200):
    with page.vault() as vault:
        vault.require(RELEASE, "create")  # the form is no use to other roles: refused
        choices = areas(vault, page.actor.scope)
    return page.render(
        "release_form.html", status=status, values=values, errors=errors, areas=choices,
        sources=_choices(page, "source", Source),
        years=page.registry.settings.aftercare_years,
        statuses=_choices(page, "placement", PlacementStatus),
        placement_kinds=[("", "—"), *_choices(page, "placement_kind", PlacementKind)])


@router.get("/releases/new")
def new_release(page: PageDep):
    return _release_form(page, values={"place.status": PlacementStatus.not_yet.value},
                         errors={})


@router.post("/releases/new")
def register_release(page: PageDep, form: FormDep):
    """The handover and, when already known, its placement: one transaction, so a placement
    the vault refuses leaves no case behind."""
    values = dict(form)
    stage, purpose = "", None
    try:
        errors: dict[str, str] = {}
        try:
            purpose = stated_purpose(page, form)  # a juvenile case is sealed once saved
        except FormErrors as exc:
            errors.update(exc.errors)
        unsealed = {"purpose": page.t("v.purpose.sealed")} if (
            form.get("juvenile") and not purpose and "purpose" not in errors) else {}
        fields = {k: v for k, v in form.items() if not k.startswith("place.")}
        placing = {k.removeprefix("place."): v for k, v in form.items()
                   if k.startswith("place.")}
        try:
            data = parse(ReleaseCreate, fields, lang=page.lang, ints=("aftercare_years",),
                         flags=_FLAGS)
        except FormErrors as exc:
            errors.update(exc.errors)
        try:
            placement = parse(PlacementIn, placing, lang=page.lang)
        except FormErrors as exc:
            errors.update(prefixed(exc.errors, "place."))
        if errors:
            raise FormErrors(errors | unsealed)
        with page.vault() as vault:
            case = releases.register(vault, data, purpose=purpose)
            if unsealed:  # said once the rest is right; rolled back, so nothing is saved
                raise FormErrors(unsealed)
            if placement != PlacementIn(status=PlacementStatus.not_yet):
                stage = "place."
                releases.place(vault, case.id, placement, purpose=purpose)
            vault.commit()
    except FormErrors as exc:
        return _release_form(page, values=values, errors=exc.errors, status=422)
    except (Invalid, Conflict) as exc:
        where = f"{stage}{exc.field}" if exc.field else ""
        return _release_form(page, values=values, errors={where: page.message(exc)},
                             status=exc.status)
    if purpose:
        return _release(page, case.id, purpose=purpose, done="release.saved")
    return redirect(f"{PREFIX}/releases/{case.id}?done=release.saved")


_RELEASE_DONE = ("assist.saved", "place.saved", "release.saved", "release.closed")


def _release(page: Page, case_id: uuid.UUID, *, purpose: str | None = None,
             errors: dict | None = None, values: dict | None = None, status: int = 200,
             done: str | None = None):
    with page.vault() as vault:
        case = releases.get(vault, case_id, purpose=purpose)
        vault.commit()
    return page.render(
        "release.html", status=status, case=case, purpose=purpose, errors=errors or {},
        back=f"{PREFIX}/releases" if case.juvenile else None,  # a sealed case: the list
        values=values or {}, done=done if done in _RELEASE_DONE else None,
        kinds=_choices(page, "assist", AssistanceKind),
        close_reasons=_choices(page, "close_reason", CloseReason),
        statuses=_choices(page, "placement", PlacementStatus),
        placement_kinds=[("", "—"), *_choices(page, "placement_kind", PlacementKind)])


@router.get("/releases/{case_id}")
def release_page(page: PageDep, case_id: uuid.UUID, done: str | None = None):
    return _release(page, case_id, done=done)


@router.post("/releases/{case_id}/reveal")
def release_reveal(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return reveal(page, form, _release, case_id)


def _write(page: Page, case_id: uuid.UUID, form: dict, prefix: str, schema, action,
           done: str):
    """A form on the case page, written under the purpose stated on the page, if any."""
    return write_on_page(page, form, case_id, prefix=prefix, schema=schema, action=action,
                         show=_release, address=f"{PREFIX}/releases/{case_id}", done=done,
                         purposed=True)


@router.post("/releases/{case_id}/assist")
def record_assistance(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _write(page, case_id, form, "assist.", AssistanceIn, releases.assist,
                  "assist.saved")


@router.post("/releases/{case_id}/placement")
def record_placement(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _write(page, case_id, form, "place.", PlacementIn, releases.place, "place.saved")


@router.post("/releases/{case_id}/close")
def close_release(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _write(page, case_id, form, "close.", CloseIn, releases.close, "release.closed")
