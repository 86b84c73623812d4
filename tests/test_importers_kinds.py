"""The ledger importer end to end, per kind: messy ledgers as the communities keep them (title
rows, Chinese headers, full-width digits, Excel's damage, old 15-digit IDs, every date
spelling, formulas, rows outside the importer's area) in every file format, through
:func:`importers.run.run_import` into the registry — and read back through the gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pytest

from importers.columns import INDEX, Kind, header_key
from importers.run import REJECTS_COLUMNS, Options, Summary, run_import
from registry.validation import check_character
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    GRID_A2,
    id_number,
    make_user,
)
from tests.ledgers import Excel, Sheet, read_rejects

PURPOSE = "台账导入核对"
FORMATS = ["utf8", "utf8-bom", "gbk", "xlsx"]
TITLES = [["东门社区台账（2026年5月）"], []]  # a merged title cell, then a blank row
ROLES = {Kind.jurisdictions: "admin", Kind.rentals: "police", Kind.residents: "police",
         Kind.corrections: "corrections", Kind.releases: "justice",
         Kind.coordinators: "police"}
MARCH_1 = date(2024, 3, 1)

# Messages the rejects file must carry (a distinctive part of the Chinese or English text).
EXCEL_DAMAGE = "15位之后的数字已丢失"
FORMULA = "公式"
OUT_OF_SCOPE = "不在您的管辖范围内"


# --- values as a clerk types them, and as Excel leaves them ----------------------------------


def full_width(text: str) -> str:
    return text.translate(str.maketrans("0123456789+", "０１２３４５６７８９＋"))


def legacy(seed: int, birth: str = "19850312") -> str:
    """The 15-digit form of ``id_number(seed, birth)``."""
    return f"{COUNTY}{birth[2:]}{seed % 1000:03d}"


def x_seed(start: int, birth: str = "19850312") -> int:
    """The first seed from ``start`` whose ID number ends in the check character X."""
    return next(s for s in range(start, start + 1000)
                if check_character(f"{COUNTY}{birth}{s % 1000:03d}") == "X")


def excel_damaged(number: str) -> Excel:
    """An ID number typed into a number column: a float in the workbook (15 significant digits
    kept), scientific notation once saved as CSV."""
    return Excel(float(number[:15] + "000"), f"{float(number):.5E}")


def serial(day: date) -> Excel:
    """A date as Excel's serial number (what a CSV export of a date cell sometimes holds)."""
    days = (day - date(1899, 12, 30)).days
    return Excel(days, str(days))


def as_datetime(day: date, text: str) -> Excel:
    """A real date cell in the workbook; ``text`` in a CSV."""
    return Excel(datetime(day.year, day.month, day.day), text)


def formula(text: str = "=A1") -> Excel:
    return Excel(text, text)


# --- running and checking ---------------------------------------------------------------------


def run(registry, user, kind: Kind, path, **options) -> Summary:
    return run_import(registry, user.actor, kind, path, Options(**options))


def counts(summary: Summary) -> dict[str, int]:
    return {k: getattr(summary, k) for k in ("read", "imported", "updated", "unchanged",
                                             "rejected")}


def expect(read: int = 0, imported: int = 0, updated: int = 0, unchanged: int = 0,
           rejected: int = 0) -> dict[str, int]:
    return {"read": read, "imported": imported, "updated": updated, "unchanged": unchanged,
            "rejected": rejected}


def rejects(summary: Summary) -> dict[int, dict[str, str]]:
    if summary.rejects_file is None:
        return {}
    rows = read_rejects(summary.rejects_file)
    by_row = {int(r["row"]): r for r in rows}
    assert len(by_row) == len(rows), "a row is rejected twice"
    return by_row


def assert_rejects(summary: Summary, expected: dict[int, tuple[str, str]]) -> None:
    """Exactly these rows rejected, each naming the field and a part of its reason."""
    found = rejects(summary)
    assert sorted(found) == sorted(expected), {n: (r["field"], r["en"]) for n, r in found.items()}
    for number, (field_name, fragment) in expected.items():
        row = found[number]
        assert row["field"] == field_name, (number, row)
        assert fragment in row["zh"] or fragment in row["en"], (number, row)


@dataclass
class Case:
    """A messy ledger and what importing it must give."""

    kind: Kind
    sheet: Sheet
    counts: dict[str, int]
    rejected: dict[int, tuple[str, str]]
    check: Callable  # (vault) → None: the good rows, read back through the gate
    unknown: list[str] = field(default_factory=lambda: ["备注"])


# --- rentals ----------------------------------------------------------------------------------

RENTAL_HEADER = ["社区代码", "房屋地址", "出租户数", "房东姓名", "房东身份证号", "房东电话",
                 "出租状态", "登记日期", "保证书签订日期", "保证书有效期至", "备注"]


