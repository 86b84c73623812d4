"""The county plan's targets (registry/vault/metrics.py, registry/metrics/*,
registry/cli_metrics.py) on a hand-built small county, on both databases.

Records are filed through the services by the office that owns each register (police: rentals,
residents and the coordinators' roster; the corrections office; the justice bureau), then the
report is read as each role: every metric's numerator, denominator, rate, target, verdict and gap
for the node and each child (and the "filed at this level" row), the roll-up, the as-of-date
semantics, the zero denominator, staffing, suppression for leadership (and none for the offices
that may list the records), visibility per role, refusals, the audit event of a read, the trend,
the XLSX and SVG exports and the CLI.

Where the implementation is believed wrong, the test states the correct expectation and is
marked ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import sqlite3
import xml.etree.ElementTree as ET
from datetime import date

import openpyxl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from registry.cli import app
from registry.cli_metrics import _line
from registry.config import get_settings
from registry.coordinators import service as coordinators
from registry.coordinators.schemas import CoordinatorIn
from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate, StatusChange
from registry.metrics import export, service
from registry.metrics.schemas import MetricRow, Report
from registry.models import AuditEvent
from registry.releases import service as releases
from registry.releases.schemas import CloseIn, PlacementIn, ReleaseCreate
from registry.rentals import service as rentals
from registry.rentals.schemas import Deregistration, PledgeIn, RentalCreate
from registry.residents import service as residents
from registry.residents.schemas import ArrivalIn, MoveIn, MoveOut
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.metrics import BY_KEY, METRICS, STAFFING
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    GRID_A2,
    GRID_B1,
    TOWN,
    CheckedApi,
    id_number,
    make_user,
    rental_body,
)

TODAY = FIXED_NOW.date()  # 2026-06-15 (the test settings reason in UTC)
COMMUNITY_C = "330199001003"  # a third community of the town, added where siblings are needed
ALL_KEYS = [m.key for m in (*METRICS, STAFFING)]
POLICE_KEYS = ["rental_registration", "pledge_signing", "resident_entry", "coordinator_staffing"]
SMALL = "<5"


# --- the county ------------------------------------------------------------------------------


class County:
    """Files records through the services, each as the office that owns its register (scoped
    to the whole county); every record is a different person."""

    def __init__(self, registry) -> None:
        self.registry = registry
        self._seeds = itertools.count(100)
        self.names: list[str] = []  # every personal value filed, to look for in what leaks

    def _write(self, role: str, write):
        actor = Actor(id=None, username=f"county-{role}", role=role, scope=COUNTY)
        with self.registry.vault(actor) as vault:
            record = write(vault)
            vault.commit()
        return record.id

    def _person(self) -> tuple[int, str, str]:
        seed = next(self._seeds)
        name, number = f"赵{'一二三四五六七八九十'[seed % 10]}{seed}", id_number(seed)
        self.names += [name, number]
        return seed, name, number

    # rentals (police)
    def rental(self, code: str, *, registered_on: str = "2026-03-01", units: int = 2,
               pledge: tuple[str, str] | None = ("2026-03-02", "2027-03-01"),
               status: str = "active", phone: bool = True):
        seed, name, number = self._person()
        body = rental_body(seed, code=code, registered_on=registered_on, units=units,
                           status=status,
                           pledge=({"signed_on": pledge[0], "valid_until": pledge[1]}
                                   if pledge else None))
        body["landlord"] = {"name": name, "id_number": number,
                            "phone": f"1380013{seed:04d}" if phone else None}
        return self._write("police", lambda v: rentals.register(v, RentalCreate(**body)))

    def deregister(self, rental_id, on: str) -> None:
        self._write("police", lambda v: rentals.deregister(
            v, rental_id, Deregistration(deregistered_on=on)))

    def pledge(self, rental_id, signed_on: str, valid_until: str) -> None:
        self._write("police", lambda v: rentals.sign_pledge(
            v, rental_id, PledgeIn(signed_on=signed_on, valid_until=valid_until)))

    # residents (police)
    def resident(self, code: str, *, arrived_on: str = "2026-05-01", complete: bool = True):
        seed, name, number = self._person()
        body = {"name": name, "id_number": number, "reason": "work", "arrived_on": arrived_on,
                "jurisdiction_code": code, "address": f"东门路{seed}号", "occupation": "厨师",
                "workplace": "东门饭店", "hukou_address": f"河南省固始县城关镇{seed}号"}
        if complete:
            body["phone"] = f"1390013{seed:04d}"
        return self._write("police", lambda v: residents.register_arrival(v, ArrivalIn(**body)))

    def leave(self, residency_id, on: str) -> None:
        self._write("police", lambda v: residents.move_out(v, residency_id,
                                                           MoveOut(left_on=on)))

    def move(self, residency_id, code: str, on: str):
        return self._write("police", lambda v: residents.move(v, residency_id, MoveIn(
            moved_on=on, jurisdiction_code=code, address="西湖路1号")))

    def coordinator(self, code: str):
        seed, name, _ = self._person()
        return self._write("police", lambda v: coordinators.add(v, CoordinatorIn(
            staff_number=f"XG{seed:04d}", name=name, jurisdiction_code=code)))

    # corrections (the corrections office)
    def case(self, code: str, *, effective_on: str = "2026-05-01",
             reported_on: str | None = "2026-05-05", officer: str | None = None,
             supervision_end: str = "2027-05-01", interval: int = 90):
        seed, name, number = self._person()
        body = {"name": name, "id_number": number, "jurisdiction_code": code,
                "category": "probation", "deciding_body": "测试县人民法院",
                "judgment_ref": f"（2026）测刑初{seed}号", "effective_on": effective_on,
                "supervision_start": effective_on, "supervision_end": supervision_end,
                "reported_on": reported_on, "officer": officer,
                "check_in_interval_days": interval, "grace_days": 2}
        return self._write("corrections", lambda v: corrections.open_case(v, CaseCreate(**body)))

    def case_status(self, case_id, status: str, on: str) -> None:
        self._write("corrections", lambda v: corrections.change_status(
            v, case_id, StatusChange(status=status, on=on, reason="期满"), purpose=None))

    # releases (the justice bureau)
    def release(self, code: str, *, released_on: str = "2026-04-01", measures: bool = True,
                years: int | None = None, notice_on: str | None = None,
                group: str | None = None):
        _, name, number = self._person()
        body = {"name": name, "id_number": number, "jurisdiction_code": code,
                "source": "prison", "released_on": released_on,
                "releasing_institution": "测试省第一监狱", "measures_in_place": measures,
                "aftercare_years": years, "notice_received_on": notice_on,
                "aftercare_group": group}
        return self._write("justice", lambda v: releases.register(v, ReleaseCreate(**body)))

    def place(self, case_id, status: str, placed_on: str | None = None) -> None:
        data = PlacementIn(status=status, kind="employment" if placed_on else None,
                           placed_on=placed_on)
        self._write("justice", lambda v: releases.place(v, case_id, data, purpose=None))

    def close(self, case_id, on: str) -> None:
        self._write("justice", lambda v: releases.close(
            v, case_id, CloseIn(on=on, reason="moved_away"), purpose=None))


@pytest.fixture
def county(registry) -> County:
    return County(registry)


def add_community_c(registry) -> None:
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.upsert([(COMMUNITY_C, "南塘社区", TOWN)])
        vault.commit()


def read(registry, role: str, *, at: str | None = TOWN, as_of: str | None = None,
         scope: str = COUNTY) -> Report:
    actor = Actor(id=None, username=f"reader-{role}", role=role, scope=scope)
    with registry.vault(actor) as vault:
        report = service.report(vault, at=at, as_of=date.fromisoformat(as_of) if as_of else None)
        vault.commit()
    return report


def key(report: Report, row: MetricRow) -> str:
    """The node's row is "total", the records filed on the node itself "self"."""
    if row.node:
        return "total"
    return "self" if row.code == report.code else row.code


