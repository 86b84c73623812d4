"""The route matrix: every route × every role × (in scope, out of scope, anonymous).

``ROUTES`` below declares, for each route of the API, who may call it and how a refusal must
look. The cells are generated from it, and ``test_every_route_has_a_declared_decision`` fails
on any route of ``app.routes`` without a declaration (and on any declaration that is no longer
a route), so a new endpoint cannot ship without a decision here.

What a cell proves:

* the status: success for an allowed role in scope; for a record the caller may not see (out
  of scope, or a role that may not read it) 404, answered exactly as for a record that does
  not exist; 403 for a collection action the role lacks, or for a record action the role lacks
  on a record it may read; 401 without a token;
* every denial leaves exactly one audit event, outcome ``denied``, naming the actor (and, for
  a record, its id); every success leaves exactly one event, ``ok``, by the caller (with the
  purpose, when one was stated), except reads of the caller's own session and of reference
  data, and the routes whose events are declared one by one (``Rule.trail``): an import's
  (the row's, then the batch's; a row out of scope leaves its denial instead of its own);
  where declared (``Rule.logged``), that one event says what was accessed: its kind and
  action, the record it names, the records it refers to, how its detail begins;
* no refusal, and no out-of-scope listing, carries a personal value of the fixture, nor does
  any audit event; no success does either unless X-Purpose is given to a personal-data
  register (``REGISTERS``, and the routes that answer with a register's records from outside
  one: ``Rule.shows_records``) — writes included, since they answer with the record — except
  where an answer echoes the request's own cells back by design (``Rule.echoes``), which may
  hold what the request sent and nothing else;
* a collection (list, search, audit query) shows the fixture record in scope and hides it
  out of scope; an import's summary counts its row imported in scope, rejected out of scope.

Two more kinds of cell, for the roles a route allows, in scope:

* ``with_purpose``: the same call with X-Purpose (every register route takes one, and every
  route that shows a register's records) succeeds and puts the purpose on its audit event;
* ``sealed`` / ``sealed_with_purpose``: for the corrections and release registers, against
  juvenile cases — without a purpose they answer 404 like an absent record even to their own
  office, and no list shows them; with one they open as any other case.

A cell where the implementation is believed wrong is declared with the correct expectation and
marked ``xfail(strict=True, raises=<the specific check>)``: any other failure in that cell is
still a failure, and a fix turns the cell into an XPASS that asks for the mark to be removed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, fields
from datetime import date
from enum import Enum
from functools import cached_property
from operator import attrgetter
from types import MappingProxyType

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry.api import PUBLIC_PATHS, create_app
from registry.audit.schemas import DisclosureQuery, Format, Period
from registry.breakglass.schemas import GrantKind
from registry.config import Environment
from registry.coordinators import service as coordinators
from registry.coordinators.schemas import CoordinatorIn
from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate
from registry.deps import get_purpose, get_token
from registry.errors import RegistryError
from registry.metrics.routes import XLSX
from registry.models import AuditEvent
from registry.releases import service as releases
from registry.releases.schemas import ReleaseCreate
from registry.rentals import service as rentals
from registry.rentals.schemas import Deregistration, RentalCreate
from registry.residents import service as residents
from registry.residents.schemas import ArrivalIn
from registry.security.authz import Role
from registry.validation import parse_id_number
from registry.vault.accounts import system_actor
from registry.vault.anomalies import item_id
from registry.vault.base import Actor
from registry.web import PREFIX as WEB_PREFIX
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    GRID_A1,
    PASSWORD,
    TOWN,
    id_number,
    make_user,
    rental_body,
)

ROLES = tuple(role.value for role in Role)
ALL = frozenset(ROLES)
FIELD_ROLES = frozenset({"police", "coordinator"})
POLICE = frozenset({"police"})
CORRECTIONS_OFFICE = frozenset({"corrections"})
JUSTICE_BUREAU = frozenset({"justice"})
ROSTER_KEEPERS = frozenset({"police", "admin"})
# Targets: every role that files or leads; not the auditors, not the administrators.
AUDITORS = frozenset({"auditor"})
METRICS_READERS = frozenset({"police", "coordinator", "justice", "corrections", "leadership"})

IN, OUT, ANON = "in_scope", "out_of_scope", "anonymous"
# Only for the roles a route allows, in scope: with X-Purpose; against juvenile cases.
PURPOSE, SEALED, SEALED_PURPOSE = "with_purpose", "sealed", "sealed_with_purpose"
SCOPES = {IN: COMMUNITY_A, OUT: COMMUNITY_B, PURPOSE: COMMUNITY_A, SEALED: COMMUNITY_A,
          SEALED_PURPOSE: COMMUNITY_A}
STATED = "case 2026-117"
# The anomaly report's default period, the fixture's clock being 15 June 2026.
WEEK = Period(start=date(2026, 6, 9), end=date(2026, 6, 15))
PURPOSES = {PURPOSE: STATED, SEALED_PURPOSE: STATED}

# The personal-data registers (and the coordinators' roster: staff, not subjects, but their
# names and phones are personal data all the same): every route takes X-Purpose, and without
# one every answer — writes included — comes masked. A route elsewhere that answers with a
# register's records (a metric's shortfall) is declared so one by one: ``Rule.shows_records``
# (not by its prefix: the rest of /metrics answers with counts and takes no purpose).
REGISTERS = ("/rentals", "/residents", "/corrections", "/releases", "/coordinators")


# --- what can go wrong in a cell (xfail marks name one of these) ----------------------------


class StatusMismatch(AssertionError):
    """The answer's status is not the declared one."""


class DenialNotAudited(AssertionError):
    """A refusal left no (or more than one) ``denied`` audit event, or one that does not name
    the record refused."""


class RecordLeaked(AssertionError):
    """A collection shows a record outside the caller's scope (or a sealed one without a
    purpose)."""


class AccessNotAudited(AssertionError):
    """A successful access left no ``ok`` audit event by its actor (or more than one event, or
    one without the stated purpose, or one that does not say what was accessed as declared in
    ``Rule.logged``)."""


class PersonalDataLeaked(AssertionError):
    """A refusal or an out-of-scope answer carries a personal value."""


class ShownWithoutPurpose(AssertionError):
    """A success without X-Purpose (any route: writes, lists, the access log) shows a personal
    value in clear."""


class ExistenceLeaked(AssertionError):
    """A hidden record answers differently from one that does not exist."""


# --- the fixture every cell runs against ----------------------------------------------------

_DIGITS = "一二三四五六七八九十"

# Seeds of the stored records and of what the create routes submit (distinct people).
RENTAL, NEW_RENTAL, IMPORTED_RENTAL = 1, 2, 3
RESIDENT, NEW_RESIDENT, TENANT = 11, 12, 13
CASE, UNREPORTED_CASE, NEW_CASE = 21, 22, 23
RELEASE, NEW_RELEASE = 31, 32
COORDINATOR, NEW_COORDINATOR = 41, 42
FILED = 51  # a person filed by every office: a landlord, a corrections and a release case


def resident_body(seed: int, **where) -> dict:
    """An arrival on 1 May 2026; ``where``: a rental_id, or an address with its code."""
    return {"name": f"李{_DIGITS[seed % 10]}华", "id_number": id_number(seed), "reason": "work",
            "arrived_on": "2026-05-01", "registered_on": "2026-05-03", "occupation": "厨师",
            "workplace": "东门饭店", "phone": f"1390013{seed:04d}",
            "hukou_address": f"河南省固始县城关镇{seed}号", **where}


def case_body(seed: int, *, reported: bool = True, juvenile: bool = False) -> dict:
    """A probation case in grid A1, effective 1 May 2026 (reported on 5 May, so overdue for
    its weekly check-in by 15 June), or still awaiting the report."""
    body = {"name": f"张{_DIGITS[seed % 10]}强", "id_number": id_number(seed),
            "jurisdiction_code": GRID_A1, "category": "probation",
            "deciding_body": "测试县人民法院", "judgment_ref": f"（2026）测刑初{seed}号",
            "effective_on": "2026-05-01", "supervision_start": "2026-05-01",
            "supervision_end": "2027-05-01", "phone": f"1370013{seed:04d}",
            "juvenile": juvenile}
    if reported:
        body["reported_on"] = "2026-05-05"
    return body


