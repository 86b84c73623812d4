"""Resettlement and aftercare (安置帮教) end to end through the API: registering a handover,
the aftercare period and its end (29 February included), assistance records, placement,
closing, the needs-action list, juvenile sealing, masking, scope and the audit trail
(registry/releases/, registry/vault/releases.py).

The clock is fixed at FIXED_NOW (2026-06-15 10:00 UTC) and dates are written relative to it.
Every request goes through :class:`Api`, which asserts that nothing answers 500 and that each
successful or denied request leaves exactly one audit event.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` state the behaviour we believe correct
for a defect found here; they start failing (XPASS) the day the defect is fixed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from registry.models import AssistanceRecord, AuditEvent, Person, ReleaseCase
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    PASSWORD,
    CheckedApi,
    id_number,
    make_user,
)

TODAY = FIXED_NOW.date()  # 2026-06-15
PURPOSE = "aftercare file 2026-088"
DIGITS = "一二三四五六七八九十"
OTHER_ROLES = ["corrections", "police", "coordinator", "auditor", "leadership", "admin"]
RELEASE_GROUPS = ["birth", "case", "id_number", "name", "notes", "phone"]


def day(offset: int) -> str:
    """The date ``offset`` days from the fixed today, as the API writes it."""
    return (TODAY + timedelta(days=offset)).isoformat()


def release_body(seed: int = 1, *, code: str = COMMUNITY_A, **overrides) -> dict:
    """A prison release 100 days ago, a key subject; overrides replace fields."""
    body = {
        "name": f"王{DIGITS[seed % 10]}明",
        "id_number": id_number(700 + seed),
        "jurisdiction_code": code,
        "source": "prison",
        "released_on": day(-100),
        "releasing_institution": "浙江省第一监狱",
        "notice_received_on": day(-130),
        "key_subject": True,
        "phone": f"1370013{seed % 10000:04d}",
    }
    body.update(overrides)
    return body


class Api(CheckedApi):
    purpose = PURPOSE

    # --- the release routes --------------------------------------------------------------

    def register(self, user, seed: int = 1, **overrides) -> dict:
        response = self.post("/releases", user, release_body(seed, **overrides))
        assert response.status_code == 201, response.text
        return response.json()

    def read(self, user, case_id: str, **kwargs):
        return self.get(f"/releases/{case_id}", user, **kwargs)

    def amend(self, user, case_id: str, **changes):
        return self.patch(f"/releases/{case_id}", user, changes)

    def assist(self, user, case_id: str, on: str | None = None, kind: str = "visit",
               notes: str | None = None, **kwargs):
        body = {"on": on or day(0), "kind": kind}
        if notes is not None:
            body["notes"] = notes
        return self.post(f"/releases/{case_id}/assistance", user, body, **kwargs)

    def place(self, user, case_id: str, status: str, kind: str | None = None,
              placed_on: str | None = None):
        body = {"status": status}
        if kind is not None:
            body["kind"] = kind
        if placed_on is not None:
            body["placed_on"] = placed_on
        return self.post(f"/releases/{case_id}/placement", user, body)

    def close(self, user, case_id: str, on: str, reason: str = "moved_away"):
        return self.post(f"/releases/{case_id}/close", user, {"on": on, "reason": reason})

    def listing(self, user, *, purpose: str | None = PURPOSE, **params) -> dict:
        response = self.get("/releases", user, purpose=purpose, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def listed(self, user, **params) -> set[str]:
        return {item["id"] for item in self.listing(user, **params)["items"]}


def error_of(response) -> dict:
    return response.json()["error"]


def counts(registry) -> tuple[int, ...]:
    with registry.db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (ReleaseCase, Person, AssistanceRecord))


def last_event(registry) -> AuditEvent:
    with registry.db.session() as session:
        event = session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
        session.expunge(event)
    return event


def on(registry, client, user, when: date):
    """Move the fixed clock to 10:00 UTC on ``when``; the old token has gone idle, so sign in
    again."""
    registry.clock.fixed = datetime.combine(when, FIXED_NOW.time(), tzinfo=UTC)
    response = client.post("/auth/token", json={"username": user.username,
                                                "password": PASSWORD})
    assert response.status_code == 200, response.text
    return replace(user, headers={"Authorization": f"Bearer {response.json()['access_token']}"})


@pytest.fixture
def api(registry, client) -> Api:
    return Api(registry, client)


@pytest.fixture
def worker(registry, client):
    return make_user(registry, client, "justice", COMMUNITY_A)


# --- registering ---------------------------------------------------------------------------


def test_register_a_release(api, worker):
    case = api.register(worker, 1, escort_required=True, escorted_on=day(-100),
                        aftercare_group="司法所、社区、家属三方帮教小组",
                        measures_in_place=True, consent_to_contact=True)
    assert case["source"] == "prison"
    assert case["released_on"] == day(-100)
    assert case["aftercare_until"] == "2031-03-07"  # five years from 2026-03-07
    assert case["open"] is True and case["closed_on"] is None and case["close_reason"] is None
    assert case["key_subject"] is True
    assert (case["escort_required"], case["escorted_on"]) == (True, day(-100))
    assert case["aftercare_group"] == "司法所、社区、家属三方帮教小组"
    assert case["measures_in_place"] is True and case["consent_to_contact"] is True
    assert (case["placement_status"], case["placement_kind"], case["placed_on"]) == (
        "not_yet", None, None)
    assert case["releasing_institution"] == "浙江省第一监狱"
    assert case["notice_received_on"] == day(-130)
    assert case["person"]["name"] == release_body(1)["name"]
    assert case["person"]["id_number"] == release_body(1)["id_number"]
    assert case["phone"] == release_body(1)["phone"]
    assert case["assistance"] == [] and case["masked"] == [] and case["juvenile"] is False


def test_register_from_corrections_and_ahead_of_the_release(api, worker):
    discharged = api.register(worker, 1, source="corrections", notice_received_on=None)
    assert discharged["source"] == "corrections"
    ahead = api.register(worker, 2, released_on=day(30), notice_received_on=day(-5))
    assert ahead["open"] is True and ahead["aftercare_until"] == "2031-07-15"
    farthest = api.register(worker, 3, released_on=day(366))
    assert farthest["released_on"] == day(366)


def test_aftercare_period_per_case_and_by_setting(registry, api, worker):
    assert api.register(worker, 1, aftercare_years=3)["aftercare_until"] == "2029-03-07"
    assert api.register(worker, 2, aftercare_years=20)["aftercare_until"] == "2046-03-07"
    registry.settings.aftercare_years = 2
    assert api.register(worker, 3)["aftercare_until"] == "2028-03-07"
    assert api.register(worker, 4, aftercare_years=5)["aftercare_until"] == "2031-03-07"


def test_29_february_release(api, worker):
    leap = {"released_on": "2024-02-29", "notice_received_on": "2024-01-15"}
    assert api.register(worker, 1, **leap)["aftercare_until"] == "2029-02-28"
    assert api.register(worker, 2, aftercare_years=4, **leap)["aftercare_until"] == "2028-02-29"
    assert api.register(worker, 3, aftercare_years=1, **leap)["aftercare_until"] == "2025-02-28"
    assert api.register(worker, 4, released_on="2023-02-28", notice_received_on=None,
                        aftercare_years=1)["aftercare_until"] == "2024-02-28"


def test_29_february_release_closes_after_28_february(registry, client, api, worker):
    case = api.register(worker, 1, released_on="2024-02-29", notice_received_on=None)["id"]
    worker = on(registry, client, worker, date(2029, 2, 28))
    last_day = api.read(worker, case).json()
    assert (last_day["open"], last_day["key_subject"]) == (True, True)
    assert api.assist(worker, case, on="2029-02-28").status_code == 200
    worker = on(registry, client, worker, date(2029, 3, 1))
    after = api.read(worker, case).json()
    assert (after["open"], after["key_subject"], after["closed_on"], after["close_reason"]) == (
        False, None, "2029-02-28", "period_ended")
    assert api.assist(worker, case, on="2029-03-01").status_code == 409


REGISTER_REFUSALS = [
    ({"source": "jail"}, "source"),
    ({"source": "labour_camp"}, "source"),
    ({"released_on": day(367)}, "released_on"),
    ({"released_on": "2026-02-30"}, "released_on"),
    ({"notice_received_on": day(1)}, "notice_received_on"),
    ({"escorted_on": day(1), "released_on": day(-1)}, "escorted_on"),
    ({"escorted_on": day(-101)}, "escorted_on"),
    ({"aftercare_years": 0}, "aftercare_years"),
    ({"aftercare_years": 21}, "aftercare_years"),
    ({"releasing_institution": ""}, "releasing_institution"),
    ({"placement_status": "placed"}, "placement_status"),
    ({"closed_on": day(-1)}, "closed_on"),
    ({"location": "30.27,120.15"}, "location"),
    ({"id_number": id_number(701)[:17] + "0"}, "id_number"),
    ({"jurisdiction_code": "330199009009"}, "jurisdiction_code"),
]


def test_register_refusals_name_the_field_and_write_nothing(registry, api, worker):
    assert id_number(701)[17] != "0"
    before = counts(registry)
    for overrides, field in REGISTER_REFUSALS:
        response = api.post("/releases", worker, release_body(1, **overrides))
        assert response.status_code == 422, (overrides, response.text)
        assert error_of(response)["field"] == field, overrides
    assert counts(registry) == before


def test_register_outside_scope_is_a_refusal_on_the_record(registry, api, worker):
    before = counts(registry)
    events = api.events()
    response = api.post("/releases", worker, release_body(1, code=COMMUNITY_B))
    assert response.status_code == 422
    assert error_of(response)["field"] == "jurisdiction_code"
    assert counts(registry) == before
    assert api.events() == events + 1
    event = last_event(registry)
    assert (event.outcome, event.action, event.kind) == ("denied", "create", "release")


# --- the aftercare period ------------------------------------------------------------------


def test_period_ending_today_is_still_open(api, worker):
    case = api.register(worker, 1, released_on="2021-06-15", notice_received_on=None)
    assert case["aftercare_until"] == day(0)
    assert (case["open"], case["key_subject"], case["closed_on"]) == (True, True, None)
    assisted = api.assist(worker, case["id"], on=day(0), kind="call")
    assert assisted.status_code == 200
    assert api.listed(worker, open="true") == {case["id"]}


def test_the_day_after_the_period_the_case_is_closed(registry, client, api, worker):
    case = api.register(worker, 1, released_on="2021-06-15", notice_received_on=None,
                        measures_in_place=False)["id"]
    api.assist(worker, case, on=day(-3), notes="走访")
    worker = on(registry, client, worker, TODAY + timedelta(days=1))
    before = counts(registry)
    body = api.read(worker, case).json()
    assert body["open"] is False
    assert body["key_subject"] is None
    assert body["closed_on"] == day(0)
    assert body["close_reason"] == "period_ended"
    assert [a["notes"] for a in body["assistance"]] == ["走访"]  # history kept
    assert api.assist(worker, case, on=day(1)).status_code == 409
    assert api.place(worker, case, "placed", "employment", day(1)).status_code == 409
    assert api.amend(worker, case, measures_in_place=True).status_code == 409
    assert api.close(worker, case, day(1)).status_code == 409
    assert counts(registry) == before
    assert api.listed(worker, open="true") == set()
    closed = api.listing(worker, open="false")["items"]
    assert [c["id"] for c in closed] == [case]
    assert closed[0]["key_subject"] is None
    assert api.listed(worker, needs_action="true") == set()
    listed = api.listing(worker)["items"][0]
    assert (listed["key_subject"], listed["open"]) == (None, False)


def test_a_case_whose_period_already_ended_is_closed_from_the_start(api, worker):
    case = api.register(worker, 1, released_on="2021-06-14", notice_received_on=None)
    assert case["aftercare_until"] == day(-1)
    assert (case["open"], case["key_subject"], case["close_reason"]) == (
        False, None, "period_ended")
    assert api.assist(worker, case["id"], on=day(-2)).status_code == 409


def test_a_shorter_setting_does_not_shorten_registered_cases(registry, api, worker):
    case = api.register(worker, 1, released_on="2023-06-15", notice_received_on=None)
    registry.settings.aftercare_years = 1
    body = api.read(worker, case["id"]).json()
    assert (body["aftercare_until"], body["open"]) == ("2028-06-15", True)


# --- assistance ----------------------------------------------------------------------------


def test_assistance_records_latest_first_with_worker(api, worker):
    case = api.register(worker, 1)["id"]
    kinds = ["visit", "call", "job_referral", "training", "allowance_application"]
    for offset, kind in enumerate(kinds):
        response = api.assist(worker, case, on=day(-50 + offset * 10), kind=kind,
                              notes=f"第{offset + 1}次")
        assert response.status_code == 200, response.text
    records = api.read(worker, case).json()["assistance"]
    assert [r["kind"] for r in records] == kinds[::-1]
    assert [r["on"] for r in records] == [day(-10), day(-20), day(-30), day(-40), day(-50)]
    assert {r["worker"] for r in records} == {worker.username}
    assert records[0]["notes"] == "第5次"
    masked = api.read(worker, case, purpose=None).json()["assistance"]
    assert [r["notes"] for r in masked] == ["第***"] * 5


def test_assistance_on_the_release_day_and_without_notes(api, worker):
    case = api.register(worker, 1)["id"]
    body = api.assist(worker, case, on=day(-100), kind="visit").json()
    assert body["assistance"] == [{"on": day(-100), "kind": "visit", "notes": None,
                                   "worker": worker.username}]


def test_assistance_refusals(registry, api, worker):
    case = api.register(worker, 1)["id"]
    before = counts(registry)
    for body, field in (({"on": day(-101), "kind": "visit"}, "on"),
                        ({"on": day(1), "kind": "visit"}, "on"),
                        ({"on": day(0), "kind": "surveillance"}, "kind"),
                        ({"on": day(0), "kind": "location_check"}, "kind"),
                        ({"on": day(0), "kind": "visit", "notes": ""}, "notes"),
                        ({"on": day(0), "kind": "visit", "location": "x"}, "location"),
                        ({"kind": "visit"}, "on")):
        response = api.post(f"/releases/{case}/assistance", worker, body)
        assert response.status_code == 422, (body, response.text)
        assert error_of(response)["field"] == field, body
    assert counts(registry) == before


def test_assistance_before_a_future_release_is_refused(api, worker):
    case = api.register(worker, 1, released_on=day(30), notice_received_on=day(-1))["id"]
    response = api.assist(worker, case, on=day(0))
    assert response.status_code == 422 and error_of(response)["field"] == "on"


# --- placement -----------------------------------------------------------------------------


def test_placement_and_its_changes(api, worker):
    case = api.register(worker, 1)["id"]
    placed = api.place(worker, case, "placed", "employment", day(-20)).json()
    assert (placed["placement_status"], placed["placement_kind"], placed["placed_on"]) == (
        "placed", "employment", day(-20))
    on_release_day = api.place(worker, case, "placed", "family_support", day(-100)).json()
    assert on_release_day["placed_on"] == day(-100)
    not_needed = api.place(worker, case, "not_needed").json()
    assert (not_needed["placement_status"], not_needed["placement_kind"],
            not_needed["placed_on"]) == ("not_needed", None, None)
    assert api.place(worker, case, "not_yet").json()["placement_status"] == "not_yet"


def test_placement_refusals(registry, api, worker):
    case = api.register(worker, 1)["id"]
    api.place(worker, case, "placed", "farming", day(-10))
    before = counts(registry)
    for body, field in (({"status": "placed"}, "kind"),
                        ({"status": "placed", "placed_on": day(-5)}, "kind"),
                        ({"status": "placed", "kind": "employment"}, "placed_on"),
                        ({"status": "placed", "kind": "employment", "placed_on": day(-101)},
                         "placed_on"),
                        ({"status": "placed", "kind": "employment", "placed_on": day(1)},
                         "placed_on"),
                        ({"status": "placed", "kind": "begging", "placed_on": day(-5)}, "kind"),
                        ({"status": "not_yet", "kind": "employment"}, "kind"),
                        ({"status": "not_needed", "kind": "study", "placed_on": day(-5)},
                         "kind"),
                        ({"status": "housed"}, "status")):
        response = api.post(f"/releases/{case}/placement", worker, body)
        assert response.status_code == 422, (body, response.text)
        assert error_of(response)["field"] == field, body
    body = api.read(worker, case).json()
    assert (body["placement_status"], body["placement_kind"], body["placed_on"]) == (
        "placed", "farming", day(-10))
    assert counts(registry) == before


def test_a_date_without_a_placement_names_the_date(api, worker):
    case = api.register(worker, 1)["id"]
    response = api.place(worker, case, "not_yet", placed_on=day(-5))
    assert response.status_code == 422
    assert error_of(response)["field"] == "placed_on"


# --- closing and amending ------------------------------------------------------------------


def test_close_before_the_period_ends(registry, api, worker):
    case = api.register(worker, 1)["id"]
    for on_day, field in ((day(-101), "on"), (day(1), "on")):
        response = api.close(worker, case, on_day)
        assert response.status_code == 422 and error_of(response)["field"] == field
    response = api.post(f"/releases/{case}/close", worker, {"on": day(-1), "reason": "escaped"})
    assert response.status_code == 422 and error_of(response)["field"] == "reason"
    closed = api.close(worker, case, day(-1), "moved_away").json()
    assert (closed["open"], closed["closed_on"], closed["close_reason"], closed["key_subject"]
            ) == (False, day(-1), "moved_away", None)
    before = counts(registry)
    assert api.close(worker, case, day(0), "died").status_code == 409
    assert api.assist(worker, case, on=day(0)).status_code == 409
    assert api.place(worker, case, "not_needed").status_code == 409
    assert api.amend(worker, case, key_subject=False).status_code == 409
    assert counts(registry) == before
    body = api.read(worker, case).json()
    assert (body["closed_on"], body["close_reason"]) == (day(-1), "moved_away")


def test_amend_measures_escort_and_consent(api, worker):
    case = api.register(worker, 1, escort_required=True)["id"]
    body = api.amend(worker, case, measures_in_place=True, escorted_on=day(-100),
                     consent_to_contact=True, key_subject=False,
                     aftercare_group="帮教小组、司法所、村委会", phone="13800138001").json()
    assert (body["measures_in_place"], body["escorted_on"], body["consent_to_contact"],
            body["key_subject"]) == (True, day(-100), True, False)
    assert body["aftercare_group"] == "帮教小组、司法所、村委会"
    assert body["phone"] == "13800138001"


def test_amend_refusals_change_nothing(api, worker):
    case = api.register(worker, 1, escort_required=True)["id"]
    for change, field in (({"escorted_on": day(-101), "phone": "13800138001"}, "escorted_on"),
                          ({"escorted_on": day(1)}, "escorted_on"),
                          ({"notice_received_on": day(1)}, "notice_received_on"),
                          ({"phone": "12345"}, "phone"),
                          ({"released_on": day(-50)}, "released_on"),
                          ({"aftercare_until": day(400)}, "aftercare_until"),
                          ({"closed_on": day(-1)}, "closed_on")):
        response = api.patch(f"/releases/{case}", worker, change)
        assert response.status_code == 422, (change, response.text)
        assert error_of(response)["field"] == field, change
    body = api.read(worker, case).json()
    assert (body["escorted_on"], body["phone"], body["released_on"], body["open"]) == (
        None, release_body(1)["phone"], day(-100), True)


def test_an_amendment_is_audited_with_the_fields_it_changed(registry, api, worker):
    case = api.register(worker, 1)["id"]
    api.amend(worker, case, phone="13800138001", aftercare_group="帮教小组",
              measures_in_place=True)
    event = last_event(registry)
    assert event.action == "update"
    assert set(event.fields.split(",")) == {"aftercare_group", "measures_in_place", "phone"}


# --- lists ---------------------------------------------------------------------------------


def test_needs_action(registry, client, api, worker):
    no_measures = api.register(worker, 1, measures_in_place=False)["id"]
    unplaced = api.register(worker, 2, measures_in_place=True)["id"]
    awaiting_escort = api.register(worker, 3, measures_in_place=True,
                                   escort_required=True)["id"]
    settled = api.register(worker, 4, measures_in_place=True)["id"]
    api.place(worker, settled, "placed", "self_employment", day(-30))
    escorted = api.register(worker, 5, measures_in_place=True, escort_required=True,
                            escorted_on=day(-100))["id"]
    api.place(worker, escorted, "not_needed")
    api.place(worker, awaiting_escort, "not_needed")
    period_over = api.register(worker, 6, released_on="2021-06-01", notice_received_on=None,
                               measures_in_place=False)["id"]
    closed = api.register(worker, 7, measures_in_place=False)["id"]
    api.close(worker, closed, day(-1), "died")
    sealed = api.register(worker, 8, juvenile=True, measures_in_place=False)["id"]

    assert api.listed(worker, needs_action="true") == {
        no_measures, unplaced, awaiting_escort, sealed}
    assert api.listed(worker, needs_action="true", purpose=None) == {
        no_measures, unplaced, awaiting_escort}
    assert api.listing(worker, needs_action="true")["total"] == 4
    api.amend(worker, awaiting_escort, escorted_on=day(-99))
    api.amend(worker, no_measures, measures_in_place=True)
    api.place(worker, no_measures, "placed", "study", day(-10))
    assert api.listed(worker, needs_action="true") == {unplaced, sealed}
    assert api.listed(worker, needs_action="false", purpose=None) == {
        no_measures, unplaced, awaiting_escort, settled, escorted, period_over, closed}


def test_list_filters_and_scope(registry, client, api, worker):
    county = make_user(registry, client, "justice", COUNTY)
    placed = api.register(worker, 1, measures_in_place=True)["id"]
    api.place(worker, placed, "placed", "employment", day(-10))
    waiting = api.register(worker, 2)["id"]
    ended = api.register(worker, 3, released_on="2020-01-01", notice_received_on=None)["id"]
    elsewhere = api.register(county, 4, code=COMMUNITY_B)["id"]
    assert api.listed(worker) == {placed, waiting, ended}
    assert api.listed(county) == {placed, waiting, ended, elsewhere}
    assert api.listed(county, jurisdiction=COMMUNITY_B) == {elsewhere}
    assert api.listed(worker, open="true") == {placed, waiting}
    assert api.listed(worker, open="false") == {ended}
    assert api.listed(worker, placement_status="placed") == {placed}
    assert api.listed(worker, placement_status="not_yet") == {waiting, ended}
    assert api.listed(worker, measures_in_place="true") == {placed}
    page = api.listing(county, page_size=2)
    assert (page["total"], len(page["items"])) == (4, 2)
    assert page["items"][0]["assistance"] == []
    for params in ({"jurisdiction": COMMUNITY_B}, {"placement_status": "homeless"},
                   {"page_size": 501}, {"open": "maybe"}):
        assert api.get("/releases", worker, params=params).status_code == 422, params


# --- juveniles, roles, scope, masking, audit -----------------------------------------------


def test_juvenile_cases_are_sealed_without_a_purpose(registry, client, api, worker):
    sealed = api.register(worker, 1, juvenile=True)["id"]
    plain = api.register(worker, 2)["id"]
    assert api.read(worker, sealed, purpose=None).status_code == 404
    assert last_event(registry).outcome == "denied"
    assert api.assist(worker, sealed, purpose=None).status_code == 404
    assert api.listed(worker, purpose=None) == {plain}
    assert api.listing(worker, purpose=None)["total"] == 1
    opened = api.read(worker, sealed)
    assert opened.status_code == 200 and opened.json()["juvenile"] is True
    assert api.assist(worker, sealed).status_code == 200
    assert api.listed(worker) == {sealed, plain}
    for role in ("corrections", "police"):
        other = make_user(registry, client, role, COUNTY)
        assert api.read(other, sealed).status_code == 404


def test_other_roles_see_nothing(registry, client, api, worker):
    case = api.register(worker, 1)["id"]
    before = counts(registry)
    for role in OTHER_ROLES:
        other = make_user(registry, client, role, COUNTY)
        assert api.read(other, case).status_code == 404, role
        event = last_event(registry)
        assert (event.outcome, event.role, event.record_id) == ("denied", role, case)
        assert api.read(other, case, purpose=None).status_code == 404
        assert api.assist(other, case).status_code == 404
        assert api.place(other, case, "not_needed").status_code == 404
        assert api.close(other, case, day(-1)).status_code == 404
        assert api.amend(other, case, measures_in_place=True).status_code == 404
        assert api.get("/releases", other).status_code == 403, role
        assert api.post("/releases", other, release_body(2)).status_code == 403
        event = last_event(registry)
        assert (event.outcome, event.role, event.kind) == ("denied", role, "release")
    assert counts(registry) == before


def test_a_neighbouring_office_cannot_see_the_case(registry, client, api, worker):
    case = api.register(worker, 1)["id"]
    neighbour = make_user(registry, client, "justice", COMMUNITY_B)
    assert api.read(neighbour, case).status_code == 404
    assert api.assist(neighbour, case).status_code == 404
    assert api.listed(neighbour) == set()
    assert api.read(worker, "01a22846-a20f-7a0c-87ce-e1e502facf3d").status_code == 404


def test_without_a_purpose_the_answer_is_masked(api, worker):
    case = api.register(worker, 1, aftercare_group="帮教小组")["id"]
    body = api.read(worker, case, purpose=None).json()
    expected = release_body(1)
    assert body["person"]["name"] == expected["name"][0] + "*"
    assert body["person"]["id_number"] == (expected["id_number"][:6] + "*" * 8
                                           + expected["id_number"][-4:])
    assert body["phone"] == expected["phone"][:3] + "****" + expected["phone"][-4:]
    assert body["releasing_institution"] == "浙***"
    assert body["aftercare_group"] == "帮***"
    assert body["masked"] == RELEASE_GROUPS
    assert (body["key_subject"], body["open"], body["aftercare_until"]) == (
        True, True, "2031-03-07")


def test_reads_and_lists_are_audited_with_fields_never_values(registry, api, worker):
    first = api.register(worker, 1)["id"]
    second = api.register(worker, 2)["id"]
    api.assist(worker, first, notes="介绍到本地工厂就业")
    api.read(worker, first)
    event = last_event(registry)
    assert (event.action, event.kind, event.outcome, event.record_id) == (
        "read", "release", "ok", first)
    assert event.purpose == PURPOSE and event.jurisdiction_code == COMMUNITY_A
    assert "person.name" in event.fields and "assistance.notes" in event.fields
    text = event.fields + event.refs + event.detail
    for value in (release_body(1)["name"], release_body(1)["id_number"],
                  release_body(1)["phone"], "浙江省第一监狱", "介绍到本地工厂就业"):
        assert value not in text
    api.listing(worker, purpose=None)
    event = last_event(registry)
    assert event.action == "list" and event.purpose is None
    assert f"release:{first}" in event.refs and f"release:{second}" in event.refs
    assert "person.name~masked" in event.fields
