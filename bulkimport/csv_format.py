"""The CSV format, on one page: every column and alias, the required fields, the address groups and their
`-N` indexes, the accepted forms of dates, genders, phones and states, the error codes, the result and
failed-rows files' columns, and the template file.

Everything that the code defines is read from the code: the columns from patients.header, the error codes
from patients.validation and metriport_bulk.lib.csvio, the result columns from csvio.RESULT_COLUMNS, and
every example message and normalized value by running the service's own rules on the example. Only the
meanings are written here, and tests/bulkimport/test_csv_format.py fails when a code, column or field has
none. `manage.py csv_format_docs` writes docs/csv-format.md; `/docs/csv-format` renders the same sections.
"""

from __future__ import annotations

import csv
import datetime
import io
import typing
from dataclasses import dataclass

from bulkimport.models import RowAction
from bulkimport.services.operations import CANCELLED_ROW_CODE, CANCELLED_ROW_MESSAGE
from bulkimport.validation import MAX_COLUMNS, CsvFileError, CsvImport
from metriport_bulk.lib.csvio import MAX_FILE_BYTES, MAX_ROWS, RESULT_COLUMNS, RESULT_STATUS_WORDS, FileErrorCode
from patients.header import (
    INDEXED_ALIASES,
    INDEXED_COLUMN_NAMES,
    MAX_INDEX,
    REQUIRED_ADDRESS_FIELDS,
    REQUIRED_FIELDS,
    SINGLE_COLUMN_NAMES,
)
from patients.normalize import (
    US_TERRITORIES,
    normalize_gender,
    normalize_hie_opt_out,
    normalize_phone,
    normalize_state,
    normalize_zip,
    parse_dob,
)
from patients.validation import (
    MAX_COHORT_NAME,
    RowErrorCode,
    unknown_cohort_message,
    unknown_facility_message,
)

__all__ = [
    "DOCS_PATH",
    "TEMPLATE_FILENAME",
    "Section",
    "Table",
    "csv_format_sections",
    "render_markdown",
    "template_csv",
]

DOCS_PATH = "docs/csv-format.md"
TEMPLATE_FILENAME = "metriport-bulk-template.csv"

# --- what each thing means (the only hand-written part) -------------------------------------------------

FIELD_VALUES: dict[str, str] = {
    "externalId": "Your own identifier of the patient (an MRN). Optional; kept as written, trimmed.",
    "firstName": "Required. Several given names may be separated by spaces.",
    "lastName": "Required.",
    "dob": "Required. Date of birth, `YYYY-MM-DD` best; other unambiguous forms below. 1900-01-01 to today.",
    "gender": "Required. Gender at birth: `M`, `F`, `O` (other) or `U` (unknown); spellings below.",
    "ssn": "Optional. 9 digits; dashes and spaces are ignored, fewer digits are zero-padded.",
    "driversLicense": "Optional. The licence number; needs `driversLicenseState`.",
    "driversLicenseState": "The licence's US state (code or name); needs `driversLicense`.",
    "hieOptOut": (
        "Optional. `true` opts the patient out of health-information-exchange queries (no Document Query): a new "
        "patient is created opted out, a matched one becomes opted out. `false` or empty leaves the patient as it "
        "is (an import never opts a patient back in: use `PUT /medical/v1/patient/{id}/hie-opt-out`)."
    ),
    "addressLine1": "Street address. Required in at least one address group.",
    "addressLine2": "Optional: apartment, suite, unit.",
    "city": "Required in each address group used.",
    "state": "Required in each address group used: a US state or territory, code or name.",
    "zip": "Required in each address group used: 5 digits or ZIP+4.",
    "phone": "Optional. A 10-digit US number in any usual format.",
    "email": "Optional.",
    "cohort": (
        "Optional. A cohort the patient joins, by name (Metriport's `cohort1`, `cohort2`; up to 10). Names are "
        "compared ignoring case and written upper-cased. An import adds the patient to the cohorts its row names "
        "and never removes it from one (remove with `DELETE /medical/v1/cohort/{id}/patient`). A name that is "
        "none of your cohorts fails the row, or creates the cohort, as your cohort policy says (docs/cohorts.md)."
    ),
    # Columns other helpers of this session add (a field the header does not read yet is simply not listed).
    "facilityId": (
        "Optional. The id of one of your facilities: this row's patient is linked to it instead of the request's "
        "facility (an empty cell keeps the request's). Matching still looks at all your patients."
    ),
}

