"""The audit chain (DESIGN.md, "Audit log"; STYLE.md habit 2).

(a) Every personal-data operation through the API, and every denial, lands exactly one event
    with the right action, outcome, record and refs, the purpose when one is given, and never
    a value from the request.
(b) Editing, deleting, truncating, swapping or forging events makes ``audit.verify`` fail and
    name the first event that does not fit.
(c) ``registry audit verify`` on a real on-disk registry (made by ``registry init``, then
    audited work) exits 0 when intact and 1, naming the event, after a row is edited,
    deleted, truncated or swapped behind its back with sqlite3 / SQL.
(d) On PostgreSQL, threads and processes appending at once (committed transactions on their
    own engines) leave one linear chain; a verify racing an append must not cry wolf.

The (d) tests commit to the per-run database: they leave audit events behind (the database
is dropped at the end), so no test here assumes an empty log — they count deltas.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, event, func, insert, select, text, update
from typer.testing import CliRunner

from registry.cli import app as cli_app
from registry.config import get_settings
from registry.db import Database
from registry.migrate import upgrade
from registry.models import AuditEvent, AuditHead
from registry.rentals import service as rentals_service
from registry.rentals.schemas import RentalCreate
from registry.security import audit
from registry.security.keys import Keyring
from registry.vault.accounts import system_actor
from registry.vault.base import AUDIT, Actor
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    GRID_A1,
    TREE,
    database_owner_sql,
    id_number,
    make_user,
    pg_admin,
    pg_url,
    rental_body,
)
from tests.conftest import test_settings as make_settings

REPO = Path(__file__).resolve().parent.parent
REGISTRY_BIN = REPO / ".venv" / "bin" / "registry"
EVENTS = AuditEvent.__table__
COLUMNS = [c.name for c in EVENTS.columns]


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _tamper_as_the_database_owner(request):
    """The tampering tests play someone who owns the database: the append-only triggers
    (tests/test_migrations.py proves they refuse everyone else) are off in their transaction."""
    if "connection" in request.fixturenames:
        connection = request.getfixturevalue("connection")
        for sql in database_owner_sql(connection.dialect.name):
            connection.execute(text(sql))


def _state(registry: Registry) -> tuple[int, int]:
    """(number of events, highest seq)."""
    with registry.db.session() as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent))
        top = session.scalar(select(func.max(AuditEvent.seq))) or 0
    return count, top


def _events_after(registry: Registry, seq: int) -> list[dict]:
    with registry.db.session() as session:
        rows = session.execute(
            select(EVENTS).where(EVENTS.c.seq > seq).order_by(EVENTS.c.seq)
        ).mappings().all()
        return [dict(row) for row in rows]


def one_event(registry: Registry, call: Callable):
    """Run ``call`` and return its result and the one audit event it produced."""
    count, top = _state(registry)
    result = call()
    after, _ = _state(registry)
    events = _events_after(registry, top)
    summary = [(e["action"], e["outcome"]) for e in events]
    assert after - count == 1, f"expected exactly one audit event, got {after - count}: {summary}"
    assert len(events) == 1, summary
    return result, events[0]


def assert_no_values(event: dict, values: list[str]) -> None:
    """No column of the event carries any of the personal values (named by index only)."""
    for column, stored in event.items():
        as_text = "" if stored is None else str(stored)
        for index, value in enumerate(values):
            assert value not in as_text, f"column {column} carries personal value #{index}"


def person(seed: int, name: str, phone: str) -> dict:
    return {"name": name, "id_number": id_number(seed, birth="19770823"), "phone": phone}


def body_with(seed: int, *, name: str, phone: str, address: str, code: str = GRID_A1,
              **overrides) -> dict:
    return rental_body(seed, code=code, address=address, landlord=person(seed, name, phone),
                       **overrides)


def values_of(body: dict) -> list[str]:
    found = [body["address"], *body["landlord"].values()]
    pledge = body.get("pledge") or {}
    if pledge.get("signed_by"):
        found.append(pledge["signed_by"])
    return [v for v in found if v]


def register(client, user, body: dict) -> dict:
    response = client.post("/rentals", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def refs_of(event: dict) -> list[str]:
    return [r for r in event["refs"].split(",") if r]


def fields_of(event: dict) -> list[str]:
    return [f for f in event["fields"].split(",") if f]


@pytest.fixture
def police(registry, client):
    return make_user(registry, client, "police", COMMUNITY_A)


@pytest.fixture
def rental(registry, client, police):
    """A rental with a distinctive landlord, registered by ``police``; (body, response)."""
    body = body_with(501, name="司马青云", phone="13957120817",
                     address="东门路188弄7号楼302室")
    return body, register(client, police, body)


# --- (a) one event per operation ---------------------------------------------------------


def test_register_is_one_create_event(registry, client, police):
    body = body_with(502, name="诸葛晓燕", phone="15888126374", address="东门路9号2幢1101室",
                     pledge={"signed_on": "2026-03-02", "valid_until": "2027-03-01",
                             "signed_by": "上官婉清"})
    response, event = one_event(
        registry, lambda: client.post("/rentals", json=body, headers=police.headers))
    assert response.status_code == 201, response.text
    created = response.json()
    assert (event["action"], event["kind"], event["outcome"]) == ("create", "rental", "ok")
    assert event["record_id"] == created["id"]
    assert event["jurisdiction_code"] == GRID_A1
    assert refs_of(event) == [f"rental:{created['id']}", f"person:{created['landlord']['id']}"]
    assert event["actor"] == police.username and event["role"] == "police"
    assert str(event["actor_id"]) == str(police.actor.id)
    assert {"address", "landlord", "pledge"} <= set(fields_of(event))
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["purpose"] is None
    assert_no_values(event, values_of(body))


@pytest.mark.parametrize(("header", "recorded"), [
    ("case 2026-117", "case 2026-117"),
    (quote("案件 2026-118 走访核查"), "案件 2026-118 走访核查"),
], ids=["ascii", "url-encoded-chinese"])
def test_read_with_purpose_records_it_and_the_clear_fields(registry, client, police, rental,
                                                           header, recorded):
    body, created = rental
    response, event = one_event(registry, lambda: client.get(
        f"/rentals/{created['id']}", headers={**police.headers, "X-Purpose": header}))
    assert response.status_code == 200
    assert response.json()["landlord"]["id_number"] == body["landlord"]["id_number"]
    assert (event["action"], event["outcome"]) == ("read", "ok")
    assert event["record_id"] == created["id"]
    assert event["jurisdiction_code"] == GRID_A1
    assert event["purpose"] == recorded
    assert refs_of(event) == [f"rental:{created['id']}", f"person:{created['landlord']['id']}"]
    assert {"address", "landlord.name", "landlord.id_number", "landlord.phone"} <= set(
        fields_of(event))
    assert_no_values(event, values_of(body))


def test_read_without_purpose_records_masked_fields_and_no_purpose(registry, client, police,
                                                                   rental):
    body, created = rental
    response, event = one_event(registry, lambda: client.get(
        f"/rentals/{created['id']}", headers=police.headers))
    assert response.status_code == 200
    assert response.json()["landlord"]["id_number"] != body["landlord"]["id_number"]
    assert event["purpose"] is None
    assert "landlord.id_number~masked" in fields_of(event)
    assert "landlord.id_number" not in fields_of(event)
    assert_no_values(event, values_of(body))


def test_amend_is_one_update_event_naming_changed_fields(registry, client, police, rental):
    body, created = rental
    change = {"address": "东门路190弄3号楼1201室", "units": 5}
    response, event = one_event(registry, lambda: client.patch(
        f"/rentals/{created['id']}", json=change, headers=police.headers))
    assert response.status_code == 200, response.text
    assert (event["action"], event["outcome"]) == ("update", "ok")
    assert event["record_id"] == created["id"]
    assert fields_of(event) == ["address", "units"]
    assert refs_of(event) == [f"rental:{created['id']}", f"person:{created['landlord']['id']}"]
    assert_no_values(event, [*values_of(body), change["address"]])


def test_amend_landlord_phone_is_one_update_event(registry, client, police, rental):
    body, created = rental
    response, event = one_event(registry, lambda: client.patch(
        f"/rentals/{created['id']}", json={"landlord_phone": "18606681234"},
        headers=police.headers))
    assert response.status_code == 200, response.text
    assert fields_of(event) == ["landlord.phone"]
    assert_no_values(event, [*values_of(body), "18606681234"])


def test_list_is_one_event_naming_every_record_returned(registry, client, police, rental):
    body, created = rental
    other = body_with(503, name="慕容秋水", phone="13705718899", address="东门路77号5幢601室")
    second = register(client, police, other)
    response, event = one_event(registry, lambda: client.get("/rentals",
                                                             headers=police.headers))
    assert response.status_code == 200
    items = response.json()["items"]
    assert {created["id"], second["id"]} <= {item["id"] for item in items}
    assert (event["action"], event["outcome"], event["record_id"]) == ("list", "ok", None)
    refs = refs_of(event)
    assert len(refs) == 2 * len(items)
    for item in items:
        assert f"rental:{item['id']}" in refs and f"person:{item['landlord']['id']}" in refs
    assert event["detail"].startswith("page=1;")
    assert_no_values(event, values_of(body) + values_of(other))


@pytest.mark.parametrize("by", ["landlord_id_number", "landlord_phone"])
def test_search_is_one_event_with_refs_and_no_search_term(registry, client, police, rental, by):
    body, created = rental
    term = body["landlord"]["id_number" if by == "landlord_id_number" else "phone"]
    response, event = one_event(registry, lambda: client.post(
        "/rentals/search", json={by: term}, headers=police.headers))
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()] == [created["id"]]
    assert (event["action"], event["outcome"]) == ("search", "ok")
    assert refs_of(event) == [f"rental:{created['id']}", f"person:{created['landlord']['id']}"]
    assert event["detail"] == f"by=landlord.{by.removeprefix('landlord_')}"
    assert_no_values(event, values_of(body))


def test_search_with_no_match_is_still_one_event(registry, client, police):
    unknown = id_number(777, birth="19600101")
    response, event = one_event(registry, lambda: client.post(
        "/rentals/search", json={"landlord_id_number": unknown}, headers=police.headers))
    assert response.status_code == 200 and response.json() == []
    assert (event["action"], event["outcome"], event["refs"]) == ("search", "ok", "")
    assert_no_values(event, [unknown])


def test_deregister_is_one_event(registry, client, police, rental):
    body, created = rental
    response, event = one_event(registry, lambda: client.post(
        f"/rentals/{created['id']}/deregister", json={"deregistered_on": "2026-06-01"},
        headers=police.headers))
    assert response.status_code == 200, response.text
    assert (event["action"], event["outcome"]) == ("deregister", "ok")
    assert event["record_id"] == created["id"] and fields_of(event) == ["status"]
    assert_no_values(event, values_of(body))


def test_pledge_is_one_event(registry, client, police, rental):
    body, created = rental
    pledge = {"signed_on": "2026-06-01", "valid_until": "2027-05-31", "signed_by": "欧阳春晓"}
    response, event = one_event(registry, lambda: client.post(
        f"/rentals/{created['id']}/pledge", json=pledge, headers=police.headers))
    assert response.status_code == 200, response.text
    assert (event["action"], event["outcome"]) == ("pledge", "ok")
    assert event["record_id"] == created["id"] and fields_of(event) == ["pledge"]
    assert refs_of(event) == [f"rental:{created['id']}", f"person:{created['landlord']['id']}"]
    assert_no_values(event, [*values_of(body), pledge["signed_by"]])


def test_pledge_signed_by_the_landlord_is_one_event(registry, client, police, rental):
    body, created = rental
    pledge = {"signed_on": "2026-06-01", "valid_until": "2027-05-31"}
    response, event = one_event(registry, lambda: client.post(
        f"/rentals/{created['id']}/pledge", json=pledge, headers=police.headers))
    assert response.status_code == 200, response.text
    assert (event["action"], event["outcome"]) == ("pledge", "ok")
    assert_no_values(event, values_of(body))


def test_auditor_queries_are_events_too(registry, client, police, rental):
    _, created = rental
    auditor = make_user(registry, client, "auditor", COUNTY)
    response, event = one_event(registry, lambda: client.get(
        "/audit/events", params={"record_id": created["id"]}, headers=auditor.headers))
    assert response.status_code == 200
    assert (event["kind"], event["action"], event["outcome"]) == ("audit", "read", "ok")
    assert refs_of(event) == [f"audit:{e['seq']}" for e in response.json()["items"]]
    response, event = one_event(registry, lambda: client.get("/audit/verify",
                                                             headers=auditor.headers))
    assert response.status_code == 200 and response.json()["ok"] is True
    assert (event["kind"], event["action"], event["outcome"]) == ("audit", "verify", "ok")


# --- (a) one event per denial ------------------------------------------------------------


def test_out_of_scope_read_is_404_and_one_denied_event(registry, client, rental):
    body, created = rental
    neighbour = make_user(registry, client, "police", COMMUNITY_B)
    response, event = one_event(registry, lambda: client.get(
        f"/rentals/{created['id']}", headers={**neighbour.headers, "X-Purpose": "curious"}))
    assert response.status_code == 404
    assert (event["action"], event["outcome"]) == ("read", "denied")
    assert event["record_id"] == created["id"]
    assert event["actor"] == neighbour.username
    assert event["request_id"] == response.headers["x-request-id"]
    assert_no_values(event, values_of(body))
    assert body["landlord"]["name"] not in response.text


def test_absent_record_is_404_and_one_denied_event(registry, client, police):
    missing = "01890000-0000-7000-8000-000000000000"
    response, event = one_event(registry, lambda: client.get(f"/rentals/{missing}",
                                                             headers=police.headers))
    assert response.status_code == 404
    assert (event["action"], event["outcome"], event["record_id"]) == ("read", "denied", missing)
    assert event["jurisdiction_code"] in (None, police.actor.scope)  # nothing to leak


@pytest.mark.parametrize(("method", "suffix", "payload", "action", "sent"), [
    ("patch", "", {"address": "西湖路1号1幢101室", "landlord_phone": "13600001111"}, "update",
     ["西湖路1号1幢101室", "13600001111"]),
    ("post", "/deregister", {"deregistered_on": "2026-06-01"}, "deregister", []),
    ("post", "/pledge", {"signed_on": "2026-06-01", "valid_until": "2027-05-31",
                         "signed_by": "东方未明"}, "pledge", ["东方未明"]),
], ids=["amend", "deregister", "pledge"])
def test_out_of_scope_writes_are_404_and_one_denied_event(registry, client, rental, method,
                                                          suffix, payload, action, sent):
    body, created = rental
    neighbour = make_user(registry, client, "police", COMMUNITY_B)
    response, event = one_event(registry, lambda: getattr(client, method)(
        f"/rentals/{created['id']}{suffix}", json=payload, headers=neighbour.headers))
    assert response.status_code == 404, response.text
    assert (event["action"], event["outcome"]) == (action, "denied")
    assert event["record_id"] == created["id"]
    assert_no_values(event, values_of(body) + sent)


@pytest.mark.parametrize(("role", "scope", "call", "status", "action"), [
    ("coordinator", COMMUNITY_A, "deregister", 403, "deregister"),
    ("coordinator", COMMUNITY_A, "search", 403, "search"),
    ("auditor", COUNTY, "read", 404, "read"),
    ("auditor", COUNTY, "list", 403, "list"),
    ("leadership", COUNTY, "read", 404, "read"),
    ("leadership", COUNTY, "create", 403, "create"),
    ("admin", COUNTY, "amend", 404, "update"),
])
def test_wrong_role_is_refused_with_one_denied_event(registry, client, rental, role, scope,
                                                     call, status, action):
    body, created = rental
    user = make_user(registry, client, role, scope)
    fresh = body_with(504, name="端木长风", phone="13812345670", address="东门路5号3幢303室")
    calls = {
        "deregister": lambda: client.post(f"/rentals/{created['id']}/deregister", json={},
                                          headers=user.headers),
        "search": lambda: client.post("/rentals/search",
                                      json={"landlord_id_number": body["landlord"]["id_number"]},
                                      headers=user.headers),
        "read": lambda: client.get(f"/rentals/{created['id']}",
                                   headers={**user.headers, "X-Purpose": "audit"}),
        "list": lambda: client.get("/rentals", headers=user.headers),
        "create": lambda: client.post("/rentals", json=fresh, headers=user.headers),
        "amend": lambda: client.patch(f"/rentals/{created['id']}", json={"units": 9},
                                      headers=user.headers),
    }
    response, event = one_event(registry, calls[call])
    assert response.status_code == status, response.text
    assert (event["action"], event["outcome"], event["role"]) == (action, "denied", role)
    if call in ("deregister", "read", "amend"):
        assert event["record_id"] == created["id"]
    assert_no_values(event, values_of(body) + values_of(fresh))


def test_a_denial_keeps_nothing_else_from_its_request(registry, client, police, rental):
    """The refused request's own writes roll back; only the denial event survives."""
    _, created = rental
    coordinator = make_user(registry, client, "coordinator", COMMUNITY_A)
    before = client.get(f"/rentals/{created['id']}", headers=police.headers).json()
    response, event = one_event(registry, lambda: client.post(
        f"/rentals/{created['id']}/deregister", json={}, headers=coordinator.headers))
    assert response.status_code == 403
    assert event["outcome"] == "denied"
    after = client.get(f"/rentals/{created['id']}", headers=police.headers).json()
    assert after["status"] == before["status"] == "active"