def rentals_case() -> Case:
    s = Sheet(RENTAL_HEADER, titles=TITLES)
    wang, x, old, bad = id_number(101), id_number(x_seed(102)), legacy(103), id_number(104)
    s.add([GRID_A1, "东门路1号", "3", "王一明", full_width(wang), "+86 138 0013 8001", "在租",
           as_datetime(MARCH_1, "2024-03-01"), "2024/3/1", "2027年3月1日", "自建房"])
    s.add(["  " + GRID_A1 + " ", "  东门路2号  ", "２户", "  李四 ", x[:-1] + "x",
           full_width("139 0013 9002"), "空置", "2024年3月1日", "", "", ""])
    s.blank()
    s.add([full_width(GRID_A2), "东门路3号", Excel(2.0, "2"), "赵五", old,
           Excel(13700137003, "13700137003"), "", serial(MARCH_1),
           as_datetime(date(2024, 3, 2), "2024/3/2"), "2027-03-01", ""])
    damaged = s.add([GRID_A1, "东门路4号", "1", "钱六", excel_damaged(bad), "", "在租",
                     "2024-03-01", "", "", ""])
    s.add([GRID_A1, "东门路5号", "1", "王一明", wang, "13800138001", "在租", "2024-03-01", "",
           "", "第二处"])
    s.add([GRID_A1, "东门路1号", "3", "王一明", wang, "+8613800138001", "在租", "2024-03-01",
           "2024-03-01", "2027-03-01", "重复"])
    s.blank()
    formula_row = s.add([GRID_A1, "东门路7号", formula(), "孙七", id_number(107), "", "在租",
                         "2024-03-01", "", "", ""])
    outside = s.add([COMMUNITY_B, "西湖路8号", "1", "周八", id_number(108), "", "在租",
                     "2024-03-01", "", "", ""])
    s.blank()

    def check(vault):
        from registry.rentals.service import list_rentals
        page = list_rentals(vault, purpose=PURPOSE, page_size=100)
        by_address = {r.address: r for r in page.items}
        assert sorted(by_address) == ["东门路1号", "东门路2号", "东门路3号", "东门路5号"]
        first, second, third, fifth = (by_address[f"东门路{i}号"] for i in (1, 2, 3, 5))
        assert first.landlord.id_number == wang and first.landlord.phone == "13800138001"
        assert (first.units, first.status, first.registered_on) == (3, "active", MARCH_1)
        assert (first.pledge.signed_on, first.pledge.valid_until) == (MARCH_1,
                                                                      date(2027, 3, 1))
        assert first.jurisdiction_code == GRID_A1
        assert second.landlord.id_number == x and second.landlord.id_number.endswith("X")
        assert second.landlord.name == "李四" and second.landlord.phone == "13900139002"
        assert (second.units, second.status, second.pledge) == (2, "vacant", None)
        assert second.jurisdiction_code == GRID_A1
        assert third.landlord.id_number == id_number(103) and len(id_number(103)) == 18
        assert third.jurisdiction_code == GRID_A2 and third.registered_on == MARCH_1
        assert third.units == 2 and third.landlord.phone == "13700137003"
        assert third.pledge.signed_on == date(2024, 3, 2)
        assert fifth.landlord.id == first.landlord.id  # one landlord, two rentals

    return Case(Kind.rentals, s, expect(read=8, imported=4, unchanged=1, rejected=3), {
        damaged: ("landlord_id_number", EXCEL_DAMAGE),
        formula_row: ("units", FORMULA),
        outside: ("jurisdiction_code", OUT_OF_SCOPE),
    }, check)



# --- residents --------------------------------------------------------------------------------

RESIDENT_HEADER = ["姓名", "身份证号", "性别", "出生日期", "联系电话", "社区代码", "现住址",
                   "来本地日期", "登记日期", "居住事由", "备注"]


def residents_case() -> Case:
    s = Sheet(RESIDENT_HEADER, titles=TITLES)
    zhang, x, bad = id_number(201), id_number(x_seed(202)), id_number(204)
    first = s.add(["张三", full_width(zhang), "男", "1985/3/12", "+86 138 0013 8201", GRID_A1,
                   "东门路21号", "2024-03-01", "2024/3/1", "务工", "厂里宿舍"])
    s.add(["  李娜  ", x[:-1] + "x", "", "", full_width("139 0013 9202"), " " + GRID_A1,
           " 东门路22号 ", "2024年3月1日", serial(date(2024, 3, 2)), "经商", ""])
    s.blank()
    s.add(["赵六", Excel(float(legacy(203)), legacy(203)), "男",
           as_datetime(date(1985, 3, 12), "1985年3月12日"),
           Excel(13700137203, "13700137203"), full_width(GRID_A2), "东门路23号", serial(MARCH_1),
           as_datetime(date(2024, 3, 2), "2024-03-02"), "", ""])
    damaged = s.add(["钱七", excel_damaged(bad), "", "", "", GRID_A1, "东门路24号", "2024-03-01",
                     "2024-03-01", "", ""])
    again = s.add(["张三", zhang, "男", "", "13800138201", GRID_A1, "东门路25号", "2024-03-01",
                   "2024-03-01", "务工", "同一人第二次"])
    s.blank()
    formula_row = s.add(["孙八", id_number(206), "", "", "", GRID_A1, formula("=B4"),
                         "2024-03-01", "2024-03-01", "", ""])
    outside = s.add(["周九", id_number(207), "", "", "", COMMUNITY_B, "西湖路27号", "2024-03-01",
                     "2024-03-01", "", ""])
    s.blank()

    def check(vault):
        from registry.residents.schemas import ResidentSearch
        from registry.residents.service import list_residents, search
        page = list_residents(vault, purpose=PURPOSE, page_size=100)
        by_id = {r.person.id_number: r for r in page.items}
        assert sorted(by_id) == sorted([zhang, x, id_number(203)])
        one, two, three = by_id[zhang], by_id[x], by_id[id_number(203)]
        assert (one.person.name, one.phone, one.address) == ("张三", "13800138201", "东门路21号")
        assert (one.arrived_on, one.registered_on, one.reason) == (MARCH_1, MARCH_1, "work")
        assert one.jurisdiction_code == GRID_A1 and one.person.sex == "M"
        assert two.person.id_number.endswith("X") and two.person.name == "李娜"
        assert (two.phone, two.address, two.reason) == ("13900139202", "东门路22号", "business")
        assert (two.arrived_on, two.registered_on) == (MARCH_1, date(2024, 3, 2))
        assert len(three.person.id_number) == 18 and three.jurisdiction_code == GRID_A2
        assert (three.arrived_on, three.phone, three.reason) == (MARCH_1, "13700137203", "other")
        assert three.person.birth_date == date(1985, 3, 12)
        # The phone's blind index is over the normalised number: "+86 138 0013 8201" is found.
        found = search(vault, ResidentSearch(phone="13800138201"), purpose=PURPOSE)
        assert [r.id for r in found] == [one.id]

    return Case(Kind.residents, s, expect(read=7, imported=3, rejected=4), {
        damaged: ("id_number", EXCEL_DAMAGE),
        again: ("id_number", f"已在本文件第{first}行出现"),
        formula_row: ("address", FORMULA),
        outside: ("jurisdiction_code", OUT_OF_SCOPE),
    }, check)


