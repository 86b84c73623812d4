"""The auditors' workbench (issue 6): who has seen a person (by person id or by ID number,
resolved inside the gate), one user's activity, denials, exports, the anomaly report and its
review marks, CSV/XLSX exports — each an audit event itself, each scoped to the auditor's
area, none carrying a personal value — and the demo's planted anomalies."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta

import openpyxl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from registry.audit.schemas import Period
from registry.cli import app
from registry.config import get_settings
from registry.errors import RegistryError
from registry.models import AuditEvent
from registry.rentals import service as rentals
from registry.rentals.schemas import Deregistration, RentalCreate
from registry.residents import service as residents
from registry.residents.schemas import ArrivalIn
from registry.vault.anomalies import item_id
from registry.vault.base import Actor
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    id_number,
    make_user,
    rental_body,
)

STATED = "case 2026-117"


def arrival(seed: int, code: str = GRID_A1) -> dict:
    return {"name": f"李{seed}华"[:4], "id_number": id_number(seed), "reason": "work",
            "arrived_on": "2026-05-01", "registered_on": "2026-05-03",
            "jurisdiction_code": code, "address": f"东门路{seed}号", "phone": f"1390013{seed:04d}"}


def at(registry, when: datetime):
    registry.clock.fixed = when


def events_of(registry, actor: str) -> list:
    """The actor's events, but for signing in."""
    with registry.db.session() as session:
        rows = session.scalars(select(AuditEvent).where(
            AuditEvent.actor == actor, AuditEvent.kind != "session")
            .order_by(AuditEvent.seq)).all()
        session.expunge_all()
        return rows


class Town:
    """Officers and records through the services: a landlord (the subject) whose rental and
    residency are read, listed, written and refused; another person nobody looks at."""

    def __init__(self, registry) -> None:
        self.registry = registry
        self.police = make_user(registry, None, "police", COMMUNITY_A)
        self.police_b = make_user(registry, None, "police", COMMUNITY_B)
        self.coordinator = make_user(registry, None, "coordinator", GRID_A1)
        with registry.vault(self.police.actor) as vault:
            self.rental = rentals.register(vault, RentalCreate(**rental_body(1)))
            self.other = rentals.register(vault, RentalCreate(**rental_body(2)))
            body = arrival(1)  # the landlord lives here too: same ID number, same name
            body["name"] = rental_body(1)["landlord"]["name"]
            self.residency = residents.register_arrival(vault, ArrivalIn(**body))
            vault.commit()
        self.person_id = self.rental.landlord.id
        # Filed by the grid's clerk: not one of the officers' own cases.
        clerk = Actor(id=None, username="clerk", role="police", scope=GRID_A1)
        with registry.vault(clerk) as vault:
            self.stranger = rentals.register(vault, RentalCreate(**rental_body(3)))
            vault.commit()

    def refused(self, vault) -> None:
        """A coordinator may not deregister: refused (403), audited."""
        rentals.deregister(vault, self.rental.id, Deregistration())

    def act(self, user, work) -> None:
        with self.registry.vault(user.actor) as vault:
            try:
                work(vault)
                vault.commit()
            except RegistryError:  # a denial, audited: the point here
                pass


@pytest.fixture
def town(registry):
    return Town(registry)


def auditor(registry, client, scope=COUNTY):
    return make_user(registry, client, "auditor", scope)


PERSONAL = (rental_body(1)["landlord"]["name"], id_number(1), rental_body(1)["address"],
            rental_body(1)["landlord"]["phone"])


def no_personal(text: str) -> None:
    for value in PERSONAL:
        assert value not in text, value


# --- disclosure -------------------------------------------------------------------------


