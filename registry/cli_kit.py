"""What every CLI command shares: settings, the running registry, and failing with a clear
one-line message (exit 2) instead of a traceback."""

from __future__ import annotations

from typing import NoReturn

import typer

from registry.config import Settings, get_settings
from registry.errors import RegistryError
from registry.vault.runtime import Registry


def fail(error: RegistryError, *, prefix: str = "") -> NoReturn:
    typer.secho(f"error: {prefix}{error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:  # pydantic's ValidationError, without values
        typer.secho(f"error: invalid settings: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc


def open_registry() -> Registry:
    try:
        return Registry(load_settings())
    except RegistryError as exc:
        fail(exc)
