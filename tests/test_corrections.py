"""Community corrections (社区矫正) end to end through the API: opening a case, the initial
report and its lateness, check-ins and the next due date, sanctions and their rules, status
changes, the check-in board at its boundaries, juvenile sealing, masking, scope and the audit
trail (registry/corrections/, registry/vault/corrections.py).

The clock is fixed at FIXED_NOW (2026-06-15 10:00 UTC) and every date below is written
relative to it. Every request goes through :class:`Api`, which asserts that nothing answers 500
and that each successful or denied request leaves exactly one audit event.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` state the behaviour we believe correct
for a defect found here; they start failing (XPASS) the day the defect is fixed.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from registry.corrections.schemas import BoardEntry, CaseCreate, CaseRead, CheckInIn, CheckInRead
from registry.models import AuditEvent, CheckIn, CorrectionsCase, Person, Sanction
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    PASSWORD,
    TOWN,
    CheckedApi,
    id_number,
    make_user,
)

TODAY = FIXED_NOW.date()  # 2026-06-15
PURPOSE = "supervision file 2026-031"
DIGITS = "一二三四五六七八九十"
OTHER_ROLES = ["police", "coordinator", "justice", "auditor", "leadership", "admin"]
CASE_GROUPS = ["birth", "case", "id_number", "name", "phone", "sanction"]


def day(offset: int) -> str:
    """The date ``offset`` days from the fixed today, as the API writes it."""
    return (TODAY + timedelta(days=offset)).isoformat()


def moment(offset: int, time: str = "09:00:00", zone: str = "+00:00") -> str:
    return f"{day(offset)}T{time}{zone}"


def case_body(seed: int = 1, *, code: str = COMMUNITY_A, **overrides) -> dict:
    """A probation case that took effect 40 days ago, reported 35 days ago, weekly check-ins
    with two days' grace; overrides replace fields (None sends null)."""
    body = {
        "name": f"李{DIGITS[seed % 10]}强",
        "id_number": id_number(500 + seed),
        "jurisdiction_code": code,
        "category": "probation",
        "deciding_body": "测试县人民法院",
        "judgment_ref": f"(2026)浙0199刑初{seed}号",
        "effective_on": day(-40),
        "supervision_start": day(-40),
        "supervision_end": day(325),
        "reported_on": day(-35),
        "check_in_interval_days": 7,
        "grace_days": 2,
        "phone": f"1390013{seed % 10000:04d}",
    }
    body.update(overrides)
    return body


def due_in(days: int, *, interval: int = 7) -> dict:
    """Overrides giving a reported case whose next check-in is due ``days`` from today
    (negative: that many days ago)."""
    return {"reported_on": day(days - interval), "check_in_interval_days": interval}