ROW_ERROR_MEANINGS: dict[str, str] = {
    RowErrorCode.INVALID_COHORT: f"A cohort name is longer than {MAX_COHORT_NAME} characters.",
    RowErrorCode.UNKNOWN_COHORT: "A cohort name is none of your cohorts, and your cohort policy is to reject those.",
    RowErrorCode.UNKNOWN_FACILITY: "The `facilityId` is not one of your facilities, or the facility is inactive.",
    RowErrorCode.MISSING_FIRST_NAME: "The `firstName` cell is empty.",
    RowErrorCode.MISSING_LAST_NAME: "The `lastName` cell is empty.",
    RowErrorCode.MISSING_DOB: "The `dob` cell is empty.",
    RowErrorCode.INVALID_DOB: "The `dob` is not a date in an accepted form, does not exist, or is before 1900.",
    RowErrorCode.FUTURE_DOB: "The `dob` is after today.",
    RowErrorCode.AMBIGUOUS_DOB: "The `dob` has a two-digit year or is day-first (25/12/1990): write `YYYY-MM-DD`.",
    RowErrorCode.MISSING_GENDER: "The `gender` cell is empty.",
    RowErrorCode.INVALID_GENDER: "The `gender` is none of the accepted spellings.",
    RowErrorCode.INCOMPLETE_ADDRESS: "An address group has some cells filled but lacks addressLine1, city, state or zip.",
    RowErrorCode.INVALID_STATE: "A `state` is not a US state or territory.",
    RowErrorCode.INVALID_ZIP: "A `zip` is not 5 digits or ZIP+4.",
    RowErrorCode.NO_ADDRESS: "Every address group of the row is empty.",
    RowErrorCode.INVALID_PHONE: "A phone is not a 10-digit US number.",
    RowErrorCode.INVALID_EMAIL: "An email address is not well formed.",
    RowErrorCode.INVALID_SSN: "The `ssn` has fewer than 2 digits.",
    RowErrorCode.INVALID_DRIVERS_LICENSE: "A driver's licence has a number without a state, or a state without a number.",
    RowErrorCode.INVALID_HIE_OPT_OUT: "The `hieOptOut` is not true or false.",
    RowErrorCode.TOO_FEW_CELLS: "The row has fewer cells than the header (often a line break inside an unquoted cell).",
    RowErrorCode.TOO_MANY_CELLS: "The row has more cells than the header (often a comma inside an unquoted cell).",
    CANCELLED_ROW_CODE: "The request was cancelled before this row was applied.",
}

FILE_ERROR_MEANINGS: dict[str, str] = {
    FileErrorCode.EMPTY_FILE: "The file is empty, or has a header but no patient rows.",
    FileErrorCode.BINARY_FILE: "The file is a workbook, a PDF or other binary data, not CSV text.",
    FileErrorCode.ENCODING: "The file is not UTF-8 (UTF-16, Latin-1, Windows-1252): save it as CSV UTF-8.",
    FileErrorCode.NO_HEADER: "The first line names no known column (it is data, or another delimiter is used).",
    FileErrorCode.MISSING_COLUMNS: "A required column is missing from the header.",
    FileErrorCode.DUPLICATE_COLUMNS: "Two columns have the same name once case, spaces and punctuation are ignored.",
    FileErrorCode.TOO_MANY_ROWS: f"More than `BULK_MAX_ROWS` patient rows ({MAX_ROWS:,} by default): split the file.",
    FileErrorCode.TOO_MANY_COLUMNS: f"The header has more than {MAX_COLUMNS} columns.",
    FileErrorCode.TOO_LARGE: (
        f"The file is above `BULK_MAX_FILE_BYTES` ({MAX_FILE_BYTES // (1024 * 1024)} MB by default)."
    ),
    FileErrorCode.MALFORMED: "A quoted cell is not closed properly (a stray or undoubled double quote).",
    # Codes other helpers of this session add.
    "wrong_delimiter": "The file is separated by semicolons or tabs, not commas: save it as comma-separated CSV.",
}

