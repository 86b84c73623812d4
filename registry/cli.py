"""The ``registry`` command. Commands call the same services and stores as the API, through
the same gate: account and reference-data commands run as the CLI operator (``cli:<user>``,
role ``system``, no right to personal data); destructive ones ask for ``--yes``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from registry import demo as demo_data
from registry.accounts.schemas import PasswordReset, UserCreate
from registry.api import create_app
from registry.cli_access import mount as mount_access
from registry.cli_audit import mount as mount_audit
from registry.cli_backup import backup_app
from registry.cli_backup import restore as restore_backup
from registry.cli_import import import_app
from registry.cli_keys import keys_app
from registry.cli_kit import closing, fail, load_settings, open_registry, operator
from registry.cli_metrics import metrics, survey_baseline
from registry.cli_registers import mount as mount_registers
from registry.cli_retention import retention_app
from registry.config import Environment, KeyProviderName, Settings
from registry.errors import Invalid, RegistryError, SetupError
from registry.migrate import holds_keyed_data, upgrade
from registry.security import audit
from registry.security.authz import Role
from registry.security.crypto import LocalKeyFile
from registry.security.providers import open_token
from registry.vault.runtime import Registry

app = typer.Typer(help="A privacy-first registry for public-safety and justice offices.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts.", no_args_is_help=True)
jurisdictions_app = typer.Typer(help="The division-code tree.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
checkpoint_app = typer.Typer(help="Signed checkpoints of the audit chain.", no_args_is_help=True)
audit_app.add_typer(checkpoint_app, name="checkpoint")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(jurisdictions_app, name="jurisdictions")
app.add_typer(audit_app, name="audit")
mount_audit(audit_app)
app.add_typer(import_app, name="import")
app.add_typer(keys_app, name="keys")
app.add_typer(retention_app, name="retention")
app.add_typer(backup_app, name="backup")
app.command("restore")(restore_backup)
app.command("metrics")(metrics)
app.command("survey-baseline")(survey_baseline)
mount_registers(app)
mount_access(app)


@app.command()
def init(
    demo: Annotated[bool, typer.Option(help="also load the synthetic demo county")] = False,
    if_needed: Annotated[bool, typer.Option(
        help="do nothing if already initialised (the demo loads only into an empty registry)"
    )] = False,
    scale: Annotated[float, typer.Option(min=0.01, max=100.0,
                                         help="demo size (1: ~2,000 residents)")] = 1.0,
) -> None:
    """Create the keys (the key file, mode 0600, or the keys in the PKCS#11 token) and the
    database, and migrate it to the latest schema."""
    settings = load_settings()
    try:
        if settings.key_provider is KeyProviderName.pkcs11:
            _init_token(settings, quiet=if_needed)
        else:
            _init_key_file(settings, quiet=if_needed)
        upgrade(settings.resolved_database_url)
        registry = closing(Registry(settings))
    except RegistryError as exc:
        fail(exc)
        return
    typer.echo(f"database ready: {settings.display_database_url}")
    if demo:
        _load_demo(registry, settings, skip_if_loaded=if_needed, scale=scale)


def _init_key_file(settings: Settings, *, quiet: bool) -> None:
    key_file = settings.resolved_key_file
    if key_file.exists():
        if not quiet:
            typer.echo(f"key file {key_file} exists; keeping it")
        LocalKeyFile.load(key_file)
    elif holds_keyed_data(settings.resolved_database_url):
        raise SetupError(
            f"key file {key_file} is missing, but the database already holds data "
            "encrypted under a key file: restore that file (a new key cannot read the data)",
            f"密钥文件 {key_file} 不存在，但数据库中已有加密数据：请恢复原密钥文件"
            "（新密钥无法读取这些数据）")
    else:
        LocalKeyFile.create(key_file)
        typer.echo(f"created key file {key_file} (mode 0600). Back it up apart from the "
                   "data: without it the personal data cannot be read.")


def _init_token(settings: Settings, *, quiet: bool) -> None:
    """Generate the keys the token lacks — only while the database holds no encrypted data
    (a new key cannot read old data: then the missing keys are an error)."""
    provider = open_token(settings, create=not holds_keyed_data(settings.resolved_database_url))
    token = settings.pkcs11_token_label
    if provider.created:
        typer.echo(f"created {' and '.join(provider.created)} in token {token!r} (sensitive, "
                   "never extractable). Back the token up as its vendor documents.")
    elif not quiet:
        typer.echo(f"token {token!r} holds the keys; keeping them")


def _load_demo(registry: Registry, settings: Settings, *, skip_if_loaded: bool,
               scale: float) -> None:
    if settings.environment == Environment.production:
        fail(SetupError("demo data is refused in production", "生产环境不允许加载演示数据"))
    with registry.vault(operator()) as vault:
        loaded = bool(vault.jurisdictions.children(None))
    if loaded:
        if skip_if_loaded:
            typer.echo("demo data already loaded")
            _print_users()
            return
        fail(SetupError("the registry already holds jurisdictions; demo loads only into an "
                         "empty registry", "系统中已有辖区数据，演示数据只能加载到空库"))
    typer.echo("loading the demo county …")
    demo_data.build(registry, scale=scale)
    _print_users()


def _print_users() -> None:
    typer.echo("\ndemo accounts (development only):")
    for user in demo_data.demo_users():
        typer.echo(f"  {user.username:<14} {user.password:<20} {user.role:<12} "
                   f"{user.jurisdiction_code:<16} {user.note}")


@app.command()
def demo(
    scale: Annotated[float, typer.Option(min=0.01, max=100.0,
                                         help="demo size (1: ~2,000 residents)")] = 1.0,
) -> None:
    """Load the synthetic demo county into an initialised, empty registry."""
    _load_demo(open_registry(), load_settings(), skip_if_loaded=False, scale=scale)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        envvar="REGISTRY_FORWARDED_ALLOW_IPS",
        help="addresses of the TLS-terminating proxy whose X-Forwarded-Proto/-For headers "
             "are trusted (comma-separated, or *); default: none, the headers are ignored")
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI at /docs) and the web pages (/web)."""
    registry = open_registry()
    typer.echo(f"registry on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    # Behind a proxy that terminates TLS, the pages' cookies are Secure only if the scheme it
    # forwards is trusted; trusted from nowhere unless configured (uvicorn's own default
    # trusts 127.0.0.1, which a local client could use to pass as another address).
    proxied = bool(forwarded_allow_ips and forwarded_allow_ips.strip())
    uvicorn.run(create_app(registry), host=host, port=port, access_log=True,
                proxy_headers=proxied,
                forwarded_allow_ips=forwarded_allow_ips.strip() if proxied else None)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    settings = load_settings()
    upgrade(settings.resolved_database_url, revision)
    typer.echo(f"migrated {settings.display_database_url} to {revision}")


@jurisdictions_app.command("load")
def jurisdictions_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Load or rename nodes from a CSV with columns code, name, parent_code (UTF-8)."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"code", "name", "parent_code"} - set(reader.fieldnames or [])
            if missing:
                fail(SetupError(f"missing columns: {', '.join(sorted(missing))}",
                                 f"缺少列：{', '.join(sorted(missing))}"))
            rows = [((r["code"] or "").strip(), (r["name"] or "").strip(),
                     (r["parent_code"] or "").strip() or None) for r in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        fail(SetupError(f"{file} is not a UTF-8 CSV file", f"{file} 不是 UTF-8 编码的 CSV 文件"))
        raise typer.Exit(2) from exc
    registry = open_registry()
    try:
        with registry.vault(operator()) as vault:
            added, renamed = vault.jurisdictions.upsert(rows)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"{len(rows)} rows: {added} added, {renamed} renamed")


@jurisdictions_app.command("deadline")
def jurisdictions_deadline(
    code: str,
    days: Annotated[int | None, typer.Argument(
        help="days after arrival to register a resident; omit with --clear")] = None,
    clear: Annotated[bool, typer.Option(
        "--clear", help="inherit from the parent node (or the setting) again")] = False,
) -> None:
    """Set a node's registration deadline for residents (its subtree inherits it)."""
    if (days is None) == (not clear):
        fail(SetupError("give DAYS or --clear", "请提供天数或 --clear", field="days"))
    registry = open_registry()
    try:
        with registry.vault(operator()) as vault:
            vault.jurisdictions.set_deadline(code, None if clear else days)
            effective = vault.jurisdictions.deadline_days(code)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"{code}: residents must be registered within {effective} days of arrival")


def _read_password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=confirm)


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[Role, typer.Option(help="department role")],
    jurisdiction: Annotated[str, typer.Option(help="jurisdiction code of the user's scope")],
) -> None:
    """Create an account; the password is prompted for (or read from standard input)."""
    registry = open_registry()
    try:
        data = UserCreate(username=username, password=_read_password(), role=role,
                          jurisdiction_code=jurisdiction)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        fail(SetupError(f"invalid: {fields}", f"无效字段：{fields}"))
        return
    try:
        with registry.vault(operator()) as vault:
            user = vault.users.add(username=data.username, password=data.password,
                                   role=data.role, jurisdiction_code=data.jurisdiction_code)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"added {user.username} ({user.role}, {user.jurisdiction_code})")