def release_body(seed: int, *, juvenile: bool = False) -> dict:
    """Released from prison on 1 April 2026 into grid A1: in aftercare until 2031."""
    return {"name": f"陈{_DIGITS[seed % 10]}伟", "id_number": id_number(seed),
            "jurisdiction_code": GRID_A1, "source": "prison", "released_on": "2026-04-01",
            "releasing_institution": "测试省第一监狱", "phone": f"1360013{seed:04d}",
            "juvenile": juvenile}


def coordinator_body(seed: int) -> dict:
    """A coordinator on grid A1's roster."""
    return {"staff_number": f"XG{seed:04d}", "name": f"刘{_DIGITS[seed % 10]}芳",
            "jurisdiction_code": GRID_A1, "phone": f"1350013{seed:04d}"}


def rental_ledger(body: dict) -> bytes:
    """A rental ledger of one row, as a clerk keeps it: UTF-8 CSV under Chinese headers."""
    landlord = body["landlord"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["社区代码", "房屋地址", "出租户数", "房东姓名", "房东身份证号", "房东电话"])
    writer.writerow([body["jurisdiction_code"], body["address"], body["units"],
                     landlord["name"], landlord["id_number"], landlord["phone"]])
    return out.getvalue().encode()


RESIDENT_HOME = {"jurisdiction_code": GRID_A1, "address": "东门路77号3楼"}
ARRIVAL = resident_body(NEW_RESIDENT, jurisdiction_code=GRID_A1, address="东门路88号集体宿舍")
MOVE = {"moved_on": "2026-06-10", "jurisdiction_code": GRID_A1, "address": "东门路99号2楼"}


class Fixture:
    """The records a cell runs against, all in community A (grid A1), each built on first use
    so that a cell pays only for what its route touches: a rental, an account, a resident at
    an address and one at the rental (a tenant), two corrections cases (reported, and awaiting
    the report), a release case, a coordinator on the roster, and community A's node (once
    all of these are in it: what the metrics count). ``sealed``: the corrections
    and release cases are juvenile cases.

    Each register holds a record short of a target, for the shortfall lists to show: the
    rental has no pledge (pledge signing), the tenant works but gave no workplace (resident
    entry), the reported case has no supervising officer (key-person registration), the
    release case has no aftercare measures in place (aftercare)."""

    def __init__(self, registry, *, sealed: bool = False) -> None:
        self.registry = registry
        self.sealed = sealed

    def _write(self, role: str, write: Callable) -> str:
        # Filed by community A's own office, through the services the routes call.
        actor = Actor(id=None, username=f"fixture-{role}", role=role, scope=COMMUNITY_A)
        with self.registry.vault(actor) as vault:
            record = write(vault)
            vault.commit()
        return str(record.id)

    @cached_property
    def rental_id(self) -> str:
        return self._write("police", lambda v: rentals.register(
            v, RentalCreate(**rental_body(RENTAL, pledge=None))))

    @cached_property
    def target_username(self) -> str:
        return make_user(self.registry, None, "coordinator", COMMUNITY_A,
                         username=f"target-{uuid.uuid4().hex[:8]}").username

    def _arrival(self, body: dict) -> str:
        return self._write("police", lambda v: residents.register_arrival(v, ArrivalIn(**body)))

    @cached_property
    def residency_id(self) -> str:
        return self._arrival(resident_body(RESIDENT, **RESIDENT_HOME))

    @cached_property
    def tenant_id(self) -> str:
        return self._arrival(resident_body(TENANT, rental_id=self.rental_id, workplace=None))

    def _case(self, seed: int, *, reported: bool) -> str:
        body = case_body(seed, reported=reported, juvenile=self.sealed)
        return self._write("corrections", lambda v: corrections.open_case(v, CaseCreate(**body)))

    @cached_property
    def case_id(self) -> str:
        return self._case(CASE, reported=True)

    @cached_property
    def unreported_case_id(self) -> str:
        return self._case(UNREPORTED_CASE, reported=False)

    @cached_property
    def release_id(self) -> str:
        body = release_body(RELEASE, juvenile=self.sealed)
        return self._write("justice", lambda v: releases.register(v, ReleaseCreate(**body)))

    @cached_property
    def coordinator_id(self) -> str:
        return self._write("police", lambda v: coordinators.add(
            v, CoordinatorIn(**coordinator_body(COORDINATOR))))

    @cached_property
    def officer(self) -> str:
        """A coordinator of community A who opened the rental and was then refused its
        deregistration five times (an anomaly: repeated denials); for the auditors."""
        user = make_user(self.registry, None, "coordinator", COMMUNITY_A,
                         username=f"officer-{uuid.uuid4().hex[:8]}")
        with self.registry.vault(user.actor) as vault:
            rentals.get(vault, uuid.UUID(self.rental_id), purpose=STATED)
            vault.commit()
        for _ in range(5):
            with self.registry.vault(user.actor) as vault, suppress(RegistryError):
                rentals.deregister(vault, uuid.UUID(self.rental_id), Deregistration())
        self._officer_id = user.actor.id
        return user.username

    @cached_property
    def exporter(self) -> str:
        """An auditor of community A who exported the rental's landlord's disclosure."""
        user = make_user(self.registry, None, "auditor", COMMUNITY_A,
                         username=f"exporter-{uuid.uuid4().hex[:8]}")
        self.rental_id
        with self.registry.vault(user.actor) as vault:
            vault.audit.disclosure(DisclosureQuery(id_number=id_number(RENTAL)),
                                   export=Format.csv)
            vault.commit()
        return user.username

    @cached_property
    def anomaly(self) -> str:
        """The officer's repeated denials, as an item of this week's anomaly report."""
        self.officer
        return item_id(WEEK, "denials", self._officer_id)

    @cached_property
    def grant_id(self) -> str:
        """A break-glass grant of a police officer of community A on the rental."""
        officer = make_user(self.registry, None, "police", COMMUNITY_A).actor
        with self.registry.vault(officer) as vault:
            grant = vault.access.open_grant(
                kind=GrantKind.rental, record_id=uuid.UUID(self.rental_id),
                reason="incident 2026-117: following a lead")
            vault.commit()
        return str(grant.id)

    @cached_property
    def person_id(self) -> str:
        """A person every office that files people has a record of."""
        rental = rental_body(FILED, pledge=None)
        name = rental["landlord"]["name"]
        self._write("police", lambda v: rentals.register(v, RentalCreate(**rental)))
        self._write("corrections", lambda v: corrections.open_case(
            v, CaseCreate(**{**case_body(FILED), "name": name})))
        self._write("justice", lambda v: releases.register(
            v, ReleaseCreate(**{**release_body(FILED), "name": name})))
        with self.registry.vault(system_actor("fixture")) as vault:
            number = parse_id_number(id_number(FILED))
            return str(vault.persons.find(number).id)

    @cached_property
    def node(self) -> str:
        """Community A's node, once each register holds a record there for the metrics to
        count (and for their answers not to leak)."""
        for record in ("rental_id", "tenant_id", "residency_id", "case_id", "release_id",
                       "coordinator_id"):
            getattr(self, record)
        return COMMUNITY_A


