"""Rules shared by every entry point (API, CLI, importers): national ID numbers per
GB 11643-1999, mainland mobile numbers, addresses and names. Errors are :class:`Invalid` with
the field named and never the value echoed back."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from registry.errors import Invalid

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID18 = re.compile(r"[0-9]{17}[0-9X]")
_ID15 = re.compile(r"[0-9]{15}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_SPACES = re.compile(r"\s+")


def normalise_text(value: str) -> str:
    """Full-width to half-width (NFKC), trimmed, inner runs of white space folded to one."""
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)
    return _SPACES.sub(" ", value).strip()


def ascii_digits(value: str) -> str:
    """Any script's decimal digits (Arabic-Indic, Devanagari, …) as ASCII, so one number has
    one form — and one blind index."""
    if value.isascii():
        return value
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in value)


def check_character(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class IdNumber:
    value: str
    sex: str  # "M" / "F"
    birth_date: date

    @property
    def masked(self) -> str:
        return mask_id_number(self.value)


def parse_id_number(raw: str, *, field: str = "id_number", today: date | None = None) -> IdNumber:
    """Validate an 18-digit number (or convert a 15-digit legacy one); derive sex and birth."""
    value = ascii_digits(normalise_text(raw)).replace(" ", "").upper()
    if _ID15.fullmatch(value):
        first17 = value[:6] + "19" + value[6:15]
        value = first17 + check_character(first17)
    if not _ID18.fullmatch(value):
        raise Invalid(
            "must be 18 characters: 17 digits and a digit or X (or a 15-digit legacy number)",
            "须为18位（17位数字加1位数字或X），或15位旧号码",
            field=field,
        )
    try:
        birth = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise Invalid("contains an impossible birth date", "出生日期无效", field=field) from exc
    if birth > (today or date.today()) or birth.year < 1900:
        raise Invalid("birth date is in the future or before 1900", "出生日期超出合理范围",
                      field=field)
    if check_character(value[:17]) != value[17]:
        raise Invalid("check character does not match (typo?)", "校验码不符（可能录入有误）",
                      field=field)
    return IdNumber(value, "M" if int(value[16]) % 2 else "F", birth)


def parse_mobile(raw: str, *, field: str = "phone") -> str:
    value = re.sub(r"[\s\-()]", "", ascii_digits(normalise_text(raw)))
    for prefix in ("+86", "0086", "86"):
        if value.startswith(prefix) and len(value) == len(prefix) + 11:
            value = value[len(prefix):]
    if not _MOBILE.fullmatch(value):
        raise Invalid("must be a mainland mobile number: 1[3-9] followed by 9 digits",
                      "须为11位大陆手机号码（1[3-9]开头）", field=field)
    return value


def clean_text(raw: str, *, field: str, max_length: int, min_length: int = 1) -> str:
    value = normalise_text(raw)
    if len(value) < min_length:
        raise Invalid("is required", "不能为空", field=field)
    if len(value) > max_length:
        raise Invalid(f"is longer than {max_length} characters", f"超过{max_length}个字符",
                      field=field)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in value):
        raise Invalid("contains control characters", "包含控制字符", field=field)
    return value


def parse_purpose(raw: str | None, *, max_length: int, field: str) -> str | None:
    """A stated purpose (why full personal data is needed: a case number or a reason), the one
    rule for the API's X-Purpose, the CLI's --purpose and the pages' purpose field: blank is
    none; otherwise stripped, printable and at most ``max_length`` characters."""
    if raw is None or not raw.strip():
        return None
    purpose = raw.strip()
    if len(purpose) > max_length or not purpose.isprintable():
        raise Invalid(f"must be printable and at most {max_length} characters",
                      "须为可打印字符且不超过规定长度", field=field)
    return purpose


def not_future(value: date | None, today: date, field: str) -> date | None:
    if value is not None and value > today:
        raise Invalid("is in the future", "不能晚于今天", field=field)
    return value


def address_key(address: str) -> str:
    """The form of an address that its blind index is computed over."""
    return normalise_text(address).replace(" ", "").casefold()


# --- masking ------------------------------------------------------------------------------


def mask_id_number(value: str) -> str:
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_name(value: str) -> str:
    """Surname and one star, whatever the name's length (the length is a hint too).
    Two-character surnames (欧阳, 司马) show their first character only."""
    return value[:1] + "*"


def mask_phone(value: str) -> str:
    return value[:3] + "****" + value[-4:]


def mask_address(value: str) -> str:
    return value[: max(1, len(value) // 3)] + "***"


def mask_birth_date(value: str) -> str:
    """The year only."""
    return value[:4] + "-**-**"


def mask_text(value: str) -> str:
    """Free text (a workplace, a decision reference): the first character only."""
    return value[:1] + "***"
