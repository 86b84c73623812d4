"""Blank ledger templates (导入模板) and the column reference for the README.

A community that types into our template instead of its own spreadsheet leaves the reader
nothing to guess: each header is the first (Chinese) spelling of its field, required ones
marked "*" (which :func:`importers.columns.header_key` drops), and every column is formatted as
text, so Excel cannot turn an ID number into ``1.10105E+17``. The second sheet, 说明, explains
each column; :func:`markdown_maps` prints the same facts as Markdown for the README.

:data:`FIELDS` describes every field of :data:`importers.columns.SPELLINGS`; a test fails when a
column is added without a description. Examples are synthetic: one made-up ID number (region
110105, born 1990-01-01, sequence 123, a valid check character), placeholder names and a county
code (330199) that does not exist.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from importers.columns import LABELS_ZH, REQUIRED, SPELLINGS, Kind
from importers.reading import HEADER_SEARCH_ROWS
from importers.values import (
    CATEGORY,
    PLACEMENT_KIND,
    PLACEMENT_STATUS,
    REASON,
    RENTAL_STATUS,
    SEX,
    SOURCE,
    YES_NO,
)
from registry.validation import check_character

__all__ = ["FIELDS", "FieldDoc", "markdown_maps", "write_template"]


@dataclass(frozen=True)
class FieldDoc:
    zh: str  # what the column holds, for the 说明 sheet
    en: str
    format: str  # what may be typed, in Chinese
    example: str


def _one_of(table: Mapping[str, object]) -> str:
    """The first Chinese spelling of each value (在租/空置/停租), not every synonym."""
    first: dict[object, str] = {}
    for spelling, value in table.items():
        if not spelling.isascii():
            first.setdefault(value, spelling)
    return "填写其一：" + "/".join(first.values())


_ID17 = "110105" "19900101" "123"  # region, birth date, sequence
_EXAMPLE_ID = _ID17 + check_character(_ID17)

_TEXT = "文本"
_DATE = "日期：2024-03-01 / 2024/3/1 / 2024年3月1日"
_ID = "18位身份证号，末位可为X（设为文本格式）"
_PHONE = "11位手机号"
_CODE = "区划代码：6、9、12或15位数字（县、乡镇街道、社区、网格）"
_USERNAME = "系统用户名：3–64位字母、数字或 _ . -"

_PERSON = {
    "name": FieldDoc("姓名", "Full name", _TEXT, "张三"),
    "id_number": FieldDoc("公民身份号码", "National ID number", _ID, _EXAMPLE_ID),
    "sex": FieldDoc("性别", "Sex", _one_of(SEX), "男"),
    "birth_date": FieldDoc("出生日期", "Date of birth", _DATE, "1990-01-01"),
    "phone": FieldDoc("本人手机号", "Mobile phone number", _PHONE, "13800138000"),
}
_PLACE = {
    "jurisdiction_code": FieldDoc("所属社区或网格的区划代码",
                                  "Code of the community or grid the record belongs to",
                                  _CODE, "330199001001"),
    "address": FieldDoc("详细地址（路、号、幢、室）", "Full address (street, number, room)",
                        _TEXT, "东门路8号3幢402室"),
    "registered_on": FieldDoc("登记日期（空则为导入当天）", "Date registered (blank: today)",
                              _DATE, "2024-03-01"),
}
_LANDLORD = {
    "landlord_name": FieldDoc("房东姓名", "Landlord's full name", _TEXT, "李四"),
    "landlord_id_number": FieldDoc("房东身份证号", "Landlord's national ID number", _ID,
                                   _EXAMPLE_ID),
    "landlord_phone": FieldDoc("房东手机号", "Landlord's mobile phone number", _PHONE,
                               "13800138000"),
}

FIELDS: dict[Kind, dict[str, FieldDoc]] = {
    Kind.jurisdictions: {
        "code": FieldDoc("本辖区的区划代码", "The jurisdiction's own code", _CODE,
                         "330199001001"),
        "name": FieldDoc("辖区名称", "The jurisdiction's name", _TEXT, "东门社区"),
        "parent_code": FieldDoc("上级辖区的区划代码（县级留空）",
                                "Code of the parent jurisdiction (blank for the county)",
                                _CODE, "330199001"),
        "registration_deadline_days": FieldDoc(
            "流动人口登记时限（天；空则沿用上级或系统设置）",
            "Days allowed to register a new resident (blank: inherited)",
            "整数天数，0–365", "3"),
    },
    Kind.rentals: {
        **_PLACE,
        **_LANDLORD,
        "units": FieldDoc("出租户数（间数）", "Number of rental units or households",
                          "整数，1–10000", "2"),
        "status": FieldDoc("出租状态（空则为在租）", "Rental status (blank: active)",
                           _one_of(RENTAL_STATUS), "在租"),
        "pledge_signed_on": FieldDoc("治安责任保证书签订日期",
                                     "Date the security-responsibility pledge was signed",
                                     _DATE, "2024-03-01"),
        "pledge_valid_until": FieldDoc("保证书有效期至", "Last day the pledge is valid", _DATE,
                                       "2025-02-28"),
    },
    Kind.residents: {
        **_PERSON,
        **_PLACE,
        "landlord_name": _LANDLORD["landlord_name"],
        "landlord_phone": _LANDLORD["landlord_phone"],
        "hukou_address": FieldDoc("户籍地址", "Household-registration (hukou) address", _TEXT,
                                  "某省某县某镇某村"),
        "arrived_on": FieldDoc("来本地日期", "Date of arrival", _DATE, "2024-03-01"),
        "left_on": FieldDoc("离开日期（仍在住则留空）", "Date left (blank while still here)",
                            _DATE, "2024-09-30"),
        "reason": FieldDoc("居住事由", "Reason for living here", _one_of(REASON), "务工"),
        "occupation": FieldDoc("职业", "Occupation or source of income", _TEXT, "厨师"),
        "workplace": FieldDoc("工作单位或服务处所", "Employer or workplace", _TEXT,
                              "示例餐饮有限公司"),
        "permit_number": FieldDoc("居住证号", "Residence-permit number", _TEXT, "JZ20240001"),
        "permit_issued_on": FieldDoc("居住证签发日期", "Date the residence permit was issued",
                                     _DATE, "2024-03-15"),
        "permit_endorsed_on": FieldDoc("居住证最近签注日期",
                                       "Date of the permit's latest endorsement", _DATE,
                                       "2025-03-15"),
    },
    Kind.corrections: {
        **_PERSON,
        "jurisdiction_code": _PLACE["jurisdiction_code"],
        "category": FieldDoc("矫正类别", "Kind of community correction", _one_of(CATEGORY),
                             "缓刑"),
        "deciding_body": FieldDoc("决定机关（法院等）", "Court or authority that decided", _TEXT,
                                  "示例县人民法院"),
        "judgment_ref": FieldDoc("判决书或决定书编号", "Judgment or decision number", _TEXT,
                                 "(2024)示刑初1号"),
        "effective_on": FieldDoc("判决（决定）生效日期", "Date the judgment took effect", _DATE,
                                 "2024-03-01"),
        "supervision_start": FieldDoc("矫正起始日期", "First day of supervision", _DATE,
                                      "2024-03-01"),
        "supervision_end": FieldDoc("矫正结束日期", "Last day of supervision", _DATE,
                                    "2025-02-28"),
        "reported_on": FieldDoc("报到日期（应在生效后10日内）",
                                "Date the person reported (due within 10 days of effect)",
                                _DATE, "2024-03-08"),
        "check_in_interval_days": FieldDoc("报到周期（天；空则为7天）",
                                           "Days between check-ins (blank: 7)",
                                           "整数天数，1–90", "7"),
        "last_check_in_on": FieldDoc("最近一次报到日期", "Date of the latest check-in", _DATE,
                                     "2024-03-15"),
        "officer": FieldDoc("矫正负责人的系统用户名", "Supervising officer's username",
                            _USERNAME, "officer_01"),
        "juvenile": FieldDoc("犯罪时是否未成年（是则封存）",
                             "A minor at the offence (the record is sealed)", _one_of(YES_NO),
                             "否"),
    },
    Kind.releases: {
        **_PERSON,
        "jurisdiction_code": _PLACE["jurisdiction_code"],
        "source": FieldDoc("人员来源", "Released from prison or discharged from corrections",
                           _one_of(SOURCE), "刑满释放"),
        "released_on": FieldDoc("释放或解除矫正日期", "Date released or discharged", _DATE,
                                "2024-03-01"),
        "releasing_institution": FieldDoc("原服刑单位", "Prison or office released from", _TEXT,
                                          "示例监狱"),
        "placement_status": FieldDoc("安置情况", "Placement status", _one_of(PLACEMENT_STATUS),
                                     "已安置"),
        "placement_kind": FieldDoc("安置方式（已安置时填写）", "How placed (when placed)",
                                   _one_of(PLACEMENT_KIND), "就业"),
        "placed_on": FieldDoc("安置日期（已安置时填写；空则以导入日为准）",
                              "Date placed (when placed; blank: the import day)", _DATE,
                              "2024-05-01"),
        "measures_in_place": FieldDoc("帮教措施是否落实", "Aftercare measures in place",
                                      _one_of(YES_NO), "是"),
        "key_subject": FieldDoc("是否重点帮教对象", "A key aftercare subject", _one_of(YES_NO),
                                "否"),
    },
    Kind.coordinators: {
        "name": FieldDoc("协管员姓名", "Coordinator's full name", _TEXT, "王五"),
        "staff_number": FieldDoc("工号（名册的唯一编号）", "Staff number (the roster's key)",
                                 _USERNAME, "coord_001"),
        "jurisdiction_code": FieldDoc("负责的网格或社区的区划代码",
                                      "Code of the grid or community the coordinator covers",
                                      _CODE, "330199001001001"),
        "phone": _PERSON["phone"],
    },
}


def _header(kind: Kind, field: str) -> str:
    return SPELLINGS[kind][field][0] + ("*" if field in REQUIRED[kind] else "")


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _header_row(sheet: Worksheet, cells: list[str], widths: list[int]) -> None:
    sheet.append(cells)
    for column, width in enumerate(widths, start=1):
        sheet.cell(1, column).font = Font(bold=True)
        sheet.column_dimensions[get_column_letter(column)].width = min(width + 2, 60)
    sheet.freeze_panes = "A2"


def write_template(kind: Kind | str, path: str | Path) -> Path:
    """Write the blank XLSX template of ``kind`` to ``path``: the ledger sheet, then 说明."""
    kind, path = Kind(kind), Path(path)
    fields = list(SPELLINGS[kind])
    headers = [_header(kind, f) for f in fields]
    workbook = Workbook()

    ledger = workbook.active
    ledger.title = LABELS_ZH[kind]
    _header_row(ledger, headers, [max(_width(h), _width(FIELDS[kind][f].example), 10)
                                  for f, h in zip(fields, headers, strict=True)])
    for column in range(1, len(fields) + 1):
        # A column style is what Excel applies to the cells a person types into.
        ledger.column_dimensions[get_column_letter(column)].number_format = "@"

    notes = workbook.create_sheet("说明")
    _header_row(notes, ["列名", "是否必填", "说明", "格式", "示例", "可用列名",
                        "English description"], [14, 8, 30, 40, 20, 40, 40])
    for field, header in zip(fields, headers, strict=True):
        doc = FIELDS[kind][field]
        notes.append([header, "是" if field in REQUIRED[kind] else "否", doc.zh, doc.format,
                      doc.example, "、".join(SPELLINGS[kind][field]), doc.en])

    workbook.save(path)
    return path


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def markdown_maps() -> str:
    """The column maps of every kind as a Markdown section, for README.md."""
    lines = [
        "## Ledger columns (台账列名)",
        "",
        "Each ledger kind has its own column map. How a file's header is read:",
        "",
        f"- The header is the first row among the first {HEADER_SEARCH_ROWS} that names at "
        "least two columns of the ledger; title rows above it are skipped.",
        "- Header cells are compared after NFKC (full-width to half-width) and case folding, "
        "with a trailing bracketed note (`报到周期(天)`), spaces, `_`, `-`, `*` and a trailing "
        "colon dropped: `身份证号*`, `ＩＤ＿ＮＵＭＢＥＲ` and `id number` are one spelling.",
        "- Unknown columns are reported and ignored, never fatal. A missing required column, "
        "or two columns naming the same field, stops the whole file before any row is read.",
        "- Every cell is read as text. Format ID-number columns as text in Excel: an ID that "
        "Excel stored as a number has lost its last digits and is refused.",
        "- `importers.template.write_template(kind, path)` writes a blank XLSX template with "
        "these headers (required ones marked `*`), every column formatted as text, and a "
        "说明 sheet explaining each column.",
    ]
    for kind in Kind:
        lines += ["", f"### {kind.value} — {LABELS_ZH[kind]}", "",
                  "| field | required | accepted headers | format |",
                  "|---|---|---|---|"]
        for field, spellings in SPELLINGS[kind].items():
            required = "yes" if field in REQUIRED[kind] else "no"
            lines.append(f"| `{field}` | {required} | {_cell('、'.join(spellings))} "
                         f"| {_cell(FIELDS[kind][field].format)} |")
    return "\n".join(lines) + "\n"