@pytest.mark.parametrize("attempt", ["register", "move"])
def test_write_outside_scope_is_refused_with_one_denied_event(registry, client, police, rental,
                                                              attempt):
    body, created = rental
    fresh = body_with(505, name="公孙明月", phone="13911112222", address="西湖路8号1幢808室",
                      code=COMMUNITY_B)
    if attempt == "register":
        def call():
            return client.post("/rentals", json=fresh, headers=police.headers)
    else:
        def call():
            return client.patch(f"/rentals/{created['id']}",
                                json={"jurisdiction_code": COMMUNITY_B, "units": 7},
                                headers=police.headers)
    response, event = one_event(registry, call)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "jurisdiction_code"
    assert event["outcome"] == "denied"
    assert event["action"] == ("create" if attempt == "register" else "update")
    assert event["jurisdiction_code"] == COMMUNITY_B
    assert_no_values(event, values_of(body) + values_of(fresh))
    after = client.get(f"/rentals/{created['id']}", headers=police.headers).json()
    assert (after["jurisdiction_code"], after["units"]) == (GRID_A1, 2)  # nothing written


def shown(event: dict) -> set[str]:
    """The fields an event says were shown: its fields, or for a write the ``shown=`` list
    in its detail."""
    names = set(fields_of(event))
    for part in event["detail"].split(";"):
        if part.startswith("shown="):
            names |= {f for f in part.removeprefix("shown=").split(",") if f}
    return names


