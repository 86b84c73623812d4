"""Break-glass grants and restricted persons (registry/vault/access.py), end to end over the API
and the CLI: what a grant opens and for how long, that it is read only and widens no list, the
auditors' queue and sign-off; that a restricted person's records answer 404 everywhere to
everyone not named, that bypass is audited, and that lifting restores access."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import StatementError
from typer.testing import CliRunner

from registry.cli import app
from registry.config import get_settings
from registry.models import AuditEvent, BreakGlassGrant, Person, RentalProperty
from registry.security.authz import Policy
from registry.security.sealed import PlaintextRefused
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    FIXED_NOW,
    GRID_A1,
    GRID_A2,
    PASSWORD,
    TREE,
    id_number,
    make_user,
    rental_body,
)

REASON = "incident 2026-0615: suspect fled into community A"
LANDLORD = 61  # the seed of the person restricted below
NAME = rental_body(LANDLORD)["landlord"]["name"]


def events(registry, **where) -> list:
    e = AuditEvent
    with registry.db.session() as s:
        query = select(e.seq, e.actor, e.kind, e.action, e.record_id, e.outcome, e.detail,
                       e.refs, e.fields).order_by(e.seq)
        for key, value in where.items():
            query = query.where(getattr(e, key) == value)
        return list(s.execute(query))


def resident(seed: int, **where) -> dict:
    return {"name": NAME, "id_number": id_number(seed), "reason": "work",
            "arrived_on": "2026-05-01", "registered_on": "2026-05-03", "occupation": "厨师",
            "workplace": "东门饭店", "phone": f"1390013{seed:04d}",
            "hukou_address": "河南省固始县城关镇1号", **where}


def case(seed: int) -> dict:
    return {"name": NAME, "id_number": id_number(seed), "jurisdiction_code": GRID_A1,
            "category": "probation", "deciding_body": "测试县人民法院",
            "judgment_ref": f"（2026）测刑初{seed}号", "effective_on": "2026-05-01",
            "supervision_start": "2026-05-01", "supervision_end": "2027-05-01",
            "reported_on": "2026-05-05"}


def release(seed: int) -> dict:
    return {"name": NAME, "id_number": id_number(seed), "jurisdiction_code": GRID_A1,
            "source": "prison", "released_on": "2026-04-01",
            "releasing_institution": "测试省第一监狱"}


def created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def signed_in(client, user) -> dict[str, str]:
    """A fresh token (the clock moved past the idle timeout)."""
    response = client.post("/auth/token", json={"username": user.username,
                                                "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def field_of(response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["error"]["field"]


# --- break-glass -----------------------------------------------------------------------------


@pytest.fixture
def outside(registry, client):
    """A rental and a resident filed in community A, and a police officer of community B."""
    police_a = make_user(registry, client, "police", COMMUNITY_A)
    rental = created(client.post("/rentals", json=rental_body(1), headers=police_a.headers))
    tenant = created(client.post("/residents", json=resident(2, rental_id=rental["id"]),
                                 headers=police_a.headers))
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    return rental, tenant, police_b


def open_grant(client, user, kind: str, record_id: str, reason: str = REASON):
    return client.post("/break-glass", json={"kind": kind, "record_id": record_id,
                                             "reason": reason}, headers=user.headers)


def test_break_glass_opens_one_record_for_reading_until_it_expires(registry, client, outside):
    rental, tenant, police_b = outside
    url = f"/rentals/{rental['id']}"
    assert client.get(url, headers=police_b.headers).status_code == 404
    grant = created(open_grant(client, police_b, "rental", rental["id"]))
    assert grant["live"] and grant["reviewed_at"] is None
    assert grant["expires_at"].startswith((FIXED_NOW + timedelta(hours=1)).isoformat()[:16])
    opened = events(registry, action="break-glass")[-1]
    assert (opened.actor, opened.kind, opened.record_id) == (police_b.username, "rental",
                                                             rental["id"])
    assert f"break-glass={grant['id']}" in opened.detail and REASON not in opened.detail

    read = client.get(url, headers={**police_b.headers, "X-Purpose": "incident 2026-0615"})
    assert read.status_code == 200, read.text
    assert read.json()["landlord"]["name"] == rental_body(1)["landlord"]["name"]
    event = events(registry, actor=police_b.username, action="read")[-1]
    assert event.outcome == "ok" and f"break-glass={grant['id']}" in event.detail

    # Read only: no write opens, and no other record of the same area.
    assert client.patch(url, json={"units": 5}, headers=police_b.headers).status_code == 404
    assert client.post(f"{url}/pledge", json={"signed_on": "2026-06-01",
                                              "valid_until": "2027-06-01"},
                       headers=police_b.headers).status_code == 404
    assert client.get(f"/residents/{tenant['id']}", headers=police_b.headers).status_code == 404
    assert client.post("/residents", json=resident(3, rental_id=rental["id"]),
                       headers=police_b.headers).status_code == 404
    # Lists and searches never widen.
    assert rental["id"] not in client.get("/rentals", headers=police_b.headers).text
    found = client.post("/rentals/search", json={"landlord_id_number": id_number(1)},
                        headers=police_b.headers)
    assert found.status_code == 200 and found.json() == []

    registry.clock.fixed = FIXED_NOW + timedelta(minutes=61)
    assert client.get(url, headers=signed_in(client, police_b)).status_code == 404
    [late] = [g for g in client.get("/break-glass", params={"status": "all"}, headers=make_user(
        registry, client, "auditor", COMMUNITY_A).headers).json()["items"]]
    assert not late["live"]


def test_break_glass_length_is_a_setting(registry, client, outside):
    rental, _, police_b = outside
    registry.settings.break_glass_minutes = 10
    created(open_grant(client, police_b, "rental", rental["id"]))
    registry.clock.fixed = FIXED_NOW + timedelta(minutes=11)
    assert client.get(f"/rentals/{rental['id']}",
                      headers=signed_in(client, police_b)).status_code == 404


def test_break_glass_is_refused_without_the_right(registry, client, outside):
    rental, tenant, police_b = outside
    coordinator = make_user(registry, client, "coordinator", COMMUNITY_B)
    refused = open_grant(client, coordinator, "rental", rental["id"])
    assert refused.status_code == 403
    denial = events(registry, actor=coordinator.username)[-1]
    assert (denial.outcome, denial.action, denial.record_id) == ("denied", "break-glass",
                                                                  rental["id"])
    # A kind the role may not read at all.
    assert open_grant(client, police_b, "corrections", tenant["id"]).status_code == 403
    auditor = make_user(registry, client, "auditor", COMMUNITY_B)
    assert open_grant(client, auditor, "rental", rental["id"]).status_code == 403
    # An absent record, and a record of another kind under that id: 404 alike.
    assert open_grant(client, police_b, "rental", tenant["id"]).status_code == 404
    assert client.get(f"/rentals/{rental['id']}", headers=police_b.headers).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "rental", "reason": "too short"}, "reason"),
    ({"kind": "rental", "reason": "   " + "x" * 5 + "   "}, "reason"),
    ({"kind": "rental", "reason": ""}, "reason"),
    ({"kind": "rental"}, "reason"),
    ({"kind": "coordinator", "reason": REASON}, "kind"),
    ({"kind": "rental", "reason": REASON, "record_id": "not-an-id"}, "record_id"),
    ({"kind": "rental", "reason": REASON, "extra": 1}, "extra"),
])
def test_break_glass_bad_input_names_the_field(registry, client, outside, body, field):
    rental, _, police_b = outside
    body = {"record_id": rental["id"], **body}
    response = client.post("/break-glass", json=body, headers=police_b.headers)
    assert field_of(response) == field
    assert not events(registry, action="break-glass", outcome="ok")


def test_review_queue_and_sign_off(registry, client, outside):
    rental, _, police_b = outside
    grant = created(open_grant(client, police_b, "rental", rental["id"]))
    auditor_a = make_user(registry, client, "auditor", COMMUNITY_A)  # the record's area
    auditor_b = make_user(registry, client, "auditor", COMMUNITY_B)  # the officer's area
    auditor_a2 = make_user(registry, client, "auditor", GRID_A2)  # neither

    def queue(user, status: str = "pending") -> list[str]:
        response = client.get("/break-glass", params={"status": status}, headers=user.headers)
        assert response.status_code == 200, response.text
        return [g["id"] for g in response.json()["items"]]

    assert queue(auditor_a) == [grant["id"]] and queue(auditor_b) == [grant["id"]]
    assert queue(auditor_a2) == []
    item = client.get("/break-glass", headers=auditor_a.headers).json()["items"][0]
    assert item["reason"] == REASON and item["kind"] == "rental"
    assert rental_body(1)["landlord"]["name"] not in json.dumps(item, ensure_ascii=False)
    assert client.get("/break-glass", headers=police_b.headers).status_code == 403

    url = f"/break-glass/{grant['id']}/review"
    assert client.post(url, json={"note": "checked"}, headers=police_b.headers).status_code == 403
    assert client.post(url, json={"note": "checked"},
                       headers=auditor_a2.headers).status_code == 404
    assert field_of(client.post(url, json={"note": ""}, headers=auditor_a.headers)) == "note"
    assert field_of(client.post("/break-glass/nope/review", json={"note": "ok"},
                                headers=auditor_a.headers)) == "grant_id"
    signed = client.post(url, json={"note": "incident report filed"}, headers=auditor_a.headers)
    assert signed.status_code == 200, signed.text
    assert signed.json()["reviewed_by"] == str(auditor_a.actor.id)
    review = events(registry, action="review")[-1]
    assert (review.actor, review.kind, review.record_id, review.outcome) == (
        auditor_a.username, "break-glass", grant["id"], "ok")
    assert queue(auditor_a) == [] and queue(auditor_b) == []
    assert queue(auditor_a, "reviewed") == [grant["id"]] == queue(auditor_b, "all")
    again = client.post(url, json={"note": "twice"}, headers=auditor_b.headers)
    assert again.status_code == 409


def test_the_reason_and_the_note_are_sealed_and_reading_them_is_audited(
        registry, client, outside, connection):
    rental, _, police_b = outside
    grant = created(open_grant(client, police_b, "rental", rental["id"]))
    assert grant["reason"] == REASON  # the officer's own answer
    auditor = make_user(registry, client, "auditor", COMMUNITY_A)
    note = "reviewed with 王队长 on the phone"
    signed = client.post(f"/break-glass/{grant['id']}/review", json={"note": note},
                         headers=auditor.headers)
    assert signed.status_code == 200 and signed.json()["review_note"] == note

    # In the table: ciphertext under the grant's own key, nothing in the clear.
    row = connection.execute(select(BreakGlassGrant.__table__).where(
        BreakGlassGrant.id == uuid.UUID(grant["id"]))).mappings().one()
    assert row["key_id"] is not None and row["legacy_reason"] is None
    raw = b"".join(value if isinstance(value, bytes) else str(value).encode()
                   for value in row.values())
    for clear in (REASON, note, "王队长"):
        assert clear.encode() not in raw
    with registry.vault(auditor.actor) as vault, pytest.raises(
            (PlaintextRefused, StatementError)):  # the column takes ciphertext only
        vault.session.execute(update(BreakGlassGrant).where(
            BreakGlassGrant.id == uuid.UUID(grant["id"])).values(reason=REASON))

    (item,) = client.get("/break-glass", params={"status": "all"},
                         headers=auditor.headers).json()["items"]
    assert (item["reason"], item["review_note"]) == (REASON, note)
    listed = events(registry, actor=auditor.username, action="list")[-1]
    assert listed.fields == "reason,review_note" and REASON not in listed.detail
    opened = events(registry, action="break-glass")[-1]
    assert opened.fields == "reason"


def test_clear_reasons_from_before_sealing_are_sealed_at_start_up(
        registry, client, outside, connection, settings, db):
    rental, _, police_b = outside
    grant = created(open_grant(client, police_b, "rental", rental["id"]))
    table = BreakGlassGrant.__table__
    # A grant as the migration leaves one written before sealing: clear text, no key.
    legacy = uuid.uuid4()
    connection.execute(table.insert().values(
        id=legacy, user_id=police_b.actor.id, officer_scope=COMMUNITY_B, kind="rental",
        record_id=uuid.UUID(rental["id"]), jurisdiction_code=GRID_A1,
        legacy_reason="old: " + REASON, legacy_review_note="old note", opened_at=FIXED_NOW,
        expires_at=FIXED_NOW, reviewed_at=FIXED_NOW))
    restarted = Registry(settings, db=db, keyring=registry.keyring, clock=registry.clock)
    row = connection.execute(select(table).where(table.c.id == legacy)).mappings().one()
    assert row["key_id"] is not None
    assert (row["legacy_reason"], row["legacy_review_note"]) == (None, None)
    assert b"old" not in bytes(row["reason"]) + bytes(row["review_note"])
    sealed = events(registry, action="seal")[-1]
    assert (sealed.kind, sealed.refs) == ("break-glass", f"break-glass:{legacy}")
    Registry(settings, db=db, keyring=registry.keyring, clock=registry.clock)  # idempotent
    assert len(events(registry, action="seal")) == 1

    auditor = make_user(restarted, client, "auditor", COMMUNITY_A)
    items = client.get("/break-glass", params={"status": "all"},
                       headers=auditor.headers).json()["items"]
    reasons = {i["id"]: (i["reason"], i["review_note"]) for i in items}
    assert reasons == {str(legacy): ("old: " + REASON, "old note"),
                       grant["id"]: (REASON, None)}


def test_a_grant_is_sealed_under_its_own_key_not_the_persons(registry, client, outside):
    """So erasing the person (destroying their keys) neither touches nor needs the grant."""
    rental, _, police_b = outside
    grant = created(open_grant(client, police_b, "rental", rental["id"]))
    with registry.db.session() as session:
        key_id = session.scalar(select(BreakGlassGrant.key_id).where(
            BreakGlassGrant.id == uuid.UUID(grant["id"])))
        others = {*session.scalars(select(Person.key_id)),
                  *session.scalars(select(RentalProperty.key_id))}
    assert key_id is not None and key_id not in others


# --- restricted persons ----------------------------------------------------------------------


@pytest.fixture
def person(registry, client):
    """One person with a record in every register of community A: a rental they let, a home
    there, a corrections case and a release case; and the office users of community A."""
    users = {role: make_user(registry, client, role, COMMUNITY_A)
             for role in ("police", "coordinator", "corrections", "justice")}
    police = users["police"]
    rental = created(client.post("/rentals", json=rental_body(LANDLORD, pledge=None),
                                 headers=police.headers))
    home = created(client.post("/residents", json=resident(LANDLORD, jurisdiction_code=GRID_A1,
                                                            address="东门路1号"),
                               headers=police.headers))
    case_ = created(client.post("/corrections", json=case(LANDLORD),
                                headers=users["corrections"].headers))
    release_ = created(client.post("/releases", json=release(LANDLORD),
                                   headers=users["justice"].headers))
    person_id = rental["landlord"]["id"]
    assert person_id == home["person"]["id"] == case_["person"]["id"] == release_["person"]["id"]
    return {"id": person_id, "users": users, "rental": rental["id"], "home": home["id"],
            "case": case_["id"], "release": release_["id"]}


def restrict(client, user, person_id: str, *names: str):
    return client.put(f"/persons/{person_id}/restriction", json={"users": list(names)},
                      headers=user.headers)


def reachable(client, user, p: dict) -> dict[str, bool]:
    """Whether each route that can reach the person's records shows them to ``user``."""
    h, role = user.headers, user.actor.role
    number = id_number(LANDLORD)
    seen: dict[str, bool] = {}

    def record(name: str, url: str) -> None:
        status = client.get(url, headers=h).status_code
        assert status in (200, 404), (url, status)
        seen[name] = status == 200

    def listed(name: str, response, record_id: str) -> None:
        assert response.status_code == 200, response.text
        seen[name] = record_id in response.text

    if role in ("police", "coordinator"):
        record("rental", f"/rentals/{p['rental']}")
        record("home", f"/residents/{p['home']}")
        listed("rentals", client.get("/rentals", headers=h), p["rental"])
        listed("residents", client.get("/residents", headers=h), p["home"])
        listed("rental shortfall", client.get("/metrics/pledge_signing/shortfall",
                                              params={"at": COMMUNITY_A}, headers=h),
               p["rental"])
        listed("person's homes", client.get("/residents", params={"person_id": p["id"]},
                                            headers=h), p["home"])
    if role == "police":
        listed("rental search", client.post("/rentals/search",
                                            json={"landlord_id_number": number}, headers=h),
               p["rental"])
        listed("resident search", client.post("/residents/search", json={"id_number": number},
                                              headers=h), p["home"])
    if role == "corrections":
        record("case", f"/corrections/{p['case']}")
        listed("cases", client.get("/corrections", headers=h), p["case"])
        listed("board", client.get("/corrections/board", headers=h), p["case"])
        listed("case shortfall", client.get("/metrics/key_person_registration/shortfall",
                                            params={"at": COMMUNITY_A}, headers=h), p["case"])
    if role == "justice":
        record("release", f"/releases/{p['release']}")
        listed("releases", client.get("/releases", headers=h), p["release"])
        listed("release shortfall", client.get("/metrics/aftercare/shortfall",
                                               params={"at": COMMUNITY_A}, headers=h),
               p["release"])
    return seen


