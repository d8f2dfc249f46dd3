"""Which columns of a header are read (Metriport's patient-import header rules): names compared
case-insensitively with spaces and punctuation ignored, aliases (`address1`, `zipcode`), address groups and
contacts indexed -1..-10, and the ColumnPlan that tells the row validator where each field is. Columns that
look indexed but are out of range are warnings, not silently ignored.

Pure Python, no Django. No message carries a cell value of a row (a header names columns, it holds no PHI).
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass

from metriport_bulk.lib.csvio import CsvFileError, FileErrorCode
from patients.identity import strip_default_ignorables
from patients.normalize import INVISIBLE_CHARACTERS

__all__ = [
    "ADDRESS_FIELDS",
    "INDEXED_ALIASES",
    "INDEXED_COLUMN_NAMES",
    "MAX_INDEX",
    "REQUIRED_ADDRESS_FIELDS",
    "REQUIRED_FIELDS",
    "SINGLE_COLUMN_NAMES",
    "AddressColumns",
    "ColumnPlan",
    "build_column_plan",
    "normalize_header_name",
]

MAX_INDEX = 10  # address groups, phones and emails: -1 .. -10, as in Metriport

# Metriport's csv-parser mapHeaders drops these characters and all whitespace (so "First Name" and
# "first_name" both read as firstname); "-" is kept because it introduces the -N index.
_HEADER_DROP = str.maketrans("", "", "!@#$%^&*()+=[]\\';,./{}|\":<>?~_ \t\r\n\u00a0" + INVISIBLE_CHARACTERS)

# Every column Metriport's importer reads, named as the docs and the template write it: canonical field ->
# accepted names, the field's own name first. Headers are compared normalized (normalize_header_name), so
# "First Name", "first_name" and "FIRSTNAME" all read as firstName. The CSV format page is generated from
# these tables (bulkimport.csv_format).
SINGLE_COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "externalId": ("externalId", "id"),
    "firstName": ("firstName",),
    "lastName": ("lastName",),
    "dob": ("dob",),
    "gender": ("gender", "genderAtBirth"),
    "ssn": ("ssn",),
    # US and British spelling, both accepted.
    "driversLicense": tuple(
        prefix + suffix for prefix in ("driversLicense", "driversLicence") for suffix in ("", "Value", "No", "Number")
    ),
    "driversLicenseState": ("driversLicenseState", "driversLicenceState"),
    "hieOptOut": ("hieOptOut",),
    # Ours (issue 26): the facility of this row's patient; empty = the request's facility.
    "facilityId": ("facilityId",),
}
# Columns indexed -1..-10 and un-suffixed. As in Metriport's importer, an un-suffixed group is a group of its
# own (index 0, read first), not another name for -1.
INDEXED_COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "addressLine1": ("addressLine1", "address1"),
    "addressLine2": ("addressLine2", "address2"),
    "city": ("city",),
    "state": ("state",),
    "zip": ("zip", "zipCode"),
    "phone": ("phone",),
    "email": ("email",),
    # Metriport's importer reads cohort1 and cohort2; up to 10 here, in every indexed form (cohort-3, cohort_3).
    "cohort": ("cohort",),
}
# Indexed columns that also read without the dash (phone2, email_3, cohort1: Metriport's own names).
_UNDASHED = ("phone", "email", "cohort")
# Alternative names: Metriport reads `zip ?? zipCode`, so beside its canonical column an alias is not read
# (it stays a column of the customer's, echoed in the result file) instead of being a duplicate.
INDEXED_ALIASES = ("address1", "address2", "zipCode")
ADDRESS_FIELDS = ("addressLine1", "addressLine2", "city", "state", "zip")
REQUIRED_ADDRESS_FIELDS = ("addressLine1", "city", "state", "zip")
REQUIRED_FIELDS = ("firstName", "lastName", "dob", "gender")


def normalize_header_name(name: str) -> str:
    """A header cell as compared: lower-cased, without whitespace, Metriport's ignored punctuation and any
    default-ignorable code point (a bidi mark or soft hyphen pasted into a column name)."""
    return strip_default_ignorables(name).lower().translate(_HEADER_DROP)


# Normalized header name -> canonical field.
_SINGLE_COLUMNS: dict[str, str] = {
    normalize_header_name(name): field for field, names in SINGLE_COLUMN_NAMES.items() for name in names
}
_INDEXED_COLUMNS: dict[str, str] = {
    normalize_header_name(name): field for field, names in INDEXED_COLUMN_NAMES.items() for name in names
}
_ALIASES = frozenset(normalize_header_name(name) for name in INDEXED_ALIASES)


def _map_header(normalized: str) -> tuple[str, int, bool] | None:
    """Normalized header name -> (canonical field, index, is an alias), or None if unknown.

    Index 0 is a single column or an un-suffixed group; 1..10 an indexed one."""
    single = _SINGLE_COLUMNS.get(normalized)
    if single is not None:
        return single, 0, False
    base, dash, index_text = normalized.partition("-")
    if not dash:
        field = _INDEXED_COLUMNS.get(normalized)
        if field is not None:
            return field, 0, normalized in _ALIASES
        # "phone_2" and "email 2" read as phone2/email2 (Metriport's contact alternative names), cohort1 too.
        for contact in _UNDASHED:
            if normalized.startswith(contact):
                index_text = normalized[len(contact) :]
                digits = index_text.isascii() and index_text.isdigit() and index_text[0] != "0"
                if digits and int(index_text) <= MAX_INDEX:
                    return contact, int(index_text), False
        return None
    field = _INDEXED_COLUMNS.get(base)
    if field is None or not (index_text.isascii() and index_text.isdigit()):
        return None
    index = int(index_text)
    if not 1 <= index <= MAX_INDEX or index_text[0] == "0":
        return None
    return field, index, base in _ALIASES


@dataclass(frozen=True, slots=True)
class AddressColumns:
    """Column positions of one address group; `suffix` is how the header names the group ("" or "-2")."""

    index: int
    suffix: str
    address_line1: int | None
    address_line2: int | None
    city: int | None
    state: int | None
    zip: int | None


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """Where each field lives in a row, computed once per header so rows are read by position."""

    width: int
    first_name: int
    last_name: int
    dob: int
    gender: int
    external_id: int | None
    ssn: int | None
    drivers_license: int | None
    drivers_license_state: int | None
    hie_opt_out: int | None
    addresses: tuple[AddressColumns, ...]
    phones: tuple[tuple[str, int], ...]  # (column name for messages, position), in index order
    emails: tuple[tuple[str, int], ...]
    # Columns that look indexed but whose index is out of range (email-0, phone-01, addressLine1-11): not read,
    # and said so to the customer instead of silently ignored (SPEC §6).
    warnings: tuple[str, ...] = ()
    cohorts: tuple[tuple[str, int], ...] = ()  # cohort columns, as phones: (column name for messages, position)
    facility_id: int | None = None


_HEADER_HINT = "firstName, lastName, dob, gender, addressLine1, city, state, zip"

# Names people give columns that Metriport's importer does not read, normalized -> the column meant. An
# unknown column near one of these, or near a known name (difflib), gets a "did you mean" warning.
_LIKELY_MEANT: dict[str, str] = {
    "birthdate": "dob",
    "dateofbirth": "dob",
    "birthday": "dob",
    "dobdate": "dob",
    "sex": "gender",
    "sexatbirth": "gender",
    "first": "firstName",
    "givenname": "firstName",
    "fname": "firstName",
    "last": "lastName",
    "surname": "lastName",
    "familyname": "lastName",
    "lname": "lastName",
    "address": "addressLine1",
    "street": "addressLine1",
    "streetaddress": "addressLine1",
    "postalcode": "zip",
    "postcode": "zip",
    "zip5": "zip",
    "province": "state",
    "phonenumber": "phone",
    "mobile": "phone",
    "cell": "phone",
    "telephone": "phone",
    "emailaddress": "email",
    "mrn": "externalId",
    "patientid": "externalId",
    "socialsecuritynumber": "ssn",
}
_KNOWN_NAMES: dict[str, str] = {
    normalize_header_name(name): names[0]
    for table in (SINGLE_COLUMN_NAMES, INDEXED_COLUMN_NAMES)
    for names in table.values()
    for name in names
}
# Other delimiters spreadsheets export with ("CSV" in a European locale uses semicolons).
_OTHER_DELIMITERS = ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars"))
_SAVE_AS_COMMAS = "Save it from your spreadsheet as 'CSV UTF-8 (Comma delimited)' and upload it again."


def _likely_meant(normalized: str) -> str | None:
    """The known column an unknown header name most likely means ("birth date" -> dob), or None."""
    meant = _LIKELY_MEANT.get(normalized)
    if meant is not None:
        return meant
    close = difflib.get_close_matches(normalized, _KNOWN_NAMES, n=1, cutoff=0.8)
    return _KNOWN_NAMES[close[0]] if close else None


def _other_delimiter(header: list[str]) -> str | None:
    """The delimiter's name when the header reads as known columns once split on it, else None."""
    line = ",".join(header)
    for delimiter, name in _OTHER_DELIMITERS:
        if delimiter in line and any(_map_header(normalize_header_name(cell)) for cell in line.split(delimiter)):
            return name
    return None


