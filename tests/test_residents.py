"""The resident register end to end through the API: arrival, move, move-out, amend, find,
who lives at a rental now and on a past date, one person's history, the ``missing`` list and
the ``late`` flag (per-jurisdiction deadlines), masking by role and purpose, scope, refusals
that write nothing and echo nothing, and the privacy rule that a released or supervised
person looks to police exactly like any other resident (registry/residents/,
registry/vault/residents.py, persons.py, jurisdictions.py)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from registry.errors import Invalid, NotFound
from registry.models import AuditEvent, DataKey, Person, Residency
from registry.vault.accounts import system_actor
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    GRID_A2,
    GRID_B1,
    TOWN,
    id_number,
    make_user,
    rental_body,
)

TODAY = FIXED_NOW.date()  # 2026-06-15
PURPOSE = "case 2026-201"
ALL_GROUPS = ["address", "birth", "id_number", "name", "permit", "phone", "work"]
NUMERALS = "一二三四五六七八九十"


# --- helpers -------------------------------------------------------------------------------


def day(offset: int) -> str:
    """TODAY plus ``offset`` days, as the API writes dates."""
    return (TODAY + timedelta(days=offset)).isoformat()


def name_of(seed: int) -> str:
    return f"李{NUMERALS[seed % 10]}{NUMERALS[seed // 10 % 10]}"


def resident_id_number(seed: int) -> str:
    # Another birth date than the landlords' (tests.conftest.rental_body), so no clash.
    return id_number(seed, birth="19920704")


def phone_of(seed: int) -> str:
    return f"1390013{seed % 10000:04d}"


def arrival(seed: int, *, rental_id: str | None = None, **overrides) -> dict:
    """A complete arrival three days ago (on the default deadline): nothing missing."""
    body = {
        "name": name_of(seed), "id_number": resident_id_number(seed), "reason": "work",
        "arrived_on": day(-3), "occupation": "厨师", "workplace": f"东门饭店{seed}号店",
        "phone": phone_of(seed), "hukou_address": f"四川省成都市青羊区{seed}号",
        "permit_number": f"JZZ2026{seed:05d}", "permit_issued_on": "2026-01-10",
        "permit_endorsed_on": "2026-04-10",
    }
    if rental_id is not None:
        body["rental_id"] = rental_id
    else:
        body.update(jurisdiction_code=GRID_A1, address=f"东门路{seed}号附{seed}室")
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def headers(user, purpose: str | None = PURPOSE) -> dict:
    return {**user.headers, **({"X-Purpose": purpose} if purpose else {})}


def post_arrival(client, user, body: dict, purpose: str | None = PURPOSE):
    return client.post("/residents", json=body, headers=headers(user, purpose))


def arrive(client, user, seed: int, **overrides) -> dict:
    response = post_arrival(client, user, arrival(seed, **overrides))
    assert response.status_code == 201, response.text
    return response.json()


def register_rental(client, user, seed: int, **overrides) -> dict:
    response = client.post("/rentals", json=rental_body(seed, **overrides), headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def read(client, user, residency_id: str, purpose: str | None = PURPOSE):
    return client.get(f"/residents/{residency_id}", headers=headers(user, purpose))


def move(client, user, residency_id: str, body: dict, purpose: str | None = PURPOSE):
    return client.post(f"/residents/{residency_id}/move", json=body,
                       headers=headers(user, purpose))


def move_out(client, user, residency_id: str, left_on: str, purpose: str | None = PURPOSE):
    return client.post(f"/residents/{residency_id}/move-out", json={"left_on": left_on},
                       headers=headers(user, purpose))


def amend(client, user, residency_id: str, purpose: str | None = PURPOSE, **changes):
    return client.patch(f"/residents/{residency_id}", json=changes,
                        headers=headers(user, purpose))


def search(client, user, purpose: str | None = PURPOSE, **body):
    return client.post("/residents/search", json=body, headers=headers(user, purpose))


def at_rental(client, user, rental_id: str, on: str | None = None,
              purpose: str | None = PURPOSE):
    params = {"on": on} if on is not None else {}
    return client.get(f"/residents/at-rental/{rental_id}", params=params,
                      headers=headers(user, purpose))


def listing(client, user, purpose: str | None = PURPOSE, **params) -> dict:
    response = client.get("/residents", params=params, headers=headers(user, purpose))
    assert response.status_code == 200, response.text
    return response.json()


def ids(items) -> list[str]:
    return [item["id"] for item in items]


def present_at(client, user, rental_id: str, on: str | None = None) -> set[str]:
    response = at_rental(client, user, rental_id, on)
    assert response.status_code == 200, response.text
    return set(ids(response.json()))


def error_of(response) -> dict:
    return response.json()["error"]


def counts(registry) -> tuple[int, int, int]:
    """Rows of residency, person and data_key: a refusal must leave all three unchanged."""
    with registry.db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (Residency, Person, DataKey))


def personal_values(body: dict) -> list[str]:
    keys = ("name", "id_number", "phone", "address", "hukou_address", "workplace",
            "occupation", "permit_number")
    return [body[k] for k in keys if isinstance(body.get(k), str)]


def assert_refused(registry, send, status: int, field: str | None = None, *,
                   values=()) -> dict:
    """``send()`` is refused with ``status`` (naming ``field``), writes no residency, person
    or data key, and echoes none of ``values``."""
    before = counts(registry)
    response = send()
    assert response.status_code == status, response.text
    error = error_of(response)
    if field is not None:
        assert error["field"] == field, error
    for value in values:
        assert value not in response.text, value
    assert counts(registry) == before
    return error


def set_deadline(registry, code: str, days: int | None) -> None:
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.set_deadline(code, days)
        vault.commit()


@pytest.fixture
def police(registry, client):
    return make_user(registry, client, "police", COMMUNITY_A)


@pytest.fixture
def coordinator(registry, client):
    return make_user(registry, client, "coordinator", GRID_A1)


@pytest.fixture
def rental(client, police) -> dict:
    return register_rental(client, police, 1)


# --- registering an arrival ----------------------------------------------------------------


def test_register_an_arrival_at_a_rental(client, police, rental):
    body = arrival(1, rental_id=rental["id"])
    response = post_arrival(client, police, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["rental_id"] == rental["id"]
    assert created["jurisdiction_code"] == rental["jurisdiction_code"] == GRID_A1
    assert created["address"] is None
    person = created["person"]
    assert person["name"] == body["name"]
    assert person["id_number"] == body["id_number"]
    assert person["birth_date"] == "1992-07-04"
    assert person["sex"] in ("M", "F")
    assert person["phone"] is None  # the residency's phone is the one shown
    for field in ("reason", "occupation", "workplace", "phone", "hukou_address",
                  "permit_number", "permit_issued_on", "permit_endorsed_on", "arrived_on"):
        assert created[field] == body[field], field
    assert created["registered_on"] == TODAY.isoformat()
    assert created["left_on"] is None
    assert created["late"] is False
    assert created["missing"] == []
    assert created["masked"] == [] and created["hidden"] == []
    again = read(client, police, created["id"])
    assert again.status_code == 200
    assert again.json() == created


def test_register_an_arrival_at_another_address(client, police):
    body = arrival(2, jurisdiction_code=GRID_A2, address="东门路2号附2室")
    response = post_arrival(client, police, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["rental_id"] is None
    assert created["jurisdiction_code"] == GRID_A2
    assert created["address"] == "东门路2号附2室"
    assert created["missing"] == []


def test_registered_on_may_be_given(client, police, rental):
    created = arrive(client, police, 3, rental_id=rental["id"], arrived_on="2026-05-01",
                     registered_on="2026-05-02")
    assert (created["arrived_on"], created["registered_on"]) == ("2026-05-01", "2026-05-02")


def test_arrival_input_is_normalised(client, police, rental):
    number = resident_id_number(4)
    body = arrival(4, rental_id=rental["id"], id_number=f" {number[:6]} {number[6:].lower()} ",
                   phone=f"+86 {phone_of(4)[:3]}-{phone_of(4)[3:]}", workplace="  东门  饭店 ")
    response = post_arrival(client, police, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["person"]["id_number"] == number
    assert created["phone"] == phone_of(4)
    assert created["workplace"] == "东门 饭店"


def test_a_landlord_who_is_also_a_resident_is_one_person(registry, client, police):
    home = register_rental(client, police, 5)
    let = register_rental(client, police, 6, landlord=rental_body(5)["landlord"],
                          jurisdiction_code=GRID_A2)
    landlord = rental_body(5)["landlord"]
    persons = counts(registry)[1]
    body = arrival(5, rental_id=home["id"], name=landlord["name"],
                   id_number=landlord["id_number"])
    response = post_arrival(client, police, body)
    assert response.status_code == 201, response.text
    resident = response.json()
    assert resident["person"]["id"] == home["landlord"]["id"] == let["landlord"]["id"]
    assert counts(registry)[1] == persons
    found = search(client, police, id_number=landlord["id_number"]).json()
    assert ids(found) == [resident["id"]]


def test_registration_is_audited_without_values(registry, client, police, rental):
    body = arrival(7, rental_id=rental["id"])
    created = arrive(client, police, 7, rental_id=rental["id"])
    search(client, police, id_number=body["id_number"])
    search(client, police, phone=body["phone"])
    with registry.db.session() as session:
        events = session.execute(select(
            AuditEvent.action, AuditEvent.record_id, AuditEvent.fields, AuditEvent.refs,
            AuditEvent.detail, AuditEvent.purpose).where(
            AuditEvent.actor == police.username, AuditEvent.kind == "resident")
            .order_by(AuditEvent.seq)).all()
    assert [e.action for e in events] == ["create", "search", "search"]
    assert events[0].record_id == created["id"]
    assert f"person:{created['person']['id']}" in events[0].refs
    assert [e.detail for e in events[1:]] == ["by=id_number", "by=phone"]
    assert {e.purpose for e in events} == {PURPOSE}
    text = json.dumps([list(e) for e in events], ensure_ascii=False)
    for value in personal_values(body):
        assert value not in text


# --- missing facts and the late flag -------------------------------------------------------


MISSING_CASES = [
    ({}, []),
    ({"phone": None}, ["phone"]),
    ({"hukou_address": None}, ["hukou_address"]),
    ({"occupation": None}, ["occupation"]),
    ({"workplace": None}, ["workplace"]),
    ({"reason": "business", "workplace": None}, ["workplace"]),
    ({"reason": "study", "workplace": None}, []),
    ({"reason": "family", "workplace": None, "phone": None, "hukou_address": None,
      "occupation": None}, ["phone", "hukou_address", "occupation"]),
    ({"workplace": None, "phone": None, "hukou_address": None, "occupation": None},
     ["phone", "hukou_address", "occupation", "workplace"]),
    ({"permit_number": None, "permit_issued_on": None, "permit_endorsed_on": None}, []),
]


def test_a_record_knows_its_missing_facts(client, police):
    for seed, (changes, missing) in enumerate(MISSING_CASES, start=140):
        created = arrive(client, police, seed, **changes)
        assert created["missing"] == missing, changes
    listed = listing(client, police, page_size=100)["items"]
    assert sorted(item["missing"] for item in listed) == sorted(m for _, m in MISSING_CASES)


def test_amending_fills_the_missing_facts_and_the_incomplete_filter_follows(client, police,
                                                                            rental):
    created = arrive(client, police, 11, rental_id=rental["id"], phone=None, workplace=None)
    complete = arrive(client, police, 12, rental_id=rental["id"])
    assert created["missing"] == ["phone", "workplace"]
    assert ids(listing(client, police, incomplete=True)["items"]) == [created["id"]]
    assert ids(listing(client, police, incomplete=False)["items"]) == [complete["id"]]

    response = amend(client, police, created["id"], phone=phone_of(11))
    assert response.status_code == 200, response.text
    assert response.json()["missing"] == ["workplace"]
    assert response.json()["phone"] == phone_of(11)
    response = amend(client, police, created["id"], reason="study")
    assert response.json()["missing"] == []
    assert response.json()["occupation"] == "厨师"  # untouched facts stay
    assert listing(client, police, incomplete=True)["items"] == []
    assert listing(client, police, incomplete=False)["total"] == 2


def test_an_empty_amend_changes_nothing(client, police, rental):
    created = arrive(client, police, 13, rental_id=rental["id"])
    response = amend(client, police, created["id"])
    assert response.status_code == 200
    assert response.json() == created


LATE_CASES = [
    (day(-3), None, False),  # exactly the default deadline (3 days)
    (day(-4), None, True),  # one day more
    (day(0), None, False),
    ("2026-05-01", "2026-05-04", False),
    ("2026-05-01", "2026-05-05", True),
    ("2026-05-01", "2026-05-01", False),
]


def test_late_registration_against_the_default_deadline(client, police):
    for seed, (arrived_on, registered_on, late) in enumerate(LATE_CASES, start=150):
        created = arrive(client, police, seed, arrived_on=arrived_on,
                         registered_on=registered_on)
        assert created["late"] is late, (arrived_on, registered_on)


def test_the_late_filter(client, police, rental):
    on_time = arrive(client, police, 21, rental_id=rental["id"], arrived_on=day(-3))
    late = arrive(client, police, 22, rental_id=rental["id"], arrived_on=day(-4))
    assert ids(listing(client, police, late=True)["items"]) == [late["id"]]
    assert ids(listing(client, police, late=False)["items"]) == [on_time["id"]]


def test_a_community_deadline_is_inherited_by_its_grids(registry, client, police):
    set_deadline(registry, COMMUNITY_A, 10)
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    for seed, code, user in ((23, GRID_A1, police), (24, GRID_A2, police),
                             (25, COMMUNITY_A, police)):
        at_deadline = arrive(client, user, seed, jurisdiction_code=code, arrived_on=day(-10))
        assert at_deadline["late"] is False, code
        over = arrive(client, user, seed + 10, jurisdiction_code=code, arrived_on=day(-11))
        assert over["late"] is True, code
    # A neighbouring community keeps the setting (3 days).
    assert arrive(client, police_b, 26, jurisdiction_code=GRID_B1,
                  arrived_on=day(-3))["late"] is False
    assert arrive(client, police_b, 27, jurisdiction_code=GRID_B1,
                  arrived_on=day(-4))["late"] is True


def test_the_nearest_deadline_wins(registry, client):
    set_deadline(registry, COUNTY, 30)
    set_deadline(registry, TOWN, 7)
    set_deadline(registry, GRID_A2, 0)
    police = make_user(registry, client, "police", TOWN)
    cases = [
        (40, GRID_B1, -7, False), (41, GRID_B1, -8, True),  # the town's 7
        (42, GRID_A1, -7, False), (43, GRID_A1, -8, True),
        (44, GRID_A2, 0, False), (45, GRID_A2, -1, True),  # the grid's own 0
    ]
    for seed, code, offset, late in cases:
        created = arrive(client, police, seed, jurisdiction_code=code, arrived_on=day(offset))
        assert created["late"] is late, (code, offset)
    set_deadline(registry, GRID_A2, None)  # cleared: the town's again
    assert arrive(client, police, 46, jurisdiction_code=GRID_A2,
                  arrived_on=day(-7))["late"] is False


def test_set_deadline_refuses_bad_values(registry):
    with pytest.raises(Invalid):
        set_deadline(registry, COMMUNITY_A, 366)
    with pytest.raises(Invalid):
        set_deadline(registry, COMMUNITY_A, -1)
    with pytest.raises(NotFound):
        set_deadline(registry, "330199009", 5)


# --- moving --------------------------------------------------------------------------------


def test_move_to_another_rental(client, police, rental):
    other = register_rental(client, police, 2, jurisdiction_code=GRID_A2)
    old = arrive(client, police, 30, rental_id=rental["id"], arrived_on="2026-04-01",
                 registered_on="2026-04-02")
    response = move(client, police, old["id"], {"rental_id": other["id"], "moved_on": day(-2)})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["id"] != old["id"]
    assert new["person"]["id"] == old["person"]["id"]
    assert new["rental_id"] == other["id"]
    assert new["jurisdiction_code"] == GRID_A2
    assert new["arrived_on"] == day(-2)
    assert new["registered_on"] == TODAY.isoformat()
    assert new["left_on"] is None
    assert new["late"] is False
    # The facts come along.
    for field in ("reason", "occupation", "workplace", "phone", "hukou_address",
                  "permit_number", "permit_issued_on", "permit_endorsed_on", "missing"):
        assert new[field] == old[field], field
    closed = read(client, police, old["id"]).json()
    assert closed["left_on"] == day(-2)
    assert closed["rental_id"] == rental["id"]  # history is not overwritten
    assert present_at(client, police, rental["id"]) == set()
    assert present_at(client, police, other["id"]) == {new["id"]}
    # On the moving day itself they live at the new place, not the old.
    assert present_at(client, police, rental["id"], day(-2)) == set()
    assert present_at(client, police, other["id"], day(-2)) == {new["id"]}
    assert present_at(client, police, rental["id"], day(-3)) == {old["id"]}
    assert present_at(client, police, other["id"], day(-3)) == set()


def test_move_to_an_address_with_new_facts(client, police, rental):
    old = arrive(client, police, 31, rental_id=rental["id"])
    response = move(client, police, old["id"], {
        "jurisdiction_code": GRID_A2, "address": "东门路31号后院", "moved_on": day(0),
        "workplace": "新东门饭店", "phone": phone_of(9031), "reason": "business"})
    assert response.status_code == 201, response.text
    new = response.json()
    assert (new["rental_id"], new["address"]) == (None, "东门路31号后院")
    assert (new["workplace"], new["phone"], new["reason"]) == ("新东门饭店", phone_of(9031),
                                                               "business")
    assert new["occupation"] == old["occupation"]
    assert read(client, police, old["id"]).json()["phone"] == phone_of(31)
    # Both phones find the person's residencies: the old one its ended record only.
    assert ids(search(client, police, phone=phone_of(9031)).json()) == [new["id"]]
    assert ids(search(client, police, phone=phone_of(31)).json()) == [old["id"]]


def test_a_move_recorded_after_the_deadline_is_late(client, police, rental):
    old = arrive(client, police, 32, rental_id=rental["id"], arrived_on="2026-05-01",
                 registered_on="2026-05-01")
    late = move(client, police, old["id"], {"jurisdiction_code": GRID_A1,
                                            "address": "东门路32号", "moved_on": day(-4)})
    assert late.status_code == 201, late.text
    assert late.json()["late"] is True
    on_time = move(client, police, late.json()["id"], {"rental_id": rental["id"],
                                                       "moved_on": day(-3)})
    assert on_time.status_code == 201, on_time.text
    assert on_time.json()["late"] is False


def test_move_on_the_arrival_day(client, police, rental):
    old = arrive(client, police, 33, rental_id=rental["id"], arrived_on=day(-1))
    response = move(client, police, old["id"], {"jurisdiction_code": GRID_A1,
                                                "address": "东门路33号", "moved_on": day(-1)})
    assert response.status_code == 201, response.text
    assert present_at(client, police, rental["id"], day(-1)) == set()


def test_move_out(client, police, rental):
    created = arrive(client, police, 34, rental_id=rental["id"], arrived_on="2026-05-01")
    response = move_out(client, police, created["id"], day(-1))
    assert response.status_code == 200, response.text
    assert response.json()["left_on"] == day(-1)
    assert present_at(client, police, rental["id"]) == set()
    assert present_at(client, police, rental["id"], day(-1)) == set()  # the day they left
    assert present_at(client, police, rental["id"], day(-2)) == {created["id"]}
    assert present_at(client, police, rental["id"], "2026-05-01") == {created["id"]}
    assert present_at(client, police, rental["id"], "2026-04-30") == set()
    assert listing(client, police, present_on=day(0))["items"] == []
    assert ids(listing(client, police, present_on=day(-2))["items"]) == [created["id"]]


def test_move_out_on_the_arrival_day_and_register_again(client, police, rental):
    created = arrive(client, police, 35, rental_id=rental["id"], arrived_on=day(-1))
    assert move_out(client, police, created["id"], day(-1)).status_code == 200
    again = arrive(client, police, 35, rental_id=rental["id"], arrived_on=day(0))
    assert again["person"]["id"] == created["person"]["id"]


def test_who_lives_at_a_rental_now_and_on_past_dates(client, police, rental):
    other = register_rental(client, police, 3)
    a = arrive(client, police, 36, rental_id=rental["id"], arrived_on="2026-04-01",
               registered_on="2026-04-01")
    b = arrive(client, police, 37, rental_id=rental["id"], arrived_on="2026-05-10",
               registered_on="2026-05-10")
    c = arrive(client, police, 38, rental_id=other["id"], arrived_on="2026-04-01",
               registered_on="2026-04-01")
    assert move_out(client, police, a["id"], "2026-05-20").status_code == 200
    assert present_at(client, police, rental["id"]) == {b["id"]}
    assert present_at(client, police, rental["id"], "2026-03-31") == set()
    assert present_at(client, police, rental["id"], "2026-04-01") == {a["id"]}
    assert present_at(client, police, rental["id"], "2026-05-09") == {a["id"]}
    assert present_at(client, police, rental["id"], "2026-05-10") == {a["id"], b["id"]}
    assert present_at(client, police, rental["id"], "2026-05-19") == {a["id"], b["id"]}
    assert present_at(client, police, rental["id"], "2026-05-20") == {b["id"]}
    assert present_at(client, police, other["id"], "2026-05-20") == {c["id"]}


def test_at_rental_of_an_unknown_or_unseen_rental_is_404(registry, client, police):
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    theirs = register_rental(client, police_b, 4, jurisdiction_code=GRID_B1)
    arrive(client, police_b, 39, rental_id=theirs["id"])
    unseen = at_rental(client, police, theirs["id"])
    absent = at_rental(client, police, str(uuid.uuid4()))
    assert unseen.status_code == absent.status_code == 404
    assert error_of(unseen) == error_of(absent)


def test_one_persons_history(registry, client, police, rental):
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    first = arrive(client, police, 50, rental_id=rental["id"], arrived_on="2026-01-05",
                   registered_on="2026-01-05")
    second = move(client, police, first["id"], {"jurisdiction_code": GRID_A2,
                                                "address": "东门路50号", "moved_on": "2026-03-01"})
    third = move(client, police, second.json()["id"], {"rental_id": rental["id"],
                                                       "moved_on": "2026-05-01"})
    assert move_out(client, police, third.json()["id"], day(-5)).status_code == 200
    elsewhere = arrive(client, police_b, 50, jurisdiction_code=GRID_B1, arrived_on=day(-4))
    arrive(client, police, 51, rental_id=rental["id"])  # someone else
    person_id = first["person"]["id"]
    assert elsewhere["person"]["id"] == person_id

    page = listing(client, police, person_id=person_id)
    assert page["total"] == 3
    assert ids(page["items"]) == [third.json()["id"], second.json()["id"], first["id"]]
    assert [(r["arrived_on"], r["left_on"]) for r in page["items"]] == [
        ("2026-05-01", day(-5)), ("2026-03-01", "2026-05-01"), ("2026-01-05", "2026-03-01")]
    # Each office sees its own part of the history only.
    assert ids(listing(client, police_b, person_id=person_id)["items"]) == [elsewhere["id"]]
    county = make_user(registry, client, "police", COUNTY)
    assert listing(client, county, person_id=person_id)["total"] == 4
    assert listing(client, police, person_id=str(uuid.uuid4()))["items"] == []


def test_list_by_jurisdiction_and_paging(client, police):
    a1 = [arrive(client, police, 60 + i, arrived_on=day(-i))["id"] for i in range(3)]
    a2 = arrive(client, police, 63, jurisdiction_code=GRID_A2, arrived_on=day(-5))["id"]
    assert ids(listing(client, police, jurisdiction=GRID_A1)["items"]) == a1
    assert ids(listing(client, police, jurisdiction=GRID_A2)["items"]) == [a2]
    page = listing(client, police, page=2, page_size=2)
    assert (page["total"], ids(page["items"])) == (4, [a1[2], a2])
    response = client.get("/residents", params={"jurisdiction": COMMUNITY_B},
                          headers=police.headers)
    assert response.status_code == 422
    assert error_of(response)["field"] == "jurisdiction"


# --- finding -------------------------------------------------------------------------------


def test_search_by_id_number_and_phone_within_scope_only(registry, client, police, rental):
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    mine = arrive(client, police, 70, rental_id=rental["id"])
    theirs = arrive(client, police_b, 70, jurisdiction_code=GRID_B1)
    only_theirs = arrive(client, police_b, 71, jurisdiction_code=GRID_B1)
    assert mine["person"]["id"] == theirs["person"]["id"]

    assert ids(search(client, police, id_number=resident_id_number(70)).json()) == [mine["id"]]
    assert ids(search(client, police_b, id_number=resident_id_number(70)).json()) == [
        theirs["id"]]
    assert ids(search(client, police, phone=phone_of(70)).json()) == [mine["id"]]
    assert ids(search(client, police_b, phone=phone_of(70)).json()) == [theirs["id"]]
    assert search(client, police, id_number=resident_id_number(71)).json() == []
    assert search(client, police, phone=phone_of(71)).json() == []
    assert ids(search(client, police_b, phone=phone_of(71)).json()) == [only_theirs["id"]]
    assert search(client, police, id_number=resident_id_number(999)).json() == []
    assert search(client, police, phone="13700000000").json() == []


def test_search_normalises_the_query(client, police, rental):
    created = arrive(client, police, 72, rental_id=rental["id"])
    number = resident_id_number(72)
    for query in (number.lower(), f" {number[:6]} {number[6:]} ", number[:6] + number[8:17]):
        assert ids(search(client, police, id_number=query).json()) == [created["id"]]
    phone = phone_of(72)
    for query in (f"+86 {phone}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"):
        assert ids(search(client, police, phone=query).json()) == [created["id"]]


def test_search_follows_an_amended_phone(client, police, rental):
    created = arrive(client, police, 73, rental_id=rental["id"])
    assert amend(client, police, created["id"], phone=phone_of(9073)).status_code == 200
    assert search(client, police, phone=phone_of(73)).json() == []
    assert ids(search(client, police, phone=phone_of(9073)).json()) == [created["id"]]


def test_search_returns_the_history_newest_first(client, police, rental):
    first = arrive(client, police, 74, rental_id=rental["id"], arrived_on="2026-05-01",
                   registered_on="2026-05-01")
    second = move(client, police, first["id"], {"jurisdiction_code": GRID_A2,
                                                "address": "东门路74号", "moved_on": day(-1)})
    found = search(client, police, id_number=resident_id_number(74)).json()
    assert ids(found) == [second.json()["id"], first["id"]]


SEARCH_REFUSALS = [
    ({}, "id_number"),
    ({"id_number": "11010519491231002X", "phone": "13800138000"}, "id_number"),
    ({"id_number": "11010519491231002Y"}, "id_number"),
    ({"id_number": "110105204912310021"}, "id_number"),
    ({"phone": "12000000000"}, "phone"),
    ({"phone": "1390013"}, "phone"),
    ({"name": "李一"}, "name"),
]


def test_search_refusals(client, police):
    for body, field in SEARCH_REFUSALS:
        response = search(client, police, **body)
        assert response.status_code == 422, body
        assert error_of(response)["field"] == field, body
        for value in body.values():
            assert value not in response.text


def test_coordinator_may_not_search(client, coordinator):
    created = arrive(client, coordinator, 75)
    for body in ({"id_number": resident_id_number(75)}, {"phone": phone_of(75)}):
        response = search(client, coordinator, **body)
        assert response.status_code == 403
        assert created["id"] not in response.text


# --- masking -------------------------------------------------------------------------------


def test_police_without_a_purpose_sees_everything_masked(client, police, rental):
    body = arrival(80, rental_id=rental["id"], address="东门路80号院内")
    created = post_arrival(client, police, body, purpose=None)
    assert created.status_code == 201, created.text
    masked = created.json()
    assert masked["masked"] == ALL_GROUPS
    assert masked["hidden"] == []
    person = masked["person"]
    assert person["name"] == body["name"][0] + "*"
    assert person["id_number"] == body["id_number"][:6] + "********" + body["id_number"][-4:]
    assert person["birth_date"] == "1992-**-**"
    assert person["sex"] is None and person["phone"] is None
    assert masked["phone"] == body["phone"][:3] + "****" + body["phone"][-4:]
    assert masked["address"].endswith("***") and masked["address"] != body["address"]
    assert masked["hukou_address"].endswith("***")
    assert masked["workplace"] == body["workplace"][0] + "***"
    assert masked["occupation"] == body["occupation"][0] + "***"
    assert masked["permit_number"] == body["permit_number"][0] + "***"
    # Dates, flags and codes stay clear: they count and route.
    assert masked["arrived_on"] == body["arrived_on"]
    assert (masked["late"], masked["missing"], masked["reason"]) == (False, [], "work")
    assert masked["jurisdiction_code"] == GRID_A1
    for value in personal_values(body):
        assert value not in created.text


def test_every_answer_is_masked_without_a_purpose(client, police, rental):
    created = arrive(client, police, 81, rental_id=rental["id"])
    number = resident_id_number(81)
    answers = {
        "read": read(client, police, created["id"], purpose=None),
        "list": client.get("/residents", headers=police.headers),
        "search": search(client, police, purpose=None, id_number=number),
        "at-rental": at_rental(client, police, rental["id"], purpose=None),
        "amend": amend(client, police, created["id"], purpose=None, occupation="面点师"),
    }
    moved = move(client, police, created["id"], {"jurisdiction_code": GRID_A1,
                                                 "address": "东门路81号", "moved_on": day(0)},
                 purpose=None)
    answers["move"] = moved
    answers["move-out"] = move_out(client, police, moved.json()["id"], day(0), purpose=None)
    for what, response in answers.items():
        assert response.status_code in (200, 201), (what, response.text)
        items = response.json()
        items = items["items"] if isinstance(items, dict) and "items" in items else items
        items = items if isinstance(items, list) else [items]
        assert items, what
        for item in items:
            assert item["masked"] == ALL_GROUPS, what
            assert item["person"]["id_number"] != number, what
        for value in (number, name_of(81), phone_of(81), "面点师", "东门路81号"):
            assert value not in response.text, (what, value)
    # With a purpose, the same reads come clear.
    assert search(client, police, id_number=number).json()[0]["person"]["id_number"] == number
    assert read(client, police, created["id"]).json()["masked"] == []


def test_a_blank_purpose_counts_as_none(client, police, rental):
    created = arrive(client, police, 82, rental_id=rental["id"])
    response = read(client, police, created["id"], purpose="   ")
    assert response.status_code == 200
    assert response.json()["masked"] == ALL_GROUPS


def test_coordinator_sees_name_id_and_phone_masked_even_with_a_purpose(client, coordinator):
    body = arrival(83, address="东门路83号西侧")
    response = post_arrival(client, coordinator, body)
    assert response.status_code == 201, response.text
    for answer in (response.json(), read(client, coordinator, response.json()["id"]).json(),
                   listing(client, coordinator)["items"][0]):
        assert answer["masked"] == ["id_number", "name", "permit", "phone"]
        assert answer["hidden"] == ["birth"]
        person = answer["person"]
        assert person["name"] == body["name"][0] + "*"
        assert person["id_number"] == body["id_number"][:6] + "********" + \
            body["id_number"][-4:]
        assert person["birth_date"] is None and person["sex"] is None
        assert answer["phone"] == body["phone"][:3] + "****" + body["phone"][-4:]
        assert answer["permit_number"] == body["permit_number"][0] + "***"
        # Address and work come clear with a purpose.
        assert answer["address"] == body["address"]
        assert answer["hukou_address"] == body["hukou_address"]
        assert (answer["occupation"], answer["workplace"]) == (body["occupation"],
                                                               body["workplace"])
    for value in (body["name"], body["id_number"], body["phone"], body["permit_number"]):
        assert value not in response.text


def test_coordinator_without_a_purpose_sees_address_and_work_masked(client, coordinator):
    body = arrival(84, address="东门路84号西侧")
    created = arrive(client, coordinator, 84, address="东门路84号西侧")
    answer = read(client, coordinator, created["id"], purpose=None).json()
    assert answer["masked"] == ["address", "id_number", "name", "permit", "phone", "work"]
    assert answer["address"] != body["address"] and answer["address"].endswith("***")
    assert answer["workplace"] == body["workplace"][0] + "***"


def test_coordinator_works_in_their_grid_only(registry, client, police, coordinator, rental):
    other = register_rental(client, police, 5, jurisdiction_code=GRID_A2)
    mine = arrive(client, coordinator, 85, rental_id=rental["id"])
    theirs = arrive(client, police, 86, rental_id=other["id"])
    assert ids(listing(client, coordinator)["items"]) == [mine["id"]]
    assert present_at(client, coordinator, rental["id"]) == {mine["id"]}
    assert at_rental(client, coordinator, other["id"]).status_code == 404
    assert read(client, coordinator, theirs["id"]).status_code == 404
    assert move(client, coordinator, mine["id"], {"rental_id": other["id"],
                                                  "moved_on": day(0)}).status_code == 404
    assert_refused(registry, lambda: post_arrival(client, coordinator, arrival(
        87, jurisdiction_code=GRID_A2)), 422, "jurisdiction_code",
        values=personal_values(arrival(87)))
    response = move(client, coordinator, mine["id"], {"jurisdiction_code": GRID_A1,
                                                      "address": "东门路85号",
                                                      "moved_on": day(0)})
    assert response.status_code == 201, response.text
    assert move_out(client, coordinator, response.json()["id"], day(0)).status_code == 200


# --- scope ---------------------------------------------------------------------------------


def test_out_of_scope_residents_look_absent(registry, client, police, rental):
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    created = arrive(client, police, 90, rental_id=rental["id"])
    made_up = str(uuid.uuid4())
    for residency_id in (created["id"], made_up):
        calls = [
            read(client, police_b, residency_id),
            amend(client, police_b, residency_id, phone=phone_of(9090)),
            move(client, police_b, residency_id, {"jurisdiction_code": GRID_B1,
                                                  "address": "西湖路1号", "moved_on": day(0)}),
            move_out(client, police_b, residency_id, day(0)),
        ]
        for response in calls:
            assert response.status_code == 404, response.text
            assert error_of(response)["code"] == "not_found"
    assert listing(client, police_b)["items"] == []
    assert read(client, police, created["id"]).json() == created  # nothing changed


def test_a_second_home_in_the_callers_area_is_409(registry, client, police, rental):
    created = arrive(client, police, 91, rental_id=rental["id"])
    body = arrival(91, jurisdiction_code=GRID_A2, address="东门路91号")
    error = assert_refused(registry, lambda: post_arrival(client, police, body), 409,
                           "id_number", values=personal_values(body))
    assert error["existing_id"] == created["id"]
    assert "move" in error["message"]
    # A coordinator whose grid holds it is refused too.
    coordinator = make_user(registry, client, "coordinator", GRID_A1)
    assert_refused(registry, lambda: post_arrival(client, coordinator, arrival(91)), 409,
                   "id_number")
    # Outside the caller's area the caller learns nothing: a new residency opens.
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    response = post_arrival(client, police_b, arrival(91, jurisdiction_code=GRID_B1))
    assert response.status_code == 201, response.text
    assert "existing_id" not in response.text


def test_the_same_id_number_under_another_name_is_409(registry, client, police, rental):
    created = arrive(client, police, 92, rental_id=rental["id"])
    assert move_out(client, police, created["id"], day(0)).status_code == 200
    body = arrival(92, rental_id=rental["id"], name="赵某某")
    error = assert_refused(registry, lambda: post_arrival(client, police, body), 409,
                           "id_number", values=personal_values(body))
    assert "different name" in error["message"]


# --- bad input: refused, nothing written, nothing echoed -----------------------------------


ARRIVAL_REFUSALS = [
    ({"arrived_on": day(1)}, 422, "arrived_on"),
    ({"registered_on": day(1)}, 422, "registered_on"),
    ({"arrived_on": day(-2), "registered_on": day(-3)}, 422, "registered_on"),
    ({"permit_issued_on": day(1), "permit_endorsed_on": None}, 422, "permit_issued_on"),
    ({"permit_endorsed_on": day(1)}, 422, "permit_endorsed_on"),
    ({"permit_issued_on": "2026-04-10", "permit_endorsed_on": "2026-04-09"}, 422,
     "permit_endorsed_on"),
    ({"jurisdiction_code": "330199001009"}, 422, "jurisdiction_code"),
    ({"jurisdiction_code": GRID_B1}, 422, "jurisdiction_code"),
    ({"jurisdiction_code": COUNTY}, 422, "jurisdiction_code"),
    ({"jurisdiction_code": "33019900100"}, 422, "jurisdiction_code"),
    ({"jurisdiction_code": None}, 422, "rental_id"),
    ({"address": None}, 422, "rental_id"),
    ({"address": "  "}, 422, "address"),
    ({"address": "东\x00门路"}, 422, "address"),
    ({"id_number": resident_id_number(93)[:17] + "Y"}, 422, "id_number"),
    ({"id_number": id_number(93, birth="20270101")}, 422, "id_number"),
    ({"id_number": "3301991992070409"}, 422, "id_number"),
    ({"phone": "12000000000"}, 422, "phone"),
    ({"name": ""}, 422, "name"),
    ({"name": "   "}, 422, "name"),
    ({"reason": "tourism"}, 422, "reason"),
    ({"reason": None}, 422, "reason"),
    ({"arrived_on": None}, 422, "arrived_on"),
    ({"arrived_on": "2026-02-30"}, 422, "arrived_on"),
    ({"arrived_on": "yesterday"}, 422, "arrived_on"),
    ({"occupation": "x" * 101}, 422, "occupation"),
    ({"religion": "none"}, 422, "religion"),
]


def test_arrival_refusals(registry, client, police, rental):
    """Each refused arrival is of a person the registry does not know yet, so a half-written
    one would leave a person and a data key behind."""
    cases = [*ARRIVAL_REFUSALS,
             ({"rental_id": rental["id"], "jurisdiction_code": GRID_A2}, 422,
              "jurisdiction_code"),
             ({"rental_id": str(uuid.uuid4()), "jurisdiction_code": None}, 404, None),
             ({"rental_id": "not-a-uuid"}, 422, "rental_id")]
    for changes, status, field in cases:
        body = arrival(93, **changes)
        values = {v for v in personal_values(arrival(93)) + personal_values(body)
                  if len(v.strip()) >= 4}
        try:
            assert_refused(registry, lambda body=body: post_arrival(client, police, body),
                           status, field, values=values)
        except AssertionError as exc:
            raise AssertionError(f"{changes}: {exc}") from exc


def test_arrival_at_a_deregistered_or_unseen_rental(registry, client, police, rental):
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    theirs = register_rental(client, police_b, 7, jurisdiction_code=GRID_B1)
    body = arrival(95, rental_id=theirs["id"])
    unseen = assert_refused(registry, lambda: post_arrival(client, police, body), 404,
                            values=personal_values(body))
    absent = assert_refused(registry, lambda: post_arrival(
        client, police, arrival(95, rental_id=str(uuid.uuid4()))), 404)
    assert unseen == absent

    response = client.post(f"/rentals/{rental['id']}/deregister", json={},
                           headers=police.headers)
    assert response.status_code == 200, response.text
    body = arrival(95, rental_id=rental["id"])
    error = assert_refused(registry, lambda: post_arrival(client, police, body), 422,
                           "rental_id", values=personal_values(body))
    assert "deregistered" in error["message"]


def test_register_without_a_token_is_401(registry, client):
    assert_refused(registry, lambda: client.post("/residents", json=arrival(96)), 401)


def test_other_roles_may_not_register_list_or_search(registry, client, police, rental):
    created = arrive(client, police, 96, rental_id=rental["id"])
    for role in ("justice", "corrections", "auditor", "admin", "leadership"):
        user = make_user(registry, client, role, COMMUNITY_A)
        assert_refused(registry, lambda user=user: post_arrival(client, user, arrival(97)), 403)
        assert client.get("/residents", headers=user.headers).status_code == 403, role
        assert search(client, user, id_number=resident_id_number(96)).status_code == 403, role
        # A record they may not read is absent to them.
        assert read(client, user, created["id"]).status_code == 404, role
        assert at_rental(client, user, rental["id"]).status_code == 404, role


def move_refusal_cases(rental_id, deregistered_id, foreign_rental_id):
    return [
        ({"rental_id": rental_id, "moved_on": day(1)}, 422, "moved_on"),
        ({"rental_id": rental_id, "moved_on": "2026-04-30"}, 422, "moved_on"),
        ({"rental_id": deregistered_id, "moved_on": day(0)}, 422, "rental_id"),
        ({"rental_id": str(uuid.uuid4()), "moved_on": day(0)}, 404, None),
        ({"rental_id": foreign_rental_id, "moved_on": day(0)}, 404, None),
        ({"jurisdiction_code": GRID_B1, "address": "西湖路9号", "moved_on": day(0)}, 422,
         "jurisdiction_code"),
        ({"jurisdiction_code": "330199001009", "address": "东门路9号", "moved_on": day(0)},
         422, "jurisdiction_code"),
        ({"address": "东门路9号", "moved_on": day(0)}, 422, "rental_id"),
        ({"moved_on": day(0)}, 422, "rental_id"),
        ({"rental_id": rental_id}, 422, "moved_on"),
        ({"rental_id": rental_id, "moved_on": day(0), "phone": "123"}, 422, "phone"),
        ({"rental_id": rental_id, "moved_on": day(0), "permit_issued_on": "2026-05-01",
          "permit_endorsed_on": "2026-04-01"}, 422, "permit_endorsed_on"),
    ]


def test_move_refusals_leave_the_old_residency_open(registry, client, police, rental):
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    foreign = register_rental(client, police_b, 8, jurisdiction_code=GRID_B1)
    gone = register_rental(client, police, 9)
    assert client.post(f"/rentals/{gone['id']}/deregister", json={},
                       headers=police.headers).status_code == 200
    created = arrive(client, police, 98, rental_id=rental["id"], arrived_on="2026-05-01",
                     registered_on="2026-05-01")
    for body, status, field in move_refusal_cases(rental["id"], gone["id"], foreign["id"]):
        assert_refused(registry, lambda body=body: move(client, police, created["id"], body),
                       status, field, values=[*personal_values(arrival(98)), "西湖路9号"])
        assert read(client, police, created["id"]).json() == created, body


def test_moving_an_ended_residency_is_409(registry, client, police, rental):
    created = arrive(client, police, 99, rental_id=rental["id"])
    assert move_out(client, police, created["id"], day(0)).status_code == 200
    assert_refused(registry, lambda: move(client, police, created["id"], {
        "rental_id": rental["id"], "moved_on": day(0)}), 409)
    # And the move leaves an ended trail: the old one cannot move twice.
    second = arrive(client, police, 99, rental_id=rental["id"])
    moved = move(client, police, second["id"], {"rental_id": rental["id"], "moved_on": day(0)})
    assert moved.status_code == 201
    assert_refused(registry, lambda: move(client, police, second["id"], {
        "rental_id": rental["id"], "moved_on": day(0)}), 409)


def test_move_out_refusals(registry, client, police, rental):
    created = arrive(client, police, 100, rental_id=rental["id"], arrived_on="2026-05-01",
                     registered_on="2026-05-01")
    for left_on, status, field in ((day(1), 422, "left_on"), ("2026-04-30", 422, "left_on"),
                                   ("2026-13-01", 422, "left_on")):
        assert_refused(registry, lambda left_on=left_on: move_out(
            client, police, created["id"], left_on), status, field)
        assert read(client, police, created["id"]).json()["left_on"] is None
    response = client.post(f"/residents/{created['id']}/move-out", json={},
                           headers=police.headers)
    assert response.status_code == 422
    assert move_out(client, police, created["id"], "2026-05-01").status_code == 200
    assert_refused(registry, lambda: move_out(client, police, created["id"], day(0)), 409)
    assert read(client, police, created["id"]).json()["left_on"] == "2026-05-01"


def test_amend_refusals(registry, client, police, rental):
    created = arrive(client, police, 101, rental_id=rental["id"])
    for changes, field in (({"phone": "12000000000"}, "phone"),
                           ({"permit_issued_on": "2026-05-01",
                             "permit_endorsed_on": "2026-04-01"}, "permit_endorsed_on"),
                           ({"permit_endorsed_on": day(1)}, "permit_endorsed_on"),
                           ({"workplace": ""}, "workplace"),
                           ({"arrived_on": "2026-01-01"}, "arrived_on"),
                           ({"reason": "tourism"}, "reason")):
        assert_refused(registry, lambda changes=changes: amend(
            client, police, created["id"], **changes), 422, field)
    assert read(client, police, created["id"]).json() == created
    assert move_out(client, police, created["id"], day(0)).status_code == 200
    assert_refused(registry, lambda: amend(client, police, created["id"],
                                           phone=phone_of(9101)), 409)


def test_amend_refuses_an_endorsement_before_the_stored_issue_date(registry, client, police,
                                                                   rental):
    created = arrive(client, police, 102, rental_id=rental["id"],
                     permit_issued_on="2026-03-01", permit_endorsed_on=None)
    assert_refused(registry, lambda: amend(client, police, created["id"],
                                           permit_endorsed_on="2026-02-01"),
                   422, "permit_endorsed_on")


def test_move_refuses_an_endorsement_before_the_carried_issue_date(registry, client, police,
                                                                   rental):
    created = arrive(client, police, 103, rental_id=rental["id"],
                     permit_issued_on="2026-03-01", permit_endorsed_on=None)
    assert_refused(registry, lambda: move(client, police, created["id"], {
        "rental_id": rental["id"], "moved_on": day(0), "permit_endorsed_on": "2026-02-01"}),
        422, "permit_endorsed_on")


def test_an_arrival_before_the_persons_birth_is_refused(registry, client, police, rental):
    body = arrival(104, rental_id=rental["id"], arrived_on="1990-01-01",
                   registered_on="1990-01-02")
    assert_refused(registry, lambda: post_arrival(client, police, body), 422, "arrived_on",
                   values=personal_values(body))


def test_residents_follow_their_rental_to_another_grid(registry, client, police, rental):
    grid_a2 = make_user(registry, client, "coordinator", GRID_A2)
    created = arrive(client, police, 105, rental_id=rental["id"])
    response = client.patch(f"/rentals/{rental['id']}", json={"jurisdiction_code": GRID_A2},
                            headers=police.headers)
    if response.status_code == 409:  # refusing while people live there is fine too
        return
    assert response.status_code == 200, response.text
    assert read(client, police, created["id"]).json()["jurisdiction_code"] == GRID_A2
    assert present_at(client, grid_a2, rental["id"]) == {created["id"]}


def test_bad_ids_in_paths_and_queries_are_422_not_500(client, police):
    for response in (client.get("/residents/not-a-uuid", headers=police.headers),
                     client.get("/residents", params={"person_id": "x"},
                                headers=police.headers),
                     client.get("/residents", params={"present_on": "2026-02-30"},
                                headers=police.headers),
                     client.get("/residents", params={"jurisdiction": "3301"},
                                headers=police.headers),
                     client.get("/residents", params={"page_size": 501},
                                headers=police.headers),
                     client.get(f"/residents/at-rental/{uuid.uuid4()}",
                                params={"on": "soon"}, headers=police.headers)):
        assert response.status_code == 422, response.text


# --- privacy: a released or supervised resident looks like anyone else ----------------------


def shape(value):
    """What a value is, not what it says: keys, types, and whether a text is masked."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str):
        return "masked" if "*" in value else "text"
    return type(value).__name__