@pytest.mark.parametrize("with_purpose", [False, True], ids=["no-purpose", "purpose"])
def test_amend_answer_follows_the_purpose_rule_and_is_recorded(registry, client, police,
                                                              rental, with_purpose):
    """An amendment answers like a read: masked without a purpose, and whatever it shows in
    clear is named in its one event."""
    body, created = rental
    headers = {**police.headers, **({"X-Purpose": "case 2026-120"} if with_purpose else {})}
    response, event = one_event(registry, lambda: client.patch(
        f"/rentals/{created['id']}", json={"units": 3}, headers=headers))
    assert response.status_code == 200
    clear = response.json()["landlord"]["id_number"] == body["landlord"]["id_number"]
    assert clear is with_purpose
    assert event["purpose"] == ("case 2026-120" if with_purpose else None)
    if clear:
        assert "landlord.id_number" in shown(event)
    assert_no_values(event, values_of(body))


def test_register_with_known_landlord_shows_nothing_unrecorded(registry, client, rental):
    """Another area's officer who knows a landlord's name and ID number learns nothing more
    (the stored phone stays masked without a purpose) and the event names what was shown."""
    body, _ = rental
    neighbour = make_user(registry, client, "police", COMMUNITY_B)
    probe = {**body["landlord"]}
    probe.pop("phone")
    fresh = rental_body(506, code=COMMUNITY_B, address="西湖路66号2幢202室", landlord=probe)
    response, event = one_event(registry, lambda: client.post("/rentals", json=fresh,
                                                              headers=neighbour.headers))
    assert response.status_code == 201, response.text
    phone_shown = response.json()["landlord"]["phone"] == body["landlord"]["phone"]
    assert not phone_shown or "landlord.phone" in shown(event)
    assert body["landlord"]["phone"] not in response.text
    assert_no_values(event, values_of(body))


