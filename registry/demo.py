"""A synthetic county for trying the registry: townships, communities and grids, one account
per role, rentals with landlords and pledges, residents, corrections cases with check-in
histories (some overdue) and release cases (some unplaced) — Faker zh_CN names, valid synthetic
ID numbers. Development only: the passwords are printed."""

from __future__ import annotations

import random
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from faker import Faker

from registry.breakglass.schemas import GrantKind
from registry.coordinators import service as coordinators
from registry.coordinators.schemas import CoordinatorIn
from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate, Category, CheckInIn, Method
from registry.errors import RegistryError
from registry.releases import service as releases
from registry.releases.schemas import (
    AssistanceIn,
    AssistanceKind,
    PlacementIn,
    PlacementKind,
    PlacementStatus,
    ReleaseCreate,
    Source,
)
from registry.rentals import service as rentals
from registry.rentals.schemas import PledgeIn, RentalCreate, RentalStatus
from registry.residents import service as residents
from registry.residents.schemas import ArrivalIn, MoveOut, Reason
from registry.schemas import PersonIn
from registry.validation import check_character
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry

COUNTY = "330199"
TOWNSHIPS = ["城关街道", "临江镇", "青山镇"]
COMMUNITIES = ["东门社区", "西湖社区", "南塘村"]
GRIDS = ["第一网格", "第二网格"]


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    jurisdiction_code: str
    note: str


def demo_users() -> list[DemoUser]:
    a, b = f"{COUNTY}001001", f"{COUNTY}001002"
    return [
        DemoUser("police_a", "demo-police-a", "police", a, "community police, community A"),
        DemoUser("police_b", "demo-police-b", "police", b, "community police, community B"),
        DemoUser("coordinator_a", "demo-coordinator-a", "coordinator", f"{a}001",
                 "coordinator, grid 1 of community A"),
        DemoUser("justice", "demo-justice", "justice", COUNTY, "justice bureau, county"),
        DemoUser("corrections", "demo-corrections", "corrections", COUNTY,
                 "corrections office, county"),
        DemoUser("auditor", "demo-auditor", "auditor", COUNTY, "auditor, county"),
        DemoUser("leadership", "demo-leadership", "leadership", COUNTY, "leadership, county"),
        DemoUser("admin", "demo-admin-pass", "admin", COUNTY, "administrator, county"),
    ]


def jurisdiction_rows() -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = [(COUNTY, "清河县", None)]
    for t, township in enumerate(TOWNSHIPS, start=1):
        t_code = f"{COUNTY}{t:03d}"
        rows.append((t_code, township, COUNTY))
        for c, community in enumerate(COMMUNITIES, start=1):
            c_code = f"{t_code}{c:03d}"
            rows.append((c_code, f"{township}{community}", t_code))
            for g, grid in enumerate(GRIDS, start=1):
                rows.append((f"{c_code}{g:03d}", f"{township}{community}{grid}", c_code))
    return rows


def synthetic_id_number(rng: random.Random) -> str:
    birth = date(1950, 1, 1) + timedelta(days=rng.randrange(50 * 365))
    first17 = f"{COUNTY}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + check_character(first17)


def synthetic_mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


@dataclass
class Generator:
    """Deterministic synthetic people and places."""

    seed: int

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - synthetic data, reproducible
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(self.seed)
        self.grids = [code for code, _, _ in jurisdiction_rows() if len(code) == 15]
        self._addresses: set[str] = set()
        self._ids: set[str] = set()

    def person(self, *, phone_share: float = 0.95) -> PersonIn:
        number = synthetic_id_number(self.rng)
        while number in self._ids:
            number = synthetic_id_number(self.rng)
        self._ids.add(number)
        return PersonIn(name=self.fake.name(), id_number=number,
                        phone=synthetic_mobile(self.rng) if self.rng.random() < phone_share
                        else None)

    def address(self) -> str:
        address = ""
        while not address or address in self._addresses:
            address = (f"{self.fake.street_name()}{self.rng.randrange(1, 300)}号"
                       f"{self.rng.randrange(1, 30)}幢{self.rng.randrange(101, 2600)}室")
        self._addresses.add(address)
        return address

    def days_ago(self, low: int, high: int, today: date) -> date:
        return today - timedelta(days=self.rng.randrange(low, high))