RESULT_COLUMN_MEANINGS: dict[str, str] = {
    "metriportId": "The patient's id in this service (empty for a failed row).",
    "status": "`successful` or `failed`.",
    "reason": "Why the row failed: every error of the row, `; `-separated (empty when successful).",
    "errorCode": "The row's error codes (the table above), `; `-separated (`drifted`: see `action`).",
    "action": (
        "What the row did: `created`, `updated`, `unchanged` (matched a patient, changed no stored value), "
        "`duplicate` (the same person as an earlier row, named in `reason`; applied to that row's patient) or "
        "`drifted` (a confirm's row whose decision changed since its dry run; both decisions in `reason`). A dry "
        "run says what a row would do: `would create`, `would update`, `unchanged` or `duplicate`. Empty when "
        "the row failed validation."
    ),
    "matchedPatientId": "The existing patient the row matched (or would match), when it matched one.",
    "matchedOn": (
        "The fields the match agreed on: `firstName lastName dob genderAtBirth zip`, then `externalId` and `ssn` "
        "when both sides have them and they agree."
    ),
    "documentQuery": (
        "How the patient's Document Query ended: `completed`, `failed`, `timed out`, `opted out` (hieOptOut), "
        "`recently queried` (not queried again: your Document Query budget's re-query window), or empty (failed "
        "row, dry run)."
    ),
    "documents": "How many documents the Document Query found (when it completed).",
    "facilityId": (
        "The facility the row's patient goes to (a dry run: would go to): the row's `facilityId` cell's, else the "
        "request's. A failed row goes nowhere: the request's facility when the row names none, empty when it names "
        "one (your `facilityId` column, among your own columns, holds it). The last column, so readers of the "
        "columns before it by position keep working."
    ),
}

# --- the template ---------------------------------------------------------------------------------------

# Example values of the template's two rows (fictional: 555-01xx phones, example.com, SSN area 9xx).
_EXAMPLES: tuple[dict[str, str], ...] = (
    {
        "externalId": "MRN-1001",
        "firstName": "Jane",
        "lastName": "Doe",
        "dob": "1980-02-03",
        "gender": "F",
        "ssn": "",
        "driversLicense": "",
        "driversLicenseState": "",
        "hieOptOut": "false",
        "addressLine1": "1 Main St",
        "addressLine2": "Apt 2",
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
        "phone": "(217) 555-0100",
        "email": "jane.doe@example.com",
    },
    {
        "externalId": "MRN-1002",
        "firstName": "John",
        "lastName": "Smith",
        "dob": "1975-11-30",
        "gender": "M",
        "ssn": "900-12-3456",
        "driversLicense": "S530-1234-5678",
        "driversLicenseState": "IL",
        "hieOptOut": "false",
        "addressLine1": "22 Oak Ave",
        "addressLine2": "",
        "city": "Chicago",
        "state": "Illinois",
        "zip": "60601-1234",
        "phone": "312-555-0199",
        "email": "",
    },
)


def _template_columns() -> list[tuple[str, str]]:
    """(header name, field) of the template: every single column, one un-suffixed address group, two
    phones and an email, in the order a clinic export has them."""
    columns = [(names[0], field) for field, names in SINGLE_COLUMN_NAMES.items()]
    first_address = len([1 for _, field in columns if field in REQUIRED_FIELDS or field == "externalId"])
    repeated = ("phone", "email", "cohort")
    address = [(names[0], field) for field, names in INDEXED_COLUMN_NAMES.items() if field not in repeated]
    columns[first_address:first_address] = address
    columns += [("phone-1", "phone"), ("phone-2", "phone"), ("email-1", "email"), ("cohort-1", "cohort")]
    return columns


