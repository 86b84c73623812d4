"""The pages of community police and coordinators: rentals in my area, register, amend or
deregister a rental, record a pledge, a resident's arrival, move, departure and amended
facts, search by ID number or mobile. Every page calls the rentals and residents services
through the gate, exactly as the API routes do; answers come masked unless a purpose is
stated."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from registry.errors import Conflict, Invalid, NotFound, RegistryError
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
    Reason,
    ResidentSearch,
    ResidentUpdate,
)
from registry.vault.base import RENTAL
from registry.vault.gate import Vault
from registry.web.kit import (
    PREFIX,
    FormDep,
    FormErrors,
    Page,
    PageDep,
    check_purpose,
    choice,
    form_errors,
    pager_base,
    parse,
    prefixed,
    redirect,
    reveal,
    write_on_page,
)

router = APIRouter()

_FORM_REFUSALS = (Invalid, Conflict)
_NO_RENTAL = NotFound.of(RENTAL.label, RENTAL.label_zh).message


def _picked_rental_missing(exc: NotFound, page: Page, field: str) -> dict[str, str]:
    """A rental picked on an arrival or move form that the gate does not know — none by
    that id, or one outside the caller's area: the same words next to the field, never a
    whole 404 page (and nothing told apart). Any other NotFound goes on as one."""
    if exc.message != _NO_RENTAL:
        raise exc
    return {field: page.message(exc)}


def areas(vault: Vault, scope: str, *, depth: int = 2) -> list[tuple[str, str]]:
    """The caller's jurisdiction and the nodes below it (``depth`` levels): the choices of a
    grid filter or a form's jurisdiction."""
    nodes = vault.jurisdictions.subtree(scope, depth=depth) if scope else []
    return [(j.code, f"{j.name}（{j.code}）") for j in nodes]


def _choices(page: Page, prefix: str, values) -> list[tuple[str, str]]:
    return [(v.value, page.t(f"{prefix}.{v.value}")) for v in values]


# The rental picker of the arrival and move forms lists at most this many rentals of each
# status (let, vacant), newest first; a rental beyond them is reached from its own page.
PICKER_SIZE = 200


def rental_choices(page: Page, vault: Vault, chosen: str | None = None
                   ) -> tuple[list[tuple[str, str]], int | None]:
    """The rentals a resident may live at (let or vacant, in the caller's area — the gate's
    list, so its scope and its audit event), labelled as the rentals page shows them: masked
    address, masked landlord, units, grid. And, when some were left off, how many are
    listed."""
    found, more = [], False
    for status in (RentalStatus.active, RentalStatus.vacant):
        listing = rentals.list_rentals(vault, status=status, page=1, page_size=PICKER_SIZE)
        found += listing.items
        more = more or listing.total > len(listing.items)
    found.sort(key=lambda r: (r.jurisdiction_code, r.address or "", r.registered_on))
    options = [("", page.t("resident.rental.none"))] + [
        (str(r.id), page.t("resident.rental.option", address=r.address or "—",
                           landlord=r.landlord.name or "—", units=r.units,
                           grid=r.jurisdiction_code, status=page.t(
                               f"rental.status.{r.status.value}")))
        for r in found]
    if chosen and chosen not in {value for value, _ in options}:
        options.append((chosen, page.t("resident.rental.chosen")))
    return options, len(found) if more else None


# --- rentals ------------------------------------------------------------------------------


@router.get("/rentals")
def rental_list(
    page: PageDep,
    jurisdiction: Annotated[str | None, Query(pattern=r"^(\d{6,15})?$")] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    pledge_state: Annotated[str | None, Query(max_length=20)] = None,
    n: Annotated[int, Query(ge=1, le=100_000, alias="page")] = 1,
):
    filters = {"jurisdiction": jurisdiction or "", "status": status or "",
               "pledge_state": pledge_state or ""}
    errors: dict[str, str] = {}
    try:
        chosen_status = choice(RentalStatus, status, lang=page.lang, field="status")
        chosen_pledge = choice(PledgeState, pledge_state, lang=page.lang, field="pledge_state")
    except FormErrors as exc:
        errors, chosen_status, chosen_pledge = exc.errors, None, None
    with page.vault() as vault:
        listing = rentals.list_rentals(vault, jurisdiction=jurisdiction or None,
                                       status=chosen_status, pledge_state=chosen_pledge,
                                       page=n, page_size=25)
        choices = areas(vault, page.actor.scope)
        vault.commit()
    base = pager_base(filters)
    return page.render(
        "rentals.html", status=422 if errors else 200, listing=listing, values=filters,
        errors=errors, base=base, areas=[("", page.t("all")), *choices],
        statuses=[("", page.t("all")), *_choices(page, "rental.status", RentalStatus)],
        pledge_states=[("", page.t("all")), *_choices(page, "pledge", PledgeState)])