class Api(CheckedApi):
    purpose = PURPOSE

    # --- the corrections routes ----------------------------------------------------------

    def open(self, user, seed: int = 1, **overrides) -> dict:
        response = self.post("/corrections", user, case_body(seed, **overrides))
        assert response.status_code == 201, response.text
        return response.json()

    def read(self, user, case_id: str, **kwargs):
        return self.get(f"/corrections/{case_id}", user, **kwargs)

    def check_in(self, user, case_id: str, at: str | None = None, method: str | None = None,
                 **kwargs):
        body = {k: v for k, v in (("at", at), ("method", method)) if v is not None}
        return self.post(f"/corrections/{case_id}/check-ins", user, body, **kwargs)

    def report(self, user, case_id: str, reported_on: str, **kwargs):
        return self.post(f"/corrections/{case_id}/report", user, {"reported_on": reported_on},
                         **kwargs)

    def sanction(self, user, case_id: str, kind: str, grounds: str = "conduct",
                 decided_on: str | None = None, reason: str = "未按规定报告活动情况", **extra):
        body = {"kind": kind, "grounds": grounds, "decided_on": decided_on or day(-1),
                "reason": reason, **extra}
        return self.post(f"/corrections/{case_id}/sanctions", user, body)

    def status(self, user, case_id: str, status: str, on: str | None = None,
               reason: str | None = None, **kwargs):
        body = {"status": status, "on": on or day(0)}
        if reason is not None:
            body["reason"] = reason
        return self.post(f"/corrections/{case_id}/status", user, body, **kwargs)

    def board(self, user, *, purpose: str | None = PURPOSE, **params) -> dict:
        response = self.get("/corrections/board", user, purpose=purpose, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def listing(self, user, *, purpose: str | None = PURPOSE, **params) -> dict:
        response = self.get("/corrections", user, purpose=purpose, params=params)
        assert response.status_code == 200, response.text
        return response.json()


def error_of(response) -> dict:
    return response.json()["error"]


def count(registry, model, *where) -> int:
    with registry.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def counts(registry) -> tuple[int, ...]:
    return tuple(count(registry, model) for model in (CorrectionsCase, Person, CheckIn, Sanction))


def last_event(registry) -> AuditEvent:
    with registry.db.session() as session:
        event = session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
        session.expunge(event)
    return event


def ids(entries) -> list[str]:
    return [entry["id"] for entry in entries]


def on_board(board: dict) -> dict[str, str]:
    """Case id → the board section it is in."""
    return {entry["id"]: section for section in
            ("overdue", "due_today", "awaiting_report", "supervision_ended")
            for entry in board[section]}


def later(registry, client, user, days: int, hours: float = 0):
    """Move the fixed clock on; the old token has gone idle, so sign in again."""
    registry.clock.fixed = FIXED_NOW + timedelta(days=days, hours=hours)
    response = client.post("/auth/token", json={"username": user.username,
                                                "password": PASSWORD})
    assert response.status_code == 200, response.text
    return replace(user, headers={"Authorization": f"Bearer {response.json()['access_token']}"})


@pytest.fixture
def api(registry, client) -> Api:
    return Api(registry, client)


@pytest.fixture
def officer(registry, client):
    return make_user(registry, client, "corrections", COMMUNITY_A)


# --- opening a case ------------------------------------------------------------------------


def test_open_a_reported_case(api, officer):
    case = api.open(officer, 1)
    assert case["status"] == "active"
    assert case["category"] == "probation"
    assert case["effective_on"] == day(-40)
    assert case["report_due_on"] == day(-30)
    assert case["reported_on"] == day(-35)
    assert case["late_report"] is False
    assert case["next_due_on"] == day(-28)  # the report plus one interval
    assert case["last_check_in_at"] is None
    assert case["check_ins"] == [] and case["sanctions"] == []
    assert case["person"]["name"] == case_body(1)["name"]
    assert case["person"]["id_number"] == case_body(1)["id_number"]
    assert case["deciding_body"] == "测试县人民法院"
    assert case["judgment_ref"] == case_body(1)["judgment_ref"]
    assert case["phone"] == case_body(1)["phone"]
    assert case["masked"] == [] and case["hidden"] == []
    assert case["juvenile"] is False and case["officer"] is None


def test_open_a_case_awaiting_its_report(api, officer):
    case = api.open(officer, 1, effective_on=day(-3), supervision_start=day(-3),
                    reported_on=None)
    assert case["status"] == "awaiting_report"
    assert case["reported_on"] is None
    assert case["report_due_on"] == day(7)
    assert case["next_due_on"] is None
    assert case["late_report"] is False


def test_each_of_the_four_categories(api, officer):
    for seed, category in enumerate(("control", "probation", "parole", "outside_custody")):
        assert api.open(officer, seed, category=category)["category"] == category


def test_open_with_a_supervising_officer(registry, client, api, officer):
    other = make_user(registry, client, "corrections", TOWN)
    case = api.open(officer, 1, officer=other.username)
    assert case["officer"] == other.username


OPEN_REFUSALS = [
    ({"category": "detention"}, "category"),
    ({"category": "管制"}, "category"),
    ({"category": "community_service"}, "category"),
    ({"supervision_end": day(-41)}, "supervision_end"),
    ({"supervision_end": day(-40)}, "supervision_end"),
    ({"reported_on": day(-41)}, "reported_on"),
    ({"reported_on": day(1)}, "reported_on"),
    ({"effective_on": day(1), "supervision_start": day(1), "reported_on": None},
     "effective_on"),
    ({"check_in_interval_days": 0}, "check_in_interval_days"),
    ({"check_in_interval_days": 91}, "check_in_interval_days"),
    ({"grace_days": -1}, "grace_days"),
    ({"grace_days": 31}, "grace_days"),
    ({"officer": "nobody-here"}, "officer"),
    ({"location": "30.27,120.15"}, "location"),
    ({"gps_device": "T-100"}, "gps_device"),
    ({"id_number": "330199198503125018"}, "id_number"),
    ({"jurisdiction_code": "330199009009"}, "jurisdiction_code"),
]


def test_open_refusals_name_the_field_and_write_nothing(registry, api, officer):
    before = counts(registry)
    for overrides, field in OPEN_REFUSALS:
        response = api.post("/corrections", officer, case_body(1, **overrides))
        assert response.status_code == 422, (overrides, response.text)
        assert error_of(response)["field"] == field, overrides
    assert counts(registry) == before


def test_officer_must_be_an_in_scope_corrections_officer(registry, client, api, officer):
    before = counts(registry)
    for role, scope in (("police", COMMUNITY_A), ("corrections", COMMUNITY_B),
                        ("corrections", GRID_A1)):
        other = make_user(registry, client, role, scope)
        response = api.post("/corrections", officer, case_body(1, officer=other.username))
        assert response.status_code == 422, (role, scope)
        assert error_of(response)["field"] == "officer"
    assert counts(registry) == before


def test_open_outside_scope_is_a_refusal_on_the_record(registry, api, officer):
    before = counts(registry)
    events = api.events()
    response = api.post("/corrections", officer, case_body(1, code=COMMUNITY_B))
    assert response.status_code == 422
    assert error_of(response)["field"] == "jurisdiction_code"
    assert counts(registry) == before
    assert api.events() == events + 1
    event = last_event(registry)
    assert (event.outcome, event.action, event.kind) == ("denied", "create", "corrections")


# --- the initial report --------------------------------------------------------------------


def test_report_lateness_boundary(api, officer):
    for seed, (after, late) in enumerate(((0, False), (9, False), (10, False), (11, True),
                                          (15, True))):
        case = api.open(officer, seed, effective_on=day(-20), supervision_start=day(-20),
                        reported_on=None)
        reported_on = day(-20 + after)
        response = api.report(officer, case["id"], reported_on)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["late_report"] is late, after
        assert body["reported_on"] == reported_on
        assert body["report_due_on"] == day(-10)
        assert body["status"] == "active"
        assert body["next_due_on"] == day(-20 + after + 7)


def test_report_lateness_when_opened_reported(api, officer):
    for seed, (after, late) in enumerate(((10, False), (11, True))):
        case = api.open(officer, seed, effective_on=day(-20), supervision_start=day(-20),
                        reported_on=day(-20 + after))
        assert case["late_report"] is late, after


def test_report_refusals(registry, api, officer):
    case = api.open(officer, 1, effective_on=day(-20), supervision_start=day(-20),
                    reported_on=None)
    before = counts(registry)
    early = api.report(officer, case["id"], day(-21))
    assert early.status_code == 422 and error_of(early)["field"] == "reported_on"
    future = api.report(officer, case["id"], day(1))
    assert future.status_code == 422 and error_of(future)["field"] == "reported_on"
    assert api.read(officer, case["id"]).json()["status"] == "awaiting_report"
    assert api.report(officer, case["id"], day(-15)).status_code == 200
    again = api.report(officer, case["id"], day(-14))
    assert again.status_code == 409
    assert api.read(officer, case["id"]).json()["reported_on"] == day(-15)
    assert counts(registry) == before


# --- check-ins -----------------------------------------------------------------------------


def test_check_in_moves_the_due_date_to_check_in_plus_interval(api, officer):
    case = api.open(officer, 1, check_in_interval_days=10)
    response = api.check_in(officer, case["id"], moment(-2), "phone")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_due_on"] == day(8)
    assert body["check_ins"] == [{"at": body["check_ins"][0]["at"], "method": "phone"}]
    assert datetime.fromisoformat(body["last_check_in_at"]).date().isoformat() == day(-2)
    again = api.read(officer, case["id"]).json()
    assert again["next_due_on"] == day(8)
    assert len(again["check_ins"]) == 1


def test_check_in_defaults_to_now_and_in_person(api, officer):
    case = api.open(officer, 1)
    body = api.check_in(officer, case["id"]).json()
    assert body["next_due_on"] == day(7)
    assert body["check_ins"][0]["method"] == "in_person"
    assert datetime.fromisoformat(body["last_check_in_at"]) == FIXED_NOW


def test_check_in_methods(api, officer):
    case = api.open(officer, 1)
    for hour, method in enumerate(("in_person", "phone", "video")):
        body = api.check_in(officer, case["id"], moment(-1, f"0{hour + 7}:00:00"), method).json()
        assert body["check_ins"][0]["method"] == method


def test_a_back_dated_check_in_does_not_move_the_due_date_back(registry, api, officer):
    case = api.open(officer, 1)
    api.check_in(officer, case["id"], moment(-1))
    body = api.check_in(officer, case["id"], moment(-5), "video").json()
    assert body["next_due_on"] == day(6)
    assert datetime.fromisoformat(body["last_check_in_at"]).date().isoformat() == day(-1)
    assert [c["method"] for c in body["check_ins"]] == ["in_person", "video"]  # latest first
    assert count(registry, CheckIn, CheckIn.case_id == uuid.UUID(case["id"])) == 2
    assert api.read(officer, case["id"]).json()["next_due_on"] == day(6)


def test_a_later_check_in_on_the_same_day_keeps_the_due_date(api, officer):
    case = api.open(officer, 1)
    api.check_in(officer, case["id"], moment(-1, "08:00:00"))
    body = api.check_in(officer, case["id"], moment(-1, "17:30:00")).json()
    assert body["next_due_on"] == day(6)
    assert len(body["check_ins"]) == 2


CHECK_IN_REFUSALS = [
    ({"at": moment(1)}, 422, "at"),
    ({"at": f"{day(0)}T10:00:01+00:00"}, 422, "at"),
    ({"at": f"{day(-1)}T09:00:00"}, 422, "at"),
    ({"at": moment(-36)}, 422, "at"),  # before the initial report
    ({"method": "gps"}, 422, "method"),
    ({"method": "electronic_monitoring"}, 422, "method"),
    ({"location": "30.27,120.15"}, 422, "location"),
    ({"latitude": 30.27, "longitude": 120.15}, 422, "latitude"),
]


def test_check_in_refusals(registry, api, officer):
    case = api.open(officer, 1)
    before = counts(registry)
    for body, status, field in CHECK_IN_REFUSALS:
        response = api.post(f"/corrections/{case['id']}/check-ins", officer, body)
        assert response.status_code == status, (body, response.text)
        assert error_of(response)["field"] == field, body
    assert counts(registry) == before
    assert api.read(officer, case["id"]).json()["next_due_on"] == day(-28)


def test_no_check_in_before_the_initial_report(registry, api, officer):
    case = api.open(officer, 1, effective_on=day(-3), supervision_start=day(-3),
                    reported_on=None)
    before = counts(registry)
    assert api.check_in(officer, case["id"], moment(-1)).status_code == 409
    assert counts(registry) == before


def test_a_check_in_a_few_hours_later_but_on_a_later_local_date_advances_the_due_date(
        registry, api, officer):
    """Times are stored as instants (UTC) on both databases; due dates follow the offices'
    local date (the timezone setting, here China time)."""
    registry.clock.tz = ZoneInfo("Asia/Shanghai")
    case = api.open(officer, 1)
    first = api.check_in(officer, case["id"], f"{day(-1)}T20:00:00+08:00").json()
    assert first["next_due_on"] == day(6)
    # 01:00 Beijing time on the next day: 5 hours after the first, a later local date.
    body = api.check_in(officer, case["id"], f"{day(0)}T01:00:00+08:00").json()
    assert body["next_due_on"] == day(7)
    read = api.read(officer, case["id"]).json()
    assert datetime.fromisoformat(read["check_ins"][-1]["at"]) == datetime.fromisoformat(
        f"{day(-1)}T20:00:00+08:00")


def test_amending_the_interval_to_its_own_value_keeps_the_due_date(registry, api, officer):
    registry.clock.tz = ZoneInfo("Asia/Shanghai")
    case = api.open(officer, 1)
    body = api.check_in(officer, case["id"], f"{day(0)}T01:00:00+08:00").json()
    assert body["next_due_on"] == day(7)
    amended = api.patch(f"/corrections/{case['id']}", officer, {"check_in_interval_days": 7})
    assert amended.status_code == 200
    assert amended.json()["next_due_on"] == day(7)


def test_the_same_moment_gives_the_same_due_date_however_it_is_written(registry, client, api,
                                                                       officer):
    implicit = api.open(officer, 1)["id"]
    explicit = api.open(officer, 2)["id"]
    officer = later(registry, client, officer, 0, hours=13.5)  # 2026-06-15 23:30 UTC
    by_default = api.check_in(officer, implicit).json()
    written = api.check_in(officer, explicit, f"{day(1)}T07:30:00+08:00").json()
    assert by_default["last_check_in_at"] is not None
    assert by_default["next_due_on"] == written["next_due_on"]


# --- the check-in board --------------------------------------------------------------------


def test_board_boundaries(api, officer):
    """Due today, within grace, one day past grace, not yet due, awaiting the report on time
    and late, past the end of supervision."""
    due_today = api.open(officer, 1, **due_in(0))["id"]
    in_grace = api.open(officer, 2, **due_in(-2))["id"]  # grace 2: the last day of grace
    past_grace = api.open(officer, 3, **due_in(-3))["id"]
    not_due = api.open(officer, 4, **due_in(1))["id"]
    no_grace = api.open(officer, 5, grace_days=0, **due_in(-1))["id"]
    await_on_time = api.open(officer, 6, effective_on=day(-10), supervision_start=day(-10),
                             reported_on=None)["id"]
    await_late = api.open(officer, 7, effective_on=day(-11), supervision_start=day(-11),
                          reported_on=None)["id"]
    ended = api.open(officer, 8, supervision_end=day(-1), **due_in(3))["id"]
    ends_today = api.open(officer, 9, supervision_end=day(0), **due_in(3))["id"]

    board = api.board(officer)
    assert board["as_of"] == day(0)
    sections = on_board(board)
    assert sections == {
        due_today: "due_today", in_grace: "due_today", past_grace: "overdue",
        no_grace: "overdue", await_on_time: "awaiting_report", await_late: "awaiting_report",
        ended: "supervision_ended"}
    assert not_due not in sections and ends_today not in sections
    entries = {e["id"]: e for section in ("overdue", "due_today", "awaiting_report",
                                          "supervision_ended") for e in board[section]}
    assert (entries[due_today]["due_on"], entries[due_today]["days_late"],
            entries[due_today]["overdue"]) == (day(0), 0, False)
    assert (entries[in_grace]["days_late"], entries[in_grace]["overdue"]) == (2, False)
    assert (entries[past_grace]["days_late"], entries[past_grace]["overdue"]) == (3, True)
    assert (entries[no_grace]["days_late"], entries[no_grace]["overdue"]) == (1, True)
    assert (entries[await_on_time]["due_on"], entries[await_on_time]["days_late"],
            entries[await_on_time]["overdue"]) == (day(0), 0, False)
    assert (entries[await_late]["due_on"], entries[await_late]["days_late"],
            entries[await_late]["overdue"]) == (day(-1), 1, True)
    assert entries[ended]["days_late"] == -3
    assert entries[due_today]["status"] == "active"
    assert entries[due_today]["category"] == "probation"
    assert entries[due_today]["jurisdiction_code"] == COMMUNITY_A


def test_overdue_exactly_one_day_past_the_grace(api, officer):
    expected = {}
    for seed, grace in enumerate((0, 1, 5, 30)):
        last_in_grace = api.open(officer, 2 * seed, grace_days=grace, **due_in(-grace))["id"]
        first_overdue = api.open(officer, 2 * seed + 1, grace_days=grace,
                                 **due_in(-grace - 1))["id"]
        expected[last_in_grace] = ("due_today", grace, False)
        expected[first_overdue] = ("overdue", grace + 1, True)
    board = api.board(officer)
    found = {e["id"]: (section, e["days_late"], e["overdue"])
             for section in ("overdue", "due_today") for e in board[section]}
    assert found == expected


def test_board_sorted_most_late_first(api, officer):
    three = api.open(officer, 1, **due_in(-3))["id"]
    eighteen = api.open(officer, 2, **due_in(-18))["id"]
    eight = api.open(officer, 3, **due_in(-8))["id"]
    today = api.open(officer, 4, **due_in(0))["id"]
    one = api.open(officer, 5, **due_in(-1))["id"]
    board = api.board(officer)
    assert ids(board["overdue"]) == [eighteen, eight, three]
    assert [e["days_late"] for e in board["overdue"]] == [18, 8, 3]
    assert ids(board["due_today"]) == [one, today]


def test_awaiting_report_sorted_most_late_first(api, officer):
    opened = {offset: api.open(officer, seed, effective_on=day(-offset),
                               supervision_start=day(-offset), reported_on=None)["id"]
              for seed, offset in ((1, 12), (2, 30), (3, 2))}
    board = api.board(officer)
    assert ids(board["awaiting_report"]) == [opened[30], opened[12], opened[2]]
    assert [e["days_late"] for e in board["awaiting_report"]] == [20, 2, -8]
    assert [e["overdue"] for e in board["awaiting_report"]] == [True, True, False]


def test_board_follows_the_clock(registry, client, api, officer):
    case = api.open(officer, 1, **due_in(0))["id"]
    assert on_board(api.board(officer)) == {case: "due_today"}
    officer = later(registry, client, officer, 2)
    assert api.board(officer)["due_today"][0]["days_late"] == 2
    officer = later(registry, client, officer, 3)
    board = api.board(officer)
    assert board["as_of"] == day(3)
    assert on_board(board) == {case: "overdue"}
    assert board["overdue"][0]["days_late"] == 3


def test_a_check_in_takes_a_case_off_the_board(api, officer):
    case = api.open(officer, 1, **due_in(-5))["id"]
    assert on_board(api.board(officer)) == {case: "overdue"}
    api.check_in(officer, case, moment(0, "08:00:00"))
    assert on_board(api.board(officer)) == {}


def test_a_report_moves_a_case_from_awaiting_to_the_schedule(api, officer):
    case = api.open(officer, 1, effective_on=day(-20), supervision_start=day(-20),
                    reported_on=None)["id"]
    assert on_board(api.board(officer)) == {case: "awaiting_report"}
    api.report(officer, case, day(-7))
    board = api.board(officer)
    assert on_board(board) == {case: "due_today"}
    assert board["due_today"][0]["due_on"] == day(0)


def test_absconded_cases_stay_on_the_board_and_closed_ones_leave(api, officer):
    absconded = api.open(officer, 1, **due_in(-4))["id"]
    api.status(officer, absconded, "absconded", on=day(-1))
    ended = api.open(officer, 2, **due_in(-4))["id"]
    api.status(officer, ended, "ended", reason="矫正期满")
    terminated = api.open(officer, 3, **due_in(-4))["id"]
    api.status(officer, terminated, "terminated", reason="收监执行")
    board = api.board(officer)
    assert on_board(board) == {absconded: "overdue"}
    assert board["overdue"][0]["status"] == "absconded"


def test_more_grace_takes_a_case_out_of_overdue(api, officer):
    case = api.open(officer, 1, **due_in(-4))["id"]
    assert on_board(api.board(officer)) == {case: "overdue"}
    assert api.patch(f"/corrections/{case}", officer, {"grace_days": 4}).status_code == 200
    board = api.board(officer)
    assert on_board(board) == {case: "due_today"}
    assert board["due_today"][0]["days_late"] == 4


def test_board_is_scoped_and_mine_means_my_cases(registry, client, api, officer):
    county = make_user(registry, client, "corrections", COUNTY)
    colleague = make_user(registry, client, "corrections", COMMUNITY_A)
    mine = api.open(officer, 1, officer=officer.username, **due_in(-3))["id"]
    theirs = api.open(officer, 2, officer=colleague.username, **due_in(-4))["id"]
    nobodys = api.open(officer, 3, **due_in(0))["id"]
    elsewhere = api.open(county, 4, code=COMMUNITY_B, **due_in(-9))["id"]
    assert set(on_board(api.board(officer))) == {mine, theirs, nobodys}
    assert set(on_board(api.board(county))) == {mine, theirs, nobodys, elsewhere}
    assert set(on_board(api.board(officer, mine="true"))) == {mine}
    entry = api.board(officer, mine="true")["overdue"][0]
    assert entry["officer"] == officer.username


def test_board_names_are_masked_without_a_purpose(api, officer):
    case = api.open(officer, 1, **due_in(-3))["id"]
    assert api.board(officer)["overdue"][0]["name"] == case_body(1)["name"]
    masked = api.board(officer, purpose=None)["overdue"]
    assert [e["id"] for e in masked] == [case]
    assert masked[0]["name"] == case_body(1)["name"][0] + "*"


def test_board_entries_carry_no_location_or_personal_numbers():
    assert set(BoardEntry.model_fields) == {
        "id", "name", "jurisdiction_code", "category", "status", "officer", "due_on",
        "days_late", "overdue"}


def test_board_is_one_audit_event_naming_every_case(registry, api, officer):
    first = api.open(officer, 1, **due_in(-3))["id"]
    second = api.open(officer, 2, **due_in(0))["id"]
    api.board(officer)
    event = last_event(registry)
    assert (event.action, event.kind, event.outcome) == ("board", "corrections", "ok")
    assert event.purpose == PURPOSE
    assert f"corrections:{first}" in event.refs and f"corrections:{second}" in event.refs
    assert case_body(1)["name"] not in event.refs + event.fields + event.detail


# --- sanctions -----------------------------------------------------------------------------


def test_a_sanction_is_recorded_with_its_reason_and_reference(api, officer):
    case = api.open(officer, 1)["id"]
    response = api.sanction(officer, case, "admonition", decided_on=day(-2),
                            reason="未经批准外出", decision_ref="浙0199矫训〔2026〕3号")
    assert response.status_code == 200, response.text
    assert response.json()["sanctions"] == [{
        "kind": "admonition", "grounds": "conduct", "decided_on": day(-2),
        "reason": "未经批准外出", "decision_ref": "浙0199矫训〔2026〕3号"}]


def test_a_warning_on_two_admonitions_needs_two_prior_admonitions(registry, api, officer):
    case = api.open(officer, 1)["id"]
    for prior in range(2):
        before = counts(registry)
        refused = api.sanction(officer, case, "warning", "two_admonitions")
        assert refused.status_code == 422, refused.text
        assert error_of(refused)["field"] == "grounds"
        assert counts(registry) == before
        assert api.sanction(officer, case, "admonition", decided_on=day(-10 + prior)
                            ).status_code == 200
    granted = api.sanction(officer, case, "warning", "two_admonitions")
    assert granted.status_code == 200
    assert [s["kind"] for s in granted.json()["sanctions"]] == [
        "admonition", "admonition", "warning"]


def test_prior_sanctions_of_another_case_do_not_count(api, officer):
    other = api.open(officer, 2)["id"]
    for _ in range(2):
        api.sanction(officer, other, "admonition")
    case = api.open(officer, 1)["id"]
    assert api.sanction(officer, case, "warning", "two_admonitions").status_code == 422


def test_grounds_a_sanction_does_not_allow(registry, api, officer):
    case = api.open(officer, 1, category="parole")["id"]
    for _ in range(2):
        api.sanction(officer, case, "warning")
        api.sanction(officer, case, "admonition")
    before = counts(registry)
    for kind, grounds in (("admonition", "two_admonitions"), ("admonition", "two_warnings"),
                          ("warning", "two_warnings"), ("penalty_proposal", "two_admonitions"),
                          ("penalty_proposal", "two_warnings"),
                          ("revocation_proposal", "two_admonitions")):
        response = api.sanction(officer, case, kind, grounds)
        assert response.status_code == 422, (kind, grounds)
        assert error_of(response)["field"] == "grounds"
    assert counts(registry) == before


def test_revocation_only_for_probation_and_parole_custody_only_outside_prison(registry, api,
                                                                             officer):
    allowed = {"probation": {"revocation_proposal"}, "parole": {"revocation_proposal"},
               "control": set(), "outside_custody": {"custody_proposal"}}
    for seed, category in enumerate(allowed):
        case = api.open(officer, seed, category=category)["id"]
        for kind in ("revocation_proposal", "custody_proposal"):
            before = counts(registry)
            response = api.sanction(officer, case, kind)
            if kind in allowed[category]:
                assert response.status_code == 200, (category, kind)
                assert response.json()["sanctions"][-1]["kind"] == kind
            else:
                assert response.status_code == 422, (category, kind)
                assert error_of(response)["field"] == "kind"
                assert counts(registry) == before


def test_revocation_on_two_warnings_needs_two_prior_warnings(api, officer):
    case = api.open(officer, 1, category="probation")["id"]
    api.sanction(officer, case, "warning")
    refused = api.sanction(officer, case, "revocation_proposal", "two_warnings")
    assert refused.status_code == 422 and error_of(refused)["field"] == "grounds"
    api.sanction(officer, case, "warning")
    assert api.sanction(officer, case, "revocation_proposal", "two_warnings").status_code == 200


def test_penalty_proposal_on_conduct(api, officer):
    case = api.open(officer, 1, category="control")["id"]
    assert api.sanction(officer, case, "penalty_proposal").status_code == 200


def test_sanction_refusals(registry, api, officer):
    case = api.open(officer, 1)["id"]
    before = counts(registry)
    for overrides, field in (({"decided_on": day(-41)}, "decided_on"),
                             ({"decided_on": day(1)}, "decided_on"),
                             ({"kind": "curfew"}, "kind"),
                             ({"kind": "electronic_tag"}, "kind"),
                             ({"grounds": "repeated"}, "grounds"),
                             ({"reason": ""}, "reason"),
                             ({"location": "30.27,120.15"}, "location")):
        body = {"kind": "admonition", "grounds": "conduct", "decided_on": day(-1),
                "reason": "未按规定报告", **overrides}
        response = api.post(f"/corrections/{case}/sanctions", officer, body)
        assert response.status_code == 422, (overrides, response.text)
        assert error_of(response)["field"] == field, overrides
    assert counts(registry) == before


def test_no_sanction_before_the_report(registry, api, officer):
    case = api.open(officer, 1, effective_on=day(-3), supervision_start=day(-3),
                    reported_on=None)["id"]
    before = counts(registry)
    assert api.sanction(officer, case, "admonition").status_code == 409
    assert counts(registry) == before


def test_sanction_history_is_appended_never_overwritten(registry, api, officer):
    case = api.open(officer, 1, category="outside_custody")["id"]
    first = api.sanction(officer, case, "admonition", decided_on=day(-20), reason="第一次",
                         decision_ref="训1").json()["sanctions"]
    second = api.sanction(officer, case, "admonition", decided_on=day(-10), reason="第二次"
                          ).json()["sanctions"]
    assert second[0] == first[0]
    # A back-dated one takes its place by date; the others are unchanged.
    third = api.sanction(officer, case, "warning", decided_on=day(-15), reason="补录"
                         ).json()["sanctions"]
    assert [s["reason"] for s in third] == ["第一次", "补录", "第二次"]
    assert third[0] == first[0] and third[2] == second[1]
    fourth = api.sanction(officer, case, "admonition", decided_on=day(-10), reason="同日"
                          ).json()["sanctions"]
    assert [s["reason"] for s in fourth] == ["第一次", "补录", "第二次", "同日"]
    assert count(registry, Sanction, Sanction.case_id == uuid.UUID(case)) == 4
    assert api.read(officer, case).json()["sanctions"] == fourth


def test_no_route_edits_or_deletes_sanctions_or_check_ins(client):
    routes = [(route.path, method) for route in client.app.routes
              if isinstance(route, APIRoute) and route.path.startswith("/corrections")
              for method in route.methods]
    assert not [r for r in routes if r[1] in ("PUT", "DELETE")]
    assert not [r for r in routes if ("sanction" in r[0] or "check-in" in r[0])
                and r[1] != "POST"]


def test_sanction_reasons_are_masked_without_a_purpose(api, officer):
    case = api.open(officer, 1)["id"]
    api.sanction(officer, case, "admonition", reason="未经批准外出", decision_ref="训1")
    masked = api.read(officer, case, purpose=None).json()["sanctions"][0]
    assert masked["reason"] == "未***"
    assert masked["decision_ref"] == "训***"
    assert masked["kind"] == "admonition"


# --- status --------------------------------------------------------------------------------


def test_absconded_then_a_check_in_returns_to_active(registry, api, officer):
    case = api.open(officer, 1)["id"]
    absconded = api.status(officer, case, "absconded", on=day(-2))
    assert absconded.status_code == 200
    assert absconded.json()["status"] == "absconded"
    assert absconded.json()["ended_on"] is None
    body = api.check_in(officer, case, moment(0, "08:00:00")).json()
    assert body["status"] == "active"
    assert body["next_due_on"] == day(7)
    event = last_event(registry)
    assert event.action == "check_in" and "returned" in event.detail


def test_absconded_then_returned_by_a_status_change(api, officer):
    case = api.open(officer, 1)["id"]
    api.status(officer, case, "absconded", on=day(-2))
    back = api.status(officer, case, "active", on=day(-1))
    assert back.status_code == 200 and back.json()["status"] == "active"


def test_ending_needs_a_reason(registry, api, officer):
    case = api.open(officer, 1)["id"]
    before = counts(registry)
    refused = api.status(officer, case, "ended")
    assert refused.status_code == 422
    assert error_of(refused)["field"] == "reason"
    read = api.read(officer, case).json()
    assert read["status"] == "active" and read["ended_on"] is None
    assert read["next_due_on"] == day(-28)
    assert counts(registry) == before


def test_ending_or_terminating_closes_the_case(api, officer):
    for seed, final in enumerate(("ended", "terminated")):
        case = api.open(officer, seed)["id"]
        response = api.status(officer, case, final, on=day(-1), reason="矫正期满")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == final
        assert body["ended_on"] == day(-1)
        assert body["end_reason"] == "矫正期满"
        assert body["next_due_on"] is None


def test_nothing_after_the_end(registry, api, officer):
    case = api.open(officer, 1)["id"]
    api.sanction(officer, case, "admonition")
    api.status(officer, case, "ended", on=day(-1), reason="矫正期满")
    before = counts(registry)
    assert api.check_in(officer, case, moment(0, "08:00:00")).status_code == 409
    assert api.sanction(officer, case, "admonition").status_code == 409
    assert api.report(officer, case, day(-1)).status_code == 409
    assert api.patch(f"/corrections/{case}", officer, {"grace_days": 5}).status_code == 409
    for status in ("active", "absconded", "ended", "terminated", "awaiting_report"):
        assert api.status(officer, case, status, reason="再次").status_code == 409
    read = api.read(officer, case).json()
    assert (read["status"], read["ended_on"], read["grace_days"]) == ("ended", day(-1), 2)
    assert len(read["sanctions"]) == 1 and read["check_ins"] == []
    assert counts(registry) == before


def test_status_transitions(api, officer):
    awaiting = api.open(officer, 1, effective_on=day(-3), supervision_start=day(-3),
                        reported_on=None)["id"]
    active = api.open(officer, 2)["id"]
    absconded = api.open(officer, 3)["id"]
    api.status(officer, absconded, "absconded", on=day(-1))
    for case, start, refused in (
            (awaiting, "awaiting_report", ("absconded", "active", "ended", "awaiting_report")),
            (active, "active", ("active", "awaiting_report")),
            (absconded, "absconded", ("absconded", "awaiting_report"))):
        for target in refused:
            response = api.status(officer, case, target, reason="依法处理")
            assert response.status_code == 409, (start, target)
            assert error_of(response)["field"] == "status"
        assert api.read(officer, case).json()["status"] == start
    assert api.status(officer, awaiting, "terminated", reason="撤销").json()["status"] == (
        "terminated")
    assert api.status(officer, absconded, "ended", reason="期满").json()["status"] == "ended"


def test_status_date_rules(api, officer):
    case = api.open(officer, 1)["id"]
    for on in (day(-41), day(1)):
        response = api.status(officer, case, "absconded", on=on)
        assert response.status_code == 422 and error_of(response)["field"] == "on"
    assert api.read(officer, case).json()["status"] == "active"


# --- amending ------------------------------------------------------------------------------


def test_amend_interval_recomputes_from_the_last_check_in(api, officer):
    case = api.open(officer, 1)["id"]
    api.check_in(officer, case, moment(-3))
    body = api.patch(f"/corrections/{case}", officer, {"check_in_interval_days": 14}).json()
    assert body["check_in_interval_days"] == 14
    assert body["next_due_on"] == day(11)


def test_amend_interval_without_check_ins_counts_from_the_report(api, officer):
    case = api.open(officer, 1)["id"]
    body = api.patch(f"/corrections/{case}", officer, {"check_in_interval_days": 30}).json()
    assert body["next_due_on"] == day(-5)


def test_amend_officer_end_and_phone(registry, client, api, officer):
    case = api.open(officer, 1)["id"]
    body = api.patch(f"/corrections/{case}", officer, {
        "officer": officer.username, "supervision_end": day(400),
        "phone": "13800138000"}).json()
    assert (body["officer"], body["supervision_end"], body["phone"]) == (
        officer.username, day(400), "13800138000")
    event = last_event(registry)
    assert event.action == "update"
    assert set(event.fields.split(",")) >= {"officer", "supervision_end", "phone"}
    assert "13800138000" not in event.fields + event.detail


def test_amend_refusals(api, officer):
    case = api.open(officer, 1)["id"]
    for change, field in (({"supervision_end": day(-40)}, "supervision_end"),
                          ({"supervision_end": day(-50)}, "supervision_end"),
                          ({"officer": "nobody-here"}, "officer"),
                          ({"check_in_interval_days": 0}, "check_in_interval_days"),
                          ({"grace_days": 5, "supervision_end": day(-41)}, "supervision_end"),
                          ({"status": "ended"}, "status"),
                          ({"category": "parole"}, "category")):
        response = api.patch(f"/corrections/{case}", officer, change)
        assert response.status_code == 422, change
        assert error_of(response)["field"] == field
    read = api.read(officer, case).json()
    assert (read["supervision_end"], read["status"], read["category"], read["grace_days"]) == (
        day(325), "active", "probation", 2)


# --- juveniles -----------------------------------------------------------------------------


def test_juvenile_cases_are_sealed_without_a_purpose(registry, api, officer):
    sealed = api.open(officer, 1, juvenile=True, **due_in(-3))["id"]
    plain = api.open(officer, 2, **due_in(-4))["id"]
    missing = api.read(officer, sealed, purpose=None)
    assert missing.status_code == 404
    assert last_event(registry).outcome == "denied"
    assert api.check_in(officer, sealed, moment(-1), purpose=None).status_code == 404
    assert api.sanction(officer, sealed, "admonition").status_code == 200  # with a purpose
    assert [i["id"] for i in api.listing(officer, purpose=None)["items"]] == [plain]
    assert api.listing(officer, purpose=None)["total"] == 1
    assert set(on_board(api.board(officer, purpose=None))) == {plain}

    opened = api.read(officer, sealed)
    assert opened.status_code == 200 and opened.json()["juvenile"] is True
    assert {i["id"] for i in api.listing(officer)["items"]} == {sealed, plain}
    assert set(on_board(api.board(officer))) == {sealed, plain}


def test_juvenile_cases_stay_sealed_to_other_roles_even_with_a_purpose(registry, client, api,
                                                                       officer):
    sealed = api.open(officer, 1, juvenile=True)["id"]
    for role in ("police", "justice", "coordinator"):
        other = make_user(registry, client, role, COUNTY)
        assert api.read(other, sealed).status_code == 404
        assert api.get("/corrections", other).status_code == 403


# --- roles, scope, masking, audit ----------------------------------------------------------


def test_other_roles_see_nothing(registry, client, api, officer):
    case = api.open(officer, 1, **due_in(-3))["id"]
    before = counts(registry)
    for role in OTHER_ROLES:
        other = make_user(registry, client, role, COUNTY)
        assert api.read(other, case).status_code == 404, role
        event = last_event(registry)
        assert (event.outcome, event.role, event.record_id) == ("denied", role, case)
        assert api.read(other, case, purpose=None).status_code == 404
        assert api.check_in(other, case, moment(-1)).status_code == 404
        assert api.report(other, case, day(-1)).status_code == 404
        assert api.sanction(other, case, "admonition").status_code == 404
        assert api.status(other, case, "absconded", on=day(-1)).status_code == 404
        assert api.patch(f"/corrections/{case}", other, {"grace_days": 5}).status_code == 404
        assert api.get("/corrections", other).status_code == 403, role
        assert api.get("/corrections/board", other).status_code == 403
        assert api.post("/corrections", other, case_body(2)).status_code == 403
        event = last_event(registry)
        assert (event.outcome, event.role, event.kind) == ("denied", role, "corrections")
    assert counts(registry) == before


def test_a_neighbouring_office_cannot_see_the_case(registry, client, api, officer):
    case = api.open(officer, 1)["id"]
    neighbour = make_user(registry, client, "corrections", COMMUNITY_B)
    county = make_user(registry, client, "corrections", COUNTY)
    assert api.read(neighbour, case).status_code == 404
    assert api.check_in(neighbour, case, moment(-1)).status_code == 404
    assert api.listing(neighbour)["items"] == []
    assert api.read(county, case).status_code == 200
    unknown = api.read(officer, "01a22846-a20f-7a0c-87ce-e1e502facf3d")
    assert unknown.status_code == 404


def test_without_a_purpose_the_answer_is_masked(api, officer):
    case = api.open(officer, 1)["id"]
    body = api.read(officer, case, purpose=None).json()
    expected = case_body(1)
    assert body["person"]["name"] == expected["name"][0] + "*"
    assert body["person"]["id_number"] == (expected["id_number"][:6] + "*" * 8
                                           + expected["id_number"][-4:])
    assert body["person"]["birth_date"] == "1985-**-**"
    assert body["phone"] == expected["phone"][:3] + "****" + expected["phone"][-4:]
    assert body["deciding_body"] == "测***"
    assert body["judgment_ref"] == expected["judgment_ref"][0] + "***"
    assert body["masked"] == CASE_GROUPS
    assert body["status"] == "active" and body["next_due_on"] == day(-28)
    listed = api.listing(officer, purpose=None)["items"][0]
    assert listed["person"]["name"] == expected["name"][0] + "*"
    assert listed["masked"] == CASE_GROUPS


def test_a_read_is_audited_with_fields_and_purpose_never_values(registry, api, officer):
    case = api.open(officer, 1)["id"]
    api.read(officer, case)
    event = last_event(registry)
    assert (event.action, event.kind, event.outcome) == ("read", "corrections", "ok")
    assert event.record_id == case
    assert event.purpose == PURPOSE
    assert event.jurisdiction_code == COMMUNITY_A
    assert "person.name" in event.fields and "deciding_body" in event.fields
    text = event.fields + event.refs + event.detail
    for value in (case_body(1)["name"], case_body(1)["id_number"], case_body(1)["phone"],
                  "测试县人民法院"):
        assert value not in text
    api.read(officer, case, purpose=None)
    assert "person.name~masked" in last_event(registry).fields


def test_a_list_event_names_every_case_shown(registry, api, officer):
    first = api.open(officer, 1)["id"]
    second = api.open(officer, 2)["id"]
    api.listing(officer)
    event = last_event(registry)
    assert event.action == "list"
    assert f"corrections:{first}" in event.refs and f"corrections:{second}" in event.refs


# --- lists ---------------------------------------------------------------------------------


def test_list_filters(api, officer, registry, client):
    county = make_user(registry, client, "corrections", COUNTY)
    parole = api.open(officer, 1, category="parole")["id"]
    waiting = api.open(officer, 2, effective_on=day(-3), supervision_start=day(-3),
                       reported_on=None)["id"]
    elsewhere = api.open(county, 3, code=COMMUNITY_B)["id"]
    everything = api.listing(county)
    assert everything["total"] == 3
    assert {i["id"] for i in everything["items"]} == {parole, waiting, elsewhere}
    assert [i["id"] for i in api.listing(county, category="parole")["items"]] == [parole]
    assert [i["id"] for i in api.listing(county, status="awaiting_report")["items"]] == [
        waiting]
    assert [i["id"] for i in api.listing(county, jurisdiction=COMMUNITY_B)["items"]] == [
        elsewhere]
    assert api.get("/corrections", officer, params={"jurisdiction": COMMUNITY_B}
                   ).status_code == 422
    assert api.get("/corrections", officer, params={"category": "detention"}).status_code == 422
    items = api.listing(county)["items"]
    assert all(item["check_ins"] == [] and item["sanctions"] == [] for item in items)


def test_no_location_anywhere_in_the_schemas_or_tables():
    words = ("location", "latitude", "longitude", "lat", "lng", "gps", "geo", "position",
             "coordinates", "address", "device", "track")
    names = set(CaseCreate.model_fields) | set(CaseRead.model_fields) | set(
        CheckInIn.model_fields) | set(CheckInRead.model_fields)
    names |= {c.name for model in (CorrectionsCase, CheckIn, Sanction)
              for c in model.__table__.columns}
    assert not [n for n in names for w in words if w in n.lower().split("_")]
