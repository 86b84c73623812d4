"""What the privacy core costs on the write path.

Registers N rentals with their landlords through the service layer (one transaction per rental,
as the API does), twice per round on fresh databases: once as built (per-record data keys,
AES-256-GCM, blind indexes, audit chain) and once with REGISTRY_BENCH_PLAINTEXT (no data keys,
values stored unencrypted behind the same column type, no audit events). Rounds alternate the
two to spread machine noise; the best round of each is reported, with their ratio.

    .venv/bin/python bench/register_rentals.py [--n 2000] [--rounds 3] [--postgres URL]

Goal (issue 2): the privacy core costs at most 2x the plaintext path.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry import demo
from registry.clock import Clock
from registry.config import Settings
from registry.migrate import upgrade
from registry.rentals import service
from registry.rentals.schemas import PledgeIn, RentalCreate
from registry.schemas import PersonIn
from registry.security.crypto import LocalKeyFile
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry


def inputs(n: int) -> list[RentalCreate]:
    rng = random.Random(1)
    grids = [code for code, _, _ in demo.jurisdiction_rows() if len(code) == 15]
    people = [PersonIn(name=f"张{i}", id_number=demo.synthetic_id_number(rng),
                       phone=demo.synthetic_mobile(rng)) for i in range(n * 2 // 3)]
    start = date(2025, 1, 1)
    return [RentalCreate(
        jurisdiction_code=grids[i % len(grids)], address=f"测试路{i}号{i % 30}幢{i % 2000}室",
        units=1 + i % 5, registered_on=start + timedelta(days=i % 300),
        landlord=people[i % len(people)],
        pledge=PledgeIn(signed_on=start, valid_until=start + timedelta(days=365)),
    ) for i in range(n)]


def fresh_registry(workdir: Path, url: str | None, plaintext: bool) -> Registry:
    tag = secrets.token_hex(4)
    database_url = url or f"sqlite:///{workdir / f'{tag}.sqlite3'}"
    settings = Settings(_env_file=None, environment="test", data_dir=workdir,
                        key_file=workdir / f"{tag}.key", database_url=database_url,
                        bench_plaintext=plaintext)
    LocalKeyFile.create(settings.resolved_key_file)
    upgrade(database_url)
    registry = Registry(settings, clock=Clock())
    with registry.vault(system_actor("bench")) as vault:
        vault.jurisdictions.upsert(demo.jurisdiction_rows())
        vault.commit()
    return registry


def run(registry: Registry, data: list[RentalCreate]) -> float:
    actor = Actor(None, "bench", "police", demo.COUNTY)
    started = time.perf_counter()
    for item in data:
        with registry.vault(actor) as vault:
            service.register(vault, item)
            vault.commit()
    elapsed = time.perf_counter() - started
    registry.db.dispose()
    return len(data) / elapsed


class PostgresDatabases:
    """A throw-away database per run on the given server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def new(self) -> str:
        name = f"registry_bench_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="run on this PostgreSQL server")
    args = parser.parse_args()
    data = inputs(args.n)
    pg = PostgresDatabases(args.postgres) if args.postgres else None
    best = {True: 0.0, False: 0.0}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_no in range(args.rounds):
                for plaintext in (True, False):
                    url = pg.new() if pg else None
                    rate = run(fresh_registry(Path(tmp), url, plaintext), data)
                    best[plaintext] = max(best[plaintext], rate)
                    label = "plaintext" if plaintext else "as built "
                    print(f"round {round_no + 1} {label}: {rate:8.0f} rentals/s")
    finally:
        if pg:
            pg.drop_all()
    backend = "postgresql" if pg else "sqlite"
    ratio = best[True] / best[False]
    print(f"\n{backend}, N={args.n}, best of {args.rounds}:")
    print(f"  plaintext path : {best[True]:8.0f} rentals/s")
    print(f"  privacy core   : {best[False]:8.0f} rentals/s")
    print(f"  cost ratio     : {ratio:8.2f}x  (goal <= 2.00x)")


if __name__ == "__main__":
    main()