# --- corrections ------------------------------------------------------------------------------

CORRECTIONS_HEADER = ["姓名", "身份证号", "联系电话", "社区代码", "矫正类别", "决定机关",
                      "判决书号", "生效日期", "矫正起始日期", "矫正结束日期", "报到日期", "备注"]


def corrections_case() -> Case:
    s = Sheet(CORRECTIONS_HEADER, titles=TITLES)
    chen, x, bad = id_number(301), id_number(x_seed(302)), id_number(304)
    court = "东城区人民法院"
    s.add(["陈一", full_width(chen), "+86 138 0013 8301", GRID_A1, "缓刑", court,
           "（2024）东刑初1号", "2024-03-01", "2024/3/1", "2026年12月31日",
           serial(date(2024, 3, 5)), "备注一"])
    s.add(["  林二 ", x[:-1] + "x", full_width("139 0013 9302"), COMMUNITY_A, " 假释 ",
           "  东城区人民法院 ", "(2024)东刑初2号", "2024年3月1日",
           as_datetime(MARCH_1, "2024/03/01"), "2027-03-01", "", ""])
    s.blank()
    s.add(["何三", legacy(303), Excel(13700137303, "13700137303"), full_width(GRID_A2), "管制",
           court, "(2024)东刑初3号", serial(MARCH_1), "2024-03-01", "2025-03-01", "2024-03-02",
           ""])
    damaged = s.add(["钱四", excel_damaged(bad), "", GRID_A1, "缓刑", court, "(2024)东刑初4号",
                     "2024-03-01", "2024-03-01", "2026-03-01", "", ""])
    s.add(["陈一", chen, "13800138301", GRID_A1, "probation", court, "（2024）东刑初1号",
           "2024-03-01", "2024-03-01", "2026-12-31", "2024-03-05", "重复一行"])
    s.blank()
    formula_row = s.add(["孙六", id_number(306), "", GRID_A1, "缓刑", court, formula("=G4"),
                         "2024-03-01", "2024-03-01", "2026-03-01", "", ""])
    outside = s.add(["周七", id_number(307), "", COMMUNITY_B, "缓刑", court, "(2024)东刑初7号",
                     "2024-03-01", "2024-03-01", "2026-03-01", "", ""])

    def check(vault):
        page = vault.corrections.list(jurisdiction=None, status=None, category=None, page=1,
                                      page_size=100, purpose=PURPOSE)
        by_id = {c.person.id_number: c for c in page.items}
        assert sorted(by_id) == sorted([chen, x, id_number(303)])
        one, two, three = by_id[chen], by_id[x], by_id[id_number(303)]
        assert (one.person.name, one.phone, one.category) == ("陈一", "13800138301", "probation")
        assert (one.effective_on, one.supervision_start) == (MARCH_1, MARCH_1)
        assert (one.supervision_end, one.reported_on) == (date(2026, 12, 31), date(2024, 3, 5))
        assert one.status == "active" and one.judgment_ref == "(2024)东刑初1号"
        assert one.deciding_body == court and one.jurisdiction_code == GRID_A1
        assert two.person.id_number.endswith("X") and two.person.name == "林二"
        assert (two.phone, two.category, two.deciding_body) == ("13900139302", "parole", court)
        assert two.reported_on is None and two.status == "awaiting_report"
        assert two.jurisdiction_code == COMMUNITY_A
        assert len(three.person.id_number) == 18 and three.jurisdiction_code == GRID_A2
        assert (three.category, three.effective_on, three.phone) == ("control", MARCH_1,
                                                                     "13700137303")

    return Case(Kind.corrections, s, expect(read=7, imported=3, unchanged=1, rejected=3), {
        damaged: ("id_number", EXCEL_DAMAGE),
        formula_row: ("judgment_ref", FORMULA),
        outside: ("jurisdiction_code", OUT_OF_SCOPE),
    }, check)


# --- releases ---------------------------------------------------------------------------------

RELEASE_HEADER = ["姓名", "身份证号", "联系电话", "社区代码", "人员来源", "释放日期",
                  "原服刑单位", "安置情况", "安置方式", "安置日期", "帮教措施落实", "重点帮教对象",
                  "备注"]