def cells(report: Report, metric: str) -> dict[str, tuple]:
    """Row → (numerator, denominator, rate, met, gap) for one metric."""
    return {key(report, r): (r.numerator, r.denominator, r.rate, r.met, r.gap)
            for r in report.rows if r.metric == metric}


def rows_of(report: Report, metric: str) -> dict[str, MetricRow]:
    return {key(report, r): r for r in report.rows if r.metric == metric}


NA = (0, 0, None, None, None)  # nothing to count: rate not applicable, no verdict, no gap


# --- every metric, node and children ---------------------------------------------------------


def build_rentals(county: County) -> dict[str, object]:
    """A1: let with a valid pledge, let without one; A2: let with a pledge that ran out on
    1 January 2026; community A itself: let with a valid pledge; B1: vacant (from 20 April),
    one deregistered on 1 May, one registered on 10 June without a pledge."""
    r = {
        "a1_valid": county.rental(GRID_A1),
        "a1_none": county.rental(GRID_A1, pledge=None, units=3),
        "a2_expired": county.rental(GRID_A2, registered_on="2025-06-01",
                                    pledge=("2025-06-01", "2026-01-01")),
        "a_self": county.rental(COMMUNITY_A),
        "b1_vacant": county.rental(GRID_B1, registered_on="2026-04-20", status="vacant"),
        "b1_gone": county.rental(GRID_B1, registered_on="2026-02-01"),
        "b1_new": county.rental(GRID_B1, registered_on="2026-06-10", pledge=None),
    }
    county.deregister(r["b1_gone"], "2026-05-01")
    return r


def test_rental_metrics_at_the_town_and_at_a_community(registry, county):
    build_rentals(county)
    town = read(registry, "police")
    assert (town.code, town.level, town.as_of) == (TOWN, "township", TODAY)
    assert cells(town, "rental_registration") == {
        "total": (6, 6, 1.0, True, 0),
        COMMUNITY_A: (4, 4, 1.0, True, 0),
        COMMUNITY_B: (2, 2, 1.0, True, 0),
    }
    # Let rentals: A1 ×2, A2, community A; B1's new one (the vacant one is not let).
    assert cells(town, "pledge_signing") == {
        "total": (2, 5, 0.4, False, 3),  # "3 more pledges needed"
        COMMUNITY_A: (2, 4, 0.5, False, 2),
        COMMUNITY_B: (0, 1, 0.0, False, 1),
    }
    community = read(registry, "police", at=COMMUNITY_A)
    assert community.level == "community"
    assert cells(community, "pledge_signing") == {
        "total": (2, 4, 0.5, False, 2),
        GRID_A1: (1, 2, 0.5, False, 1),
        GRID_A2: (0, 1, 0.0, False, 1),
        "self": (1, 1, 1.0, True, 0),
    }
    self_row = rows_of(community, "pledge_signing")["self"]
    assert "filed at this level" in self_row.name and self_row.code == COMMUNITY_A
    assert not self_row.node
    # A grid is a leaf: its own row only.
    grid = read(registry, "police", at=GRID_A1)
    assert cells(grid, "rental_registration") == {"total": (2, 2, 1.0, True, 0)}
    assert cells(grid, "pledge_signing") == {"total": (1, 2, 0.5, False, 1)}


def test_rental_as_of_semantics(registry, county):
    build_rentals(county)
    # 15 April: B1's deregistered rental still counts (ended 1 May), the vacant one and the
    # new one are not registered yet.
    april = read(registry, "police", as_of="2026-04-15")
    assert april.as_of == date(2026, 4, 15)
    assert cells(april, "rental_registration")[COMMUNITY_B] == (1, 1, 1.0, True, 0)
    # 1 May: deregistered on that day, so no longer known.
    may = read(registry, "police", as_of="2026-05-01")
    assert cells(may, "rental_registration")[COMMUNITY_B] == (1, 1, 1.0, True, 0)  # the vacant
    assert cells(may, "rental_registration")["total"] == (5, 5, 1.0, True, 0)
    june = read(registry, "police", as_of="2026-06-09")
    assert cells(june, "rental_registration")[COMMUNITY_B] == (1, 1, 1.0, True, 0)
    assert cells(june, "pledge_signing")[COMMUNITY_B] == NA  # nothing let in B on 9 June


def test_pledge_validity_on_the_as_of_date(registry, county):
    build_rentals(county)
    # 1 March: the pledges of A1 and community A are signed on 2 March: not yet.
    first = read(registry, "police", at=COMMUNITY_A, as_of="2026-03-01")
    assert cells(first, "pledge_signing") == {
        "total": (0, 4, 0.0, False, 4), GRID_A1: (0, 2, 0.0, False, 2),
        GRID_A2: (0, 1, 0.0, False, 1), "self": (0, 1, 0.0, False, 1)}
    signed = read(registry, "police", at=COMMUNITY_A, as_of="2026-03-02")
    assert cells(signed, "pledge_signing")["total"] == (2, 4, 0.5, False, 2)
    # A2's pledge is valid until 1 January 2026 inclusive, and no longer on the 2nd.
    last_day = read(registry, "police", at=COMMUNITY_A, as_of="2026-01-01")
    assert cells(last_day, "pledge_signing")[GRID_A2] == (1, 1, 1.0, True, 0)
    after = read(registry, "police", at=COMMUNITY_A, as_of="2026-01-02")
    assert cells(after, "pledge_signing")[GRID_A2] == (0, 1, 0.0, False, 1)


def test_a_new_pledge_counts_from_its_signing(registry, county):
    rental = county.rental(GRID_A1, pledge=None)
    assert cells(read(registry, "police", at=GRID_A1), "pledge_signing")["total"] == (
        0, 1, 0.0, False, 1)
    county.pledge(rental, "2026-06-01", "2027-05-31")
    assert cells(read(registry, "police", at=GRID_A1), "pledge_signing")["total"] == (
        1, 1, 1.0, True, 0)
    assert cells(read(registry, "police", at=GRID_A1, as_of="2026-05-31"),
                 "pledge_signing")["total"] == (0, 1, 0.0, False, 1)


