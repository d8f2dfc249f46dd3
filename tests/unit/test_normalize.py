"""Normalizers. Cases marked "Metriport" are ported from metriport/metriport's unit tests (inputs
and expected outcomes); the others are messy real-world inputs those tests miss. Where we
deliberately differ from Metriport, the test says so and why."""

from __future__ import annotations

import datetime

import pytest

from patients.normalize import (
    US_STATES,
    US_TERRITORIES,
    DobProblem,
    clean_text,
    normalize_address_line,
    normalize_city,
    normalize_dob,
    normalize_drivers_license_value,
    normalize_email,
    normalize_external_id,
    normalize_gender,
    normalize_hie_opt_out,
    normalize_name,
    normalize_phone,
    normalize_ssn,
    normalize_state,
    normalize_zip,
    parse_dob,
    split_address_unit,
    title_case,
    title_case_if_not_multi_case,
)

TODAY = datetime.date(2025, 6, 15)


# --- title case: Metriport packages/shared/src/common/__tests__/title-case.test.ts -----------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("hello", "Hello"),
        ("hello world", "Hello World"),
        ("hello world, d'angelo", "Hello World, D'Angelo"),
        ("hello-world", "Hello-world"),
        ("hello_world", "Hello_world"),
        ("helloWorld", "Helloworld"),
        ("HelloWorld", "Helloworld"),
        ("  hello  world  ", "Hello World"),
        ("HELLO WORLD", "Hello World"),
        ("hello123 world456", "Hello123 World456"),
        ("1st 2nd 3rd", "1st 2nd 3rd"),
        ("user123Name", "User123name"),
    ],
)
def test_title_case_metriport(value: str, expected: str) -> None:
    assert title_case(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("JOHN", "John"),
        ("john", "John"),
        ("McDonald", "McDonald"),  # mixed case is kept as typed
        ("DeShawn", "DeShawn"),
        ("o'neil", "O'Neil"),
        ("MARY-JANE", "Mary-jane"),  # Metriport capitalizes words and apostrophe parts only
        ("  VAN DER BERG ", "Van Der Berg"),
        ("van der Berg", "van der Berg"),
        ("123", "123"),
    ],
)
def test_title_case_if_not_multi_case(value: str, expected: str) -> None:
    assert title_case_if_not_multi_case(value) == expected


# --- names (Metriport convert-patient normalizeNameOrFail) ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  jane ", "Jane"),
        ("JANE", "Jane"),
        ("LaToya", "LaToya"),
        ("De La\nCruz", "De La Cruz"),  # a line break inside a quoted cell
        ("van  der\tBerg", "van der Berg"),
        ("", None),
        ("   ", None),
        ("\t\n", None),
    ],
)
def test_normalize_name(value: str, expected: str | None) -> None:
    assert normalize_name(value) == expected


def test_normalize_name_of_unicode_ligature_is_a_fixed_point() -> None:
    # "ﬀ" upper-cases to two letters; the result must not change when normalized again.
    once = normalize_name("ﬀoo")
    assert once is not None and normalize_name(once) == once


def test_normalize_external_id_keeps_case_and_trims() -> None:
    assert normalize_external_id("  mrn-00A1 ") == "mrn-00A1"
    assert normalize_external_id("   ") is None


