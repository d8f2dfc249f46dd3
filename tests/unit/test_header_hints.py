"""Header mistakes are told with what to do: another delimiter (semicolons, tabs) is named as such instead of
"not a header", and an unknown column near a known one gets "did you mean …?" (a warning when the file is
otherwise readable, the hint of the missing-column error when the column it means is required)."""

import io

import pytest

from bulkimport.validation import CsvImport
from metriport_bulk.lib.csvio import CsvFileError, FileErrorCode
from patients.header import build_column_plan

REQUIRED = ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip"]
ROW = ["Jane", "Doe", "1980-02-03", "F", "1 Main St", "Springfield", "IL", "62701"]


@pytest.mark.parametrize(("delimiter", "named"), [(";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")])
def test_a_file_with_another_delimiter_is_named_so(delimiter, named):
    body = (delimiter.join(REQUIRED) + "\n" + delimiter.join(ROW) + "\n").encode()
    with pytest.raises(CsvFileError) as caught:
        CsvImport(io.BytesIO(body))
    assert caught.value.code == FileErrorCode.WRONG_DELIMITER
    assert f"separated by {named}, not commas" in caught.value.message
    assert "Comma delimited" in caught.value.message


def test_a_first_line_of_data_is_still_not_a_header():
    with pytest.raises(CsvFileError) as caught:
        build_column_plan(ROW)
    assert caught.value.code == FileErrorCode.NO_HEADER


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("birth date", "dob"),
        ("Date of Birth", "dob"),
        ("Sex", "gender"),
        ("Street", "addressLine1"),
        ("Postal Code", "zip"),
        ("surname", "lastName"),
        ("fisrtName", "firstName"),
    ],
)
def test_a_missing_required_column_names_the_column_that_may_be_it(written, meant):
    header = list(REQUIRED)
    header[header.index(meant)] = written
    with pytest.raises(CsvFileError) as caught:
        build_column_plan(header)
    assert caught.value.code == FileErrorCode.MISSING_COLUMNS
    position = header.index(written) + 1
    assert f"olumn {position} may be {meant}: rename it {meant}" in caught.value.message
    assert written not in caught.value.message


def test_a_first_line_of_data_with_a_cell_like_a_column_name_is_not_quoted():
    """A headerless file whose first row has a state "ID" (the externalId alias) reads as a header missing its
    required columns; a last name close to a column name ("Zipp", "Surname") is then hinted at by position
    only: the line's cells are a patient's."""
    row = ["Jane", "Surname", "1980-02-03", "F", "1 Main St", "Boise", "ID", "83701", "Zipp"]
    with pytest.raises(CsvFileError) as caught:
        build_column_plan(row)
    assert caught.value.code == FileErrorCode.MISSING_COLUMNS
    message = caught.value.message
    assert "olumn 2 may be lastName: rename it lastName" in message
    assert "olumn 9 may be zip: rename it zip" in message
    for cell in row:
        if cell != "F":  # "F" is in the message's words
            assert cell not in message, cell


@pytest.mark.parametrize(
    ("written", "meant"), [("phone number", "phone"), ("Email Address", "email"), ("MRN", "externalId")]
)
def test_an_unknown_optional_column_gets_a_did_you_mean_warning(written, meant):
    plan = build_column_plan([*REQUIRED, written])
    assert plan.warnings == (f'Column {len(REQUIRED) + 1} ("{written}") is not read: did you mean {meant}?',)


def test_no_suggestion_for_a_column_already_there_or_far_from_any():
    assert build_column_plan([*REQUIRED, "Sex", "birth date", "notes", "insurance plan"]).warnings == ()