def test_a_renewed_pledge_still_counts_on_a_day_the_earlier_one_covered(registry, county):
    rental = county.rental(GRID_A1, registered_on="2026-01-05",
                           pledge=("2026-01-05", "2026-03-31"))
    county.pledge(rental, "2026-04-05", "2027-04-04")
    march = read(registry, "police", at=GRID_A1, as_of="2026-03-15")
    assert cells(march, "pledge_signing")["total"] == (1, 1, 1.0, True, 0)


def test_a_rental_deregistered_after_the_as_of_date_was_let_on_it(registry, county):
    rental = county.rental(GRID_A1, registered_on="2026-02-01", units=201)
    county.deregister(rental, "2026-05-01")
    april = read(registry, "police", at=GRID_A1, as_of="2026-04-15")
    assert cells(april, "rental_registration")["total"] == (1, 1, 1.0, True, 0)
    assert cells(april, "pledge_signing")["total"] == (1, 1, 1.0, True, 0)
    assert cells(april, "coordinator_staffing")["total"] == (0, 2, 0.0, False, 2)


def test_a_rental_missing_a_required_fact_is_not_complete(registry, county):
    county.rental(GRID_A1)
    incomplete = county.rental(GRID_A1, phone=False)
    actor = Actor(id=None, username="reader", role="police", scope=COUNTY)
    with registry.vault(actor) as vault:
        assert rentals.get(vault, incomplete, purpose=None).missing == ["landlord.phone"]
    assert cells(read(registry, "police", at=GRID_A1), "rental_registration")["total"] == (
        1, 2, 0.5, False, 1)


def test_resident_entry_and_its_as_of_semantics(registry, county):
    county.resident(GRID_A1)  # complete, arrived 1 May
    county.resident(GRID_A1, complete=False)  # no phone
    county.resident(GRID_A2, arrived_on="2026-06-10")
    left = county.resident(GRID_B1, arrived_on="2026-03-01")
    county.leave(left, "2026-06-01")
    county.resident(GRID_B1, arrived_on="2026-06-15")  # arrived today
    town = read(registry, "police")
    assert cells(town, "resident_entry") == {
        "total": (3, 4, 0.75, False, 1),
        COMMUNITY_A: (2, 3, 2 / 3, False, 1),
        COMMUNITY_B: (1, 1, 1.0, True, 0),
    }
    community = read(registry, "police", at=COMMUNITY_A)
    assert cells(community, "resident_entry") == {
        "total": (2, 3, 2 / 3, False, 1),
        GRID_A1: (1, 2, 0.5, False, 1),
        GRID_A2: (1, 1, 1.0, True, 0),
    }  # nothing filed on the community itself: no such row
    # 1 June: A2's resident had not arrived; B's left that very day; today's not yet here.
    june = read(registry, "police", as_of="2026-06-01")
    assert cells(june, "resident_entry") == {
        "total": (1, 2, 0.5, False, 1), COMMUNITY_A: (1, 2, 0.5, False, 1), COMMUNITY_B: NA}
    may = read(registry, "police", as_of="2026-05-31")
    assert cells(may, "resident_entry")[COMMUNITY_B] == (1, 1, 1.0, True, 0)


def test_a_move_counts_the_resident_once_on_each_side_of_the_day(registry, county):
    residency = county.resident(GRID_A1, arrived_on="2026-03-01")
    county.move(residency, GRID_B1, "2026-06-05")
    before = read(registry, "police", as_of="2026-06-04")
    on_the_day = read(registry, "police", as_of="2026-06-05")
    assert cells(before, "resident_entry") == {
        "total": (1, 1, 1.0, True, 0), COMMUNITY_A: (1, 1, 1.0, True, 0), COMMUNITY_B: NA}
    assert cells(on_the_day, "resident_entry") == {
        "total": (1, 1, 1.0, True, 0), COMMUNITY_A: NA, COMMUNITY_B: (1, 1, 1.0, True, 0)}


@pytest.fixture
def officer(registry) -> str:
    return make_user(registry, None, "corrections", COUNTY).username


def build_cases(county: County, officer: str) -> dict[str, object]:
    """A1: complete (reported, officer, checked in on schedule); reported without an officer
    (weekly check-ins, overdue since 14 May); ended on 1 June. A2: awaiting the report. B1:
    effective 1 June, complete; supervised through 2025 only."""
    c = {
        "a1_complete": county.case(GRID_A1, officer=officer),
        "a1_no_officer": county.case(GRID_A1, interval=7),
        "a1_ended": county.case(GRID_A1, effective_on="2026-04-01", reported_on="2026-04-03",
                                officer=officer),
        "a2_awaiting": county.case(GRID_A2, reported_on=None, officer=officer),
        "b1_new": county.case(GRID_B1, effective_on="2026-06-01", reported_on="2026-06-05",
                              officer=officer),
        "b1_over": county.case(GRID_B1, effective_on="2025-01-01", reported_on="2025-01-05",
                               supervision_end="2026-01-01", officer=officer),
    }
    county.case_status(c["a1_ended"], "ended", "2026-06-01")
    return c


def test_corrections_metrics_and_their_as_of_semantics(registry, county, officer):
    build_cases(county, officer)
    town = read(registry, "corrections")
    assert [r.metric for r in town.rows if r.node] == [
        "key_person_registration", "check_in_compliance"]
    assert cells(town, "key_person_registration") == {
        "total": (2, 4, 0.5, False, 2),
        COMMUNITY_A: (1, 3, 1 / 3, False, 2),
        COMMUNITY_B: (1, 1, 1.0, True, 0),
    }
    # Active cases under supervision (not the one awaiting its report): reported on the
    # target-less compliance metric, with no verdict and no gap.
    assert cells(town, "check_in_compliance") == {
        "total": (2, 3, 2 / 3, None, None),
        COMMUNITY_A: (1, 2, 0.5, None, None),
        COMMUNITY_B: (1, 1, 1.0, None, None),
    }
    assert rows_of(town, "check_in_compliance")["total"].target is None
    # 20 May: the ended case still under supervision; B's new case not yet in effect and the
    # old one over since 1 January.
    may = read(registry, "corrections", as_of="2026-05-20")
    assert cells(may, "key_person_registration") == {
        "total": (2, 4, 0.5, False, 2), COMMUNITY_A: (2, 4, 0.5, False, 2), COMMUNITY_B: NA}
    # 3 May: reported on the 5th, so not registered complete yet on the 3rd.
    early = read(registry, "corrections", as_of="2026-05-03")
    assert cells(early, "key_person_registration")[COMMUNITY_A] == (1, 4, 0.25, False, 3)
    # The weekly case is due on 12 May, within its grace on the 14th, overdue on the 15th; the
    # case that ended on 1 June was still under supervision (and compliant) on both days.
    grace = read(registry, "corrections", at=GRID_A1, as_of="2026-05-14")
    assert cells(grace, "check_in_compliance")["total"][:2] == (3, 3)
    fifteenth = read(registry, "corrections", at=GRID_A1, as_of="2026-05-15")
    assert cells(fifteenth, "check_in_compliance")["total"][:2] == (2, 3)
    # The case supervised through 2025 counts in 2025.
    past = read(registry, "corrections", at=GRID_B1, as_of="2025-12-31")
    assert cells(past, "key_person_registration")["total"] == (1, 1, 1.0, True, 0)


