"""What every CLI command shares: settings, the running registry, and failing with a clear
one-line message (exit 2) instead of a traceback."""

from __future__ import annotations

import getpass
import os
import sys
from typing import NoReturn

import click
import typer

from registry.config import Settings, get_settings
from registry.errors import RegistryError, SetupError
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry

PASSWORD_ENV = "REGISTRY_PASSWORD"  # noqa: S105 - the name of the variable


def fail(error: RegistryError, *, prefix: str = "") -> NoReturn:
    typer.secho(f"error: {prefix}{error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:  # pydantic's ValidationError, without values
        typer.secho(f"error: invalid settings: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc


def operator() -> Actor:
    """The operator at the terminal: role ``system``, with no right to personal data."""
    return system_actor(os.environ.get("USER") or getpass.getuser())


def open_registry() -> Registry:
    try:
        return closing(Registry(load_settings()))
    except RegistryError as exc:
        fail(exc)


def closing(registry: Registry) -> Registry:
    """``registry``, its connections released when the command ends (not left to the
    process's exit: a command run in-process, as the tests do, leaves nothing open)."""
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(registry.db.dispose)
    return registry


def password(username: str) -> str:
    """From $REGISTRY_PASSWORD, else a hidden prompt (a line of standard input when that is
    not a terminal)."""
    value = os.environ.get(PASSWORD_ENV)
    if not value:
        if sys.stdin.isatty():
            value = typer.prompt(f"password for {username}", hide_input=True)
        else:
            value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        fail(SetupError(f"no password: set {PASSWORD_ENV} or type it when asked",
                        f"未提供密码：请设置 {PASSWORD_ENV} 或按提示输入"))
    return value


def sign_in(registry: Registry, username: str, *, request_id: str) -> Actor:
    """Sign ``username`` in (an audit event) and return the actor; failing says why, once."""
    try:
        token, _ = registry.auth.login(username, password(username), request_id=request_id)
        return registry.auth.authenticate(token)
    except RegistryError as exc:
        fail(exc, prefix="sign-in failed: ")
