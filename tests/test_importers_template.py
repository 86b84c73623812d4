"""Ledger templates: every column described, every template read back by the real reader,
every example accepted by the cell parser its column uses. No database."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from importers import values
from importers.columns import LABELS_ZH, REQUIRED, SPELLINGS, Kind
from importers.reading import open_ledger
from importers.template import FIELDS, markdown_maps, write_template

DATES = ("birth_date", "registered_on", "pledge_signed_on", "pledge_valid_until", "arrived_on",
         "left_on", "permit_issued_on", "permit_endorsed_on", "effective_on",
         "supervision_start", "supervision_end", "reported_on", "last_check_in_on",
         "released_on")
INTEGERS = ("units", "check_in_interval_days", "registration_deadline_days")
CHOICES = {"sex": values.SEX, "status": values.RENTAL_STATUS, "reason": values.REASON,
           "category": values.CATEGORY, "source": values.SOURCE,
           "placement_status": values.PLACEMENT_STATUS, "placement_kind": values.PLACEMENT_KIND,
           "juvenile": values.YES_NO, "measures_in_place": values.YES_NO,
           "key_subject": values.YES_NO}
# Field → the parser an importer runs on it; any field not listed is free text.
PARSERS = {
    "id_number": values.id_number, "landlord_id_number": values.id_number,
    "phone": values.phone, "landlord_phone": values.phone,
    **dict.fromkeys(DATES, values.date),
    **dict.fromkeys(INTEGERS, values.integer),
    **{field: partial(values.choice, mapping=table) for field, table in CHOICES.items()},
}
KIND_FIELDS = [(kind, field) for kind in Kind for field in SPELLINGS[kind]]


def parse(field: str, raw: str):
    return PARSERS.get(field, values.text)(raw, field=field)


@pytest.mark.parametrize("kind", list(Kind))
def test_every_column_is_described(kind):
    assert list(FIELDS[kind]) == list(SPELLINGS[kind])


@pytest.mark.parametrize("kind", list(Kind))
def test_template_reads_back_as_an_empty_ledger(tmp_path, kind):
    path = write_template(kind, tmp_path / f"{kind}.xlsx")
    with open_ledger(path, kind) as ledger:
        assert ledger.header == list(SPELLINGS[kind])
        assert ledger.unknown_columns == []
        assert ledger.header_row == 1
        assert list(ledger.rows()) == []
        assert ledger.rows_read == 0


@pytest.mark.parametrize("kind", list(Kind))
def test_template_filled_with_its_examples_reads_back(tmp_path, kind):
    path = write_template(kind, tmp_path / f"{kind}.xlsx")
    workbook = load_workbook(path)
    workbook.worksheets[0].append([doc.example for doc in FIELDS[kind].values()])
    workbook.save(path)
    with open_ledger(path, kind) as ledger:
        (row,) = ledger.rows()
    assert row.number == 2
    assert row.values == {field: doc.example for field, doc in FIELDS[kind].items()}


@pytest.mark.parametrize("kind", list(Kind))
def test_template_sheets(tmp_path, kind):
    workbook = load_workbook(write_template(kind, tmp_path / f"{kind}.xlsx"))
    assert workbook.sheetnames == [LABELS_ZH[kind], "说明"]
    ledger, notes = workbook.worksheets
    fields = list(SPELLINGS[kind])

    headers = [cell.value for cell in ledger[1]]
    assert headers == [SPELLINGS[kind][f][0] + ("*" if f in REQUIRED[kind] else "")
                       for f in fields]
    assert ledger.max_row == 1
    assert ledger.freeze_panes == "A2"
    for column in range(1, len(fields) + 1):
        assert ledger.cell(1, column).font.bold
        dimension = ledger.column_dimensions[get_column_letter(column)]
        assert dimension.number_format == "@"
        assert dimension.width >= 10

    rows = list(notes.iter_rows(values_only=True))
    assert rows[0] == ("列名", "是否必填", "说明", "格式", "示例", "可用列名",
                       "English description")
    assert len(rows) == 1 + len(fields)
    for field, header, row in zip(fields, headers, rows[1:], strict=True):
        doc = FIELDS[kind][field]
        assert row == (header, "是" if field in REQUIRED[kind] else "否", doc.zh, doc.format,
                       doc.example, "、".join(SPELLINGS[kind][field]), doc.en)


@pytest.mark.parametrize("kind,field", KIND_FIELDS)
def test_example_is_accepted_by_the_fields_parser(kind, field):
    doc = FIELDS[kind][field]
    assert doc.zh and doc.en and doc.format
    parse(field, doc.example)


def test_example_id_is_synthetic():
    (example,) = {FIELDS[kind][field].example for kind, field in KIND_FIELDS
                  if field.endswith("id_number")}
    parsed = values.id_number(example)
    assert parsed.value[:17] == "11010519900101123"
    assert str(parsed.birth_date) == "1990-01-01"


@pytest.mark.parametrize("kind,field", [(k, f) for k, f in KIND_FIELDS if f in CHOICES])
def test_choice_format_names_one_spelling_of_every_value(kind, field):
    options = FIELDS[kind][field].format.split("：", 1)[1].split("/")
    assert all(not option.isascii() for option in options)
    parsed = [parse(field, option) for option in options]
    assert len(set(parsed)) == len(parsed)  # one spelling per value
    assert set(parsed) == set(CHOICES[field].values())


def test_markdown_maps_every_field_of_every_kind():
    text = markdown_maps()
    for kind in Kind:
        assert f"### {kind.value} — {LABELS_ZH[kind]}" in text
        for field, spellings in SPELLINGS[kind].items():
            assert f"| `{field}` | {'yes' if field in REQUIRED[kind] else 'no'} | " \
                   f"{'、'.join(spellings)} |" in text


def test_the_readme_lists_the_column_maps_as_the_code_has_them():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert markdown_maps().rstrip("\n") in readme, (
        "README.md's ledger column maps are stale: paste importers.template.markdown_maps()")
