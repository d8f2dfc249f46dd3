"""The patient row rules: which columns of a header are read (header mapping, the ColumnPlan) and how one
row of demographics is validated and normalized (RowValidator). A bulk file is read with them
(bulkimport.validation.CsvImport), and so is a single patient's JSON, laid out as one row
(patients.demographics): one set of rules, so a person sent both ways is one patient.

Pure Python, no Django. The rules are Metriport's patient-import rules (packages/core/src/command/
patient-import/csv): column names compared case-insensitively with spaces and punctuation ignored,
address groups and contacts indexed -1..-10, and row errors worded as Metriport words them
("Missing firstName", "Missing/invalid dob", "Missing addressLine1-1", "Patient has no address").
Each error also has a code (RowErrorCode) so errors can be counted and filtered.

Nothing here logs, and no exception or message carries a cell value: cells are PHI.
"""

from __future__ import annotations

import datetime
import enum
import typing
from dataclasses import dataclass

from metriport_bulk.lib.csvio import CsvFileError, FileErrorCode
from patients.normalize import (
    INVISIBLE_CHARACTERS,
    DobProblem,
    dob_range_problem,
    normalize_address_line,
    normalize_city,
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
    parse_dob_text,
    split_address_unit,
    title_case_if_not_multi_case,
)

__all__ = [
    "MAX_INDEX",
    "ColumnPlan",
    "GENDER_MESSAGE",
    "PHONE_HINT",
    "RowError",
    "RowErrorCode",
    "RowResult",
    "RowValidator",
    "build_column_plan",
    "normalize_header_name",
    "row_reason",
]

MAX_INDEX = 10  # address groups, phones and emails: -1 .. -10, as in Metriport


class RowErrorCode(enum.StrEnum):
    MISSING_FIRST_NAME = "missing_first_name"
    MISSING_LAST_NAME = "missing_last_name"
    MISSING_DOB = "missing_dob"
    INVALID_DOB = "invalid_dob"
    FUTURE_DOB = "future_dob"
    AMBIGUOUS_DOB = "ambiguous_dob"
    MISSING_GENDER = "missing_gender"
    INVALID_GENDER = "invalid_gender"
    INCOMPLETE_ADDRESS = "incomplete_address"
    INVALID_STATE = "invalid_state"
    INVALID_ZIP = "invalid_zip"
    NO_ADDRESS = "no_address"
    INVALID_PHONE = "invalid_phone"
    INVALID_EMAIL = "invalid_email"
    INVALID_SSN = "invalid_ssn"
    INVALID_DRIVERS_LICENSE = "invalid_drivers_license"
    INVALID_HIE_OPT_OUT = "invalid_hie_opt_out"
    TOO_FEW_CELLS = "too_few_cells"
    TOO_MANY_CELLS = "too_many_cells"


@dataclass(slots=True)
class RowError:
    code: RowErrorCode
    field: str  # the column, as Metriport names it: "dob", "addressLine1-2", "address", "row"
    message: str  # customer-facing, names the column, never quotes the value


@dataclass(slots=True)
class RowResult:
    number: int  # 1-based data row number: the header and skipped blank lines are not counted
    raw: list[str]  # the cells exactly as received (after decoding)
    normalized: dict[str, typing.Any] | None  # None when the row is invalid
    errors: list[RowError]

    @property
    def valid(self) -> bool:
        return not self.errors


def row_reason(errors: list[RowError]) -> str:
    """The result file's `reason`: every error message of the row, "; "-separated (as Metriport)."""
    return "; ".join(error.message for error in errors)


# --- header -------------------------------------------------------------------------------------------

# Metriport's csv-parser mapHeaders drops these characters and all whitespace (so "First Name" and
# "first_name" both read as firstname); "-" is kept because it introduces the -N index.
_HEADER_DROP = str.maketrans("", "", "!@#$%^&*()+=[]\\';,./{}|\":<>?~_ \t\r\n\u00a0" + INVISIBLE_CHARACTERS)