def releases_case() -> Case:
    s = Sheet(RELEASE_HEADER, titles=TITLES)
    wu, x, bad = id_number(401), id_number(x_seed(402)), id_number(404)
    s.add(["吴一", full_width(wu), "+86 138 0013 8401", GRID_A1, "刑满释放", "2024-03-01",
           "省第一监狱", "已安置", "就业", "2024/3/15", "是", "否", "备注"])
    s.add([" 郑二  ", x[:-1] + "x", full_width("139 0013 9402"), " " + GRID_A2, "解除矫正",
           "2024年3月1日", "  东城区司法局 ", "未安置", "", "", "否", "是", ""])
    s.blank()
    s.add(["冯三", legacy(403), Excel(13700137403, "13700137403"), full_width(COMMUNITY_A), "",
           serial(MARCH_1), "市看守所", "", "", "", "", "", ""])
    damaged = s.add(["钱四", excel_damaged(bad), "", GRID_A1, "", "2024-03-01", "省第一监狱",
                     "", "", "", "", "", ""])
    s.add(["吴一", wu, "13800138401", GRID_A1, "prison", as_datetime(MARCH_1, "2024/3/1"),
           "省第一监狱", "已安置", "就业", "2024-03-15", "是", "否", "重复一行"])
    s.blank()
    formula_row = s.add(["孙六", id_number(406), "", GRID_A1, "", "2024-03-01", formula("=G4"),
                         "", "", "", "", "", ""])
    outside = s.add(["周七", id_number(407), "", COMMUNITY_B, "", "2024-03-01", "省第一监狱",
                     "", "", "", "", "", ""])

    def check(vault):
        page = vault.releases.list(jurisdiction=None, open_only=None, placement_status=None,
                                   measures_in_place=None, needs_action=False, page=1,
                                   page_size=100, purpose=PURPOSE)
        by_id = {c.person.id_number: c for c in page.items}
        assert sorted(by_id) == sorted([wu, x, id_number(403)])
        one, two, three = by_id[wu], by_id[x], by_id[id_number(403)]
        assert (one.person.name, one.phone, one.source) == ("吴一", "13800138401", "prison")
        assert (one.released_on, one.releasing_institution) == (MARCH_1, "省第一监狱")
        assert (one.placement_status, one.placement_kind) == ("placed", "employment")
        assert one.placed_on == date(2024, 3, 15)
        assert (one.measures_in_place, one.key_subject, one.open) == (True, False, True)
        assert two.person.id_number.endswith("X") and two.person.name == "郑二"
        assert (two.phone, two.source, two.releasing_institution) == (
            "13900139402", "corrections", "东城区司法局")
        assert (two.placement_status, two.measures_in_place, two.key_subject) == (
            "not_yet", False, True)
        assert two.jurisdiction_code == GRID_A2
        assert len(three.person.id_number) == 18 and three.jurisdiction_code == COMMUNITY_A
        assert (three.released_on, three.source, three.phone) == (MARCH_1, "prison",
                                                                  "13700137403")

    return Case(Kind.releases, s, expect(read=7, imported=3, unchanged=1, rejected=3), {
        damaged: ("id_number", EXCEL_DAMAGE),
        formula_row: ("releasing_institution", FORMULA),
        outside: ("jurisdiction_code", OUT_OF_SCOPE),
    }, check)


# --- coordinators -----------------------------------------------------------------------------

COORDINATOR_HEADER = ["协管员姓名", "工号", "社区代码", "联系电话", "备注"]


def coordinators_case() -> Case:
    s = Sheet(COORDINATOR_HEADER, titles=TITLES)
    s.add(["  周一 ", " XG001 ", GRID_A1, "+86 138 0013 8501", "夜班"])
    s.add(["吴二", full_width("0502"), " " + COMMUNITY_A, full_width("139 0013 9502"), ""])
    s.blank()
    s.add(["郑三", Excel(503, "503"), full_width(GRID_A2), Excel(13700137503.0, "13700137503"),
           ""])
    s.add(["周一", "XG001", GRID_A1, "13800138501", "重复一行"])
    bad_phone = s.add(["王四", "XG004", GRID_A1, "1.38001E+10", ""])
    s.blank()
    formula_row = s.add([formula("=A4"), "XG005", GRID_A1, "", ""])
    outside = s.add(["冯六", "XG006", COMMUNITY_B, "", ""])

    def check(vault):
        page = vault.coordinators.list(jurisdiction=None, page=1, page_size=100,
                                       purpose=PURPOSE)
        by_number = {c.staff_number: c for c in page.items}
        assert sorted(by_number) == ["0502", "503", "XG001"]
        assert (by_number["XG001"].name, by_number["XG001"].phone) == ("周一", "13800138501")
        assert by_number["XG001"].jurisdiction_code == GRID_A1
        assert (by_number["0502"].name, by_number["0502"].phone) == ("吴二", "13900139502")
        assert by_number["0502"].jurisdiction_code == COMMUNITY_A
        assert (by_number["503"].phone, by_number["503"].jurisdiction_code) == ("13700137503",
                                                                                GRID_A2)

    return Case(Kind.coordinators, s, expect(read=7, imported=3, unchanged=1, rejected=3), {
        bad_phone: ("phone", "手机号码"),
        formula_row: ("name", FORMULA),
        outside: ("jurisdiction_code", OUT_OF_SCOPE),
    }, check)


# --- jurisdictions ----------------------------------------------------------------------------

JURISDICTION_HEADER = ["区划代码", "名称", "上级代码", "登记时限（天）", "备注"]
GRID_A3, GRID_A4, GRID_A5 = "330199001001003", "330199001001004", "330199001001005"


def jurisdictions_case() -> Case:
    s = Sheet(JURISDICTION_HEADER, titles=TITLES)
    s.add([full_width(GRID_A3), " 东门第三网格 ", COMMUNITY_A, "7天", "新建"])
    s.add([Excel(float(GRID_A4), GRID_A4), "东门第四网格", full_width(COMMUNITY_A),
           Excel(10, "10"), ""])
    s.blank()
    s.add([GRID_A1, "东门第一网格", COMMUNITY_A, "", ""])
    s.add([GRID_A3, "东门第三网格", COMMUNITY_A, "7", "重复一行"])
    formula_row = s.add(["330199001001006", formula("=B4"), COMMUNITY_A, "", ""])
    bad_code = s.add(["33019900100", "某网格", COMMUNITY_A, "", ""])
    s.blank()
    wrong_parent = s.add([GRID_A5, "东门第五网格", "330199001", "", ""])
    renamed = s.add([COMMUNITY_A, "东门社区居委会", "330199001", "", ""])

    def check(vault):
        from registry.errors import NotFound
        three, four = vault.jurisdictions.get(GRID_A3), vault.jurisdictions.get(GRID_A4)
        assert (three.name, three.parent_code, three.level) == ("东门第三网格", COMMUNITY_A,
                                                                "grid")
        assert (four.name, four.parent_code) == ("东门第四网格", COMMUNITY_A)
        assert vault.jurisdictions.deadline_days(GRID_A3) == 7
        assert vault.jurisdictions.deadline_days(GRID_A4) == 10
        assert vault.jurisdictions.get(COMMUNITY_A).name == "东门社区"
        for absent in (GRID_A5, "330199001001006"):
            with pytest.raises(NotFound):
                vault.jurisdictions.get(absent)

    return Case(Kind.jurisdictions, s, expect(read=8, imported=2, unchanged=2, rejected=4), {
        formula_row: ("name", FORMULA),
        bad_code: ("code", "格式不正确"),
        wrong_parent: ("parent_code", COMMUNITY_A),
        renamed: ("name", "--update"),
    }, check)


