"""``registry keys``: the status of the key-encryption key (KEK) versions, rotation and
retirement. Run by the operator who holds the key file (role ``system``, which has no right to
personal data); every step is an audit event."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from registry.cli_kit import fail, open_registry, operator
from registry.errors import RegistryError

keys_app = typer.Typer(help="Key-encryption keys: status, rotation, retirement.",
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


@keys_app.command("retire")
def retire() -> None:
    """Destroy the KEK versions that no data key refers to any longer (never the active one).
    A backup taken while a retired version was active no longer opens."""
    try:
        _retire(open_registry(), operator())
    except RegistryError as exc:
        fail(exc)


def _retire(registry, actor) -> None:
    with registry.vault(actor) as vault:
        versions = vault.keys.retire()
        vault.commit()
        vault.keys.destroy(versions)
    typer.echo(json.dumps({"retired": versions}) if versions else "nothing to retire")


class _Bar:
    """Keys done, keys/s and time left: a bar on a terminal, a line per batch otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.started, self.bar = total, time.monotonic(), None

    def __enter__(self) -> _Bar:
        if sys.stderr.isatty():
            self.bar = Progress(TextColumn("re-wrapping"), BarColumn(), TaskProgressColumn(),
                                TextColumn("{task.completed} keys"), TimeRemainingColumn(),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task("keys", total=max(self.total, 1))
        return self

    def __call__(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)
            return
        rate = int(done / max(time.monotonic() - self.started, 1e-6))
        typer.echo(f"re-wrapped {done}/{self.total} data keys, {rate} keys/s", err=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
