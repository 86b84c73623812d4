"""Rotating the key-encryption key over N data keys while reads go on.

Builds a registry with N data keys (``Keyring.new_data_keys`` in batches) and seals a few
thousand values under keys spread over the whole id range (held in memory: rotation never
touches sealed data, only the keystore). Then, per round and per batch size:

* **floor**: the key provider unwrapping and re-wrapping the same number of keys in a tight
  loop, rows already in memory — the crypto a rotation cannot avoid;
* **rotation**: ``registry keys rotate --batch B`` — the CLI command itself, called in this
  process: a new KEK version, then batches through the vault (each a transaction with its
  audit event), until no key is left under an old version;
* **reads**: a second process, standing in for a running server, loops over random sealed
  values: one transaction each, load the data key from the keystore, unwrap it, open the value
  and compare. Its reads/s are counted with no rotation running (before each one) and during
  the rotation; every error is counted and must stay at zero.

Each rotation re-wraps all N keys again (under a new version). Best and median of
``--rounds`` per batch size.

    .venv/bin/python bench/rotate_keys.py [--keys 1000000] [--batches 1000,5000]
        [--rounds 2] [--postgres URL]

Issue 6 asks for keys/s with concurrent reads continuing; no figure is set as a goal.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from bench.register_rentals import PostgresDatabases, fresh_registry
from registry import cli_keys
from registry.models import DataKey
from registry.models._types import new_id
from registry.vault.runtime import Registry

SEALED = 3000
BASELINE_SECONDS = 5.0


def build(registry: Registry, count: int) -> list[tuple]:
    """``count`` data keys; returns (key id, row id, ciphertext, plaintext) for SEALED of
    them, spread over the id range."""
    rng, sealed = random.Random(6), []
    keyring, step = registry.keyring, 50_000
    per_batch = max(1, SEALED * step // max(count, 1))
    with registry.db.session() as s:
        for start in range(0, count, step):
            cache: dict = {}
            ids = keyring.new_data_keys(s, min(step, count - start), cache)
            s.commit()
            for key_id in rng.sample(ids, min(per_batch, len(ids))):
                row_id, value = new_id(), f"张{rng.randrange(10**6)} 13{rng.randrange(10**9):09d}"
                sealed.append((key_id, row_id, keyring.seal(key_id, cache[key_id], "person",
                                                            "name", row_id, value), value))
    return sealed


def floor(registry: Registry) -> tuple[int, float]:
    """Unwrap and re-wrap every live data key with the provider, nothing else."""
    with registry.db.session() as s:
        rows = s.execute(select(DataKey.id, DataKey.kek_id, DataKey.wrapped)
                         .where(DataKey.wrapped.is_not(None))).all()
    provider = registry.keyring.provider
    started = time.perf_counter()
    for key_id, kek_id, wrapped in rows:
        provider.wrap(provider.unwrap(kek_id, wrapped, aad=key_id.bytes), aad=key_id.bytes)
    return len(rows), time.perf_counter() - started


def rotate(registry: Registry, batch: int) -> tuple[int, float]:
    """``registry keys rotate --batch B`` on this registry; returns (keys re-wrapped, s)."""
    cli_keys.open_registry = lambda: registry
    err, out = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        cli_keys.rotate(batch=batch, retire=False)
    elapsed = time.perf_counter() - started
    done = int(out.getvalue().split("re-wrapped ")[1].split()[0])
    return done, elapsed


def reader(settings, sealed: list[tuple], reads, errors, first_error, ready, stop) -> None:
    """A server's reads: random sealed values, each opened in its own transaction."""
    registry = Registry(settings)
    keyring, rng, count, failed = registry.keyring, random.Random(), 0, 0
    ready.set()
    while not stop.is_set():
        key_id, row_id, ciphertext, value = sealed[rng.randrange(len(sealed))]
        try:
            with registry.db.session() as s:
                cache: dict = {}
                keyring.load_data_keys(s, [key_id], cache)
                if keyring.open(ciphertext, cache, "person", "name", row_id) != value:
                    raise AssertionError("opened to a different value")
        except Exception as exc:  # every failure counts, the first is shown
            failed += 1
            if not first_error.value:
                first_error.value = f"{type(exc).__name__}: {exc}"[:200].encode()
        count += 1
        if count % 20 == 0:
            reads.value, errors.value = count, failed
    reads.value, errors.value = count, failed
    registry.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--batches", default="1000,5000",
                        help="batch sizes to try, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres", metavar="URL", help="run on this PostgreSQL server")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    pg = PostgresDatabases(args.postgres) if args.postgres else None
    results: dict = {"floor": [], **{b: [] for b in batches}}
    spawn = multiprocessing.get_context("spawn")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            registry = fresh_registry(Path(tmp), pg.new() if pg else None, plaintext=False)
            print(f"building {args.keys} data keys …", flush=True)
            started = time.perf_counter()
            sealed = build(registry, args.keys)
            print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
            reads, errors = spawn.Value("q", 0), spawn.Value("q", 0)
            first_error = spawn.Array("c", 256)
            ready, stop = spawn.Event(), spawn.Event()
            process = spawn.Process(target=reader, args=(
                registry.settings, sealed, reads, errors, first_error, ready, stop))
            process.start()
            ready.wait(60)
            try:
                for round_no in range(args.rounds):
                    count, elapsed = floor(registry)
                    results["floor"].append(count / elapsed)
                    print(f"round {round_no + 1} floor      : {count / elapsed:9,.0f} keys/s "
                          f"({count} keys, {elapsed:.1f} s)", flush=True)
                    for batch in batches:
                        before = reads.value
                        time.sleep(BASELINE_SECONDS)
                        idle = (reads.value - before) / BASELINE_SECONDS
                        before, errors_before = reads.value, errors.value
                        done, elapsed = rotate(registry, batch)
                        during = (reads.value - before) / elapsed
                        failed = errors.value - errors_before
                        results[batch].append((done / elapsed, idle, during, failed))
                        print(f"round {round_no + 1} batch {batch:5}: {done / elapsed:9,.0f} "
                              f"keys/s ({done} keys, {elapsed:.1f} s); reads {idle:,.0f}/s "
                              f"before, {during:,.0f}/s during, {failed} errors", flush=True)
            finally:
                stop.set()
                process.join(60)
            registry.db.dispose()
    finally:
        if pg:
            pg.drop_all()
    backend = "postgresql" if pg else "sqlite"
    best_floor = max(results["floor"])
    print(f"\n{backend}, {args.keys} data keys, best (median) of {args.rounds}:")
    print(f"  floor (provider unwrap + wrap): {best_floor:9,.0f} keys/s "
          f"({statistics.median(results['floor']):,.0f})")
    for batch in batches:
        rates = [r[0] for r in results[batch]]
        idle = statistics.median(r[1] for r in results[batch])
        during = statistics.median(r[2] for r in results[batch])
        failed = sum(r[3] for r in results[batch])
        print(f"  rotate --batch {batch:<6}        : {max(rates):9,.0f} keys/s "
              f"({statistics.median(rates):,.0f}), {best_floor / max(rates):.2f}x the floor; "
              f"reads {idle:,.0f}/s before, {during:,.0f}/s during "
              f"({during / idle:.2f}); errors {failed}")
    print(f"  reader errors in all: {errors.value}"
          + (f" — first: {first_error.value.decode()}" if errors.value else ""))


if __name__ == "__main__":
    main()