# Weeks of officers' work before today, for the auditors' reports to have a history.
HISTORY_DAYS = 35


def build(registry: Registry, *, scale: float = 1.0, seed: int = 7) -> list[DemoUser]:
    """Load the demo county into an initialised, empty registry: accounts, the tree, and at
    scale 1 about 300 rentals, 2,000 residents, 60 corrections and 60 release cases; then five
    weeks of officers' reads (see :func:`_activity`). The registers and accounts are dated
    five weeks back (the registry's clock is set there, and walked forward through the
    activity), except the corrections cases, opened today so that their recent check-ins
    stay recent."""
    users = demo_users()
    clock = registry.clock
    fixed, now = clock.fixed, clock.now()
    clock.fixed = now - timedelta(days=HISTORY_DAYS + 1)
    try:
        with registry.vault(system_actor("demo")) as vault:
            vault.jurisdictions.upsert(jurisdiction_rows())
            accounts = {}
            for user in users:
                added = vault.users.add(username=user.username, password=user.password,
                                        role=user.role, jurisdiction_code=user.jurisdiction_code)
                accounts[user.username] = Actor(added.id, user.username, user.role,
                                                user.jurisdiction_code)
            vault.commit()
        gen = Generator(seed)
        rental_ids = _rentals(registry, gen, max(1, int(300 * scale)))
        _residents(registry, gen, rental_ids, max(1, int(2000 * scale)))
        _releases(registry, gen, max(1, int(60 * scale)))
        _coordinators(registry, gen)
        _activity(registry, random.Random(seed), accounts, now)  # noqa: S311 - synthetic
    finally:
        clock.fixed = fixed
    _corrections(registry, gen, max(1, int(60 * scale)))
    return users


def _activity(registry: Registry, rng: random.Random, accounts: dict[str, Actor],
              now: datetime) -> None:
    """Officers' reads through the services, day by day on the registry's clock: on working
    days each reads a few records in working hours, mostly with a purpose. For the auditors to
    find: ``police_b`` spends the last six nights opening records of community B without a
    purpose (above their own baseline and their peer's, at unusual hours, not their cases),
    and ``coordinator_a`` tries residents outside their grid (denials); on the last day
    ``police_a`` opens one of community B's residents by break-glass (the review queue)."""
    clock = registry.clock
    tz = clock.tz
    first = now.astimezone(tz).date() - timedelta(days=HISTORY_DAYS)
    clock.fixed = datetime.combine(first, time(8, 30), tzinfo=tz)
    reads = {"police_a": residents.get, "police_b": residents.get,
             "coordinator_a": residents.get, "justice": releases.get}
    lists = {"police_a": residents.list_residents, "police_b": residents.list_residents,
             "coordinator_a": residents.list_residents, "justice": releases.list_cases}
    pools = {}
    for name, listing in lists.items():
        with registry.vault(accounts[name]) as vault:
            pools[name] = [r.id for r in listing(vault, page_size=100).items]
            vault.commit()

    def read(name: str, at: datetime, purpose: str | None) -> None:
        if not pools[name] or at >= now:
            return
        clock.fixed = at
        with registry.vault(accounts[name]) as vault:
            reads[name](vault, rng.choice(pools[name]), purpose=purpose)
            vault.commit()

    for offset in range(HISTORY_DAYS, -1, -1):
        day = now.astimezone(tz).date() - timedelta(days=offset)
        if day.weekday() < 5:
            for name in reads:
                for _ in range(rng.randrange(2, 6)):
                    at = datetime.combine(day, time(9), tzinfo=tz) + timedelta(
                        minutes=rng.randrange(0, 8 * 60))
                    read(name, at, f"核查 {day:%m%d}-{rng.randrange(100)}"
                         if rng.random() < 0.85 else None)
        if 1 <= offset <= 6:
            night = datetime.combine(day, time(22, 40), tzinfo=tz)
            for n in range(rng.randrange(12, 17)):
                read("police_b", night + timedelta(minutes=9 * n + rng.randrange(0, 5)), None)
        if 1 <= offset <= 3:
            clock.fixed = datetime.combine(day, time(10, 15), tzinfo=tz)
            for target in rng.sample(pools["police_b"], min(2, len(pools["police_b"]))):
                # Outside their grid: refused (404), the denial audited.
                with registry.vault(accounts["coordinator_a"]) as vault, suppress(RegistryError):
                    residents.get(vault, target, purpose=None)
        if offset == 1 and pools["police_b"]:
            # A break-glass read: police_a opens a resident of community B, stating why; the
            # grant waits in the auditors' review queue.
            clock.fixed = datetime.combine(day, time(15, 5), tzinfo=tz)
            target = rng.choice(pools["police_b"])
            with registry.vault(accounts["police_a"]) as vault:
                vault.access.open_grant(kind=GrantKind.resident, record_id=target,
                                        reason="110 警情 2026-1187：核实同住人员身份")
                vault.commit()
            with registry.vault(accounts["police_a"]) as vault:
                residents.get(vault, target, purpose="110 警情 2026-1187")
                vault.commit()


