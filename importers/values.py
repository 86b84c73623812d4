"""Cell parsers: ledger text in, a normalised value out, or :class:`Invalid` naming the field
and the spreadsheet row (never the value — a rejects file must not become a copy of the
personal data).

Everything is text first: the reader turns every cell into a string, so a parser sees what a
person typed or what Excel did to it. The national-ID and mobile rules are the registry's own
(:mod:`registry.validation`), so an imported number and a typed one get the same form and the
same blind index. Nothing here guesses: an ID that went through an Excel number column
("1.10105E+17", "110105194912310000.0") has lost its last digits, and the message says so
instead of padding it; a date with a time of day, a serial with a fraction, an ambiguous
spelling of an enum — all refused with the forms that are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date as Date
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from registry.corrections.schemas import Category
from registry.errors import Invalid
from registry.releases.schemas import PlacementKind, PlacementStatus, Source
from registry.rentals.schemas import RentalStatus
from registry.residents.schemas import Reason
from registry.validation import (
    IdNumber,
    ascii_digits,
    normalise_text,
    parse_id_number,
    parse_mobile,
)

__all__ = [
    "CATEGORY", "PLACEMENT_KIND", "PLACEMENT_STATUS", "REASON", "RENTAL_STATUS", "SEX",
    "SOURCE", "YES_NO", "choice", "date", "id_number", "integer", "phone", "present", "text",
]

# Excel's number column: scientific notation, or digits with a decimal part.
_EXCEL_NUMBER = re.compile(r"[0-9](\.[0-9]+)?e\+?[0-9]+|[0-9]+\.[0-9]+", re.IGNORECASE)
_YMD = re.compile(r"([0-9]{4})\s*[-/.年]\s*([0-9]{1,2})\s*[-/.月]\s*([0-9]{1,2})\s*日?")
_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_SERIAL = re.compile(r"([0-9]{5})(\.0+)?")  # 5 digits: 1927-05-18 … 2099-12-31
_MIDNIGHT = re.compile(r"(.*?)(?:[ T]0{1,2}:00(?::00(?:\.0+)?)?)")
_INTEGER = re.compile(r"[+]?([0-9]+)(\.0+)?\s*[户间套天日人个]?")
_TIME = re.compile(r"[0-9]{1,2}:[0-9]{2}")
_EXCEL_EPOCH = Date(1899, 12, 30)


def _fail(message: str, message_zh: str, field: str, row: int | None) -> Invalid:
    return Invalid(message, message_zh, field=field, row=row)


def present(raw: str | None) -> str | None:
    """The normalised text of a cell, or ``None`` when it is blank (an optional field). A
    leading apostrophe is a spreadsheet's "this is text" marker (the rejects file writes one
    before cells that start like a formula), not part of the value."""
    value = normalise_text(raw or "")
    if value.startswith("'"):
        value = value[1:].lstrip()
    return value or None


def text(raw: str | None, *, field: str, row: int | None = None) -> str:
    """A required free-text cell, normalised (full-width to half-width, spaces folded)."""
    value = present(raw)
    if value is None:
        raise _fail("is required", "不能为空", field, row)
    return value


def id_number(raw: str | None, *, field: str = "id_number", row: int | None = None) -> IdNumber:
    value = ascii_digits(text(raw, field=field, row=row)).replace(" ", "")
    if _EXCEL_NUMBER.fullmatch(value):
        raise _fail(
            "was stored as a number in Excel, which keeps 15 digits and drops the rest: "
            "format the column as text and re-enter the numbers",
            "在Excel中被存为数字，15位之后的数字已丢失：请将该列设为文本格式后重新录入",
            field, row)
    try:
        return parse_id_number(value, field=field)
    except Invalid as exc:
        exc.row = row
        if value.endswith("000") and len(value) == 18 and "check" in exc.message:
            exc.message += ("; it ends in 000, as numbers do after Excel stored them as a "
                            "number: format the column as text and re-enter the numbers")
            exc.message_zh += "；末三位为000，疑似Excel按数字存储后丢失，请将该列设为文本后重新录入"
        raise


def phone(raw: str | None, *, field: str = "phone", row: int | None = None) -> str:
    value = text(raw, field=field, row=row)
    # Eleven digits are exact in a float, so Excel's ".0" loses nothing and may be dropped.
    value = re.sub(r"^([0-9]{11})\.0+$", r"\1", ascii_digits(value))
    try:
        return parse_mobile(value, field=field)
    except Invalid as exc:
        exc.row = row
        raise


def date(raw: str | None, *, field: str, row: int | None = None) -> Date:
    """2024-03-01, 2024/3/1, 2024.3.1, 2024年3月1日, 20240301, an Excel serial (45352) and any
    of these followed by a midnight time ("2024-03-01 00:00:00")."""
    value = ascii_digits(text(raw, field=field, row=row))
    midnight = _MIDNIGHT.fullmatch(value)
    if midnight:
        value = midnight.group(1).strip()
    elif _TIME.search(value):
        raise _fail("has a time of day: give the date only", "含有时刻：请只填日期", field, row)
    parts: tuple[int, int, int] | None = None
    if m := _YMD.fullmatch(value) or _COMPACT.fullmatch(value):
        parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    elif m := _SERIAL.fullmatch(value):
        return _from_serial(int(m.group(1)), field, row)
    if parts is None:
        raise _fail("is not a date: write 2024-03-01 (or 2024/3/1, 2024年3月1日)",
                    "不是日期：请写作2024-03-01（或2024/3/1、2024年3月1日）", field, row)
    try:
        day = Date(*parts)
    except ValueError as exc:
        raise _fail("is not a calendar date", "日期不存在", field, row) from exc
    if not 1900 <= day.year <= 2100:
        raise _fail("is outside 1900–2100", "超出1900至2100年范围", field, row)
    return day


def _from_serial(serial: int, field: str, row: int | None) -> Date:
    # Excel's 1900 date system counts a 29 February 1900 that never was, so from March 1900 on
    # serial n is 1899-12-30 + n days, not 1899-12-31 + n. Only five-digit serials are taken
    # (1927-05-18 onwards): a four-digit number is far likelier a year than a serial.
    if serial > 73050:  # 2099-12-31
        raise _fail("is not a date (nor an Excel date serial)", "不是日期（也不是Excel日期序号）",
                    field, row)
    return _EXCEL_EPOCH + timedelta(days=serial)


def integer(raw: str | None, *, field: str, row: int | None = None,
            minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number, optionally with Excel's ".0" or a unit character ("3户", "7天")."""
    m = _INTEGER.fullmatch(ascii_digits(text(raw, field=field, row=row)))
    if m is None:
        raise _fail("must be a whole number", "须为整数", field, row)
    value = int(m.group(1))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else str(minimum)
        high = "" if maximum is None else str(maximum)
        raise _fail(f"must be within {low}–{high}", f"须在{low}至{high}之间", field, row)
    return value