# Normalized header name -> canonical field, for columns that occur once.
_SINGLE_COLUMNS: dict[str, str] = {
    "firstname": "firstName",
    "lastname": "lastName",
    "dob": "dob",
    "gender": "gender",
    "genderatbirth": "gender",
    "ssn": "ssn",
    "id": "externalId",
    "externalid": "externalId",
    "hieoptout": "hieOptOut",
}
for _prefix in ("driverslicense", "driverslicence"):  # US and British spelling, both accepted
    for _suffix in ("", "value", "no", "number"):
        _SINGLE_COLUMNS[_prefix + _suffix] = "driversLicense"
    _SINGLE_COLUMNS[_prefix + "state"] = "driversLicenseState"

# Normalized base name -> canonical field, for columns indexed -1..-10 and un-suffixed. As in Metriport's
# importer, an un-suffixed group is a group of its own (index 0, read first), not another name for -1.
_INDEXED_COLUMNS: dict[str, str] = {
    "addressline1": "addressLine1",
    "address1": "addressLine1",
    "addressline2": "addressLine2",
    "address2": "addressLine2",
    "city": "city",
    "state": "state",
    "zip": "zip",
    "zipcode": "zip",
    "phone": "phone",
    "email": "email",
}
# Alternative names: Metriport reads `zip ?? zipCode`, so beside its canonical column an alias is not read
# (it stays a column of the customer's, echoed in the result file) instead of being a duplicate.
_ALIASES = frozenset({"address1", "address2", "zipcode"})
_ADDRESS_FIELDS = ("addressLine1", "addressLine2", "city", "state", "zip")
_REQUIRED_ADDRESS_FIELDS = ("addressLine1", "city", "state", "zip")
_REQUIRED_SINGLE = ("firstName", "lastName", "dob", "gender")


def normalize_header_name(name: str) -> str:
    """A header cell as compared: lower-cased, without whitespace and Metriport's ignored punctuation."""
    return name.lower().translate(_HEADER_DROP)


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
        # "phone_2" and "email 2" read as phone2/email2 (Metriport's contact alternative names).
        for contact in ("phone", "email"):
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


_HEADER_HINT = "firstName, lastName, dob, gender, addressLine1, city, state, zip"


def _out_of_range_index(normalized: str) -> tuple[str, str] | None:
    """(canonical field, index as written) for a name that looks like an indexed column but is not one
    Metriport reads (index 0, above MAX_INDEX or with a leading zero), else None."""
    base, dash, index_text = normalized.partition("-")
    if not dash:
        for contact in ("phone", "email"):
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

    Messages name canonical fields and column positions, never the header text: when the first line
    is data rather than a header, its cells are PHI.
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

    missing = [field for field in _REQUIRED_SINGLE if position_of(field) is None]
    address_indexes = sorted({index for (field, index) in positions if field in _ADDRESS_FIELDS})
    complete = [i for i in address_indexes if all(position_of(f, i) is not None for f in _REQUIRED_ADDRESS_FIELDS)]
    if not complete:
        first = address_indexes[0] if address_indexes else 0
        missing += [_display_name(f, first) for f in _REQUIRED_ADDRESS_FIELDS if position_of(f, first) is None]
    if missing:
        raise CsvFileError(
            FileErrorCode.MISSING_COLUMNS,
            f"Missing required column(s): {', '.join(missing)}. Required: {_HEADER_HINT} "
            f"(at least one complete address group).",
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
    )


def _display_name(field: str, index: int) -> str:
    return f"{field}-{index}" if index else field


# --- rows ---------------------------------------------------------------------------------------------

_DOB_ERRORS = {
    DobProblem.MISSING: (RowErrorCode.MISSING_DOB, "Missing/invalid dob"),
    DobProblem.INVALID: (RowErrorCode.INVALID_DOB, "Missing/invalid dob (use YYYY-MM-DD)"),
    DobProblem.AMBIGUOUS: (
        RowErrorCode.AMBIGUOUS_DOB,
        "Missing/invalid dob (ambiguous day/month order or two-digit year: use YYYY-MM-DD)",
    ),
    DobProblem.BEFORE_1900: (RowErrorCode.INVALID_DOB, "Missing/invalid dob (must be 1900-01-01 or later)"),
    DobProblem.FUTURE: (RowErrorCode.FUTURE_DOB, "Missing/invalid dob (date can't be in the future)"),
    DobProblem.MONTH_OUT_OF_RANGE: (
        RowErrorCode.INVALID_DOB,
        "Missing/invalid dob (the month is out of range: months run from 01 to 12)",
    ),
    DobProblem.DAY_OUT_OF_RANGE: (
        RowErrorCode.INVALID_DOB,
        "Missing/invalid dob (the day is out of range for that month)",
    ),
}
GENDER_MESSAGE = "Missing/invalid gender (use M, F, O or U; male, female, other and unknown are accepted too)"
PHONE_HINT = "(use a 10-digit US number, e.g. 212-555-0100; a leading +1 or 1 is accepted)"