def _rental_form(page: Page, *, values: dict, errors: dict, status: int = 200):
    with page.vault() as vault:
        choices = areas(vault, page.actor.scope)
    return page.render("rental_form.html", status=status, values=values, errors=errors,
                       areas=choices, statuses=_choices(page, "rental.status",
                                                       [RentalStatus.active, RentalStatus.vacant]))


@router.get("/rentals/new")
def new_rental(page: PageDep):
    return _rental_form(page, values={}, errors={})


@router.post("/rentals/new")
def register_rental(page: PageDep, form: FormDep):
    try:
        data = parse(RentalCreate, form, lang=page.lang, ints=("units",))
        with page.vault() as vault:
            rental = rentals.register(vault, data)
            vault.commit()
    except FormErrors as exc:
        return _rental_form(page, values=form, errors=exc.errors, status=422)
    except _FORM_REFUSALS as exc:
        return _rental_form(page, values=form, errors=form_errors(exc, page).errors,
                            status=exc.status)
    return redirect(f"{PREFIX}/rentals/{rental.id}?done=rental.saved")


def _rental_page(page: Page, rental_id: uuid.UUID, *, purpose: str | None = None,
                 errors: dict | None = None, values: dict | None = None, status: int = 200,
                 done: str | None = None):
    with page.vault() as vault:
        rental = rentals.get(vault, rental_id, purpose=purpose)
        # The purpose opens the rental (its landlord), not everyone living there: residents
        # stay masked until a purpose is stated on their own page, as the API asks for them
        # in a call of their own.
        living = residents.at_rental(vault, rental_id, on=None, purpose=None)
        may_deregister = vault.allowed(RENTAL, "deregister")
        vault.commit()
    return page.render("rental.html", status=status, rental=rental, living=living,
                       purpose=purpose, errors=errors or {}, values=values or {},
                       may_deregister=may_deregister,
                       done=done if done and done.startswith(("rental.", "pledge.")) else None)


@router.get("/rentals/{rental_id}")
def rental_detail(page: PageDep, rental_id: uuid.UUID, done: str | None = None):
    return _rental_page(page, rental_id, done=done)


@router.post("/rentals/{rental_id}/reveal")
def rental_reveal(page: PageDep, form: FormDep, rental_id: uuid.UUID):
    return reveal(page, form, _rental_page, rental_id)


@router.post("/rentals/{rental_id}/pledge")
def record_pledge(page: PageDep, form: FormDep, rental_id: uuid.UUID):
    return write_on_page(page, form, rental_id, prefix="pledge.", schema=PledgeIn,
                         action=rentals.sign_pledge, show=_rental_page,
                         address=f"{PREFIX}/rentals/{rental_id}", done="pledge.saved",
                         conflict_at_field=True)


@router.post("/rentals/{rental_id}/deregister")
def deregister_rental(page: PageDep, form: FormDep, rental_id: uuid.UUID):
    """End the registration (注销): refused while residents are still registered there."""
    return write_on_page(page, form, rental_id, prefix="dereg.", schema=Deregistration,
                         action=rentals.deregister, show=_rental_page,
                         address=f"{PREFIX}/rentals/{rental_id}", done="rental.deregistered")


def _edit_form(page: Page, rental_id: uuid.UUID, *, values: dict, errors: dict,
               status: int = 200):
    with page.vault() as vault:
        rental = rentals.get(vault, rental_id, purpose=None)
        choices = areas(vault, page.actor.scope)
        vault.commit()
    return page.render("rental_edit.html", status=status, rental=rental, values=values,
                       errors=errors, areas=[("", "—"), *choices],
                       statuses=[("", "—"), *_choices(page, "rental.status",
                                                      [RentalStatus.active,
                                                       RentalStatus.vacant])])


@router.get("/rentals/{rental_id}/edit")
def edit_rental(page: PageDep, rental_id: uuid.UUID):
    return _edit_form(page, rental_id, values={}, errors={})