def test_an_absconded_case_is_not_compliant(registry, county, officer):
    case = county.case(GRID_A1, officer=officer)
    county.case_status(case, "absconded", "2026-06-10")
    assert cells(read(registry, "corrections", at=GRID_A1), "check_in_compliance")[
        "total"][:2] == (0, 1)


def build_releases(county: County) -> dict[str, object]:
    """A1: measures in place and placed on 1 May; no measures, not placed. A2: aftercare
    ended in March 2025; placement not needed. B1: released in July (a notice); closed on
    1 June."""
    r = {
        "a1_placed": county.release(GRID_A1),
        "a1_neither": county.release(GRID_A1, measures=False),
        "a2_over": county.release(GRID_A2, released_on="2024-03-01", years=1),
        "a2_not_needed": county.release(GRID_A2),
        "b1_future": county.release(GRID_B1, released_on="2026-07-01", measures=False),
        "b1_closed": county.release(GRID_B1, released_on="2026-03-01"),
    }
    county.place(r["a1_placed"], "placed", "2026-05-01")
    county.place(r["a2_not_needed"], "not_needed")
    county.close(r["b1_closed"], "2026-06-01")
    return r


def test_release_metrics_and_their_as_of_semantics(registry, county):
    build_releases(county)
    town = read(registry, "justice")
    # The bureau's share of key persons (handover notices) comes first.
    assert [r.metric for r in town.rows if r.node] == [
        "key_person_registration", "aftercare", "placement"]
    assert cells(town, "aftercare") == {
        "total": (2, 3, 2 / 3, False, 1), COMMUNITY_A: (2, 3, 2 / 3, False, 1),
        COMMUNITY_B: NA}
    assert cells(town, "placement") == {
        "total": (1, 2, 0.5, False, 1), COMMUNITY_A: (1, 2, 0.5, False, 1), COMMUNITY_B: NA}
    assert rows_of(town, "placement")["total"].target == 0.98
    community = read(registry, "justice", at=COMMUNITY_A)
    assert cells(community, "aftercare") == {
        "total": (2, 3, 2 / 3, False, 1), GRID_A1: (1, 2, 0.5, False, 1),
        GRID_A2: (1, 1, 1.0, True, 0)}
    assert cells(community, "placement") == {
        "total": (1, 2, 0.5, False, 1), GRID_A1: (1, 2, 0.5, False, 1), GRID_A2: NA}
    # 15 April: nobody placed yet; B's case open (closed 1 June).
    april = read(registry, "justice", as_of="2026-04-15")
    assert cells(april, "aftercare") == {
        "total": (3, 4, 0.75, False, 1), COMMUNITY_A: (2, 3, 2 / 3, False, 1),
        COMMUNITY_B: (1, 1, 1.0, True, 0)}
    assert cells(april, "placement") == {
        "total": (0, 3, 0.0, False, 3), COMMUNITY_A: (0, 2, 0.0, False, 2),
        COMMUNITY_B: (0, 1, 0.0, False, 1)}
    # The case whose aftercare ended on 1 March 2025 counted on that day, not the next.
    assert cells(read(registry, "justice", at=GRID_A2, as_of="2025-03-01"),
                 "aftercare")["total"] == (1, 1, 1.0, True, 0)
    assert cells(read(registry, "justice", at=GRID_A2, as_of="2025-03-02"),
                 "aftercare")["total"] == NA


@pytest.mark.parametrize(("num", "den", "met", "gap"), [
    (49, 50, True, 0),  # exactly 98%: 0.98 × 50 is not quite 49 in floating point
    (48, 50, False, 1),
    (98, 100, True, 0),
    (97, 100, False, 1),
    (50, 51, True, 0),  # 98.04%
    (49, 51, False, 1),  # 0.98 × 51 = 49.98: 50 needed
    (9, 10, False, 1),
    (0, 3, False, 3),
])
def test_placement_target_and_gap_rounding(num, den, met, gap):
    row = service._row(BY_KEY["placement"], TOWN, "城关街道", num, den, is_node=True,
                       num_label=None, den_label=None)
    assert (row.rate, row.target, row.met, row.gap) == (num / den, 0.98, met, gap)


def test_the_full_target_and_a_zero_denominator():
    metric = BY_KEY["pledge_signing"]
    short = service._row(metric, TOWN, "n", 2, 5, is_node=True, num_label=None, den_label=None)
    assert (short.met, short.gap, short.note) == (False, 3, "")
    empty = service._row(metric, TOWN, "n", 0, 0, is_node=True, num_label=None, den_label=None)
    assert (empty.numerator, empty.denominator, empty.rate, empty.met, empty.gap) == (
        0, 0, None, None, None)
    assert "not applicable" in empty.note and "不适用" in empty.note
    assert not empty.suppressed


def test_an_empty_county_reports_every_metric_as_not_applicable(registry):
    for role in ("police", "leadership"):
        report = read(registry, role)
        assert report.rows
        for row in report.rows:
            assert (row.numerator, row.denominator, row.rate, row.met, row.gap) == (
                0, 0, None, None, None), row
            assert "not applicable" in row.note and not row.suppressed


def test_the_roll_up_is_the_sum_of_the_children(registry, county, officer):
    build_rentals(county)
    county.resident(GRID_A1)
    county.resident(GRID_B1, complete=False)
    build_cases(county, officer)
    build_releases(county)
    for role in ("police", "corrections", "justice"):
        for at in (COUNTY, TOWN, COMMUNITY_A):
            report = read(registry, role, at=at)
            for metric in {r.metric for r in report.rows} - {"coordinator_staffing"}:
                rows = rows_of(report, metric)
                parts = [r for k, r in rows.items() if k != "total"]
                assert rows["total"].numerator == sum(r.numerator for r in parts), (at, metric)
                assert rows["total"].denominator == sum(r.denominator for r in parts)
    # The county sees the town as its one child, with the town's own totals.
    county_report, town = read(registry, "police", at=COUNTY), read(registry, "police")
    for metric in POLICE_KEYS:
        assert cells(county_report, metric)[TOWN] == cells(town, metric)["total"]


# --- staffing --------------------------------------------------------------------------------


def test_staffing_is_coordinators_against_residents_and_rental_households(registry, county):
    county.resident(GRID_A1)  # 1 resident: 1 coordinator needed
    county.coordinator(GRID_A1)
    county.rental(GRID_B1, units=201)  # 201 let households: 2 coordinators needed
    county.rental(GRID_A1, units=500, status="vacant")  # not let: no households
    county.coordinator(GRID_B1)
    town = read(registry, "police")
    # The town: max(⌈2 ÷ 500⌉, ⌈201 ÷ 200⌉) = 2, with 2 on the roster.
    assert cells(town, "coordinator_staffing") == {
        "total": (2, 2, 1.0, True, 0),
        COMMUNITY_A: (1, 1, 1.0, True, 0),
        COMMUNITY_B: (1, 2, 0.5, False, 1),
    }
    # Leadership sees the same, never suppressed: a roster and a head-count are not counts
    # of the registers' subjects.
    lead = rows_of(read(registry, "leadership"), "coordinator_staffing")
    assert {k: (r.numerator, r.denominator, r.suppressed) for k, r in lead.items()} == {
        "total": (2, 2, False), COMMUNITY_A: (1, 1, False), COMMUNITY_B: (1, 2, False)}
    assert lead[COMMUNITY_B].gap == 1
    # A coordinator without anything to staff: nothing required, not applicable.
    county.coordinator(GRID_A2)
    community = read(registry, "police", at=COMMUNITY_A)
    assert cells(community, "coordinator_staffing") == {
        "total": (2, 1, 2.0, True, 0), GRID_A1: (1, 1, 1.0, True, 0),
        GRID_A2: (1, 0, None, None, None)}
    assert "not applicable" in rows_of(community, "coordinator_staffing")[GRID_A2].note