class RowValidator:
    """Validates and normalizes rows laid out as `plan` says. `validate` is the hot path."""

    def __init__(self, plan: ColumnPlan, *, today: datetime.date) -> None:
        self.plan = plan
        self._today_iso = today.isoformat()

    def _dob(self, value: str, errors: list[RowError]) -> str | None:
        text = value.strip()
        if not text:
            problem: DobProblem | None = DobProblem.MISSING
        else:
            iso, problem = parse_dob_text(text)
            if iso is not None:
                problem = dob_range_problem(iso, self._today_iso)
                if problem is None:
                    return iso
        code, message = _DOB_ERRORS[typing.cast(DobProblem, problem)]
        errors.append(RowError(code, "dob", message))
        return None

    def validate(self, row: list[str]) -> tuple[dict[str, typing.Any] | None, list[RowError]]:
        """(normalized, []) for a valid row, (None, errors) otherwise. `row` has at least plan.width cells."""
        plan = self.plan
        errors: list[RowError] = []
        first_name = normalize_name(row[plan.first_name])
        if first_name is None:
            errors.append(RowError(RowErrorCode.MISSING_FIRST_NAME, "firstName", "Missing firstName"))
        last_name = normalize_name(row[plan.last_name])
        if last_name is None:
            errors.append(RowError(RowErrorCode.MISSING_LAST_NAME, "lastName", "Missing lastName"))
        dob = self._dob(row[plan.dob], errors)
        gender_value = row[plan.gender]
        gender = normalize_gender(gender_value)
        if gender is None:
            code = RowErrorCode.INVALID_GENDER if gender_value.strip() else RowErrorCode.MISSING_GENDER
            errors.append(RowError(code, "gender", GENDER_MESSAGE))

        addresses = []
        before_addresses = len(errors)
        for group in plan.addresses:
            address = _address(row, group, errors)
            if address is not None:
                addresses.append(address)
        # "no address" only when no group holds anything: a group with a misspelt state has its own error.
        if not addresses and len(errors) == before_addresses:
            errors.append(RowError(RowErrorCode.NO_ADDRESS, "address", "Patient has no address"))

        phones = []
        for name, column in plan.phones:
            value = row[column]
            if value and not value.isspace():
                phone = normalize_phone(value)
                if phone is None:
                    errors.append(RowError(RowErrorCode.INVALID_PHONE, name, f"Invalid {name} {PHONE_HINT}"))
                else:
                    phones.append(phone)
        emails = []
        for name, column in plan.emails:
            value = row[column]
            if value and not value.isspace():
                email = normalize_email(value)
                if email is None:
                    errors.append(RowError(RowErrorCode.INVALID_EMAIL, name, f"Invalid {name}"))
                else:
                    emails.append(email)

        external_id = normalize_external_id(row[plan.external_id]) if plan.external_id is not None else None

        ssn = None
        if plan.ssn is not None:
            value = row[plan.ssn]
            if value and not value.isspace():
                ssn = normalize_ssn(value)
                if ssn is None:
                    errors.append(RowError(RowErrorCode.INVALID_SSN, "ssn", "Invalid SSN"))

        drivers_license = _drivers_license(row, plan, errors)

        hie_opt_out = False
        if plan.hie_opt_out is not None:
            flag = normalize_hie_opt_out(row[plan.hie_opt_out])
            if flag is None:
                errors.append(
                    RowError(RowErrorCode.INVALID_HIE_OPT_OUT, "hieOptOut", "Invalid hieOptOut (use true or false)")
                )
            else:
                hie_opt_out = flag == "true"

        if errors:
            return None, errors
        return {
            "firstName": first_name,
            "lastName": last_name,
            "dob": dob,
            "genderAtBirth": gender,
            "externalId": external_id,
            "ssn": ssn,
            "driversLicense": drivers_license,
            "addresses": addresses,
            "phones": phones,
            "emails": emails,
            "hieOptOut": hie_opt_out,
        }, errors