CASES = {Kind.jurisdictions: jurisdictions_case, Kind.rentals: rentals_case,
         Kind.residents: residents_case, Kind.corrections: corrections_case,
         Kind.releases: releases_case, Kind.coordinators: coordinators_case}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", list(CASES), ids=str)
def test_a_messy_ledger(registry, tmp_path, kind, fmt):
    case = CASES[kind]()
    user = make_user(registry, None, ROLES[kind], COMMUNITY_A)
    path = case.sheet.write(tmp_path, fmt)
    summary = run(registry, user, kind, path)
    assert summary.error is None, summary.error
    assert summary.header_row == len(TITLES) + 1
    assert summary.unknown_columns == case.unknown
    assert counts(summary) == case.counts
    assert summary.committed
    assert_rejects(summary, case.rejected)
    assert Path(summary.rejects_file).stat().st_mode & 0o777 == 0o600  # it holds personal data
    with registry.vault(user.actor) as vault:
        case.check(vault)
    # The same file again: every good row is found as it was written, whatever its spelling.
    again = run(registry, user, kind, path)
    assert counts(again) == expect(read=case.counts["read"], rejected=case.counts["rejected"],
                                   unchanged=case.counts["imported"] + case.counts["unchanged"])
    assert_rejects(again, case.rejected)
    with registry.vault(user.actor) as vault:
        case.check(vault)


# --- the same steps for every kind: re-run, change, update, dry run, all or nothing ------------

NAMES = "一二三四五六七八九十"


@dataclass
class Simple:
    """A clean ledger of ``rows`` records; ``column`` is the fact that a second file changes
    (``old`` → ``new`` in the cell, ``before`` → ``after`` read back as ``field``), ``missing``
    a required column to leave out."""

    header: list[str]
    row: Callable[[int], list]
    key: Callable[[int], object]
    read: Callable  # (vault) → {key: the tracked field's value}
    column: str
    field: str
    old: str
    new: str
    before: object
    after: object
    missing: str  # the header of a required column

    def sheet(self, count: int = 3, *, change: int | None = None, extra=()) -> Sheet:
        s = Sheet(self.header, titles=TITLES)
        for i in range(count):
            cells = dict(zip(self.header, self.row(i), strict=True))
            cells[self.column] = self.new if i == change else self.old
            s.add(cells)
        for cells in extra:
            s.add(cells)
        return s

    def without_required(self) -> Sheet:
        header = [h for h in self.header if h != self.missing]
        s = Sheet(header)
        for i in range(2):
            cells = dict(zip(self.header, self.row(i), strict=True))
            cells[self.column] = self.old
            s.add([cells[h] for h in header])
        return s


def _rentals_read(vault):
    from registry.rentals.service import list_rentals
    return {r.address: r.units for r in list_rentals(vault, purpose=PURPOSE,
                                                     page_size=100).items}


def _residents_read(vault):
    from registry.residents.service import list_residents
    return {r.person.id_number: r.phone for r in list_residents(vault, purpose=PURPOSE,
                                                                page_size=100).items}


def _corrections_read(vault):
    return {c.person.id_number: c.supervision_end for c in vault.corrections.list(
        jurisdiction=None, status=None, category=None, page=1, page_size=100,
        purpose=PURPOSE).items}


def _releases_read(vault):
    return {c.person.id_number: c.measures_in_place for c in vault.releases.list(
        jurisdiction=None, open_only=None, placement_status=None, measures_in_place=None,
        needs_action=False, page=1, page_size=100, purpose=PURPOSE).items}


def _coordinators_read(vault):
    return {c.staff_number: c.phone for c in vault.coordinators.list(
        jurisdiction=None, page=1, page_size=100, purpose=PURPOSE).items}


def _jurisdictions_read(vault):
    return {j.code: j.name for j in vault.jurisdictions.children(COMMUNITY_A)
            if j.code not in (GRID_A1, "330199001001002")}


SIMPLE = {
    Kind.rentals: Simple(
        ["社区代码", "房屋地址", "出租户数", "房东姓名", "房东身份证号", "房东电话", "登记日期"],
        lambda i: [GRID_A1, f"幸福路{i}号", "", f"王{NAMES[i]}", id_number(600 + i),
                   f"138001386{i:02d}", "2024-03-01"],
        lambda i: f"幸福路{i}号", _rentals_read, "出租户数", "units", "2", "5户", 2, 5,
        "房东身份证号"),
    Kind.residents: Simple(
        ["姓名", "身份证号", "联系电话", "社区代码", "现住址", "来本地日期", "登记日期"],
        lambda i: [f"张{NAMES[i]}", id_number(610 + i), "", GRID_A1, f"幸福路{i}号",
                   "2024-03-01", "2024-03-01"],
        lambda i: id_number(610 + i), _residents_read, "联系电话", "phone", "13900139610",
        "+86 136 0013 6610", "13900139610", "13600136610", "来本地日期"),
    Kind.corrections: Simple(
        ["姓名", "身份证号", "社区代码", "矫正类别", "决定机关", "判决书号", "生效日期",
         "矫正起始日期", "矫正结束日期"],
        lambda i: [f"陈{NAMES[i]}", id_number(620 + i), GRID_A1, "缓刑", "东城区人民法院",
                   f"(2024)东刑初{620 + i}号", "2024-03-01", "2024-03-01", ""],
        lambda i: id_number(620 + i), _corrections_read, "矫正结束日期", "supervision_end",
        "2026-12-31", "2027年6月30日", date(2026, 12, 31), date(2027, 6, 30),
        "判决书号"),
    Kind.releases: Simple(
        ["姓名", "身份证号", "社区代码", "释放日期", "原服刑单位", "帮教措施落实"],
        lambda i: [f"吴{NAMES[i]}", id_number(630 + i), GRID_A1, "2024-03-01", "省第一监狱",
                   ""],
        lambda i: id_number(630 + i), _releases_read, "帮教措施落实", "measures_in_place",
        "否", "是", False, True, "原服刑单位"),
    Kind.coordinators: Simple(
        ["协管员姓名", "工号", "社区代码", "联系电话"],
        lambda i: [f"周{NAMES[i]}", f"XG64{i}", GRID_A1, ""],
        lambda i: f"XG64{i}", _coordinators_read, "联系电话", "phone", "13800138640",
        "１３６ ００１３ ６６４０", "13800138640", "13600136640", "工号"),
    Kind.jurisdictions: Simple(
        ["区划代码", "名称", "上级代码"],
        lambda i: [f"330199001001{650 + i}", "", COMMUNITY_A],
        lambda i: f"330199001001{650 + i}", _jurisdictions_read, "名称", "name", "东门网格",
        "东门新网格", "东门网格", "东门新网格", "名称"),
}
KINDS = list(SIMPLE)