def _absent_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Ghost:
    """The fixture's names, for records that do not exist."""

    rental_id: str = field(default_factory=_absent_id)
    target_username: str = field(default_factory=lambda: f"ghost-{uuid.uuid4().hex[:8]}")
    residency_id: str = field(default_factory=_absent_id)
    tenant_id: str = field(default_factory=_absent_id)
    case_id: str = field(default_factory=_absent_id)
    unreported_case_id: str = field(default_factory=_absent_id)
    release_id: str = field(default_factory=_absent_id)
    coordinator_id: str = field(default_factory=_absent_id)
    officer: str = field(default_factory=lambda: f"ghost-{uuid.uuid4().hex[:8]}")
    exporter: str = field(default_factory=lambda: f"ghost-{uuid.uuid4().hex[:8]}")
    anomaly: str = field(default_factory=lambda: f"20260609-20260615-{uuid.uuid4().hex[:12]}")
    grant_id: str = field(default_factory=_absent_id)
    person_id: str = field(default_factory=_absent_id)
    # A grid that does not exist, in the area of the out-of-scope caller (the only callers
    # a node is hidden from): absent where the caller would otherwise see it.
    node: str = f"{COMMUNITY_B}999"


Records = Fixture | Ghost


@dataclass(frozen=True)
class Req:
    path: str
    json: dict | None = None
    params: dict | None = None
    # A raw body (an uploaded file) and its headers, instead of ``json``.
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def sent(self) -> str:
        """Everything the request carries, as text (to tell an echo from a leak)."""
        return " ".join((json.dumps(self.json, ensure_ascii=False), json.dumps(self.params),
                         (self.content or b"").decode("utf-8", "replace")))


@dataclass(frozen=True)
class Logged:
    """What a success's one audit event must say of what was accessed (``Rule.logged``)."""

    kind: str
    action: str
    # The record it names (None: not declared).
    record_id: str | None = None
    # References it must carry, among others ("rental:<id>": a record shown; stored
    # comma-separated).
    refs: tuple[str, ...] = ()
    # How its detail begins.
    detail: str = ""

    def mismatch(self, event) -> str | None:
        """What the event says otherwise, or None."""
        got = (event.kind, event.action)
        if got != (self.kind, self.action):
            return f"the event is {got}, not {(self.kind, self.action)}"
        if self.record_id is not None and event.record_id != self.record_id:
            return f"the event names {event.record_id}, not {self.record_id}"
        if missing := [ref for ref in self.refs if ref not in (event.refs or "").split(",")]:
            return f"the event does not refer to {missing} (refs {event.refs})"
        if not (event.detail or "").startswith(self.detail):
            return f"the event's detail {event.detail!r} does not begin {self.detail!r}"
        return None


def _personal_values(*bodies: dict) -> tuple[str, ...]:
    """Names, ID numbers, phones and addresses in request bodies (nested ones included)."""
    values: list[str] = []
    for body in bodies:
        for key, value in body.items():
            if isinstance(value, dict):
                values += _personal_values(value)
            elif key in ("name", "id_number", "phone", "address", "hukou_address"):
                values.append(value)
    return tuple(values)


# Everything the fixture stores and everything the create, move and import routes submit.
PERSONAL = _personal_values(
    rental_body(RENTAL), rental_body(NEW_RENTAL), rental_body(IMPORTED_RENTAL),
    resident_body(RESIDENT, **RESIDENT_HOME), resident_body(TENANT), ARRIVAL, MOVE,
    *(case_body(seed) for seed in (CASE, UNREPORTED_CASE, NEW_CASE)),
    release_body(RELEASE), release_body(NEW_RELEASE),
    coordinator_body(COORDINATOR), coordinator_body(NEW_COORDINATOR))


# --- the declared table ---------------------------------------------------------------------


class Level(Enum):
    GLOBAL = "scope does not apply (own session, reference data, the whole chain)"
    COLLECTION = "scope filters the answer; a role without the action gets 403"
    CREATE = ("the new record's (or the write's) jurisdiction must lie in scope (else 422); "
              "no action: 403")
    RECORD = "one existing record: unseen (out of scope or unreadable) 404, seen but no action 403"
    IMPORT = ("a ledger of one new record, a CREATE per row: no create action 403 before any "
              "row; in scope the row is imported, out of scope rejected (its denial audited) "
              "inside the same 200 answer")


@dataclass(frozen=True)
class Rule:
    level: Level
    allowed: frozenset[str]
    ok: int
    # The request, on the fixture's records (or the ghost's); with ``by_role``, on the records
    # and the caller's role (None: anonymous).
    request: Callable[[Records], Req] | Callable[[Records, str | None], Req]
    # COLLECTION (and a RECORD that lists, like who lives at a rental): the id that a success
    # in scope must show, and that must be absent out of scope. With ``by_role``, on the
    # records and the caller's role, as ``request``.
    subject: Callable[[Records], str] | Callable[[Records, str | None], str] | None = None
    # RECORD: the id a denial must name.
    record: Callable[[Records], str] | None = None
    # RECORD: roles that may read the record, so lacking the action they get 403, not 404.
    readers: frozenset[str] = frozenset()
    # RECORD: the role is checked before the record is looked up (no existence to leak).
    role_first: bool = False
    # The subject may be a juvenile case: sealed without a purpose (cells SEALED*).
    sealed: bool = False
    # A success appends an "ok" event by the caller (False: own session, reference data).
    audited: bool = True
    # The actions of the events a success appends, in order, each "ok" by the caller (with the
    # purpose), where there is more than one. IMPORT: the row's, then the batch's (the last);
    # a rejected row leaves a denial of its first action instead of its own events.
    trail: tuple[str, ...] = ()
    # What a success's one event says, on the records and the caller's role (None: only that
    # it is "ok", by the caller, with the purpose).
    logged: Callable[[Records, str], Logged] | None = None
    # The answer holds a register's personal records though the path is no register's (a
    # metric's shortfall): the route takes X-Purpose (cells PURPOSE), and without one every
    # value comes masked, as on the register's own routes.
    shows_records: bool = False
    # A key of the answer that echoes the request's own cells back by design: it may hold
    # what the request sent and nothing else, and is left out of the checks for personal
    # values in the answer.
    echoes: str | None = None
    # The request differs by the caller's role (say, a metric the role may see).
    by_role: bool = False
    # Cells believed wrong: (role, case) -> (the failing check, reason).
    bugs: Mapping[tuple[str, str], tuple[type[AssertionError], str]] = field(
        default_factory=lambda: MappingProxyType({}))


def _on(prefix: str, name: str) -> Callable[..., Callable[[Records], Req]]:
    """Requests on one record of the fixture: ``_on("/rentals", "rental_id")("/pledge", {…})``."""
    def request(path: str = "", json: dict | None = None) -> Callable[[Records], Req]:
        return lambda c: Req(f"{prefix}/{getattr(c, name)}{path}", json=json)
    return request


_rental = _on("/rentals", "rental_id")
_user = _on("/users", "target_username")
_resident = _on("/residents", "residency_id")
_case = _on("/corrections", "case_id")
_release = _on("/releases", "release_id")
RENTAL_ID = attrgetter("rental_id")
RESIDENCY_ID = attrgetter("residency_id")
CASE_ID = attrgetter("case_id")
RELEASE_ID = attrgetter("release_id")
COORDINATOR_ID = attrgetter("coordinator_id")


def _record(allowed: frozenset[str], ok: int, request: Callable[[Records], Req],
            record: Callable[[Records], str], **rule) -> Rule:
    """A record of a register: readable by (at most) the roles allowed, named by a denial."""
    return Rule(Level.RECORD, allowed, ok, request, record=record, readers=allowed, **rule)


# A metric each role sees, for its chart (the metrics of the registers it may list; all of
# them, in aggregate, for leadership). The others are refused before a metric is looked up.
CHART_METRIC = MappingProxyType({
    "police": "coordinator_staffing", "coordinator": "rental_registration",
    "justice": "aftercare", "corrections": "check_in_compliance",
    "leadership": "key_person_registration"})
# A short trend, the fixture's clock being 15 June 2026: month ends 31 May and 15 June.
TREND = {"from": "2026-05-01", "to": "2026-06-15"}
NODE = attrgetter("node")


def _at(path: str, **params: str) -> Callable[[Records], Req]:
    """A request about the fixture's node (``at``)."""
    return lambda c: Req(path, params={**params, "at": c.node})