def test_disclosure_finds_every_touch_and_nothing_else(registry, client, town):
    town.act(town.police, lambda v: rentals.get(v, town.rental.id, purpose=STATED))
    town.act(town.police, lambda v: rentals.list_rentals(v))  # both rentals listed
    town.act(town.police, lambda v: rentals.get(v, town.other.id, purpose=STATED))
    town.act(town.coordinator, lambda v: residents.get(v, town.residency.id, purpose=None))
    town.act(town.police_b, lambda v: rentals.get(v, town.rental.id, purpose=None))  # denied
    audit = auditor(registry, client)
    for body in ({"person_id": str(town.person_id)}, {"id_number": id_number(1)}):
        response = client.post("/audit/disclosure", json=body, headers=audit.headers)
        assert response.status_code == 200, response.text
        report = response.json()
        no_personal(response.text)
        seen = {(e["actor"], e["action"], e["outcome"], e["record_id"]) for e in report["events"]}
        rental, residency = str(town.rental.id), str(town.residency.id)
        assert (town.police.username, "create", "ok", rental) in seen
        assert (town.police.username, "read", "ok", rental) in seen
        assert (town.police.username, "list", "ok", None) in seen
        assert (town.coordinator.username, "read", "ok", residency) in seen
        assert (town.police_b.username, "read", "denied", rental) in seen
        # The other rental's read touches someone else: not here.
        assert str(town.other.id) not in {e["record_id"] for e in report["events"]}
        assert all(e["touched"] for e in report["events"] if e["actor"] != audit.username)
        assert report["subject"] == f"person:{town.person_id}"
        assert report["counts"]["outcome"]["denied"] == 1
        purposes = {e["purpose"] for e in report["events"] if e["action"] == "read"}
        assert STATED in purposes
    [first, second] = [e for e in events_of(registry, audit.username)]
    assert (first.action, first.kind, first.outcome) == ("disclosure", "audit", "ok")
    assert first.detail.startswith("by=person_id;") and second.detail.startswith("by=id_number")
    assert first.refs == f"person:{town.person_id}"
    no_personal(" ".join(f"{e.detail} {e.refs} {e.fields}" for e in (first, second)))


def test_disclosure_is_scoped_and_an_unknown_person_answers_alike(registry, client, town):
    town.act(town.police, lambda v: rentals.get(v, town.rental.id, purpose=STATED))
    outsider = auditor(registry, client, COMMUNITY_B)
    hidden = client.post("/audit/disclosure", json={"id_number": id_number(1)},
                         headers=outsider.headers).json()
    absent = client.post("/audit/disclosure", json={"id_number": id_number(555)},
                         headers=outsider.headers).json()
    assert hidden["total"] == absent["total"] == 0
    assert hidden["subject"] is absent["subject"] is None
    # Asking again does not make the person appear through the auditor's own query.
    again = client.post("/audit/disclosure", json={"id_number": id_number(1)},
                        headers=outsider.headers).json()
    assert again["total"] == 0
    police = make_user(registry, client, "police", COMMUNITY_A)
    refused = client.post("/audit/disclosure", json={"id_number": id_number(1)},
                          headers=police.headers)
    assert refused.status_code == 403