def field_of(kind: Kind, header: str) -> str:
    return INDEX[kind][header_key(header)]


def _values(simple: Simple, registry, user) -> dict:
    with registry.vault(user.actor) as vault:
        return simple.read(vault)


def _all(simple: Simple, value, count: int = 3) -> dict:
    return {simple.key(i): value for i in range(count)}


@pytest.mark.parametrize("fmt", ["gbk", "xlsx"])
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_second_run_finds_every_row_unchanged(registry, tmp_path, kind, fmt):
    simple, user = SIMPLE[kind], make_user(registry, None, ROLES[kind], COMMUNITY_A)
    path = simple.sheet().write(tmp_path, fmt)
    assert counts(run(registry, user, kind, path)) == expect(read=3, imported=3)
    again = run(registry, user, kind, path)
    assert counts(again) == expect(read=3, unchanged=3)
    assert again.committed and again.rejects_file is None and again.error is None
    assert _values(simple, registry, user) == _all(simple, simple.before)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_changed_fact_is_rejected_unless_update(registry, tmp_path, kind):
    simple, user = SIMPLE[kind], make_user(registry, None, ROLES[kind], COMMUNITY_A)
    run(registry, user, kind, simple.sheet().write(tmp_path, "utf8", "first"))
    changed = simple.sheet(change=1)
    path = changed.write(tmp_path, "xlsx", "second")
    refused = run(registry, user, kind, path)
    assert counts(refused) == expect(read=3, unchanged=2, rejected=1)
    assert_rejects(refused, {changed.header_row + 2: (simple.field, "--update")})
    assert simple.field in rejects(refused)[changed.header_row + 2]["en"]
    assert _values(simple, registry, user) == _all(simple, simple.before)

    updated = run(registry, user, kind, path, update=True)
    assert counts(updated) == expect(read=3, updated=1, unchanged=2)
    assert updated.committed and updated.rejects_file is None
    assert _values(simple, registry, user) == {**_all(simple, simple.before),
                                               simple.key(1): simple.after}
    assert counts(run(registry, user, kind, path)) == expect(read=3, unchanged=3)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_dry_run_counts_but_writes_nothing(registry, tmp_path, kind):
    simple, user = SIMPLE[kind], make_user(registry, None, ROLES[kind], COMMUNITY_A)
    bad = dict(zip(simple.header, simple.row(3), strict=True))
    bad[simple.header[1]] = formula()
    path = simple.sheet(extra=[bad]).write(tmp_path, "xlsx")
    dry = run(registry, user, kind, path, dry_run=True)
    assert counts(dry) == expect(read=4, imported=3, rejected=1)
    assert dry.mode == "dry-run" and not dry.committed and dry.error is None
    assert _values(simple, registry, user) == {}
    # Nothing of the dry run lingers: the real run finds the same rows new.
    real = run(registry, user, kind, path)
    assert counts(real) == expect(read=4, imported=3, rejected=1) and real.committed
    assert _values(simple, registry, user) == _all(simple, simple.before)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_all_or_nothing_writes_nothing_when_a_row_is_rejected(registry, tmp_path, kind):
    simple, user = SIMPLE[kind], make_user(registry, None, ROLES[kind], COMMUNITY_A)
    bad = dict(zip(simple.header, simple.row(3), strict=True))
    bad[simple.header[1]] = formula()
    sheet = simple.sheet(extra=[bad])
    refused = run(registry, user, kind, sheet.write(tmp_path, "utf8-bom"), all_or_nothing=True,
                  batch_rows=2)
    # The counts say what the file would have done; none of it is written.
    assert counts(refused) == expect(read=4, imported=3, rejected=1) and refused.batches == 2
    assert not refused.committed and refused.mode == "all-or-nothing"
    assert_rejects(refused, {sheet.header_row + 4: (field_of(kind, simple.header[1]), FORMULA)})
    assert _values(simple, registry, user) == {}

    whole = run(registry, user, kind, simple.sheet().write(tmp_path, "utf8-bom", "clean"),
                all_or_nothing=True, batch_rows=2)
    assert counts(whole) == expect(read=3, imported=3) and whole.committed
    assert _values(simple, registry, user) == _all(simple, simple.before)