@router.post("/rentals/{rental_id}/edit")
def amend_rental(page: PageDep, form: FormDep, rental_id: uuid.UUID):
    try:
        data = parse(RentalUpdate, form, lang=page.lang, ints=("units",))
        with page.vault() as vault:
            rentals.amend(vault, rental_id, data)
            vault.commit()
    except FormErrors as exc:
        return _edit_form(page, rental_id, values=form, errors=exc.errors, status=422)
    except _FORM_REFUSALS as exc:
        return _edit_form(page, rental_id, values=form, errors=form_errors(exc, page).errors,
                          status=exc.status)
    return redirect(f"{PREFIX}/rentals/{rental_id}?done=rental.amended")


# --- residents ----------------------------------------------------------------------------


@router.get("/residents")
def resident_list(
    page: PageDep,
    jurisdiction: Annotated[str | None, Query(pattern=r"^(\d{6,15})?$")] = None,
    show: Annotated[str | None, Query(pattern=r"^(present|late|incomplete|all)?$")] = None,
    n: Annotated[int, Query(ge=1, le=100_000, alias="page")] = 1,
):
    """Residents in my area: living here today (default), registered late, or missing facts."""
    show = show or "present"
    with page.vault() as vault:
        listing = residents.list_residents(
            vault, jurisdiction=jurisdiction or None,
            present_on=vault.clock.today() if show == "present" else None,
            late=True if show == "late" else None,
            incomplete=True if show == "incomplete" else None, page=n, page_size=25)
        choices = areas(vault, page.actor.scope)
        vault.commit()
    values = {"jurisdiction": jurisdiction or "", "show": show}
    base = pager_base(values)
    return page.render("residents.html", listing=listing, values=values, errors={}, base=base,
                       areas=[("", page.t("all")), *choices],
                       shows=[(k, page.t(f"residents.show.{k}"))
                              for k in ("present", "late", "incomplete", "all")])



def _arrival_form(page: Page, *, values: dict, errors: dict, status: int = 200):
    with page.vault() as vault:
        choices = areas(vault, page.actor.scope)
        picker, more = rental_choices(page, vault, values.get("rental_id"))
        vault.commit()  # the picker's list is an audit event
    return page.render("arrival_form.html", status=status, values=values, errors=errors,
                       areas=[("", "—"), *choices], reasons=_choices(page, "reason", Reason),
                       rentals=picker, more=more)


@router.get("/residents/new")
def new_arrival(page: PageDep, rental: uuid.UUID | None = None):
    return _arrival_form(page, values={"rental_id": str(rental) if rental else ""}, errors={})


@router.post("/residents/new")
def register_arrival(page: PageDep, form: FormDep):
    try:
        data = parse(ArrivalIn, form, lang=page.lang)
        with page.vault() as vault:
            resident = residents.register_arrival(vault, data)
            vault.commit()
    except FormErrors as exc:
        return _arrival_form(page, values=form, errors=exc.errors, status=422)
    except _FORM_REFUSALS as exc:
        return _arrival_form(page, values=form, errors=form_errors(exc, page).errors,
                             status=exc.status)
    except NotFound as exc:
        return _arrival_form(page, values=form, status=422,
                             errors=_picked_rental_missing(exc, page, "rental_id"))
    return redirect(f"{PREFIX}/residents/{resident.id}?done=resident.saved")


def _resident_page(page: Page, residency_id: uuid.UUID, *, purpose: str | None = None,
                   errors: dict | None = None, values: dict | None = None, status: int = 200,
                   done: str | None = None):
    with page.vault() as vault:
        resident = residents.get(vault, residency_id, purpose=purpose)
        vault.commit()
    return page.render("resident.html", status=status, resident=resident, purpose=purpose,
                       errors=errors or {}, values=values or {},
                       done=done if done and done.startswith("resident.") else None)


@router.get("/residents/{residency_id}")
def resident_detail(page: PageDep, residency_id: uuid.UUID, done: str | None = None):
    return _resident_page(page, residency_id, done=done)


@router.post("/residents/{residency_id}/reveal")
def resident_reveal(page: PageDep, form: FormDep, residency_id: uuid.UUID):
    return reveal(page, form, _resident_page, residency_id)


def _move_form(page: Page, residency_id: uuid.UUID, *, values: dict, errors: dict,
               status: int = 200):
    """The move form on a page of its own: its rental picker lists the area's rentals (an
    audit event), which a look at the resident's page should not do."""
    with page.vault() as vault:
        resident = residents.get(vault, residency_id, purpose=None)
        choices = areas(vault, page.actor.scope)
        picker, more = rental_choices(page, vault, values.get("move.rental_id"))
        vault.commit()
    return page.render("move_form.html", status=status, resident=resident, values=values,
                       errors=errors, areas=[("", "—"), *choices], rentals=picker, more=more)


