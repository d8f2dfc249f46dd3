"""bulkimport.validation: header mapping, file-level failures, row validation and CsvImport streaming.

Cases marked "Metriport" are ported from metriport/metriport
packages/core/src/command/patient-import/csv/__tests__/{convert-patient,address}.test.ts.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest

from bulkimport.validation import (
    CsvFileError,
    CsvImport,
    FileErrorCode,
    RowResult,
    row_reason,
)
from metriport_bulk.lib.csvio import MAX_FILE_BYTES, MAX_ROWS
from patients.header import build_column_plan, normalize_header_name
from patients.validation import GENDER_MESSAGE, PHONE_HINT, RowError, RowErrorCode

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "csv"
TODAY = datetime.date(2025, 6, 15)
HEADER = ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip"]
GOOD = {
    "firstName": "Jane",
    "lastName": "Doe",
    "dob": "1980-03-04",
    "gender": "F",
    "addressLine1": "123 Main St",
    "city": "Boston",
    "state": "MA",
    "zip": "02134",
}


def csv_bytes(header: list[str], *rows: list[str]) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def import_rows(data: bytes, **kwargs: object) -> list[RowResult]:
    kwargs.setdefault("today", TODAY)
    return list(CsvImport(io.BytesIO(data), **kwargs).rows())  # type: ignore[arg-type]


def one_row(values: dict[str, str]) -> RowResult:
    """Validate a single row given as {column: value}, columns in the given order."""
    (result,) = import_rows(csv_bytes(list(values), list(values.values())))
    return result


def with_(**changes: str) -> dict[str, str]:
    return {**GOOD, **changes}


def without(*columns: str) -> dict[str, str]:
    return {k: v for k, v in GOOD.items() if k not in columns}


def errors_of(result: RowResult) -> list[tuple[str, str, str]]:
    return [(error.code.value, error.field, error.message) for error in result.errors]


def file_error(data: bytes, **kwargs: object) -> CsvFileError:
    with pytest.raises(CsvFileError) as caught:
        import_rows(data, **kwargs)
    return caught.value


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- interface constants ------------------------------------------------------------------------------


def test_limits_match_the_spec(settings) -> None:
    assert MAX_ROWS == 100_000 == settings.BULK_MAX_ROWS
    assert MAX_FILE_BYTES == 50 * 1024 * 1024 == settings.BULK_MAX_FILE_BYTES


def test_error_codes_are_lower_snake_strings() -> None:
    for code in [*FileErrorCode, *RowErrorCode]:
        assert code.value == code.value.lower() and " " not in code.value
        assert code == code.value


# --- header mapping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (" First Name ", "firstname"),
        ("first_name", "firstname"),
        ("ZIP-2", "zip-2"),
        ("E-mail", "e-mail"),
        ("\u200efirst\u00adName\u3164", "firstname"),  # default-ignorables pasted into a header
    ],
)
def test_normalize_header_name(cell: str, expected: str) -> None:
    assert normalize_header_name(cell) == expected


def test_header_aliases_spacing_and_case_map_to_fields() -> None:
    (result,) = import_rows(fixture("aliases.csv"))
    assert result.valid, errors_of(result)
    assert result.normalized == {
        "firstName": "Jane",
        "lastName": "Doe",
        "dob": "1980-03-04",
        "genderAtBirth": "F",
        "externalId": "MRN-1",
        "ssn": None,
        "driversLicense": {"value": "D1234567", "state": "MA"},
        "addresses": [
            {
                "addressLine1": "123 Main St",
                "addressLine2": "Apt 4",
                "city": "Boston",
                "state": "MA",
                "zip": "02134",
                "country": "USA",
            }
        ],
        "phones": ["6175550123"],
        "emails": [],  # "E-mail" is not Metriport's "email": an unknown column, kept but not read
        "hieOptOut": True,
    }


def test_unknown_columns_are_kept_in_header_and_raw_but_ignored() -> None:
    data = csv_bytes([*HEADER, "notes", "cohort1"], [*GOOD.values(), "call after 5", "VIP"])
    imported = CsvImport(io.BytesIO(data), today=TODAY)
    assert imported.header == [*HEADER, "notes", "cohort1"]
    (result,) = imported.rows()
    assert result.valid
    assert result.raw[-2:] == ["call after 5", "VIP"]


def test_header_is_kept_as_received_with_bom_stripped() -> None:
    imported = CsvImport(io.BytesIO(fixture("bom_utf8.csv")), today=TODAY)
    assert imported.header == HEADER


@pytest.mark.parametrize(
    "columns",
    [
        ["zip", "Z.I.P."],
        ["zipCode", "Zip Code"],
        ["gender", "genderAtBirth"],
        ["id", "externalId"],
        ["zip-1", "Zip 1".replace(" ", "-")],
        ["phone-1", "PHONE-1"],
        ["phone-2", "phone_2"],
        ["driversLicense", "driversLicenceNo"],
        ["address1-2", "Address1-2"],
        ["notes", "NOTES"],
    ],
)
def test_duplicate_columns_after_normalization_fail_the_file(columns: list[str]) -> None:
    header = [*HEADER, *columns]
    header = list(dict.fromkeys(header))  # "zip" may already be there; keep the test's duplicate
    if len(header) == len(HEADER) + len(columns) - 1:
        header.append(columns[-1])
    error = file_error(csv_bytes(header, [""] * len(header)))
    assert error.code == FileErrorCode.DUPLICATE_COLUMNS


# Header layouts Metriport's importer reads (packages/core/src/command/patient-import/csv/address.ts and
# contact.ts look up the un-suffixed name and then -1..-10, and `zip ?? zipCode`).

ADDRESS_1 = ["addressLine1-1", "city-1", "state-1", "zip-1"]


def test_unsuffixed_address_group_beside_a_first_indexed_group_is_two_addresses() -> None:
    header = [*HEADER, *ADDRESS_1]
    (result,) = import_rows(csv_bytes(header, [*GOOD.values(), "9 Elm Ave", "Providence", "RI", "02903"]))
    assert result.valid
    assert [(a["addressLine1"], a["zip"]) for a in result.normalized["addresses"]] == [
        ("123 Main St", "02134"),
        ("9 Elm Ave", "02903"),
    ]


def test_incomplete_unsuffixed_group_beside_a_first_indexed_group_is_named_without_suffix() -> None:
    header = [*HEADER, *ADDRESS_1]
    row = [*GOOD.values(), "9 Elm Ave", "Providence", "RI", ""]
    row[HEADER.index("city")] = ""
    (result,) = import_rows(csv_bytes(header, row))
    assert [(e.field, e.message) for e in result.errors][:2] == [("city", "Missing city"), ("zip-1", "Missing zip-1")]


def test_unsuffixed_phone_and_email_beside_the_first_indexed_ones_are_two_each() -> None:
    header = [*HEADER, "phone", "phone-1", "email", "email-1"]
    row = [*GOOD.values(), "617 555 0100", "(617) 555-0101", "A@Example.com", "b@example.com"]
    (result,) = import_rows(csv_bytes(header, row))
    assert result.valid
    assert result.normalized["phones"] == ["6175550100", "6175550101"]
    assert result.normalized["emails"] == ["a@example.com", "b@example.com"]


def test_invalid_unsuffixed_phone_beside_phone_1_names_the_column() -> None:
    header = [*HEADER, "phone", "phone-1"]
    (result,) = import_rows(csv_bytes(header, [*GOOD.values(), "555", "555"]))
    assert [e.message for e in result.errors] == [f"Invalid phone {PHONE_HINT}", f"Invalid phone-1 {PHONE_HINT}"]


@pytest.mark.parametrize(
    ("columns", "cells", "expected"),
    [
        (["zip", "zipCode"], ["02134", "99999"], "02134"),
        (["zipCode", "zip"], ["99999", "02134"], "02134"),
        (["Zip Code", "ZIP"], ["99999", "02134"], "02134"),
        (["zip-2", "zipCode-2"], ["02903", "99999"], "02903"),
    ],
)
def test_zip_beside_its_alias_zipcode_is_not_a_duplicate_the_canonical_name_wins(
    columns: list[str], cells: list[str], expected: str
) -> None:
    base = [c for c in HEADER if c != "zip"]
    values = [GOOD[c] for c in base]
    extra_group = ["addressLine1-2", "city-2", "state-2"] if columns[0].endswith("-2") else []
    extra_values = ["9 Elm Ave", "Providence", "RI"] if extra_group else []
    if not extra_group:
        header, row = [*base, *columns], [*values, *cells]
    else:
        header, row = [*HEADER, *extra_group, *columns], [*GOOD.values(), *extra_values, *cells]
    imported = CsvImport(io.BytesIO(csv_bytes(header, row)), today=TODAY)
    assert imported.header == header  # the alias stays a column of the file, echoed in the result
    (result,) = imported.rows()
    assert result.valid
    assert result.normalized["addresses"][-1]["zip"] == expected
    assert result.raw[-2:] == cells


def test_empty_canonical_zip_beside_a_filled_alias_is_still_the_one_read() -> None:
    # Metriport's `zip ?? zipCode` falls back only when there is no zip column at all.
    header = [*HEADER, "zipCode"]
    row = [*GOOD.values(), "02134"]
    row[HEADER.index("zip")] = ""
    (result,) = import_rows(csv_bytes(header, row))
    assert [e.message for e in result.errors][:1] == ["Missing zip"]


def test_address1_beside_addressline1_reads_the_canonical_one() -> None:
    (result,) = import_rows(csv_bytes([*HEADER, "address1"], [*GOOD.values(), "1 Other Rd"]))
    assert result.valid and result.normalized["addresses"][0]["addressLine1"] == "123 Main St"


def test_duplicate_columns_fixture_names_the_field_and_positions() -> None:
    error = file_error(fixture("duplicate_columns.csv"))
    assert error.code == FileErrorCode.DUPLICATE_COLUMNS
    assert "zip in columns 8, 9" in error.message


def test_several_empty_header_cells_are_not_duplicates() -> None:
    # Spreadsheets export trailing empty header cells; they are unnamed columns, kept as is.
    (result,) = import_rows(csv_bytes([*HEADER, "", ""], [*GOOD.values(), "", ""]))
    assert result.valid


def test_first_line_of_data_fails_as_no_header_without_quoting_it() -> None:
    error = file_error(fixture("no_header.csv"))
    assert error.code == FileErrorCode.NO_HEADER
    for value in ("Jane", "Doe", "1980-03-04", "Boston", "02134"):
        assert value not in error.message


def test_missing_required_columns_are_listed() -> None:
    error = file_error(fixture("missing_columns.csv"))
    assert error.code == FileErrorCode.MISSING_COLUMNS
    assert "dob" in error.message and "zip" in error.message
    assert "firstName," not in error.message.split("Required")[0]


@pytest.mark.parametrize("column", ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip"])
def test_each_required_column_is_required(column: str) -> None:
    values = without(column)
    error = file_error(csv_bytes(list(values), list(values.values())))
    assert error.code == FileErrorCode.MISSING_COLUMNS
    assert column in error.message


def test_missing_address_columns_of_an_indexed_group_are_named_with_the_index() -> None:
    header = ["firstName", "lastName", "dob", "gender", "addressLine1-2", "city-2"]
    error = file_error(csv_bytes(header, ["a"] * 6))
    assert "state-2" in error.message and "zip-2" in error.message


def test_one_complete_address_group_satisfies_the_header() -> None:
    header = ["firstName", "lastName", "dob", "gender", "address1-3", "city-3", "state-3", "zip code-3"]
    (result,) = import_rows(csv_bytes(header, ["Jane", "Doe", "1980-03-04", "F", "1 Main St", "Boston", "MA", "02134"]))
    assert result.valid


def test_index_above_ten_is_an_unknown_column() -> None:
    plan = build_column_plan([*HEADER, "phone-11", "email-0", "zip-01"])
    assert plan.phones == () and plan.emails == ()
    assert [group.index for group in plan.addresses] == [0]


def test_columns_that_look_indexed_but_are_out_of_range_are_warned_about() -> None:
    """SPEC §6: never silently ignored. The warning names the column number and the field, not the cell."""
    plan = build_column_plan([*HEADER, "Email-0", "phone-01", "addressLine1-11", "phone0", "zipCode-12", "notes-1"])
    assert plan.warnings == (
        "Column 9 (email-0) is not read: indexes run from 1 to 10, without leading zeros (e.g. email-1).",
        "Column 10 (phone-01) is not read: indexes run from 1 to 10, without leading zeros (e.g. phone-1).",
        "Column 11 (addressLine1-11) is not read: indexes run from 1 to 10, without leading zeros "
        "(e.g. addressLine1-1).",
        "Column 12 (phone-0) is not read: indexes run from 1 to 10, without leading zeros (e.g. phone-1).",
        "Column 13 (zip-12) is not read: indexes run from 1 to 10, without leading zeros (e.g. zip-1).",
    )
    assert build_column_plan([*HEADER, "phone-1", "email-10", "notes"]).warnings == ()


def test_column_plan_names_groups_as_the_header_does() -> None:
    plan = build_column_plan([*HEADER, "addressLine1-2", "city-2", "state-2", "zip-2", "phone", "email-3"])
    assert [(group.index, group.suffix) for group in plan.addresses] == [(0, ""), (2, "-2")]
    assert plan.phones == (("phone", 12),)
    assert plan.emails == (("email-3", 13),)


# --- file-level failures through CsvImport ------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.csv", "bom_only.csv", "blank_only.csv"])
def test_empty_files_fail_as_empty(name: str) -> None:
    assert file_error(fixture(name)).code == FileErrorCode.EMPTY_FILE


def test_header_only_fails_as_empty_before_any_row_is_processed() -> None:
    with pytest.raises(CsvFileError) as caught:
        CsvImport(io.BytesIO(fixture("header_only.csv")), today=TODAY)
    assert caught.value.code == FileErrorCode.EMPTY_FILE
    assert "no patient rows" in caught.value.message


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("latin1.csv", FileErrorCode.ENCODING),
        ("utf16_bom.csv", FileErrorCode.ENCODING),
        ("utf16le_nobom.csv", FileErrorCode.ENCODING),
        ("binary_nul.csv", FileErrorCode.BINARY_FILE),
        ("xlsx_renamed.csv", FileErrorCode.BINARY_FILE),
        ("unterminated_quote.csv", FileErrorCode.MALFORMED),
        ("stray_quote.csv", FileErrorCode.MALFORMED),
    ],
)
def test_awkward_fixture_files_fail_with_their_code(name: str, code: FileErrorCode) -> None:
    assert file_error(fixture(name)).code == code


@pytest.mark.parametrize("name", ["valid_lf.csv", "crlf.csv", "cr_only.csv", "bom_utf8.csv"])
def test_line_endings_and_bom_validate_the_same(name: str) -> None:
    results = import_rows(fixture(name))
    assert [r.number for r in results] == [1, 2]
    assert all(r.valid for r in results)
    assert [r.normalized["lastName"] for r in results if r.normalized] == ["Doe", "Smith"]


def test_quoted_commas_and_newlines_stay_in_their_cell() -> None:
    first, second = import_rows(fixture("quoted_fields.csv"))
    assert first.valid and second.valid
    assert first.normalized and first.normalized["firstName"] == 'Mary "Molly"'
    assert first.normalized["addresses"][0]["addressLine1"] == "12 Oak St"
    assert first.normalized["addresses"][0]["addressLine2"] == "Apt 3"
    assert second.normalized and second.normalized["lastName"] == "De La Cruz"
    assert second.normalized["addresses"][0]["addressLine2"] == "Unit 2"
    assert second.raw[1] == "De La\nCruz"  # raw stays exactly as received


def test_blank_lines_are_skipped_and_do_not_count_as_rows() -> None:
    # Empty lines, lines of bare commas and lines of spaces are skipped wherever they are, and row
    # numbers count only the data rows: the second patient is row 2, not row 5.
    results = import_rows(fixture("blank_lines.csv"))
    assert [(r.number, r.raw[0]) for r in results] == [(1, "Jane"), (2, "John")]
    assert all(r.valid for r in results)


def test_blank_lines_do_not_count_toward_the_row_limit() -> None:
    data = csv_bytes(HEADER, list(GOOD.values()), [""] * 8, [""] * 8, list(GOOD.values()))
    assert len(import_rows(data, max_rows=2)) == 2


def test_ragged_rows_are_row_errors_not_file_errors() -> None:
    too_few, too_many, trailing_empty = import_rows(fixture("ragged.csv"))
    assert errors_of(too_few)[0][:2] == ("too_few_cells", "row")
    assert "6 cells but the header has 8" in too_few.errors[0].message
    assert too_few.normalized is None
    assert errors_of(too_many)[0][:2] == ("too_many_cells", "row")
    assert too_many.raw[5] == " Suite 5"  # kept as received for the result file
    assert len(too_many.raw) == 8  # cells past the header are dropped: the result file never has them
    # Extra cells that are all empty (trailing commas) lose nothing: the row is valid.
    assert trailing_empty.valid, errors_of(trailing_empty)


def test_too_many_rows_fails_mid_stream_after_the_limit() -> None:
    data = csv_bytes(HEADER, *([list(GOOD.values())] * 4))
    imported = CsvImport(io.BytesIO(data), max_rows=3, today=TODAY)
    seen = []
    with pytest.raises(CsvFileError) as caught:
        for result in imported.rows():
            seen.append(result.number)
    assert caught.value.code == FileErrorCode.TOO_MANY_ROWS
    assert "3" in caught.value.message
    assert seen == [1, 2, 3]


def test_exactly_max_rows_is_accepted() -> None:
    data = csv_bytes(HEADER, *([list(GOOD.values())] * 3))
    assert len(import_rows(data, max_rows=3)) == 3


def test_too_large_upload_fails() -> None:
    data = csv_bytes(HEADER, *([list(GOOD.values())] * 100))
    assert file_error(data, max_bytes=len(data) - 1).code == FileErrorCode.TOO_LARGE


def test_non_utf8_byte_deep_in_the_file_fails_mid_stream_after_valid_rows() -> None:
    good = csv_bytes(HEADER, *([list(GOOD.values())] * 2000))
    data = good + "José,Muñoz,1980-03-04,M,1 Main St,Boston,MA,02134\n".encode("latin-1")
    imported = CsvImport(io.BytesIO(data), today=TODAY)
    seen = 0
    with pytest.raises(CsvFileError) as caught:
        for _ in imported.rows():
            seen += 1
    assert caught.value.code == FileErrorCode.ENCODING
    assert seen > 0


def test_rows_can_only_be_iterated_once() -> None:
    imported = CsvImport(io.BytesIO(fixture("valid_lf.csv")), today=TODAY)
    list(imported.rows())
    with pytest.raises(RuntimeError):
        imported.rows()


def test_bytes_read_reports_progress() -> None:
    data = fixture("valid_lf.csv")
    imported = CsvImport(io.BytesIO(data), today=TODAY)
    list(imported.rows())
    assert imported.bytes_read == len(data)


# --- rows: Metriport convert-patient.test.ts mapCsvPatientToMetriportPatient -----------------------------


def test_metriport_returns_patient_when_all_fields_are_present() -> None:
    result = one_row(with_(dob="1974-08-19T07:21:33.123Z", gender="male"))
    assert result.valid
    assert result.normalized is not None
    assert result.normalized["dob"] == "1974-08-19"
    assert result.normalized["genderAtBirth"] == "M"
    assert result.normalized["addresses"] == [
        {
            "addressLine1": "123 Main St",
            "addressLine2": None,
            "city": "Boston",
            "state": "MA",
            "zip": "02134",
            "country": "USA",
        }
    ]


@pytest.mark.parametrize(
    ("column", "field", "message"),
    [
        ("firstName", "firstName", "Missing firstName"),
        ("lastName", "lastName", "Missing lastName"),
        ("dob", "dob", "Missing/invalid dob"),
        ("gender", "gender", GENDER_MESSAGE),
    ],
)
def test_metriport_indicates_missing_field(column: str, field: str, message: str) -> None:
    result = one_row(with_(**{column: ""}))
    assert not result.valid and result.normalized is None
    assert (field, message) in [(e.field, e.message) for e in result.errors]


def test_metriport_indicates_missing_address() -> None:
    result = one_row(with_(addressLine1=""))
    assert ("incomplete_address", "addressLine1", "Missing addressLine1") in errors_of(result)
    # Metriport adds "Patient has no address" too; the row has one, incomplete: that error says it (issue 15).
    assert "no_address" not in [code for code, *_ in errors_of(result)]


def test_a_misspelt_state_is_its_own_error_not_a_missing_address() -> None:
    assert errors_of(one_row(with_(state="Calfornia"))) == [
        ("invalid_state", "state", "Invalid state (use a US state or territory, as a 2-letter code or name)")
    ]


@pytest.mark.parametrize(
    ("dob", "message"),
    [
        ("1975-13-01", "Missing/invalid dob (the month is out of range: months run from 01 to 12)"),
        ("13/13/1975", "Missing/invalid dob (the month is out of range: months run from 01 to 12)"),
        ("2001-02-30", "Missing/invalid dob (the day is out of range for that month)"),
        ("4/31/1990", "Missing/invalid dob (the day is out of range for that month)"),
        ("Feb 30, 1990", "Missing/invalid dob (the day is out of range for that month)"),
        ("1975-1x-01", "Missing/invalid dob (use YYYY-MM-DD)"),
    ],
)
def test_a_dob_in_an_accepted_form_that_does_not_exist_says_which_part_is_wrong(dob: str, message: str) -> None:
    assert errors_of(one_row(with_(dob=dob))) == [("invalid_dob", "dob", message)]


def test_metriport_indicates_missing_multiple_fields() -> None:
    result = one_row(with_(firstName="", lastName="", dob="", gender=""))
    assert [(e.field, e.message) for e in result.errors] == [
        ("firstName", "Missing firstName"),
        ("lastName", "Missing lastName"),
        ("dob", "Missing/invalid dob"),
        ("gender", GENDER_MESSAGE),
    ]


def test_metriport_indicates_invalid_dob_when_dob_is_partial_iso_date() -> None:
    (error,) = one_row(with_(dob="90-01-01")).errors
    assert error.field == "dob"
    assert error.message.startswith("Missing/invalid dob")
    assert "YYYY-MM-DD" in error.message  # and says how to fix it


# --- rows: Metriport convert-patient.test.ts mapCsvDriversLicense ----------------------------------------

DL_ERROR_STATE = ("invalid_drivers_license", "driversLicense", "Invalid drivers license (missing state)")
DL_ERROR_VALUE = ("invalid_drivers_license", "driversLicense", "Invalid drivers license (missing value)")


@pytest.mark.parametrize(
    ("number", "state", "expected", "errors"),
    [
        ("123456789", "CA", {"value": "123456789", "state": "CA"}, []),  # all fields present
        ("123456789", "", None, [DL_ERROR_STATE]),  # value present but state missing
        ("", "CA", None, [DL_ERROR_VALUE]),  # state present but value missing
        ("", "zz", None, []),  # no value and an invalid state: nothing
        ("123456789", "zz", None, [DL_ERROR_STATE]),  # value present and state invalid
        ("", "", None, []),  # no fields present
    ],
)
def test_metriport_drivers_license(number: str, state: str, expected: object, errors: list[object]) -> None:
    result = one_row({**GOOD, "driverslicenceno": number, "driverslicencestate": state})
    assert errors_of(result) == errors
    if not errors:
        assert result.normalized is not None
        assert result.normalized["driversLicense"] == expected


def test_metriport_drivers_license_columns_absent_means_none() -> None:
    assert one_row(GOOD).normalized["driversLicense"] is None  # type: ignore[index]


@pytest.mark.parametrize("column", ["driversLicense", "driversLicenseValue", "DriversLicenceNumber"])
def test_drivers_license_value_column_spellings(column: str) -> None:
    result = one_row({**GOOD, column: " x12 ", "drivers licence state": "California"})
    assert result.normalized is not None
    assert result.normalized["driversLicense"] == {"value": "X12", "state": "CA"}


# --- rows: Metriport address.test.ts parseAddress -------------------------------------------------------


def test_metriport_splits_address_line_1_when_there_is_no_address_line_2() -> None:
    result = one_row({**with_(addressLine1="123 Main Street, Apt 456", city="Springfield", state="CA", zip="90210")})
    address = result.normalized["addresses"][0]  # type: ignore[index]
    assert (address["addressLine1"], address["addressLine2"]) == ("123 Main Street", "Apt 456")
    assert (address["city"], address["state"], address["zip"]) == ("Springfield", "CA", "90210")


def test_metriport_keeps_address_line_2_and_line_1_whole_when_both_are_given() -> None:
    values = {**GOOD, "addressLine1": "123 Main Street, Apt 456", "addressLine2": "Ri"}
    address = one_row(values).normalized["addresses"][0]  # type: ignore[index]
    assert (address["addressLine1"], address["addressLine2"]) == ("123 Main Street, Apt 456", "Ri")


def test_metriport_returns_the_main_address_and_no_unit_for_a_bare_suffix() -> None:
    address = one_row(with_(addressLine1="123 Main St, 2A")).normalized["addresses"][0]  # type: ignore[index]
    assert (address["addressLine1"], address["addressLine2"]) == ("123 Main St 2A", None)


# --- rows: our rules and the messy cases --------------------------------------------------------------


def test_normalized_dict_has_exactly_the_agreed_keys() -> None:
    result = one_row(GOOD)
    assert result.normalized is not None
    assert set(result.normalized) == {
        "firstName",
        "lastName",
        "dob",
        "genderAtBirth",
        "externalId",
        "ssn",
        "driversLicense",
        "addresses",
        "phones",
        "emails",
        "hieOptOut",
    }
    assert result.normalized["hieOptOut"] is False
    assert result.normalized["phones"] == [] and result.normalized["emails"] == []


def test_names_are_trimmed_and_title_cased_unless_mixed_case() -> None:
    result = one_row(with_(firstName="  JANE ", lastName="McDONALD"))
    assert result.normalized is not None
    assert (result.normalized["firstName"], result.normalized["lastName"]) == ("Jane", "McDONALD")


@pytest.mark.parametrize(
    ("dob", "code"),
    [
        ("2025-06-16", "future_dob"),
        ("03/04/85", "ambiguous_dob"),
        ("25/12/1980", "ambiguous_dob"),
        ("1899-12-31", "invalid_dob"),
        ("1980-02-30", "invalid_dob"),
        ("", "missing_dob"),
    ],
)
def test_dob_problems_have_codes_and_say_how_to_fix(dob: str, code: str) -> None:
    (error,) = one_row(with_(dob=dob)).errors
    assert (error.code.value, error.field) == (code, "dob")
    assert error.message.startswith("Missing/invalid dob")


def test_dob_today_is_accepted_and_today_is_injectable() -> None:
    assert one_row(with_(dob="2025-06-15")).valid
    (result,) = import_rows(csv_bytes(HEADER, list(with_(dob="2025-06-15").values())), today=datetime.date(2025, 6, 14))
    assert [e.code for e in result.errors] == [RowErrorCode.FUTURE_DOB]


def test_us_spreadsheet_dob_is_accepted() -> None:
    result = one_row(with_(dob="3/4/1980"))
    assert result.normalized is not None and result.normalized["dob"] == "1980-03-04"


@pytest.mark.parametrize(
    ("gender", "code"), [("", "missing_gender"), ("X", "invalid_gender"), ("  ", "missing_gender")]
)
def test_gender_missing_and_invalid_codes(gender: str, code: str) -> None:
    assert errors_of(one_row(with_(gender=gender))) == [(code, "gender", GENDER_MESSAGE)]


def test_state_names_and_territories_normalize_to_codes() -> None:
    result = one_row(with_(state="puerto rico", zip="901"))
    address = result.normalized["addresses"][0]  # type: ignore[index]
    assert (address["state"], address["zip"]) == ("PR", "00901")


def test_invalid_state_and_zip_name_their_column() -> None:
    result = one_row(with_(state="Ontario", zip="K1A 0B1"))
    codes = [(e.code.value, e.field) for e in result.errors]
    assert codes == [("invalid_state", "state"), ("invalid_zip", "zip")]  # no "no address": it has one
    assert result.errors[0].message.startswith("Invalid state")
    assert result.errors[1].message.startswith("Invalid zip")


INDEXED = [
    "firstName",
    "lastName",
    "dob",
    "gender",
    "addressLine1-1",
    "city-1",
    "state-1",
    "zip-1",
    "addressLine1-2",
    "city-2",
    "state-2",
    "zip-2",
]


def test_second_address_group_with_any_value_must_be_complete() -> None:
    row = ["Jane", "Doe", "1980-03-04", "F", "1 Main St", "Boston", "MA", "02134", "7 Pine Rd", "", "", ""]
    (result,) = import_rows(csv_bytes(INDEXED, row))
    assert errors_of(result) == [
        ("incomplete_address", "city-2", "Missing city-2"),
        ("incomplete_address", "state-2", "Missing state-2"),
        ("incomplete_address", "zip-2", "Missing zip-2"),
    ]


def test_empty_and_whitespace_address_groups_are_ignored() -> None:
    rows = [
        ["Jane", "Doe", "1980-03-04", "F", "1 Main St", "Boston", "MA", "02134", "", "", "", ""],
        ["Jane", "Doe", "1980-03-04", "F", "1 Main St", "Boston", "MA", "02134", " ", "  ", "\t", ""],
        ["John", "Roe", "1975-12-31", "M", "", "", "", "", "9 Elm Ave", "Providence", "RI", "02903"],
    ]
    results = import_rows(csv_bytes(INDEXED, *rows))
    assert all(r.valid for r in results), [errors_of(r) for r in results]
    assert [len(r.normalized["addresses"]) for r in results] == [1, 1, 1]  # type: ignore[index]
    assert results[2].normalized["addresses"][0]["state"] == "RI"  # type: ignore[index]


def test_indexed_groups_fixture() -> None:
    first, second, third = import_rows(fixture("indexed_groups.csv"))
    assert first.valid and second.valid
    assert first.normalized["phones"] == ["6175550100", "6175550101"]  # type: ignore[index]
    assert first.normalized["emails"] == ["a@example.com"]  # type: ignore[index]
    assert [e.message for e in third.errors] == ["Missing city-2", "Missing state-2", "Missing zip-2"]


def test_row_without_any_address_value() -> None:
    result = one_row(with_(addressLine1="", city="", state="", zip=""))
    assert errors_of(result) == [("no_address", "address", "Patient has no address")]


def test_phone_and_email_errors_name_the_indexed_column() -> None:
    values = {
        **GOOD,
        "phone": "555-01",
        "phone-2": "(617) 555-0100",
        "email-1": "jane@",
        "email-2": "Jane@Example.com",
    }
    result = one_row(values)
    assert errors_of(result) == [
        ("invalid_phone", "phone", f"Invalid phone {PHONE_HINT}"),
        ("invalid_email", "email-1", "Invalid email-1"),
    ]


def test_contacts_are_normalized_in_index_order() -> None:
    values = {
        **GOOD,
        "email-2": "MAILTO:B@Example.com",
        "phone-2": "+1 617 555 0101",
        "email-1": "a@example.com",
    }
    result = one_row(values)
    assert result.normalized is not None
    assert result.normalized["phones"] == ["6175550101"]
    assert result.normalized["emails"] == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize(
    ("ssn", "expected"), [("123-45-6789", "123456789"), ("", None), ("  ", None), ("12345", "000012345")]
)
def test_ssn_is_optional_and_normalized(ssn: str, expected: str | None) -> None:
    result = one_row({**GOOD, "ssn": ssn})
    assert result.normalized is not None and result.normalized["ssn"] == expected


def test_invalid_ssn_is_an_error_as_in_metriport() -> None:
    assert errors_of(one_row({**GOOD, "ssn": "1"})) == [("invalid_ssn", "ssn", "Invalid SSN")]


@pytest.mark.parametrize(
    ("value", "expected"), [("yes", True), ("TRUE", True), ("1", True), ("no", False), ("", False)]
)
def test_hie_opt_out(value: str, expected: bool) -> None:
    assert one_row({**GOOD, "hieOptOut": value}).normalized["hieOptOut"] is expected  # type: ignore[index]


def test_invalid_hie_opt_out_is_an_error() -> None:
    assert [e.code for e in one_row({**GOOD, "hieOptOut": "maybe"}).errors] == [RowErrorCode.INVALID_HIE_OPT_OUT]


def test_external_id_from_id_column() -> None:
    assert one_row({**GOOD, "ID": "  A-17 "}).normalized["externalId"] == "A-17"  # type: ignore[index]


def test_no_cell_value_appears_in_any_error_message() -> None:
    # Every value is distinctive and wrong; no message may echo it (messages reach logs and files).
    secrets = {
        "firstName": " ",
        "lastName": "  ",
        "dob": "SECRETDOB-1985",
        "gender": "SECRETGENDER",
        "addressLine1": "SECRETSTREET",
        "city": "",
        "state": "SECRETSTATE",
        "zip": "SECRETZIP",
        "phone-1": "SECRETPHONE",
        "email-1": "SECRETEMAIL@",
        "ssn": "S",
        "driversLicenseNo": "SECRETDL",
        "driversLicenseState": "SECRETDLSTATE",
        "hieOptOut": "SECRETFLAG",
    }
    result = one_row(secrets)
    assert len(result.errors) >= 10
    for error in result.errors:
        assert "SECRET" not in error.message.upper()
        assert "1985" not in error.message


def test_row_reason_joins_messages_like_metriport() -> None:
    errors = [
        RowError(RowErrorCode.MISSING_FIRST_NAME, "firstName", "Missing firstName"),
        RowError(RowErrorCode.MISSING_DOB, "dob", "Missing/invalid dob"),
    ]
    assert row_reason(errors) == "Missing firstName; Missing/invalid dob"
    assert row_reason([]) == ""


def test_row_result_valid_and_raw_as_received() -> None:
    (result,) = import_rows(csv_bytes(HEADER, ["  jane ", "DOE", "3/4/1980", "f", "1 main st", "boston", "ma", "2134"]))
    assert result.valid and result.errors == []
    assert result.raw == ["  jane ", "DOE", "3/4/1980", "f", "1 main st", "boston", "ma", "2134"]
    assert result.number == 1


def test_trailing_empty_header_cells_are_dropped():
    import io

    from bulkimport.validation import CsvImport

    body = b"firstName,lastName,dob,gender,addressLine1,city,state,zip,,,\nAnn,Doe,1980-01-02,F,1 A St,X,NY,10001,,,\n"
    csv_import = CsvImport(io.BytesIO(body))
    assert csv_import.header == ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip"]
    assert [row.valid for row in csv_import.rows()] == [True]


def test_too_many_columns_is_a_file_error_naming_the_limit():
    import io

    import pytest

    from bulkimport.validation import MAX_COLUMNS, CsvFileError, CsvImport, FileErrorCode

    extra = ",".join(f"custom{i}" for i in range(MAX_COLUMNS))
    body = f"firstName,lastName,dob,gender,addressLine1,city,state,zip,{extra}\n".encode()
    with pytest.raises(CsvFileError) as raised:
        CsvImport(io.BytesIO(body))
    assert raised.value.code == FileErrorCode.TOO_MANY_COLUMNS
    assert str(MAX_COLUMNS) in raised.value.message


# --- Unicode: every cell NFC and without zero-width characters before validation ----------------------


@pytest.mark.parametrize(
    "first",
    ["Jane", "\u200bJane", "\ufeffJane", "Jane\u2060", "Ja\u200bne"],
)
def test_invisible_characters_in_any_cell_do_not_change_the_normalized_row(first: str) -> None:
    plain = one_row(GOOD).normalized
    values = {**GOOD, "firstName": first, "zip": "\u200b02134", "state": "M\ufeffA", "dob": "1980-03-04\u200d"}
    result = one_row(values)
    assert result.valid, result.errors
    assert result.normalized == plain
    assert result.raw[0] == first  # the result file echoes the cell as received


def test_nfc_and_nfd_spellings_normalize_to_the_same_row() -> None:
    composed = one_row({**GOOD, "firstName": "Jos\u00e9", "lastName": "Garc\u00eda", "city": "San Germ\u00e1n"})
    decomposed = one_row({**GOOD, "firstName": "Jose\u0301", "lastName": "Garci\u0301a", "city": "San Germa\u0301n"})
    assert composed.valid and decomposed.valid
    assert composed.normalized == decomposed.normalized
    assert decomposed.normalized["firstName"] == "Jos\u00e9"


def test_a_row_of_only_invisible_characters_is_a_blank_line() -> None:
    rows = import_rows(csv_bytes(HEADER, list(GOOD.values()), ["\u200b"] * len(HEADER), list(GOOD.values())))
    assert [r.number for r in rows] == [1, 2]


def test_zero_width_characters_in_header_cells_are_ignored() -> None:
    header = ["\u200bfirstName", "last\u200dName", "dob\ufeff", *HEADER[3:]]
    (result,) = import_rows(csv_bytes(header, list(GOOD.values())))
    assert result.valid
