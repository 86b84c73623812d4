"""The reading layer of the ledger importers: files generated into tmp_path (no blobs
committed), every awkward input the issue lists, no database."""

from __future__ import annotations

import csv
import tracemalloc
import zipfile
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from importers import values
from importers.columns import Kind, canonical_header, header_key
from importers.reading import open_ledger
from registry.errors import Invalid
from registry.validation import check_character

RENTAL_HEADER = ["社区代码", "房屋地址", "出租户数", "房东姓名", "房东身份证号", "房东电话",
                 "出租状态"]


def make_id(prefix17: str = "11010519491231002") -> str:
    return prefix17 + check_character(prefix17)


def rental_row(i: int = 0) -> list[str]:
    return ["110105001001", f"幸福路{i}号", "3", "张三", make_id(), "13800138000", "在租"]


def write_csv(path, rows, encoding="utf-8"):
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def write_xlsx(path, rows, *, title="台账", merge=None, extra_sheet=None):
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    if merge:
        ws.merge_cells(merge)
    if extra_sheet:
        wb.create_sheet(extra_sheet).append(["x"])
    wb.save(path)
    return path


def read_all(path, kind=Kind.rentals, **options):
    with open_ledger(path, kind, **options) as ledger:
        return ledger, list(ledger.rows())


# --- formats and encodings ----------------------------------------------------------------


@pytest.mark.parametrize("encoding,expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030")])
def test_csv_encodings_are_detected(tmp_path, encoding, expected):
    path = write_csv(tmp_path / "r.csv", [RENTAL_HEADER, rental_row()], encoding)
    ledger, rows = read_all(path)
    assert ledger.encoding == expected
    assert ledger.header[0] == "jurisdiction_code"  # no BOM glued to the first header
    assert rows[0].values["landlord_name"] == "张三"
    assert rows[0].values["address"] == "幸福路0号"


def test_a_forced_encoding_wins_and_a_wrong_one_is_named(tmp_path):
    path = write_csv(tmp_path / "r.csv", [RENTAL_HEADER, rental_row()], "gbk")
    assert read_all(path, encoding="gbk")[1][0].values["landlord_name"] == "张三"
    with pytest.raises(Invalid) as exc:
        read_all(path, encoding="no-such-codec")
    assert exc.value.field == "encoding"


def test_gbk_after_the_sample_stops_with_the_row(tmp_path, monkeypatch):
    monkeypatch.setattr("importers.reading.SAMPLE_BYTES", 200)
    path = tmp_path / "r.csv"
    ascii_rows = [RENTAL_HEADER] + [["110105001001", f"Road {i}", "3", "Zhang", make_id(),
                                     "13800138000", "active"] for i in range(20)]
    write_csv(path, ascii_rows, "utf-8")
    with path.open("ab") as f:
        f.write(",".join(rental_row()).encode("gbk") + b"\r\n")
    with pytest.raises(Invalid) as exc, open_ledger(path, Kind.rentals) as ledger:
        list(ledger.rows())
    assert exc.value.field == "encoding" and exc.value.row is not None


def test_xlsx_first_sheet_or_a_named_one(tmp_path):
    path = write_xlsx(tmp_path / "r.xlsx", [RENTAL_HEADER, rental_row()], extra_sheet="其他")
    ledger, rows = read_all(path)
    assert ledger.sheet == "台账" and rows[0].number == 2
    assert read_all(path, sheet="台账")[1][0].values["units"] == "3"
    with pytest.raises(Invalid) as exc:
        read_all(path, sheet="不存在")
    assert exc.value.field == "sheet" and "台账" in exc.value.message


def test_xlsx_cells_become_text(tmp_path):
    path = write_xlsx(tmp_path / "r.xlsx", [
        [*RENTAL_HEADER, "登记日期"],
        ["110105001001", "幸福路1号", 3, "张三", 110105194912310000, 13800138000, "在租",
         datetime(2024, 3, 1)],
        ["110105001001", "幸福路2号", 3.0, "李四", 1.1010519491231e17, "13800138000", "空置",
         45352],
    ])
    _, rows = read_all(path)
    first, second = (r.values for r in rows)
    assert first["units"] == "3" and first["registered_on"] == "2024-03-01"
    assert first["landlord_phone"] == "13800138000"
    assert second["units"] == "3"
    for damaged in (first["landlord_id_number"], second["landlord_id_number"]):
        with pytest.raises(Invalid, match="Excel"):
            values.id_number(damaged)
    assert values.date(second["registered_on"], field="registered_on") == date(2024, 3, 1)


