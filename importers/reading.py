"""Reading a ledger file: bytes in, numbered rows of ``{canonical field: cell text}`` out.

Everything streams, so memory is bounded by ``chunk_rows`` whatever the file's size: CSV through
the ``csv`` module over a text stream whose lines are capped (a 2 GB file without a newline is an
error, not an allocation), XLSX through openpyxl's read-only parser. The encoding of a CSV is
decided once, on its first MiB: a BOM means UTF-8; otherwise strict UTF-8 if the sample decodes,
else GB18030 (a superset of GBK and GB2312); ``encoding=`` overrides. A later byte that does not
decode stops the read with the row number and the fix. The header is the first row among the
first 20 that names at least two columns of the ledger's kind, so title rows and merged title
cells above it are skipped; row numbers are always the spreadsheet's (1-based, blank rows
counted but never yielded). Every cell is text: numbers as Excel left them (an ID that became
``1.1010519491231e+17`` stays visibly damaged for :mod:`importers.values` to refuse), dates as
ISO text, formulas never evaluated — a cell starting with ``=`` is rejected for its row.

What stops the whole file (an ``Invalid`` carrying ``extra["file"]``) and what only rejects a row:

    fatal, before any row:  empty file · binary or undecodable bytes · no header in 20 rows ·
                            duplicate columns · missing required column · two ledgers side by
                            side · unknown sheet · not a CSV/XLSX file
    fatal, mid-file:        an undecodable byte · an over-long line · the header of a different
                            ledger (or a different column order) under the data: two ledgers
                            stacked. Importers must not commit a batch they read past this.
    a rejected cell:        a formula (``Row.rejected``; the field is left out of ``values``)
    reported only:          unknown and foreign columns, repeated copies of the same header
                            (printed page headers), a header with no data rows (0 rows read)
"""

from __future__ import annotations

import codecs
import csv
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple, TextIO
from xml.etree.ElementTree import ParseError

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from importers.columns import (
    INDEX,
    LABELS_ZH,
    HeaderMap,
    Kind,
    canonical_header,
    header_key,
    known_count,
)
from registry.errors import Invalid

HEADER_SEARCH_ROWS = 20
MIN_HEADER_FIELDS = 2
# A row below the header naming this many fields of another kind is that ledger's header.
FOREIGN_HEADER_FIELDS = 3
SAMPLE_BYTES = 1 << 20
MAX_LINE_CHARS = 1 << 20
CSV_SUFFIXES = frozenset({".csv", ".txt"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})

RawRows = Iterator[tuple[int, list[str]]]
# Every header spelling of every kind, for a cheap test of whether a data row might be a header.
_SPELLING_KEYS = frozenset(key for index in INDEX.values() for key in index)
# A header cell may carry a unit, a note or a "*": allow for them, skip longer (data) cells.
_LONGEST_SPELLING = max(map(len, _SPELLING_KEYS)) + 12


class Row(NamedTuple):
    number: int  # the spreadsheet's row number
    values: dict[str, str]  # canonical field → cell text, as read (blank cells as "")
    rejected: tuple[Invalid, ...] = ()  # cells refused while reading (formulas)


@dataclass
class Ledger:
    """An open ledger. Iterate :meth:`chunks` (or :meth:`rows`) once; ``rows_read`` counts the
    non-blank data rows yielded so far — 0 for a file with a header and nothing under it, which
    is not an error: the importer reports "0 rows"."""

    path: Path
    kind: Kind
    header: list[str]  # canonical fields, in column order
    unknown_columns: list[str]
    foreign_columns: dict[str, tuple[Kind, ...]]  # unknown here, known to these kinds
    header_row: int
    encoding: str | None  # CSV only
    sheet: str | None  # XLSX only
    chunk_rows: int
    _columns: dict[int, str]
    _raw: RawRows
    _position: _Position
    rows_read: int = 0
    repeated_headers: list[int] = field(default_factory=list)

    def chunks(self) -> Iterator[list[Row]]:
        chunk: list[Row] = []
        for number, cells in self._raw:
            row = self._row(number, cells)
            if row is None:
                continue
            self.rows_read += 1
            chunk.append(row)
            if len(chunk) >= self.chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def fraction(self) -> float | None:
        """How far through the file reading is (CSV only: a workbook's rows are not counted
        ahead), for progress bars."""
        return self._position.fraction()

    def rows(self) -> Iterator[Row]:
        for chunk in self.chunks():
            yield from chunk

    def _row(self, number: int, cells: list[str]) -> Row | None:
        if _blank(cells):
            return None
        if self._might_be_header(cells) and self._is_header_again(number, cells):
            return None
        values: dict[str, str] = {}
        rejected: list[Invalid] = []
        for position, name in self._columns.items():
            cell = cells[position] if position < len(cells) else ""
            if cell.lstrip().startswith("="):
                rejected.append(Invalid(
                    "is a formula: formulas are never evaluated; paste the values instead",
                    "为公式：系统不计算公式，请粘贴为数值后再导入", field=name, row=number))
            else:
                values[name] = cell
        return Row(number, values, tuple(rejected))

    @staticmethod
    def _might_be_header(cells: list[str]) -> bool:
        return any(header_key(c) in _SPELLING_KEYS for c in cells
                   if c and len(c) <= _LONGEST_SPELLING and not c[0].isdigit())

    def _is_header_again(self, number: int, cells: list[str]) -> bool:
        if known_count(self.kind, cells) >= MIN_HEADER_FIELDS:
            if canonical_header(self.kind, cells).columns == self._columns:
                self.repeated_headers.append(number)
                return True
            raise _invalid(self.path, "is a second header with different columns: the file "
                           "stacks two ledgers; split it", "为另一表头且列不同：文件叠加了两份"
                           "台账，请拆分后导入", field="header", row=number)
        other = _likeliest_other_kind(self.kind, cells)
        if other is not None:
            raise _invalid(self.path, f"is the header of a {other} ledger: the file stacks "
                               "two ledgers; split it", f"为{LABELS_ZH[other]}表头：文件叠加了"
                               "两种台账，请拆分后导入", field="header", row=number)
        return False