def template_csv() -> str:
    """The template file: the header and two example rows, both valid."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = _template_columns()
    writer.writerow([name for name, _ in columns])
    for example in _EXAMPLES:
        writer.writerow(["" if name == "phone-2" else example.get(field, "") for name, field in columns])
    return out.getvalue()


# --- the sections ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Section:
    """One part of the page: paragraphs (text with `code` spans), then a table, then closing paragraphs."""

    title: str
    anchor: str
    paragraphs: tuple[str, ...] = ()
    table: Table | None = None
    after: tuple[str, ...] = ()
    code_block: str = ""


def _code(value: str) -> str:
    return f"`{value}`" if value else "(empty)"


def _row_error_examples() -> dict[str, str]:
    """Code -> the message the service gives, obtained by running the template's first row, altered so
    that it has exactly that error, through the service's own CSV import."""
    columns = _template_columns()
    names = [name for name, _ in columns]
    base = next(csv.reader(io.StringIO(template_csv().splitlines()[1])))

    def altered(**cells: str) -> list[str]:
        row = list(base)
        for name, value in cells.items():
            row[names.index(name)] = value
        return row

    cases: dict[str, list[str]] = {
        RowErrorCode.MISSING_FIRST_NAME: altered(firstName=""),
        RowErrorCode.MISSING_LAST_NAME: altered(lastName=""),
        RowErrorCode.MISSING_DOB: altered(dob=""),
        RowErrorCode.INVALID_DOB: altered(dob="1980-02-30"),
        RowErrorCode.FUTURE_DOB: altered(dob="2999-01-01"),
        RowErrorCode.AMBIGUOUS_DOB: altered(dob="2/3/80"),
        RowErrorCode.MISSING_GENDER: altered(gender=""),
        RowErrorCode.INVALID_GENDER: altered(gender="X"),
        RowErrorCode.INCOMPLETE_ADDRESS: altered(city=""),
        RowErrorCode.INVALID_STATE: altered(state="ZZ"),
        RowErrorCode.INVALID_ZIP: altered(zip="1234567"),
        RowErrorCode.NO_ADDRESS: altered(addressLine1="", addressLine2="", city="", state="", zip=""),
        RowErrorCode.INVALID_PHONE: altered(**{"phone-1": "555-0100"}),
        RowErrorCode.INVALID_EMAIL: altered(**{"email-1": "jane.doe@"}),
        RowErrorCode.INVALID_SSN: altered(ssn="1"),
        RowErrorCode.INVALID_DRIVERS_LICENSE: altered(driversLicense="S530", driversLicenseState=""),
        RowErrorCode.INVALID_HIE_OPT_OUT: altered(hieOptOut="maybe"),
        RowErrorCode.INVALID_COHORT: altered(**{"cohort-1": "x" * (MAX_COHORT_NAME + 1)}),
        RowErrorCode.TOO_FEW_CELLS: base[:-2],
        RowErrorCode.TOO_MANY_CELLS: [*base, "extra"],
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    writer.writerows(cases.values())
    found: dict[str, str] = {}
    for code, result in zip(cases, CsvImport(io.BytesIO(out.getvalue().encode())).rows(), strict=True):
        codes = [error.code for error in result.errors]
        if codes != [code]:  # an example must show its own error alone (held by the tests)
            raise AssertionError(f"the example of {code} gives {codes}")
        found[code] = result.errors[0].message
    found[CANCELLED_ROW_CODE] = CANCELLED_ROW_MESSAGE
    found[RowErrorCode.UNKNOWN_COHORT] = unknown_cohort_message("cohort-1")  # decided against the database
    found[RowErrorCode.UNKNOWN_FACILITY] = unknown_facility_message()
    return found


def _forms(values: typing.Iterable[str], read: typing.Callable[[str], str | None], refused: str) -> Table:
    return Table(
        ("written", "read as"), tuple((_code(v), _code(read(v) or "") if read(v) else refused) for v in values)
    )


def _dob(value: str) -> str | None:
    iso, _ = parse_dob(value, today=datetime.date(2026, 1, 1))
    return iso


def csv_format_sections() -> list[Section]:
    """The whole page, in order."""
    required = set(REQUIRED_FIELDS) | set(REQUIRED_ADDRESS_FIELDS)
    column_rows = []
    for field, names in SINGLE_COLUMN_NAMES.items():
        column_rows.append(
            (
                _code(field),
                ", ".join(_code(n) for n in names[1:]) or "",
                "yes" if field in REQUIRED_FIELDS else "",
                FIELD_VALUES[field],
            )
        )
    for field, names in INDEXED_COLUMN_NAMES.items():
        indexed = f"{_code(names[0])}, {_code(names[0] + '-1')} … {_code(names[0] + f'-{MAX_INDEX}')}"
        also = ", ".join(_code(n) for n in names[1:])
        if field in ("phone", "email", "cohort"):
            also = ", ".join(filter(None, [also, _code(f"{field}1"), _code(f"{field}_2")]))
        column_rows.append((indexed, also, "in one group" if field in required else "", FIELD_VALUES[field]))

    gender_forms = ("M", "male", "F", "Female", "O", "other", "un", "U", "unk", "unknown", "X")
    dob_forms = (
        "1980-02-03",
        "1980/2/3",
        "19800203",
        "2/3/1980",
        "02-03-1980",
        "Feb 3, 1980",
        "3 February 1980",
        "1980-02-03T00:00:00Z",
        "2/3/80",
        "25/12/1990",
        "1899-12-31",
    )
    phone_forms = ("(217) 555-0100", "217.555.0100", "+1 217 555 0100", "2175550100 ext 12", "555-0100")
    state_forms = ("IL", "il", "Illinois", "N.Y.", "Washington DC", "Puerto Rico", "ZZ")
    zip_forms = ("62701", "62701-1234", "627011234", "2134", "1234567")
    hie_forms = ("true", "yes", "Y", "1", "false", "no", "0", "")
    refused = "refused"
    examples = _row_error_examples()
    row_codes = [*RowErrorCode, CANCELLED_ROW_CODE]

    return [
        Section(
            "The file",
            "file",
            (
                "One CSV file per bulk request: UTF-8 text (a byte-order mark is fine: Excel's *CSV UTF-8*), "
                "comma-separated, the first line a header naming the columns, then one patient per line. "
                f"At most {MAX_ROWS:,} patient rows and {MAX_FILE_BYTES // (1024 * 1024)} MB by default "
                "(`BULK_MAX_ROWS`, `BULK_MAX_FILE_BYTES`; an operator may raise them to 1,000,000 rows and "
                "500 MB). Cells holding commas, quotes or line breaks are "
                'quoted (`"Apt 2, rear"`), a quote inside a quoted cell doubled (`""`). Blank lines are '
                "skipped; CRLF, LF and CR line endings are all read.",
                "Column names are compared ignoring case, spaces and punctuation: `First Name`, `first_name` "
                "and `FIRSTNAME` are all `firstName`. The order of the columns does not matter. Columns the "
                "service does not know are kept: they come back, as they were, in the result file.",
                "A row is read by the rules below; a row that breaks one fails with a reason and an error "
                "code, and the others are imported. A file that breaks a file rule fails the whole request "
                "and nothing is created. Check a file before uploading it: `manage.py validate_csv FILE`.",
            ),
        ),
        Section(
            "Columns",
            "columns",
            (
                f"Address groups, phones and emails can repeat, numbered `-1` to `-{MAX_INDEX}` "
                "(`addressLine1-2`, `city-2`, … `phone-3`); an un-suffixed group is a group of its own, "
                "read first. Each address group that holds anything must be complete.",
            ),
            Table(("column", "also accepted as", "required", "value"), tuple(column_rows)),
            (
                "Required: "
                + ", ".join(_code(f) for f in REQUIRED_FIELDS)
                + ", and one complete address group ("
                + ", ".join(_code(f) for f in REQUIRED_ADDRESS_FIELDS)
                + "). "
                + "Beside its canonical column an alias is not read ("
                + ", ".join(_code(a) for a in INDEXED_ALIASES)
                + "): it stays a column of yours.",
            ),
        ),
        Section(
            "Dates of birth",
            "dob",
            (
                "`YYYY-MM-DD` is best. Month-first US dates, month names and a trailing time are read too; "
                "two-digit years and day-first dates are refused as ambiguous rather than guessed.",
            ),
            _forms(dob_forms, _dob, refused),
        ),
        Section("Gender", "gender", (), _forms(gender_forms, normalize_gender, refused), ("Any case is accepted.",)),
        Section(
            "Phones",
            "phone",
            ("Formatting is ignored, a leading `+1` or `1` dropped, an extension dropped.",),
            _forms(phone_forms, normalize_phone, refused),
        ),
        Section(
            "States and zips",
            "state",
            (
                "The 50 states and DC, and the territories "
                + ", ".join(f"{name} ({_code(code)})" for code, name in US_TERRITORIES.items())
                + ", as a code or a name, any case. Zips: 5 digits or ZIP+4; 3 and 4 digits are zero-padded "
                "(a spreadsheet drops leading zeros).",
            ),
            Table(
                ("written", "read as"),
                tuple(
                    (_code(v), _code(normalize_state(v) or "") if normalize_state(v) else refused) for v in state_forms
                )
                + tuple((_code(v), _code(normalize_zip(v) or "") if normalize_zip(v) else refused) for v in zip_forms),
            ),
        ),
        Section(
            "hieOptOut",
            "hie-opt-out",
            (),
            _forms(hie_forms, normalize_hie_opt_out, refused),
            ("Any case is accepted; an empty cell is false.",),
        ),
        Section(
            "Row errors",
            "row-errors",
            (
                "Each failed row gets every error it has, each with a code. The result file's `reason` holds the "
                "messages; the admin counts and filters rows by code.",
                "Rows are numbered from the first line after the header, and labelled with the line a "
                "spreadsheet shows them on: row 27 is line 28 (the header is line 1). The result file keeps your "
                "rows in their order, so a row is on the same line there.",
            ),
            Table(
                ("code", "meaning", "message"),
                tuple((_code(code), ROW_ERROR_MEANINGS[code], examples[code]) for code in row_codes),
            ),
        ),
        Section(
            "File errors",
            "file-errors",
            ("A file error fails the whole request with its message as the request's `reason`; nothing is created.",),
            Table(
                ("code", "meaning"), tuple((_code(c), m) for c, m in _ordered(FILE_ERROR_MEANINGS, list(FileErrorCode)))
            ),
        ),
        Section(
            "The result file",
            "result",
            (
                "When a request completes, `result` (GET the request, or the `completed` webhook) links to the "
                "result file: every row of your file, your columns as you sent them, then these columns:",
            ),
            Table(("column", "meaning"), tuple((_code(c), RESULT_COLUMN_MEANINGS[c]) for c in RESULT_COLUMNS)),
            (
                "Row status words: "
                + ", ".join(_code(RESULT_STATUS_WORDS.get(s, s)) for s in ("succeeded", "failed"))
                + ". Actions: "
                + ", ".join(_code(a.value) for a in RowAction if a.value)
                + ". Cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, after "
                "any `'` of their own) are written with one more leading `'`; uploading a result or failed-rows "
                "file again takes that one off. Your own files are read exactly as written (`'+X1` stays `'+X1`).",
                "`invalid` links to the failed rows only, in your columns plus `reason`: fix them and upload "
                "that file again. The service's own columns of a result file uploaded again are ignored.",
            ),
        ),
        Section(
            "Template",
            "template",
            (
                "A header with every column and two example rows: `GET /medical/v1/patient/bulk/template` "
                "(with your `x-api-key`), `/docs/csv-format/template.csv` (this page's download), or "
                "`manage.py generate_sample_csv --template`.",
            ),
            code_block=template_csv(),
        ),
    ]


def _ordered(meanings: dict[str, str], codes: typing.Sequence[str]) -> list[tuple[str, str]]:
    """The meanings of exactly `codes`, in their order (a code without a meaning raises KeyError)."""
    return [(str(code), meanings[code]) for code in codes]


# --- markdown -------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(sections: list[Section]) -> str:
    """docs/csv-format.md (written by `manage.py csv_format_docs`; do not edit it by hand)."""
    lines = [
        "# CSV format",
        "",
        "<!-- Generated by `manage.py csv_format_docs` from the code (bulkimport/csv_format.py); do not edit. -->",
        "",
        "Served as `/docs/csv-format`. " + " · ".join(f"[{s.title}](#{s.anchor})" for s in sections),
    ]
    for section in sections:
        lines += ["", f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.table is not None:
            lines.append("| " + " | ".join(section.table.header) + " |")
            lines.append("|" + "---|" * len(section.table.header))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in section.table.rows]
            lines.append("")
        for paragraph in section.after:
            lines += [paragraph, ""]
        if section.code_block:
            lines += ["```csv", section.code_block.rstrip("\n"), "```", ""]
        while lines[-1] == "":
            lines.pop()
    return "\n".join(lines) + "\n"


def check_template_is_valid() -> None:
    """Raises when the template is not a valid file whose rows are all valid (used by the tests)."""
    try:
        rows = list(CsvImport(io.BytesIO(template_csv().encode())).rows())
    except CsvFileError as exc:
        raise AssertionError(f"the template is refused: {exc}") from None
    bad = [r.number for r in rows if r.errors]
    if bad:
        raise AssertionError(f"template rows {bad} are invalid")