def test_registering_another_areas_id_number_is_no_oracle(registry, client, rental):
    """An officer elsewhere who tries a known ID number under a made-up name learns nothing
    of the other area's record: either the registration goes through showing only what they
    sent, or the refusal is itself an audit event (a probe must leave a trace)."""
    body, _ = rental
    neighbour = make_user(registry, client, "police", COMMUNITY_B)
    probe = rental_body(508, code=COMMUNITY_B, address="西湖路9号9幢909室",
                        landlord={"name": "赵不对", "id_number": body["landlord"]["id_number"]})
    response, event = one_event(registry, lambda: client.post(
        "/rentals", json=probe, headers={**neighbour.headers, "X-Purpose": "visit"}))
    assert response.status_code in (201, 404, 409, 422), response.text
    if response.status_code == 201:
        assert event["outcome"] == "ok"
    else:
        assert event["outcome"] != "ok"
    for value in (body["landlord"]["name"], body["landlord"]["phone"], body["address"]):
        assert value not in response.text
    assert_no_values(event, [*values_of(body), "赵不对"])


def test_every_operation_records_the_purpose_sent(registry, client, police, rental):
    body, created = rental
    rid = created["id"]
    other = body_with(507, name="轩辕志远", phone="13733334444", address="东门路300号1幢1室")
    term = {"landlord_id_number": body["landlord"]["id_number"]}
    operations = {
        "create": lambda h: client.post("/rentals", json=other, headers=h),
        "read": lambda h: client.get(f"/rentals/{rid}", headers=h),
        "update": lambda h: client.patch(f"/rentals/{rid}", json={"units": 4}, headers=h),
        "list": lambda h: client.get("/rentals", headers=h),
        "search": lambda h: client.post("/rentals/search", json=term, headers=h),
        "pledge": lambda h: client.post(f"/rentals/{rid}/pledge", headers=h, json={
            "signed_on": "2026-06-01", "valid_until": "2027-05-31"}),
        "deregister": lambda h: client.post(f"/rentals/{rid}/deregister", json={},
                                            headers=h),
    }
    for action, call in operations.items():
        purpose = f"案件 2026-{action}"
        headers = {**police.headers, "X-Purpose": quote(purpose)}
        response, event = one_event(registry, lambda call=call, headers=headers: call(headers))
        assert response.status_code in (200, 201), (action, response.text)
        assert (event["action"], event["outcome"]) == (action, "ok")
        assert event["purpose"] == purpose, action
        assert_no_values(event, values_of(body) + values_of(other))


ADMIN_CHOSEN = "Admin-Chosen-330199198503120011"
USER_CHOSEN = "User-Chosen-13800138000"


