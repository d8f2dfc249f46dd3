"""The patient row rules: how one row of demographics, laid out as a header says (patients.header), is
validated and normalized (RowValidator). A bulk file is read with them (bulkimport.validation.CsvImport),
and so is a single patient's JSON, laid out as one row (patients.demographics): one set of rules, so a
person sent both ways is one patient.

Pure Python, no Django. The rules are Metriport's patient-import rules (packages/core/src/command/
patient-import/csv), with row errors worded as Metriport words them
("Missing firstName", "Missing/invalid dob", "Missing addressLine1-1", "Patient has no address").
Each error also has a code (RowErrorCode) so errors can be counted and filtered.

Nothing here logs, and no exception or message carries a cell value: cells are PHI.
"""

from __future__ import annotations

import datetime
import enum
import typing
from dataclasses import dataclass

from patients.header import AddressColumns, ColumnPlan
from patients.normalize import (
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
    "GENDER_MESSAGE",
    "MAX_COHORT_NAME",
    "PHONE_HINT",
    "RowError",
    "RowErrorCode",
    "RowResult",
    "RowValidator",
    "normalize_cohort_name",
    "row_reason",
    "unknown_cohort_message",
    "unknown_facility_message",
]


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
    INVALID_COHORT = "invalid_cohort"
    UNKNOWN_COHORT = "unknown_cohort"  # decided against the customer's cohorts when the file is parsed
    UNKNOWN_FACILITY = "unknown_facility"  # decided against the customer's facilities when the file is parsed
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


MAX_COHORT_NAME = 200


def normalize_cohort_name(value: str) -> str:
    """A cohort cell as Metriport's importer reads it: trimmed and upper-cased (cohorts.models.name_key
    compares names the same way)."""
    return value.strip().upper()


def unknown_cohort_message(column: str) -> str:
    """The row error of a cohort cell naming none of the customer's cohorts, when its rule is to reject them."""
    return (
        f"Unknown cohort in {column} (create the cohort first with POST /medical/v1/cohort, or ask support to "
        "let your imports create cohorts)"
    )


def unknown_facility_message(*, inactive: bool = False) -> str:
    """The row error of a facilityId cell that is not an active facility of the customer's."""
    if inactive:
        return "Inactive facilityId (the facility is inactive: activate it, or leave the cell empty)"
    return "Unknown facilityId (not one of your facilities: use a facility id of yours, or leave the cell empty)"


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

        cohorts: list[str] = []
        for name, column in plan.cohorts:
            value = row[column]
            if value and not value.isspace():
                cohort = normalize_cohort_name(value)
                if len(cohort) > MAX_COHORT_NAME:
                    errors.append(
                        RowError(
                            RowErrorCode.INVALID_COHORT,
                            name,
                            f"Invalid {name} (a cohort name has at most {MAX_COHORT_NAME} characters)",
                        )
                    )
                elif cohort not in cohorts:
                    cohorts.append(cohort)

        if errors:
            return None, errors
        normalized: dict[str, typing.Any] = {
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
        }
        if plan.cohorts:
            normalized["cohorts"] = cohorts
        if plan.facility_id is not None:
            normalized["facilityId"] = row[plan.facility_id].strip() or None  # checked when the file is parsed
        return normalized, errors


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