# --- dob: Metriport packages/shared/src/domain/__tests__/dob.test.ts and convert-patient.test.ts -------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1945-01-01", "1945-01-01"),  # Metriport
        ("1951-03-29 ", "1951-03-29"),  # Metriport, "examples from the wild"
        ("Jan 1, 1951", "1951-01-01"),  # Metriport, "examples from the wild"
        ("1990-05-12T13:45:00.000Z", "1990-05-12"),  # Metriport feeds faker's toISOString() dates
        # Messy but unambiguous in practice:
        ("3/4/1980", "1980-03-04"),  # US spreadsheet M/D/YYYY
        ("03/04/1980", "1980-03-04"),  # MM/DD/YYYY
        ("12/31/1975", "1975-12-31"),
        ("3-4-1980", "1980-03-04"),
        ("3/4/1980 0:00", "1980-03-04"),  # Excel date-time export
        ("3/4/1980 12:00 AM", "1980-03-04"),
        ("1980-03-04 00:00:00", "1980-03-04"),  # database export
        ("1980/03/04", "1980-03-04"),
        ("1980-3-4", "1980-03-04"),
        ("19800304", "1980-03-04"),  # HL7 style
        ("January 1 1951", "1951-01-01"),
        ("1 Jan 1951", "1951-01-01"),
        ("01-Jan-1951", "1951-01-01"),  # Excel dd-mmm-yyyy
        ("Sept. 9, 1960", "1960-09-09"),
        ("1900-01-01", "1900-01-01"),  # the earliest Metriport accepts
        ("2025-06-15", "2025-06-15"),  # today is not the future
        ("2000-02-29", "2000-02-29"),
    ],
)
def test_normalize_dob_accepts(value: str, expected: str) -> None:
    assert normalize_dob(value, today=TODAY) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", DobProblem.MISSING),  # Metriport
        ("   ", DobProblem.MISSING),
        ("something thats not a date", DobProblem.INVALID),  # Metriport
        (
            "90-01-01",
            DobProblem.AMBIGUOUS,
        ),  # Metriport: "partial ISO date" is invalid; the year is unknowable
        ("03/04/85", DobProblem.AMBIGUOUS),  # two-digit year
        ("Jan 1 51", DobProblem.AMBIGUOUS),
        ("25/12/1990", DobProblem.AMBIGUOUS),  # day-first: other dates in this file can't be trusted
        ("2000-02-30", DobProblem.DAY_OUT_OF_RANGE),  # Metriport (dayjs) would roll over to March 1st
        ("1980-13-01", DobProblem.MONTH_OUT_OF_RANGE),
        ("1990", DobProblem.INVALID),  # dayjs reads a bare year as Jan 1st; a birth date needs a day
        ("1990-05", DobProblem.INVALID),
        ("32874", DobProblem.INVALID),  # an Excel serial day number
        ("1899-12-31", DobProblem.BEFORE_1900),  # Metriport validateDateIsAfter1900
        ("2025-06-16", DobProblem.FUTURE),  # Metriport validateIsPastOrPresent
        ("2999-01-01", DobProblem.FUTURE),
    ],
)
def test_parse_dob_rejects_with_a_reason(value: str, problem: DobProblem) -> None:
    assert parse_dob(value, today=TODAY) == (None, problem)
    assert normalize_dob(value, today=TODAY) is None


# --- gender: Metriport packages/shared/src/domain/__tests__/gender.test.ts -----------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("male", "M"),
        ("Male", "M"),
        ("m", "M"),
        ("M", "M"),
        ("female", "F"),
        ("Female", "F"),
        ("f", "F"),
        ("F", "F"),
        ("other", "O"),
        ("Other", "O"),
        ("o", "O"),
        ("O", "O"),
        ("un", "O"),
        ("Un", "O"),
        ("unknown", "U"),
        ("Unknown", "U"),
        ("u", "U"),
        ("U", "U"),
        ("unk", "U"),
        ("Unk", "U"),
        (" FEMALE ", "F"),  # ours: trimmed and any case
    ],
)
def test_normalize_gender_metriport_spellings(value: str, expected: str) -> None:
    assert normalize_gender(value) == expected


@pytest.mark.parametrize("value", ["", "something thats not a gender", "X", "woman", "2", "N/A"])
def test_normalize_gender_rejects(value: str) -> None:
    assert normalize_gender(value) is None


# --- state: Metriport packages/shared/src/domain/address/__tests__/{state,territory}.test.ts -----------


@pytest.mark.parametrize("value", ["NY", "ny", "New York", "new york", "NEW YORK", "New york", " NY", "NY "])
def test_normalize_state_metriport(value: str) -> None:
    assert normalize_state(value) == "NY"


@pytest.mark.parametrize("value", ["", " ", "ZZ", "Gua", "Ontario", "Calfornia", "XX"])
def test_normalize_state_rejects(value: str) -> None:
    assert normalize_state(value) is None


@pytest.mark.parametrize(("value", "expected"), [("Guam", "GU"), ("GuAm", "GU"), ("puerto rico", "PR")])
def test_normalize_state_territory_names(value: str, expected: str) -> None:
    assert normalize_state(value) == expected


@pytest.mark.parametrize("code", sorted([*US_STATES, *US_TERRITORIES]))
def test_normalize_state_every_code_and_name(code: str) -> None:
    name = {**US_STATES, **US_TERRITORIES}[code]
    assert normalize_state(code) == code
    assert normalize_state(name.upper()) == code


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("N.Y.", "NY"),
        ("D.C.", "DC"),
        ("Washington, D.C.", "DC"),
        ("new  york", "NY"),
        ("U.S. Virgin Islands", "VI"),
    ],
)
def test_normalize_state_punctuated_spellings(value: str, expected: str) -> None:
    assert normalize_state(value) == expected


# --- zip: Metriport packages/shared/src/domain/address/__tests__/zip.test.ts ---------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("54321", "54321"),
        (" 54321", "54321"),  # Metriport: trims prefix
        ("54321 ", "54321"),  # Metriport: trims suffix
        ("123", "00123"),  # Metriport: short zip padded
        ("1234-6677", "01234"),  # Metriport: padded first 4 when dash at position 4
        ("12345-6677", "12345"),  # Metriport: ZIP+4 cut
        ("2468", "02468"),  # Metriport, "examples from the wild"
        ("021341234", "02134"),  # ZIP+4 without the dash
        ("12345-", "12345"),
        ("00901", "00901"),
    ],
)
def test_normalize_zip_accepts(value: str, expected: str) -> None:
    assert normalize_zip(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",  # Metriport
        " ",  # Metriport
        "12",  # Metriport: too short
        "12345-667a",  # Metriport
        "1234a",  # Metriport
        "abcde",
        "123456",  # Metriport keeps the first 5 digits; a 6-digit zip is a typo we can't fix
        "1234567890",
        "-12345",
        "12345-12345",
        "12 345",
    ],
)
def test_normalize_zip_rejects(value: str) -> None:
    assert normalize_zip(value) is None


# --- phone: Metriport packages/shared/src/domain/contact/__tests__/phone.test.ts -----------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234567890", "1234567890"),  # Metriport isPhoneValid
        ("4150000000", "4150000000"),  # Metriport
        (" 4150000000 ", "4150000000"),  # Metriport
        ("(415)-000-0000", "4150000000"),  # Metriport
        ("14150000000", "4150000000"),  # Metriport: leading US code
        ("+14150000000", "4150000000"),  # Metriport
        ("10987654321", "0987654321"),  # Metriport: starts with 1 and has 11 digits
        ("1098765432", "1098765432"),  # Metriport: 10 digits starting with 1 are kept
        ("123-456-7890", "1234567890"),
        ("123 456-7890", "1234567890"),
        ("+1-123-456-7890", "1234567890"),
        ("(415) 555-0123", "4155550123"),
        ("415.555.0123", "4155550123"),
        ("+1 (415) 555 0123", "4155550123"),
        ("0987654321 ext 999", "0987654321"),  # Metriport
        ("415-555-0123 x12", "4155550123"),
        ("415-555-0123 #12", "4155550123"),
        # Metriport keeps the 10 left-most digits after the 1 and answers 9876543215, a different
        # number; we drop the extension instead.
        ("1987654321 ext 555", "1987654321"),
    ],
)
def test_normalize_phone_accepts(value: str, expected: str) -> None:
    assert normalize_phone(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "12345",  # Metriport: fewer than 10 digits
        "123456789",  # Metriport
        "555-01",
        "120987654321",  # Metriport: 12 digits starting with 1 are not a US number
        # Metriport keeps the first 10 digits of any 11+ digit number not starting with 1 (answering
        # 2098765432 here): that is a foreign or mistyped number, not a US one.
        "20987654321",
        "550987654321",
        # Metriport strips every non-digit; letters in a phone cell are a data problem, not formatting.
        " a0987b65 43-21 ",
        "call mornings",
        "4155550123 home",
    ],
)
def test_normalize_phone_rejects(value: str) -> None:
    assert normalize_phone(value) is None


# --- email: Metriport packages/shared/src/domain/contact/__tests__/email.test.ts -----------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("test@example.com", "test@example.com"),  # Metriport
        ("  Test@Example.COM  ", "test@example.com"),  # Metriport
        ("mailto:test@example.com", "test@example.com"),  # Metriport
        ("MAILTO:Jane.Doe@Example.org", "jane.doe@example.org"),
        ("first.o'neil+tag@mail.example.co.uk", "first.o'neil+tag@mail.example.co.uk"),
        ("a_b-c@sub-domain.example.net", "a_b-c@sub-domain.example.net"),
    ],
)
def test_normalize_email_accepts(value: str, expected: str) -> None:
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",  # Metriport
        "invalid-email",  # Metriport
        "jane.doe@",
        "@example.com",
        "jane doe@example.com",
        "jane.doe@example",
        "jane..doe@example.com",
        ".jane@example.com",
        "jane.@example.com",
        "jane@@example.com",
        "jane@example.c",
        "jane@-example.com",
        "jane@example.123",
        "+14155550123",  # a phone typed into the email column
        "josé@example.com",
    ],
)
def test_normalize_email_rejects(value: str) -> None:
    assert normalize_email(value) is None


# --- ssn: Metriport packages/shared/src/domain/patient/__tests__/ssn.test.ts ---------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("000000000", "000000000"),  # Metriport
        (" 000000000 ", "000000000"),  # Metriport
        ("000-00-0000", "000000000"),  # Metriport
        ("a00b0000c000d", "000000000"),  # Metriport: every non-digit is dropped
        ("12345678901234567890", "123456789"),  # Metriport: right-most digits discarded
        ("123", "000000123"),  # Metriport CSV import pads (padZeros=true): spreadsheets drop zeros
        ("12345678", "012345678"),
        ("123-45-6789", "123456789"),
        ("123 45 6789", "123456789"),
    ],
)
def test_normalize_ssn_as_metriport_csv_import(value: str, expected: str) -> None:
    assert normalize_ssn(value) == expected


@pytest.mark.parametrize("value", ["", "1", " ", "n/a", "---"])
def test_normalize_ssn_rejects(value: str) -> None:
    # Metriport: fewer than 2 digits cannot be padded into an SSN.
    assert normalize_ssn(value) is None


# --- address lines: Metriport packages/core/src/command/patient-import/csv/__tests__/address.test.ts ---


def _split(line: str) -> list[str]:
    normalized = normalize_address_line(line)
    assert normalized is not None
    main, unit = split_address_unit(normalized)
    return [main, unit] if unit else [main]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123 main street", "123 Main Street"),  # Metriport: title case
        ("123 main st., apt. 4", "123 Main St Apt 4"),  # Metriport: removes punctuation
        ("123   Main    St   Apt    4", "123 Main St Apt 4"),  # Metriport: multiple spaces
        ("PO BOX 666 (patient has no other address)", "Po Box 666"),  # Metriport: drops instructions
        ("...", None),
    ],
)
def test_normalize_address_line(value: str, expected: str | None) -> None:
    assert normalize_address_line(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "123 Main St Apartment 4",
        "123 Main St Unit 4",
        "123 Main St Suite 4",
        "123 Main St Ste 4",
        "123 Main St #4",
        "123 Main St No 4",
        "123 Main St Floor 4",
        "123 Main St Fl 4",
        "123 Main St Apt 4",
        "123 Main St Apt. 4",
    ],
)
def test_split_address_unit_indicators_metriport(value: str) -> None:
    main, unit = _split(value)
    assert main == "123 Main St"
    assert "4" in unit