def test_staffing_counts_residents_present_on_the_as_of_date(registry, county):
    county.coordinator(GRID_A1)
    county.resident(GRID_B1, arrived_on="2026-05-01")
    county.resident(GRID_A1, arrived_on="2026-06-10")
    assert cells(read(registry, "police", at=GRID_A1), "coordinator_staffing")["total"] == (
        1, 1, 1.0, True, 0)
    assert cells(read(registry, "police", at=GRID_A1, as_of="2026-06-09"),
                 "coordinator_staffing")["total"] == (1, 0, None, None, None)


# --- suppression -----------------------------------------------------------------------------


def residents_in(county: County, counts: dict[str, int]) -> None:
    for code, n in counts.items():
        for _ in range(n):
            county.resident(code)


def derivable(report: Report, metric: str, column: str) -> list[str]:
    """Children whose hidden count follows from the parent minus the shown siblings: a lone
    hidden cell, or hidden cells that can only be all ones (each is at least one)."""
    rows = rows_of(report, metric)
    parent = getattr(rows["total"], column)
    children = {k: getattr(r, column) for k, r in rows.items() if k != "total"}
    hidden = [k for k, v in children.items() if not isinstance(v, int)]
    if not isinstance(parent, int) or not hidden:
        return []
    rest = parent - sum(v for v in children.values() if isinstance(v, int))
    if len(hidden) == 1 or rest == len(hidden):
        return hidden
    return []


@pytest.fixture
def siblings(registry, county):
    """Town: A = 3, B = 7, C = 9 residents present, all complete."""
    add_community_c(registry)
    residents_in(county, {GRID_A1: 3, GRID_B1: 7, COMMUNITY_C: 9})


def test_leadership_small_counts_and_their_complement_are_suppressed(registry, siblings):
    report = read(registry, "leadership")
    rows = rows_of(report, "resident_entry")
    assert (rows["total"].numerator, rows["total"].denominator, rows["total"].rate,
            rows["total"].met, rows["total"].suppressed) == (19, 19, 1.0, True, False)
    a, b, c = rows[COMMUNITY_A], rows[COMMUNITY_B], rows[COMMUNITY_C]
    assert (a.numerator, a.denominator, a.rate, a.met, a.gap, a.suppressed) == (
        SMALL, SMALL, None, None, None, True)
    # B (7) is the smallest other cell: hidden too, so A cannot be had as 19 − 7 − 9.
    assert b.numerator != 7 and b.denominator != 7
    assert (b.rate, b.met, b.gap, b.suppressed) == (None, None, None, True)
    assert (c.numerator, c.denominator, c.rate, c.met, c.gap, c.suppressed) == (
        9, 9, 1.0, True, 0, False)
    for column in ("numerator", "denominator"):
        assert derivable(report, "resident_entry", column) == []


def test_police_get_exact_counts_of_what_they_may_list(registry, siblings):
    rows = rows_of(read(registry, "police"), "resident_entry")
    assert {k: (r.numerator, r.denominator, r.suppressed) for k, r in rows.items()} == {
        "total": (19, 19, False), COMMUNITY_A: (3, 3, False), COMMUNITY_B: (7, 7, False),
        COMMUNITY_C: (9, 9, False)}
    assert rows[COMMUNITY_A].rate == 1.0 and rows[COMMUNITY_A].met is True


def test_police_small_rental_counts_are_not_suppressed(registry, county):
    county.rental(GRID_A1)
    county.rental(GRID_B1, pledge=None)
    police = read(registry, "police")
    for metric in ("rental_registration", "pledge_signing"):
        assert all(not r.suppressed for r in police.rows if r.metric == metric)
    assert cells(police, "pledge_signing") == {
        "total": (1, 2, 0.5, False, 1), COMMUNITY_A: (1, 1, 1.0, True, 0),
        COMMUNITY_B: (0, 1, 0.0, False, 1)}
    # Leadership: the same cells, suppressed (1s and 2s), zeros shown.
    lead = rows_of(read(registry, "leadership"), "pledge_signing")
    assert (lead["total"].numerator, lead["total"].denominator) == (SMALL, SMALL)
    assert (lead[COMMUNITY_B].numerator, lead[COMMUNITY_B].denominator) == (0, SMALL)
    assert all(r.suppressed and r.rate is None and r.gap is None and r.met is None
               for r in lead.values())


def test_a_lone_small_cell_beside_zeros_hides_the_parent_too(registry, county):
    residents_in(county, {GRID_A1: 2})
    rows = rows_of(read(registry, "leadership"), "resident_entry")
    assert (rows["total"].numerator, rows[COMMUNITY_A].numerator,
            rows[COMMUNITY_B].numerator) == (SMALL, SMALL, 0)


def test_the_complement_cell_does_not_claim_to_be_below_five(registry, siblings):
    b = rows_of(read(registry, "leadership"), "resident_entry")[COMMUNITY_B]
    assert b.suppressed and b.numerator != SMALL


@pytest.mark.parametrize("small", [1, 4])
def test_two_small_cells_cannot_be_recovered_from_the_parent(registry, county, small):
    add_community_c(registry)
    residents_in(county, {GRID_A1: small, GRID_B1: small, COMMUNITY_C: 9})
    report = read(registry, "leadership")
    for column in ("numerator", "denominator"):
        rows = rows_of(report, "resident_entry")
        small = [k for k, r in rows.items() if k != "total" and getattr(r, column) == SMALL]
        complements = [k for k, r in rows.items() if k != "total" and getattr(r, column) == "*"]
        rest = getattr(rows["total"], column) - sum(
            getattr(r, column) for k, r in rows.items()
            if k != "total" and isinstance(getattr(r, column), int))
        # Each "<5" cell is 1–4 and a "*" cell any count: the hidden sum must leave more than
        # one way to split it.
        assert len(small) + len(complements) != 1, column
        if not complements:
            assert len(small) < rest < 4 * len(small), (column, rest)


def test_the_complement_is_not_published_by_its_own_report(registry, siblings):
    town = rows_of(read(registry, "leadership"), "resident_entry")
    known = {k: r.numerator for k, r in town.items() if isinstance(r.numerator, int)}
    for child in (COMMUNITY_A, COMMUNITY_B, COMMUNITY_C):
        own = rows_of(read(registry, "leadership", at=child), "resident_entry")["total"]
        if isinstance(own.numerator, int):
            known[child] = own.numerator
    unknown = [c for c in (COMMUNITY_A, COMMUNITY_B, COMMUNITY_C) if c not in known]
    assert len(unknown) != 1, f"{unknown} = parent minus {known}"