@pytest.mark.parametrize(("body", "params", "field"), [
    ({"id_number": "12345"}, {}, "id_number"),
    ({"id_number": "330199198503120019"}, {}, "id_number"),  # bad check character
    ({}, {}, "person_id"),
    ({"person_id": str(uuid.uuid4()), "id_number": id_number(1)}, {}, "person_id"),
    ({"person_id": "nope"}, {}, "person_id"),
    ({"person_id": str(uuid.uuid4()), "from": "2026-13-01"}, {}, "from"),
    ({"person_id": str(uuid.uuid4()), "from": "2026-06-10", "to": "2026-06-01"}, {}, "to"),
    ({"person_id": str(uuid.uuid4()), "from": "2020-01-01", "to": "2026-06-01"}, {}, "to"),
    ({"person_id": str(uuid.uuid4())}, {"format": "pdf"}, "format"),
])
def test_disclosure_bad_input_names_the_field(registry, client, body, params, field):
    audit = auditor(registry, client)
    response = client.post("/audit/disclosure", json=body, params=params,
                           headers=audit.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field, response.text
    no_personal(response.text)
    assert not events_of(registry, audit.username)


# --- activity, denied, exports ------------------------------------------------------------


def test_activity_denied_and_exports(registry, client, town):
    town.act(town.police, lambda v: rentals.get(v, town.rental.id, purpose=STATED))
    for _ in range(2):
        town.act(town.coordinator, town.refused)
    audit = auditor(registry, client)
    activity = client.get("/audit/activity", params={"user": town.police.username},
                          headers=audit.headers).json()
    assert activity["counts"]["action"] == {"create": 3, "read": 1}
    assert activity["counts"]["kind"] == {"rental": 3, "resident": 1}
    assert {e["actor"] for e in activity["events"]} == {town.police.username}
    denied = client.get("/audit/denied", headers=audit.headers).json()
    [group] = denied["groups"]
    assert (group["actor"], group["count"]) == (town.coordinator.username, 2)
    exported = client.get("/audit/denied", params={"format": "csv"}, headers=audit.headers)
    assert exported.status_code == 200
    assert exported.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["结果 outcome"] for r in rows] == ["denied", "denied"]
    book = client.get("/audit/activity", params={"user": town.police.username,
                                                 "format": "xlsx"}, headers=audit.headers)
    sheet = openpyxl.load_workbook(io.BytesIO(book.content))["事件 events"]
    assert sheet.max_row == 1 + 4
    exports = client.get("/audit/exports", headers=audit.headers).json()
    assert [(e["actor"], e["action"]) for e in exports["events"]] == [
        (audit.username, "export")] * 2
    assert {e["detail"].split(";")[0] for e in exports["events"]} == {
        "format=csv", "format=xlsx"}
    no_personal(str(exports) + str(denied) + str(activity))
    actions = [e.action for e in events_of(registry, audit.username)]
    assert actions == ["read", "read", "export", "export", "read"]