def _read_of(detail: str, action: str = "read") -> Callable[[Records, str], Logged]:
    """The one audited read of a node's metrics (whatever the number of dates computed), or
    its export when the figures leave as a file."""
    return lambda c, role: Logged("metrics", action, record_id=c.node, detail=detail)


def _metrics(request: Callable, detail: str = "as_of=", action: str = "read", **rule) -> Rule:
    """The targets of a node (``at``): counts, never records, for the roles with ``metrics
    read``. The node is a record: out of the caller's scope (or absent) 404, the denial
    naming it; any role sees the tree, so one in scope without the action gets 403."""
    return Rule(Level.RECORD, METRICS_READERS, 200, request, record=NODE, readers=ALL,
                logged=_read_of(detail, action), **rule)


# A metric's shortfall lists the records that keep the node below target, through the
# register's own listing: for the roles that may list that register, a metric of theirs (police
# and coordinators, one of the rentals' and one of the residents'); leadership sees every
# metric, counts only, so its own is refused as a listing (403). Each metric's short record
# in the fixture, and the register whose list event names it.
SHORTFALL_METRIC = MappingProxyType({
    "police": "pledge_signing", "coordinator": "resident_entry", "justice": "aftercare",
    "corrections": "key_person_registration", "leadership": "pledge_signing"})
SHORT_RECORD = MappingProxyType({
    "pledge_signing": ("rental_id", "rental"), "resident_entry": ("tenant_id", "resident"),
    "aftercare": ("release_id", "release"), "key_person_registration": ("case_id", "corrections")})


def _short_of(role: str | None) -> tuple[str, str, str]:
    """The role's shortfall metric, the fixture's record short of it, and its register."""
    metric = SHORTFALL_METRIC.get(role or "", "pledge_signing")
    return (metric, *SHORT_RECORD[metric])


def _shortfall_logged(c: Records, role: str) -> Logged:
    metric, record, kind = _short_of(role)
    return Logged(kind, "list", refs=(f"{kind}:{getattr(c, record)}",),
                  detail=f"shortfall={metric};at={c.node}")


# A survey's count (入户普查基数) for a node's metric: written under a jurisdiction code, which
# must lie in the caller's scope (else 422, audited), like a new record's.
BASELINE = f"/metrics/baselines/{GRID_A1}/resident_entry"

# Break-glass: the roles with ``break-glass`` on a register they read, each on a record of it
# (scope does not apply: opening one outside scope is the point; in scope it is allowed too).
GLASS_OPENERS = frozenset({"police", "corrections", "justice"})
GLASS_RECORD = MappingProxyType({"corrections": ("corrections", "case_id"),
                                 "justice": ("release", "release_id")})


def _glass(c: Records, role: str | None) -> tuple[str, str]:
    kind, name = GLASS_RECORD.get(role or "", ("rental", "rental_id"))
    return kind, getattr(c, name)


def _glass_request(c: Records, role: str | None) -> Req:
    kind, record_id = _glass(c, role)
    return Req("/break-glass", json={"kind": kind, "record_id": record_id,
                                     "reason": "incident 2026-117: following a lead"})


# Restricted persons: who files the person may restrict them; whoever may read a record of
# theirs in scope but lacks the right gets 403.
RESTRICTERS = frozenset({"police", "corrections", "justice"})
PERSON_READERS = RESTRICTERS | {"coordinator"}
PERSON_ID = attrgetter("person_id")
_restriction = _on("/persons", "person_id")