def test_a_restricted_person_is_absent_to_everyone_not_named(registry, client, person):
    police = person["users"]["police"]
    colleagues = {role: make_user(registry, client, role, COMMUNITY_A)
                  for role in ("police", "coordinator", "corrections", "justice")}
    for user in colleagues.values():
        assert all(reachable(client, user, person).values())
    counts = client.get("/metrics", params={"at": COMMUNITY_A},
                        headers=police.headers).json()

    response = restrict(client, police, person["id"], person["users"]["justice"].username)
    assert response.status_code == 200, response.text
    assert response.json()["users"] == sorted([police.username,
                                               person["users"]["justice"].username])
    event = events(registry, action="restrict")[-1]
    assert (event.kind, event.record_id, event.outcome) == ("person", person["id"], "ok")

    for user in (*colleagues.values(), person["users"]["coordinator"],
                 person["users"]["corrections"]):
        seen = reachable(client, user, person)
        assert seen and not any(seen.values()), (user.actor.role, seen)
    # 404 exactly as an absent record, the denial audited.
    hidden = client.get(f"/rentals/{person['rental']}", headers=colleagues["police"].headers)
    absent = client.get(f"/rentals/{person['home']}", headers=colleagues["police"].headers)
    assert (hidden.status_code, hidden.json()) == (absent.status_code, absent.json())
    assert events(registry, actor=colleagues["police"].username)[-2].outcome == "denied"
    # Writes too, and a new record about them from someone not named.
    assert client.patch(f"/rentals/{person['rental']}", json={"units": 4},
                        headers=colleagues["police"].headers).status_code == 404
    refused = client.post("/residents", json=resident(LANDLORD, jurisdiction_code=GRID_A2,
                                                      address="东门路2号"),
                          headers=colleagues["police"].headers)
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "id_number"
    # Break-glass does not open them either.
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    assert open_grant(client, police_b, "rental", person["rental"]).status_code == 404

    # Those named see everything; counts still include the person (aggregates name no one).
    for user in (police, person["users"]["justice"]):
        assert all(reachable(client, user, person).values())
    assert client.get("/metrics", params={"at": COMMUNITY_A},
                      headers=police.headers).json() == counts

    lifted = client.delete(f"/persons/{person['id']}/restriction", headers=police.headers)
    assert lifted.status_code == 200 and lifted.json()["restricted"] is False
    for user in colleagues.values():
        assert all(reachable(client, user, person).values())