@pytest.mark.parametrize(("params", "field"), [
    ({"user": "nobody-here"}, "user"),
    ({}, "user"),
    ({"user": "x", "from": "yesterday"}, "from"),
    ({"user": "x", "from": "2026-06-10", "to": "2026-06-01"}, "to"),
    ({"user": "x", "format": "pdf"}, "format"),
])
def test_activity_bad_input_names_the_field(registry, client, params, field):
    audit = auditor(registry, client)
    response = client.get("/audit/activity", params=params, headers=audit.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_reports_are_scoped_to_the_auditors_area(registry, client, town):
    for _ in range(2):
        town.act(town.coordinator, town.refused)
    inside = auditor(registry, client, COMMUNITY_A)
    outside = auditor(registry, client, COMMUNITY_B)
    assert client.get("/audit/denied", headers=inside.headers).json()["total"] == 2
    assert client.get("/audit/denied", headers=outside.headers).json()["total"] == 0
    mine = client.get("/audit/activity", params={"user": town.police.username},
                      headers=outside.headers).json()
    assert mine["total"] == 0


# --- anomalies ------------------------------------------------------------------------------


def history(registry, town, *, snoop: bool) -> None:
    """Four quiet weeks for two police officers (a few reads a working day, with a purpose),
    then a week in which, if ``snoop``, officer A opens records at night without a purpose,
    and the coordinator is refused six times."""
    monday = datetime(2026, 5, 11, 9, tzinfo=FIXED_NOW.tzinfo)  # weeks to 15 June
    for day in range(36):
        when = monday + timedelta(days=day)
        if when.weekday() >= 5 or when >= FIXED_NOW:
            continue
        for n in range(3):
            at(registry, when + timedelta(hours=n))
            town.act(town.police, lambda v: rentals.get(v, town.rental.id, purpose=STATED))
            town.act(town.police_b, lambda v: rentals.list_rentals(v))
    if snoop:
        night = datetime(2026, 6, 13, 23, tzinfo=FIXED_NOW.tzinfo)
        for n in range(40):
            at(registry, night + timedelta(minutes=3 * n))
            town.act(town.police, lambda v: rentals.get(v, town.stranger.id, purpose=None))
        for n in range(6):
            at(registry, night + timedelta(minutes=n))
            town.act(town.coordinator, town.refused)
    at(registry, FIXED_NOW)


def anomalies(client, user, **params):
    response = client.get("/audit/anomalies", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_rule_fires_on_a_snooping_week(registry, client, town):
    history(registry, town, snoop=True)
    audit = auditor(registry, client)
    report = anomalies(client, audit)
    assert report["period"] == {"start": "2026-06-09", "end": "2026-06-15"}
    fired = {(i["rule"], i["actor"]): i for i in report["items"]}
    police, coordinator = town.police.username, town.coordinator.username
    assert set(fired) == {("baseline", police), ("peers", police), ("off_hours", police),
                          ("unexplained", police), ("denials", coordinator)}
    assert fired[("off_hours", police)]["figures"]["off_hours_reads"] == 40
    assert fired[("unexplained", police)]["figures"]["records"] == 1
    assert fired[("denials", coordinator)]["figures"]["denials"] == 6
    assert fired[("baseline", police)]["figures"]["reads"] > 40
    with registry.db.session() as session:
        seqs = fired[("denials", coordinator)]["seqs"]
        outcomes = session.scalars(select(AuditEvent.outcome).where(AuditEvent.seq.in_(seqs)))
        assert set(outcomes) == {"denied"} and len(seqs) == 6
    no_personal(str(report))


def test_rules_stay_quiet_on_a_normal_history(registry, client, town):
    history(registry, town, snoop=False)
    audit = auditor(registry, client)
    assert anomalies(client, audit)["items"] == []


def test_review_marks_persist_and_are_audited(registry, client, town):
    history(registry, town, snoop=True)
    audit = auditor(registry, client)
    item = anomalies(client, audit)["items"][0]
    response = client.post(f"/audit/anomalies/{item['id']}/review",
                           json={"note": "spoke to the officer: night shift, case 12"},
                           headers=audit.headers)
    assert response.status_code == 200, response.text
    assert response.json()["review"]["reviewed_by"] == audit.username
    again = {i["id"]: i for i in anomalies(client, audit)["items"]}
    assert again[item["id"]]["review"]["note"] == "spoke to the officer: night shift, case 12"
    [event] = [e for e in events_of(registry, audit.username) if e.action == "review"]
    assert event.record_id == item["id"] and "night shift" not in event.detail
    # An item outside the auditor's area (or none at all) is a 404, audited as a denial.
    outsider = auditor(registry, client, COMMUNITY_B)
    hidden = client.post(f"/audit/anomalies/{item['id']}/review", json={"note": "x"},
                         headers=outsider.headers)
    ghost = client.post("/audit/anomalies/20260609-20260615-0123456789ab/review",
                        json={"note": "x"}, headers=outsider.headers)
    assert hidden.status_code == ghost.status_code == 404
    assert hidden.json() == ghost.json()
    assert [e.outcome for e in events_of(registry, outsider.username)] == ["denied"] * 2
    bad = client.post("/audit/anomalies/not-an-item/review", json={"note": ""},
                      headers=audit.headers)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "note"


def test_item_ids_are_stable(town):
    period = Period(start=FIXED_NOW.date(), end=FIXED_NOW.date())
    first = item_id(period, "peers", town.police.actor.id)
    assert first == item_id(period, "peers", town.police.actor.id)
    assert first != item_id(period, "baseline", town.police.actor.id)


# --- the demo and the CLI ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """An on-disk SQLite registry with the demo county, dated from the real today."""
    home = tmp_path_factory.mktemp("audit-demo")
    result = invoke(home, "init", "--demo", "--scale", "0.03")
    assert result.exit_code == 0, result.output
    return home


def invoke(home, *args, password: str = "demo-auditor"):
    get_settings.cache_clear()
    env = {"REGISTRY_DATA_DIR": str(home), "REGISTRY_KEY_FILE": str(home / "registry.key"),
           "REGISTRY_ENVIRONMENT": "development", "REGISTRY_PASSWORD": password,
           "REGISTRY_DATABASE_URL": None}
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


def test_the_demo_shows_its_planted_anomalies(demo_home, tmp_path):
    import json

    result = invoke(demo_home, "audit", "anomalies", "--as", "auditor", "--format", "json")
    assert result.exit_code == 0, result.output
    fired = {(i["rule"], i["actor"]) for i in json.loads(result.output)["items"]}
    assert {("baseline", "police_b"), ("peers", "police_b"), ("off_hours", "police_b"),
            ("unexplained", "police_b"), ("denials", "coordinator_a")} <= fired
    assert not {actor for _, actor in fired} - {"police_b", "coordinator_a"}
    table = invoke(demo_home, "audit", "denied", "--as", "auditor")
    assert table.exit_code == 0 and "coordinator_a" in table.output
    out = tmp_path / "activity.xlsx"
    book = invoke(demo_home, "audit", "activity", "--as", "auditor", "--user", "police_b",
                  "--format", "xlsx", "--out", str(out))
    assert book.exit_code == 0, book.output
    assert openpyxl.load_workbook(out)["事件 events"].max_row > 50
    exports = invoke(demo_home, "audit", "exports", "--as", "auditor", "--format", "json")
    assert [e["detail"].split(";")[0] for e in json.loads(exports.output)["events"]] == [
        "format=xlsx"]


def test_cli_disclosure_review_and_refusals(demo_home):
    import json

    denied = json.loads(invoke(demo_home, "audit", "denied", "--as", "auditor",
                               "--format", "json").output)
    resident = denied["events"][0]["record_id"]
    shown = json.loads(invoke(demo_home, "audit", "activity", "--as", "auditor", "--user",
                              "police_b", "--format", "json").output)
    assert resident
    report = invoke(demo_home, "audit", "disclosure", "--as", "auditor",
                    "--person", str(uuid.uuid4()), "--format", "json")
    assert report.exit_code == 0 and json.loads(report.output)["total"] == 0
    items = json.loads(invoke(demo_home, "audit", "anomalies", "--as", "auditor",
                              "--format", "json").output)["items"]
    marked = invoke(demo_home, "audit", "review", items[0]["id"], "--as", "auditor",
                    "--note", "checked with the station")
    assert marked.exit_code == 0, marked.output
    table = invoke(demo_home, "audit", "anomalies", "--as", "auditor")
    assert "reviewed by auditor" in table.output
    for args, field in ((["activity", "--user", "nobody"], "user"),
                        (["denied", "--from", "someday"], "--from"),
                        (["denied", "--format", "pdf"], "--format"),
                        (["denied", "--format", "xlsx"], "--out"),
                        (["disclosure", "--id-number", "123"], "--id-number"),
                        (["disclosure", "--person", "x"], "--person")):
        result = invoke(demo_home, "audit", *args, "--as", "auditor")
        assert result.exit_code == 2, (args, result.output)
        assert field in result.output, (args, result.output)
    refused = invoke(demo_home, "audit", "denied", "--as", "police_a", password="demo-police-a")
    assert refused.exit_code == 2 and "may not" in refused.output
    assert shown["total"] > 0


def test_the_demo_break_glass_read_waits_in_the_review_queue(demo_home):
    import json

    queue = invoke(demo_home, "break-glass", "--as", "auditor", "queue")
    assert queue.exit_code == 0, queue.output
    grants = json.loads(queue.output)["items"]
    assert len(grants) == 1 and grants[0]["kind"] == "resident"
    assert grants[0]["reviewed_at"] is None and "110" in grants[0]["reason"]
    reads = json.loads(invoke(demo_home, "audit", "activity", "--as", "auditor", "--user",
                              "police_a", "--format", "json").output)["events"]
    assert any(f"break-glass={grants[0]['id']}" in e["detail"] for e in reads)
