"""A synthetic county for trying the registry: townships, communities and grids, one account
per role, and a few hundred rentals with landlords (Faker zh_CN names, valid synthetic ID
numbers). Development only: the passwords are printed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from faker import Faker

from registry.rentals import service as rentals
from registry.rentals.schemas import PledgeIn, RentalCreate, RentalStatus
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


def build(registry: Registry, *, rentals_count: int = 300, seed: int = 7) -> list[DemoUser]:
    """Load the demo county into an initialised, empty registry."""
    operator = system_actor("demo")
    users = demo_users()
    with registry.vault(operator) as vault:
        vault.jurisdictions.upsert(jurisdiction_rows())
        for user in users:
            vault.users.add(username=user.username, password=user.password, role=user.role,
                            jurisdiction_code=user.jurisdiction_code)
        vault.commit()

    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible on purpose
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    grids = [code for code, _, _ in jurisdiction_rows() if len(code) == 15]
    landlords = [PersonIn(name=fake.name(), id_number=synthetic_id_number(rng),
                          phone=synthetic_mobile(rng) if rng.random() > 0.05 else None)
                 for _ in range(max(1, rentals_count * 2 // 3))]
    today = registry.clock.today()
    addresses: set[str] = set()
    with registry.vault(Actor(None, "demo-loader", "police", COUNTY)) as vault:
        for n in range(rentals_count):
            grid = grids[n % len(grids)]
            address = ""
            while not address or address in addresses:
                address = (f"{fake.street_name()}{rng.randrange(1, 300)}号"
                           f"{rng.randrange(1, 30)}幢{rng.randrange(101, 2600)}室")
            addresses.add(address)
            registered = today - timedelta(days=rng.randrange(30, 1500))
            pledge = None
            if rng.random() > 0.12:
                signed = registered + timedelta(days=rng.randrange(0, 20))
                years = rng.choice([1, 1, 2, 3])
                pledge = PledgeIn(signed_on=min(signed, today),
                                  valid_until=min(signed, today) + timedelta(days=365 * years))
            rentals.register(vault, RentalCreate(
                jurisdiction_code=grid,
                address=address,
                units=rng.choice([1, 1, 1, 2, 3, 4, 6, 10]),
                status=RentalStatus.active if rng.random() > 0.15 else RentalStatus.vacant,
                registered_on=registered, landlord=rng.choice(landlords), pledge=pledge,
            ))
        vault.commit()
    return users