def test_bypass_is_granted_by_policy_and_audited(registry, client, person, tmp_path):
    police = person["users"]["police"]
    restrict(client, police, person["id"], police.username)
    colleague = make_user(registry, client, "police", COMMUNITY_A)
    assert not any(reachable(client, colleague, person).values())

    policies = tmp_path / "policies"
    shutil.copytree(registry.settings.policy_dir, policies)
    with (policies / "policy.csv").open("a") as policy:
        policy.write("p, police, person, bypass-restriction\n")
    registry.policy = Policy(policies)
    mark = events(registry)[-1].seq
    assert all(reachable(client, colleague, person).values())
    mine = [e for e in events(registry, actor=colleague.username, outcome="ok") if e.seq > mark]
    read = next(e for e in mine if e.action == "read" and e.record_id == person["rental"])
    assert "restriction-bypass" in read.detail
    listing = next(e for e in mine if e.action == "list" and e.kind == "rental")
    assert f"restriction-bypass=person:{person['id']}" in listing.detail
    # The officer named on the list reads without a flag.
    client.get(f"/rentals/{person['rental']}", headers=police.headers)
    assert "restriction-bypass" not in events(registry, actor=police.username)[-1].detail
    # Bypass also lets break-glass through.
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    assert open_grant(client, police_b, "rental", person["rental"]).status_code == 201
    assert client.get(f"/rentals/{person['rental']}", headers=police_b.headers).status_code == 200