@users_app.command("list")
def users_list() -> None:
    """List accounts."""
    registry = open_registry()
    with registry.vault(operator()) as vault:
        users = vault.users.list()
        vault.commit()
    for user in users:
        state = "disabled" if user.disabled else ("locked" if user.locked else "active")
        typer.echo(f"{user.username:<20} {user.role:<12} {user.jurisdiction_code:<16} {state}")


@users_app.command("disable")
def users_disable(
    username: str,
    yes: Annotated[bool, typer.Option("--yes", help="really disable")] = False,
) -> None:
    """Disable an account and revoke its tokens (asks for --yes)."""
    if not yes:
        typer.echo(f"dry run: would disable {username} and revoke its tokens; "
                   "re-run with --yes")
        return
    registry = open_registry()
    try:
        with registry.vault(operator()) as vault:
            vault.users.disable(username)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"disabled {username}")


@users_app.command("reset-password")
def users_reset_password(username: str) -> None:
    """Set a new password (prompted, or read from standard input); unlocks the account."""
    registry = open_registry()
    try:
        password = PasswordReset(password=_read_password()).password
    except ValidationError:
        fail(SetupError("password must be 10 to 256 characters", "密码须为10至256个字符",
                         field="password"))
        return
    try:
        with registry.vault(operator()) as vault:
            vault.users.reset_password(username, password)
            vault.commit()
    except RegistryError as exc:
        fail(exc)
    typer.echo(f"password reset for {username}; they must choose a new one before signing in "
               "(POST /auth/password)")


