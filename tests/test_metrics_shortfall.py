"""The targets' follow-up parts, on both databases: the shortfall lists (which records keep a
node below target, and why), door-to-door survey baselines, the staffing area setting and the
rental register's kept completeness (with the migration that fills it for old rows).

Records are filed through the services by the office owning each register (the ``County``
builder of tests/test_metrics.py); lists and baselines are read and written as each role, over
the service, the API and the CLI.

Where the implementation is believed wrong, the test states the correct expectation and is
marked ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import date, timedelta

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from pydantic import ValidationError
from sqlalchemy import select, update

from registry.clock import Clock
from registry.config import REPO_ROOT, Settings
from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate
from registry.metrics import service
from registry.metrics.schemas import BaselineIn, ShortfallPage
from registry.models import AuditEvent, RentalProperty
from registry.releases import service as releases
from registry.releases.schemas import ReleaseCreate
from registry.security.keys import Keyring
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    GRID_A2,
    GRID_B1,
    TOWN,
    TREE,
    CheckedApi,
    make_user,
    rental_body,
)
from tests.conftest import test_settings as settings_for
from tests.test_metrics import County, cells, invoke, last_event, read, rows_of

TODAY = FIXED_NOW.date()  # 2026-06-15
PURPOSE = "rectification"  # an HTTP header: ASCII
SURVEY_NOTE = "普查"


class Records(County):
    """The county builder, with sealed (juvenile) cases too."""

    def sealed_case(self, code: str, *, officer: str | None = None,
                    reported_on: str | None = None):
        seed, name, number = self._person()
        body = {"name": name, "id_number": number, "jurisdiction_code": code,
                "category": "probation", "deciding_body": "测试县人民法院",
                "judgment_ref": f"（2026）测刑初{seed}号", "effective_on": "2026-05-01",
                "supervision_start": "2026-05-01", "supervision_end": "2027-05-01",
                "reported_on": reported_on, "officer": officer, "juvenile": True}
        return self._write("corrections", lambda v: corrections.open_case(v, CaseCreate(**body)))

    def sealed_release(self, code: str):
        _, name, number = self._person()
        body = {"name": name, "id_number": number, "jurisdiction_code": code,
                "source": "prison", "released_on": "2026-04-01",
                "releasing_institution": "测试省第一监狱", "measures_in_place": False,
                "juvenile": True}
        return self._write("justice", lambda v: releases.register(v, ReleaseCreate(**body)))


@pytest.fixture
def county(registry) -> Records:
    return Records(registry)


@pytest.fixture
def officer(registry) -> str:
    return make_user(registry, None, "corrections", COUNTY).username


def short(registry, role: str, metric: str, *, at: str | None = TOWN, as_of: str | None = None,
          scope: str = COUNTY, purpose: str | None = None, page: int = 1,
          page_size: int = 50) -> ShortfallPage:
    actor = Actor(id=None, username=f"reader-{role}", role=role, scope=scope)
    with registry.vault(actor) as vault:
        found = service.shortfall(vault, metric, at=at,
                                  as_of=date.fromisoformat(as_of) if as_of else None,
                                  page=page, page_size=page_size, purpose=purpose)
        vault.commit()
    return found


def listed(page: ShortfallPage) -> dict[str, list[str]]:
    """Record id → its reasons."""
    return {item.record["id"]: item.reasons for item in page.items}


def ids(*records) -> set[str]:
    return {str(r) for r in records}


class Api(CheckedApi):
    purpose = None

    def shortfall(self, user, metric: str, **kwargs):
        purpose = kwargs.pop("purpose", None)
        return self.get(f"/metrics/{metric}/shortfall", user, purpose=purpose, params=kwargs)

    def put_baseline(self, user, code: str, metric: str, count: int,
                     surveyed_on: str = "2026-06-01"):
        return self.call("PUT", f"/metrics/baselines/{code}/{metric}", user,
                         body={"count": count, "surveyed_on": surveyed_on})

    def delete_baseline(self, user, code: str, metric: str):
        return self.call("DELETE", f"/metrics/baselines/{code}/{metric}", user)


@pytest.fixture
def api(registry, client) -> Api:
    return Api(registry, client)


# --- shortfall: each metric's short records, and why ----------------------------------------


def test_rental_registration_lists_the_rentals_without_the_landlords_phone(registry, county):
    county.rental(GRID_A1)
    a1 = county.rental(GRID_A1, phone=False)
    b1 = county.rental(GRID_B1, phone=False)
    gone = county.rental(GRID_B1, phone=False, registered_on="2026-02-01")
    county.deregister(gone, "2026-05-01")
    town = short(registry, "police", "rental_registration")
    assert (town.metric, town.code, town.as_of, town.total) == (
        "rental_registration", TOWN, TODAY, 2)
    assert town.name_zh == "出租房屋基本信息登记录入率"
    assert set(listed(town)) == ids(a1, b1)
    for reasons in listed(town).values():
        assert len(reasons) == 1 and "landlord.phone" in reasons[0]
    # The list agrees with the rate's gap, node by node.
    assert cells(read(registry, "police"), "rental_registration")["total"][4] == town.total
    community = short(registry, "police", "rental_registration", at=COMMUNITY_A)
    assert set(listed(community)) == ids(a1) and community.total == 1
    # Before its deregistration the rental gone since still counted, and was short.
    april = short(registry, "police", "rental_registration", at=GRID_B1, as_of="2026-04-15")
    assert set(listed(april)) == ids(b1, gone)


def test_pledge_shortfall_gives_each_reason(registry, county):
    county.rental(GRID_A1)  # valid from 2 March
    none = county.rental(GRID_A1, pledge=None)
    expired = county.rental(GRID_A2, registered_on="2025-06-01",
                            pledge=("2025-06-01", "2026-01-01"))
    county.rental(GRID_B1, status="vacant", pledge=None)  # not let: not counted
    gone = county.rental(GRID_B1, registered_on="2026-02-01", pledge=None)
    county.deregister(gone, "2026-05-01")
    today = short(registry, "police", "pledge_signing")
    assert today.total == 2
    reasons = listed(today)
    assert set(reasons) == ids(none, expired)
    assert len(reasons[str(none)]) == 1 and "no pledge" in reasons[str(none)][0]
    assert "未签订" in reasons[str(none)][0]
    assert "expired 2026-01-01" in reasons[str(expired)][0]
    # 1 March: the valid pledge is signed the next day; the deregistered rental still let.
    march = short(registry, "police", "pledge_signing", as_of="2026-03-01")
    assert march.total == 4
    reasons = listed(march)
    signed_after = [r for r in reasons.values() if "signed after" in r[0]]
    assert signed_after == [["保证书签于2026-03-02 pledge signed after 2026-03-01"]]
    assert "no pledge" in reasons[str(gone)][0]
    assert "expired 2026-01-01" in reasons[str(expired)][0]
    # Signed now, the rental leaves the list.
    county.pledge(none, "2026-06-01", "2027-05-31")
    assert set(listed(short(registry, "police", "pledge_signing"))) == ids(expired)


def test_resident_entry_names_the_missing_facts(registry, county):
    county.resident(GRID_A1)
    no_phone = county.resident(GRID_A1, complete=False)
    left = county.resident(GRID_B1, complete=False, arrived_on="2026-03-01")
    county.leave(left, "2026-06-01")
    today = short(registry, "police", "resident_entry")
    assert today.total == 1
    assert listed(today) == {str(no_phone): ["缺少 missing: phone"]}
    record = today.items[0].record
    assert record["missing"] == ["phone"] and record["person"]["id"]
    may = short(registry, "police", "resident_entry", as_of="2026-05-31")
    assert set(listed(may)) == ids(no_phone, left)


def test_key_person_registration_shortfall(registry, county, officer):
    county.case(GRID_A1, officer=officer)  # complete
    no_officer = county.case(GRID_A1)
    awaiting = county.case(GRID_A2, reported_on=None, officer=officer)
    neither = county.case(GRID_B1, reported_on=None)
    county.case(GRID_B1, effective_on="2025-01-01", reported_on=None,
                supervision_end="2026-01-01")  # supervision over: not counted
    county.sealed_case(GRID_A1)  # sealed: never listed
    town = short(registry, "corrections", "key_person_registration", purpose=PURPOSE)
    assert town.total == 3
    assert listed(town) == {
        str(no_officer): ["未指定矫正负责人 no supervising officer"],
        str(awaiting): ["未报到 not reported"],
        str(neither): ["未报到 not reported", "未指定矫正负责人 no supervising officer"],
    }
    # Reported on 5 May: not yet on the 3rd.
    early = short(registry, "corrections", "key_person_registration", as_of="2026-05-03",
                  at=GRID_A1)
    assert len(early.items) == 2 and early.total == 2
    assert all("未报到 not reported" in r for r in listed(early).values())


def test_aftercare_and_placement_shortfalls(registry, county):
    placed = county.release(GRID_A1)
    county.place(placed, "placed", "2026-05-01")
    neither = county.release(GRID_A1, measures=False)
    not_needed = county.release(GRID_A2, measures=False)
    county.place(not_needed, "not_needed")
    county.release(GRID_B1, released_on="2024-03-01", years=1, measures=False)  # over
    county.sealed_release(GRID_B1)  # sealed: never listed
    aftercare = short(registry, "justice", "aftercare", purpose=PURPOSE)
    assert aftercare.total == 2
    assert listed(aftercare) == {
        str(neither): ["帮教措施未落实 aftercare measures not in place"],
        str(not_needed): ["帮教措施未落实 aftercare measures not in place"]}
    placement = short(registry, "justice", "placement", purpose=PURPOSE)
    assert placement.total == 1
    assert listed(placement) == {str(neither): ["未安置 not placed"]}
    # 15 April: the placed case was not placed yet.
    april = short(registry, "justice", "placement", as_of="2026-04-15")
    assert set(listed(april)) == ids(placed, neither)


def test_a_case_placed_after_the_date_says_so(registry, county):
    placed = county.release(GRID_A1)
    county.place(placed, "placed", "2026-05-01")
    april = short(registry, "justice", "placement", as_of="2026-04-15", at=GRID_A1)
    [reason] = listed(april)[str(placed)]
    assert "(placed)" not in reason and "2026-05-01" in reason


def test_check_in_compliance_shortfall(registry, county, officer):
    county.case(GRID_A1, officer=officer)  # 90-day check-ins: compliant
    weekly = county.case(GRID_A1, officer=officer, interval=7)  # due 12 May, grace to the 14th
    gone = county.case(GRID_B1, officer=officer)
    county.case_status(gone, "absconded", "2026-06-10")
    county.case(GRID_A2, reported_on=None, officer=officer)  # awaiting its report: not counted
    town = short(registry, "corrections", "check_in_compliance", purpose=PURPOSE)
    assert town.total == 2
    reasons = listed(town)
    assert reasons[str(gone)] == ["脱管 absconded"]
    assert len(reasons[str(weekly)]) == 1 and "overdue since" in reasons[str(weekly)][0]
    assert "逾期未报到" in reasons[str(weekly)][0]
    # Within its grace on the 14th: not listed.
    assert short(registry, "corrections", "check_in_compliance", at=GRID_A1,
                 as_of="2026-05-14").total == 0


def test_overdue_since_names_the_first_overdue_day(registry, county, officer):
    weekly = county.case(GRID_A1, officer=officer, interval=7)
    page = short(registry, "corrections", "check_in_compliance", at=GRID_A1,
                 as_of="2026-05-15")
    assert "overdue since 2026-05-15" in listed(page)[str(weekly)][0]


def test_paging_and_total(registry, county):
    made = {county.resident(code, complete=False) for code in (GRID_A1, GRID_A1, GRID_A2,
                                                                GRID_B1, GRID_B1)}
    county.resident(GRID_A1)
    pages = [short(registry, "police", "resident_entry", page=n, page_size=2) for n in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert {(p.total, p.page, p.page_size) for p in pages} == {(5, 1, 2), (5, 2, 2), (5, 3, 2)}
    seen = [i for p in pages for i in listed(p)]
    assert len(seen) == 5 and set(seen) == ids(*made)
    # Ordered by jurisdiction: A1's first, B1's last.
    codes = [item.record["jurisdiction_code"] for p in pages for item in p.items]
    assert codes == sorted(codes)
    beyond = short(registry, "police", "resident_entry", page=4, page_size=2)
    assert (beyond.total, beyond.items) == (5, [])


def test_nothing_short_is_an_empty_list(registry, county):
    county.rental(GRID_A1)
    empty = short(registry, "police", "rental_registration")
    assert (empty.total, empty.items) == (0, [])


# --- shortfall over the API: masking, refusals, audit, scope --------------------------------


def _landlord(record: dict) -> dict:
    return record["landlord"]


def test_records_are_masked_without_a_purpose_and_clear_with_one(registry, client, api,
                                                                  county):
    rental = county.rental(GRID_A1, phone=False)
    name, number = county.names[-2:]
    police = make_user(registry, client, "police", COUNTY)
    masked = api.shortfall(police, "rental_registration", at=TOWN)
    assert masked.status_code == 200, masked.text
    body = masked.json()
    assert (body["metric"], body["code"], body["as_of"], body["total"], body["page"],
            body["page_size"]) == ("rental_registration", TOWN, "2026-06-15", 1, 1, 50)
    [item] = body["items"]
    record = item["record"]
    assert record["id"] == str(rental) and record["missing"] == ["landlord.phone"]
    assert _landlord(record)["id_number"] == number[:6] + "********" + number[-4:]
    assert _landlord(record)["id_number"] == "330199" + "********" + number[-4:]
    assert _landlord(record)["name"] == "赵*"
    assert "landlord.phone" in item["reasons"][0]
    assert {"name", "id_number"} <= set(record["masked"])
    assert name not in masked.text and number not in masked.text
    clear = api.shortfall(police, "rental_registration", at=TOWN, purpose=PURPOSE)
    assert clear.status_code == 200
    record = clear.json()["items"][0]["record"]
    assert (_landlord(record)["name"], _landlord(record)["id_number"]) == (name, number)
    assert record["masked"] == []


def test_coordinators_get_masked_fields_even_with_a_purpose(registry, client, api, county):
    county.resident(GRID_A1, complete=False)
    name, number = county.names[-2:]
    coordinator = make_user(registry, client, "coordinator", GRID_A1)
    response = api.shortfall(coordinator, "resident_entry", purpose=PURPOSE)
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    person = item["record"]["person"]
    assert person["name"] == "赵*"
    assert person["id_number"] == number[:6] + "********" + number[-4:]
    assert name not in response.text and number not in response.text
    assert item["record"]["address"]  # addresses they see in clear
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.purpose) == ("resident", "list", PURPOSE)
    assert "person.name~masked" in event.fields.split(",")


def test_sealed_cases_never_appear_even_with_a_purpose(registry, client, api, county, officer):
    sealed = county.sealed_case(GRID_A1)
    open_case = county.case(GRID_A1, reported_on=None)
    user = make_user(registry, client, "corrections", COUNTY)
    for purpose in (None, PURPOSE):
        response = api.shortfall(user, "key_person_registration", purpose=purpose)
        assert response.status_code == 200
        assert [i["record"]["id"] for i in response.json()["items"]] == [str(open_case)]
        assert str(sealed) not in response.text
    released = county.sealed_release(GRID_A1)
    justice = make_user(registry, client, "justice", COUNTY)
    for metric in ("aftercare", "placement"):
        response = api.shortfall(justice, metric, purpose=PURPOSE)
        assert response.status_code == 200 and response.json()["total"] == 0
        assert str(released) not in response.text


def test_leadership_gets_403_for_any_shortfall(registry, client, api, county):
    county.resident(GRID_A1, complete=False)
    lead = make_user(registry, client, "leadership", COUNTY)
    for metric in ("resident_entry", "rental_registration", "aftercare",
                   "key_person_registration"):
        response = api.shortfall(lead, metric, purpose=PURPOSE)
        assert response.status_code == 403, (metric, response.text)
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.outcome, event.actor) == ("denied", lead.username)
    assert county.names[0] not in response.text


@pytest.mark.parametrize(("role", "metric"), [
    ("police", "aftercare"), ("police", "check_in_compliance"), ("justice", "resident_entry"),
    ("corrections", "pledge_signing"), ("coordinator", "placement"),
])
def test_a_metric_the_role_cannot_see_is_an_audited_404(registry, client, api, role, metric):
    user = make_user(registry, client, role, COUNTY)
    response = api.shortfall(user, metric)
    assert response.status_code == 404
    unknown = api.shortfall(user, "nonsense")
    assert unknown.status_code == 404
    assert response.json() == unknown.json()  # a hidden metric answers as an unknown one
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.outcome, event.record_id) == (
        "metrics", "read", "denied", "nonsense")


def test_the_staffing_metric_has_no_list_and_the_404_is_audited(registry, client, api):
    police = make_user(registry, client, "police", COUNTY)
    assert api.shortfall(police, "coordinator_staffing").status_code == 404


def test_the_audit_event_names_every_record_shown(registry, client, api, county):
    short_ones = [county.rental(GRID_A1, phone=False), county.rental(GRID_B1, phone=False),
                  county.rental(GRID_A2, phone=False)]
    complete = county.rental(GRID_A1)
    police = make_user(registry, client, "police", COUNTY)
    response = api.shortfall(police, "rental_registration", purpose=PURPOSE, page_size=2)
    assert response.status_code == 200
    shown = [i["record"]["id"] for i in response.json()["items"]]
    assert len(shown) == 2 and response.json()["total"] == 3
    with registry.db.session() as session:
        event = last_event(session)
        landlords = dict(session.execute(select(RentalProperty.id, RentalProperty.landlord_id)
                                         .where(RentalProperty.id.in_(short_ones))).all())
    assert (event.kind, event.action, event.outcome, event.actor, event.purpose) == (
        "rental", "list", "ok", police.username, PURPOSE)
    refs = event.refs.split(",")
    assert {r for r in refs if r.startswith("rental:")} == {f"rental:{i}" for i in shown}
    assert {r for r in refs if r.startswith("person:")} == {
        f"person:{landlords[r]}" for r in short_ones if str(r) in shown}
    assert f"rental:{complete}" not in event.refs
    assert "shortfall=rental_registration" in event.detail
    assert f"at={COUNTY}" in event.detail and "total=3" in event.detail
    assert "landlord.name" in event.fields.split(",")
    text = " ".join(str(getattr(event, c)) for c in ("fields", "refs", "detail", "record_id"))
    for value in county.names:
        assert value not in text


def test_no_record_outside_the_callers_scope(registry, client, api, county):
    mine = county.rental(GRID_A1, phone=False)
    theirs = county.rental(GRID_B1, phone=False)
    police = make_user(registry, client, "police", COMMUNITY_A)
    own = api.shortfall(police, "rental_registration")  # the default node: their own
    assert own.status_code == 200
    assert own.json()["code"] == COMMUNITY_A and own.json()["total"] == 1
    assert [i["record"]["id"] for i in own.json()["items"]] == [str(mine)]
    assert str(theirs) not in own.text
    for at in (COMMUNITY_B, TOWN, GRID_B1):
        assert api.shortfall(police, "rental_registration", at=at).status_code == 404
    coordinator = make_user(registry, client, "coordinator", GRID_A2)
    assert api.shortfall(coordinator, "rental_registration").json()["total"] == 0


def test_shortfall_refuses_bad_dates_and_pages(registry, client, api, county):
    county.rental(GRID_A1, phone=False, registered_on="2026-01-10")
    police = make_user(registry, client, "police", COUNTY)
    future = api.shortfall(police, "rental_registration", as_of="2026-06-16")
    assert future.status_code == 422 and future.json()["error"]["field"] == "as_of"
    early = api.shortfall(police, "rental_registration", as_of="2026-01-09")
    assert early.status_code == 422
    assert api.shortfall(police, "rental_registration", page=0).status_code == 422
    assert api.shortfall(police, "rental_registration", page_size=501).status_code == 422
    assert client.get("/metrics/rental_registration/shortfall").status_code == 401


# --- survey baselines ------------------------------------------------------------------------


def baseline(registry, code: str, metric: str, count: int | None, *,
             on: str = "2026-06-01", role: str = "police", scope: str = COUNTY) -> None:
    actor = Actor(id=None, username=f"surveyor-{role}", role=role, scope=scope)
    with registry.vault(actor) as vault:
        service.set_baseline(vault, code, metric, None if count is None else BaselineIn(
            count=count, surveyed_on=date.fromisoformat(on)))
        vault.commit()


def fill(county: Records, metric: str, code: str, n: int) -> None:
    """``n`` complete records for the metric in ``code``."""
    for _ in range(n):
        if metric == "resident_entry":
            county.resident(code)
        else:
            county.rental(code)


@pytest.mark.parametrize("metric", ["rental_registration", "pledge_signing", "resident_entry"])
def test_a_larger_baseline_replaces_a_childs_denominator(registry, county, metric):
    fill(county, metric, GRID_A1, 2)
    fill(county, metric, GRID_A2, 1)
    baseline(registry, GRID_A1, metric, 10)
    community = read(registry, "police", at=COMMUNITY_A)
    assert cells(community, metric) == {
        "total": (3, 11, 3 / 11, False, 8),
        GRID_A1: (2, 10, 0.2, False, 8),
        GRID_A2: (1, 1, 1.0, True, 0)}
    rows = rows_of(community, metric)
    assert SURVEY_NOTE in rows[GRID_A1].note and SURVEY_NOTE in rows["total"].note
    assert rows[GRID_A2].note == ""
    # The grid's own report says the same.
    grid = rows_of(read(registry, "police", at=GRID_A1), metric)["total"]
    assert (grid.numerator, grid.denominator, grid.gap) == (2, 10, 8)
    assert SURVEY_NOTE in grid.note


def test_a_smaller_baseline_changes_nothing(registry, county):
    fill(county, "resident_entry", GRID_A1, 3)
    before = read(registry, "police", at=COMMUNITY_A)
    baseline(registry, GRID_A1, "resident_entry", 2)
    baseline(registry, COMMUNITY_A, "resident_entry", 3)  # equal: nothing either
    after = read(registry, "police", at=COMMUNITY_A)
    assert cells(after, "resident_entry") == cells(before, "resident_entry") == {
        "total": (3, 3, 1.0, True, 0), GRID_A1: (3, 3, 1.0, True, 0),
        GRID_A2: (0, 0, None, None, None)}
    assert all(SURVEY_NOTE not in r.note for r in rows_of(after, "resident_entry").values())


def test_a_baseline_on_the_node_applies_when_larger_than_its_childrens_sum(registry, county):
    fill(county, "rental_registration", GRID_A1, 2)
    fill(county, "rental_registration", GRID_A2, 1)
    baseline(registry, GRID_A1, "rental_registration", 4)  # children: 4 + 1 = 5
    baseline(registry, COMMUNITY_A, "rental_registration", 5)  # not larger: no change
    assert cells(read(registry, "police", at=COMMUNITY_A), "rental_registration")[
        "total"] == (3, 5, 0.6, False, 2)
    baseline(registry, COMMUNITY_A, "rental_registration", 8)
    community = read(registry, "police", at=COMMUNITY_A)
    assert cells(community, "rental_registration") == {
        "total": (3, 8, 3 / 8, False, 5),
        GRID_A1: (2, 4, 0.5, False, 2),
        GRID_A2: (1, 1, 1.0, True, 0)}
    assert SURVEY_NOTE in rows_of(community, "rental_registration")["total"].note
    # The town sees community A with its survey's count.
    town = read(registry, "police")
    assert cells(town, "rental_registration")[COMMUNITY_A][:2] == (3, 8)
    assert cells(town, "rental_registration")["total"][:2] == (3, 8)


def test_the_nodes_own_baseline_does_not_land_on_its_filed_at_this_level_row(registry,
                                                                             county):
    county.rental(GRID_A1)
    county.rental(GRID_A2)
    county.rental(COMMUNITY_A)
    baseline(registry, COMMUNITY_A, "rental_registration", 10)
    community = read(registry, "police", at=COMMUNITY_A)
    assert cells(community, "rental_registration") == {
        "total": (3, 10, 0.3, False, 7),
        GRID_A1: (1, 1, 1.0, True, 0),
        GRID_A2: (1, 1, 1.0, True, 0),
        "self": (1, 1, 1.0, True, 0)}


def test_a_grid_baseline_rolls_up_to_the_town(registry, county):
    fill(county, "resident_entry", GRID_A1, 2)
    baseline(registry, GRID_A1, "resident_entry", 10)
    community = cells(read(registry, "police", at=COMMUNITY_A), "resident_entry")["total"]
    town = cells(read(registry, "police"), "resident_entry")
    assert community[:2] == (2, 10)
    assert town[COMMUNITY_A] == community


def test_the_trend_agrees_with_the_report_under_a_childs_baseline(registry, county):
    fill(county, "resident_entry", GRID_A1, 2)
    baseline(registry, GRID_A1, "resident_entry", 10)
    report = rows_of(read(registry, "police", at=COMMUNITY_A), "resident_entry")["total"]
    assert report.rate == 0.2
    actor = Actor(id=None, username="trend", role="police", scope=COUNTY)
    with registry.vault(actor) as vault:
        points = service.trend(vault, at=COMMUNITY_A, start=TODAY, end=TODAY)
    [point] = [p for p in points if p.metric == "resident_entry"]
    assert point.rate == report.rate


def test_a_baseline_dated_after_the_as_of_date_is_ignored(registry, county):
    fill(county, "resident_entry", GRID_A1, 2)
    baseline(registry, GRID_A1, "resident_entry", 6, on="2026-06-01")
    may = read(registry, "police", at=COMMUNITY_A, as_of="2026-05-31")
    assert cells(may, "resident_entry")[GRID_A1] == (2, 2, 1.0, True, 0)
    assert rows_of(may, "resident_entry")[GRID_A1].note == ""
    june = read(registry, "police", at=COMMUNITY_A, as_of="2026-06-01")
    assert cells(june, "resident_entry")[GRID_A1] == (2, 6, 1 / 3, False, 4)


def test_a_baseline_is_replaced_and_removed(registry, county):
    fill(county, "resident_entry", GRID_A1, 2)
    baseline(registry, GRID_A1, "resident_entry", 6)
    baseline(registry, GRID_A1, "resident_entry", 9, on="2026-06-10")
    assert cells(read(registry, "police", at=GRID_A1), "resident_entry")["total"][:2] == (2, 9)
    assert cells(read(registry, "police", at=GRID_A1, as_of="2026-06-05"),
                 "resident_entry")["total"][:2] == (2, 2)  # the survey now dates from the 10th
    baseline(registry, GRID_A1, "resident_entry", None)
    assert cells(read(registry, "police", at=GRID_A1), "resident_entry")["total"] == (
        2, 2, 1.0, True, 0)
    baseline(registry, GRID_A1, "resident_entry", None)  # removing nothing is fine


def test_baselines_over_the_api(registry, client, api, county):
    fill(county, "resident_entry", GRID_A1, 2)
    police = make_user(registry, client, "police", COMMUNITY_A)
    put = api.put_baseline(police, GRID_A1, "resident_entry", 7)
    assert put.status_code == 204, put.text
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.outcome, event.record_id, event.jurisdiction_code,
            event.actor) == ("metrics", "baseline", "ok", GRID_A1, GRID_A1, police.username)
    assert event.fields == "resident_entry"
    assert event.detail == "count=7;on=2026-06-01"
    report = api.get("/metrics", police, params={"at": GRID_A1}).json()
    row = next(r for r in report["rows"] if r["metric"] == "resident_entry")
    assert (row["numerator"], row["denominator"], row["gap"]) == (2, 7, 5)
    assert SURVEY_NOTE in row["note"]
    gone = api.delete_baseline(police, GRID_A1, "resident_entry")
    assert gone.status_code == 204
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.record_id, event.detail) == (
        "metrics", "baseline", GRID_A1, "removed")
    report = api.get("/metrics", police, params={"at": GRID_A1}).json()
    row = next(r for r in report["rows"] if r["metric"] == "resident_entry")
    assert (row["denominator"], row["note"]) == (2, "")
    # Coordinators may record one too.
    coordinator = make_user(registry, client, "coordinator", GRID_A1)
    assert api.put_baseline(coordinator, GRID_A1, "rental_registration", 3).status_code == 204


@pytest.mark.parametrize("metric", ["aftercare", "placement", "key_person_registration",
                                    "check_in_compliance", "coordinator_staffing", "nonsense"])
def test_only_the_surveyed_metrics_take_a_baseline(registry, client, api, metric):
    police = make_user(registry, client, "police", COUNTY)
    response = api.put_baseline(police, GRID_A1, metric, 5)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "metric"
    for key in ("rental_registration", "pledge_signing", "resident_entry"):
        assert key in error["message"]


def test_a_baseline_outside_scope_is_a_422_audited_as_a_denial(registry, client, api):
    police = make_user(registry, client, "police", COMMUNITY_A)
    response = api.put_baseline(police, GRID_B1, "resident_entry", 5)
    assert response.status_code == 422 and response.json()["error"]["field"] == "code"
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.outcome, event.jurisdiction_code, event.actor) == (
        "metrics", "baseline", "denied", GRID_B1, police.username)
    assert api.delete_baseline(police, TOWN, "resident_entry").status_code == 422
    unknown = api.put_baseline(police, "330199001001009", "resident_entry", 5)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "code"
    future = api.put_baseline(police, GRID_A1, "resident_entry", 5, surveyed_on="2026-06-16")
    assert future.status_code == 422
    assert api.put_baseline(police, GRID_A1, "resident_entry", -1).status_code == 422


@pytest.mark.parametrize("role", ["justice", "leadership", "auditor", "corrections"])
def test_roles_without_the_baseline_permission_get_403(registry, client, api, role):
    user = make_user(registry, client, role, COUNTY)
    assert api.put_baseline(user, GRID_A1, "resident_entry", 5).status_code == 403
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.outcome, event.actor) == (
        "metrics", "baseline", "denied", user.username)
    assert api.delete_baseline(user, GRID_A1, "resident_entry").status_code == 403


# --- staffing areas --------------------------------------------------------------------------


def registry_with(key_dir, db, **overrides) -> Registry:
    settings = settings_for(key_dir, **overrides)
    return Registry(settings, db=db, keyring=Keyring.from_settings(settings),
                    clock=Clock(fixed=FIXED_NOW))


def test_staffing_counts_only_the_urban_area(registry, county, key_dir, db):
    county.resident(GRID_A1)
    county.coordinator(GRID_A1)
    county.rental(GRID_A1, units=150)
    county.resident(GRID_B1)
    county.rental(GRID_B1, units=201)
    county.coordinator(GRID_B1)
    everywhere = cells(read(registry, "police"), "coordinator_staffing")
    assert everywhere == {"total": (2, 2, 1.0, True, 0), COMMUNITY_A: (1, 1, 1.0, True, 0),
                          COMMUNITY_B: (1, 2, 0.5, False, 1)}
    urban = registry_with(key_dir, db, staffing_areas=COMMUNITY_A)
    assert urban.settings.staffing_areas == COMMUNITY_A
    town = cells(read(urban, "police"), "coordinator_staffing")
    assert town == {"total": (1, 1, 1.0, True, 0), COMMUNITY_A: (1, 1, 1.0, True, 0),
                    COMMUNITY_B: (0, 0, None, None, None)}
    # The other metrics are not limited by it.
    assert cells(read(urban, "police"), "resident_entry")["total"][:2] == (2, 2)
    both = registry_with(key_dir, db, staffing_areas=f"{GRID_A1},{COMMUNITY_B}")
    assert cells(read(both, "police"), "coordinator_staffing")["total"] == (2, 2, 1.0, True, 0)


@pytest.mark.parametrize("value", ["abc", "33019", "330199001001,", ",330199001001",
                                   "330199001001;330199001002", "3301990010010011"])
def test_an_invalid_staffing_area_is_refused(tmp_path, value):
    with pytest.raises(ValidationError, match="staffing_areas"):
        settings_for(tmp_path, staffing_areas=value)


def test_the_staffing_area_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_STAFFING_AREAS", f"{COMMUNITY_A},{COMMUNITY_B}")
    assert Settings(_env_file=None, data_dir=tmp_path).staffing_areas == (
        f"{COMMUNITY_A},{COMMUNITY_B}")
    monkeypatch.setenv("REGISTRY_STAFFING_AREAS", "abc")
    with pytest.raises(ValidationError):
        Settings(_env_file=None, data_dir=tmp_path)
    monkeypatch.delenv("REGISTRY_STAFFING_AREAS")
    assert Settings(_env_file=None, data_dir=tmp_path).staffing_areas == ""


# --- rental completeness ---------------------------------------------------------------------


def test_a_rental_without_the_phone_is_incomplete_until_it_is_added(registry, client, api):
    police = make_user(registry, client, "police", COUNTY)
    body = rental_body(7)
    body["landlord"]["phone"] = None
    created = api.post("/rentals", police, body, purpose=PURPOSE)
    assert created.status_code == 201, created.text
    rental = created.json()
    assert rental["missing"] == ["landlord.phone"]
    assert cells(read(registry, "police", at=GRID_A1), "rental_registration")["total"] == (
        0, 1, 0.0, False, 1)
    listing = api.shortfall(police, "rental_registration", at=GRID_A1).json()
    assert [i["record"]["id"] for i in listing["items"]] == [rental["id"]]
    amended = api.patch(f"/rentals/{rental['id']}", police, {"landlord_phone": "13900139000"},
                        purpose=PURPOSE)
    assert amended.status_code == 200, amended.text
    assert amended.json()["missing"] == []
    assert api.get(f"/rentals/{rental['id']}", police).json()["missing"] == []
    assert cells(read(registry, "police", at=GRID_A1), "rental_registration")["total"] == (
        1, 1, 1.0, True, 0)
    assert api.shortfall(police, "rental_registration", at=GRID_A1).json()["total"] == 0


def test_a_landlords_phone_completes_all_their_rentals(registry, client, api):
    police = make_user(registry, client, "police", COUNTY)
    first, second = rental_body(11), rental_body(11, address="东门路99号1幢101室")
    second["jurisdiction_code"] = GRID_A2
    for body in (first, second):
        body["landlord"]["phone"] = None
    made = [api.post("/rentals", police, b, purpose=PURPOSE).json() for b in (first, second)]
    assert [m["missing"] for m in made] == [["landlord.phone"], ["landlord.phone"]]
    assert cells(read(registry, "police", at=COMMUNITY_A), "rental_registration")[
        "total"][:2] == (0, 2)
    # A new rental of theirs with the number: the others take it too.
    third = rental_body(11, address="东门路77号2幢202室")
    assert api.post("/rentals", police, third, purpose=PURPOSE).json()["missing"] == []
    for m in made:
        assert api.get(f"/rentals/{m['id']}", police).json()["missing"] == []
    assert cells(read(registry, "police", at=COMMUNITY_A), "rental_registration")[
        "total"] == (3, 3, 1.0, True, 0)


def test_a_new_rental_of_a_known_landlord_takes_the_recorded_phone(registry, client, api):
    police = make_user(registry, client, "police", COUNTY)
    assert api.post("/rentals", police, rental_body(12), purpose=PURPOSE).status_code == 201
    later = rental_body(12, address="西湖路5号1幢101室", jurisdiction_code=GRID_B1)
    later["landlord"]["phone"] = None
    created = api.post("/rentals", police, later, purpose=PURPOSE).json()
    assert created["missing"] == [] and created["landlord"]["phone"]


def _migration():
    path = next((REPO_ROOT / "migrations" / "versions").glob("*_86075d46e3a6_*.py"))
    spec = importlib.util.spec_from_file_location("migration_86075d46e3a6", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_fills_missing_for_old_rows(registry, county):
    module = _migration()
    assert (module.revision, module.down_revision) == ("86075d46e3a6", "51877695bea4")
    without = county.rental(GRID_A1, phone=False)
    with_phone = county.rental(GRID_A1)
    with registry.db.session() as session:
        # Rows as the registry wrote them before: ``missing`` never filled.
        session.execute(update(RentalProperty).values(missing=""))
        session.commit()
    assert cells(read(registry, "police", at=GRID_A1), "rental_registration")["total"][:2] == (
        2, 2)
    with registry.db.session() as session:
        with Operations.context(MigrationContext.configure(session.connection())):
            module.upgrade()
        session.commit()
    with registry.db.session() as session:
        missing = dict(session.execute(select(RentalProperty.id, RentalProperty.missing)).all())
    assert missing == {without: "landlord.phone", with_phone: ""}
    assert cells(read(registry, "police", at=GRID_A1), "rental_registration")["total"] == (
        1, 2, 0.5, False, 1)


# --- the CLI ---------------------------------------------------------------------------------


CLI_USERS = {"police_c": ("police", COUNTY), "police_a": ("police", COMMUNITY_A),
             "coord_a1": ("coordinator", GRID_A1), "lead_c": ("leadership", COUNTY),
             "justice_c": ("justice", COUNTY)}
CLI_PASSWORD = "cli-password-123"


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory):
    """An on-disk SQLite registry (dated from the real today) with the test tree, a few
    users, and short and complete records."""
    home = tmp_path_factory.mktemp("cli-shortfall")
    result = invoke(home, "init")
    assert result.exit_code == 0, result.output
    settings = Settings(_env_file=None, environment="test", data_dir=home, timezone="UTC",
                        argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1)
    registry = Registry(settings)
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.upsert(TREE)
        for username, (role, scope) in CLI_USERS.items():
            vault.users.add(username=username, password=CLI_PASSWORD, role=role,
                            jurisdiction_code=scope)
        vault.commit()
    county = Records(registry)
    a1 = county.rental(GRID_A1, phone=False)
    a1_name, a1_number = county.names[-2:]
    b1 = county.rental(GRID_B1, phone=False)
    county.rental(GRID_A1)
    county.resident(GRID_A1)
    county.resident(GRID_A2)
    registry.db.engine.dispose()
    return home, {"a1": str(a1), "b1": str(b1), "name": a1_name, "number": a1_number}


def cli(home, user: str, *args: str):
    return invoke(home, *args, "--as", user, password=CLI_PASSWORD)


def audit_events(home) -> list[AuditEvent]:
    settings = Settings(_env_file=None, environment="test", data_dir=home, timezone="UTC")
    registry = Registry(settings)
    try:
        with registry.db.session() as session:
            events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
            session.expunge_all()
        return list(events)
    finally:
        registry.db.engine.dispose()


def test_cli_shortfall(cli_home):
    home, made = cli_home
    masked = cli(home, "police_c", "metrics", "--shortfall", "rental_registration",
                 "--at", TOWN)
    assert masked.exit_code == 0, masked.output
    page = json.loads(masked.output)
    assert (page["metric"], page["code"], page["total"], page["page"]) == (
        "rental_registration", TOWN, 2, 1)
    assert [i["record"]["id"] for i in page["items"]] == [made["a1"], made["b1"]]
    assert all("landlord.phone" in i["reasons"][0] for i in page["items"])
    landlord = page["items"][0]["record"]["landlord"]
    assert landlord["name"] == "赵*" and landlord["id_number"] == (
        made["number"][:6] + "********" + made["number"][-4:])
    assert made["name"] not in masked.output and made["number"] not in masked.output
    clear = cli(home, "police_c", "metrics", "--shortfall", "rental_registration",
                "--purpose", PURPOSE)
    assert clear.exit_code == 0, clear.output
    landlord = json.loads(clear.output)["items"][0]["record"]["landlord"]
    assert (landlord["name"], landlord["id_number"]) == (made["name"], made["number"])
    # Their own node by default; nothing outside it.
    own = json.loads(cli(home, "police_a", "metrics", "--shortfall",
                         "rental_registration").output)
    assert own["code"] == COMMUNITY_A and [i["record"]["id"] for i in own["items"]] == [
        made["a1"]]
    coordinator = cli(home, "coord_a1", "metrics", "--shortfall", "rental_registration",
                      "--purpose", PURPOSE)
    assert coordinator.exit_code == 0, coordinator.output
    assert json.loads(coordinator.output)["items"][0]["record"]["landlord"]["name"] == "赵*"
    assert made["name"] not in coordinator.output
    events = [e for e in audit_events(home) if e.kind == "rental" and e.action == "list"]
    assert [e.purpose for e in events] == [None, PURPOSE, None, PURPOSE]
    assert all("shortfall=rental_registration" in e.detail for e in events)
    assert f"rental:{made['a1']}" in events[0].refs and f"rental:{made['b1']}" in events[0].refs
    assert f"rental:{made['b1']}" not in events[2].refs


@pytest.mark.parametrize(("user", "args", "message"), [
    ("lead_c", ["--shortfall", "resident_entry"], "may not"),
    ("police_c", ["--shortfall", "aftercare"], "not found"),
    ("police_c", ["--shortfall", "nonsense"], "not found"),
    ("police_a", ["--shortfall", "resident_entry", "--at", COMMUNITY_B], "not found"),
    ("police_c", ["--shortfall", "resident_entry", "--as-of", "2999-01-01"], "as_of"),
    ("police_c", ["--shortfall", "resident_entry", "--page", "0"], "page"),
])
def test_cli_shortfall_refusals(cli_home, user, args, message):
    home, _ = cli_home
    result = cli(home, user, "metrics", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_survey_baseline(cli_home):
    home, _ = cli_home
    today = date.today()

    def grid_a1() -> dict:
        report = cli(home, "police_c", "metrics", "--at", COMMUNITY_A, "--format", "json")
        assert report.exit_code == 0, report.output
        return next(r for r in json.loads(report.output)["rows"]
                    if r["metric"] == "resident_entry" and r["code"] == GRID_A1)

    assert grid_a1()["denominator"] == 1
    surveyed = (today - timedelta(days=1)).isoformat()
    recorded = cli(home, "police_a", "survey-baseline", GRID_A1, "resident_entry", "12",
                   "--on", surveyed)
    assert recorded.exit_code == 0, recorded.output
    assert f"recorded: {GRID_A1} resident_entry" in recorded.output
    row = grid_a1()
    assert (row["numerator"], row["denominator"], row["gap"]) == (1, 12, 11)
    assert SURVEY_NOTE in row["note"]
    event = [e for e in audit_events(home) if e.action == "baseline"][-1]
    assert (event.kind, event.record_id, event.outcome, event.actor, event.detail) == (
        "metrics", GRID_A1, "ok", "police_a", f"count=12;on={surveyed}")
    removed = cli(home, "police_a", "survey-baseline", GRID_A1, "resident_entry", "--remove")
    assert removed.exit_code == 0 and "removed" in removed.output
    assert grid_a1()["denominator"] == 1
    event = [e for e in audit_events(home) if e.action == "baseline"][-1]
    assert event.detail == "removed"


@pytest.mark.parametrize(("user", "args", "message"), [
    ("police_a", [GRID_A1, "aftercare", "5"], "metric"),
    ("police_a", [GRID_B1, "resident_entry", "5"], "outside"),
    ("police_a", [GRID_A1, "resident_entry"], "COUNT"),
    ("police_a", [GRID_A1, "resident_entry", "5", "--remove"], "COUNT"),
    ("police_a", [GRID_A1, "resident_entry", "5", "--on", "2999-01-01"], "surveyed_on"),
    ("police_a", [GRID_A1, "resident_entry", "5", "--on", "soon"], "--on"),
    ("lead_c", [GRID_A1, "resident_entry", "5"], "may not"),
    ("justice_c", [GRID_A1, "resident_entry", "5"], "may not"),
])
def test_cli_survey_baseline_refusals(cli_home, user, args, message):
    home, _ = cli_home
    result = cli(home, user, "survey-baseline", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