def test_who_may_set_or_read_a_restriction(registry, client, person):
    url = f"/persons/{person['id']}/restriction"
    police = person["users"]["police"]
    assert client.get(url, headers=police.headers).json() == {
        "person_id": person["id"], "restricted": False, "users": [], "set_at": None}
    # Same area, may read the person but not restrict: 403; may not read them at all: 404.
    assert restrict(client, person["users"]["coordinator"], person["id"],
                    police.username).status_code == 403
    for role in ("auditor", "leadership", "admin"):
        outsider = make_user(registry, client, role, COMMUNITY_A)
        assert restrict(client, outsider, person["id"], police.username).status_code == 404
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    assert restrict(client, police_b, person["id"], police_b.username).status_code == 404
    assert client.get(url, headers=police_b.headers).status_code == 404
    # Each office that files the person may, within its scope; the setter is always listed.
    corrections = person["users"]["corrections"]
    response = restrict(client, corrections, person["id"], police.username)
    assert response.status_code == 200
    assert corrections.username in response.json()["users"]
    # Replacing the list: the justice officer is no longer on it, and cannot lift it.
    assert client.delete(url, headers=person["users"]["justice"].headers).status_code == 404
    assert client.get(url, headers=police.headers).json()["restricted"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"users": []}, "users"),
    ({"users": ["no-such-user"]}, "users"),
    ({"users": "police"}, "users"),
    ({}, "users"),
])
def test_restriction_bad_input_names_the_field(registry, client, person, body, field):
    police = person["users"]["police"]
    url = f"/persons/{person['id']}/restriction"
    assert field_of(client.put(url, json=body, headers=police.headers)) == field
    assert client.get(url, headers=police.headers).json()["restricted"] is False
    assert field_of(client.put("/persons/42/restriction", json={"users": [police.username]},
                               headers=police.headers)) == "person_id"