def _reset(registry: Registry, username: str) -> None:
    with registry.vault(system_actor("tests")) as vault:
        vault.users.reset_password(username, ADMIN_CHOSEN)
        vault.commit()


def _change(client, username: str, password: str, new_password: str = USER_CHOSEN):
    return client.post("/auth/password", json={"username": username, "password": password,
                                               "new_password": new_password})


def _session_event_fits(event: dict, user, action: str, outcome: str) -> None:
    assert (event["kind"], event["action"], event["outcome"]) == ("session", action, outcome)
    assert event["actor"] == user.username
    assert event["actor_id"] == user.actor.id
    assert event["role"] == user.actor.role
    assert event["jurisdiction_code"] == user.actor.scope
    assert event["record_id"] == str(user.actor.id)
    assert event["request_id"], "the event names the request"
    assert_no_values(event, [ADMIN_CHOSEN, USER_CHOSEN, "correct-horse-battery"])


def test_signing_in_before_the_required_change_is_one_change_required_event(registry,
                                                                            client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    _reset(registry, user.username)
    response, event = one_event(registry, lambda: client.post("/auth/token", json={
        "username": user.username, "password": ADMIN_CHOSEN}))
    assert response.status_code == 403
    _session_event_fits(event, user, "login", "change-required")
    assert event["request_id"] == response.headers["x-request-id"]
    assert verify(registry).ok


def test_changing_a_password_is_one_event_per_attempt(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    _reset(registry, user.username)
    response, denied = one_event(registry, lambda: _change(client, user.username, "wrong-one"))
    assert response.status_code == 401
    _session_event_fits(denied, user, "password-change", "denied")
    assert denied["detail"] == ""
    response, event = one_event(registry, lambda: _change(client, user.username, ADMIN_CHOSEN))
    assert response.status_code == 204
    _session_event_fits(event, user, "password-change", "ok")
    assert event["request_id"] == response.headers["x-request-id"]
    response, login = one_event(registry, lambda: client.post("/auth/token", json={
        "username": user.username, "password": USER_CHOSEN}))
    assert response.status_code == 200
    _session_event_fits(login, user, "login", "ok")
    assert verify(registry).ok


def test_a_refused_password_change_body_is_not_audited(registry, client):
    """A body that does not validate (or a new password equal to the current one) is refused
    before any account is looked at: no event, like any other 422 of a public route."""
    user = make_user(registry, None, "police", COMMUNITY_A)
    before = _state(registry)
    assert _change(client, user.username, "correct-horse-battery",
                   "correct-horse-battery").status_code == 422
    assert _change(client, user.username, "correct-horse-battery", "short").status_code == 422
    assert _state(registry) == before


def test_password_change_lockout_is_audited_like_sign_in(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    limit = registry.settings.max_failed_logins
    outcomes = []
    for attempt in range(limit):
        response, event = one_event(registry,
                                    lambda a=attempt: _change(client, user.username, f"w-{a}"))
        assert response.status_code == 401
        outcomes.append((event["outcome"], event["detail"]))
    assert outcomes == [("denied", "")] * (limit - 1) + [("denied", "locked")]
    response, event = one_event(registry, lambda: _change(client, user.username,
                                                          "correct-horse-battery"))
    assert response.status_code == 423
    _session_event_fits(event, user, "password-change", "locked")


# --- (b) tampering -----------------------------------------------------------------------


def build_chain(registry: Registry, links: int = 6) -> list[int]:
    """Append ``links`` events, check the chain is intact, return their seqs."""
    with registry.vault(system_actor("chain")) as vault:
        for n in range(links):
            vault.record(AUDIT, "read", record_id=f"r{n}", refs=[f"audit:{n}"],
                         fields=["seq"], detail=f"link {n}", purpose="tamper test" if n else None)
        vault.commit()
    _, top = _state(registry)
    assert verify(registry).ok
    return list(range(top - links + 1, top + 1))


def verify(registry: Registry) -> audit.Verification:
    with registry.db.session() as session:
        return audit.verify(session)


def row(connection, seq: int) -> dict:
    return dict(connection.execute(select(EVENTS).where(EVENTS.c.seq == seq)).mappings().one())


def test_intact_chain_verifies_and_links(registry, connection):
    seqs = build_chain(registry)
    result = verify(registry)
    assert result.ok and result.broken_seq is None
    assert result.head_seq == seqs[-1] and result.checked == seqs[-1]
    for before, after in itertools.pairwise(seqs):
        assert row(connection, after)["prev_hash"] == row(connection, before)["hash"]


def _canonical_json(row: dict) -> bytes:
    """The canonical form as first specified: sorted-key compact JSON through json.dumps."""
    body = {name: row[name] for name in ("actor", "role", "action", "kind", "outcome",
                                         "record_id", "jurisdiction_code", "fields", "refs",
                                         "purpose", "detail", "request_id", "prev_hash")}
    body.update(seq=int(row["seq"]), at=audit._timestamp(row["at"]),
                actor_id=str(row["actor_id"]) if row["actor_id"] else None)
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


@pytest.mark.parametrize("text_value", [
    "plain", "", "核查租户信息", 'quote " and \\ backslash', "tab\tnew\nline\r\x00\x1f\x7f",
    "emoji 🙂 and \u2028 separators \u2029", "</script>", None,
])
def test_canonical_form_is_byte_for_byte_the_json_one(text_value):
    """``canonical`` spells the JSON out by hand for speed; it must give json.dumps's bytes
    for every value a column can hold, or old chains would stop verifying."""
    for at in (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5, 6),
               datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=timezone(timedelta(hours=8)))):
        for actor_id in (None, uuid.UUID(int=12345)):
            row = {"seq": 2**40 + 1, "at": at, "actor_id": actor_id,
                   "actor": text_value or "a", "role": "police", "action": "read",
                   "kind": "person", "record_id": text_value, "jurisdiction_code": text_value,
                   "fields": text_value or "", "refs": "person:1,rental:2",
                   "purpose": text_value, "outcome": "ok", "detail": text_value or "",
                   "request_id": text_value, "prev_hash": audit.GENESIS_HASH}
            assert audit.canonical(row) == _canonical_json(row)


@pytest.mark.parametrize(("column", "value"), [
    ("actor", "someone-else"), ("action", "list"), ("outcome", "denied"),
    ("record_id", "another-record"), ("purpose", "a better reason"), ("refs", ""),
    ("fields", "address"), ("detail", "link 9"),
])
def test_edited_event_is_named(registry, connection, column, value):
    seqs = build_chain(registry)
    target = seqs[2]
    connection.execute(text(f"UPDATE audit_event SET {column} = :v WHERE seq = :s"),
                       {"v": value, "s": target})
    result = verify(registry)
    assert not result.ok
    assert result.broken_seq == target
    assert "edited" in result.reason


def test_edited_timestamp_by_one_microsecond_is_named(registry, connection):
    from datetime import timedelta

    seqs = build_chain(registry)
    target = seqs[1]
    at = row(connection, target)["at"]
    connection.execute(update(EVENTS).where(EVENTS.c.seq == target)
                       .values(at=at + timedelta(microseconds=1)))
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, target)