def test_a_hidden_node_hides_its_children_in_its_own_report(registry, siblings):
    """B (7) is the town's complement: its own report hides its total the same way, and its
    grid too, which would add up to it; every node's cell reads the same in every report."""
    town = rows_of(read(registry, "leadership"), "resident_entry")
    own = read(registry, "leadership", at=COMMUNITY_B)
    rows = rows_of(own, "resident_entry")
    assert rows["total"].numerator == town[COMMUNITY_B].numerator == "*"
    assert rows[GRID_B1].numerator == "*" and rows[GRID_B1].rate is None
    grid = rows_of(read(registry, "leadership", at=GRID_B1), "resident_entry")["total"]
    assert grid.numerator == "*" and grid.rate is None
    # The shown sibling reads the same from its own report.
    assert rows_of(read(registry, "leadership", at=COMMUNITY_C), "resident_entry")[
        "total"].numerator == town[COMMUNITY_C].numerator == 9


def test_suppression_in_the_trend_hides_small_node_rates(registry, county):
    residents_in(county, {GRID_A1: 2})
    actor = Actor(id=None, username="lead", role="leadership", scope=COUNTY)
    with registry.vault(actor) as vault:
        points = service.trend(vault, at=TOWN, start=date(2026, 5, 1), end=TODAY)
    entry = [p for p in points if p.metric == "resident_entry"]
    assert [p.as_of for p in entry] == [date(2026, 5, 31), TODAY]
    assert all(p.rate is None for p in entry)


# --- who sees what ---------------------------------------------------------------------------


def last_event(session) -> AuditEvent:
    event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    session.expunge(event)
    return event


class Api(CheckedApi):
    def metrics(self, user, **params):
        return self.get("/metrics", user, params=params)


@pytest.fixture
def api(registry, client) -> Api:
    return Api(registry, client)


@pytest.mark.parametrize(("role", "keys"), [
    ("police", POLICE_KEYS),
    ("coordinator", ["rental_registration", "pledge_signing", "resident_entry"]),
    ("justice", ["key_person_registration", "aftercare", "placement"]),
    ("corrections", ["key_person_registration", "check_in_compliance"]),
    ("leadership", ALL_KEYS),
])
def test_each_role_sees_its_metrics(registry, client, api, role, keys):
    user = make_user(registry, client, role, COUNTY)
    response = api.metrics(user, at=TOWN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(dict.fromkeys(r["metric"] for r in body["rows"])) == keys
    assert [r["code"] for r in body["rows"] if r["node"]] == [TOWN] * len(keys)


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_administrators_get_403(registry, client, api, role):
    user = make_user(registry, client, role, COUNTY)
    response = api.metrics(user)
    assert response.status_code == 403
    assert api.get("/metrics/report.xlsx", user).status_code == 403
    assert api.get("/metrics/resident_entry/chart.svg", user).status_code == 403
    assert client.get("/metrics/trend", params={"from": "2026-06-01", "to": "2026-06-15"},
                      headers=user.headers).status_code == 403
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.outcome, event.actor) == (
        "metrics", "read", "denied", user.username)


def test_without_a_token_401(client):
    assert client.get("/metrics").status_code == 401


def test_default_node_is_the_callers_own(registry, client, api):
    user = make_user(registry, client, "police", COMMUNITY_A)
    body = api.metrics(user).json()
    assert (body["code"], body["level"], body["as_of"]) == (COMMUNITY_A, "community",
                                                            "2026-06-15")


@pytest.mark.parametrize("at", [COMMUNITY_B, "330199001009", COUNTY])
def test_a_node_outside_scope_or_unknown_is_404_and_audited(registry, client, api, county, at):
    county.resident(GRID_B1)
    user = make_user(registry, client, "police", COMMUNITY_A)
    response = api.metrics(user, at=at)
    assert response.status_code == 404
    absent = api.metrics(user, at="330199001009")
    assert response.json() == absent.json()  # outside scope answers as absent
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.outcome, event.record_id) == (
        "metrics", "read", "denied", "330199001009")
    assert api.metrics(user, at="3301990").status_code == 422  # not a code at all


def test_as_of_in_the_future_or_before_the_first_record_is_422(registry, client, api, county):
    county.rental(GRID_A1, registered_on="2026-01-10", pledge=None)
    user = make_user(registry, client, "police", COUNTY)
    future = api.metrics(user, as_of="2026-06-16")
    assert future.status_code == 422 and future.json()["error"]["field"] == "as_of"
    early = api.metrics(user, as_of="2026-01-09")
    assert early.status_code == 422 and early.json()["error"]["field"] == "as_of"
    assert "2026-01-10" in early.json()["error"]["message"]
    assert api.metrics(user, as_of="2026-01-10").status_code == 200
    assert api.metrics(user, as_of="2026-06-15").status_code == 200
    assert api.metrics(user, as_of="15/06/2026").status_code == 422


def test_the_early_as_of_refusal_names_no_hidden_date(registry, client, api, county, officer):
    county.case(GRID_B1, effective_on="2025-03-07", reported_on="2025-03-09", officer=officer)
    county.rental(GRID_A1, registered_on="2026-01-10", pledge=None)
    user = make_user(registry, client, "police", COMMUNITY_A)
    response = api.metrics(user, as_of="2025-01-01")
    assert response.status_code == 422
    assert "2025-03-07" not in response.text


def test_the_audit_event_of_a_read_names_node_metrics_and_date_only(registry, client, api,
                                                                     county):
    county.resident(GRID_A1)
    county.rental(GRID_A1)
    user = make_user(registry, client, "police", COUNTY)
    response = api.metrics(user, at=TOWN, as_of="2026-06-01")
    assert response.status_code == 200
    with registry.db.session() as session:
        event = last_event(session)
    assert (event.kind, event.action, event.outcome, event.record_id, event.jurisdiction_code,
            event.actor, event.role) == ("metrics", "read", "ok", TOWN, TOWN, user.username,
                                         "police")
    assert event.fields.split(",") == POLICE_KEYS
    assert event.detail == "as_of=2026-06-01"
    assert event.refs == "" and event.purpose is None
    text = " ".join(str(getattr(event, c)) for c in (
        "fields", "refs", "detail", "record_id", "purpose"))
    for value in county.names:
        assert value not in text and value not in response.text


# --- trend -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end", "days"), [
    ("2026-01-15", "2026-04-10", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-10"]),
    ("2026-01-15", "2026-03-31", ["2026-01-31", "2026-02-28", "2026-03-31"]),
    ("2026-06-15", "2026-06-15", ["2026-06-15"]),
    ("2026-01-31", "2026-02-01", ["2026-01-31", "2026-02-01"]),
    ("2023-12-20", "2024-03-01", ["2023-12-31", "2024-01-31", "2024-02-29", "2024-03-01"]),
])
def test_month_ends(start, end, days):
    assert service.month_ends(date.fromisoformat(start), date.fromisoformat(end)) == [
        date.fromisoformat(d) for d in days]