# Metriport "redacted from the wild" (expected) and "limitations" cases, with its newest expectations
# (mixed-case lines are kept as typed).
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123 Main St", ["123 Main St"]),
        ("PO BOX 666", ["Po Box 666"]),
        ("APARTMENTS SUPER DUPER APT #1", ["Apartments Super Duper", "Apt #1"]),
        ("123 Main st Apt 1-1", ["123 Main st", "Apt 1-1"]),
        ("123 S Main Hwy Apt 456, Building 7A", ["123 S Main Hwy", "Apt 456 Building 7A"]),
        ("12345 Main Ct #9", ["12345 Main Ct", "#9"]),
        ("12345 Stone Blvd, Unit 1 Apt 234", ["12345 Stone Blvd", "Unit 1 Apt 234"]),
        ("4567 Cloud Ave, Apt Simple CT apt B2", ["4567 Cloud Ave", "Apt Simple CT apt B2"]),
        ("999 W 6th St, Apt 0 ", ["999 W 6th St", "Apt 0"]),
        ("100 Joseph CT APT G", ["100 Joseph CT", "APT G"]),
        ("123 E. Wave Street Apartment A", ["123 E Wave Street", "Apartment A"]),
        ("100 Monroe Ln Blg 45 Apartment 123", ["100 Monroe Ln", "Blg 45 Apartment 123"]),
        ("100 Monroe Ln Building 45 Apartment 123", ["100 Monroe Ln", "Building 45 Apartment 123"]),
        ("1791 W 6th St, Apt 1", ["1791 W 6th St", "Apt 1"]),
        ("1606 S 8th St, Apt A7", ["1606 S 8th St", "Apt A7"]),
        ("8765 MISPELED APTS", ["8765 Mispeled Apts"]),
        ("789 W Broom St, Fl 1", ["789 W Broom St", "Fl 1"]),
        ("852 S Bay Ln Ste 1i", ["852 S Bay Ln", "Ste 1i"]),
        ("505 W 99th St, Rm 201", ["505 W 99th St", "Rm 201"]),
        (
            "Most Western Flat 4567 E Mediterranean RD RM 123",
            ["Most Western Flat 4567 E Mediterranean RD", "RM 123"],
        ),
        ("145 MAPLE Elm LN LOT 45", ["145 MAPLE Elm LN", "LOT 45"]),
        ("420 W UNION RD ", ["420 W Union Rd"]),
        ("9874 N COUNTRY ST TRLR A76", ["9874 N Country St", "Trlr A76"]),
        ("9874 N COUNTRY ST, TRLR A76", ["9874 N Country St", "Trlr A76"]),
        ("12345 High Peak TRL", ["12345 High Peak TRL"]),
        ("1 Limestone Ln, Apt 421 , -2178", ["1 Limestone Ln", "Apt 421 -2178"]),
        ("212 JOHANSON DR\t\t\t\t197707080 ", ["212 Johanson Dr 197707080"]),
        ("2512 Cedar Stone Dr\nApt 1B", ["2512 Cedar Stone Dr", "Apt 1B"]),
        ("777 Alexander CT/Lane Apt. 4C", ["777 Alexander CT/Lane", "Apt 4C"]),
        ("1480 W 3th st Apt A-9", ["1480 W 3th st", "Apt A-9"]),
        ("505 PERSIAN RUG LN APT 123. . .", ["505 Persian Rug Ln", "Apt 123"]),
        ("1508 S-6TH ST,APT T", ["1508 S-6th St", "Apt T"]),
        ("123 Main Circle, Springfield ", ["123 Main Circle Springfield"]),
        ("456 Oak Street Apt#12 Riverside,\tCalifornia", ["456 Oak Street", "Apt#12 Riverside California"]),
        ("789 Pine Street, Apt 101", ["789 Pine Street", "Apt 101"]),
        ("1 SUMMERTOWN NORTH CT Minneapolis", ["1 SUMMERTOWN NORTH CT Minneapolis"]),
        ("1 SUMMERTOWN NORTH CT MINNEAPOLIS", ["1 Summertown North Ct Minneapolis"]),
        # Metriport's "limitations" (lines it knowingly cannot split well):
        ("8547 STORMFLATS DR \t 5", ["8547 Stormflats Dr 5"]),
        ("3456 Old Town Trl F1", ["3456 Old Town Trl F1"]),
        ("420 CARVING LN APT I4 Sacramento", ["420 CARVING LN", "APT I4 Sacramento"]),
        ("101 king avenue 12345", ["101 King Avenue 12345"]),
        ("22 London Circle, Apt 88, Norman,", ["22 London Circle", "Apt 88 Norman"]),
        ("123 Meridian St b23", ["123 Meridian St b23"]),
        ("123 red knight manor dr # A", ["123 red knight manor dr # A"]),
        # Metriport lists this limitation as splitting off "Florida" (the "fl" unit word); we keep the
        # line whole: a state name is not a unit.
        ("1 SUMMERTOWN NORTH CT FLORIDA", ["1 Summertown North Ct Florida"]),
        # Lines holding unit-like letters inside words must not split.
        ("4521 Northwood Ave", ["4521 Northwood Ave"]),
        ("77 Chesterfield Rd", ["77 Chesterfield Rd"]),
        ("123 Main St, 2A", ["123 Main St 2A"]),  # Metriport parseAddress: "2A" alone is not a unit
    ],
)
def test_split_address_unit_from_the_wild(value: str, expected: list[str]) -> None:
    assert _split(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("SAN FRANCISCO", "San Francisco"), ("  st.  louis ", "St. Louis"), ("McAllen", "McAllen"), (" ", None)],
)
def test_normalize_city(value: str, expected: str | None) -> None:
    assert normalize_city(value) == expected