def _coordinators(registry: Registry, gen: Generator) -> None:
    """A roster one short of what the staffing ratio asks for: one coordinator in each
    community but the last (so the staffing metric has something to say)."""
    communities = sorted({grid[:12] for grid in gen.grids})[:-1]
    with registry.vault(_loader("police")) as vault:
        for n, code in enumerate(communities, start=1):
            person = gen.person()
            coordinators.add(vault, CoordinatorIn(staff_number=f"XG{n:03d}", name=person.name,
                                                  jurisdiction_code=code, phone=person.phone))
        vault.commit()


def _loader(role: str) -> Actor:
    return Actor(None, f"demo-loader-{role}", role, COUNTY)


def _rentals(registry: Registry, gen: Generator, count: int) -> list:
    rng, today = gen.rng, registry.clock.today()
    landlords = [gen.person() for _ in range(max(1, count * 2 // 3))]
    ids = []
    with registry.vault(_loader("police")) as vault:
        for n in range(count):
            registered = gen.days_ago(30, 1500, today)
            pledge = None
            if rng.random() > 0.12:
                signed = min(registered + timedelta(days=rng.randrange(0, 20)), today)
                pledge = PledgeIn(signed_on=signed, valid_until=signed + timedelta(
                    days=365 * rng.choice([1, 1, 2, 3])))
            ids.append(rentals.register(vault, RentalCreate(
                jurisdiction_code=gen.grids[n % len(gen.grids)], address=gen.address(),
                units=rng.choice([1, 1, 1, 2, 3, 4, 6, 10]),
                status=RentalStatus.active if rng.random() > 0.15 else RentalStatus.vacant,
                registered_on=registered, landlord=rng.choice(landlords), pledge=pledge,
            )).id)
        vault.commit()
    return ids


def _residents(registry: Registry, gen: Generator, rental_ids: list, count: int) -> None:
    rng, today = gen.rng, registry.clock.today()
    occupations = ["餐饮服务", "建筑工", "快递员", "保洁", "个体经营", "网约车司机", "学生",
                   "工厂普工"]
    with registry.vault(_loader("police")) as vault:
        for n in range(count):
            person = gen.person(phone_share=0.9)
            arrived = gen.days_ago(1, 900, today)
            at_rental = rng.random() < 0.85
            reason = rng.choice(list(Reason))
            row = residents.register_arrival(vault, ArrivalIn(
                name=person.name, id_number=person.id_number, reason=reason,
                arrived_on=arrived,
                registered_on=min(arrived + timedelta(days=rng.choice([0, 1, 2, 2, 5, 12])),
                                  today),
                rental_id=rng.choice(rental_ids) if at_rental else None,
                jurisdiction_code=None if at_rental else gen.grids[n % len(gen.grids)],
                address=None if at_rental else gen.address(),
                phone=person.phone,
                occupation=rng.choice(occupations) if rng.random() < 0.93 else None,
                workplace=gen.fake.company() if rng.random() < 0.8 else None,
                hukou_address=gen.fake.address() if rng.random() < 0.9 else None,
            ))
            if rng.random() < 0.15 and row.registered_on < today:
                left = row.registered_on + timedelta(
                    days=rng.randrange(0, (today - row.registered_on).days + 1))
                residents.move_out(vault, row.id, MoveOut(left_on=left))
        vault.commit()


def _corrections(registry: Registry, gen: Generator, count: int) -> None:
    rng, now = gen.rng, registry.clock.now()
    today = now.date()
    categories = [Category.probation] * 6 + [Category.parole] * 2 + [
        Category.control, Category.outside_custody]
    with registry.vault(_loader("corrections")) as vault:
        for n in range(count):
            person = gen.person()
            effective = gen.days_ago(3, 700, today)
            reported = None
            if rng.random() < 0.93:
                reported = min(effective + timedelta(days=rng.choice([1, 3, 5, 8, 12])), today)
            case = corrections.open_case(vault, CaseCreate(
                name=person.name, id_number=person.id_number,
                jurisdiction_code=gen.grids[n % len(gen.grids)], category=rng.choice(categories),
                deciding_body="清河县人民法院", judgment_ref=f"(2025)清刑初{100 + n}号",
                effective_on=effective, supervision_start=effective,
                supervision_end=effective + timedelta(days=365 * rng.choice([1, 2, 3])),
                reported_on=reported, check_in_interval_days=rng.choice([7, 7, 14, 30]),
                grace_days=2, officer="corrections", juvenile=rng.random() < 0.05,
                phone=person.phone,
            ))
            if reported is None:
                continue
            # Check-ins every interval over the last three months; a few people stop coming
            # (overdue on the board).
            stop = today - timedelta(days=rng.choice([0, 0, 0, 0, 3, 10, 25]))
            interval = timedelta(days=case.check_in_interval_days)
            day = reported + interval
            while day < today - timedelta(days=90):
                day += interval
            while day <= stop:
                at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
                corrections.record_check_in(vault, case.id, CheckInIn(
                    at=min(at, now), method=rng.choice(list(Method))),
                    purpose="demo" if case.juvenile else None)
                day += interval
        vault.commit()


def _releases(registry: Registry, gen: Generator, count: int) -> None:
    rng, today = gen.rng, registry.clock.today()
    with registry.vault(_loader("justice")) as vault:
        for n in range(count):
            person = gen.person()
            released = gen.days_ago(-30, 2200, today)
            case = releases.register(vault, ReleaseCreate(
                name=person.name, id_number=person.id_number,
                jurisdiction_code=gen.grids[n % len(gen.grids)],
                source=Source.prison if rng.random() < 0.8 else Source.corrections,
                released_on=released, releasing_institution="省第一监狱",
                notice_received_on=min(released - timedelta(days=30), today),
                key_subject=rng.random() < 0.2, escort_required=rng.random() < 0.1,
                aftercare_group="司法所、社区、家属" if rng.random() < 0.9 else None,
                measures_in_place=rng.random() < 0.9, consent_to_contact=rng.random() < 0.8,
                phone=person.phone, juvenile=rng.random() < 0.05,
            ))
            if not case.open or released > today:
                continue
            purpose = "demo" if case.juvenile else None
            if rng.random() < 0.85:
                releases.place(vault, case.id, PlacementIn(
                    status=PlacementStatus.placed, kind=rng.choice(list(PlacementKind)),
                    placed_on=min(released + timedelta(days=rng.randrange(5, 120)), today)),
                    purpose=purpose)
            for _ in range(rng.randrange(0, 4)):
                releases.assist(vault, case.id, AssistanceIn(
                    on=released + timedelta(days=rng.randrange(0, (today - released).days + 1)),
                    kind=rng.choice(list(AssistanceKind)), notes="走访了解近况"), purpose=purpose)
        vault.commit()
