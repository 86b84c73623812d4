"""Running an import: a ledger file in, batches through the gate, a summary and a rejects file
out. The CLI (``registry import``) and the upload endpoint both call :func:`run_import`.

* **Batches.** Rows are read, parsed and written ``batch_rows`` at a time; each batch commits
  on its own (all or nothing: a crash or a fatal error mid-file never leaves part of one), so an
  interrupted import re-run with the same command finds what landed *unchanged* and finishes
  the rest. ``all_or_nothing`` holds everything in one transaction and commits only if no row
  was rejected; ``dry_run`` runs every check, the registry's included, and rolls back.
* **Audit.** Each batch is one event (action ``import``): the file's name and SHA-256, the row
  range, the counts, the mode, and the ids of every record it read or wrote — committed with
  the batch, or alone when the batch's data is rolled back (dry run, all-or-nothing refusal).
* **Rejects.** Every rejected row goes to a CSV (UTF-8 with BOM, so Excel opens it): the row
  number, the field, the reason in Chinese and English, then the row's cells — the clerk fixes
  the rows there and imports that file. It holds personal data, so it is written mode 0600.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from importers.columns import SPELLINGS, Kind
from importers.kinds import Parsed, parse
from importers.reading import Ledger, Row, open_ledger
from importers.rows import (
    CoordinatorImport,
    CorrectionsImport,
    JurisdictionImport,
    ReleaseImport,
    RentalImport,
)
from registry.errors import Invalid, RegistryError
from registry.residents.service import arrival
from registry.vault.base import (
    COORDINATOR,
    CORRECTIONS,
    JURISDICTION,
    RELEASE,
    RENTAL,
    RESIDENT,
    Actor,
)
from registry.vault.bulk import Outcome, ResidentImport
from registry.vault.gate import Vault
from registry.vault.runtime import Registry

BATCH_ROWS = 5000
VAULT_KINDS = {Kind.jurisdictions: JURISDICTION, Kind.rentals: RENTAL, Kind.residents: RESIDENT,
               Kind.corrections: CORRECTIONS, Kind.releases: RELEASE,
               Kind.coordinators: COORDINATOR}
class Runner(Protocol):
    """One import of one kind, batch by batch (:class:`importers.rows.RowImport`,
    :class:`registry.vault.bulk.ResidentImport`)."""

    def run(self, rows: list[tuple[int, Any]]) -> dict[int, Outcome]: ...
    def committed(self) -> None: ...
    def rolled_back(self) -> None: ...
    def finish(self) -> None: ...


_RUNNERS: dict[Kind, Callable[..., Runner]] = {
    Kind.jurisdictions: JurisdictionImport, Kind.rentals: RentalImport,
    Kind.residents: ResidentImport, Kind.corrections: CorrectionsImport,
    Kind.releases: ReleaseImport, Kind.coordinators: CoordinatorImport}
# The rejects file's own columns: named so that no ledger takes them for one of its fields
# (the file is imported again once fixed; they are then reported as unknown columns).
REJECTS_COLUMNS = ("行号 row", "问题字段 field", "错误原因", "error reason")
_ACTIONS = {Kind.jurisdictions: "manage"}  # the right a ledger needs (else: create)
STATUSES = ("imported", "updated", "unchanged", "rejected")


@dataclass
class Options:
    encoding: str | None = None
    sheet: str | None = None
    dry_run: bool = False
    update: bool = False
    all_or_nothing: bool = False
    batch_rows: int = BATCH_ROWS
    rejects: Path | None = None  # default: <file>.rejects.csv beside the file
    name: str | None = None  # the file's name as the user knows it (uploads)


@dataclass
class Summary:
    kind: str
    file: str
    sha256: str
    mode: str
    read: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    batches: int = 0
    committed: bool = False
    header_row: int | None = None
    unknown_columns: list[str] = field(default_factory=list)
    error: dict | None = None  # what stopped the import (a fatal file error)
    rejects_file: str | None = None

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        head = (f"{self.file}: read {self.read}, imported {self.imported}, updated "
                f"{self.updated}, unchanged {self.unchanged}, rejected {self.rejected}")
        zh = (f"读取{self.read}行，新增{self.imported}，更新{self.updated}，未变{self.unchanged}，"
              f"拒绝{self.rejected}")
        notes = []
        if self.mode == "dry-run":
            notes.append("dry run: nothing was written (试运行：未写入任何数据)")
        elif not self.committed:
            notes.append("nothing was written (未写入任何数据)")
        if self.unknown_columns:
            notes.append(f"columns not imported (未导入的列): {', '.join(self.unknown_columns)}")
        if self.rejects_file:
            notes.append(f"rejected rows and reasons (被拒绝的行及原因): {self.rejects_file}")
        return "\n".join([head, zh, *notes])


Progress = Callable[[int, float | None], None]  # rows read, fraction of the file (if known)


def require_rights(registry: Registry, actor: Actor, kind: Kind | str, *,
                   request_id: str | None = None) -> None:
    """Refuse (403, audited) a user whose role may not write ``kind`` — before a byte of the
    file is received or read."""
    with registry.vault(actor, request_id=request_id) as vault:
        _require(vault, Kind(kind))


def _require(vault: Vault, kind: Kind) -> None:
    vault.require(VAULT_KINDS[kind], _ACTIONS.get(kind, "create"))


def run_import(registry: Registry, actor: Actor, kind: Kind | str, path: str | Path,
               options: Options | None = None, *, progress: Progress | None = None,
               request_id: str | None = None) -> Summary:
    """Import ``path`` as a ledger of ``kind`` as ``actor``. A fatal file error (bad header,
    undecodable bytes, a second ledger below the first) ends the import: batches committed
    before it stay, the batch it interrupted does not land, and ``Summary.error`` says why."""
    kind, path, options = Kind(kind), Path(path), options or Options()
    mode = ("dry-run" if options.dry_run else "all-or-nothing" if options.all_or_nothing
            else "batches")
    summary = Summary(kind=kind.value, file=options.name or path.name, sha256=_sha256(path),
                      mode=mode)
    rejects_path = options.rejects or path.with_name(f"{path.stem}.rejects.csv")
    with registry.vault(actor, request_id=request_id) as vault, _Rejects(rejects_path) as rejects:
        _require(vault, kind)
        runner = _RUNNERS[kind](vault, update=options.update)
        try:
            with open_ledger(path, kind, encoding=options.encoding, sheet=options.sheet,
                             chunk_rows=options.batch_rows) as ledger:
                summary.header_row = ledger.header_row
                summary.unknown_columns = ledger.unknown_columns
                rejects.start(ledger)
                _batches(vault, runner, ledger, summary, rejects, options, progress)
        except Invalid as exc:  # fatal: the file, not a row
            if options.name and exc.extra.get("file") == path.name:
                exc.extra["file"] = options.name  # an upload: the name the user knows
            vault.rollback()
            runner.rolled_back()
            summary.error = exc.to_dict()
            summary.committed = summary.committed and not options.all_or_nothing
            _audit(vault, summary, kind, refs=[], rows=None, outcome="error")
            vault.commit()
        runner.finish()
        vault.commit()
    summary.rejects_file = rejects.written
    return summary


def _batches(vault: Vault, runner: Runner, ledger: Ledger, summary: Summary, rejects: _Rejects,
             options: Options, progress: Progress | None) -> None:
    today = vault.clock.today()
    hold = options.dry_run or options.all_or_nothing
    with vault.batch():
        for chunk in ledger.chunks():
            summary.batches += 1
            parsed: list[tuple[int, object]] = []
            counts = dict.fromkeys(STATUSES, 0)
            for row in chunk:
                try:
                    parsed.append((row.number, _parse(ledger.kind, row, today)))
                except RegistryError as exc:
                    rejects.write(row, exc)
                    counts["rejected"] += 1
            outcomes = runner.run(parsed) if parsed else {}
            refs = []
            for row in chunk:
                outcome = outcomes.get(row.number)
                if outcome is None:
                    continue
                counts[outcome.status] += 1
                refs += outcome.refs
                if outcome.error is not None:
                    rejects.write(row, outcome.error)
            for status, n in counts.items():
                setattr(summary, status, getattr(summary, status) + n)
            summary.read = ledger.rows_read
            _audit(vault, summary, ledger.kind, refs=refs, counts=counts,
                   rows=(chunk[0].number, chunk[-1].number))
            if not hold:
                vault.commit()
                runner.committed()
                summary.committed = True
            vault.forget_keys()
            if progress is not None:
                progress(ledger.rows_read, ledger.fraction())
    if hold and not (options.dry_run or summary.rejected):
        vault.commit()
        runner.committed()
        summary.committed = summary.read > 0
    elif hold:
        _refused_whole(vault, runner, summary, ledger.kind)


def _refused_whole(vault: Vault, runner: Runner, summary: Summary, kind: Kind) -> None:
    """A dry run, or all-or-nothing with rejects: the data goes, the audit stays."""
    vault.rollback()
    runner.rolled_back()
    _audit(vault, summary, kind, refs=[], rows=None,
           outcome="ok" if summary.mode == "dry-run" else "refused")
    vault.commit()


def _parse(kind: Kind, row: Row, today) -> Parsed | tuple:
    if row.rejected:
        raise row.rejected[0]
    parsed = parse(kind, row.values, row=row.number, today=today)
    if kind is Kind.residents:
        try:
            return arrival(parsed.request, today=today, left_on=parsed.extra["left_on"],
                           id_number=parsed.id_number)
        except Invalid as exc:
            exc.row = row.number
            raise
    return parsed


def _audit(vault: Vault, summary: Summary, kind: Kind, *, refs: list[str],
           rows: tuple[int, int] | None, counts: dict | None = None,
           outcome: str = "ok") -> None:
    counts = counts or {s: getattr(summary, s) for s in STATUSES}
    detail = ";".join([f"file={summary.file}", f"sha256={summary.sha256}", f"mode={summary.mode}",
                       *([f"batch={summary.batches}", f"rows={rows[0]}-{rows[1]}"] if rows
                         else ["total"]),
                       *(f"{s}={n}" for s, n in counts.items())])
    vault.record(VAULT_KINDS[kind], "import", fields=list(SPELLINGS[kind]), refs=refs,
                 detail=detail, outcome=outcome)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


# --- the rejects file ----------------------------------------------------------------------


class _Rejects:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._writer = None
        self._fields: list[str] = []
        self.count = 0

    def start(self, ledger: Ledger) -> None:
        """The rejects file repeats the ledger's columns, under headers it accepts."""
        self._fields = ledger.header
        self._spelling = SPELLINGS[ledger.kind]

    def write(self, row: Row, error: RegistryError) -> None:
        if self._writer is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # O_CREAT leaves an existing file's mode as it was
            # Opened on the first reject, closed by __exit__.
            self._file = open(fd, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow([*REJECTS_COLUMNS,
                                   *(self._spelling[f][0] for f in self._fields)])
        body = error.to_dict()
        self._writer.writerow([row.number, body.get("field") or "", error.message_zh,
                               error.message, *(_safe(row.values.get(f, ""))
                                                for f in self._fields)])
        self.count += 1

    def __enter__(self) -> _Rejects:
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()

    @property
    def written(self) -> str | None:
        return str(self.path) if self._file is not None else None


def _safe(cell: str) -> str:
    """A cell as text that a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell

