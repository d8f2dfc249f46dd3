"""A patient's demographics as JSON (Metriport's PatientCreate / Demographics) read exactly as a bulk row is.

The single-patient API must normalize and match the way Bulk Patient Create does, or the same person sent
once by file and once by API becomes two patients. Rather than a second set of rules, the JSON is laid out
as one CSV row under a fixed header and handed to the bulk row validator; its errors, which name CSV
columns (`zip-2`, `phone-1`), are renamed to the JSON paths the client sent (`address[1].zip`).
"""

from __future__ import annotations

import datetime
import typing

from rest_framework.exceptions import ValidationError

from metriport_bulk.api.fields import JSON_BOOLEAN_MESSAGE
from patients.header import MAX_INDEX, build_column_plan
from patients.identity import clean_text
from patients.validation import RowValidator

_ADDRESS_KEYS = ("addressLine1", "addressLine2", "city", "state", "zip")
_SINGLE = ("firstName", "lastName", "dob", "gender", "externalId", "ssn", "driversLicense", "driversLicenseState")
_HEADER = [
    *_SINGLE,
    *(f"{key}-{i}" for i in range(1, MAX_INDEX + 1) for key in _ADDRESS_KEYS),
    *(f"phone-{i}" for i in range(1, MAX_INDEX + 1)),
    *(f"email-{i}" for i in range(1, MAX_INDEX + 1)),
]
_PLAN = build_column_plan(_HEADER)
_POSITION = {name: position for position, name in enumerate(_HEADER)}


def _json_path(column: str) -> str:
    """A bulk error's column as the JSON field the client sent: `zip-2` -> `address[1].zip`."""
    base, _, index = column.partition("-")
    if index:
        group = "contact" if base in ("phone", "email") else "address"
        return f"{group}[{int(index) - 1}].{base}"
    return {"gender": "genderAtBirth", "ssn": "personalIdentifiers", "driversLicense": "personalIdentifiers"}.get(
        column, column
    )


def _text(value: typing.Any, path: str, errors: dict[str, str]) -> str:
    """A JSON string field as a cell: absent/null is empty; anything but a string is the client's error."""
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[path] = "Must be a string."
        return ""
    return value


def _objects(value: typing.Any, path: str, errors: dict[str, str]) -> list[dict[str, typing.Any]]:
    """Metriport accepts one object or a list of them for `address` and `contact`."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        errors[path] = "Must be an object or a list of objects."
        return []
    if len(items) > MAX_INDEX:
        errors[path] = f"At most {MAX_INDEX} items."
        return []
    return items


def _identifiers(value: typing.Any, cells: dict[str, str], errors: dict[str, str]) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        errors["personalIdentifiers"] = "Must be a list of objects."
        return
    for i, identifier in enumerate(value):
        path = f"personalIdentifiers[{i}]"
        kind = identifier.get("type")
        if kind == "ssn":
            cells["ssn"] = _text(identifier.get("value"), f"{path}.value", errors)
        elif kind == "driversLicense":
            cells["driversLicense"] = _text(identifier.get("value"), f"{path}.value", errors)
            cells["driversLicenseState"] = _text(identifier.get("state"), f"{path}.state", errors)
        else:
            errors[f"{path}.type"] = 'Must be "ssn" or "driversLicense".'


def demographics_read(data: typing.Any, *, today: datetime.date | None = None) -> dict[str, typing.Any]:
    """The normalized values (the shape a valid bulk row stores) of a PatientCreate/Demographics body, or a
    ValidationError naming every bad field. Never echoes a value (PHI)."""
    if not isinstance(data, dict):
        raise ValidationError({"body": "Must be a JSON object."})
    errors: dict[str, str] = {}
    cells = {
        "firstName": _text(data.get("firstName"), "firstName", errors),
        "lastName": _text(data.get("lastName"), "lastName", errors),
        "dob": _text(data.get("dob"), "dob", errors),
        "gender": _text(data.get("genderAtBirth"), "genderAtBirth", errors),
        "externalId": _text(data.get("externalId"), "externalId", errors),
    }
    _identifiers(data.get("personalIdentifiers"), cells, errors)
    addresses = _objects(data.get("address"), "address", errors)
    if not addresses and "address" not in errors:
        errors["address"] = "At least one address is required."
    for i, address in enumerate(addresses, start=1):
        for key in _ADDRESS_KEYS:
            cells[f"{key}-{i}"] = _text(address.get(key), f"address[{i - 1}].{key}", errors)
        country = address.get("country")
        if country not in (None, "") and (not isinstance(country, str) or country.strip().upper() != "USA"):
            errors[f"address[{i - 1}].country"] = 'Only "USA" is supported.'
    for i, contact in enumerate(_objects(data.get("contact"), "contact", errors), start=1):
        cells[f"phone-{i}"] = _text(contact.get("phone"), f"contact[{i - 1}].phone", errors)
        cells[f"email-{i}"] = _text(contact.get("email"), f"contact[{i - 1}].email", errors)
    hie_opt_out = data.get("hieOptOut")
    if hie_opt_out is not None and not isinstance(hie_opt_out, bool):
        errors["hieOptOut"] = JSON_BOOLEAN_MESSAGE
    if errors:
        raise ValidationError(errors)

    row = [""] * len(_HEADER)
    for name, value in cells.items():
        # Cleaned as a bulk cell is (bulkimport.validation): invisible characters gone, NFC.
        row[_POSITION[name]] = clean_text(value)
    normalized, row_errors = RowValidator(_PLAN, today=today or datetime.date.today()).validate(row)
    if normalized is None:
        raise ValidationError(
            {_json_path(e.field): e.message.replace(e.field, e.field.partition("-")[0]) for e in row_errors}
        )
    normalized["hieOptOut"] = hie_opt_out  # None when the body does not say
    return normalized
