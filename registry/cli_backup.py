"""``registry backup`` and ``registry restore``: an encrypted, checksummed pair of files per
backup (data and keystore), checked without restoring, and restored into an empty database.
Run by the operator who holds the key file; taking and restoring a backup are audit events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry.cli_kit import fail, load_settings, open_registry, operator
from registry.errors import RegistryError
from registry.security.keys import Keyring
from registry.vault import backups

backup_app = typer.Typer(
    help="Back up the data and the keystore (two encrypted files); `backup verify` checks "
         "files without restoring.", invoke_without_command=True)

Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)]
File = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@backup_app.callback()
def backup(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="where to write (default: the setting backup_dir, or data_dir/backups)")]
    = None,
) -> None:
    """Write a backup of one consistent snapshot as two files (data, keystore), then delete
    the oldest beyond the keep settings (keystore backups on the shorter cycle)."""
    if ctx.invoked_subcommand is not None:
        return
    registry = open_registry()
    directory = directory or registry.settings.resolved_backup_dir
    try:
        with registry.vault(operator()) as vault:
            taken = vault.backups.take(directory)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    for path in taken.files:
        typer.echo(f"wrote {path}")
    typer.echo(f"backup {taken.backup_id}: {sum(taken.tables.values())} rows in "
               f"{len(taken.tables)} tables")
    for path in taken.pruned:
        typer.echo(f"deleted old backup {path.name}")


@backup_app.command("verify")
def verify(files: Files) -> None:
    """Check backup files without restoring: checksum, registry, decryption, row counts."""
    settings = load_settings()
    try:
        keyring = Keyring.from_settings(settings)
        for path in files:
            checked = backups.check(path, keyring)
            manifest = checked.manifest
            typer.echo(f"{path}: ok — {manifest.kind} of backup {manifest.backup_id}, "
                       f"{manifest.created_at}, revision {manifest.revision}, "
                       f"{checked.rows} rows in {len(manifest.tables)} tables")
    except RegistryError as exc:
        fail(exc)


def restore(
    data: File,
    keys: File,
    database_url: Annotated[str | None, typer.Option(
        help="restore into this database (default: the configured one); it must be empty")]
    = None,
    later_keystore: Annotated[bool, typer.Option(
        "--later-keystore", help="KEYS_FILE is a keystore backup taken after DATA_FILE (the "
        "same run's was deleted): records erased in between come back erased")] = False,
) -> None:
    """Check both files of a backup, then restore them into an empty database in one
    transaction and verify every record and the audit chain. The key file must be in place
    (it is backed up apart, by hand)."""
    settings = load_settings()
    url = database_url or settings.resolved_database_url
    try:
        keyring = Keyring.from_settings(settings)
        restored = backups.restore(settings, keyring, data, keys, url, operator(),
                                   later_keystore=later_keystore)
    except RegistryError as exc:
        fail(exc)
    rows = sum(restored.tables.values())
    typer.echo(f"restored backup {restored.backup_id} (revision {restored.revision}): {rows} "
               f"rows in {len(restored.tables)} tables")
    typer.echo(f"every record opens: {restored.sealed_values} sealed values checked, "
               f"{restored.erased_values} erased (key destroyed)")
    typer.echo(f"audit chain intact: {restored.audit_events} events, the restore's included")
