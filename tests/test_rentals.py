"""The rental register end to end through the API: register, read (purpose and masking),
amend, deregister, pledges, lists, scope and search (registry/rentals/, registry/vault/rentals.py
and persons.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry.api import create_app
from registry.clock import Clock
from registry.models import AuditEvent, Person, Pledge
from registry.security.keys import Keyring
from registry.validation import address_key
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    FIXED_NOW,
    GRID_A1,
    GRID_A2,
    GRID_B1,
    PASSWORD,
    TOWN,
    id_number,
    make_user,
    rental_body,
)

TODAY = FIXED_NOW.date().isoformat()  # 2026-06-15
ALL_GROUPS = ["address", "birth", "id_number", "name", "phone"]


# --- helpers -------------------------------------------------------------------------------

PURPOSE = "case 2026-117"


def with_purpose(user, purpose: str | None) -> dict[str, str]:
    """The user's headers, with X-Purpose when one is given."""
    headers = dict(user.headers)
    if purpose is not None:
        headers["X-Purpose"] = purpose
    return headers


def register(client, user, seed: int = 1, *, purpose: str | None = None, **overrides) -> dict:
    response = client.post("/rentals", json=rental_body(seed, **overrides),
                           headers=with_purpose(user, purpose))
    assert response.status_code == 201, response.text
    return response.json()


def read(client, user, rental_id: str, purpose: str | None = PURPOSE):
    return client.get(f"/rentals/{rental_id}", headers=with_purpose(user, purpose))


def amend(client, user, rental_id: str, *, purpose: str | None = None, **changes):
    return client.patch(f"/rentals/{rental_id}", json=changes,
                        headers=with_purpose(user, purpose))


def pledge(client, user, rental_id: str, signed_on: str, valid_until: str, *,
           purpose: str | None = None, **extra):
    return client.post(f"/rentals/{rental_id}/pledge", headers=with_purpose(user, purpose),
                       json={"signed_on": signed_on, "valid_until": valid_until, **extra})


def deregister(client, user, rental_id: str, on: str | None = None, *,
               purpose: str | None = None):
    body = {} if on is None else {"deregistered_on": on}
    return client.post(f"/rentals/{rental_id}/deregister", json=body,
                       headers=with_purpose(user, purpose))


def listing(client, user, *, purpose: str | None = None, **params) -> dict:
    response = client.get("/rentals", params=params, headers=with_purpose(user, purpose))
    assert response.status_code == 200, response.text
    return response.json()


def ids(items) -> set[str]:
    return {item["id"] for item in items}


def search(client, user, *, purpose: str | None = None, **body):
    return client.post("/rentals/search", json=body, headers=with_purpose(user, purpose))


def days_later(registry, client, user, days: int):
    """Move the fixed clock on by whole days; the old token has gone idle, so sign in again."""
    registry.clock.fixed = FIXED_NOW + timedelta(days=days)
    response = client.post("/auth/token", json={"username": user.username,
                                                "password": PASSWORD})
    assert response.status_code == 200, response.text
    return replace(user, headers={"Authorization": f"Bearer {response.json()['access_token']}"})


def error_of(response) -> dict:
    return response.json()["error"]


def scalar(registry, statement):
    with registry.db.session() as session:
        return session.scalar(statement)


def landlord(seed: int, *, name: str | None = None, phone: str | None = "keep") -> dict:
    body = rental_body(seed)["landlord"]
    if name is not None:
        body["name"] = name
    if phone is None:
        del body["phone"]
    elif phone != "keep":
        body["phone"] = phone
    return body


@pytest.fixture
def police(registry, client):
    return make_user(registry, client, "police", COMMUNITY_A)


@pytest.fixture
def coordinator(registry, client):
    return make_user(registry, client, "coordinator", GRID_A1)


# --- registering ---------------------------------------------------------------------------


def test_register_with_pledge(client, police):
    body = rental_body(1)
    created = register(client, police, 1, purpose=PURPOSE)
    assert created["jurisdiction_code"] == GRID_A1
    assert created["status"] == "active"
    assert created["registered_on"] == created["status_since"] == "2026-03-01"
    assert created["deregistered_on"] is None
    assert created["units"] == 2
    assert created["address"] == body["address"]
    assert created["landlord"]["name"] == body["landlord"]["name"]
    assert created["landlord"]["id_number"] == body["landlord"]["id_number"]
    assert created["landlord"]["phone"] == body["landlord"]["phone"]
    assert created["landlord"]["birth_date"] == "1985-03-12"
    assert created["landlord"]["sex"] == ("M" if int(body["landlord"]["id_number"][16]) % 2
                                          else "F")
    assert created["pledge"] == {"signed_on": "2026-03-02", "valid_until": "2027-03-01",
                                 "signed_by": body["landlord"]["name"]}
    assert created["pledge_state"] == "valid"
    assert created["missing"] == []
    assert created["masked"] == [] and created["hidden"] == []