ROUTES: dict[tuple[str, str], Rule] = {
    # Sessions: every signed-in user, about their own token.
    ("POST", "/auth/logout"): Rule(Level.GLOBAL, ALL, 204, lambda c: Req("/auth/logout")),
    ("GET", "/auth/me"): Rule(Level.GLOBAL, ALL, 200, lambda c: Req("/auth/me"),
                              audited=False),
    # The division-code tree: public reference data for all signed-in staff.
    ("GET", "/jurisdictions"): Rule(
        Level.GLOBAL, ALL, 200, lambda c: Req("/jurisdictions", params={"parent": TOWN}),
        audited=False),
    ("GET", "/jurisdictions/{code}"): Rule(
        Level.GLOBAL, ALL, 200, lambda c: Req(f"/jurisdictions/{COMMUNITY_A}"), audited=False),
    # Accounts: administrators, within their jurisdiction.
    ("GET", "/users"): Rule(
        Level.COLLECTION, frozenset({"admin"}), 200, lambda c: Req("/users"),
        subject=attrgetter("target_username")),
    ("POST", "/users"): Rule(
        Level.CREATE, frozenset({"admin"}), 201,
        lambda c: Req("/users", json={"username": f"new-{uuid.uuid4().hex[:8]}",
                                      "password": PASSWORD, "role": "coordinator",
                                      "jurisdiction_code": GRID_A1})),
    ("POST", "/users/{username}/disable"): Rule(
        Level.RECORD, frozenset({"admin"}), 200, _user("/disable"), role_first=True),
    ("POST", "/users/{username}/password"): Rule(
        Level.RECORD, frozenset({"admin"}), 200,
        _user("/password", {"password": "another-horse-battery"}), role_first=True),
    # The access log: auditors only.
    ("GET", "/audit/events"): Rule(
        Level.COLLECTION, AUDITORS, 200,
        lambda c: Req("/audit/events", params={"record_id": c.rental_id}), subject=RENTAL_ID),
    ("GET", "/audit/verify"): Rule(
        Level.GLOBAL, frozenset({"auditor"}), 200, lambda c: Req("/audit/verify")),
    # Key status (versions and counts, no key material): administrators.
    ("GET", "/keys/status"): Rule(
        Level.GLOBAL, frozenset({"admin"}), 200, lambda c: Req("/keys/status")),
    # The retention plan (record ids, rules and holds; no personal data): administrators.
    ("GET", "/retention/plan"): Rule(
        Level.GLOBAL, frozenset({"admin"}), 200, lambda c: Req("/retention/plan")),
    # The workbench: reports over the events of the auditor's area (by ID number in a body,
    # never a URL), and review marks on the anomaly report's items.
    ("POST", "/audit/disclosure"): Rule(
        Level.COLLECTION, AUDITORS, 200,
        lambda c: Req("/audit/disclosure", json={"id_number": id_number(RENTAL)}),
        subject=RENTAL_ID),
    ("GET", "/audit/activity"): Rule(
        Level.COLLECTION, AUDITORS, 200,
        lambda c: Req("/audit/activity", params={"user": c.officer}), subject=RENTAL_ID),
    ("GET", "/audit/denied"): Rule(
        Level.COLLECTION, AUDITORS, 200,
        lambda c: (c.officer, Req("/audit/denied"))[1], subject=RENTAL_ID),
    ("GET", "/audit/exports"): Rule(
        Level.COLLECTION, AUDITORS, 200,
        lambda c: (c.exporter, Req("/audit/exports"))[1], subject=attrgetter("exporter")),
    ("GET", "/audit/anomalies"): Rule(
        Level.COLLECTION, AUDITORS, 200,
        lambda c: (c.officer, Req("/audit/anomalies"))[1], subject=attrgetter("officer")),
    ("POST", "/audit/anomalies/{item_id}/review"): Rule(
        Level.RECORD, AUDITORS, 200,
        lambda c: Req(f"/audit/anomalies/{c.anomaly}/review", json={"note": "checked"}),
        role_first=True),
    # The rental register: community police in full, coordinators without search/deregister.
    ("POST", "/rentals"): Rule(
        Level.CREATE, FIELD_ROLES, 201, lambda c: Req("/rentals", json=rental_body(NEW_RENTAL))),
    ("GET", "/rentals"): Rule(
        Level.COLLECTION, FIELD_ROLES, 200, lambda c: Req("/rentals"), subject=RENTAL_ID),
    ("POST", "/rentals/search"): Rule(
        Level.COLLECTION, POLICE, 200,
        lambda c: Req("/rentals/search", json={"landlord_id_number": id_number(RENTAL)}),
        subject=RENTAL_ID),
    ("GET", "/rentals/{rental_id}"): _record(FIELD_ROLES, 200, _rental(), RENTAL_ID),
    ("PATCH", "/rentals/{rental_id}"): _record(FIELD_ROLES, 200, _rental(json={"units": 3}),
                                               RENTAL_ID),
    ("POST", "/rentals/{rental_id}/deregister"): Rule(
        Level.RECORD, POLICE, 200, _rental("/deregister", {}), record=RENTAL_ID,
        readers=FIELD_ROLES),
    ("POST", "/rentals/{rental_id}/pledge"): _record(
        FIELD_ROLES, 200,
        _rental("/pledge", {"signed_on": "2026-06-01", "valid_until": "2027-06-01"}),
        RENTAL_ID),
    # Residents: police in full; coordinators the same forms, without search. Who lives at a
    # rental is a question about the rental: 404 to whoever may not see it.
    ("POST", "/residents"): Rule(
        Level.CREATE, FIELD_ROLES, 201, lambda c: Req("/residents", json=ARRIVAL)),
    ("GET", "/residents"): Rule(
        Level.COLLECTION, FIELD_ROLES, 200, lambda c: Req("/residents"), subject=RESIDENCY_ID),
    ("POST", "/residents/search"): Rule(
        Level.COLLECTION, POLICE, 200,
        lambda c: Req("/residents/search", json={"id_number": id_number(RESIDENT)}),
        subject=RESIDENCY_ID),
    ("GET", "/residents/at-rental/{rental_id}"): _record(
        FIELD_ROLES, 200, lambda c: Req(f"/residents/at-rental/{c.rental_id}"), RENTAL_ID,
        subject=attrgetter("tenant_id")),
    ("GET", "/residents/{residency_id}"): _record(FIELD_ROLES, 200, _resident(), RESIDENCY_ID),
    ("PATCH", "/residents/{residency_id}"): _record(
        FIELD_ROLES, 200, _resident(json={"occupation": "面点师"}), RESIDENCY_ID),
    ("POST", "/residents/{residency_id}/move"): _record(
        FIELD_ROLES, 201, _resident("/move", MOVE), RESIDENCY_ID),
    ("POST", "/residents/{residency_id}/move-out"): _record(
        FIELD_ROLES, 200, _resident("/move-out", {"left_on": "2026-06-10"}), RESIDENCY_ID),
    # Community corrections: the corrections office only; juvenile cases sealed.
    ("POST", "/corrections"): Rule(
        Level.CREATE, CORRECTIONS_OFFICE, 201,
        lambda c: Req("/corrections", json=case_body(NEW_CASE))),
    ("GET", "/corrections"): Rule(
        Level.COLLECTION, CORRECTIONS_OFFICE, 200, lambda c: Req("/corrections"),
        subject=CASE_ID, sealed=True),
    ("GET", "/corrections/board"): Rule(
        Level.COLLECTION, CORRECTIONS_OFFICE, 200, lambda c: Req("/corrections/board"),
        subject=CASE_ID, sealed=True),
    ("GET", "/corrections/{case_id}"): _record(
        CORRECTIONS_OFFICE, 200, _case(), CASE_ID, sealed=True),
    ("PATCH", "/corrections/{case_id}"): _record(
        CORRECTIONS_OFFICE, 200, _case(json={"grace_days": 3}), CASE_ID, sealed=True),
    ("POST", "/corrections/{case_id}/report"): _record(
        CORRECTIONS_OFFICE, 200,
        lambda c: Req(f"/corrections/{c.unreported_case_id}/report",
                      json={"reported_on": "2026-05-06"}),
        attrgetter("unreported_case_id"), sealed=True),
    ("POST", "/corrections/{case_id}/check-ins"): _record(
        CORRECTIONS_OFFICE, 200,
        _case("/check-ins", {"at": "2026-06-14T09:00:00+08:00", "method": "in_person"}),
        CASE_ID, sealed=True),
    ("POST", "/corrections/{case_id}/sanctions"): _record(
        CORRECTIONS_OFFICE, 200,
        _case("/sanctions", {"kind": "admonition", "decided_on": "2026-06-01",
                             "reason": "未按规定报告活动情况"}),
        CASE_ID, sealed=True),
    ("POST", "/corrections/{case_id}/status"): _record(
        CORRECTIONS_OFFICE, 200, _case("/status", {"status": "absconded", "on": "2026-06-10"}),
        CASE_ID, sealed=True),
    # Resettlement and aftercare: the justice bureau only; juvenile cases sealed.
    ("POST", "/releases"): Rule(
        Level.CREATE, JUSTICE_BUREAU, 201,
        lambda c: Req("/releases", json=release_body(NEW_RELEASE))),
    ("GET", "/releases"): Rule(
        Level.COLLECTION, JUSTICE_BUREAU, 200, lambda c: Req("/releases"), subject=RELEASE_ID,
        sealed=True),
    ("GET", "/releases/{case_id}"): _record(
        JUSTICE_BUREAU, 200, _release(), RELEASE_ID, sealed=True),
    ("PATCH", "/releases/{case_id}"): _record(
        JUSTICE_BUREAU, 200, _release(json={"measures_in_place": True}), RELEASE_ID,
        sealed=True),
    ("POST", "/releases/{case_id}/placement"): _record(
        JUSTICE_BUREAU, 200,
        _release("/placement", {"status": "placed", "kind": "employment",
                                "placed_on": "2026-05-01"}),
        RELEASE_ID, sealed=True),
    ("POST", "/releases/{case_id}/assistance"): _record(
        JUSTICE_BUREAU, 200,
        _release("/assistance", {"on": "2026-06-01", "kind": "visit", "notes": "走访，已就业"}),
        RELEASE_ID, sealed=True),
    ("POST", "/releases/{case_id}/close"): _record(
        JUSTICE_BUREAU, 200, _release("/close", {"on": "2026-06-10", "reason": "moved_away"}),
        RELEASE_ID, sealed=True),
    # The coordinators' roster (for the staffing ratio): kept by the police and the
    # administrators, each within their area. The list is asked for the whole town: the
    # filter narrows the caller's scope, never widens it.
    ("POST", "/coordinators"): Rule(
        Level.CREATE, ROSTER_KEEPERS, 201,
        lambda c: Req("/coordinators", json=coordinator_body(NEW_COORDINATOR))),
    ("GET", "/coordinators"): Rule(
        Level.COLLECTION, ROSTER_KEEPERS, 200,
        lambda c: Req("/coordinators", params={"jurisdiction": TOWN}), subject=COORDINATOR_ID),
    # Ledger imports: whoever may file the register's records, row by row through its gate.
    # The rejects file echoes the rejected rows' cells by design (the clerk fixes them there
    # and imports that file): out of scope it carries the submitted row, and nothing else.
    ("POST", "/imports/{kind}"): Rule(
        Level.IMPORT, FIELD_ROLES, 200,
        lambda c: Req("/imports/rentals", params={"filename": "出租房屋台账.csv"},
                      content=rental_ledger(rental_body(IMPORTED_RENTAL)),
                      headers=MappingProxyType({"Content-Type": "text/csv"})),
        trail=("create", "import"), echoes="rejects_csv"),
    # Targets (考核指标) of a node and its children, asked for community A: counts only, one
    # audited read per request (the trend's too, for all its month ends).
    ("GET", "/metrics"): _metrics(_at("/metrics")),
    ("GET", "/metrics/report.xlsx"): _metrics(_at("/metrics/report.xlsx"), action="export"),
    ("GET", "/metrics/trend"): _metrics(_at("/metrics/trend", **TREND), detail="trend="),
    ("GET", "/metrics/{metric}/chart.svg"): _metrics(
        lambda c, role: _at(f"/metrics/{CHART_METRIC.get(role, 'rental_registration')}"
                            "/chart.svg")(c), by_role=True),
    # The records behind a metric's gap, for whoever may list them: personal records (masked
    # without X-Purpose), one audited list of the register naming those shown.
    ("GET", "/metrics/{metric}/shortfall"): Rule(
        Level.RECORD, METRICS_READERS - {"leadership"}, 200,
        lambda c, role: _at(f"/metrics/{_short_of(role)[0]}/shortfall")(c), record=NODE,
        readers=ALL, by_role=True, subject=lambda c, role: getattr(c, _short_of(role)[1]),
        logged=_shortfall_logged, shows_records=True),
    ("PUT", "/metrics/baselines/{code}/{metric}"): Rule(
        Level.CREATE, FIELD_ROLES, 204,
        lambda c: Req(BASELINE, json={"count": 40, "surveyed_on": "2026-06-01"}),
        logged=lambda c, role: Logged("metrics", "baseline", record_id=GRID_A1,
                                      detail="count=40")),
    ("DELETE", "/metrics/baselines/{code}/{metric}"): Rule(
        Level.CREATE, FIELD_ROLES, 204, lambda c: Req(BASELINE),
        logged=lambda c, role: Logged("metrics", "baseline", record_id=GRID_A1,
                                      detail="removed")),
    # Break-glass: opened by the roles granted it, flagged in the one event; the auditors of
    # the record's (or the officer's) area see the queue and sign grants off.
    ("POST", "/break-glass"): Rule(
        Level.GLOBAL, GLASS_OPENERS, 201, _glass_request, by_role=True,
        logged=lambda c, role: Logged(_glass(c, role)[0], "break-glass",
                                      record_id=_glass(c, role)[1], detail="break-glass=")),
    ("GET", "/break-glass"): Rule(
        Level.COLLECTION, frozenset({"auditor"}), 200, lambda c: Req("/break-glass"),
        subject=attrgetter("grant_id")),
    ("POST", "/break-glass/{grant_id}/review"): Rule(
        Level.RECORD, frozenset({"auditor"}), 200,
        lambda c: Req(f"/break-glass/{c.grant_id}/review", json={"note": "reviewed"}),
        record=attrgetter("grant_id"), readers=frozenset({"auditor"}), role_first=True,
        logged=lambda c, role: Logged("break-glass", "review", record_id=c.grant_id)),
    # Restricted persons: a person is a record of whoever may read one of theirs in scope.
    ("GET", "/persons/{person_id}/restriction"): Rule(
        Level.RECORD, RESTRICTERS, 200, _restriction("/restriction"), record=PERSON_ID,
        readers=PERSON_READERS,
        logged=lambda c, role: Logged("person", "read", record_id=c.person_id)),
    ("PUT", "/persons/{person_id}/restriction"): Rule(
        Level.RECORD, RESTRICTERS, 200,
        lambda c: Req(f"/persons/{c.person_id}/restriction",
                      json={"users": [c.target_username]}),
        record=PERSON_ID, readers=PERSON_READERS,
        logged=lambda c, role: Logged("person", "restrict", record_id=c.person_id)),
    ("DELETE", "/persons/{person_id}/restriction"): Rule(
        Level.RECORD, RESTRICTERS, 200, _restriction("/restriction"), record=PERSON_ID,
        readers=PERSON_READERS,
        logged=lambda c, role: Logged("person", "lift", record_id=c.person_id)),
}