def flags(item: dict) -> tuple:
    return (item["late"], item["missing"], item["masked"], item["hidden"],
            item["jurisdiction_code"], item["reason"], item["left_on"])


JUSTICE_WORDS = ("release", "correction", "prison", "probation", "aftercare", "parole",
                 "judgment", "sanction", "监狱", "法院", "矫正", "帮教", "刑")


def test_released_and_supervised_residents_look_like_anyone_else(registry, client, police,
                                                                 rental):
    justice = make_user(registry, client, "justice", TOWN)
    officer = make_user(registry, client, "corrections", TOWN)
    p, q, r = 110, 111, 112
    release = client.post("/releases", headers=justice.headers, json={
        "name": name_of(p), "id_number": resident_id_number(p), "jurisdiction_code": GRID_A1,
        "source": "prison", "released_on": "2026-05-01", "releasing_institution": "省第一监狱",
        "key_subject": True, "phone": phone_of(p)})
    assert release.status_code == 201, release.text
    case = client.post("/corrections", headers=officer.headers, json={
        "name": name_of(q), "id_number": resident_id_number(q), "jurisdiction_code": GRID_A1,
        "category": "probation", "deciding_body": "测试县人民法院",
        "judgment_ref": "(2026)测刑初12号", "effective_on": "2026-04-01",
        "supervision_start": "2026-04-01", "supervision_end": "2027-04-01",
        "officer": officer.username, "phone": phone_of(q)})
    assert case.status_code == 201, case.text

    def police_answers(seed: int, purpose: str | None) -> list:
        return [search(client, police, purpose, id_number=resident_id_number(seed)),
                search(client, police, purpose, phone=phone_of(seed))]

    # Before they are residents: the same empty answers as for a number nobody holds.
    for purpose in (PURPOSE, None):
        before = {seed: police_answers(seed, purpose) for seed in (p, q, r, 999)}
        for seed in (p, q, r, 999):
            assert [(a.status_code, a.json()) for a in before[seed]] == [(200, [])] * 2

    created = {seed: arrive(client, police, seed, rental_id=rental["id"])
               for seed in (p, q, r)}
    assert created[p]["person"]["id"] == release.json()["person"]["id"]
    assert created[q]["person"]["id"] == case.json()["person"]["id"]

    for purpose in (PURPOSE, None):
        answers = {}
        for seed in (p, q, r):
            residency_id = created[seed]["id"]
            person_id = created[seed]["person"]["id"]
            answers[seed] = [
                *police_answers(seed, purpose),
                read(client, police, residency_id, purpose),
                client.get("/residents", params={"person_id": person_id},
                           headers=headers(police, purpose)),
            ]
        for seed in (p, q, r):
            assert [a.status_code for a in answers[seed]] == [200] * 4
        for seed in (p, q):
            for mine, ordinary in zip(answers[seed], answers[r], strict=True):
                mine, ordinary = mine.json(), ordinary.json()
                assert shape(mine) == shape(ordinary)
                mine_items = mine if isinstance(mine, list) else mine.get("items", [mine])
                ordinary_items = (ordinary if isinstance(ordinary, list)
                                  else ordinary.get("items", [ordinary]))
                assert [flags(i) for i in mine_items] == [flags(i) for i in ordinary_items]
            text = " ".join(a.text for a in answers[seed]).lower()
            for word in JUSTICE_WORDS:
                assert word not in text, (seed, word)
    everyone = at_rental(client, police, rental["id"])
    assert everyone.status_code == 200
    assert len(everyone.json()) == 3
    assert all(shape(i) == shape(everyone.json()[0]) for i in everyone.json())
    assert not any(word in everyone.text.lower() for word in JUSTICE_WORDS)

    # The justice registers answer police exactly as for records that do not exist.
    made_up = str(uuid.uuid4())
    for path, real in (("/releases", release.json()["id"]), ("/corrections", case.json()["id"])):
        for purpose in (PURPOSE, None):
            seen = client.get(f"{path}/{real}", headers=headers(police, purpose))
            absent = client.get(f"{path}/{made_up}", headers=headers(police, purpose))
            assert seen.status_code == absent.status_code == 404
            assert error_of(seen) == error_of(absent)
        listed = client.get(path, headers=police.headers)
        assert listed.status_code == 403
    real_release = client.post("/releases", headers=police.headers, json={
        "name": name_of(p), "id_number": resident_id_number(p), "jurisdiction_code": GRID_A1,
        "source": "prison", "released_on": "2026-05-01", "releasing_institution": "省第一监狱"})
    made_up_release = client.post("/releases", headers=police.headers, json={
        "name": name_of(113), "id_number": resident_id_number(113),
        "jurisdiction_code": GRID_A1, "source": "prison", "released_on": "2026-05-01",
        "releasing_institution": "省第一监狱"})
    assert real_release.status_code == made_up_release.status_code == 403
    assert error_of(real_release) == error_of(made_up_release)
    corrections_body = {
        "category": "probation", "deciding_body": "测试县人民法院",
        "judgment_ref": "(2026)测刑初12号", "effective_on": "2026-04-01",
        "supervision_start": "2026-04-01", "supervision_end": "2027-04-01",
        "jurisdiction_code": GRID_A1}
    real_case = client.post("/corrections", headers=police.headers, json={
        **corrections_body, "name": name_of(q), "id_number": resident_id_number(q)})
    made_up_case = client.post("/corrections", headers=police.headers, json={
        **corrections_body, "name": name_of(113), "id_number": resident_id_number(113)})
    assert real_case.status_code == made_up_case.status_code == 403
    assert error_of(real_case) == error_of(made_up_case)
    # None of it wrote anything, and the residents are as they were.
    for seed in (p, q, r):
        assert read(client, police, created[seed]["id"]).json() == created[seed]



