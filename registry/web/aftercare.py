"""The justice bureau's pages: release cases due for aftercare action, a case with its
placement and assistance record, recording a placement and an assistance visit. The releases
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
    PlacementIn,
    PlacementKind,
    PlacementStatus,
)
from registry.web.kit import (
    PREFIX,
    FormDep,
    FormErrors,
    Page,
    PageDep,
    check_purpose,
    choice,
    parse,
    redirect,
)

router = APIRouter()


def _choices(page: Page, prefix: str, values) -> list[tuple[str, str]]:
    return [(v.value, page.t(f"{prefix}.{v.value}")) for v in values]


@router.get("/releases")
def release_list(
    page: PageDep,
    needs_action: Annotated[bool, Query()] = True,
    placement_status: Annotated[str | None, Query(max_length=20)] = None,
    n: Annotated[int, Query(ge=1, le=100_000, alias="page")] = 1,
):
    errors: dict[str, str] = {}
    try:
        chosen = choice(PlacementStatus, placement_status, lang=page.lang,
                        field="placement_status")
    except FormErrors as exc:
        errors, chosen = exc.errors, None
    with page.vault() as vault:
        listing = releases.list_cases(vault, open_only=True, needs_action=needs_action,
                                      placement_status=chosen, page=n, page_size=25)
        vault.commit()
    values = {"needs_action": "true" if needs_action else "false",
              "placement_status": placement_status or ""}
    base = "?" + "".join(f"{k}={v}&" for k, v in values.items() if v)
    return page.render(
        "releases.html", status=422 if errors else 200, listing=listing, values=values,
        errors=errors, base=base,
        actions=[("true", page.t("release.needs_action")), ("false", page.t("all"))],
        placements=[("", page.t("all")), *_choices(page, "placement", PlacementStatus)])


def _release(page: Page, case_id: uuid.UUID, *, purpose: str | None = None,
             errors: dict | None = None, values: dict | None = None, status: int = 200,
             done: str | None = None):
    with page.vault() as vault:
        case = releases.get(vault, case_id, purpose=purpose)
        vault.commit()
    return page.render(
        "release.html", status=status, case=case, purpose=purpose, errors=errors or {},
        values=values or {}, done=done if done in ("assist.saved", "place.saved") else None,
        kinds=_choices(page, "assist", AssistanceKind),
        statuses=_choices(page, "placement", PlacementStatus),
        placement_kinds=[("", "—"), *_choices(page, "placement_kind", PlacementKind)])


@router.get("/releases/{case_id}")
def release_page(page: PageDep, case_id: uuid.UUID, done: str | None = None):
    return _release(page, case_id, done=done)


@router.post("/releases/{case_id}/reveal")
def release_reveal(page: PageDep, form: FormDep, case_id: uuid.UUID):
    try:
        purpose = check_purpose(page, form.get("purpose"))
    except FormErrors as exc:
        return _release(page, case_id, errors=exc.errors, status=422)
    return _release(page, case_id, purpose=purpose)


def _write(page: Page, case_id: uuid.UUID, form: dict, prefix: str, schema, action,
           done: str):
    values = {k: v for k, v in form.items() if k.startswith(prefix)}
    try:
        data = parse(schema, {k.removeprefix(prefix): v for k, v in values.items()},
                     lang=page.lang)
        with page.vault() as vault:
            action(vault, case_id, data, purpose=None)
            vault.commit()
    except FormErrors as exc:
        errors = {f"{prefix}{k}" if k else "": v for k, v in exc.errors.items()}
        return _release(page, case_id, errors=errors, values=values, status=422)
    except (Invalid, Conflict) as exc:
        errors = {f"{prefix}{exc.field}" if exc.field else "": page.message(exc)}
        return _release(page, case_id, errors=errors, values=values, status=exc.status)
    return redirect(f"{PREFIX}/releases/{case_id}?done={done}")


@router.post("/releases/{case_id}/assist")
def record_assistance(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _write(page, case_id, form, "assist.", AssistanceIn, releases.assist,
                  "assist.saved")


@router.post("/releases/{case_id}/placement")
def record_placement(page: PageDep, form: FormDep, case_id: uuid.UUID):
    return _write(page, case_id, form, "place.", PlacementIn, releases.place, "place.saved")