# --- expectations derived from the table ----------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    denied: bool = False  # exactly one "denied" audit event by this actor
    visible: bool | None = None  # the subject is listed (True) or absent (False)
    # The events, in order, as (outcome, action), all by this actor, when not exactly one.
    trail: tuple[tuple[str, str], ...] | None = None
    summary: Mapping[str, object] | None = None  # an import's summary holds these counts


def _oks(rule: Rule) -> tuple[tuple[str, str], ...] | None:
    """A success's declared trail, all "ok" (None: exactly one event, or none)."""
    return tuple(("ok", action) for action in rule.trail) or None


def expected(rule: Rule, role: str, case: str) -> Expect:
    if case == ANON:
        return Expect(401)
    lists = rule.subject is not None
    if case in (PURPOSE, SEALED, SEALED_PURPOSE):  # generated for allowed roles only
        hidden = case == SEALED
        if hidden and rule.level is Level.RECORD:
            return Expect(404, denied=True)
        return Expect(rule.ok, visible=not hidden if lists else None, trail=_oks(rule))
    allowed = role in rule.allowed
    if rule.level is Level.GLOBAL:
        return Expect(rule.ok) if allowed else Expect(403, denied=True)
    if rule.level is Level.COLLECTION:
        return Expect(rule.ok, visible=case == IN) if allowed else Expect(403, denied=True)
    if rule.level is Level.CREATE:
        if not allowed:
            return Expect(403, denied=True)
        return Expect(rule.ok) if case == IN else Expect(422, denied=True)
    if rule.level is Level.IMPORT:
        if not allowed:
            return Expect(403, denied=True)
        if case == IN:
            return Expect(rule.ok, trail=_oks(rule),
                          summary={"read": 1, "imported": 1, "rejected": 0, "error": None})
        return Expect(rule.ok, trail=(("denied", rule.trail[0]), ("ok", rule.trail[-1])),
                      summary={"read": 1, "imported": 0, "rejected": 1, "error": None})
    # RECORD
    if allowed:
        if case == IN:
            return Expect(rule.ok, visible=True if lists else None, trail=_oks(rule))
        return Expect(404, denied=True)
    if rule.role_first or (case == IN and role in rule.readers):
        return Expect(403, denied=True)
    return Expect(404, denied=True)


def _takes_purpose(path: str, rule: Rule | None) -> bool:
    """A register's route, or one that shows a register's records."""
    return path.startswith(REGISTERS) or (rule is not None and rule.shows_records)


def _cases(path: str, rule: Rule, role: str) -> tuple[str, ...]:
    cases = (IN, OUT)
    if role in rule.allowed and _takes_purpose(path, rule):
        cases += (PURPOSE,)
    if role in rule.allowed and rule.sealed:
        cases += (SEALED, SEALED_PURPOSE)
    return cases


def _cells():
    for (method, path), rule in ROUTES.items():
        route = f"{method} {path}"
        for role in ROLES:
            for case in _cases(path, rule, role):
                bug = rule.bugs.get((role, case))
                marks = () if bug is None else pytest.mark.xfail(
                    strict=True, raises=bug[0], reason=f"BUG: {bug[1]}")
                yield pytest.param((method, path), role, case, marks=marks,
                                   id=f"{route} | {role} | {case}")
        yield pytest.param((method, path), None, ANON, id=f"{route} | {ANON}")


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warm_app() -> dict:
    """Holds one app for the whole module. A fresh app pays each route's first-call set-up
    again (~20 ms a route, more than the call itself), once per cell; the matrix reuses one."""
    return {}


@pytest.fixture
def client(registry, warm_app) -> Iterator[TestClient]:
    """As conftest's ``client``, over the module's one app, pointed at this test's registry."""
    if "app" not in warm_app:
        warm_app["app"] = create_app(registry)
    app = warm_app["app"]
    app.state.registry = registry
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def sign_in(registry, role: str, scope: str) -> tuple[str, dict[str, str]]:
    """A new account with one role in one scope, signed in by the authenticator behind
    POST /auth/token (without the round trip: there are hundreds of cells)."""
    user = make_user(registry, None, role, scope)
    token, _ = registry.auth.login(user.username, PASSWORD)
    return user.username, {"Authorization": f"Bearer {token}"}



def last_seq(registry) -> int:
    with registry.db.session() as s:
        return s.scalar(select(func.coalesce(func.max(AuditEvent.seq), 0)))


def events_after(registry, seq: int) -> list:
    """The events appended since ``seq``, as plain rows (the session expires its objects)."""
    e = AuditEvent
    with registry.db.session() as s:
        return list(s.execute(
            select(e.outcome, e.actor, e.action, e.kind, e.record_id, e.fields, e.refs,
                   e.detail, e.purpose).where(e.seq > seq).order_by(e.seq)))


def _request(rule: Rule, records: Records, role: str | None) -> Req:
    return rule.request(records, role) if rule.by_role else rule.request(records)