@router.get("/residents/{residency_id}/move")
def move_page(page: PageDep, residency_id: uuid.UUID):
    return _move_form(page, residency_id, values={}, errors={})


@router.post("/residents/{residency_id}/move")
def move_resident(page: PageDep, form: FormDep, residency_id: uuid.UUID):
    values = {k: v for k, v in form.items() if k.startswith("move.")}
    try:
        data = parse(MoveIn, {k.removeprefix("move."): v for k, v in values.items()},
                     lang=page.lang)
        with page.vault() as vault:
            moved = residents.move(vault, residency_id, data)
            vault.commit()
    except FormErrors as exc:
        return _move_form(page, residency_id, errors=prefixed(exc.errors, "move."),
                          values=values, status=422)
    except _FORM_REFUSALS as exc:
        return _move_form(page, residency_id, values=values, status=exc.status,
                          errors=prefixed({exc.field or "": page.message(exc)}, "move."))
    except NotFound as exc:
        return _move_form(page, residency_id, values=values, status=422,
                          errors=_picked_rental_missing(exc, page, "move.rental_id"))
    return redirect(f"{PREFIX}/residents/{moved.id}?done=resident.moved")


def _resident_edit(page: Page, residency_id: uuid.UUID, *, values: dict, errors: dict,
                   status: int = 200):
    with page.vault() as vault:
        resident = residents.get(vault, residency_id, purpose=None)
        vault.commit()
    return page.render("resident_edit.html", status=status, resident=resident, values=values,
                       errors=errors,
                       reasons=[("", "—"), *_choices(page, "reason", Reason)])


@router.get("/residents/{residency_id}/edit")
def edit_resident(page: PageDep, residency_id: uuid.UUID):
    return _resident_edit(page, residency_id, values={}, errors={})


@router.post("/residents/{residency_id}/edit")
def amend_resident(page: PageDep, form: FormDep, residency_id: uuid.UUID):
    """Amend a current residency's facts; blank fields stay as they are."""
    try:
        data = parse(ResidentUpdate, form, lang=page.lang)
        with page.vault() as vault:
            residents.amend(vault, residency_id, data)
            vault.commit()
    except FormErrors as exc:
        return _resident_edit(page, residency_id, values=form, errors=exc.errors, status=422)
    except _FORM_REFUSALS as exc:
        return _resident_edit(page, residency_id, values=form, status=exc.status,
                              errors=form_errors(exc, page).errors)
    return redirect(f"{PREFIX}/residents/{residency_id}?done=resident.amended")


@router.post("/residents/{residency_id}/move-out")
def move_out(page: PageDep, form: FormDep, residency_id: uuid.UUID):
    return write_on_page(page, form, residency_id, prefix="out.", schema=MoveOut,
                         action=residents.move_out, show=_resident_page,
                         address=f"{PREFIX}/residents/{residency_id}", done="resident.left",
                         conflict_at_field=True)


# --- search -------------------------------------------------------------------------------


@router.get("/search")
def search_page(page: PageDep):
    return page.render("search.html", values={}, errors={}, found=None)


@router.post("/search")
def search(page: PageDep, form: FormDep):
    values = {k: form.get(k, "").strip() for k in ("id_number", "phone", "purpose")}
    try:
        purpose = check_purpose(page, values["purpose"]) if values["purpose"] else None
        if bool(values["id_number"]) == bool(values["phone"]):
            raise FormErrors({"id_number": page.t("search.hint")})
        query = parse(ResidentSearch, {"id_number": values["id_number"],
                                       "phone": values["phone"]}, lang=page.lang)
        with page.vault() as vault:
            people = residents.search(vault, query, purpose=purpose)
            owned = rentals.search(vault, RentalSearch(landlord_id_number=query.id_number,
                                                       landlord_phone=query.phone),
                                   purpose=purpose)
            vault.commit()
    except FormErrors as exc:
        return page.render("search.html", status=422, values=values, errors=exc.errors,
                           found=None)
    except RegistryError as exc:
        if exc.status != 422:
            raise
        field = {"landlord_id_number": "id_number", "landlord_phone": "phone"}.get(
            exc.field or "", exc.field or "")
        return page.render("search.html", status=422, values=values, found=None,
                           errors={field if field in values else "": page.message(exc)})
    return page.render("search.html", values=values, errors={}, found=(people, owned),
                       purpose=purpose)