def test_an_unknown_user_is_named_by_position(registry, client, person):
    police = person["users"]["police"]
    response = restrict(client, police, person["id"], police.username, "ghost")
    assert response.json()["error"]["field"] == "users"
    assert "position 1" in response.json()["error"]["message"]


# --- the command line ------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REGISTRY_ENVIRONMENT", "test")
    monkeypatch.setenv("REGISTRY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("REGISTRY_ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("REGISTRY_TIMEZONE", "UTC")
    for name in ("REGISTRY_DATABASE_URL", "REGISTRY_KEY_FILE", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    assert runner.invoke(app, ["init"]).exit_code == 0
    registry = Registry(get_settings())
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.upsert(TREE)
        for name, role, scope in (("police_a", "police", COMMUNITY_A),
                                  ("police_b", "police", COMMUNITY_B),
                                  ("auditor_a", "auditor", COMMUNITY_A)):
            vault.users.add(username=name, password=PASSWORD, role=role,
                            jurisdiction_code=scope)
        vault.commit()
    yield registry
    get_settings.cache_clear()


def cli(user: str, *args: str):
    get_settings.cache_clear()
    return runner.invoke(app, [args[0], "--as", user, *args[1:]],
                         env={"REGISTRY_PASSWORD": PASSWORD})


def test_the_cli_opens_reviews_and_restricts(home):
    from registry.rentals import service as rentals
    from registry.rentals.schemas import RentalCreate

    with home.vault(Actor(id=None, username="clerk", role="police", scope=COMMUNITY_A)) as vault:
        rental = rentals.register(vault, RentalCreate(**rental_body(7)))
        vault.commit()

    short = cli("police_b", "break-glass", "open", "rental", str(rental.id), "--reason", "x")
    assert short.exit_code == 2 and "reason" in short.output
    opened = cli("police_b", "break-glass", "open", "rental", str(rental.id), "--reason", REASON)
    assert opened.exit_code == 0, opened.output
    grant = json.loads(opened.output)
    shown = cli("police_b", "rentals", "show", str(rental.id))
    assert shown.exit_code == 0, shown.output

    queue = cli("auditor_a", "break-glass", "queue")
    assert queue.exit_code == 0 and grant["id"] in queue.output
    reviewed = cli("auditor_a", "break-glass", "review", grant["id"], "--note", "filed")
    assert reviewed.exit_code == 0, reviewed.output
    assert grant["id"] not in cli("auditor_a", "break-glass", "queue").output

    person_id = str(rental.landlord.id)
    bad = cli("police_a", "persons", "restrict", person_id, "--user", "ghost")
    assert bad.exit_code == 2 and "users" in bad.output
    done = cli("police_a", "persons", "restrict", person_id, "--user", "police_a")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["users"] == ["police_a"]
    assert json.loads(cli("police_a", "persons", "restriction", person_id).output)["restricted"]
    dry = cli("police_a", "persons", "lift", person_id)
    assert dry.exit_code == 0 and "dry run" in dry.output
    lifted = cli("police_a", "persons", "lift", person_id, "--yes")
    assert lifted.exit_code == 0 and json.loads(lifted.output)["restricted"] is False
