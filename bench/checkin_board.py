"""The corrections check-in board at county scale.

Builds a county with ``--cases`` active corrections cases (opened through the service layer, so
names are really sealed) and ``--check-ins`` check-ins (bulk-inserted: recording them one by
one is not what this measures), then times, in the same run and on the same database:

* the board: one ``GET /corrections/board`` request, in process, as a county corrections
  officer with a purpose (names decrypted), including sign-in check, scope, decryption and the
  audit event;
* the baseline: a plain ``SELECT count(*) FROM check_in``;
* for reference, the floor of any authenticated request: ``GET /auth/me``.

Each is the median of ``--repeat`` runs. Goal (issue 3): within 10x the count and under 200 ms.

    .venv/bin/python bench/checkin_board.py [--cases 5000] [--check-ins 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, text, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from register_rentals import PostgresDatabases, fresh_registry

from registry import demo
from registry.api import create_app
from registry.corrections import service
from registry.corrections.schemas import CaseCreate, Category
from registry.models import CheckIn, CorrectionsCase
from registry.models._types import new_id
from registry.vault.accounts import system_actor
from registry.vault.base import Actor

TODAY = date(2026, 6, 15)


def build(registry, cases: int, check_ins: int) -> None:
    rng = random.Random(3)
    gen = demo.Generator(3)
    actor = Actor(None, "bench", "corrections", demo.COUNTY)
    ids = []
    with registry.vault(actor) as vault:
        for n in range(cases):
            person = gen.person()
            effective = TODAY - timedelta(days=rng.randrange(30, 600))
            ids.append(service.open_case(vault, CaseCreate(
                name=person.name, id_number=person.id_number,
                jurisdiction_code=gen.grids[n % len(gen.grids)], category=Category.probation,
                deciding_body="清河县人民法院", judgment_ref=f"(2025)清刑初{n}号",
                effective_on=effective, supervision_start=effective,
                supervision_end=effective + timedelta(days=1000), reported_on=effective,
                check_in_interval_days=7, grace_days=2)).id)
            if n % 500 == 499:
                vault.commit()
        vault.commit()
    per_case = max(1, check_ins // cases)
    with registry.db.session() as session:
        rows, lasts = [], {}
        for case_id in ids:
            # Most check in on time; some stopped a while ago (overdue on the board).
            last = TODAY - timedelta(days=rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 9, 12, 20, 40]))
            lasts[case_id] = last
            for k in range(per_case):
                day = last - timedelta(days=7 * k)
                rows.append({"id": new_id(), "case_id": case_id, "method": "in_person",
                             "at": datetime.combine(day, datetime.min.time(), tzinfo=UTC)})
        for start in range(0, len(rows), 10_000):
            session.execute(insert(CheckIn), rows[start:start + 10_000])
        for case_id, last in lasts.items():
            session.execute(update(CorrectionsCase).where(CorrectionsCase.id == case_id).values(
                last_check_in_at=datetime.combine(last, datetime.min.time(), tzinfo=UTC),
                next_due_on=last + timedelta(days=7), overdue_on=last + timedelta(days=9)))
        session.commit()


def median_ms(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--check-ins", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args()
    pg = PostgresDatabases(args.postgres) if args.postgres else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            registry = fresh_registry(Path(tmp), pg.new() if pg else None, plaintext=False)
            registry.clock.fixed = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
            started = time.perf_counter()
            build(registry, args.cases, args.check_ins)
            print(f"built {args.cases} cases and {args.check_ins} check-ins in "
                  f"{time.perf_counter() - started:.0f} s")
            with registry.vault(system_actor("bench")) as vault:
                vault.users.add(username="officer", password="bench-password-1",
                                role="corrections", jurisdiction_code=demo.COUNTY)
                vault.commit()
            client = TestClient(create_app(registry))
            token = client.post("/auth/token", json={"username": "officer",
                                                     "password": "bench-password-1"})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}",
                       "X-Purpose": "daily supervision"}
            board = client.get("/corrections/board", headers=headers).json()
            sizes = {k: len(board[k]) for k in ("overdue", "due_today", "awaiting_report")}

            def count() -> None:
                with registry.db.engine.connect() as conn:
                    conn.execute(text("SELECT count(*) FROM check_in")).scalar_one()

            def request() -> None:
                response = client.get("/corrections/board", headers=headers)
                assert response.status_code == 200

            def floor() -> None:
                assert client.get("/auth/me", headers=headers).status_code == 200

            count()
            baseline = median_ms(count, args.repeat)
            measured = median_ms(request, args.repeat)
            nothing = median_ms(floor, args.repeat)
    finally:
        if pg:
            pg.drop_all()
    backend = "postgresql" if pg else "sqlite"
    print(f"\n{backend}: {args.cases} active cases, {args.check_ins} check-ins; board rows {sizes}")
    print(f"  count(*) over check_in : {baseline:8.1f} ms (median of {args.repeat})")
    print(f"  check-in board request : {measured:8.1f} ms (median of {args.repeat})")
    print(f"  (floor: GET /auth/me   : {nothing:8.1f} ms — token check and HTTP, no data)")
    print(f"  ratio                  : {measured / baseline:8.1f}x  (goal <= 10x, < 200 ms)")


if __name__ == "__main__":
    main()