# --- the header ----------------------------------------------------------------------------


def test_title_rows_merged_cells_and_blank_rows_keep_spreadsheet_numbers(tmp_path):
    path = write_xlsx(tmp_path / "r.xlsx", [
        ["某某街道出租房屋台账"], [], ["填报单位：某社区", None, None, "2024年3月"],
        RENTAL_HEADER, rental_row(1), [], [None, "  "], rental_row(2),
    ], merge="A1:G1")
    ledger, rows = read_all(path)
    assert ledger.header_row == 4
    assert [r.number for r in rows] == [5, 8]
    assert ledger.rows_read == 2


def test_header_spellings_are_width_case_space_and_unit_insensitive():
    header = canonical_header(Kind.corrections, [
        "ＩＤ　Number", " 姓名 ", "*社区代码", "报到周期（天）", "矫正类别：", "Supervision Start",
        "矫正结束日期", "决定机关", "判决书号", "生效日期", "备注"])
    assert header.fields == ["id_number", "name", "jurisdiction_code", "check_in_interval_days",
                             "category", "supervision_start", "supervision_end",
                             "deciding_body", "judgment_ref", "effective_on"]
    assert header.unknown == ["备注"] and not header.problems
    assert header_key("报到周期(天)") == header_key("报到周期")


def test_every_kind_maps_its_required_columns_from_their_first_spelling():
    from importers.columns import REQUIRED, SPELLINGS
    for kind in Kind:
        header = canonical_header(kind, [SPELLINGS[kind][f][0] for f in sorted(REQUIRED[kind])])
        assert not header.problems, kind


def test_unknown_columns_are_reported_not_fatal(tmp_path):
    path = write_csv(tmp_path / "r.csv", [[*RENTAL_HEADER, "备注", "联系电话"],
                                          [*rental_row(), "x", "13900139000"]])
    ledger, rows = read_all(path)
    assert ledger.unknown_columns == ["备注", "联系电话"]
    assert Kind.residents in ledger.foreign_columns["联系电话"]
    assert "备注" not in rows[0].values


def test_duplicate_headers_are_fatal(tmp_path):
    path = write_csv(tmp_path / "r.csv", [[*RENTAL_HEADER, "房屋地址"], [*rental_row(), "x"]])
    with pytest.raises(Invalid) as exc:
        read_all(path)
    assert exc.value.field == "address" and exc.value.row == 1
    assert exc.value.extra["file"] == "r.csv"


def test_a_missing_required_column_is_fatal_before_any_row(tmp_path):
    path = write_csv(tmp_path / "r.csv", [RENTAL_HEADER[:3] + RENTAL_HEADER[4:], rental_row()])
    with pytest.raises(Invalid) as exc:
        read_all(path)
    assert exc.value.field == "landlord_name" and "房东姓名" in exc.value.message_zh


def test_two_ledgers_side_by_side_are_fatal(tmp_path):
    path = write_csv(tmp_path / "r.csv", [
        [*RENTAL_HEADER, "姓名", "身份证号", "释放日期", "原服刑单位"],
        [*rental_row(), "", "", "", ""]])
    with pytest.raises(Invalid) as exc:
        read_all(path)
    assert "releases" in exc.value.message and "安置帮教" in exc.value.message_zh


def test_two_ledgers_stacked_stop_at_the_second_header(tmp_path):
    path = write_csv(tmp_path / "r.csv", [
        RENTAL_HEADER, rental_row(1), [],
        ["姓名", "身份证号", "社区代码", "释放日期", "原服刑单位"],
        ["李四", make_id(), "1", "2", "3"]])
    with pytest.raises(Invalid) as exc, open_ledger(path, Kind.rentals) as ledger:
        list(ledger.rows())
    assert exc.value.row == 4 and "releases" in exc.value.message


def test_a_repeated_identical_header_is_skipped(tmp_path):
    path = write_csv(tmp_path / "r.csv", [RENTAL_HEADER, rental_row(1), RENTAL_HEADER,
                                          rental_row(2)])
    ledger, rows = read_all(path)
    assert [r.number for r in rows] == [2, 4] and ledger.repeated_headers == [3]


def test_the_wrong_kind_is_named(tmp_path):
    path = write_csv(tmp_path / "r.csv", [["姓名", "身份证号", "释放日期", "原服刑单位"],
                                          ["李四", make_id(), "2024-01-01", "某监狱"]])
    with pytest.raises(Invalid) as exc:
        read_all(path, Kind.rentals)
    assert "releases" in exc.value.message