def _cell(row: list[str], column: int | None) -> str:
    return row[column] if column is not None else ""


def _address(row: list[str], group: AddressColumns, errors: list[RowError]) -> dict[str, typing.Any] | None:
    """One address group: None when it is empty (ignored) or incomplete/invalid (errors appended)."""
    raw_line1 = _cell(row, group.address_line1)
    raw_line2 = _cell(row, group.address_line2)
    raw_city = _cell(row, group.city)
    raw_state = _cell(row, group.state)
    raw_zip = _cell(row, group.zip)
    if not (raw_line1 or raw_line2 or raw_city or raw_state or raw_zip):
        return None
    if raw_line1.isspace() or raw_line2.isspace() or raw_city.isspace() or raw_state.isspace() or raw_zip.isspace():
        # Whitespace-only cells count as empty.
        raw_line1, raw_line2, raw_city = raw_line1.strip(), raw_line2.strip(), raw_city.strip()
        raw_state, raw_zip = raw_state.strip(), raw_zip.strip()
        if not (raw_line1 or raw_line2 or raw_city or raw_state or raw_zip):
            return None

    line2 = normalize_address_line(raw_line2) if raw_line2 else None
    if line2:
        # A dedicated addressLine2 wins; line 1 is then kept whole (Metriport: splitting it too would
        # drop the unit it holds).
        line1 = title_case_if_not_multi_case(" ".join(raw_line1.split())) or None
    else:
        line1 = normalize_address_line(raw_line1) if raw_line1 else None
        if line1:
            line1, line2 = split_address_unit(line1)
    city = normalize_city(raw_city) if raw_city else None
    state = normalize_state(raw_state) if raw_state else None
    zip_code = normalize_zip(raw_zip) if raw_zip else None

    suffix = group.suffix
    start = len(errors)
    if line1 is None:
        errors.append(
            RowError(RowErrorCode.INCOMPLETE_ADDRESS, f"addressLine1{suffix}", f"Missing addressLine1{suffix}")
        )
    if city is None:
        errors.append(RowError(RowErrorCode.INCOMPLETE_ADDRESS, f"city{suffix}", f"Missing city{suffix}"))
    if state is None:
        if raw_state and not raw_state.isspace():
            errors.append(
                RowError(
                    RowErrorCode.INVALID_STATE,
                    f"state{suffix}",
                    f"Invalid state{suffix} (use a US state or territory, as a 2-letter code or name)",
                )
            )
        else:
            errors.append(RowError(RowErrorCode.INCOMPLETE_ADDRESS, f"state{suffix}", f"Missing state{suffix}"))
    if zip_code is None:
        if raw_zip and not raw_zip.isspace():
            errors.append(
                RowError(RowErrorCode.INVALID_ZIP, f"zip{suffix}", f"Invalid zip{suffix} (use 5 digits or ZIP+4)")
            )
        else:
            errors.append(RowError(RowErrorCode.INCOMPLETE_ADDRESS, f"zip{suffix}", f"Missing zip{suffix}"))
    if len(errors) > start:
        return None
    return {
        "addressLine1": line1,
        "addressLine2": line2,
        "city": city,
        "state": state,
        "zip": zip_code,
        "country": "USA",
    }


def _drivers_license(row: list[str], plan: ColumnPlan, errors: list[RowError]) -> dict[str, str] | None:
    # Metriport's mapCsvDriversLicense: a state that is missing or not a US state only matters when
    # there is a number; a valid state without a number is an error.
    if plan.drivers_license is None and plan.drivers_license_state is None:
        return None
    value = normalize_drivers_license_value(_cell(row, plan.drivers_license))
    raw_state = _cell(row, plan.drivers_license_state)
    state = normalize_state(raw_state) if raw_state.strip() else None
    if value is None:
        if state is not None:
            errors.append(
                RowError(
                    RowErrorCode.INVALID_DRIVERS_LICENSE,
                    "driversLicense",
                    "Invalid drivers license (missing value)",
                )
            )
        return None
    if state is None:
        errors.append(
            RowError(
                RowErrorCode.INVALID_DRIVERS_LICENSE,
                "driversLicense",
                "Invalid drivers license (missing state)",
            )
        )
        return None
    return {"value": value, "state": state}