@pytest.mark.parametrize("fmt", ["utf8", "xlsx"])
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_missing_required_column_stops_the_file(registry, tmp_path, kind, fmt):
    simple, user = SIMPLE[kind], make_user(registry, None, ROLES[kind], COMMUNITY_A)
    summary = run(registry, user, kind, simple.without_required().write(tmp_path, fmt))
    header, field_name = simple.missing, field_of(kind, simple.missing)
    assert summary.error is not None and summary.error["field"] == field_name
    assert header in summary.error["message_zh"]
    assert summary.read == 0 and summary.imported == 0 and not summary.committed
    assert _values(simple, registry, user) == {}


# --- headers in English, several batches, a file that stops half-way ---------------------------


def test_english_headers(registry, tmp_path):
    user = make_user(registry, None, "police", COMMUNITY_A)
    s = Sheet(["Name", "ID Number", "Sex", "Birth Date", "Phone", "Jurisdiction Code",
               "Address", "Arrived On", "Registered On", "Reason", "Remarks"],
              titles=[["Residents ledger, May 2026"]])
    s.add(["Zhang San", id_number(701), "male", "1985-03-12", "+86 13800138701", GRID_A1,
           "No. 1 Dongmen Road", "2024/3/1", "2024-03-02", "work", "note"])
    s.add(["Li Si", legacy(702), "F", "", "", GRID_A1, "No. 2 Dongmen Road", "2024-03-01", "",
           "family", ""])
    summary = run(registry, user, Kind.residents, s.write(tmp_path, "xlsx"))
    assert counts(summary) == expect(read=2, imported=2) and summary.header_row == 2
    assert summary.unknown_columns == ["Remarks"]
    with registry.vault(user.actor) as vault:
        from registry.residents.service import list_residents
        by_id = {r.person.id_number: r for r in list_residents(vault, purpose=PURPOSE).items}
    zhang, li = by_id[id_number(701)], by_id[id_number(702)]
    assert (zhang.person.name, zhang.phone, zhang.reason) == ("Zhang San", "13800138701", "work")
    assert (zhang.arrived_on, zhang.registered_on) == (MARCH_1, date(2024, 3, 2))
    assert (li.person.sex, li.reason, li.registered_on) == ("F", "family", FIXED_NOW.date())


def test_small_batches_commit_one_by_one_and_find_a_person_seen_batches_ago(registry, tmp_path):
    from sqlalchemy import func, select

    from registry.models import AuditEvent
    user = make_user(registry, None, "police", COMMUNITY_A)
    s = Sheet(SIMPLE[Kind.residents].header)
    rows = {}
    for i, seed in enumerate([711, 712, 713, 711, 714, None, 715, 712]):
        if seed is None:
            s.blank()
            continue
        rows[i] = s.add([f"张{NAMES[seed % 10]}", id_number(seed), "", GRID_A1,
                         f"幸福路{seed}号", "2024-03-01", "2024-03-01"])

    def import_events() -> int:
        with registry.db.session() as session:
            return session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "import"))

    before = import_events()
    summary = run(registry, user, Kind.residents, s.write(tmp_path, "gbk"), batch_rows=2)
    assert counts(summary) == expect(read=7, imported=5, rejected=2)
    assert summary.batches == 4 and summary.committed
    assert import_events() - before == 4  # one audit event per batch
    assert_rejects(summary, {rows[3]: ("id_number", f"第{rows[0]}行"),
                             rows[7]: ("id_number", f"第{rows[1]}行")})
    with registry.vault(user.actor) as vault:
        assert set(_residents_read(vault)) == {id_number(n) for n in (711, 712, 713, 714, 715)}


@pytest.mark.parametrize("kind", [Kind.rentals, Kind.residents], ids=str)
def test_a_file_that_stops_half_way_keeps_its_committed_batches(registry, tmp_path, kind):
    simple, user = SIMPLE[kind], make_user(registry, None, ROLES[kind], COMMUNITY_A)
    full = simple.sheet(count=5)
    full.blank()
    stacked = full.add(["姓名", "身份证号", "社区代码", "释放日期", "原服刑单位"])
    full.add(["吴一", id_number(720), GRID_A1, "2024-03-01", "省第一监狱"])
    summary = run(registry, user, kind, full.write(tmp_path, "utf8"), batch_rows=2)
    assert summary.error is not None and summary.error["row"] == stacked
    assert "two ledgers" in summary.error["message"]
    assert summary.committed and summary.imported == 4 and summary.read == 4
    assert set(_values(simple, registry, user)) == {simple.key(i) for i in range(4)}
    # Re-run without the second ledger: what landed is unchanged, the rest goes in.
    rest = run(registry, user, kind, simple.sheet(count=5).write(tmp_path, "utf8", "fixed"),
               batch_rows=2)
    assert counts(rest) == expect(read=5, imported=1, unchanged=4) and rest.error is None
    assert _values(simple, registry, user) == _all(simple, simple.before, 5)


def test_the_rejects_file_once_fixed_imports(registry, tmp_path):
    user = make_user(registry, None, "police", COMMUNITY_A)
    s = Sheet(RENTAL_HEADER[:6])
    s.add([GRID_A1, "甲路1号", "1", "王一", id_number(731), "13800138731"])
    s.add([COMMUNITY_B, "甲路2号", "2", "王二", id_number(732), "13800138732"])
    first = run(registry, user, Kind.rentals, s.write(tmp_path, "xlsx"))
    assert counts(first) == expect(read=2, imported=1, rejected=1)
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(Path(first.rejects_file).read_text(encoding="utf-8-sig")
                     .replace(COMMUNITY_B, GRID_A2), encoding="utf-8-sig")
    second = run(registry, user, Kind.rentals, fixed)
    assert counts(second) == expect(read=1, imported=1), rejects(second)
    assert second.unknown_columns == list(REJECTS_COLUMNS)
    assert _values(SIMPLE[Kind.rentals], registry, user) == {"甲路1号": 1, "甲路2号": 2}


# --- bugs found while writing these tests, and fixed ------------------------------------------


