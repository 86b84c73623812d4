"""``registry import KIND FILE --as USER`` and ``registry import template KIND``.

An import runs as a signed-in user, with that user's scope and rights, exactly as the upload
endpoint does (:func:`importers.run.run_import`). Progress goes to standard error — a bar with
rows/s and the time left on a terminal, a plain line per batch otherwise — and the summary to
standard output (``--json`` for a machine). Exit status: 0 when every row was taken, 1 when
some rows were rejected (see the rejects file), 2 when the file could not be imported at all.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from importers.columns import LABELS_ZH, Kind
from importers.run import BATCH_ROWS, Options, Summary, run_import
from importers.template import write_template
from registry.cli_kit import fail, open_registry, sign_in
from registry.errors import Invalid, RegistryError

import_app = typer.Typer(
    help="Import ledgers (台账导入): registry import KIND FILE --as USER; "
         "registry import template KIND writes an empty workbook to fill in.",
    no_args_is_help=True, pretty_exceptions_enable=False)

As = Annotated[str, typer.Option("--as", metavar="USERNAME",
                                 help="import as this user, with their scope and rights "
                                      "(password from $REGISTRY_PASSWORD or a prompt)")]


def _command(kind: Kind):
    def command(
        file: Annotated[Path, typer.Argument(help="the ledger: .csv or .xlsx")],
        as_user: As,
        sheet: Annotated[str | None, typer.Option(help="XLSX sheet (default: the first)")] = None,
        encoding: Annotated[str | None, typer.Option(
            help="CSV encoding, e.g. gbk (default: detected: UTF-8, else GB18030)")] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="check every row against the registry; write nothing")] = False,
        update: Annotated[bool, typer.Option(
            "--update", help="let the file's facts replace differing registered ones")] = False,
        all_or_nothing: Annotated[bool, typer.Option(
            "--all-or-nothing", help="commit only if no row is rejected")] = False,
        batch_rows: Annotated[int, typer.Option(min=1, max=100_000,
                                                help="rows per committed batch")] = BATCH_ROWS,
        rejects: Annotated[Path | None, typer.Option(
            help="where rejected rows go (default: NAME.rejects.csv beside the file)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    ) -> None:
        if not file.is_file():
            fail(Invalid("file not found", "文件不存在", field="FILE"))
        if dry_run and all_or_nothing:
            fail(Invalid("--dry-run already writes nothing; give one of the two",
                         "--dry-run 本身不写入数据，请二选一", field="--all-or-nothing"))
        registry = open_registry()
        request_id = f"cli-{secrets.token_hex(8)}"
        actor = sign_in(registry, as_user, request_id=request_id)
        options = Options(encoding=encoding, sheet=sheet, dry_run=dry_run, update=update,
                          all_or_nothing=all_or_nothing, batch_rows=batch_rows, rejects=rejects)
        with _Progress(file.name) as progress:
            try:
                summary = run_import(registry, actor, kind, file, options, progress=progress,
                                     request_id=request_id)
            except RegistryError as exc:
                fail(exc)
        _report(summary, as_json)

    command.__doc__ = f"Import a {kind.value} ledger ({LABELS_ZH[kind]})."
    return command


for _kind in Kind:
    import_app.command(_kind.value)(_command(_kind))


@import_app.command("template")
def template(
    kind: Annotated[Kind, typer.Argument(help="which ledger")],
    out: Annotated[Path | None, typer.Option(help="default: ./KIND-template.xlsx")] = None,
) -> None:
    """Write an empty workbook with the canonical headers and a sheet explaining each column."""
    target = out or Path(f"{kind.value}-template.xlsx")
    if target.exists():
        fail(Invalid("exists; refusing to overwrite it", "文件已存在，拒绝覆盖", field="--out"))
    write_template(kind, target)
    typer.echo(f"wrote {target}")


def _report(summary: Summary, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(summary.describe())
    if summary.error is not None:
        error = summary.error
        where = f" (row {error['row']})" if error.get("row") else ""
        typer.secho(f"error: {error['message']}{where} / {error['message_zh']}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    if summary.rejected:
        raise typer.Exit(code=1)


class _Progress:
    """Rows, rows/s and (for CSV) the time left: a bar on a terminal, lines otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.bar = None

    def __enter__(self) -> _Progress:
        if sys.stderr.isatty():
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TaskProgressColumn(), TextColumn("{task.fields[rows]} rows"),
                                TextColumn("{task.fields[rate]} rows/s"), TimeRemainingColumn(),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.name, total=1.0, rows=0, rate=0)
        return self

    def __call__(self, rows: int, fraction: float | None) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = int(rows / elapsed)
        if self.bar is not None:
            self.bar.update(self.task, completed=fraction or 0, rows=rows, rate=rate)
            return
        left = ""
        if fraction:
            left = f", about {int(elapsed / fraction - elapsed)} s left"
        share = f" ({fraction:.0%})" if fraction is not None else ""
        typer.echo(f"{self.name}: {rows} rows{share}, {rate} rows/s{left}", err=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
