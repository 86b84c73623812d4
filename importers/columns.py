"""Column maps: which header spellings each ledger kind accepts, and which columns it needs.

A header cell is reduced to a *key* before lookup — NFKC (full-width to half-width), case
folded, a trailing unit or note in brackets dropped ("报到周期(天)" → "报到周期"), white space,
``_``, ``-``, ``*`` (the "required" mark of many templates) and a trailing colon removed — so
"ID Number", "id_number" and "ＩＤ　ＮＵＭＢＥＲ" are one spelling. Each kind has its own map
because the same words mean different fields in different ledgers ("名称" is a jurisdiction's name,
"辖区代码" its own code in the jurisdictions ledger but the parent community elsewhere). The
result of :func:`canonical_header` is data, not an exception: the reader decides what is fatal
(``problems``: duplicate columns, missing required columns, a second ledger's columns) and what
is only reported (``unknown``, and ``foreign`` — unknown here but known to another kind).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from registry.errors import Invalid


class Kind(StrEnum):
    jurisdictions = "jurisdictions"
    rentals = "rentals"
    residents = "residents"
    corrections = "corrections"
    releases = "releases"
    coordinators = "coordinators"


LABELS_ZH = {
    Kind.jurisdictions: "辖区台账", Kind.rentals: "出租房屋台账",
    Kind.residents: "流动人口台账", Kind.corrections: "社区矫正台账",
    Kind.releases: "安置帮教台账", Kind.coordinators: "协管员台账",
}

_PERSON = {
    "name": ("姓名", "name", "名字"),
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "证件号码", "身份证",
                  "id_number", "id", "idno", "idcard"),
    "sex": ("性别", "sex", "gender"),
    "birth_date": ("出生日期", "birth_date", "birthdate", "dob"),
    "phone": ("联系电话", "手机号", "手机号码", "电话", "联系方式", "phone", "mobile"),
}
_PLACE = {
    "jurisdiction_code": ("社区代码", "所属社区代码", "辖区代码", "所属辖区代码",
                          "jurisdiction_code", "jurisdiction"),
    "address": ("现住址", "房屋地址", "居住地址", "详细地址", "地址", "address"),
    "registered_on": ("登记日期", "登记时间", "registered_on"),
}
_LANDLORD = {
    "landlord_name": ("房东姓名", "房东", "房主姓名", "landlord_name", "landlord"),
    "landlord_id_number": ("房东身份证号", "房东身份证号码", "房东证件号码", "landlord_id_number"),
    "landlord_phone": ("房东电话", "房东联系电话", "房东手机号", "landlord_phone"),
}

SPELLINGS: dict[Kind, dict[str, tuple[str, ...]]] = {
    Kind.jurisdictions: {
        "code": ("区划代码", "辖区代码", "代码", "社区代码", "code"),
        "name": ("名称", "辖区名称", "社区名称", "name"),
        "parent_code": ("上级代码", "上级区划代码", "parent_code", "parent"),
        "registration_deadline_days": ("登记时限", "登记期限", "registration_deadline_days"),
    },
    Kind.rentals: {
        "jurisdiction_code": _PLACE["jurisdiction_code"],
        "address": ("房屋地址", "出租房屋地址", "详细地址", "地址", "address", "现住址"),
        "registered_on": _PLACE["registered_on"],
        **_LANDLORD,
        "units": ("出租户数", "间数", "出租间数", "户数", "units"),
        "status": ("出租状态", "状态", "status"),
        "pledge_signed_on": ("保证书签订日期", "治安责任保证书签订日期", "pledge_signed_on"),
        "pledge_valid_until": ("保证书有效期至", "保证书有效期", "pledge_valid_until"),
    },
    Kind.residents: {
        **_PERSON, **_PLACE,
        # A resident's landlord helps find the rental; not a second ledger.
        "landlord_name": _LANDLORD["landlord_name"],
        "landlord_phone": _LANDLORD["landlord_phone"],
        "hukou_address": ("户籍地址", "户籍地", "户籍所在地", "hukou_address"),
        "arrived_on": ("来本地日期", "来本地时间", "到达日期", "arrived_on"),
        "left_on": ("离开日期", "离开时间", "left_on"),
        "reason": ("居住事由", "来本地事由", "事由", "reason"),
        "occupation": ("职业", "occupation"),
        "workplace": ("工作单位", "服务处所", "workplace"),
        "permit_number": ("居住证号", "居住证号码", "居住证编号", "permit_number"),
        "permit_issued_on": ("居住证签发日期", "发证日期", "permit_issued_on"),
        "permit_endorsed_on": ("签注日期", "居住证签注日期", "permit_endorsed_on"),
    },
    Kind.corrections: {
        **_PERSON,
        "jurisdiction_code": _PLACE["jurisdiction_code"],
        "category": ("矫正类别", "矫正类型", "category"),
        "deciding_body": ("决定机关", "判决机关", "deciding_body"),
        "judgment_ref": ("判决书号", "文书编号", "判决书编号", "judgment_ref"),
        "effective_on": ("生效日期", "判决生效日期", "effective_on"),
        "supervision_start": ("矫正起始日期", "矫正开始日期", "矫正起始日", "supervision_start"),
        "supervision_end": ("矫正结束日期", "矫正终止日期", "矫正结束日", "supervision_end"),
        "reported_on": ("报到日期", "reported_on"),
        "check_in_interval_days": ("报到周期", "check_in_interval_days"),
        "last_check_in_on": ("最近报到日期", "最近报到时间", "last_check_in_on"),
        "officer": ("矫正负责人", "负责人", "officer"),
        "juvenile": ("是否未成年", "未成年", "juvenile"),
    },
    Kind.releases: {
        **_PERSON,
        "jurisdiction_code": _PLACE["jurisdiction_code"],
        "source": ("人员来源", "来源", "source"),
        "released_on": ("释放日期", "刑满释放日期", "解除矫正日期", "released_on"),
        "releasing_institution": ("原服刑单位", "服刑单位", "releasing_institution"),
        "placement_status": ("安置情况", "是否安置", "placement_status"),
        "placement_kind": ("安置方式", "placement_kind"),
        "placed_on": ("安置日期", "安置时间", "placed_on"),
        "measures_in_place": ("帮教措施落实", "帮教措施是否落实", "measures_in_place"),
        "key_subject": ("重点帮教对象", "是否重点帮教对象", "key_subject"),
    },
    Kind.coordinators: {
        "name": ("协管员姓名", "协管员", "姓名", "name"),
        "staff_number": ("工号", "协管员工号", "编号", "staff_number", "username"),
        "jurisdiction_code": _PLACE["jurisdiction_code"],
        "phone": _PERSON["phone"],
    },
}

# What a row cannot be imported without: the fields the create schemas require, but for those
# an importer defaults (a resident's reason: other; a release's source: prison; a rental's
# status: active). An importer may ask for more; it cannot ask for less.
REQUIRED: dict[Kind, frozenset[str]] = {
    Kind.jurisdictions: frozenset({"code", "name"}),
    Kind.rentals: frozenset({"jurisdiction_code", "address", "units", "landlord_name",
                             "landlord_id_number"}),
    Kind.residents: frozenset({"name", "id_number", "jurisdiction_code", "address",
                               "arrived_on"}),
    Kind.corrections: frozenset({"name", "id_number", "jurisdiction_code", "category",
                                 "deciding_body", "judgment_ref", "effective_on",
                                 "supervision_start", "supervision_end"}),
    Kind.releases: frozenset({"name", "id_number", "jurisdiction_code", "released_on",
                              "releasing_institution"}),
    Kind.coordinators: frozenset({"name", "staff_number", "jurisdiction_code"}),
}

_BRACKETED = re.compile(r"\([^()]*\)$")
_NOISE = re.compile(r"[\s_\-*:.]+")


@lru_cache(maxsize=1 << 16)  # cells repeat down a column; a row check keys every cell
def header_key(raw: str) -> str:
    """The lookup form of a header cell (see the module docstring)."""
    text = unicodedata.normalize("NFKC", raw).casefold().strip()
    text = text.replace("【", "(").replace("】", ")").replace("[", "(").replace("]", ")")
    text = _BRACKETED.sub("", text.strip().rstrip("*:").strip())
    return _NOISE.sub("", text)


def _index(kind: Kind) -> dict[str, str]:
    return {header_key(s): canonical for canonical, spellings in SPELLINGS[kind].items()
            for s in spellings}


INDEX: dict[Kind, dict[str, str]] = {kind: _index(kind) for kind in Kind}


@dataclass
class HeaderMap:
    """A header row read for one kind. ``columns`` maps a 0-based position to its canonical
    field; ``unknown`` lists the raw names of every other non-empty cell, in order."""

    kind: Kind
    columns: dict[int, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    foreign: dict[str, tuple[Kind, ...]] = field(default_factory=dict)
    problems: list[Invalid] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        return list(self.columns.values())


def known_count(kind: Kind, cells: Iterable[str]) -> int:
    """How many distinct fields of ``kind`` the cells name: the header-row test."""
    index = INDEX[kind]
    return len({index[k] for k in map(header_key, cells) if k in index})


def canonical_header(kind: Kind, raw_headers: Iterable[str]) -> HeaderMap:
    index = INDEX[kind]
    result = HeaderMap(kind)
    first_seen: dict[str, str] = {}
    for position, raw in enumerate(raw_headers):
        key = header_key(raw)
        if not key:
            continue
        canonical = index.get(key)
        if canonical is None:
            result.unknown.append(raw.strip())
            others = tuple(k for k in Kind if k != kind and key in INDEX[k])
            if others:
                result.foreign[raw.strip()] = others
            continue
        if canonical in first_seen:
            result.problems.append(Invalid(
                f"columns “{first_seen[canonical]}” and “{raw.strip()}” are the same field: "
                "keep one",
                f"“{first_seen[canonical]}”与“{raw.strip()}”是同一字段，请只保留一列",
                field=canonical))
            continue
        first_seen[canonical] = raw.strip()
        result.columns[position] = canonical
    _check_required(result)
    _check_mixed(result)
    return result


def _check_required(result: HeaderMap) -> None:
    for missing in sorted(REQUIRED[result.kind] - set(result.columns.values())):
        spellings = SPELLINGS[result.kind][missing]
        result.problems.append(Invalid(
            f"required column is missing (accepted headers: {', '.join(spellings)})",
            f"缺少必需列（可用列名：{'、'.join(spellings)}）", field=missing))


def _check_mixed(result: HeaderMap) -> None:
    """Two or more columns that another kind *requires* and this kind does not know: the file
    joins two ledgers side by side (reported once, for the kind it overlaps most). One stray
    column is only reported as foreign."""
    by_kind: dict[Kind, list[str]] = {}
    for raw, others in result.foreign.items():
        for other in others:
            if INDEX[other][header_key(raw)] in REQUIRED[other]:
                by_kind.setdefault(other, []).append(raw)
    if by_kind:
        other, raws = max(by_kind.items(), key=lambda item: len(item[1]))
        if len(raws) >= 2:
            result.problems.append(Invalid(
                f"columns {', '.join(raws)} belong to the {other} ledger: this file mixes two "
                f"ledgers; import each separately",
                f"列{'、'.join(raws)}属于{LABELS_ZH[other]}：文件混合了两种台账，请分别导入",
                field="header"))


def spelling_table(kind: Kind) -> Mapping[str, tuple[str, ...]]:
    """For help texts and error messages: canonical field → accepted headers."""
    return SPELLINGS[kind]
