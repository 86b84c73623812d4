"""``registry keys``: the status of the key-encryption key (KEK) and blind-index root versions,
their rotation and retirement. Run by the operator who holds the key file (role ``system``,
which has no right to personal data); every step is an audit event."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from registry.cli_kit import fail, open_registry, operator
from registry.errors import RegistryError

keys_app = typer.Typer(help="Key-encryption and blind-index keys: status, rotation, "
                       "retirement.",
                       no_args_is_help=True)


@keys_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """KEK versions, how many data keys each wraps, and what a rotation has left to do."""
    registry = open_registry()
    try:
        with registry.vault(operator()) as vault:
            report = vault.keys.status()
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    for version in report.versions:
        mark = "active" if version.active else ("unused: retire" if not version.data_keys
                                                else "still in use")
        typer.echo(f"{version.kek_id}  {version.data_keys:>10} data keys  ({mark})")
    for version in report.missing:
        typer.secho(f"{version}  MISSING from the key provider: restore it", fg="red")
    typer.echo(f"to re-wrap: {report.stale}; destroyed (erased): {report.destroyed}; "
               f"index key fingerprint {report.index_fingerprint}")
    index = report.index
    for version in index.versions:
        mark = ("active" if version.active else "in use: rebuild under way" if index.rebuilding
                and version.in_use else "in use: retire" if version.in_use else "not in use")
        if not version.held:
            typer.secho(f"index key {version.version}  MISSING from the key provider: restore it",
                        fg="red")
        else:
            typer.echo(f"index key {version.version}  ({mark})")
    for table in index.rebuild:
        state = "done" if table.finished else f"{table.left} rows left"
        unreadable = f", {table.unreadable} unreadable (erased)" if table.unreadable else ""
        typer.echo(f"  rebuild under index key {table.version}: {table.table} "
                   f"{table.rows} rows, {state}{unreadable}")


@keys_app.command("rotate")
def rotate(
    batch: Annotated[int, typer.Option(min=1, max=100_000,
                                       help="data keys re-wrapped per transaction")] = 5000,
    retire: Annotated[bool, typer.Option(
        help="afterwards, retire the versions nothing refers to any longer")] = False,
) -> None:
    """Create a new KEK version and re-wrap every data key under it, online: reads and writes
    go on (a running server follows the key file). Interrupted, it resumes where it stopped
    when run again — it starts a new version only when no data key is left under an old one.
    The data itself is never re-encrypted."""
    registry = open_registry()
    actor = operator()
    try:
        with registry.vault(actor) as vault:
            active, pending, resumed = vault.keys.begin_rotation()
            vault.commit()
        typer.echo(f"{'resuming' if resumed else 'rotating'} to {active}: "
                   f"{pending} data keys to re-wrap", err=True)
        done, left = 0, pending
        with _Bar(pending) as bar:
            # A second and third pass take the keys a running server wrapped under the old
            # version before it followed the key file.
            for _ in range(3):
                last = None
                while True:
                    with registry.vault(actor) as vault:
                        count, last = vault.keys.rewrap(batch, last)
                        vault.commit()
                    if not count:
                        break
                    done += count
                    bar(done)
                    time.sleep(vault.keys.batch_pause)
                with registry.vault(actor) as vault:
                    left = vault.keys.stale()
                if not left:
                    break
        if left:
            fail(RegistryError(f"{left} data keys were written under an old version meanwhile;"
                               " run `registry keys rotate` again to finish",
                               f"期间有 {left} 个数据密钥以旧版本写入；请再次运行 `registry keys "
                               "rotate` 完成轮换"))
        typer.echo(f"re-wrapped {done} data keys under {active}")
        if retire:
            _retire(registry, actor)
        else:
            typer.echo("old versions stay until `registry keys retire` (keep them while backups "
                       "made under them must still open)")
    except RegistryError as exc:
        fail(exc)


@keys_app.command("rotate-index")
def rotate_index(
    batch: Annotated[int, typer.Option(min=1, max=100_000,
                                       help="rows re-indexed per transaction")] = 2000,
    retire: Annotated[bool, typer.Option(
        help="afterwards, retire the old index key version")] = False,
) -> None:
    """Create a new blind-index key version and rebuild every blind index (ID numbers, phones,
    addresses) under it, online: lookups find every record throughout, under either version.
    Interrupted, it resumes where it stopped when run again. Do it when the key file (or the
    index key) may have been exposed; then `registry keys retire` destroys the old version."""
    registry = open_registry()
    actor = operator()
    try:
        with registry.vault(actor) as vault:
            version, pending, resumed = vault.indexes.begin_rotation()
            vault.commit()
        typer.echo(f"{'resuming the rebuild' if resumed else 'rotating'} to index key "
                   f"{version}: {pending} rows to re-index", err=True)
        done = 0
        with _Bar(pending, "re-indexing", "re-indexed", "rows", "rows") as bar:
            with registry.vault(actor) as vault:
                tables = vault.indexes.tables()
            for table in tables:
                finished = False
                while not finished:
                    with registry.vault(actor) as vault:
                        count, finished = vault.indexes.rebuild(table, batch)
                        vault.commit()
                    done += count
                    bar(done)
                    if not finished:
                        time.sleep(vault.keys.batch_pause)
        with registry.vault(actor) as vault:
            left = vault.indexes.under_way()
        if left:
            fail(RegistryError("another rotation of the index key began meanwhile; run "
                               "`registry keys rotate-index` again to finish it",
                               "期间另一次索引密钥轮换已开始；请再次运行 `registry keys "
                               "rotate-index` 完成"))
        typer.echo(f"re-indexed {done} rows under index key {version}")
        if retire:
            _retire(registry, actor)
        else:
            typer.echo("the old index key stays until `registry keys retire`")
    except RegistryError as exc:
        fail(exc)


@keys_app.command("retire")
def retire() -> None:
    """Destroy the KEK versions that no data key refers to any longer (never the active one),
    and the old blind-index key versions once their rebuild has finished. A backup taken while
    a retired version was in use no longer opens (or no longer restores)."""
    try:
        _retire(open_registry(), operator())
    except RegistryError as exc:
        fail(exc)


def _retire(registry, actor) -> None:
    with registry.vault(actor) as vault:
        versions = vault.keys.retire()
        index_versions = vault.indexes.retire()
        rebuilding = not index_versions and vault.indexes.under_way()
        vault.commit()
        vault.keys.destroy(versions)
        vault.indexes.destroy(index_versions)
    if rebuilding:
        typer.echo("the index rebuild is unfinished: the old index key stays until "
                   "`registry keys rotate-index` has finished it", err=True)
    report = {"retired": versions} if versions else {}
    if index_versions:
        report["retired_index"] = index_versions
    typer.echo(json.dumps(report) if report else "nothing to retire")


class _Bar:
    """Items done, items/s and time left: a bar on a terminal, a line per batch otherwise."""

    def __init__(self, total: int, doing: str = "re-wrapping", did: str = "re-wrapped",
                 unit: str = "keys", what: str = "data keys") -> None:
        self.total, self.started, self.bar = total, time.monotonic(), None
        self.doing, self.did, self.unit, self.what = doing, did, unit, what

    def __enter__(self) -> _Bar:
        if sys.stderr.isatty():
            self.bar = Progress(TextColumn(self.doing), BarColumn(), TaskProgressColumn(),
                                TextColumn(f"{{task.completed}} {self.unit}"),
                                TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.unit, total=max(self.total, 1))
        return self

    def __call__(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)
            return
        rate = int(done / max(time.monotonic() - self.started, 1e-6))
        typer.echo(f"{self.did} {done}/{self.total} {self.what}, {rate} {self.unit}/s",
                   err=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
