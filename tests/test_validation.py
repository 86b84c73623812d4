"""registry/validation.py: national ID numbers (GB 11643-1999), mainland mobile numbers, free
text, and the maskers. Pure functions, no database."""

from __future__ import annotations

from datetime import date

import pytest

from registry.errors import Invalid
from registry.validation import (
    address_key,
    check_character,
    clean_text,
    mask_address,
    mask_birth_date,
    mask_id_number,
    mask_name,
    mask_phone,
    normalise_text,
    parse_id_number,
    parse_mobile,
)

TODAY = date(2026, 6, 15)
# The example printed in GB 11643-1999 itself: Beijing Chaoyang, born 1949-12-31, female.
STANDARD_EXAMPLE = "11010519491231002X"


def iso7064_mod11_2(first17: str) -> str:
    """The check character computed independently of the module under test: the weight of
    position i (counted from the right, check character at 1) is 2**(i-1) mod 11."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    return "0123456789X"[(12 - total % 11) % 11]


def make_id(area: str = "330199", birth: str = "19850312", seq: str = "123") -> str:
    first17 = area + birth + seq
    return first17 + iso7064_mod11_2(first17)


def invalid(raw: str, **kwargs) -> Invalid:
    with pytest.raises(Invalid) as caught:
        parse_id_number(raw, today=TODAY, **kwargs)
    return caught.value


# --- the check character -------------------------------------------------------------------


def test_check_character_matches_iso_7064_on_the_standard_example():
    assert check_character(STANDARD_EXAMPLE[:17]) == "X"
    assert iso7064_mod11_2(STANDARD_EXAMPLE[:17]) == "X"


@pytest.mark.parametrize("seq", [f"{n:03d}" for n in range(0, 1000, 37)])
def test_check_character_agrees_with_an_independent_implementation(seq):
    first17 = "44052419900101" + seq
    assert check_character(first17) == iso7064_mod11_2(first17)


def test_every_check_character_value_occurs():
    seen = {check_character(f"33019919850312{n:03d}") for n in range(1000)}
    assert seen == set("0123456789X")


# --- 18-character numbers ------------------------------------------------------------------


def test_valid_number_with_x_check_character():
    parsed = parse_id_number(STANDARD_EXAMPLE, today=TODAY)
    assert parsed.value == STANDARD_EXAMPLE
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.sex == "F"


def test_valid_number_with_digit_check_character():
    number = make_id(seq="013")
    assert number[-1] != "X"
    parsed = parse_id_number(number, today=TODAY)
    assert parsed.value == number
    assert parsed.birth_date == date(1985, 3, 12)


def test_lower_case_x_is_upper_cased():
    assert parse_id_number(STANDARD_EXAMPLE.lower(), today=TODAY).value == STANDARD_EXAMPLE


@pytest.mark.parametrize("seventeenth, sex", [("0", "F"), ("1", "M"), ("2", "F"), ("3", "M"),
                                              ("4", "F"), ("5", "M"), ("6", "F"), ("7", "M"),
                                              ("8", "F"), ("9", "M")])
def test_sex_comes_from_the_seventeenth_digit(seventeenth, sex):
    parsed = parse_id_number(make_id(seq="01" + seventeenth), today=TODAY)
    assert parsed.sex == sex


def test_sex_ignores_the_other_sequence_digits():
    assert parse_id_number(make_id(seq="991"), today=TODAY).sex == "M"
    assert parse_id_number(make_id(seq="110"), today=TODAY).sex == "F"


def test_masked_property_masks_the_value():
    parsed = parse_id_number(STANDARD_EXAMPLE, today=TODAY)
    assert parsed.masked == "110105********002X"


@pytest.mark.parametrize("position", range(18))
def test_any_single_character_typo_is_caught(position):
    number = make_id(seq="123")
    replacement = "5" if number[position] != "5" else "6"
    typo = number[:position] + replacement + number[position + 1:]
    # A changed birth digit may make the date impossible instead; both are refusals.
    with pytest.raises(Invalid) as caught:
        parse_id_number(typo, today=TODAY)
    assert caught.value.field == "id_number"


def test_wrong_check_character_is_refused_with_a_clear_message():
    number = make_id()
    wrong = "0" if number[-1] != "0" else "1"
    error = invalid(number[:17] + wrong)
    assert error.field == "id_number"
    assert "check character" in error.message
    assert error.message_zh == "校验码不符（可能录入有误）"
    # The value itself is never echoed back.
    assert number[:17] not in str(error)


def test_x_in_place_of_a_digit_check_character_is_refused():
    number = make_id(seq="013")
    assert number[-1] != "X"
    assert "check character" in invalid(number[:17] + "X").message


def test_transposition_of_adjacent_digits_is_caught():
    number = make_id(seq="123")
    swapped = number[:14] + number[15] + number[14] + number[16:]
    assert swapped != number
    assert "check character" in invalid(swapped).message


@pytest.mark.parametrize("birth", ["19850230", "19850431", "19851301", "19850001", "19850100",
                                   "19000229", "20230229"])
def test_impossible_birth_dates_are_refused(birth):
    error = invalid(make_id(birth=birth))
    assert error.message == "contains an impossible birth date"
    assert error.message_zh == "出生日期无效"


def test_leap_day_in_a_leap_year_is_accepted():
    assert parse_id_number(make_id(birth="20000229"), today=TODAY).birth_date == date(2000, 2, 29)


def test_future_birth_date_is_refused_relative_to_today():
    tomorrow = make_id(birth="20260616")
    assert "future" in invalid(tomorrow).message
    # The same number is fine once that day has come.
    assert parse_id_number(tomorrow, today=date(2026, 6, 16)).birth_date == date(2026, 6, 16)


def test_birth_today_is_accepted():
    assert parse_id_number(make_id(birth="20260615"), today=TODAY).birth_date == TODAY


def test_birth_before_1900_is_refused_even_with_a_good_check_character():
    # 440524188001010014 is the second example printed in GB 11643-1999.
    assert iso7064_mod11_2("44052418800101001") == "4"
    error = invalid("440524188001010014")
    assert "before 1900" in error.message


def test_first_of_january_1900_is_accepted():
    assert parse_id_number(make_id(birth="19000101"), today=TODAY).birth_date == date(1900, 1, 1)


def test_custom_field_name_is_carried_into_the_error():
    assert invalid("123", field="landlord.id_number").field == "landlord.id_number"


@pytest.mark.parametrize("raw", ["", "1234567890123456", "1101051949123100211",
                                 "11010519491231002Y", "X1010519491231002X",
                                 "1101051949123100X2", "11010519491231002XX",
                                 "11010519491231002-", "abcdefghijklmnopqr",
                                 "11010549123100", "1101054912310021"])
def test_wrong_shapes_are_refused(raw):
    error = invalid(raw)
    assert error.message.startswith("must be 18 characters")
    assert error.field == "id_number"


# --- normalisation -------------------------------------------------------------------------


def test_full_width_digits_and_x_are_accepted():
    full_width = STANDARD_EXAMPLE.translate(
        str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    assert full_width != STANDARD_EXAMPLE
    assert parse_id_number(full_width, today=TODAY).value == STANDARD_EXAMPLE


def test_full_width_lower_case_x_is_accepted():
    assert parse_id_number(STANDARD_EXAMPLE[:17] + "ｘ", today=TODAY).value == STANDARD_EXAMPLE


@pytest.mark.parametrize("raw", [
    " 11010519491231002X ",
    "110105 19491231 002X",
    "110105\t19491231\n002X",
    "110105\u300019491231\u3000002X",  # ideographic (full-width) spaces
    "1 1 0 1 0 5 1 9 4 9 1 2 3 1 0 0 2 x",
])
def test_spaces_anywhere_are_ignored(raw):
    assert parse_id_number(raw, today=TODAY).value == STANDARD_EXAMPLE


@pytest.mark.parametrize("digits", ["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯"])
def test_other_scripts_decimal_digits_are_converted_to_ascii(digits):
    """Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali: one number, one form."""
    foreign = STANDARD_EXAMPLE.translate(str.maketrans("0123456789", digits))
    assert foreign != STANDARD_EXAMPLE
    parsed = parse_id_number(foreign, today=TODAY)
    assert parsed.value == STANDARD_EXAMPLE
    assert parsed.birth_date == date(1949, 12, 31)
    legacy = "110105491231002".translate(str.maketrans("0123456789", digits))
    assert parse_id_number(legacy, today=TODAY).value == STANDARD_EXAMPLE


def test_converted_digits_still_face_the_check_character():
    foreign = STANDARD_EXAMPLE[:16].translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) + "1X"
    error = invalid(foreign)
    assert "check character" in error.message


# --- 15-digit legacy numbers ---------------------------------------------------------------


def test_fifteen_digit_number_is_converted_to_eighteen():
    parsed = parse_id_number("110105491231002", today=TODAY)
    assert parsed.value == STANDARD_EXAMPLE
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.sex == "F"


def test_fifteen_digit_number_sex_comes_from_its_last_digit():
    male = parse_id_number("330199850312013", today=TODAY)
    assert male.sex == "M"
    assert male.birth_date == date(1985, 3, 12)
    assert male.value == make_id(birth="19850312", seq="013")
    female = parse_id_number("330199850312014", today=TODAY)
    assert female.sex == "F"


def test_fifteen_digit_number_with_spaces_and_full_width_digits():
    parsed = parse_id_number(" １１０１０５ 491231 ００２ ", today=TODAY)
    assert parsed.value == STANDARD_EXAMPLE


def test_fifteen_digit_number_with_an_impossible_date_is_refused():
    assert invalid("110105490230002").message == "contains an impossible birth date"


def test_sixteen_and_seventeen_digits_are_neither_format():
    assert invalid("1101054912310021").message.startswith("must be 18")
    assert invalid("11010519491231002").message.startswith("must be 18")


# --- mobile numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    "13800138000",
    "+8613800138000",
    "+86 138 0013 8000",
    "0086 13800138000",
    "008613800138000",
    "8613800138000",
    "138-0013-8000",
    "(+86) 138-0013-8000",
    " 138 0013 8000 ",
    "１３８００１３８０００",
    "＋８６ １３８００１３８０００",
])
def test_mobile_numbers_are_normalised(raw):
    assert parse_mobile(raw) == "13800138000"


@pytest.mark.parametrize("second", "3456789")
def test_every_allowed_second_digit(second):
    number = f"1{second}012345678"
    assert parse_mobile(number) == number


@pytest.mark.parametrize("raw", [
    "12012345678",  # 12x is not a mobile prefix
    "12912345678",
    "11012345678",
    "10012345678",
    "23800138000",  # does not start with 1
    "1380013800",  # 10 digits
    "138001380001",  # 12 digits
    "+861380013800",  # 10 digits after +86
    "+86138001380001",  # 12 digits after +86
    "+8612012345678",  # country code, but a 12x number
    "+8513800138000",  # another country code
    "0085213800138000",
    "010-12345678",  # a landline
    "1380013800O",  # letter O
    "",
    "phone",
])
def test_bad_mobile_numbers_are_refused(raw):
    with pytest.raises(Invalid) as caught:
        parse_mobile(raw)
    assert caught.value.field == "phone"
    assert "mainland mobile" in caught.value.message
    assert "手机" in caught.value.message_zh


def test_mobile_field_name_is_carried_into_the_error():
    with pytest.raises(Invalid) as caught:
        parse_mobile("123", field="landlord.phone")
    assert caught.value.field == "landlord.phone"


@pytest.mark.parametrize("raw", ["13" + "٨٠٠١٣٨٠٠٠", "١٣٨٠٠١٣٨٠٠٠", "+٨٦ १३८ ००१३ ८०००"])
def test_mobile_with_other_scripts_digits_is_converted_to_ascii(raw):
    assert parse_mobile(raw) == "13800138000"


def test_mobile_converted_from_other_scripts_is_still_checked():
    with pytest.raises(Invalid) as caught:
        parse_mobile("١٢٠١٢٣٤٥٦٧٨")  # 12012345678: not a mobile prefix
    assert caught.value.field == "phone"


# --- free text -----------------------------------------------------------------------------


def test_normalise_text_folds_width_and_white_space():
    assert normalise_text("  东门路　１２号\t\n３幢  ") == "东门路 12号 3幢"


def test_clean_text_returns_the_normalised_value():
    assert clean_text(" 王  小明 ", field="name", max_length=50) == "王 小明"


def test_clean_text_limits_are_inclusive_and_counted_after_normalisation():
    assert clean_text("a" * 50, field="name", max_length=50) == "a" * 50
    # Surrounding white space does not count against the limit.
    assert clean_text("  " + "a" * 50 + "  ", field="name", max_length=50) == "a" * 50
    with pytest.raises(Invalid) as caught:
        clean_text("a" * 51, field="name", max_length=50)
    assert caught.value.field == "name"
    assert caught.value.message == "is longer than 50 characters"
    assert caught.value.message_zh == "超过50个字符"


def test_clean_text_counts_characters_not_bytes():
    assert clean_text("王" * 50, field="name", max_length=50) == "王" * 50


@pytest.mark.parametrize("raw", ["", " ", "\t\n", "\u3000"])
def test_clean_text_blank_is_required(raw):
    with pytest.raises(Invalid) as caught:
        clean_text(raw, field="address", max_length=200)
    assert caught.value.message == "is required"
    assert caught.value.field == "address"


def test_clean_text_min_length():
    assert clean_text("ab", field="address", max_length=200, min_length=2) == "ab"
    with pytest.raises(Invalid):
        clean_text(" a ", field="address", max_length=200, min_length=2)


@pytest.mark.parametrize("char", [
    "\x00", "\x07", "\x1b", "\x7f", "\x9b",  # C0/C1 controls, DEL
    "\u200b", "\u200e", "\u202e", "\u2066", "\ufeff",  # format: zero-width, bidi, BOM
    "\ue000",  # private use
    "\ud800",  # lone surrogate
])
def test_clean_text_refuses_control_and_invisible_characters(char):
    with pytest.raises(Invalid) as caught:
        clean_text(f"王{char}明", field="name", max_length=50)
    assert caught.value.message == "contains control characters"
    assert caught.value.message_zh == "包含控制字符"
    assert caught.value.field == "name"


@pytest.mark.parametrize("char", ["\t", "\n", "\r", "\x0b", "\x0c", "\x1f", "\x85", "\u2028"])
def test_clean_text_folds_white_space_controls_into_a_space(char):
    assert clean_text(f"王{char}明", field="name", max_length=50) == "王 明"


def test_clean_text_accepts_ordinary_chinese_and_punctuation():
    text = "浙江省·东门路12号（3幢）101室，李-王"
    assert clean_text(text, field="address", max_length=200) == "浙江省·东门路12号(3幢)101室,李-王"


def test_address_key_ignores_spaces_width_and_case():
    assert address_key("东门路 12号 A幢") == address_key("东门路１２号ａ幢")


# --- masking -------------------------------------------------------------------------------


def test_mask_id_number_keeps_first_six_and_last_four():
    assert mask_id_number("11010519491231002X") == "110105********002X"
    masked = mask_id_number(make_id())
    assert len(masked) == 18
    assert masked[6:14] == "*" * 8


def test_mask_id_number_hides_the_birth_date():
    number = make_id(birth="19850312")
    assert "19850312" not in mask_id_number(number)
    assert "0312" not in mask_id_number(number)[:14]


@pytest.mark.parametrize("name", ["王", "王明", "王小明", "王小明明", "王 小明"])
def test_mask_name_is_the_surname_and_one_star_whatever_the_length(name):
    # The length of the given name would be a hint, so every masked name is two characters.
    assert mask_name(name) == "王*"


def test_mask_name_of_a_compound_surname_shows_its_first_character_only():
    assert mask_name("欧阳修远") == "欧*"
    assert mask_name("司马光") == "司*"


def test_mask_birth_date_keeps_the_year_only():
    assert mask_birth_date("1985-03-12") == "1985-**-**"
    assert mask_birth_date("2000-02-29") == "2000-**-**"
    assert "03" not in mask_birth_date("1985-03-12")


def test_mask_phone_keeps_first_three_and_last_four():
    assert mask_phone("13800138000") == "138****8000"
    assert "0013" not in mask_phone("13800138000")


def test_mask_address_keeps_only_a_prefix():
    address = "东门路12号3幢101室"
    masked = mask_address(address)
    assert masked.endswith("***")
    assert masked[:-3] == address[: len(address) // 3]
    assert "101室" not in masked
