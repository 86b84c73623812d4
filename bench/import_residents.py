"""Importing a large resident ledger, against plain pandas into the same database.

Generates a resident ledger (CSV, UTF-8, Chinese headers, N distinct people), then, each in its
own process on a fresh database so peak memory is the step's own:

* **import**: ``importers.run.run_import`` as built — parsing and normalising every cell, the
  API's validation, a data key per person and per residency, AES-256-GCM, blind indexes, the
  bucketed ID dedup, batch commits and one audit event per batch;
* **pandas**: ``pandas.read_csv`` + ``DataFrame.to_sql`` of the same file into a plaintext table
  of the same kind of database — the floor for "getting these rows into this database".

Prints rows/s for both, their ratio and each step's peak RSS; ``--memory`` also imports a file
a tenth the size, to show that the importer's peak memory does not grow with the file.

    .venv/bin/python bench/import_residents.py [--n 1000000] [--postgres URL] [--memory]

Goals (issue 4): >= 30,000 rows/s end to end; <= 4x the plaintext load; memory flat in size.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.register_rentals import PostgresDatabases, fresh_registry
from registry import demo
from registry.validation import check_character

HEADER = ["姓名", "身份证号", "性别", "联系电话", "社区代码", "现住址", "来本地日期", "登记日期",
          "居住事由", "职业", "工作单位", "户籍地址"]
REASONS = ["务工", "经商", "投亲", "就学"]


def ledger(n: int, folder: Path) -> Path:
    """N residents with distinct, valid ID numbers (kept between runs: it is deterministic)."""
    path = folder / f"residents-{n}.csv"
    if path.exists():
        return path
    grids = [code for code, _, _ in demo.jurisdiction_rows() if len(code) == 15]
    regions = ["110105", "320102", "410521", "510104", "440304", "130102", "370203", "420106"]
    start = date(1960, 1, 1)
    arrived = date(2025, 1, 1)
    tmp = path.with_suffix(".part")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(n):
            day = start + timedelta(days=(i // 8 // 999) % 15000)
            first17 = f"{regions[i % 8]}{day:%Y%m%d}{(i // 8) % 999 + 1:03d}"
            on = arrived + timedelta(days=i % 300)
            out.writerow([
                f"测试{i % 997}", first17 + check_character(first17), "",
                f"139{i % 100_000_000:08d}", grids[i % len(grids)],
                f"测试路{i % 500}号{i % 30}幢{i % 2000}室", on.isoformat(),
                (on + timedelta(days=i % 5)).isoformat(), REASONS[i % 4], "工人",
                f"测试公司{i % 300}", f"测试省测试县{i % 100}号"])
    tmp.rename(path)
    return path


def child_import(path: str, url: str | None, workdir: str) -> dict:
    from importers.run import Options, run_import
    from registry.vault.base import Actor

    registry = fresh_registry(Path(workdir), url, plaintext=False)
    actor = Actor(None, "bench", "police", demo.COUNTY)
    started = time.perf_counter()
    summary = run_import(registry, actor, "residents", path, Options())
    elapsed = time.perf_counter() - started
    assert summary.imported == summary.read and not summary.rejected, summary.to_dict()
    return {"rows": summary.read, "seconds": elapsed}


def child_pandas(path: str, url: str | None, workdir: str) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine

    engine = create_engine(url or f"sqlite:///{Path(workdir) / 'plain.sqlite3'}")
    started = time.perf_counter()
    frame = pd.read_csv(path, dtype=str)
    frame.to_sql("plain_residents", engine, index=False, chunksize=10_000)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {"rows": len(frame), "seconds": elapsed}


def measure(step: str, path: Path, url: str | None, workdir: Path) -> dict:
    """Run a step in a child process; its result plus its own peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--child", step, str(path), url or "",
                          str(workdir)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        step, path, url, workdir = sys.argv[2:6]
        result = (child_import if step == "import" else child_pandas)(path, url or None, workdir)
        result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--postgres", metavar="URL", help="run on this PostgreSQL server")
    parser.add_argument("--memory", action="store_true",
                        help="also import a file a tenth the size, to compare peak memory")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()),
                        help="where generated ledgers are kept between runs")
    args = parser.parse_args()
    pg = PostgresDatabases(args.postgres) if args.postgres else None
    backend = "postgresql" if pg else "sqlite"
    print(f"generating {args.n} rows …", flush=True)
    path = ledger(args.n, args.cache)
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for step in ("pandas", "import"):
                workdir = Path(tmp) / f"{step}-{secrets.token_hex(3)}"
                workdir.mkdir()
                results[step] = measure(step, path, pg.new() if pg else None, workdir)
                r = results[step]
                print(f"{step:7}: {r['rows'] / r['seconds']:9.0f} rows/s "
                      f"({r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB)", flush=True)
            if args.memory:
                small = ledger(args.n // 10, args.cache)
                workdir = Path(tmp) / "small"
                workdir.mkdir()
                results["small"] = measure("import", small, pg.new() if pg else None, workdir)
    finally:
        if pg:
            pg.drop_all()
    pandas, imported = results["pandas"], results["import"]
    rate = imported["rows"] / imported["seconds"]
    ratio = imported["seconds"] / pandas["seconds"]
    print(f"\n{backend}, N={args.n}:")
    print(f"  pandas read_csv + to_sql (plaintext): {pandas['rows'] / pandas['seconds']:9.0f} "
          f"rows/s, peak {pandas['peak_mib']:.0f} MiB")
    print(f"  registry import (as built)          : {rate:9.0f} rows/s, peak "
          f"{imported['peak_mib']:.0f} MiB   (goal >= 30000 rows/s)")
    print(f"  cost ratio                          : {ratio:9.2f}x  (goal <= 4.00x)")
    if "small" in results:
        print(f"  peak memory, N/10 vs N              : {results['small']['peak_mib']:.0f} MiB "
              f"vs {imported['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