def test_the_trend_over_months(registry, client, county):
    county.resident(GRID_A1, arrived_on="2026-01-10")
    county.resident(GRID_A1, arrived_on="2026-02-20", complete=False)
    county.resident(GRID_B1, arrived_on="2026-04-05")
    user = make_user(registry, client, "police", COUNTY)
    response = client.get("/metrics/trend", headers=user.headers,
                          params={"from": "2026-01-15", "to": "2026-04-10", "at": TOWN})
    assert response.status_code == 200, response.text
    points = response.json()
    assert {p["metric"] for p in points} == set(POLICE_KEYS)
    entry = [(p["as_of"], p["rate"], p["target"]) for p in points
             if p["metric"] == "resident_entry"]
    assert entry == [("2026-01-31", 1.0, 1.0), ("2026-02-28", 0.5, 1.0),
                     ("2026-03-31", 0.5, 1.0), ("2026-04-10", 2 / 3, 1.0)]
    pledge = [p["rate"] for p in points if p["metric"] == "pledge_signing"]
    assert pledge == [None] * 4  # no rentals: not applicable
    assert all(p["name_zh"] for p in points)


def test_trend_refusals(registry, client, county):
    county.resident(GRID_A1, arrived_on="2026-01-10")
    user = make_user(registry, client, "police", COUNTY)

    def trend(start: str, end: str):
        return client.get("/metrics/trend", headers=user.headers,
                          params={"from": start, "to": end})

    backwards = trend("2026-04-01", "2026-03-01")
    assert backwards.status_code == 422 and backwards.json()["error"]["field"] == "to"
    assert trend("2020-01-01", "2026-01-10").status_code == 422  # over five years
    assert trend("2025-11-01", "2025-12-31").status_code == 422  # all before the first record
    # A trend reaching back before the first record starts at it.
    early = trend("2025-12-01", "2026-02-01")
    assert early.status_code == 200
    assert min(p["as_of"] for p in early.json()) == "2026-01-31"
    assert trend("2026-05-01", "2026-06-16").status_code == 422  # into the future
    assert client.get("/metrics/trend", headers=user.headers).status_code == 422


def test_a_trend_request_leaves_one_audit_event(registry, client, api, county):
    county.resident(GRID_A1, arrived_on="2026-01-10")
    user = make_user(registry, client, "police", COUNTY)
    response = api.get("/metrics/trend", user, params={"from": "2026-01-15",
                                                       "to": "2026-04-10"})
    assert response.status_code == 200


# --- exports ---------------------------------------------------------------------------------