def _subject(rule: Rule, records: Records, role: str | None) -> str | None:
    if rule.subject is None:
        return None
    return rule.subject(records, role) if rule.by_role else rule.subject(records)


def _text(response) -> str:
    if response.headers.get("content-type", "").startswith(XLSX):
        # A workbook is a zip: its sheets' XML, where a personal value would show in clear.
        with zipfile.ZipFile(io.BytesIO(response.content)) as book:
            return " ".join(book.read(name).decode("utf-8", "replace")
                            for name in book.namelist())
    try:
        return json.dumps(response.json(), ensure_ascii=False)
    except ValueError:
        return response.text


def _leaked(text: str) -> list[str]:
    return [value for value in PERSONAL if value in text]


def _send(client, method: str, req: Req, headers: dict[str, str]):
    return client.request(method, req.path, json=req.json, params=req.params,
                          content=req.content, headers={**req.headers, **headers})


def _echo(response, key: str | None) -> tuple[str, str]:
    """The answer as text without its echo of the request (``Rule.echoes``), and the echo."""
    if key is None or response.status_code >= 400:
        return _text(response), ""
    answer = response.json()
    echo = answer.pop(key, None)
    return json.dumps(answer, ensure_ascii=False), echo or ""


def _summary(events) -> list[tuple]:
    return [(e.actor, e.action, e.kind, e.outcome, e.purpose) for e in events]


# --- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role", "case"), list(_cells()))
def test_route_matrix(registry, client, route, role, case):
    method, path = route
    rule = ROUTES[route]
    expect = expected(rule, role, case)
    # What the route touches is built before the caller acts (and before events are counted).
    ctx = Fixture(registry, sealed=case in (SEALED, SEALED_PURPOSE))
    req = _request(rule, ctx, role)
    subject = _subject(rule, ctx, role)
    record = rule.record(ctx) if rule.record else None
    headers: dict[str, str] = {}
    username = None
    if case != ANON:
        username, headers = sign_in(registry, role, SCOPES[case])
    purpose = PURPOSES.get(case)
    if purpose:
        headers["X-Purpose"] = purpose
    where = f"{method} {path} as {role or 'nobody'} ({case})"

    before = last_seq(registry)
    response = _send(client, method, req, headers)
    body = _text(response)
    # What the answer says of its own, and what it echoes back of the request by design (an
    # import's rejects file repeats the rejected rows' cells for the clerk to fix: out of scope
    # the submitted row's personal values are in it, as intended). The echo is held to what
    # was sent; the rest of the answer goes through every check below.
    answer, echo = _echo(response, rule.echoes)
    if foreign := [value for value in _leaked(echo) if value not in req.sent()]:
        raise PersonalDataLeaked(f"{where}: the {rule.echoes} echoes what was not sent: "
                                 f"{foreign}")

    if response.status_code != expect.status:
        raise StatusMismatch(f"{where}: expected {expect.status}, got "
                             f"{response.status_code}: {body[:300]}")
    if case == ANON:
        assert response.json()["error"]["code"] == "unauthenticated", body

    refused = response.status_code >= 400
    if (refused or expect.visible is False) and (leaked := _leaked(answer)):
        raise PersonalDataLeaked(f"{where}: the answer carries personal values {leaked}")
    events = events_after(registry, before)

    if expect.status == 404:
        # A hidden record must answer exactly like one that does not exist.
        absent = _send(client, method, _request(rule, Ghost(), role), headers)
        if (absent.status_code, absent.json()) != (response.status_code, response.json()):
            raise ExistenceLeaked(f"{where}: hidden answers {response.status_code} "
                                  f"{body[:200]}, absent answers {absent.status_code} "
                                  f"{absent.text[:200]}")

    # Events name records and fields, never values.
    for e in events:
        if leaked := _leaked(" ".join(map(str, (e.fields, e.refs, e.detail, e.purpose)))):
            raise PersonalDataLeaked(f"{where}: the {e.outcome} event {e.action} carries "
                                     f"{leaked}")

    # The checks that known bugs trip come last, so an xfail cell still proves the rest.
    denied = [e for e in events if e.outcome == "denied"]
    if expect.trail is not None:
        # An import: the row's events (or its denial) and the batch's, exactly, in order.
        got = [(e.actor, e.outcome, e.action) for e in events]
        want = [(username, outcome, action) for outcome, action in expect.trail]
        if [g for g in got if g[1] == "denied"] != [w for w in want if w[1] == "denied"]:
            raise DenialNotAudited(f"{where}: expected {want}; got {_summary(events)}")
        if got != want or any(e.purpose != purpose for e in events if e.outcome == "ok"):
            raise AccessNotAudited(f"{where}: expected {want} with purpose {purpose!r}; got "
                                   f"{_summary(events)}")
    elif expect.denied:
        # Exactly one event, and it is the denial: nothing of the refused work is recorded.
        if len(events) != 1 or len(denied) != 1 or denied[0].actor != username:
            raise DenialNotAudited(f"{where}: expected exactly one event, 'denied' by "
                                   f"{username}; got {_summary(events)}")
        if record is not None and denied[0].record_id != record:
            raise DenialNotAudited(f"{where}: the denial names {denied[0].record_id}, "
                                   f"not the record {record}")
    else:
        assert not denied, f"{where}: unexpected 'denied' events {_summary(denied)}"
        if case != ANON and rule.audited and (
                len(events) != 1 or events[0].actor != username or events[0].outcome != "ok"
                or events[0].purpose != purpose):
            raise AccessNotAudited(f"{where}: expected exactly one event, 'ok' by {username} "
                                   f"with purpose {purpose!r}; got {_summary(events)}")
        if case != ANON and rule.logged is not None and (
                mismatch := rule.logged(ctx, role).mismatch(events[0])):
            raise AccessNotAudited(f"{where}: {mismatch}")

    # Only a register, and only with a purpose, shows a personal value in clear.
    if not refused and purpose is None and (leaked := _leaked(answer)):
        raise ShownWithoutPurpose(f"{where}: answered without X-Purpose with {leaked}")

    if expect.summary is not None:
        summary = response.json()["summary"]
        if {key: summary.get(key) for key in expect.summary} != expect.summary:
            raise AssertionError(f"{where}: expected a summary with {dict(expect.summary)}, "
                                 f"got {summary}")

    if expect.visible is not None:
        listed = subject in body
        if expect.visible and not listed:
            raise AssertionError(f"{where}: {subject} is missing: {body[:300]}")
        if not expect.visible and listed:
            raise RecordLeaked(f"{where}: lists {subject} (out of scope, or sealed)")


# --- the table is complete; every route needs a token unless public -------------------------


def _routes(app):
    """``app.routes`` flattened: included routers are expanded into their effective routes
    (path with the prefix, dependencies of the inclusion)."""
    return list(iter_route_contexts(app.routes))


def _api_routes(app) -> set[tuple[str, str]]:
    return {(method, route.path) for route in _routes(app)
            if isinstance(route.original_route, APIRoute) for method in route.methods}


def test_every_route_has_a_declared_decision(client):
    routes = {r for r in _api_routes(client.app) if r[1] not in PUBLIC_PATHS}
    missing = sorted(routes - set(ROUTES))
    stale = sorted(set(ROUTES) - routes)
    message = []
    if missing:
        message.append("routes without a declared decision in tests/test_route_matrix.py "
                       "ROUTES (add who may call them and how a refusal looks): "
                       + ", ".join(f"{m} {p}" for m, p in missing))
    if stale:
        message.append("ROUTES declares routes the app no longer has: "
                       + ", ".join(f"{m} {p}" for m, p in stale))
    assert not message, "\n".join(message)