@contextmanager
def open_ledger(path: str | Path, kind: Kind | str, *, encoding: str | None = None,
                sheet: str | None = None, chunk_rows: int = 5000) -> Iterator[Ledger]:
    """Open ``path`` as a ledger of ``kind``, find and check its header, and yield the
    :class:`Ledger`; the file is closed when the ``with`` block ends."""
    path, kind = Path(path), Kind(kind)
    if not path.is_file():
        raise _invalid(path, "file not found", "文件不存在")
    suffix = path.suffix.lower()
    with ExitStack() as stack:
        position = _Position(path.stat().st_size)
        if suffix in CSV_SUFFIXES:
            encoding = _csv_encoding(path, encoding)
            raw = _csv_rows(path, encoding, position)
            stack.callback(raw.close)
            sheet_name = None
        elif suffix in XLSX_SUFFIXES:
            sheet_name, raw = stack.enter_context(_xlsx_rows(path, sheet))
            encoding = None
        else:
            raise _invalid(path, "is not a CSV or XLSX file (save .xls files as .xlsx)",
                           "不是CSV或XLSX文件（.xls请另存为.xlsx）")
        header_row, header_cells = _find_header(path, kind, raw)
        header = canonical_header(kind, header_cells)
        _raise_problems(path, header, header_row)
        yield Ledger(path=path, kind=kind, header=header.fields, unknown_columns=header.unknown,
                     foreign_columns=header.foreign, header_row=header_row, encoding=encoding,
                     sheet=sheet_name, chunk_rows=chunk_rows, _columns=header.columns, _raw=raw,
                     _position=position)


# --- errors --------------------------------------------------------------------------------


def _invalid(path: Path, message: str, message_zh: str, *, field: str = "file",
             row: int | None = None) -> Invalid:
    return Invalid(message, message_zh, field=field, row=row, extra={"file": path.name})


def _raise_problems(path: Path, header: HeaderMap, header_row: int) -> None:
    if not header.problems:
        return
    first = header.problems[0]
    if len(header.problems) == 1:
        first.row, first.extra = header_row, {"file": path.name}
        raise first
    listed = [p.to_dict() for p in header.problems]
    raise Invalid(
        f"the header has {len(listed)} problems: "
        + "; ".join(p["message"] for p in listed),
        f"表头有{len(listed)}处问题：" + "；".join(p["message_zh"] for p in listed),
        field="header", row=header_row, extra={"file": path.name, "problems": listed})


# --- the header ----------------------------------------------------------------------------


def _blank(cells: list[str]) -> bool:
    return all(not c.strip() for c in cells)


def _likeliest_other_kind(kind: Kind, cells: list[str]) -> Kind | None:
    """The other kind whose header these cells most resemble, if they name enough of it."""
    counts = {k: known_count(k, cells) for k in Kind if k != kind}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] >= FOREIGN_HEADER_FIELDS else None


def _find_header(path: Path, kind: Kind, raw: RawRows) -> tuple[int, list[str]]:
    """Consume rows up to the header; the iterator continues with the first data row."""
    seen_text = False
    looks_like: Kind | None = None
    for number, cells in raw:
        if _blank(cells):
            if number >= HEADER_SEARCH_ROWS:
                break
            continue
        seen_text = True
        if known_count(kind, cells) >= MIN_HEADER_FIELDS:
            return number, cells
        looks_like = looks_like or _likeliest_other_kind(kind, cells)
        if number >= HEADER_SEARCH_ROWS:
            break
    if not seen_text:
        raise _invalid(path, "is empty", "文件为空")
    if looks_like is not None:
        raise _invalid(path, f"looks like a {looks_like} ledger, not a {kind} one",
                       f"看起来是{LABELS_ZH[looks_like]}，而非{LABELS_ZH[kind]}", field="header")
    raise _invalid(path, f"no header row in the first {HEADER_SEARCH_ROWS} rows names two "
                   f"{kind} columns", f"前{HEADER_SEARCH_ROWS}行中未找到{LABELS_ZH[kind]}的表头",
                   field="header")


# --- CSV -----------------------------------------------------------------------------------


