"""Verifying the audit chain, against hashing the same bytes with plain hashlib.

Builds a registry with N audit events forming a valid chain after the ones the set-up wrote:
each event made as ``registry.security.audit.append`` makes it (the module's own row form,
canonical bytes and chain hash) but written in bulk with ``registry.db.insert_many``, and the
chain head moved to the last one. (``audit_ref`` is left empty: verification never reads it.)
Then, each round, on the same database and in the same process:

* **verify**: ``audit.verify(session)``, the walk ``registry audit verify`` runs;
* **hashlib**: ``hashlib.sha256`` over exactly the bytes verify must hash for each event
  (previous hash ‖ canonical event), held in memory — the ceiling;
* **read**: just reading every event row, all columns, in ``seq`` order (Core rows, streamed)
  — a second reference.

Best and median of ``--rounds`` for each, as events/s, and their ratios.

    .venv/bin/python bench/audit_verify.py [--events 1000000] [--rounds 3] [--postgres URL]

Goal (issue 6): verify at least 300,000 events/s.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, update

from bench.register_rentals import PostgresDatabases, fresh_registry
from registry.db import insert_many
from registry.models import AuditEvent, AuditHead
from registry.security import audit

ACTIONS = [("read", "person", ["name", "id_number", "phone"]), ("update", "residency", ["phone"]),
           ("create", "rental", ["address", "landlord_name"]), ("list", "residency", [])]
GRID = "339901001001"


def events(count: int, start: datetime):
    """Plausible events: a few hundred officers reading, writing and listing records."""
    rng = random.Random(6)
    officers = [(uuid.UUID(int=rng.getrandbits(128)), f"officer{i:03d}") for i in range(300)]
    for i in range(count):
        actor_id, actor = officers[rng.randrange(len(officers))]
        action, kind, fields = ACTIONS[rng.randrange(len(ACTIONS))]
        record = str(uuid.UUID(int=rng.getrandbits(128)))
        yield audit.Event(
            actor_id=actor_id, actor=actor, role="police", action=action, kind=kind,
            record_id=None if action == "list" else record,
            jurisdiction_code=f"{GRID}{rng.randrange(1, 11):03d}", fields=fields,
            refs=[f"{kind}:{record}"] if action == "list" else [],
            purpose="核查租户信息" if action == "read" else None,
            detail="page=1" if action == "list" else "",
            request_id=uuid.UUID(int=rng.getrandbits(128)).hex,
            at=start + timedelta(milliseconds=250 * i))


def build(registry, count: int) -> list[bytes]:
    """Append ``count`` events to the chain in bulk; returns, per event of the whole chain, the
    bytes its hash covers."""
    with registry.db.session() as s:
        head = s.execute(select(AuditHead.seq, AuditHead.hash)).one()
        seq, prev = head.seq, head.hash
        batch: list[dict] = []
        for event in events(count, datetime(2026, 1, 1, tzinfo=UTC)):
            seq += 1
            row = audit._row(event, seq, prev)  # append's own row form
            row["hash"] = prev = audit.chain_hash(prev, row)
            batch.append(row)
            if len(batch) == 50_000:
                insert_many(s, AuditEvent.__table__, batch)
                batch = []
        insert_many(s, AuditEvent.__table__, batch)
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))
        s.commit()
    with registry.db.session() as s:  # the set-up's events too, as read back
        return [bytes.fromhex(row["prev_hash"]) + audit.canonical(row) for row in
                s.execute(select(*AuditEvent.__table__.c).order_by(AuditEvent.seq))
                .mappings()]


def run_verify(registry) -> int:
    with registry.db.session() as s:
        result = audit.verify(s)
    assert result.ok, result.describe()
    return result.checked


def run_hashlib(blobs: list[bytes]) -> int:
    sha256 = hashlib.sha256
    for blob in blobs:
        sha256(blob).hexdigest()
    return len(blobs)


def run_read(registry) -> int:
    count = 0
    with registry.db.session() as s:
        rows = s.connection().execute(select(*AuditEvent.__table__.c)
                                      .order_by(AuditEvent.seq)
                                      .execution_options(yield_per=5000))
        for _ in rows:
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="run on this PostgreSQL server")
    args = parser.parse_args()
    pg = PostgresDatabases(args.postgres) if args.postgres else None
    rates: dict[str, list[float]] = {"verify": [], "hashlib": [], "read": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            registry = fresh_registry(Path(tmp), pg.new() if pg else None, plaintext=False)
            print(f"building {args.events} events …", flush=True)
            started = time.perf_counter()
            blobs = build(registry, args.events)
            print(f"built in {time.perf_counter() - started:.0f} s "
                  f"({len(blobs)} events in the chain)", flush=True)
            work = {"read": lambda: run_read(registry), "hashlib": lambda: run_hashlib(blobs),
                    "verify": lambda: run_verify(registry)}
            for round_no in range(args.rounds):
                for name, step in work.items():
                    started = time.perf_counter()
                    count = step()
                    elapsed = time.perf_counter() - started
                    assert count == len(blobs), (name, count, len(blobs))
                    rates[name].append(count / elapsed)
                    print(f"round {round_no + 1} {name:8}: {elapsed:6.2f} s, "
                          f"{count / elapsed:10,.0f} events/s", flush=True)
            registry.db.dispose()
    finally:
        if pg:
            pg.drop_all()
    backend = "postgresql" if pg else "sqlite"
    best = {name: max(r) for name, r in rates.items()}
    median = {name: statistics.median(r) for name, r in rates.items()}
    print(f"\n{backend}, {len(blobs)} events, best (median) of {args.rounds}:")
    for name, label in (("verify", "audit.verify"), ("hashlib", "hashlib.sha256 alone"),
                        ("read", "reading the rows")):
        print(f"  {label:22}: {best[name]:10,.0f} events/s ({median[name]:,.0f})")
    print(f"  verify / hashlib      : {best['verify'] / best['hashlib']:10.2f}  "
          f"(hashlib is {best['hashlib'] / best['verify']:.1f}x faster)")
    print(f"  verify / read         : {best['verify'] / best['read']:10.2f}")
    goal = "met" if best["verify"] >= 300_000 else "NOT met"
    print(f"  goal >= 300,000 events/s: {goal}")


if __name__ == "__main__":
    main()