def test_the_xlsx_report(registry, client, api, siblings):
    user = make_user(registry, client, "leadership", COUNTY)
    response = api.get("/metrics/report.xlsx", user, params={"at": TOWN, "as_of": "2026-06-15"})
    assert response.status_code == 200
    with registry.db.session() as session:  # a file leaving the system: the auditors' exports
        last = session.execute(select(AuditEvent.action, AuditEvent.detail)
                               .order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert tuple(last) == ("export", "as_of=2026-06-15;format=xlsx")
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f"metrics-{TOWN}-2026-06-15.xlsx" in response.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    metrics = [BY_KEY[k] for k in ALL_KEYS]
    assert book.sheetnames == ["汇总", *(m.zh[:31] for m in metrics)]
    headers = list(export.HEADERS.values())
    summary = list(book["汇总"].iter_rows(values_only=True))
    assert "城关街道" in summary[0][0] and TOWN in summary[0][0] and "2026-06-15" in summary[0][0]
    assert list(summary[2]) == headers
    assert [r[0] for r in summary[3:]] == [m.zh for m in metrics]
    assert {r[1] for r in summary[3:]} == {TOWN}
    sheet = list(book["暂住人口信息录入率"].iter_rows(values_only=True))
    assert list(sheet[0]) == headers
    by_code = {r[1]: r for r in sheet[1:]}
    assert set(by_code) == {TOWN, COMMUNITY_A, COMMUNITY_B, COMMUNITY_C}
    assert (by_code[TOWN][3], by_code[TOWN][4], by_code[TOWN][5], by_code[TOWN][7]) == (
        19, 19, "100.0%", "达标")
    assert (by_code[COMMUNITY_A][3], by_code[COMMUNITY_A][5]) == (SMALL, None)
    placement = list(book["安置率"].iter_rows(values_only=True))
    assert placement[1][6] == "≥98%"
    compliance = list(book["社区矫正报到合规率"].iter_rows(values_only=True))
    assert compliance[1][6] == "—"


def test_the_csv_report_has_chinese_headers_and_the_gap(registry, county):
    build_rentals(county)
    text = export.to_csv(read(registry, "police"))
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == list(export.HEADERS.values())
    pledge = [r for r in table[1:] if r[0] == "治安责任保证书签订率"]
    assert pledge[0][1:] == [TOWN, "城关街道", "2", "5", "40.0%", "≥100%", "未达标", "3", ""]


def _svg(response) -> ET.Element:
    assert response.headers["content-type"].startswith("image/svg+xml")
    return ET.fromstring(response.text)


SVG = "{http://www.w3.org/2000/svg}"


def test_the_chart_has_one_bar_per_child_with_its_rate(registry, client, api, county):
    build_rentals(county)
    user = make_user(registry, client, "police", COUNTY)
    root = _svg(api.get("/metrics/pledge_signing/chart.svg", user, params={"at": COMMUNITY_A}))
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 3  # grid A1, grid A2 and the records filed on the community itself
    assert [b.find(f"{SVG}title").text for b in bars] == ["50.0%", "0.0%", "100.0%"]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any("东门第一网格" in t for t in texts) and "目标 100%" in texts
    assert {"50.0%", "0.0%", "100.0%"} <= set(texts)
    assert len(root.findall(f"{SVG}line")) == 1  # the target


def test_the_chart_leaves_suppressed_children_blank(registry, client, api, siblings):
    user = make_user(registry, client, "leadership", COUNTY)
    root = _svg(api.get("/metrics/resident_entry/chart.svg", user, params={"at": TOWN}))
    assert len(root.findall(f"{SVG}rect")) == 1  # C only; A and its complement B are hidden
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert texts.count(SMALL) == 2


def test_a_chart_without_a_target_and_an_unknown_metric(registry, client, api, county, officer):
    build_cases(county, officer)
    user = make_user(registry, client, "corrections", COUNTY)
    root = _svg(api.get("/metrics/check_in_compliance/chart.svg", user))
    assert not root.findall(f"{SVG}line")
    assert len(root.findall(f"{SVG}rect")) == 1  # the county's one child: the town
    assert client.get("/metrics/nonsense/chart.svg", headers=user.headers).status_code == 404


def test_a_chart_of_a_metric_the_role_may_not_see_is_an_audited_404(registry, client, api):
    user = make_user(registry, client, "police", COUNTY)
    assert api.get("/metrics/aftercare/chart.svg", user).status_code == 404


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_lines():
    base = dict(metric="pledge_signing", name_zh="治安责任保证书签订率",
                name_en="security pledge signing rate", code=GRID_A1, name="东门第一网格",
                node=False, target=1.0)
    short = MetricRow(**base, numerator=2, denominator=5, rate=0.4, met=False, gap=3)
    line = _line(short)
    assert line.startswith("  东门第一网格 330199001001001")
    assert "2 / 5" in line and "40.0%" in line and "short 未达标, 3 more 还需3" in line
    met = MetricRow(**{**base, "node": True}, numerator=5, denominator=5, rate=1.0, met=True,
                    gap=0)
    assert _line(met).startswith("东门第一网格") and "100.0%" in _line(met)
    assert _line(met).endswith("met 达标")
    hidden = MetricRow(**base, numerator=SMALL, denominator=SMALL, rate=None, met=None,
                       gap=None, suppressed=True)
    assert "<5 / <5" in _line(hidden) and _line(hidden).endswith("suppressed 已隐藏")
    empty = MetricRow(**base, numerator=0, denominator=0, rate=None, met=None, gap=None,
                      note="不适用：分母为0 (not applicable: nothing to count)")
    assert _line(empty).endswith("not applicable: nothing to count)")


runner = CliRunner()
CLI_PASSWORDS = {"leadership": "demo-leadership", "police_a": "demo-police-a",
                 "justice": "demo-justice", "auditor": "demo-auditor"}


def cli_env(home) -> dict[str, str | None]:
    return {"REGISTRY_DATA_DIR": str(home), "REGISTRY_ENVIRONMENT": "test",
            "REGISTRY_ARGON2_TIME_COST": "1", "REGISTRY_ARGON2_MEMORY_KIB": "64",
            "REGISTRY_TIMEZONE": "UTC", "REGISTRY_DATABASE_URL": None,
            "REGISTRY_KEY_FILE": None, "REGISTRY_PASSWORD": None}


def invoke(home, *args: str, password: str | None = None):
    """The CLI in-process against the on-disk registry in ``home`` (the environment is set
    for the call only)."""
    get_settings.cache_clear()
    try:
        return runner.invoke(app, list(args),
                             env={**cli_env(home), "REGISTRY_PASSWORD": password})
    finally:
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """An on-disk SQLite registry with the demo county (dated from the real today)."""
    home = tmp_path_factory.mktemp("cli-metrics")
    result = invoke(home, "init", "--demo", "--scale", "0.05")
    assert result.exit_code == 0, result.output
    return home


def metrics_cli(home, user: str, *args: str):
    return invoke(home, "metrics", "--as", user, *args, password=CLI_PASSWORDS[user])


def test_cli_table_json_csv_and_xlsx(demo_home):
    home = demo_home
    table = metrics_cli(home, "leadership", "--at", "330199001")
    assert table.exit_code == 0, table.output
    assert table.output.startswith("城关街道 (330199001) — as of ")
    for metric in (*METRICS, STAFFING):
        assert f"{metric.zh} / {metric.en}" in table.output
    assert "已隐藏" in table.output or "达标" in table.output

    as_json = metrics_cli(home, "justice", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert report["code"] == COUNTY and report["level"] == "county"
    assert {r["metric"] for r in report["rows"]} == {
        "key_person_registration", "aftercare", "placement"}
    for metric in ("aftercare", "placement"):
        rows = [r for r in report["rows"] if r["metric"] == metric]
        assert rows[0]["node"] and rows[0]["numerator"] == sum(r["numerator"] for r in rows[1:])

    as_csv = metrics_cli(home, "police_a", "--format", "csv", "--as-of",
                         report["as_of"])
    assert as_csv.exit_code == 0, as_csv.output
    table_rows = list(csv.reader(io.StringIO(as_csv.output.strip())))
    assert table_rows[0] == list(export.HEADERS.values())
    assert {r[0] for r in table_rows[1:]} == {BY_KEY[k].zh for k in POLICE_KEYS}
    assert {r[1] for r in table_rows[1:]} <= {"330199001001", "330199001001001",
                                               "330199001001002"}

    out = home / "report.xlsx"
    xlsx = metrics_cli(home, "leadership", "--format", "xlsx", "--out", str(out))
    assert xlsx.exit_code == 0, xlsx.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames[0] == "汇总" and len(book.sheetnames) == 1 + len(ALL_KEYS)

    csv_out = home / "report.csv"
    written = metrics_cli(home, "police_a", "--format", "csv", "--out", str(csv_out))
    assert written.exit_code == 0 and csv_out.read_bytes().startswith(b"\xef\xbb\xbf")
    # The table and the JSON were reads; the files (and CSV) left the system: exports.
    conn = sqlite3.connect(home / "registry.sqlite3")
    recorded = [row[0] for row in conn.execute(
        "SELECT action FROM audit_event WHERE kind = 'metrics' ORDER BY seq DESC LIMIT 5")]
    conn.close()
    assert recorded == ["export", "export", "export", "read", "read"]


def test_cli_trend_and_refusals(demo_home):
    home = demo_home
    today = json.loads(metrics_cli(home, "justice", "--format", "json").output)["as_of"]
    first = date.fromisoformat(today).replace(day=1).isoformat()
    trend = metrics_cli(home, "police_a", "--from", first, "--to", today)
    assert trend.exit_code == 0, trend.output
    points = json.loads(trend.output)
    assert {p["as_of"] for p in points} == {today}
    assert {p["metric"] for p in points} == set(POLICE_KEYS)

    for args, message in ((["--format", "xlsx"], "--out"),
                          (["--as-of", "yesterday"], "--as-of"),
                          (["--as-of", "2999-01-01"], "as_of"),
                          (["--from", first], "--from"),
                          (["--at", "330199001002"], "not found")):
        result = metrics_cli(home, "police_a", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    refused = metrics_cli(home, "auditor")
    assert refused.exit_code == 2 and "may not" in refused.output


def test_key_persons_include_the_bureaus_handover_notices(registry, county, officer):
    """Key persons come from both offices' cases: corrections transfers (complete: reported,
    with an officer) and prison releases notified by a handover notice (complete: an
    aftercare group assigned). Each office sees its own share; leadership both."""
    county.case(GRID_A1, officer=officer)  # complete
    county.case(GRID_A1, officer=None)  # no officer
    county.release(GRID_A1, notice_on="2026-03-20", group="社区民警、司法所干部")  # complete
    county.release(GRID_A1, notice_on="2026-03-20")  # no aftercare group
    county.release(GRID_A1)  # no handover notice: not a notified key person
    key = "key_person_registration"
    assert cells(read(registry, "corrections", at=GRID_A1), key)["total"][:2] == (1, 2)
    assert cells(read(registry, "justice", at=GRID_A1), key)["total"][:2] == (1, 2)
    # Leadership counts both shares (shown suppressed, as every count below five is).
    actor = make_user(registry, None, "leadership", COUNTY).actor
    with registry.vault(actor) as vault:
        node = vault.metrics.node(COMMUNITY_A)
        [counts] = [c for c in vault.metrics.count(node, FIXED_NOW.date()) if c.metric.key == key]
    assert not counts.exact
    assert tuple(map(sum, zip(*counts.buckets.values(), strict=True))) == (2, 4)