def test_the_matrix_covers_every_role():
    declared = {"police", "coordinator", "justice", "corrections", "auditor", "leadership",
                "admin"}
    assert set(ROLES) == declared, "a role was added or removed: review ROUTES for it"
    cases = {IN, OUT, PURPOSE, SEALED, SEALED_PURPOSE}
    for key, rule in ROUTES.items():
        assert rule.allowed <= ALL and rule.readers <= ALL, key
        assert rule.subject is not None or rule.level is not Level.COLLECTION, key
        assert rule.subject is None or rule.level in (Level.COLLECTION, Level.RECORD), key
        assert rule.record is None or rule.level is Level.RECORD, key
        assert not rule.sealed or rule.level in (Level.COLLECTION, Level.RECORD), key
        # A trail declares more than one event: an import's always, a record's where a
        # success appends several (none does today).
        assert len(rule.trail) != 1, key
        assert rule.level in (Level.IMPORT, Level.RECORD) or not rule.trail, key
        assert rule.trail or rule.level is not Level.IMPORT, key
        assert all(role in ROLES and case in cases for role, case in rule.bugs), key
        # What one event says is declared only where a success leaves exactly one.
        assert rule.logged is None or (rule.audited and not rule.trail), key
        # A route showing a register's records lists them: in scope, and not out of it.
        assert not rule.shows_records or rule.subject is not None, key
    # The ghost stands in for every record the fixture can build.
    built = {name for name, value in vars(Fixture).items() if isinstance(value, cached_property)}
    assert built == {f.name for f in fields(Ghost)}


def test_register_routes_take_a_purpose(client):
    """Every route of a personal-data register accepts X-Purpose: reads, lists, searches and
    writes alike (a write answers with the record, masked without one); so does every route
    declared to show a register's records from outside one (``Rule.shows_records``)."""
    checked = set()
    for route in _routes(client.app):
        if not isinstance(route.original_route, APIRoute):
            continue
        for method in route.methods:
            if _takes_purpose(route.path, ROUTES.get((method, route.path))):
                assert _depends_on(route.dependant, get_purpose), (
                    f"{method} {route.path} does not take X-Purpose")
                checked.add((method, route.path))
    assert {key for key, rule in ROUTES.items() if rule.shows_records} <= checked


def _depends_on(dependant, call) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


_PLACEHOLDERS = {"rental_id": str(uuid.uuid4()), "residency_id": str(uuid.uuid4()),
                 "case_id": str(uuid.uuid4()), "code": COMMUNITY_A, "username": "nobody"}


def _fill(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: _PLACEHOLDERS.get(m[1], "x"), path)


def test_every_route_is_authenticated_unless_public(client):
    """Walks ``app.routes`` (API routes and the docs alike): a route not in PUBLIC_PATHS
    depends on the bearer token and answers 401 without one."""
    paths = set()
    for route in _routes(client.app):
        path = route.path
        assert path is not None, f"{route!r} has no path: declare how it is protected"
        paths.add(path)
        if path in PUBLIC_PATHS:
            continue
        if path == WEB_PREFIX:
            continue  # the pages: a sign-in page, not a 401 (tests/web/test_pages_matrix.py)
        if isinstance(route.original_route, APIRoute):
            assert _depends_on(route.dependant, get_token), (
                f"{path} does not depend on the bearer token and is not in PUBLIC_PATHS")
        for method in sorted(route.methods or {"GET"}):
            response = client.request(method, _fill(path))
            assert response.status_code == 401, (
                f"{method} {path} without a token answered {response.status_code}: "
                f"{response.text[:200]}")
    stale = sorted(PUBLIC_PATHS - paths)
    assert not stale, f"PUBLIC_PATHS lists paths that are not routes: {stale}"


def test_public_paths_answer_without_a_token(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    # Whoever changes their password has no token: typically just after an administrator's
    # reset, which leaves the account unable to sign in until it is changed.
    changer = make_user(registry, None, "police", COMMUNITY_A)
    with registry.vault(system_actor("tests")) as vault:
        vault.users.reset_password(changer.username, "admin-chosen-password")
        vault.commit()
    requests = {
        "/health": ("GET", None, 200),
        "/auth/token": ("POST", {"username": user.username, "password": PASSWORD}, 200),
        "/auth/password": ("POST", {"username": changer.username,
                                    "password": "admin-chosen-password",
                                    "new_password": "chosen-by-the-user"}, 204),
        "/docs": ("GET", None, 200),
        "/docs/oauth2-redirect": ("GET", None, 200),
        "/openapi.json": ("GET", None, 200),
        "/redoc": ("GET", None, 200),
    }
    assert set(requests) == PUBLIC_PATHS, "declare a request for each public path here"
    for path, (method, body, status) in requests.items():
        response = client.request(method, path, json=body)
        assert response.status_code == status, f"{method} {path}: {response.status_code}"
    signed_in = client.post("/auth/token", json={"username": changer.username,
                                                 "password": "chosen-by-the-user"})
    assert signed_in.status_code == 200, signed_in.text


def test_production_serves_no_docs_page_loading_outside_scripts(registry):
    """The interactive docs load Swagger UI from a CDN into the origin where the pages'
    session cookie lives: production serves the OpenAPI document only."""
    registry.settings = registry.settings.model_copy(
        update={"environment": Environment.production})
    with TestClient(create_app(registry)) as production:
        assert production.get("/docs").status_code == 404
        assert production.get("/redoc").status_code == 404
        assert production.get("/openapi.json").status_code == 200


# --- regressions found by the matrix --------------------------------------------------------


def test_pledge_without_a_signer_defaults_to_the_landlord(registry, client):
    """The default signer is the landlord's stored name, opened under the person's data key,
    which nothing else in the request has loaded (it once answered 500: data key missing)."""
    ctx = Fixture(registry)
    police = make_user(registry, client, "police", COMMUNITY_A)
    response = client.post(f"/rentals/{ctx.rental_id}/pledge",
                           json={"signed_on": "2026-06-01", "valid_until": "2027-06-01"},
                           headers=police.headers)
    assert response.status_code == 200, response.text
    read = client.get(f"/rentals/{ctx.rental_id}",
                      headers={**police.headers, "X-Purpose": "case 2026-117"}).json()
    assert read["pledge"]["signed_on"] == "2026-06-01"
    assert read["pledge"]["signed_by"] == rental_body(1)["landlord"]["name"]


# --- what the matrix's cells do not vary: the metric asked for ------------------------------


@pytest.mark.parametrize("route", ["chart.svg", "shortfall"])
@pytest.mark.parametrize(("role", "metric"), [("justice", "pledge_signing"),
                                              ("coordinator", "coordinator_staffing")])
def test_a_metric_the_role_may_not_see_answers_as_absent(registry, client, route, role,
                                                         metric):
    """A metric of a register the role may not list (and it sees no aggregates) is a 404,
    audited as a denial naming the metric, answered exactly as for a metric that does not
    exist."""
    username, headers = sign_in(registry, role, COMMUNITY_A)
    params = {"at": COMMUNITY_A}
    before = last_seq(registry)
    hidden = client.get(f"/metrics/{metric}/{route}", params=params, headers=headers)
    events = events_after(registry, before)
    assert hidden.status_code == 404, hidden.text
    assert [(e.outcome, e.actor, e.kind, e.action, e.record_id) for e in events] == [
        ("denied", username, "metrics", "read", metric)], _summary(events)
    absent = client.get(f"/metrics/no_such_metric/{route}", params=params, headers=headers)
    assert (absent.status_code, absent.json()) == (hidden.status_code, hidden.json())


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("metric", ["aftercare", "no_such_metric"])
def test_a_metric_without_a_survey_baseline_refuses_one(registry, client, method, metric):
    """Only the metrics whose denominator a survey can stand in for take a baseline; any
    other key is a 422 on the metric, and nothing is recorded."""
    _, headers = sign_in(registry, "police", COMMUNITY_A)
    before = last_seq(registry)
    response = client.request(method, f"/metrics/baselines/{GRID_A1}/{metric}", headers=headers,
                              json={"count": 40, "surveyed_on": "2026-06-01"}
                              if method == "PUT" else None)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "metric", response.text
    assert not [e for e in events_after(registry, before) if e.outcome == "ok"]