def test_register_without_pledge_defaults_to_today(client, police):
    body = rental_body(2, pledge=None)
    del body["registered_on"]
    response = client.post("/rentals", json=body, headers=police.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["registered_on"] == created["status_since"] == TODAY
    assert created["pledge"] is None
    assert created["pledge_state"] == "missing"


def test_register_vacant(client, police):
    created = register(client, police, 3, status="vacant", units=5)
    assert created["status"] == "vacant"
    assert created["units"] == 5


def test_register_with_a_named_signer(client, police):
    created = register(client, police, 4, purpose=PURPOSE,
                       pledge={"signed_on": "2026-03-02", "valid_until": "2027-03-01",
                               "signed_by": "李代签"})
    assert created["pledge"]["signed_by"] == "李代签"


def test_register_normalises_input(client, police):
    body = rental_body(5)
    body["landlord"]["id_number"] = " " + body["landlord"]["id_number"].lower() + " "
    body["landlord"]["phone"] = "+86 " + body["landlord"]["phone"][:3] + "-" + \
        body["landlord"]["phone"][3:]
    body["address"] = "  东门路 ５号  "
    response = client.post("/rentals", json=body, headers=with_purpose(police, PURPOSE))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["landlord"]["id_number"] == rental_body(5)["landlord"]["id_number"]
    assert created["landlord"]["phone"] == rental_body(5)["landlord"]["phone"]
    assert created["address"] == "东门路 5号"


def test_register_from_a_legacy_fifteen_digit_number(client, police):
    body = rental_body(6)
    eighteen = body["landlord"]["id_number"]
    body["landlord"]["id_number"] = eighteen[:6] + eighteen[8:17]
    response = client.post("/rentals", json=body, headers=with_purpose(police, PURPOSE))
    assert response.status_code == 201, response.text
    assert response.json()["landlord"]["id_number"] == eighteen


@pytest.mark.parametrize("change, field", [
    ({"registered_on": "2026-06-16"}, "registered_on"),
    ({"status": "deregistered"}, "status"),
    ({"pledge": {"signed_on": "2026-06-16", "valid_until": "2027-06-16"}}, "pledge.signed_on"),
    ({"pledge": {"signed_on": "2026-03-02", "valid_until": "2026-03-02"}}, "pledge.valid_until"),
    ({"pledge": {"signed_on": "2026-03-02", "valid_until": "2026-03-01"}}, "pledge.valid_until"),
    ({"landlord": {"name": "王明", "id_number": "11010519491231002Y"}}, "landlord.id_number"),
    ({"landlord": {"name": "王明", "id_number": "110105194912310021"}}, "landlord.id_number"),
    ({"landlord": {"name": "王明", "id_number": "11010519491231002X",
                   "phone": "12012345678"}}, "landlord.phone"),
    ({"landlord": {"name": "王\u202e明", "id_number": "11010519491231002X"}}, "landlord.name"),
    ({"address": "东门路\x001号"}, "address"),
    ({"units": 0}, "units"),
    ({"jurisdiction_code": "33019900100"}, "jurisdiction_code"),
    ({"jurisdiction_code": "330199001009"}, "jurisdiction_code"),
    ({"jurisdiction_code": COMMUNITY_B}, "jurisdiction_code"),
    ({"jurisdiction_code": TOWN}, "jurisdiction_code"),
    ({"surprise": 1}, "surprise"),
])
def test_register_refusals_name_the_field(registry, client, police, change, field):
    response = client.post("/rentals", json=rental_body(7, **change), headers=police.headers)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field
    assert listing(client, police)["total"] == 0


def test_register_refusals_do_not_echo_the_id_number(client, police):
    body = rental_body(7)
    body["landlord"]["id_number"] = body["landlord"]["id_number"][:17] + "Y"
    response = client.post("/rentals", json=body, headers=police.headers)
    assert response.status_code == 422
    assert body["landlord"]["id_number"][:17] not in response.text


def test_duplicate_address_in_the_same_node_is_409(client, police):
    first = register(client, police, 8)
    again = rental_body(9, address="  " + rental_body(8)["address"].replace("号", " 号") + " ")
    response = client.post("/rentals", json=again, headers=police.headers)
    assert response.status_code == 409
    assert error_of(response)["field"] == "address"
    assert error_of(response)["existing_id"] == first["id"]
    # Another node may hold the same address.
    register(client, police, 9, address=rental_body(8)["address"], jurisdiction_code=GRID_A2)


def test_same_id_number_under_another_name_is_409(registry, client, police):
    register(client, police, 10)
    body = rental_body(11, landlord=landlord(10, name="赵某某"))
    response = client.post("/rentals", json=body, headers=police.headers)
    assert response.status_code == 409
    assert "different name" in error_of(response)["message"]
    assert listing(client, police)["total"] == 1


def test_same_id_number_under_another_name_names_the_request_field(client, police):
    register(client, police, 10)
    body = rental_body(11, landlord=landlord(10, name="赵某某"))
    response = client.post("/rentals", json=body, headers=police.headers)
    assert error_of(response)["field"] == "landlord.id_number"


EVENT_COLUMNS = ("action", "outcome", "fields", "refs", "detail", "purpose")


def events_where(registry, *where) -> list[SimpleNamespace]:
    """Audit events (a plain copy of their columns), oldest first."""
    with registry.db.session() as session:
        return [SimpleNamespace(**{c: getattr(e, c) for c in EVENT_COLUMNS})
                for e in session.scalars(select(AuditEvent).where(*where)
                                         .order_by(AuditEvent.seq))]


def events_of(registry, record_id: str) -> list[SimpleNamespace]:
    return events_where(registry, AuditEvent.record_id == record_id)


def shown(event: SimpleNamespace) -> set[str]:
    """The field names a write's event says its answer showed (``detail`` = "shown=a,b")."""
    [part] = [p for p in event.detail.split(";") if p.startswith("shown=")]
    return set(part.removeprefix("shown=").split(","))


MASKED_SHOWN = {"address~masked", "landlord.name~masked", "landlord.id_number~masked",
                "landlord.phone~masked", "landlord.birth_date~masked",
                "pledge.signed_by~masked"}
CLEAR_SHOWN = {"address", "landlord.name", "landlord.id_number", "landlord.phone",
               "landlord.sex", "landlord.birth_date", "pledge.signed_by"}


def test_register_is_audited_without_values(registry, client, police):
    created = register(client, police, 12)
    # One write, one event: the fields it changed, and (in detail) the fields it showed.
    [event] = events_of(registry, created["id"])
    assert event.action == "create" and event.outcome == "ok"
    assert set(event.fields.split(",")) == {"address", "units", "status", "landlord", "pledge"}
    assert shown(event) == MASKED_SHOWN
    assert event.purpose is None
    assert f"rental:{created['id']}" in event.refs.split(",")
    assert f"person:{created['landlord']['id']}" in event.refs.split(",")
    body = rental_body(12)
    for value in (event.fields, event.refs, event.detail, event.purpose or ""):
        assert body["landlord"]["id_number"] not in value
        assert body["landlord"]["name"] not in value
        assert body["landlord"]["phone"] not in value
        assert body["address"] not in value
        assert created["landlord"]["name"] not in value  # nor the masked forms


def test_register_with_a_purpose_is_audited_with_the_fields_shown(registry, client, police):
    created = register(client, police, 13, purpose=PURPOSE)
    [event] = events_of(registry, created["id"])
    assert event.action == "create"
    assert event.purpose == PURPOSE
    assert set(event.fields.split(",")) == {"address", "units", "status", "landlord", "pledge"}
    assert shown(event) == CLEAR_SHOWN


def assert_masked_answer(answer: dict, body: dict) -> None:
    """Every personal field of a police answer without a purpose comes masked."""
    assert answer["masked"] == ALL_GROUPS and answer["hidden"] == []
    address = body["address"]
    assert answer["address"] == address[: len(address) // 3] + "***"
    number, phone = body["landlord"]["id_number"], body["landlord"]["phone"]
    assert answer["landlord"]["name"] == body["landlord"]["name"][0] + "*"
    assert answer["landlord"]["id_number"] == number[:6] + "********" + number[-4:]
    assert answer["landlord"]["phone"] == phone[:3] + "****" + phone[-4:]
    assert answer["landlord"]["birth_date"] == "1985-**-**"
    assert answer["landlord"]["sex"] is None
    if answer["pledge"] is not None:
        assert answer["pledge"]["signed_by"] == body["landlord"]["name"][0] + "*"
    text = str(answer)
    for value in (number, phone, address, body["landlord"]["name"], "1985-03-12"):
        assert value not in text


def test_write_answers_without_a_purpose_are_masked(registry, client, police):
    body = rental_body(14)
    created = register(client, police, 14)
    assert_masked_answer(created, body)
    rental_id = created["id"]

    amended = amend(client, police, rental_id, units=3)
    assert amended.status_code == 200, amended.text
    assert amended.json()["units"] == 3
    assert_masked_answer(amended.json(), body)

    pledged = pledge(client, police, rental_id, "2026-06-01", "2027-05-31")
    assert pledged.status_code == 200, pledged.text
    assert pledged.json()["pledge"]["valid_until"] == "2027-05-31"
    assert_masked_answer(pledged.json(), body)

    gone = deregister(client, police, rental_id)
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "deregistered"
    assert_masked_answer(gone.json(), body)

    events = events_of(registry, rental_id)
    assert [e.action for e in events] == ["create", "update", "pledge", "deregister"]
    assert [e.fields for e in events[1:]] == ["units", "pledge", "status"]
    for event in events:
        assert shown(event) == MASKED_SHOWN
        assert event.purpose is None


def test_write_answers_with_a_purpose_are_clear(registry, client, police):
    body = rental_body(15)
    rental_id = register(client, police, 15, purpose=PURPOSE)["id"]
    answers = [
        amend(client, police, rental_id, units=3, purpose=PURPOSE),
        pledge(client, police, rental_id, "2026-06-01", "2027-05-31", purpose=PURPOSE),
        deregister(client, police, rental_id, purpose=PURPOSE),
    ]
    for response in answers:
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["masked"] == [] and answer["hidden"] == []
        assert answer["address"] == body["address"]
        assert answer["landlord"]["name"] == body["landlord"]["name"]
        assert answer["landlord"]["id_number"] == body["landlord"]["id_number"]
        assert answer["landlord"]["phone"] == body["landlord"]["phone"]
        assert answer["landlord"]["birth_date"] == "1985-03-12"
        assert answer["landlord"]["sex"] in ("M", "F")
        assert answer["pledge"]["signed_by"] == body["landlord"]["name"]
    events = events_of(registry, rental_id)
    assert [e.action for e in events] == ["create", "update", "pledge", "deregister"]
    for event in events:
        assert shown(event) == CLEAR_SHOWN
        assert event.purpose == PURPOSE


@pytest.mark.parametrize("purpose", ["x" * 201, quote("case\x07bell")])
def test_a_write_with_a_bad_purpose_is_422_and_writes_nothing(client, police, purpose):
    response = client.post("/rentals", json=rental_body(16),
                           headers=with_purpose(police, purpose))
    assert response.status_code == 422
    assert error_of(response)["field"] == "X-Purpose"
    assert listing(client, police)["total"] == 0


# --- one landlord, one person --------------------------------------------------------------


def test_one_landlord_with_several_properties_is_one_person(registry, client, police):
    first = register(client, police, 20)
    second = register(client, police, 21, landlord=landlord(20))
    third = register(client, police, 22, landlord=landlord(20), jurisdiction_code=GRID_A2)
    assert first["landlord"]["id"] == second["landlord"]["id"] == third["landlord"]["id"]
    other = register(client, police, 23)
    assert other["landlord"]["id"] != first["landlord"]["id"]


def test_legacy_and_lower_case_forms_find_the_same_person(client, police):
    first = register(client, police, 24)
    eighteen = rental_body(24)["landlord"]["id_number"]
    legacy = landlord(24)
    legacy["id_number"] = eighteen[:6] + eighteen[8:17]
    second = register(client, police, 25, landlord=legacy)
    assert second["landlord"]["id"] == first["landlord"]["id"]


@pytest.mark.parametrize("digits", ["٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९"])
def test_other_scripts_digits_find_the_same_person(client, police, digits):
    """Arabic-Indic or Devanagari digits in an ID number or phone are the same number: one
    person, one blind index, stored and searchable in ASCII."""
    first = register(client, police, 24)
    foreign = str.maketrans("0123456789", digits)
    body = landlord(24)
    body["id_number"] = body["id_number"].translate(foreign)
    body["phone"] = body["phone"].translate(foreign)
    assert body["id_number"] != rental_body(24)["landlord"]["id_number"]
    second = register(client, police, 25, landlord=body, purpose=PURPOSE)
    assert second["landlord"]["id"] == first["landlord"]["id"]
    assert second["landlord"]["id_number"] == rental_body(24)["landlord"]["id_number"]
    assert second["landlord"]["phone"] == rental_body(24)["landlord"]["phone"]
    found = search(client, police, landlord_phone=rental_body(24)["landlord"]["phone"])
    assert ids(found.json()) == {first["id"], second["id"]}
    by_number = search(client, police, landlord_id_number=body["id_number"])
    assert ids(by_number.json()) == {first["id"], second["id"]}


def test_a_new_phone_for_a_known_landlord_replaces_the_old(client, police):
    first = register(client, police, 26)
    old_phone = rental_body(26)["landlord"]["phone"]
    second = register(client, police, 27, landlord=landlord(26, phone="13912345678"),
                      purpose=PURPOSE)
    assert second["landlord"]["id"] == first["landlord"]["id"]
    assert second["landlord"]["phone"] == "13912345678"
    assert read(client, police, first["id"]).json()["landlord"]["phone"] == "13912345678"
    assert search(client, police, landlord_phone=old_phone).json() == []
    assert ids(search(client, police, landlord_phone="13912345678").json()) == \
        {first["id"], second["id"]}


def test_no_phone_keeps_the_known_phone(client, police):
    first = register(client, police, 28)
    second = register(client, police, 29, landlord=landlord(28, phone=None), purpose=PURPOSE)
    assert second["landlord"]["phone"] == rental_body(28)["landlord"]["phone"]
    assert second["missing"] == []
    assert read(client, police, first["id"]).json()["landlord"]["phone"] == \
        rental_body(28)["landlord"]["phone"]


# --- reading: purpose and masking ----------------------------------------------------------


def test_police_read_with_a_purpose_is_clear_and_audited(registry, client, police):
    created = register(client, police, 30)
    body = rental_body(30)
    response = read(client, police, created["id"], purpose="case 2026-117")
    assert response.status_code == 200
    full = response.json()
    assert full["masked"] == [] and full["hidden"] == []
    assert full["address"] == body["address"]
    assert full["landlord"]["name"] == body["landlord"]["name"]
    assert full["landlord"]["id_number"] == body["landlord"]["id_number"]
    assert full["landlord"]["phone"] == body["landlord"]["phone"]
    assert full["landlord"]["birth_date"] == "1985-03-12"
    assert full["landlord"]["sex"] == ("M" if int(body["landlord"]["id_number"][16]) % 2
                                       else "F")
    assert full["pledge"]["signed_by"] == body["landlord"]["name"]
    with registry.db.session() as session:
        event = session.scalar(select(AuditEvent).where(
            AuditEvent.record_id == created["id"], AuditEvent.action == "read"))
        purpose, fields = event.purpose, event.fields
    assert purpose == "case 2026-117"
    assert "landlord.id_number" in fields.split(",")


def test_police_read_without_a_purpose_is_masked(client, police):
    created = register(client, police, 31)
    body = rental_body(31)
    masked = read(client, police, created["id"], purpose=None).json()
    assert masked["masked"] == ALL_GROUPS
    assert masked["hidden"] == []
    number = body["landlord"]["id_number"]
    assert masked["landlord"]["id_number"] == number[:6] + "********" + number[-4:]
    # Surname and one star, whatever the length of the name.
    assert masked["landlord"]["name"] == body["landlord"]["name"][0] + "*"
    phone = body["landlord"]["phone"]
    assert masked["landlord"]["phone"] == phone[:3] + "****" + phone[-4:]
    assert masked["address"].endswith("***")
    assert masked["address"] != body["address"]
    # A masked birth date keeps the year only; sex has no masked form and is left out.
    assert masked["landlord"]["birth_date"] == "1985-**-**"
    assert masked["landlord"]["sex"] is None
    assert masked["pledge"]["signed_by"] == body["landlord"]["name"][0] + "*"


@pytest.mark.parametrize("purpose", ["", "   "])
def test_a_blank_purpose_counts_as_none(client, police, purpose):
    created = register(client, police, 32)
    assert read(client, police, created["id"], purpose=purpose).json()["masked"] == ALL_GROUPS


def test_a_url_encoded_chinese_purpose(registry, client, police):
    created = register(client, police, 33)
    response = read(client, police, created["id"], purpose=quote("走访核查 2026-88"))
    assert response.status_code == 200
    assert response.json()["masked"] == []
    with registry.db.session() as session:
        stored = session.scalar(select(AuditEvent.purpose).where(
            AuditEvent.record_id == created["id"], AuditEvent.action == "read"))
    assert stored == "走访核查 2026-88"


@pytest.mark.parametrize("purpose", ["x" * 201, quote("case\x07bell")])
def test_a_bad_purpose_is_422(client, police, purpose):
    created = register(client, police, 34)
    response = read(client, police, created["id"], purpose=purpose)
    assert response.status_code == 422
    assert error_of(response)["field"] == "X-Purpose"


def test_coordinator_sees_basic_fields_only_even_with_a_purpose(client, police, coordinator):
    created = register(client, police, 35)
    body = rental_body(35)
    seen = read(client, coordinator, created["id"], purpose="door-to-door visit").json()
    assert seen["masked"] == ["id_number", "name", "phone"]
    assert seen["hidden"] == ["birth"]
    assert seen["address"] == body["address"]
    number = body["landlord"]["id_number"]
    assert seen["landlord"]["id_number"] == number[:6] + "********" + number[-4:]
    assert seen["landlord"]["name"] == body["landlord"]["name"][0] + "*"
    assert seen["landlord"]["phone"] == body["landlord"]["phone"][:3] + "****" + \
        body["landlord"]["phone"][-4:]
    assert seen["landlord"]["sex"] is None
    assert seen["landlord"]["birth_date"] is None  # hidden, not masked: not even the year
    assert seen["pledge"]["signed_by"] == body["landlord"]["name"][0] + "*"
    assert body["landlord"]["name"] not in str(seen)
    assert number not in str(seen)


def test_coordinator_without_a_purpose_sees_the_address_masked(client, police, coordinator):
    created = register(client, police, 36)
    seen = read(client, coordinator, created["id"], purpose=None).json()
    assert seen["masked"] == ["address", "id_number", "name", "phone"]
    assert seen["hidden"] == ["birth"]
    assert seen["address"].endswith("***")


@pytest.mark.parametrize("purpose", [None, PURPOSE])
def test_coordinator_registration_answer_is_masked(client, coordinator, purpose):
    body = rental_body(37)
    created = register(client, coordinator, 37, purpose=purpose)
    number = body["landlord"]["id_number"]
    assert created["landlord"]["id_number"] == number[:6] + "********" + number[-4:]
    assert created["landlord"]["name"] == body["landlord"]["name"][0] + "*"
    assert created["landlord"]["birth_date"] is None
    assert created["landlord"]["sex"] is None
    assert created["hidden"] == ["birth"]
    # The address is the one group a coordinator sees in clear, and only with a purpose.
    if purpose is None:
        assert created["masked"] == ["address", "id_number", "name", "phone"]
        assert created["address"].endswith("***")
    else:
        assert created["masked"] == ["id_number", "name", "phone"]
        assert created["address"] == body["address"]


def test_unknown_rental_is_404(client, police):
    response = read(client, police, "01890000-0000-7000-8000-000000000000")
    assert response.status_code == 404
    assert client.get("/rentals/not-a-uuid", headers=police.headers).status_code == 422


# --- amending ------------------------------------------------------------------------------


def test_amend_address_and_units(registry, client, police):
    created = register(client, police, 40)
    response = amend(client, police, created["id"], address="东门路40号新址", units=7,
                     purpose=PURPOSE)
    assert response.status_code == 200, response.text
    assert response.json()["address"] == "东门路40号新址"
    assert response.json()["units"] == 7
    [event] = [e for e in events_of(registry, created["id"]) if e.action == "update"]
    assert set(event.fields.split(",")) == {"address", "units"}
    assert shown(event) == CLEAR_SHOWN
    assert event.purpose == PURPOSE
    assert "东门路40号新址" not in event.detail
    again = read(client, police, created["id"]).json()
    assert again["address"] == "东门路40号新址"
    assert again["units"] == 7


def test_amend_address_to_one_already_registered_here_is_409(client, police):
    first = register(client, police, 41)
    second = register(client, police, 42)
    response = amend(client, police, second["id"], address=rental_body(41)["address"])
    assert response.status_code == 409
    assert error_of(response)["existing_id"] == first["id"]
    # Re-stating its own address is not a duplicate.
    same = amend(client, police, first["id"], address=rental_body(41)["address"])
    assert same.status_code == 200, same.text


def test_amend_status_vacant_and_back(registry, client, police):
    created = register(client, police, 43)
    assert created["status_since"] == "2026-03-01"
    vacant = amend(client, police, created["id"], status="vacant")
    assert vacant.status_code == 200
    assert vacant.json()["status"] == "vacant"
    assert vacant.json()["status_since"] == TODAY
    police = days_later(registry, client, police, 3)
    active = amend(client, police, created["id"], status="active").json()
    assert active["status"] == "active"
    assert active["status_since"] == "2026-06-18"
    # Re-stating the status does not move status_since.
    police = days_later(registry, client, police, 5)
    assert amend(client, police, created["id"], status="active").json()["status_since"] == \
        "2026-06-18"


def test_amend_cannot_deregister(client, police):
    created = register(client, police, 44)
    response = amend(client, police, created["id"], status="deregistered")
    assert response.status_code == 422
    assert error_of(response)["field"] == "status"
    assert read(client, police, created["id"]).json()["status"] == "active"


def test_amend_moves_to_another_jurisdiction_inside_scope(client, police, coordinator):
    created = register(client, police, 45)
    assert read(client, coordinator, created["id"]).status_code == 200
    moved = amend(client, police, created["id"], jurisdiction_code=GRID_A2)
    assert moved.status_code == 200
    assert moved.json()["jurisdiction_code"] == GRID_A2
    # The grid-A1 coordinator no longer sees it.
    assert read(client, coordinator, created["id"]).status_code == 404
    up = amend(client, police, created["id"], jurisdiction_code=COMMUNITY_A)
    assert up.json()["jurisdiction_code"] == COMMUNITY_A


@pytest.mark.parametrize("code", [COMMUNITY_B, GRID_B1, TOWN, "330199001001009"])
def test_amend_cannot_move_outside_scope_or_to_an_unknown_node(client, police, code):
    created = register(client, police, 46)
    response = amend(client, police, created["id"], jurisdiction_code=code, units=9)
    assert response.status_code == 422
    assert error_of(response)["field"] == "jurisdiction_code"
    unchanged = read(client, police, created["id"]).json()
    assert unchanged["jurisdiction_code"] == GRID_A1
    assert unchanged["units"] == 2


def test_amend_move_into_a_node_with_the_same_address_is_409(client, police):
    address = rental_body(47)["address"]
    there = register(client, police, 47, jurisdiction_code=GRID_A2)
    other = register(client, police, 48, address=address, jurisdiction_code=GRID_A1)
    response = amend(client, police, other["id"], jurisdiction_code=GRID_A2, units=9)
    assert response.status_code == 409
    assert error_of(response)["field"] == "address"
    assert error_of(response)["existing_id"] == there["id"]
    unchanged = read(client, police, other["id"]).json()
    assert unchanged["jurisdiction_code"] == GRID_A1
    assert unchanged["units"] == 2
    # Once the rental there is deregistered, the move goes through.
    assert deregister(client, police, there["id"]).status_code == 200
    moved = amend(client, police, other["id"], jurisdiction_code=GRID_A2)
    assert moved.status_code == 200, moved.text
    assert moved.json()["jurisdiction_code"] == GRID_A2


def test_amend_changes_the_landlord(client, police):
    created = register(client, police, 49)
    existing = register(client, police, 50)
    to_new = amend(client, police, created["id"], landlord=landlord(51), purpose=PURPOSE)
    assert to_new.status_code == 200, to_new.text
    assert to_new.json()["landlord"]["id_number"] == rental_body(51)["landlord"]["id_number"]
    assert to_new.json()["landlord"]["id"] not in (created["landlord"]["id"],
                                                   existing["landlord"]["id"])
    to_known = amend(client, police, created["id"], landlord=landlord(50))
    assert to_known.json()["landlord"]["id"] == existing["landlord"]["id"]
    clash = amend(client, police, created["id"], landlord=landlord(50, name="钱某"))
    assert clash.status_code == 409
    assert error_of(clash)["field"] == "landlord.id_number"
    assert "different name" in error_of(clash)["message"]
    assert read(client, police, created["id"]).json()["landlord"]["id"] == \
        existing["landlord"]["id"]


def test_amend_adds_a_missing_landlord_phone(client, police):
    created = register(client, police, 52, landlord=landlord(52, phone=None))
    assert created["missing"] == ["landlord.phone"]
    assert created["landlord"]["phone"] is None
    response = amend(client, police, created["id"], landlord_phone="139-0000-5252",
                     purpose=PURPOSE)
    assert response.status_code == 200, response.text
    assert response.json()["landlord"]["phone"] == "13900005252"
    assert response.json()["missing"] == []


def test_amend_replaces_the_landlord_phone(client, police):
    # Regression: set_phone opens the current phone, whose data key no earlier step of the
    # request had loaded (500 "data key missing" before Vault.open loaded keys on demand).
    created = register(client, police, 53)
    response = amend(client, police, created["id"], landlord_phone="13900005353",
                     purpose=PURPOSE)
    assert response.status_code == 200, response.text
    assert response.json()["landlord"]["phone"] == "13900005353"
    assert read(client, police, created["id"]).json()["landlord"]["phone"] == "13900005353"
    old = rental_body(53)["landlord"]["phone"]
    assert search(client, police, landlord_phone=old).json() == []
    assert ids(search(client, police, landlord_phone="13900005353").json()) == {created["id"]}


def test_amend_restating_the_landlord_with_a_new_phone_audits_the_phone(registry, client,
                                                                        police):
    created = register(client, police, 57)
    response = amend(client, police, created["id"], landlord=landlord(57, phone="13900005757"),
                     purpose=PURPOSE)
    assert response.status_code == 200, response.text
    assert response.json()["landlord"]["id"] == created["landlord"]["id"]
    assert response.json()["landlord"]["phone"] == "13900005757"
    [event] = [e for e in events_of(registry, created["id"]) if e.action == "update"]
    assert "landlord.phone" in event.fields.split(",")


def test_amend_bad_phone_is_422(client, police):
    created = register(client, police, 54)
    response = amend(client, police, created["id"], landlord_phone="12000005454")
    assert response.status_code == 422
    assert error_of(response)["field"] == "landlord_phone"


def test_empty_amend_changes_nothing(client, police):
    created = register(client, police, 55)
    response = amend(client, police, created["id"])
    assert response.status_code == 200
    after = response.json()
    for key in ("address", "units", "status", "status_since", "jurisdiction_code"):
        assert after[key] == created[key]


def test_amending_a_deregistered_rental_is_409(client, police):
    created = register(client, police, 56)
    assert deregister(client, police, created["id"]).status_code == 200
    for change in ({"units": 4}, {"address": "东门路56号别处"}, {"status": "active"}, {}):
        response = amend(client, police, created["id"], **change)
        assert response.status_code == 409, change
        assert "deregistered" in error_of(response)["message"]


# --- deregistering -------------------------------------------------------------------------


def test_deregister_defaults_to_today(client, police):
    created = register(client, police, 60)
    response = deregister(client, police, created["id"])
    assert response.status_code == 200, response.text
    gone = response.json()
    assert gone["status"] == "deregistered"
    assert gone["deregistered_on"] == gone["status_since"] == TODAY
    assert read(client, police, created["id"]).json()["status"] == "deregistered"


def test_deregister_on_a_past_date_and_on_the_registration_day(client, police):
    one = register(client, police, 61)
    assert deregister(client, police, one["id"], "2026-05-01").json()["deregistered_on"] == \
        "2026-05-01"
    two = register(client, police, 62)
    assert deregister(client, police, two["id"], "2026-03-01").status_code == 200


@pytest.mark.parametrize("on", ["2026-02-28", "2026-06-16"])
def test_deregister_date_rules(client, police, on):
    created = register(client, police, 63)
    response = deregister(client, police, created["id"], on)
    assert response.status_code == 422
    assert error_of(response)["field"] == "deregistered_on"
    assert read(client, police, created["id"]).json()["status"] == "active"


def test_deregister_twice_is_409(client, police):
    created = register(client, police, 64)
    deregister(client, police, created["id"])
    assert deregister(client, police, created["id"]).status_code == 409


def test_coordinator_may_not_deregister(client, police, coordinator):
    created = register(client, police, 65)
    assert deregister(client, coordinator, created["id"]).status_code == 403
    assert read(client, police, created["id"]).json()["status"] == "active"


def test_a_deregistered_address_may_be_registered_again(client, police):
    created = register(client, police, 66)
    deregister(client, police, created["id"])
    again = register(client, police, 67, address=rental_body(66)["address"])
    assert again["id"] != created["id"]


# --- pledges -------------------------------------------------------------------------------


def pledge_rows(registry, rental_id: str) -> int:
    return scalar(registry, select(func.count()).select_from(Pledge).where(
        Pledge.rental_id == uuid.UUID(rental_id)))


def test_pledge_sign_and_renew_keeps_history(registry, client, police):
    created = register(client, police, 70, pledge=None)
    assert created["pledge_state"] == "missing"
    signed = pledge(client, police, created["id"], "2026-01-10", "2026-06-10",
                    signed_by="王代表")
    assert signed.status_code == 200, signed.text
    assert signed.json()["pledge_state"] == "expired"
    renewed = pledge(client, police, created["id"], "2026-06-12", "2027-06-11",
                     signed_by="王续签")
    assert renewed.status_code == 200
    current = read(client, police, created["id"]).json()
    assert current["pledge"] == {"signed_on": "2026-06-12", "valid_until": "2027-06-11",
                                 "signed_by": "王续签"}
    assert current["pledge_state"] == "valid"
    assert pledge_rows(registry, created["id"]) == 2


def test_a_backdated_pledge_is_kept_but_does_not_replace_the_current_one(registry, client,
                                                                       police):
    created = register(client, police, 71)  # signed 2026-03-02, valid until 2027-03-01
    late = pledge(client, police, created["id"], "2025-03-02", "2026-03-01", signed_by="旧签")
    assert late.status_code == 200
    current = read(client, police, created["id"]).json()
    assert current["pledge"]["signed_on"] == "2026-03-02"
    assert current["pledge"]["valid_until"] == "2027-03-01"
    assert current["pledge"]["signed_by"] == rental_body(71)["landlord"]["name"]
    assert pledge_rows(registry, created["id"]) == 2


def test_a_pledge_without_a_signer_defaults_to_the_landlord(client, police):
    # Regression: the default signer is the landlord's sealed name, whose data key no earlier
    # step of the request had loaded (500 before Vault.open loaded keys on demand).
    created = register(client, police, 72, pledge=None)
    response = pledge(client, police, created["id"], "2026-06-01", "2027-05-31")
    assert response.status_code == 200, response.text
    # The answer to a pledge is masked (no purpose); a read with a purpose shows the signer.
    assert response.json()["pledge"]["signed_by"] == rental_body(72)["landlord"]["name"][0] + "*"
    assert read(client, police, created["id"]).json()["pledge"]["signed_by"] == \
        rental_body(72)["landlord"]["name"]


@pytest.mark.parametrize("signed_on, valid_until, field", [
    ("2026-06-16", "2027-06-16", "signed_on"),
    ("2026-06-01", "2026-06-01", "valid_until"),
    ("2026-06-01", "2026-05-01", "valid_until"),
])
def test_pledge_date_rules(registry, client, police, signed_on, valid_until, field):
    created = register(client, police, 73, pledge=None)
    response = pledge(client, police, created["id"], signed_on, valid_until, signed_by="王某")
    assert response.status_code == 422
    assert error_of(response)["field"] == field
    assert pledge_rows(registry, created["id"]) == 0


def test_no_pledge_on_a_deregistered_rental(registry, client, police):
    created = register(client, police, 74)
    deregister(client, police, created["id"])
    response = pledge(client, police, created["id"], "2026-06-01", "2027-05-31",
                      signed_by="王某")
    assert response.status_code == 409
    assert pledge_rows(registry, created["id"]) == 1


def test_coordinator_records_a_pledge_in_their_grid(client, coordinator):
    created = register(client, coordinator, 75, pledge=None)
    response = pledge(client, coordinator, created["id"], "2026-06-01", "2027-05-31",
                      signed_by="王某")
    assert response.status_code == 200
    assert response.json()["pledge_state"] == "valid"
    assert response.json()["pledge"]["signed_by"] == "王*"


def test_pledge_state_boundary(registry, client, police):
    created = register(client, police, 76, pledge={"signed_on": "2025-06-16",
                                                   "valid_until": TODAY})
    assert created["pledge_state"] == "valid"
    assert read(client, police, created["id"]).json()["pledge_state"] == "valid"
    assert ids(listing(client, police, pledge_state="valid")["items"]) == {created["id"]}
    assert listing(client, police, pledge_state="expired")["total"] == 0

    police = days_later(registry, client, police, 1)
    assert read(client, police, created["id"]).json()["pledge_state"] == "expired"
    assert ids(listing(client, police, pledge_state="expired")["items"]) == {created["id"]}
    assert listing(client, police, pledge_state="valid")["total"] == 0


# --- lists ---------------------------------------------------------------------------------


def test_list_pagination(client, police):
    created = [register(client, police, 80 + n, registered_on=f"2026-0{n + 1}-10")
               for n in range(5)]
    first = listing(client, police, page=1, page_size=2)
    assert (first["total"], first["page"], first["page_size"]) == (5, 1, 2)
    assert [i["registered_on"] for i in first["items"]] == ["2026-05-10", "2026-04-10"]
    second = listing(client, police, page=2, page_size=2)
    third = listing(client, police, page=3, page_size=2)
    beyond = listing(client, police, page=4, page_size=2)
    assert len(third["items"]) == 1 and beyond["items"] == []
    assert beyond["total"] == 5
    seen = [i["id"] for page in (first, second, third) for i in page["items"]]
    assert sorted(seen) == sorted(c["id"] for c in created)
    assert listing(client, police)["page_size"] == 50


@pytest.mark.parametrize("params", [{"page": 0}, {"page_size": 0}, {"page_size": 501},
                                    {"status": "gone"}, {"pledge_state": "soon"},
                                    {"jurisdiction": "33"}])
def test_list_refuses_bad_parameters(client, police, params):
    assert client.get("/rentals", params=params, headers=police.headers).status_code == 422


def list_events(registry, user) -> list[SimpleNamespace]:
    return events_where(registry, AuditEvent.actor == user.username, AuditEvent.action == "list")


def test_list_items_are_masked_without_a_purpose(registry, client, police):
    register(client, police, 86)
    [item] = listing(client, police)["items"]
    assert_masked_answer(item, rental_body(86))
    [event] = list_events(registry, police)
    assert event.purpose is None
    assert set(event.fields.split(",")) == MASKED_SHOWN


def test_list_items_are_clear_with_a_purpose(registry, client, police):
    body = rental_body(86)
    register(client, police, 86)
    [item] = listing(client, police, purpose=PURPOSE)["items"]
    assert item["masked"] == [] and item["hidden"] == []
    assert item["address"] == body["address"]
    assert item["landlord"]["name"] == body["landlord"]["name"]
    assert item["landlord"]["id_number"] == body["landlord"]["id_number"]
    assert item["landlord"]["phone"] == body["landlord"]["phone"]
    assert item["landlord"]["birth_date"] == "1985-03-12"
    assert item["pledge"]["signed_by"] == body["landlord"]["name"]
    [event] = list_events(registry, police)
    assert event.purpose == PURPOSE
    assert set(event.fields.split(",")) == CLEAR_SHOWN


def test_coordinator_list_with_a_purpose_shows_only_the_address_clear(client, coordinator):
    body = rental_body(87)
    register(client, coordinator, 87)
    [item] = listing(client, coordinator, purpose=PURPOSE)["items"]
    assert item["masked"] == ["id_number", "name", "phone"]
    assert item["hidden"] == ["birth"]
    assert item["address"] == body["address"]
    assert item["landlord"]["name"] == body["landlord"]["name"][0] + "*"
    assert item["landlord"]["birth_date"] is None
    assert body["landlord"]["id_number"] not in str(item)


def test_list_filters_by_status_and_pledge_state(client, police):
    active = register(client, police, 87)
    vacant = register(client, police, 88, status="vacant", pledge=None)
    gone = register(client, police, 89, pledge={"signed_on": "2025-01-01",
                                                "valid_until": "2026-01-01"})
    deregister(client, police, gone["id"])
    assert ids(listing(client, police, status="active")["items"]) == {active["id"]}
    assert ids(listing(client, police, status="vacant")["items"]) == {vacant["id"]}
    assert ids(listing(client, police, status="deregistered")["items"]) == {gone["id"]}
    assert ids(listing(client, police, pledge_state="valid")["items"]) == {active["id"]}
    assert ids(listing(client, police, pledge_state="missing")["items"]) == {vacant["id"]}
    assert ids(listing(client, police, pledge_state="expired")["items"]) == {gone["id"]}
    both = listing(client, police, status="active", pledge_state="missing")
    assert both["total"] == 0 and both["items"] == []


@pytest.fixture
def spread(client, police, registry):
    """One rental in each of grid A1, grid A2, community A itself, and community B."""
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    return {
        GRID_A1: register(client, police, 90, jurisdiction_code=GRID_A1),
        GRID_A2: register(client, police, 91, jurisdiction_code=GRID_A2),
        COMMUNITY_A: register(client, police, 92, jurisdiction_code=COMMUNITY_A),
        COMMUNITY_B: register(client, police_b, 93, jurisdiction_code=GRID_B1),
        "police_b": police_b,
    }


def test_community_police_sees_the_whole_community(client, police, spread):
    everything = listing(client, police)
    assert everything["total"] == 3
    assert ids(everything["items"]) == {spread[c]["id"] for c in (GRID_A1, GRID_A2, COMMUNITY_A)}
    assert read(client, police, spread[COMMUNITY_B]["id"]).status_code == 404


def test_grid_coordinator_sees_only_the_grid(client, coordinator, spread):
    seen = listing(client, coordinator)
    assert seen["total"] == 1
    assert ids(seen["items"]) == {spread[GRID_A1]["id"]}
    for code in (GRID_A2, COMMUNITY_A, COMMUNITY_B):
        rental_id = spread[code]["id"]
        assert read(client, coordinator, rental_id).status_code == 404
        assert amend(client, coordinator, rental_id, units=9).status_code == 404
        assert pledge(client, coordinator, rental_id, "2026-06-01", "2027-05-31",
                      signed_by="王某").status_code == 404
    # A grid coordinator cannot file a rental at community level either.
    refused = client.post("/rentals", json=rental_body(94, jurisdiction_code=COMMUNITY_A),
                          headers=coordinator.headers)
    assert refused.status_code == 422


def test_out_of_scope_answers_look_like_absent_ones(client, police, spread):
    absent = read(client, police, "01890000-0000-7000-8000-000000000000")
    hidden = read(client, police, spread[COMMUNITY_B]["id"])
    assert absent.status_code == hidden.status_code == 404
    assert error_of(absent) == error_of(hidden)


def test_list_filter_by_jurisdiction(client, police, coordinator, spread):
    grid = listing(client, police, jurisdiction=GRID_A1)
    assert ids(grid["items"]) == {spread[GRID_A1]["id"]}
    assert grid["total"] == 1
    # A node above the caller's scope narrows to the scope.
    assert listing(client, police, jurisdiction=TOWN)["total"] == 3
    assert listing(client, coordinator, jurisdiction=COMMUNITY_A)["total"] == 1
    for user, code in ((police, COMMUNITY_B), (police, GRID_B1), (coordinator, GRID_A2)):
        response = client.get("/rentals", params={"jurisdiction": code}, headers=user.headers)
        assert response.status_code == 422
        assert error_of(response)["field"] == "jurisdiction"


def test_list_is_audited_with_the_ids_it_returned(registry, client, police, spread):
    listing(client, police, page_size=2)
    with registry.db.session() as session:
        event = session.scalar(select(AuditEvent).where(
            AuditEvent.actor == police.username, AuditEvent.action == "list"))
        refs = event.refs.split(",")
    assert len([r for r in refs if r.startswith("rental:")]) == 2
    assert f"rental:{spread[COMMUNITY_B]['id']}" not in refs


# --- search --------------------------------------------------------------------------------


def test_search_by_id_number_and_phone_within_scope_only(client, police, registry):
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    mine = register(client, police, 100)
    theirs = register(client, police_b, 101, landlord=landlord(100),
                      jurisdiction_code=GRID_B1)
    assert theirs["landlord"]["id"] == mine["landlord"]["id"]
    number = rental_body(100)["landlord"]["id_number"]
    phone = rental_body(100)["landlord"]["phone"]

    found = search(client, police, landlord_id_number=number)
    assert found.status_code == 200
    assert ids(found.json()) == {mine["id"]}
    assert ids(search(client, police_b, landlord_id_number=number).json()) == {theirs["id"]}
    assert ids(search(client, police, landlord_phone=phone).json()) == {mine["id"]}
    assert ids(search(client, police_b, landlord_phone=phone).json()) == {theirs["id"]}
    # Results are masked like a list.
    assert_masked_answer(found.json()[0], rental_body(100))


def test_search_with_a_purpose_is_clear_and_audited(registry, client, police):
    body = rental_body(107)
    created = register(client, police, 107)
    found = search(client, police, landlord_id_number=body["landlord"]["id_number"],
                   purpose=PURPOSE)
    assert found.status_code == 200, found.text
    [item] = found.json()
    assert item["id"] == created["id"]
    assert item["masked"] == [] and item["hidden"] == []
    assert item["landlord"]["id_number"] == body["landlord"]["id_number"]
    assert item["landlord"]["name"] == body["landlord"]["name"]
    assert item["address"] == body["address"]
    with registry.db.session() as session:
        event = session.scalar(select(AuditEvent).where(
            AuditEvent.actor == police.username, AuditEvent.action == "search"))
        values = (event.purpose, event.detail, set(event.fields.split(",")),
                  event.refs.split(","))
    assert values[0] == PURPOSE
    assert values[1] == "by=landlord.id_number"
    assert values[2] == CLEAR_SHOWN
    assert f"rental:{created['id']}" in values[3]


def test_search_normalises_the_query(client, police):
    created = register(client, police, 102)
    number = rental_body(102)["landlord"]["id_number"]
    legacy = number[:6] + number[8:17]
    for query in (number.lower(), f" {number[:6]} {number[6:]} ", legacy):
        assert ids(search(client, police, landlord_id_number=query).json()) == {created["id"]}
    phone = rental_body(102)["landlord"]["phone"]
    assert ids(search(client, police, landlord_phone=f"+86 {phone}").json()) == {created["id"]}


def test_search_finds_several_rentals_of_one_landlord(client, police):
    first = register(client, police, 103)
    second = register(client, police, 104, landlord=landlord(103), jurisdiction_code=GRID_A2)
    found = search(client, police, landlord_id_number=rental_body(103)["landlord"]["id_number"])
    assert ids(found.json()) == {first["id"], second["id"]}


def test_search_with_no_match_is_empty_and_audited(registry, client, police):
    register(client, police, 105)
    assert search(client, police, landlord_id_number=id_number(999)).json() == []
    assert search(client, police, landlord_phone="13999999999").json() == []
    with registry.db.session() as session:
        details = set(session.scalars(select(AuditEvent.detail).where(
            AuditEvent.actor == police.username, AuditEvent.action == "search")))
    assert details == {"by=landlord.id_number", "by=landlord.phone"}


@pytest.mark.parametrize("body, field", [
    ({}, "landlord_id_number"),
    ({"landlord_id_number": "11010519491231002X", "landlord_phone": "13800138000"},
     "landlord_id_number"),
    ({"landlord_id_number": "11010519491231002Y"}, "landlord_id_number"),
    ({"landlord_phone": "12000000000"}, "landlord_phone"),
])
def test_search_refusals(client, police, body, field):
    response = search(client, police, **body)
    assert response.status_code == 422
    assert error_of(response)["field"] == field


def test_coordinator_may_not_search(client, coordinator):
    register(client, coordinator, 106)
    response = search(client, coordinator,
                      landlord_id_number=rental_body(106)["landlord"]["id_number"])
    assert response.status_code == 403


# --- missing facts -------------------------------------------------------------------------


def test_missing_lists_the_landlord_phone_when_absent(registry, client, police):
    created = register(client, police, 110, landlord=landlord(110, phone=None))
    assert created["missing"] == ["landlord.phone"]
    assert read(client, police, created["id"]).json()["missing"] == ["landlord.phone"]
    [item] = listing(client, police)["items"]
    assert item["missing"] == ["landlord.phone"]
    # Once another registration records the landlord's phone, it is no longer missing.
    register(client, police, 111, landlord=landlord(110, phone="13911110000"))
    assert read(client, police, created["id"]).json()["missing"] == []
    with registry.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 1


# --- truncated blind indexes ---------------------------------------------------------------


def colliding(index, column: str, make, count: int = 2) -> list[str]:
    """``count`` distinct values whose truncated blind index falls in one bucket."""
    buckets: dict[int, list[str]] = {}
    for seed in range(1, 5000):
        value = make(seed)
        found = buckets.setdefault(index("person" if column != "address" else
                                         "rental_property", column, value), [])
        if value not in found:
            found.append(value)
        if len(found) == count:
            return found
    raise AssertionError("no collision found")


def test_shared_buckets_are_resolved_by_decrypting_the_candidates(registry, settings, db):
    """With an 8-bit index, different ID numbers, phones and addresses share buckets; the
    vault must still tell the people and addresses apart."""
    narrow = settings.model_copy(update={"blind_index_bits": 8})
    small = Registry(narrow, db=db, keyring=Keyring.from_settings(narrow),
                     clock=Clock(fixed=FIXED_NOW))
    index = small.keyring.index
    first_id, second_id = colliding(index, "id_number", lambda n: id_number(n))
    first_phone, second_phone = colliding(index, "phone", lambda n: f"1380000{n:04d}")
    first_address, second_address = colliding(
        index, "address", lambda n: address_key(f"西门路{n}号"))

    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        police = make_user(small, client, "police", COMMUNITY_A)

        def add(seed, number, phone, address, name=None):
            body = rental_body(seed, address=address)
            body["landlord"] = {"name": name or f"测试{seed}", "id_number": number,
                                "phone": phone}
            response = client.post("/rentals", json=body, headers=police.headers)
            assert response.status_code == 201, response.text
            return response.json()

        one = add(1, first_id, first_phone, first_address)
        # Same node, an address in the same bucket: not a duplicate.
        two = add(2, second_id, second_phone, second_address)
        assert one["landlord"]["id"] != two["landlord"]["id"]
        # The same address again is still caught among the bucket's candidates.
        again = client.post("/rentals", json=rental_body(3, address=first_address),
                            headers=police.headers)
        assert again.status_code == 409
        assert again.json()["error"]["existing_id"] == one["id"]

        assert ids(search(client, police, landlord_id_number=first_id).json()) == {one["id"]}
        assert ids(search(client, police, landlord_id_number=second_id).json()) == {two["id"]}
        assert ids(search(client, police, landlord_phone=first_phone).json()) == {one["id"]}
        assert ids(search(client, police, landlord_phone=second_phone).json()) == {two["id"]}
        # Registering either person again finds that person, not their bucket-mate.
        three = add(4, first_id, first_phone, "北门路4号", name="测试1")
        four = add(5, second_id, second_phone, "北门路5号", name="测试2")
        assert three["landlord"]["id"] == one["landlord"]["id"]
        assert four["landlord"]["id"] == two["landlord"]["id"]


def _last_event_refs(registry) -> list[str]:
    with registry.db.session() as session:
        refs = session.scalar(select(AuditEvent.refs).order_by(AuditEvent.seq.desc()).limit(1))
    return refs.split(",")


def test_the_landlord_phone_shared_across_rentals_is_on_the_record(registry, client, police):
    """Taking the known phone from another rental, or replacing it there, reads or writes that
    rental: the operation's one audit event names it too."""
    first = register(client, police, 91)
    second = register(client, police, 92, landlord=landlord(91, phone=None), purpose=PURPOSE)
    assert second["landlord"]["phone"] == rental_body(91)["landlord"]["phone"]
    assert f"rental:{first['id']}" in _last_event_refs(registry)
    third = register(client, police, 93, landlord=landlord(91, phone="13911112222"))
    refs = _last_event_refs(registry)
    assert {f"rental:{first['id']}", f"rental:{second['id']}",
            f"rental:{third['id']}"} <= set(refs)
    assert read(client, police, first["id"]).json()["landlord"]["phone"] == "13911112222"