def test_edited_and_rehashed_event_is_caught_at_the_next(registry, connection):
    """A forger who recomputes the edited event's hash is caught by its successor."""
    seqs = build_chain(registry)
    target = seqs[2]
    forged = row(connection, target)
    forged["actor"] = "framed-officer"
    forged["hash"] = audit.chain_hash(forged["prev_hash"], forged)
    connection.execute(update(EVENTS).where(EVENTS.c.seq == target)
                       .values(actor=forged["actor"], hash=forged["hash"]))
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, target + 1)
    assert "prev_hash" in result.reason


def test_deleted_middle_event_is_named(registry, connection):
    seqs = build_chain(registry)
    connection.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": seqs[3]})
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, seqs[3])
    assert "missing" in result.reason


def test_truncated_log_is_named(registry, connection):
    seqs = build_chain(registry)
    connection.execute(text("DELETE FROM audit_event WHERE seq >= :s"), {"s": seqs[-2]})
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, seqs[-2])
    assert result.head_seq == seqs[-1]


def test_deleted_last_event_is_named(registry, connection):
    seqs = build_chain(registry)
    connection.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": seqs[-1]})
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, seqs[-1])


@pytest.mark.parametrize("what", ["whole rows", "payload only"])
def test_swapped_events_are_named(registry, connection, what):
    seqs = build_chain(registry)
    a, b = seqs[1], seqs[4]
    first, second = row(connection, a), row(connection, b)
    keep = {"seq"} if what == "whole rows" else {"seq", "hash", "prev_hash", "at"}
    moved = [c for c in COLUMNS if c not in keep]
    connection.execute(update(EVENTS).where(EVENTS.c.seq == a)
                       .values({c: second[c] for c in moved}))
    connection.execute(update(EVENTS).where(EVENTS.c.seq == b)
                       .values({c: first[c] for c in moved}))
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, a)


def test_forged_event_with_a_made_up_hash_is_named(registry, connection):
    seqs = build_chain(registry)
    last = row(connection, seqs[-1])
    forged = {**last, "seq": last["seq"] + 1, "actor": "framed-officer",
              "prev_hash": last["hash"], "hash": secrets.token_hex(32)}
    connection.execute(insert(EVENTS).values(forged))
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, seqs[-1] + 1)


def test_forged_event_renumbered_into_the_middle_is_caught(registry, connection):
    """Shift the tail up by one and slip a correctly hashed event in: the first genuine event
    after it no longer fits."""
    seqs = build_chain(registry)
    slot = seqs[2]
    for seq in reversed(seqs[2:]):
        connection.execute(update(EVENTS).where(EVENTS.c.seq == seq).values(seq=seq + 1))
    before = row(connection, slot - 1)
    forged = {**before, "seq": slot, "actor": "framed-officer", "record_id": "victim",
              "prev_hash": before["hash"]}
    forged["hash"] = audit.chain_hash(before["hash"], forged)
    connection.execute(insert(EVENTS).values(forged))
    result = verify(registry)
    assert (result.ok, result.broken_seq) == (False, slot + 1)


def test_forged_event_chained_past_the_head_is_named(registry, connection):
    seqs = build_chain(registry)
    last = row(connection, seqs[-1])
    forged = {**last, "seq": last["seq"] + 1, "actor": "framed-officer",
              "prev_hash": last["hash"]}
    forged["hash"] = audit.chain_hash(last["hash"], forged)
    connection.execute(insert(EVENTS).values(forged))
    result = verify(registry)
    assert not result.ok
    assert result.broken_seq == seqs[-1] + 1


@pytest.mark.parametrize("seq", [0, -7])
def test_forged_event_below_the_first_seq_is_caught(registry, connection, seq):
    seqs = build_chain(registry)
    first = row(connection, seqs[0])
    connection.execute(insert(EVENTS).values({**first, "seq": seq, "actor": "framed-officer"}))
    assert not verify(registry).ok


def test_rewound_head_is_caught(registry, connection):
    seqs = build_chain(registry)
    previous = row(connection, seqs[-2])
    connection.execute(update(AuditHead.__table__).where(AuditHead.__table__.c.id == 1)
                       .values(seq=previous["seq"], hash=previous["hash"]))
    assert not verify(registry).ok


def test_verify_through_the_api_reports_the_break_and_is_audited(registry, client,
                                                                 connection):
    seqs = build_chain(registry)
    auditor = make_user(registry, client, "auditor", COUNTY)
    connection.execute(text("UPDATE audit_event SET actor = 'x' WHERE seq = :s"),
                       {"s": seqs[1]})
    response, event = one_event(registry, lambda: client.get("/audit/verify",
                                                             headers=auditor.headers))
    assert response.status_code == 200
    assert response.json()["ok"] is False and response.json()["broken_seq"] == seqs[1]
    assert (event["action"], event["outcome"]) == ("verify", "broken")
    assert f"event {seqs[1]}" in event["detail"]


