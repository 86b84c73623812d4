"""Ledger fixture files for the importer tests: one ledger, written as the communities send it
— CSV in UTF-8, UTF-8 with a BOM or GBK, or an XLSX workbook — generated into ``tmp_path`` so no
blob is committed.

A :class:`Sheet` is built row by row and knows each row's spreadsheet number (1-based, title
rows, the header and blank rows all counted), which is what the importer's summary and rejects
file name. A cell is text; :class:`Excel` gives a cell two faces, the value a workbook stores
(a float that was an ID number, a ``datetime``, an Excel serial as a number, a formula) and the
text the same cell shows once saved as CSV, so Excel's damage can be simulated in every format.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

# format name → (suffix, text encoding; None for a workbook)
FORMATS: dict[str, tuple[str, str | None]] = {
    "utf8": (".csv", "utf-8"),
    "utf8-bom": (".csv", "utf-8-sig"),
    "gbk": (".csv", "gbk"),
    "xlsx": (".xlsx", None),
}


@dataclass(frozen=True)
class Excel:
    """A cell whose workbook value is not text: ``value`` goes into an XLSX file as is (float,
    int, datetime, a formula string), ``text`` is what a CSV export of it holds."""

    value: object
    text: str


def cell_text(cell: object) -> str:
    if isinstance(cell, Excel):
        return cell.text
    return "" if cell is None else str(cell)


def cell_value(cell: object) -> object:
    return cell.value if isinstance(cell, Excel) else cell


class Sheet:
    """A ledger: title rows (the first one merged across the header's width in a workbook), a
    header, and data rows added one at a time."""

    def __init__(self, header: list[str], *, titles: list[list[str]] | None = None) -> None:
        self.header = list(header)
        self.lines: list[list[object]] = [list(t) for t in (titles or [])]
        self.merge_first_title = bool(titles)
        self.lines.append(self.header)
        self.header_row = len(self.lines)

    def add(self, cells: list[object] | dict[str, object]) -> int:
        """A data row (a list in header order, or header name → cell; missing names blank);
        returns its spreadsheet row number."""
        if isinstance(cells, dict):
            unknown = set(cells) - set(self.header)
            assert not unknown, f"not in the header: {unknown}"
            cells = [cells.get(name, "") for name in self.header]
        self.lines.append(list(cells))
        return len(self.lines)

    def blank(self) -> int:
        """A blank row (in a workbook: no cells; in a CSV: a row of empty fields)."""
        self.lines.append([])
        return len(self.lines)

    def write(self, folder: Path, fmt: str, name: str = "ledger") -> Path:
        suffix, encoding = FORMATS[fmt]
        path = Path(folder) / f"{name}{suffix}"
        if encoding is None:
            self._xlsx(path)
        else:
            self._csv(path, encoding)
        return path

    def _csv(self, path: Path, encoding: str) -> None:
        width = len(self.header)
        with path.open("w", encoding=encoding, newline="") as f:
            writer = csv.writer(f)
            for line in self.lines:
                texts = [cell_text(c) for c in line]
                # Excel pads every row of a CSV export to the sheet's width.
                writer.writerow(texts + [""] * (width - len(texts)))

    def _xlsx(self, path: Path) -> None:
        workbook = Workbook()
        sheet = workbook.active
        sheet.title = "台账"
        for line in self.lines:
            sheet.append([cell_value(c) for c in line])
        if self.merge_first_title and len(self.header) > 1:
            sheet.merge_cells(f"A1:{get_column_letter(len(self.header))}1")
        workbook.save(path)


def write(folder: Path, fmt: str, header: list[str], rows: list[list[object]], *,
          titles: list[list[str]] | None = None, name: str = "ledger") -> Path:
    """One call for a plain ledger: ``rows`` in header order, ``[]`` for a blank row."""
    sheet = Sheet(header, titles=titles)
    for row in rows:
        if row:
            sheet.add(row)
        else:
            sheet.blank()
    return sheet.write(folder, fmt, name)


def read_rejects(path: str | Path) -> list[dict[str, str]]:
    """The importer's rejects file as dicts: ``row``, ``field``, ``zh``, ``en``, then the
    ledger's cells under the headers the file repeats."""
    with Path(path).open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    keys = ["row", "field", "zh", "en", *head[4:]]
    return [dict(zip(keys, r, strict=True)) for r in body]