def _csv_encoding(path: Path, forced: str | None) -> str:
    if forced is not None:
        try:
            return codecs.lookup(forced).name
        except LookupError:
            raise _invalid(path, "unknown encoding requested", "指定的编码无效",
                           field="encoding") from None
    with path.open("rb") as f:
        sample = f.read(SAMPLE_BYTES)
    if not sample.strip():
        raise _invalid(path, "is empty", "文件为空")
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _invalid(path, "is UTF-16 text: save it as “CSV UTF-8”",
                       "为UTF-16文本：请另存为“CSV UTF-8”格式")
    if b"\0" in sample:
        raise _binary(path, sample)
    for encoding in ("utf-8", "gb18030"):
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        controls = sum(unicodedata.category(ch) == "Cc" and ch not in "\t\r\n" for ch in text)
        if controls > len(text) // 100:
            raise _binary(path, sample)
        return encoding
    raise _binary(path, sample)


def _binary(path: Path, sample: bytes) -> Invalid:
    if sample.startswith(b"PK\x03\x04"):
        return _invalid(path, "is a workbook (ZIP) named like a CSV: name it .xlsx",
                        "为Excel工作簿（ZIP），却以CSV命名：请改为.xlsx")
    return _invalid(path, "is not text in UTF-8 or GBK/GB18030 (binary data?)",
                    "不是UTF-8或GBK/GB18030文本（疑为二进制文件）")


@dataclass
class _Position:
    size: int
    tell: Callable[[], int] | None = None

    def fraction(self) -> float | None:
        if self.tell is None or not self.size:
            return None
        try:
            return min(1.0, self.tell() / self.size)
        except ValueError:  # the file is closed: read to the end
            return 1.0


def _csv_rows(path: Path, encoding: str, position: _Position) -> RawRows:
    number = 0
    with path.open(encoding=encoding, errors="strict", newline="") as f:
        position.tell = f.buffer.tell
        try:
            for number, cells in enumerate(csv.reader(_lines(path, f)), start=1):
                yield number, cells
        except UnicodeDecodeError:
            raise _invalid(path, f"is not valid {encoding} after row {number}: pass the "
                           "file's encoding explicitly", f"第{number}行之后不是有效的{encoding}"
                           "编码：请指定文件编码", field="encoding", row=number + 1) from None
        except csv.Error:
            raise _invalid(path, "is not well-formed CSV here (a field over 128 KiB or a "
                           "stray quote?)", "此处CSV格式错误（字段超过128KiB或引号不成对？）",
                           row=number + 1) from None


def _lines(path: Path, f: TextIO) -> Iterator[str]:
    while line := f.readline(MAX_LINE_CHARS + 1):
        if len(line) > MAX_LINE_CHARS:
            raise _invalid(path, "has a line over 1 MiB: not a ledger",
                           "存在超过1MiB的行：不是台账")
        yield line


# --- XLSX ----------------------------------------------------------------------------------


@contextmanager
def _xlsx_rows(path: Path, sheet: str | None) -> Iterator[tuple[str, RawRows]]:
    try:
        # data_only=False: a formula arrives as its text ("=SUM(…)") and is rejected, never
        # replaced by a cached result that may be stale or forged.
        workbook = load_workbook(path, read_only=True, data_only=False)
    except (InvalidFileException, zipfile.BadZipFile, ParseError, KeyError, ValueError,
            OSError):
        raise _invalid(path, "is not a readable XLSX workbook", "不是可读取的XLSX工作簿") from None
    try:
        names = workbook.sheetnames
        if sheet is not None and sheet not in names:
            raise _invalid(path, f"has no sheet named “{sheet}” (sheets: {', '.join(names)})",
                           f"没有名为“{sheet}”的工作表（现有：{'、'.join(names)}）",
                           field="sheet")
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        if not hasattr(worksheet, "iter_rows"):
            raise _invalid(path, "the sheet is a chart, not a table", "该工作表为图表而非表格",
                           field="sheet")
        # The stored dimension may be wrong (some writers put A1 only): read to the end.
        worksheet.reset_dimensions()
        yield worksheet.title, _sheet_rows(path, worksheet)
    finally:
        workbook.close()


def _sheet_rows(path: Path, worksheet) -> RawRows:
    """The sheet's rows as text; a workbook damaged past its first rows (the parser streams
    it) stops the read with the row, like an undecodable CSV."""
    number = 0
    try:
        for number, values in enumerate(worksheet.iter_rows(min_row=1, values_only=True),
                                        start=1):
            yield number, [_cell_text(v) for v in values]
    except (zipfile.BadZipFile, ParseError, KeyError, ValueError, TypeError, OSError,
            EOFError):
        raise _invalid(path, f"is damaged after row {number}: save it again from Excel",
                       f"第{number}行之后文件损坏：请在Excel中重新保存", row=number + 1) from None


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Whole numbers below 10^15 are exact in Excel; above, repr keeps the exponent so the
        # lost digits of an ID stay visible.
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    text = getattr(value, "text", None)  # ArrayFormula and the like: a formula, never a value
    return text if isinstance(text, str) and text.startswith("=") else f"={value}"