# --- (c) the CLI on a real on-disk registry ---------------------------------------------






def _cli_env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {"REGISTRY_DATA_DIR": str(data_dir), "REGISTRY_ENVIRONMENT": "test",
           "REGISTRY_ARGON2_TIME_COST": "1", "REGISTRY_ARGON2_MEMORY_KIB": "64"}
    if database_url:
        env["REGISTRY_DATABASE_URL"] = database_url
    return env


def run_cli(monkeypatch, env: dict[str, str], *args: str):
    """``registry ARGS`` in-process, under exactly ``env`` for the REGISTRY_ settings."""
    for name in list(os.environ):
        if name.startswith("REGISTRY_") and name != "REGISTRY_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli_app, list(args))
    finally:
        get_settings.cache_clear()


def run_binary(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run([str(REGISTRY_BIN), *args], env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@dataclass
class OnDisk:
    backend: str
    env: dict[str, str]
    cwd: Path
    sqlite_path: Path | None = None
    pg_url: str | None = None

    def execute(self, statements: list[tuple[str, dict]]) -> None:
        owner = database_owner_sql("sqlite" if self.sqlite_path is not None else "postgresql")
        statements = [(sql, {}) for sql in owner] + statements
        if self.sqlite_path is not None:
            conn = sqlite3.connect(self.sqlite_path)
            try:
                with conn:
                    for sql, params in statements:
                        conn.execute(sql, params)
            finally:
                conn.close()
            return
        engine = create_engine(self.pg_url)
        try:
            with engine.begin() as conn:
                for sql, params in statements:
                    conn.execute(text(sql), params)
        finally:
            engine.dispose()

    def fetch(self, sql: str, params: dict | None = None) -> list[dict]:
        if self.sqlite_path is not None:
            conn = sqlite3.connect(self.sqlite_path)
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute(sql, params or {})]
            finally:
                conn.close()
        engine = create_engine(self.pg_url)
        try:
            with engine.connect() as conn:
                return [dict(r) for r in conn.execute(text(sql), params or {}).mappings()]
        finally:
            engine.dispose()


def populate(data_dir: Path, url: str) -> None:
    """Audited work on an initialised registry: sign-ups, registrations, reads, a list.
    (``registry init --demo`` builds thousands of records — too slow to run per test file.)"""
    registry = Registry(make_settings(data_dir, database_url=url))
    try:
        with registry.vault(system_actor("tests")) as vault:
            vault.jurisdictions.upsert(TREE)
            user = vault.users.add(username="police-cli", password="correct-horse-battery",
                                   role="police", jurisdiction_code=COMMUNITY_A)
            vault.commit()
        actor = Actor(id=user.id, username=user.username, role="police", scope=COMMUNITY_A)
        for seed in range(40, 52):
            with registry.vault(actor) as vault:
                created = rentals_service.register(vault, RentalCreate(**rental_body(seed)))
                rentals_service.get(vault, created.id, purpose="case 2026-200")
                vault.commit()
        with registry.vault(actor) as vault:
            rentals_service.list_rentals(vault)
            vault.commit()
    finally:
        registry.db.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cli_registry(request, tmp_path_factory):
    """``registry init`` through the real console script, then audited work, once per
    backend; tests get private copies."""
    base = tmp_path_factory.mktemp(f"audit-cli-{request.param}")
    admin = name = None
    url = f"sqlite:///{base / 'data' / 'registry.sqlite3'}"
    if request.param == "postgresql":
        admin = pg_admin()
        name = f"registry_audit_cli_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = pg_url(name)
    try:
        done = run_binary(_cli_env(base / "data", url if admin else None), base, "init")
        assert done.returncode == 0, done.stderr
        populate(base / "data", url)
        yield request.param, base, name
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture
def on_disk(cli_registry, tmp_path):
    """A private copy of the registry: its data directory, and on PostgreSQL a database
    cloned from its database."""
    backend, base, template = cli_registry
    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    if backend == "sqlite":
        yield OnDisk(backend, _cli_env(data), tmp_path, sqlite_path=data / "registry.sqlite3")
        return
    admin = pg_admin()
    name = f"registry_audit_copy_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield OnDisk(backend, _cli_env(data, pg_url(name)), tmp_path, pg_url=pg_url(name))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _head_seq(disk: OnDisk) -> int:
    return disk.fetch("SELECT seq FROM audit_head WHERE id = 1")[0]["seq"]


def test_cli_verify_passes_on_an_intact_registry(on_disk, monkeypatch):
    result = run_cli(monkeypatch, on_disk.env, "audit", "verify")
    assert result.exit_code == 0, result.output
    head = _head_seq(on_disk) - 1  # the verify appended its own event after checking
    assert f"audit chain intact: {head} events, head at {head}" in result.stdout
    assert head > 20  # the registrations, reads and sign-up, all audited
    again = run_cli(monkeypatch, on_disk.env, "audit", "verify")
    assert f"audit chain intact: {head + 1} events" in again.stdout


def test_cli_verify_binary_exits_1_naming_the_event(on_disk):
    target = _head_seq(on_disk) // 2
    on_disk.execute([("UPDATE audit_event SET actor = 'mallory' WHERE seq = :s",
                      {"s": target})])
    done = run_binary(on_disk.env, on_disk.cwd, "audit", "verify")
    assert done.returncode == 1
    assert f"audit chain BROKEN at event {target}:" in done.stderr


def _tamper_edit(disk: OnDisk, head: int) -> int:
    target = head // 3
    disk.execute([("UPDATE audit_event SET record_id = 'elsewhere' WHERE seq = :s",
                   {"s": target})])
    return target


def _tamper_delete(disk: OnDisk, head: int) -> int:
    target = head // 2
    disk.execute([("DELETE FROM audit_event WHERE seq = :s", {"s": target})])
    return target


def _tamper_truncate(disk: OnDisk, head: int) -> int:
    disk.execute([("DELETE FROM audit_event WHERE seq = :s", {"s": head})])
    return head


def _tamper_swap(disk: OnDisk, head: int) -> int:
    a, b = head // 4, head // 4 + 5
    first = disk.fetch("SELECT * FROM audit_event WHERE seq = :s", {"s": a})[0]
    second = disk.fetch("SELECT * FROM audit_event WHERE seq = :s", {"s": b})[0]
    moved = [c for c in COLUMNS if c != "seq"]
    assignments = ", ".join(f"{c} = :{c}" for c in moved)
    sql = f"UPDATE audit_event SET {assignments} WHERE seq = :seq"
    disk.execute([(sql, {**{c: second[c] for c in moved}, "seq": a}),
                  (sql, {**{c: first[c] for c in moved}, "seq": b})])
    return a


@pytest.mark.parametrize("tamper", [_tamper_edit, _tamper_delete, _tamper_truncate,
                                    _tamper_swap],
                         ids=["edit", "delete", "truncate", "swap"])
def test_cli_verify_exits_1_naming_the_broken_event(on_disk, monkeypatch, tamper):
    intact = run_cli(monkeypatch, on_disk.env, "audit", "verify")
    assert intact.exit_code == 0, intact.output
    target = tamper(on_disk, _head_seq(on_disk))
    for _ in range(2):  # the verify's own (appended) event does not hide the break
        broken = run_cli(monkeypatch, on_disk.env, "audit", "verify")
        assert broken.exit_code == 1, broken.output
        assert f"audit chain BROKEN at event {target}:" in broken.stderr
        assert "intact" not in broken.stdout


# --- (d) concurrent appenders on PostgreSQL ----------------------------------------------


# A separate Python process appending: it connects, says "ready", waits for "go" on stdin so
# that every writer starts together, then appends two events per committed transaction.
APPENDER = """
import sys
from sqlalchemy import text
from registry.db import Database
from registry.migrate import upgrade
from registry.security import audit

url, tag, worker, transactions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
db = Database.from_url(url)
with db.session() as session:
    session.execute(text("select 1"))
print("ready", flush=True)
sys.stdin.readline()
for t in range(transactions):
    with db.session() as session:
        audit.append(session, [
            audit.Event(actor_id=None, actor=f"{tag}-p{worker}", role="system",
                        action="verify", kind="audit", detail=f"{worker}|{t}|{n}")
            for n in range(2)])
        session.commit()
db.dispose()
print("done", flush=True)
"""


@pytest.fixture
def committed_registry(database_url, settings):
    """A registry whose transactions really commit — into a PostgreSQL database of its own,
    migrated for the test and dropped after it, so what it commits (audit events cannot be
    deleted) never reaches the shared test database."""
    if database_url.startswith("sqlite"):
        pytest.skip("concurrent appenders are a PostgreSQL test (SQLite serialises writers)")
    admin = pg_admin()
    name = f"registry_committed_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_url(name)
    upgrade(url)
    db = Database.from_url(url)
    registry = Registry(settings, db=db, keyring=Keyring.from_settings(settings))
    registry.url = url
    try:
        yield registry
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_concurrent_appenders_leave_one_linear_chain(committed_registry):
    registry = committed_registry
    tag = f"conc-{secrets.token_hex(3)}"
    threads, processes, transactions = 5, 2, 6
    count_before, top_before = _state(registry)
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def thread_worker(worker: int) -> None:
        try:
            barrier.wait(timeout=30)
            for t in range(transactions):
                with registry.vault(system_actor(f"{tag}-t{worker}")) as vault:
                    vault.users.list()  # a real gate operation, audited
                    vault.record(AUDIT, "verify", detail=f"{worker}|{t}|1")
                    vault.commit()
        except BaseException as exc:
            errors.append(exc)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [subprocess.Popen(
        [sys.executable, "-c", APPENDER, registry.url, tag, str(p), str(transactions)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=REPO) for p in range(processes)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        workers = [threading.Thread(target=thread_worker, args=(w,)) for w in range(threads)]
        for worker in workers:
            worker.start()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for worker in workers:
            worker.join(timeout=120)
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0 and out.strip() == "done", err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert not errors, errors

    expected = 2 * transactions * (threads + processes)
    count_after, top_after = _state(registry)
    assert count_after - count_before == expected
    assert top_after - top_before == expected
    result = verify(registry)
    assert result.ok, result.describe()
    assert result.head_seq == top_after

    ours = [e for e in _events_after(registry, top_before) if tag in e["actor"]]
    assert [e["seq"] for e in ours] == list(range(top_before + 1, top_after + 1))
    by_actor: dict[str, list[dict]] = {}
    for appended in ours:
        by_actor.setdefault(appended["actor"], []).append(appended)
    assert len(by_actor) == threads + processes
    for events in by_actor.values():
        assert len(events) == 2 * transactions
        # each transaction's two events are adjacent, and transactions keep their order
        for t in range(transactions):
            pair = events[2 * t : 2 * t + 2]
            assert pair[1]["seq"] == pair[0]["seq"] + 1
            assert pair[1]["detail"].split("|")[1:] == [str(t), "1"]


def test_verify_while_another_transaction_appends_reports_intact(committed_registry):
    registry = committed_registry
    appended = []

    def append_elsewhere() -> None:
        if appended:
            return
        with registry.vault(system_actor("concurrent-writer")) as vault:
            vault.record(AUDIT, "verify", detail="appended while verify ran")
            vault.commit()
        appended.append(True)

    with registry.db.session() as session:
        calls = []

        def hook(*_) -> None:  # every statement verify sends on its own connection
            calls.append(1)
            if len(calls) == 2:  # the first chunk of events has been walked, unlocked
                append_elsewhere()

        event.listen(session.connection(), "before_execute", hook)
        result = audit.verify(session)
    assert appended, "the hook never ran"
    assert result.ok, result.describe()
    assert verify(registry).ok