def _quoted(name: str) -> str:
    """A customer's header cell for a message: a column name, cut short."""
    name = " ".join(name.split())
    return f'"{name[:40]}…"' if len(name) > 40 else f'"{name}"'


def _out_of_range_index(normalized: str) -> tuple[str, str] | None:
    """(canonical field, index as written) for a name that looks like an indexed column but is not one
    Metriport reads (index 0, above MAX_INDEX or with a leading zero), else None."""
    base, dash, index_text = normalized.partition("-")
    if not dash:
        for contact in _UNDASHED:
            if normalized.startswith(contact) and normalized != contact:
                base, index_text = contact, normalized[len(contact) :]
                break
        else:
            return None
    field = _INDEXED_COLUMNS.get(base)
    if field is None or not (index_text.isascii() and index_text.isdigit()):
        return None
    return field, index_text


def build_column_plan(header: list[str]) -> ColumnPlan:
    """Map header cells to fields; raise CsvFileError (NO_HEADER, DUPLICATE_COLUMNS, MISSING_COLUMNS).

    Errors name canonical fields and column positions, never the header text: when the first line is data
    rather than a header, its cells are PHI. Only a warning, of a line that names every required column (a
    header), quotes a cell.
    """
    positions: dict[tuple[str, int], list[int]] = {}
    alias_positions: dict[tuple[str, int], list[int]] = {}
    unknown: dict[str, list[int]] = {}
    for position, cell in enumerate(header):
        normalized = normalize_header_name(cell)
        mapped = _map_header(normalized)
        if mapped is None:
            if normalized:
                unknown.setdefault(normalized, []).append(position)
            continue
        field, index, alias = mapped
        (alias_positions if alias else positions).setdefault((field, index), []).append(position)
    for key, cols in alias_positions.items():
        # The canonical name wins over its alias (zip beside zipCode); the alias is then the customer's column.
        if key in positions:
            for position in cols:
                unknown.setdefault(normalize_header_name(header[position]), []).append(position)
        else:
            positions[key] = cols

    if not positions:
        delimiter = _other_delimiter(header)
        if delimiter is not None:
            raise CsvFileError(
                FileErrorCode.WRONG_DELIMITER,
                f"The file is separated by {delimiter}, not commas. {_SAVE_AS_COMMAS}",
            )
        raise CsvFileError(
            FileErrorCode.NO_HEADER,
            f"The first line is not a header: none of its cells is a known column name. The first line "
            f"must name the columns, e.g. {_HEADER_HINT}.",
        )

    duplicates = [(_display_name(field, index), cols) for (field, index), cols in positions.items() if len(cols) > 1]
    duplicates += [("an unrecognized column", cols) for cols in unknown.values() if len(cols) > 1]
    if duplicates:
        described = "; ".join(
            f"{name} in columns {', '.join(str(c + 1) for c in cols)}" for name, cols in sorted(duplicates)
        )
        raise CsvFileError(
            FileErrorCode.DUPLICATE_COLUMNS,
            f"Duplicate columns (names are compared ignoring case, spaces and punctuation): {described}. "
            "Keep one of each.",
        )

    def position_of(field: str, index: int = 0) -> int | None:
        cols = positions.get((field, index))
        return cols[0] if cols else None

    missing = [field for field in REQUIRED_FIELDS if position_of(field) is None]
    address_indexes = sorted({index for (field, index) in positions if field in ADDRESS_FIELDS})
    complete = [i for i in address_indexes if all(position_of(f, i) is not None for f in REQUIRED_ADDRESS_FIELDS)]
    if not complete:
        first = address_indexes[0] if address_indexes else 0
        missing += [_display_name(f, first) for f in REQUIRED_ADDRESS_FIELDS if position_of(f, first) is None]
    # Unknown columns that most likely mean a known one: a warning, or the hint of the missing-column error.
    suggestions: dict[str, tuple[int, str]] = {}  # meant column -> (position, header cell)
    for name, cols in sorted(unknown.items(), key=lambda item: item[1][0]):
        meant = None if _out_of_range_index(name) else _likely_meant(name)
        if meant is not None and meant not in suggestions and _field_of(meant) not in {f for f, _ in positions}:
            suggestions[meant] = (cols[0], header[cols[0]])
    if missing:
        # By position only: a first line with a required column missing may be a row of data whose cells
        # merely look like column names (a state "ID", a last name "Zipp"), and those cells are PHI.
        hints = [
            f"column {suggestions[name][0] + 1} may be {name}: rename it {name}"
            for name in missing
            if name in suggestions
        ]
        raise CsvFileError(
            FileErrorCode.MISSING_COLUMNS,
            f"Missing required column(s): {', '.join(missing)}. "
            + (f"{'; '.join(hints)[0].upper()}{'; '.join(hints)[1:]}. " if hints else "")
            + f"Required: {_HEADER_HINT} (at least one complete address group).",
        )

    addresses = []
    for index in address_indexes:
        # Messages name the group the way the header does: "Missing zip" or "Missing zip-2".
        addresses.append(
            AddressColumns(
                index=index,
                suffix=f"-{index}" if index else "",
                address_line1=position_of("addressLine1", index),
                address_line2=position_of("addressLine2", index),
                city=position_of("city", index),
                state=position_of("state", index),
                zip=position_of("zip", index),
            )
        )

    def contacts(field: str) -> tuple[tuple[str, int], ...]:
        found = []
        for index in range(MAX_INDEX + 1):
            column = position_of(field, index)
            if column is not None:
                found.append((_display_name(field, index), column))
        return tuple(found)

    warnings = []
    for name, cols in sorted(unknown.items(), key=lambda item: item[1][0]):
        looks_indexed = _out_of_range_index(name)
        if looks_indexed is not None:
            field, index_text = looks_indexed
            warnings.append(
                f"Column {cols[0] + 1} ({field}-{index_text}) is not read: indexes run from 1 to {MAX_INDEX}, "
                f"without leading zeros (e.g. {field}-1)."
            )
    for meant, (position, cell) in suggestions.items():
        warnings.append(f"Column {position + 1} ({_quoted(cell)}) is not read: did you mean {meant}?")

    return ColumnPlan(
        warnings=tuple(warnings),
        width=len(header),
        first_name=typing.cast(int, position_of("firstName")),
        last_name=typing.cast(int, position_of("lastName")),
        dob=typing.cast(int, position_of("dob")),
        gender=typing.cast(int, position_of("gender")),
        external_id=position_of("externalId"),
        ssn=position_of("ssn"),
        drivers_license=position_of("driversLicense"),
        drivers_license_state=position_of("driversLicenseState"),
        hie_opt_out=position_of("hieOptOut"),
        addresses=tuple(addresses),
        phones=contacts("phone"),
        emails=contacts("email"),
        cohorts=contacts("cohort"),
        facility_id=position_of("facilityId"),
    )


def _field_of(name: str) -> str:
    """The canonical field of a column name as the docs write it ("driversLicence" -> driversLicense)."""
    return _SINGLE_COLUMNS.get(normalize_header_name(name)) or _INDEXED_COLUMNS.get(normalize_header_name(name), name)


def _display_name(field: str, index: int) -> str:
    return f"{field}-{index}" if index else field