# --- names are each office's own: a conflict never reveals another office's records ---------


def _corrections_case(client, officer, id_number_: str, name: str) -> dict:
    response = client.post("/corrections", headers=officer.headers, json={
        "name": name, "id_number": id_number_, "jurisdiction_code": COMMUNITY_A,
        "category": "probation", "deciding_body": "测试县人民法院", "judgment_ref": "(2026)刑初1号",
        "effective_on": day(-30), "supervision_start": day(-30), "supervision_end": day(300)})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_name_differing_from_another_offices_record_is_no_conflict(registry, client, police):
    officer = make_user(registry, client, "corrections", COMMUNITY_A)
    number = resident_id_number(801)
    _corrections_case(client, officer, number, "钱某某")
    # Police register the same number under another name: accepted exactly as for an unknown
    # number, and their view shows the name they recorded, never the corrections office's.
    created = arrive(client, police, 801, id_number=number, name="钱一")
    assert created["person"]["name"] == "钱一"
    assert read(client, police, created["id"]).json()["person"]["name"] == "钱一"
    case = client.get("/corrections?page_size=5", headers={**officer.headers,
                                                           "X-Purpose": "check"}).json()
    assert [c["person"]["name"] for c in case["items"]] == ["钱某某"]


def test_a_name_differing_from_the_callers_own_records_is_a_conflict(registry, client, police):
    number = resident_id_number(802)
    arrive(client, police, 802, id_number=number, name="孙一")
    before = counts(registry)
    landlord = {"name": "孙二", "id_number": number, "phone": phone_of(802)}
    response = client.post("/rentals", headers=police.headers,
                           json=rental_body(802, landlord=landlord))
    assert response.status_code == 409
    assert error_of(response)["field"] == "landlord.id_number"
    assert "孙一" not in response.text and "孙二" not in response.text
    assert counts(registry) == before


def test_a_move_names_both_residencies_in_its_event(registry, client, police, rental):
    old = arrive(client, police, 811, rental_id=rental["id"])
    moved = move(client, police, old["id"], {"moved_on": day(0), "jurisdiction_code": GRID_A1,
                                             "address": "西路8号"})
    assert moved.status_code == 201, moved.text
    with registry.db.session() as session:
        refs = session.scalar(select(AuditEvent.refs).order_by(AuditEvent.seq.desc()).limit(1))
    assert {f"resident:{old['id']}", f"resident:{moved.json()['id']}"} <= set(refs.split(","))