def test_a_jurisdictions_ledger_stays_in_the_admins_area(registry, tmp_path):
    from registry.errors import NotFound
    from tests.conftest import TOWN
    admin = make_user(registry, None, "admin", COMMUNITY_A)
    s = Sheet(JURISDICTION_HEADER)
    new_b = s.add(["330199001002009", "西湖第九网格", COMMUNITY_B, "", ""])
    renamed_b = s.add([COMMUNITY_B, "西湖社区改名", TOWN, "", ""])
    new_town = s.add(["330199001003", "新社区", TOWN, "", ""])
    inside = s.add([GRID_A3, "东门第三网格", COMMUNITY_A, "", ""])
    summary = run(registry, admin, Kind.jurisdictions, s.write(tmp_path, "utf8"), update=True)
    with registry.vault(admin.actor) as vault:
        assert vault.jurisdictions.get(COMMUNITY_B).name == "西湖社区"
        for code in ("330199001002009", "330199001003"):
            with pytest.raises(NotFound):
                vault.jurisdictions.get(code)
        assert vault.jurisdictions.get(GRID_A3).name == "东门第三网格"
    assert counts(summary) == expect(read=4, imported=1, rejected=3)
    assert_rejects(summary, {n: ("code", OUT_OF_SCOPE) for n in (new_b, renamed_b, new_town)})
    assert inside not in rejects(summary)


def _pledge_in_wrong_order(registry, tmp_path):
    s = Sheet(RENTAL_HEADER)
    row = s.add([GRID_A1, "甲路1号", "1", "王一", id_number(741), "", "", "", "2024-03-01",
                 "2024-02-01", ""])
    return "police", Kind.rentals, s, row, "pledge_valid_until"


def _landlord_under_another_name(registry, tmp_path):
    s = Sheet(RENTAL_HEADER[:5])
    s.add([GRID_A1, "甲路1号", "1", "王一", id_number(742)])
    row = s.add([GRID_A1, "甲路2号", "1", "王二", id_number(742)])
    return "police", Kind.rentals, s, row, "landlord_id_number"


def _placed_without_a_kind(registry, tmp_path):
    s = Sheet(RELEASE_HEADER)
    row = s.add(["吴一", id_number(743), "", GRID_A1, "", "2024-03-01", "省第一监狱", "已安置",
                 "", "", "", "", ""])
    return "justice", Kind.releases, s, row, "placement_kind"


def _staff_number_of_another_area(registry, tmp_path):
    other = make_user(registry, None, "police", COMMUNITY_B)
    s = Sheet(COORDINATOR_HEADER)
    s.add(["周一", "XB001", "330199001002001", "", ""])
    assert run(registry, other, Kind.coordinators, s.write(tmp_path, "utf8", "b")).imported == 1
    s = Sheet(COORDINATOR_HEADER)
    row = s.add(["周一", "XB001", GRID_A1, "", ""])
    return "police", Kind.coordinators, s, row, field_of(Kind.coordinators, "工号")


def _resident_at_another_address(registry, tmp_path):
    user = make_user(registry, None, "police", COMMUNITY_A)
    header = ["姓名", "身份证号", "社区代码", "现住址", "来本地日期"]
    s = Sheet(header)
    s.add(["王九", id_number(744), GRID_A1, "乙路1号", "2024-03-01"])
    assert run(registry, user, Kind.residents, s.write(tmp_path, "utf8", "a")).imported == 1
    s = Sheet(header)
    row = s.add(["王九", id_number(744), GRID_A1, "乙路9号", "2024-03-01"])
    return "police", Kind.residents, s, row, "address"




@pytest.mark.parametrize("setup", [
    _pledge_in_wrong_order,
    _landlord_under_another_name,
    _placed_without_a_kind,
    _resident_at_another_address,
    _staff_number_of_another_area])
def test_a_service_refusal_names_the_ledger_column(registry, tmp_path, setup):
    role, kind, sheet, row, column = setup(registry, tmp_path)
    user = make_user(registry, None, role, COMMUNITY_A)
    summary = run(registry, user, kind, sheet.write(tmp_path, "utf8"))
    assert summary.rejected == 1
    assert rejects(summary)[row]["field"] == column
    assert column in INDEX[kind].values()  # a field the ledger has a column for


def test_a_plus_86_phone_survives_the_rejects_file(registry, tmp_path):
    user = make_user(registry, None, "police", COMMUNITY_A)
    s = Sheet(RENTAL_HEADER[:6])
    s.add([COMMUNITY_B, "甲路2号", "2", "王二", id_number(751), "+86 138 0013 8751"])
    first = run(registry, user, Kind.rentals, s.write(tmp_path, "utf8"))
    assert first.rejected == 1
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(Path(first.rejects_file).read_text(encoding="utf-8-sig")
                     .replace(COMMUNITY_B, GRID_A1), encoding="utf-8-sig")
    second = run(registry, user, Kind.rentals, fixed)
    assert counts(second) == expect(read=1, imported=1), rejects(second)


@pytest.mark.parametrize("with_reason", [True, False], ids=["居住事由", "no-reason-column"])
def test_a_residents_rejects_file_once_fixed_imports(registry, tmp_path, with_reason):
    user = make_user(registry, None, "police", COMMUNITY_A)
    header = ["姓名", "身份证号", "社区代码", "现住址", "来本地日期"]
    cells = ["王二", id_number(752), COMMUNITY_B, "乙路2号", "2024-03-01"]
    s = Sheet([*header, "居住事由"] if with_reason else header)
    s.add([*cells, "务工"] if with_reason else cells)
    first = run(registry, user, Kind.residents, s.write(tmp_path, "utf8"))
    assert first.rejected == 1
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(Path(first.rejects_file).read_text(encoding="utf-8-sig")
                     .replace(COMMUNITY_B, GRID_A1), encoding="utf-8-sig")
    second = run(registry, user, Kind.residents, fixed)
    assert second.error is None, second.error
    assert counts(second) == expect(read=1, imported=1), rejects(second)