def test_no_header_in_twenty_rows(tmp_path):
    path = write_csv(tmp_path / "r.csv", [["title"]] * 25 + [RENTAL_HEADER])
    with pytest.raises(Invalid) as exc:
        read_all(path)
    assert exc.value.field == "header"


# --- bad files -----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n  \r\n", b",,,\r\n,,\r\n"])
def test_empty_files(tmp_path, content):
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    with pytest.raises(Invalid, match="empty"):
        read_all(path)


def test_an_empty_workbook(tmp_path):
    with pytest.raises(Invalid, match="empty"):
        read_all(write_xlsx(tmp_path / "r.xlsx", []))


def test_header_only_is_zero_rows_not_an_error(tmp_path):
    ledger, rows = read_all(write_csv(tmp_path / "r.csv", [["标题"], RENTAL_HEADER]))
    assert rows == [] and ledger.rows_read == 0 and ledger.header_row == 2


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 8,
    b"\x81\xff\x80\xfe\x07\x08" * 50,
    b"PK\x03\x04\x14\x00\x06\x00" + bytes(200),
])
def test_binary_garbage_named_csv(tmp_path, content):
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    with pytest.raises(Invalid) as exc:
        read_all(path)
    assert exc.value.field == "file"


def test_not_a_workbook_named_xlsx_and_other_suffixes(tmp_path):
    (tmp_path / "r.xlsx").write_bytes(b"not a zip")
    (tmp_path / "r.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    for name in ("r.xlsx", "r.xls", "missing.csv"):
        with pytest.raises(Invalid) as exc:
            read_all(tmp_path / name)
        assert exc.value.field == "file"


def test_formulas_are_rejected_never_evaluated(tmp_path):
    row = rental_row()
    row[2] = "=1+2"
    path = write_xlsx(tmp_path / "r.xlsx", [RENTAL_HEADER, row])
    _, rows = read_all(path)
    assert "units" not in rows[0].values
    [reason] = rows[0].rejected
    assert reason.field == "units" and reason.row == 2 and "formula" in reason.message
    _, rows = read_all(write_csv(tmp_path / "r.csv", [RENTAL_HEADER, row]))
    assert rows[0].rejected[0].field == "units"


def test_an_overlong_line_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr("importers.reading.MAX_LINE_CHARS", 1000)
    path = tmp_path / "r.csv"
    path.write_text(",".join(RENTAL_HEADER) + "\n" + "x" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(Invalid, match="1 MiB"), open_ledger(path, Kind.rentals) as ledger:
        list(ledger.rows())


def test_a_large_csv_streams_in_chunks_with_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    line = ",".join(rental_row()) + "\n"
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(RENTAL_HEADER) + "\n")
        f.writelines(line for _ in range(200_000))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with open_ledger(path, Kind.rentals, chunk_rows=2000) as ledger:
            sizes = [len(chunk) for chunk in ledger.chunks()]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(sizes) == 200_000 and max(sizes) == 2000
    assert peak < size / 3, (peak, size)  # the sample, one chunk and change


# --- values --------------------------------------------------------------------------------


def test_id_numbers_normalised_converted_and_excel_damage_named():
    eighteen = make_id("11010519491231002")
    assert values.id_number(" " + eighteen[:-1].translate(str.maketrans(
        "0123456789", "０１２３４５６７８９")) + eighteen[-1] + " ").value == eighteen
    legacy = values.id_number("110105491231002")
    assert legacy.value == make_id("11010519491231002") and legacy.birth_date == date(1949, 12,
                                                                                         31)
    for damaged in ("1.10105E+17", "110105194912310000.0", "1.1010519491231e+17",
                    "110105491231002.0"):
        with pytest.raises(Invalid, match="Excel") as exc:
            values.id_number(damaged, row=7)
        assert exc.value.row == 7 and exc.value.field == "id_number"
    with pytest.raises(Invalid) as exc:
        values.id_number("110105194912310000", field="landlord_id_number", row=3)
    assert "000" in exc.value.message and exc.value.field == "landlord_id_number"


def test_a_lower_case_x_check_character():
    first17 = next(p for p in (f"11010519800101{i:03d}" for i in range(1000))
                   if check_character(p) == "X")
    assert values.id_number(first17 + "x").value == first17 + "X"


@pytest.mark.parametrize("text", [
    "2024-03-01", "2024/3/1", "2024.3.1", "2024年3月1日", "20240301", "45352", "45352.0",
    "2024-03-01 00:00:00", "2024/3/1 0:00", "２０２４－０３－０１", " 2024 年 3 月 1 日 ",
    "2024-03-01T00:00:00"])
def test_dates_in_the_common_forms(text):
    assert values.date(text, field="registered_on") == date(2024, 3, 1)


def test_excel_serials_skip_the_phantom_1900_leap_day():
    assert values.date("36526", field="d") == date(2000, 1, 1)
    assert values.date("10000", field="d") == date(1927, 5, 18)


@pytest.mark.parametrize("text", [
    "2024-02-30", "2024-03-01 08:30", "45352.5", "2024", "3/1/2024", "明天", "99999", ""])
def test_bad_dates_are_refused_with_field_and_row(text):
    with pytest.raises(Invalid) as exc:
        values.date(text, field="arrived_on", row=9)
    assert exc.value.field == "arrived_on" and exc.value.row == 9


@pytest.mark.parametrize("text", ["+86 138 0013 8000", "13800138000", "138-0013-8000",
                                  "13800138000.0", "８６１３８００１３８０００"])
def test_phones(text):
    assert values.phone(text, row=2) == "13800138000"


def test_a_bad_phone_names_field_and_row():
    with pytest.raises(Invalid) as exc:
        values.phone("1.38001E+10", field="landlord_phone", row=4)
    assert (exc.value.field, exc.value.row) == ("landlord_phone", 4)


def test_choices():
    from registry.corrections.schemas import Category
    from registry.releases.schemas import PlacementKind, PlacementStatus
    from registry.rentals.schemas import RentalStatus
    from registry.residents.schemas import Reason
    assert values.choice(" 在租 ", values.RENTAL_STATUS, field="status") is RentalStatus.active
    assert values.choice("停租", values.RENTAL_STATUS, field="status") is \
        RentalStatus.deregistered
    assert values.choice("Vacant", values.RENTAL_STATUS, field="status") is RentalStatus.vacant
    assert values.choice("暂予监外执行", values.CATEGORY, field="c") is Category.outside_custody
    assert values.choice("未安置", values.PLACEMENT_STATUS, field="p") is PlacementStatus.not_yet
    assert values.choice("自主创业", values.PLACEMENT_KIND, field="k") is \
        PlacementKind.self_employment
    assert values.choice("投亲", values.REASON, field="reason") is Reason.family
    assert values.choice("Ｙ", values.YES_NO, field="m") is True
    assert values.choice("否", values.YES_NO, field="m") is False
    with pytest.raises(Invalid) as exc:
        values.choice("也许", values.YES_NO, field="measures_in_place", row=5)
    assert exc.value.row == 5 and "是" in exc.value.message_zh


@pytest.mark.parametrize("text,expected", [("3", 3), ("３", 3), ("3.0", 3), ("7天", 7),
                                           (" 12 ", 12)])
def test_integers(text, expected):
    assert values.integer(text, field="units") == expected


@pytest.mark.parametrize("text", ["3.5", "three", "-1", "", "0"])
def test_bad_integers(text):
    with pytest.raises(Invalid):
        values.integer(text, field="units", minimum=1, row=2)


def test_present_and_text():
    assert values.present("  ") is None
    assert values.present("  幸福路　１号 ") == "幸福路 1号"
    with pytest.raises(Invalid, match="required"):
        values.text("", field="name", row=3)


def test_the_reading_layer_stays_outside_the_gate():
    import ast
    from pathlib import Path
    forbidden = ("registry.db", "registry.models", "sqlalchemy", "sqlmodel")
    for path in (Path(__file__).resolve().parent.parent / "importers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.startswith(forbidden)], path.name


def test_a_workbook_damaged_past_its_first_rows_stops_with_the_row(tmp_path):
    """The sheet is parsed as it streams: damage found mid-way is a file error naming where,
    never an exception out of the reader."""
    book = Workbook()
    sheet = book.active
    sheet.append(["姓名", "身份证号", "社区代码", "现住址", "来本地日期"])
    for n in range(3000):
        sheet.append([f"人{n}", "x", "330199001001", "路1号", "2024-01-01"])
    whole, cut = tmp_path / "whole.xlsx", tmp_path / "cut.xlsx"
    book.save(whole)
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(cut, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]  # truncated halfway through the rows
            target.writestr(item, data)
    with pytest.raises(Invalid) as caught, open_ledger(cut, Kind.residents) as ledger:
        for _ in ledger.chunks():
            pass
    error = caught.value.to_dict()
    assert "damaged after row" in error["message"] and error["row"] > 2
    assert caught.value.extra == {"file": "cut.xlsx"}