@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[Path | None, typer.Option(
        help="signed checkpoints kept outside the registry (from `audit checkpoint export`)")]
    = None,
    archive: Annotated[list[Path] | None, typer.Option(
        "--archive", help="an archive file of events moved out of the database (`audit "
                          "archive`): walk it too, and check it joins the chain (repeat)")]
    = None,
) -> None:
    """Walk the audit chain and hold it against the signed checkpoints (stored, and kept
    ones), and the archive files given; exit 1 and name the first broken event, checkpoint
    or archive if it is not intact."""
    kept = []
    if checkpoints is not None:
        try:
            kept = audit.parse_notes(checkpoints.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            fail(Invalid(f"cannot be read as checkpoints ({exc})", "无法读取为审计检查点",
                         field="--checkpoints"))
    registry = open_registry()
    with registry.vault(operator()) as vault:
        result = vault.audit.verify(kept, archive or [])
        vault.commit()
    if result.ok:
        typer.secho(result.describe(), fg=typer.colors.GREEN)
        return
    if result.broken_seq is not None:
        typer.secho(f"audit chain BROKEN at event {result.broken_seq}: {result.reason}",
                    fg=typer.colors.RED, err=True)
    for problem in [*result.checkpoint_problems, *result.archive_problems]:
        typer.secho(f"audit chain BROKEN: {problem}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@checkpoint_app.command("export")
def checkpoint_export(
    out: Annotated[Path | None, typer.Option(help="write here (default: standard output)")]
    = None,
) -> None:
    """The signed checkpoints as notes, for an outside party to keep: anyone holding them can
    later show that the log was not rewritten or cut back behind them."""
    registry = open_registry()
    with registry.vault(operator()) as vault:
        notes = vault.audit.checkpoints()
        vault.commit()
    text = "\n".join(note.text() for note in notes)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(notes)} checkpoints to {out}")


if __name__ == "__main__":
    app()