def _choice_key(raw: str) -> str:
    return normalise_text(raw).replace(" ", "").casefold()


T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


def choice(raw: str | None, mapping: Mapping[str, T], *, field: str,
           row: int | None = None) -> T:
    """One of a fixed set of spellings (compared without case, width or spaces)."""
    value = _choice_key(text(raw, field=field, row=row))
    for spelling, result in mapping.items():
        if _choice_key(spelling) == value:
            return result
    accepted = "、".join(dict.fromkeys(s for s in mapping if not s.isascii())) or ", ".join(mapping)
    raise _fail(f"must be one of: {accepted}", f"须为以下之一：{accepted}", field, row)


def _with_values(enum: type[E], chinese: Mapping[str, E]) -> dict[str, E]:
    """Chinese spellings first (they head the error message), then the English values."""
    return {**chinese, **{member.value: member for member in enum}}


RENTAL_STATUS = _with_values(RentalStatus, {
    "在租": RentalStatus.active, "出租": RentalStatus.active, "空置": RentalStatus.vacant,
    "停租": RentalStatus.deregistered, "注销": RentalStatus.deregistered})
YES_NO: dict[str, bool] = {"是": True, "否": False, "有": True, "无": False,
                           "已落实": True, "未落实": False,
                           "y": True, "n": False, "yes": True, "no": False,
                           "true": True, "false": False, "1": True, "0": False}
SEX = {"男": "M", "女": "F", "男性": "M", "女性": "F", "m": "M", "f": "F", "male": "M",
       "female": "F"}
CATEGORY = _with_values(Category, {
    "管制": Category.control, "缓刑": Category.probation, "假释": Category.parole,
    "暂予监外执行": Category.outside_custody, "监外执行": Category.outside_custody})
PLACEMENT_STATUS = _with_values(PlacementStatus, {
    "已安置": PlacementStatus.placed, "未安置": PlacementStatus.not_yet,
    "无需安置": PlacementStatus.not_needed, "不需安置": PlacementStatus.not_needed})
PLACEMENT_KIND = _with_values(PlacementKind, {
    "就业": PlacementKind.employment, "自主创业": PlacementKind.self_employment,
    "创业": PlacementKind.self_employment, "务农": PlacementKind.farming,
    "就学": PlacementKind.study, "低保": PlacementKind.subsistence_allowance,
    "过渡性安置基地": PlacementKind.transitional_base,
    "亲属供养": PlacementKind.family_support})
REASON = _with_values(Reason, {
    "务工": Reason.work, "经商": Reason.business, "就学": Reason.study, "投亲": Reason.family,
    "投亲靠友": Reason.family, "其他": Reason.other})
SOURCE = _with_values(Source, {
    "刑满释放": Source.prison, "社区矫正期满解除": Source.corrections,
    "解除矫正": Source.corrections})