def test_normalize_drivers_license_value_upper_cases() -> None:
    # Metriport: value?.trim().toUpperCase()
    assert normalize_drivers_license_value(" d1234567 ") == "D1234567"
    assert normalize_drivers_license_value("  ") is None


# --- hieOptOut ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "false"),
        (" ", "false"),
        ("false", "false"),
        ("FALSE", "false"),
        ("no", "false"),
        ("0", "false"),
        ("N", "false"),
        ("true", "true"),
        ("True", "true"),
        ("yes", "true"),
        ("1", "true"),
        ("y", "true"),
    ],
)
def test_normalize_hie_opt_out(value: str, expected: str) -> None:
    assert normalize_hie_opt_out(value) == expected


@pytest.mark.parametrize("value", ["maybe", "2", "opt-out", "t"])
def test_normalize_hie_opt_out_rejects(value: str) -> None:
    assert normalize_hie_opt_out(value) is None


# --- Unicode cleaning ---------------------------------------------------------------------------------

NFC_JOSE = "Jos\u00e9 Garc\u00eda"
NFD_JOSE = "Jose\u0301 Garci\u0301a"


@pytest.mark.parametrize(
    "value",
    ["Jane", "\u200bJane", "\ufeffJane", "Ja\u200cne", "Jan\u200de", "Jane\u2060", "\u200b\ufeffJ\u200bane\ufeff"],
)
def test_clean_text_removes_zero_width_characters_and_stray_boms_anywhere(value: str) -> None:
    assert clean_text(value) == "Jane"


def test_clean_text_composes_decomposed_text_to_nfc() -> None:
    assert NFC_JOSE != NFD_JOSE
    assert clean_text(NFD_JOSE) == clean_text(NFC_JOSE) == NFC_JOSE


def test_clean_text_keeps_a_combining_mark_that_has_no_composed_form() -> None:
    # J with an acute accent is visibly not "Jane": it stays as typed (composed as far as Unicode allows).
    assert clean_text("J\u0301ane") == "J\u0301ane"


def test_clean_text_returns_ascii_text_itself() -> None:
    value = "".join(["Ja", "ne"])
    assert clean_text(value) is value


@pytest.mark.parametrize("value", ["\u200bJANE", "\ufeffjane", "JANE\u200d", NFD_JOSE.upper()])
def test_names_are_cleaned_before_casing(value: str) -> None:
    assert normalize_name(value) in ("Jane", NFC_JOSE)
    assert normalize_name(normalize_name(value) or "") == normalize_name(value)


def test_a_name_of_only_invisible_characters_is_missing() -> None:
    assert normalize_name("\u200b\ufeff") is None
